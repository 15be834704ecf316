# expect: BAI502@6
FROM bai-local/debian:bookworm
ARG RUNTIME_PATH
LABEL ai.backend.kernelspec="1" \
      ai.backend.features="uid-match" \
      ai.backend.runtime-path="${RUNTIME_PATH}"
