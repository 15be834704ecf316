# expect: BAI507@4
FROM bai-local/debian:bookworm
LABEL ai.backend.kernelspec="1" ai.backend.features="uid-match"
COPY no-such-dir/ /etc/backend.ai/service-defs/
