# expect: BAI500
LABEL ai.backend.kernelspec="1"
