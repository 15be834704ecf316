# expect: BAI101@6
FROM bai-local/debian:bookworm
LABEL ai.backend.kernelspec="1" \
      ai.backend.runtime-type="app" \
      ai.backend.features="uid-match" \
      ai.backend.service-ports="jupyter:http:8091, tensorboard:http:6006"
