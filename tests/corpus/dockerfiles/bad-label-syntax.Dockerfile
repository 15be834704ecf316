# expect: BAI501@5
FROM bai-local/debian:bookworm
LABEL ai.backend.kernelspec="1" \
      ai.backend.runtime-type="app" \
      ai.backend.features=uid-match batch
