# expect: BAI504@4
# expect: BAI101@5
FROM bai-local/debian:bookworm
# bai-imagekit ignore=BAI11 a typo, so BAI101 still shows
LABEL ai.backend.kernelspec="1" ai.backend.features="uid-match" ai.backend.service-ports="a:http:8080, b:http:8081"
