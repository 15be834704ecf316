# expect: BAI003@5
ARG SPEC=2
FROM bai-local/debian:bookworm
ARG SPEC
LABEL ai.backend.kernelspec=$SPEC ai.backend.runtime-type=app ai.backend.features=uid-match
