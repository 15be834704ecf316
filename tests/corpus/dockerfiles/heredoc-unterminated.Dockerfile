# expect: BAI506@3
FROM bai-local/debian:bookworm
RUN <<EOF
echo this heredoc never ends
