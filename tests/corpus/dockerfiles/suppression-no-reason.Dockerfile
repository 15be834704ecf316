# expect: BAI503@4
# expect-not: BAI101
FROM bai-local/debian:bookworm
# bai-imagekit ignore=BAI101
LABEL ai.backend.kernelspec="1" ai.backend.features="uid-match" ai.backend.service-ports="a:http:8080, b:http:8081"
