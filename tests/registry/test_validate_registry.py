"""``bai-imagekit validate REGISTRY/REPO:TAG`` against real registries on 127.0.0.1 (no pull, no engine
for the image): the same findings as the local image, the rescan's verdict per platform, auth from the
Docker config and credential helpers, TLS against the test CA, and exit 2 with a clear message for a
missing tag, a denied request, a timeout and a server that is no registry."""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from imagekit.localenv.registry_seed import get_manifest, put_manifest

CLI = [sys.executable, "-m", "imagekit.cli"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full = {**os.environ, "NO_COLOR": "1", "DOCKER_CONFIG": os.environ.get("BAI_TEST_EMPTY_DOCKER_CONFIG", ""),
            **(env or {})}
    if not full["DOCKER_CONFIG"]:
        full.pop("DOCKER_CONFIG")
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=full, timeout=timeout)


def as_json(out: subprocess.CompletedProcess) -> dict:
    assert out.stdout, f"no output (exit {out.returncode}): {out.stderr[-2000:]}"
    return json.loads(out.stdout)


def comparable(findings: list[dict], name: str) -> list[tuple]:
    """Findings without the target's name (the local and the registry reference differ)."""
    def loc(f):
        where = f.get("location") or {}
        return (where.get("file", "").replace(name, "<image>"), where.get("line"))
    return sorted((f["rule"], f["severity"], f["message"].replace(name, "<image>"), f.get("label"), loc(f))
                  for f in findings)


@pytest.fixture()
def docker_config(tmp_path, monkeypatch):
    """An empty DOCKER_CONFIG directory for the CLI runs of one test (never the user's own)."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("BAI_TEST_EMPTY_DOCKER_CONFIG", str(directory))
    return directory


# ------------------------------------------------------------------------------------ same findings


def test_python_from_the_registry_gives_the_local_images_findings(reference_image, pushed_reference_images,
                                                                   docker_config):
    local = reference_image("python")
    pushed = pushed_reference_images("python")
    here = cli("validate", local, "--format", "json")
    there = cli("validate", "--insecure", pushed.reference, "--format", "json")
    assert here.returncode in (0, 1), here.stderr
    assert there.returncode == here.returncode, there.stderr
    local_doc, remote_doc = as_json(here), as_json(there)
    assert comparable(remote_doc["findings"], pushed.reference) == comparable(local_doc["findings"], local)
    assert "downloading layer" in there.stderr  # the files came from the layer blobs

    (image,) = remote_doc["rescan"]
    manifest = get_manifest(pushed.registry, pushed.repository, pushed.tag).document()
    size = sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
    assert image["digest"] == pushed.digest
    assert image["verdict"] == "kernel"
    (platform,) = image["platforms"]
    assert platform["platform"] == "linux/amd64" and platform["architecture"] == "x86_64"
    assert platform["verdict"] == "kernel" and platform["size"] == size
    assert [layer["size"] for layer in platform["layers"]] == [layer["size"] for layer in manifest["layers"]]


def test_text_output_states_the_rescan_verdict(pushed_reference_images, docker_config):
    pushed = pushed_reference_images("python-minimal")
    out = cli("validate", "--insecure", "--labels-only", pushed.reference)
    assert out.returncode == 0, out.stderr
    assert f"rescan of {pushed.reference}" in out.stdout
    assert "linux/amd64 (x86_64): registered as a kernel image" in out.stdout
    assert "downloading layer" not in out.stderr  # --labels-only reads no layer


def test_size_budget_names_the_largest_layers(pushed_reference_images, docker_config):
    pushed = pushed_reference_images("python-minimal")
    manifest = get_manifest(pushed.registry, pushed.repository, pushed.tag).document()
    largest = max(manifest["layers"], key=lambda layer: layer["size"])
    out = cli("validate", "--insecure", "--labels-only", pushed.reference, "--max-size", "1MiB", "--format", "json")
    assert out.returncode == 1, out.stderr
    (finding,) = [f for f in as_json(out)["findings"] if f["rule"] == "BAI315"]
    assert finding["severity"] == "error"
    assert "over the budget of 1.0 MiB" in finding["message"]
    assert largest["digest"][7:19] in finding["message"]
    ok = cli("validate", "--insecure", "--labels-only", pushed.reference, "--max-size", "100GiB", "--format", "json")
    assert not [f for f in as_json(ok)["findings"] if f["rule"] == "BAI315"]


# ------------------------------------------------------------------------------------ several platforms


def test_oci_index_gets_a_verdict_per_platform(two_platform_index, docker_config):
    for index in (two_platform_index.matching, two_platform_index.manifest_list):
        out = cli("validate", "--insecure", "--labels-only", index.reference, "--format", "json")
        assert out.returncode == 0, out.stderr
        doc = as_json(out)
        assert doc["targets"] == [f"{index.reference} (linux/amd64)", f"{index.reference} (linux/arm64/v8)"]
        (image,) = doc["rescan"]
        assert image["media_type"] == index.media_type
        assert [(p["architecture"], p["verdict"]) for p in image["platforms"]] == [("x86_64", "kernel"),
                                                                                 ("aarch64", "kernel")]
        assert not [f for f in doc["findings"] if f["rule"] == "BAI316"]


def test_platforms_with_different_labels_are_flagged(two_platform_index, docker_config):
    index = two_platform_index.mismatch
    out = cli("validate", "--insecure", "--labels-only", index.reference, "--format", "json")
    doc = as_json(out)
    (finding,) = [f for f in doc["findings"] if f["rule"] == "BAI316"]
    assert finding["target"] == f"{index.reference} (linux/arm64/v8)"
    (label,) = index.arm64_label_changes
    assert label in finding["message"]
    only_arm = cli("validate", "--insecure", "--labels-only", index.reference, "--platform", "linux/amd64",
                   "--format", "json")
    assert as_json(only_arm)["targets"] == [f"{index.reference} (linux/amd64)"]


def test_attestation_entries_are_skipped_and_duplicate_architectures_flagged(two_platform_index, plain_registry,
                                                                             docker_config):
    index = two_platform_index.matching
    amd64 = get_manifest(plain_registry, index.repository, index.amd64_digest)
    entry = {"mediaType": amd64.media_type, "digest": index.amd64_digest, "size": len(amd64.body)}
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {**entry, "platform": {"os": "linux", "architecture": "amd64"}},
        {**entry, "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": index.amd64_digest}},
        {**entry, "platform": {"os": "windows", "architecture": "amd64"}},
    ]}
    body = json.dumps(doc).encode()
    put_manifest(plain_registry, index.repository, "odd-entries", doc["mediaType"], body)
    ref = plain_registry.ref(index.repository, "odd-entries")
    out = cli("validate", "--insecure", "--labels-only", ref, "--format", "json")
    result = as_json(out)
    platforms = result["rescan"][0]["platforms"]
    assert [(p["platform"], p["verdict"]) for p in platforms] == [
        ("linux/amd64", "skipped"), ("unknown/unknown", "skipped"), ("windows/amd64", "kernel")]
    assert "attestation manifest" in platforms[1]["reason"]
    assert "replaced by the later entry windows/amd64" in platforms[0]["reason"]
    assert [f["target"] for f in result["findings"] if f["rule"] == "BAI318"] == [f"{ref} (linux/amd64)"]


# ------------------------------------------------------------------------------------ auth and TLS


def _config_with_auth(directory: Path, registry, password: str | None = None) -> None:
    token = base64.b64encode(f"{registry.username}:{password or registry.password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {registry.address: {"auth": token}}}))


def test_basic_auth_from_the_docker_config_over_tls(pushed_reference_images, tls_registry, docker_config):
    pushed = pushed_reference_images("python-minimal", registry=tls_registry)
    tls = {"SSL_CERT_FILE": str(tls_registry.ca_cert)}
    anonymous = cli("validate", "--labels-only", pushed.reference, env=tls)
    assert anonymous.returncode == 2
    assert "needs a user name and password" in anonymous.stderr and "Traceback" not in anonymous.stderr

    _config_with_auth(docker_config, tls_registry, password="wrong")
    wrong = cli("validate", "--labels-only", pushed.reference, env=tls)
    assert wrong.returncode == 2 and "access denied" in wrong.stderr and "auths" in wrong.stderr

    _config_with_auth(docker_config, tls_registry)
    good = cli("validate", pushed.reference, "--format", "json", env=tls)
    assert good.returncode == 0, good.stderr
    assert as_json(good)["rescan"][0]["verdict"] == "kernel"

    untrusted = cli("validate", "--labels-only", pushed.reference, env={"SSL_CERT_FILE": ""})
    assert untrusted.returncode == 2
    assert "TLS with" in untrusted.stderr and "SSL_CERT_FILE" in untrusted.stderr


def test_credential_helper_as_the_docker_cli_calls_it(pushed_reference_images, tls_registry, docker_config,
                                                      tmp_path):
    pushed = pushed_reference_images("python-minimal", registry=tls_registry)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked"
    helper = bin_dir / "docker-credential-bai-test"
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 1\ncat > {asked}\n'
        f"""printf '{{"ServerURL":"%s","Username":"{tls_registry.username}","Secret":"{tls_registry.password}"}}' """
        f'"$(cat {asked})"\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    (docker_config / "config.json").write_text(json.dumps({"credHelpers": {tls_registry.address: "bai-test"}}))
    env = {"SSL_CERT_FILE": str(tls_registry.ca_cert), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = cli("validate", "--labels-only", pushed.reference, env=env)
    assert out.returncode == 0, out.stderr
    assert asked.read_text() == tls_registry.address  # the server URL on stdin, like docker does

    (docker_config / "config.json").write_text(json.dumps({"credsStore": "missing-helper"}))
    missing = cli("validate", "--labels-only", pushed.reference, env=env)
    assert missing.returncode == 2 and "docker-credential-missing-helper" in missing.stderr


# ------------------------------------------------------------------------------------ clear errors


def test_missing_tag_is_exit_2(pushed_reference_images, docker_config):
    pushed = pushed_reference_images("python-minimal")
    ref = pushed.registry.ref(pushed.repository, "no-such-tag")
    out = cli("validate", "--insecure", ref)
    assert out.returncode == 2
    assert f"{ref}: not found" in out.stderr and "MANIFEST_UNKNOWN" in out.stderr
    assert "Traceback" not in out.stderr


def test_plain_http_registry_without_insecure_is_a_tls_error(plain_registry, docker_config):
    out = cli("validate", plain_registry.ref("bai-ref/python-minimal"))
    assert out.returncode == 2 and "--insecure" in out.stderr and "Traceback" not in out.stderr


class _NotARegistry(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        body = b"<html>hello</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_server_without_the_v2_api_is_exit_2(docker_config):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotARegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ref = f"127.0.0.1:{server.server_address[1]}/some/image:1"
        out = cli("validate", "--insecure", ref)
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 2
    assert "does not speak the registry HTTP API v2" in out.stderr and "Traceback" not in out.stderr


def test_a_registry_that_does_not_answer_times_out_with_exit_2(docker_config):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (the kernel does) and never answers
        ref = f"127.0.0.1:{listener.getsockname()[1]}/some/image:1"
        out = cli("validate", "--insecure", "--timeout", "1", ref, timeout=60)
    assert out.returncode == 2
    assert "did not answer within 1s" in out.stderr and "Traceback" not in out.stderr


def test_nothing_listening_is_exit_2(docker_config):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = cli("validate", "--insecure", f"127.0.0.1:{port}/some/image:1")
    assert out.returncode == 2 and "cannot connect to 127.0.0.1" in out.stderr


def test_a_digest_reference_is_checked(pushed_reference_images, docker_config):
    pushed = pushed_reference_images("python-minimal")
    ref = f"{pushed.registry.address}/{pushed.repository}@{pushed.digest}"
    out = cli("validate", "--insecure", "--labels-only", ref, "--format", "json")
    assert out.returncode == 0, out.stderr
    (image,) = as_json(out)["rescan"]
    assert image["digest"] == pushed.digest and image["verdict"] == "kernel"
    wrong = f"{pushed.registry.address}/{pushed.repository}@sha256:{'0' * 64}"
    missing = cli("validate", "--insecure", "--labels-only", wrong)
    assert missing.returncode == 2 and "not found" in missing.stderr


# ------------------------------------------------------------------------------------ bearer tokens


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _TokenServer(http.server.ThreadingHTTPServer):
    """A small token server for a distribution registry with ``auth: token``: checks basic auth, grants
    pull (and catalog) access in an RS256 JWT signed by ``openssl dgst`` with the key whose
    certificate the registry trusts (``rootcertbundle``), the certificate in the ``x5c`` header."""

    def __init__(self, key: Path, cert_der: bytes, user: str, password: str) -> None:
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.key, self.cert_der, self.user, self.password = key, cert_der, user, password
        self.requests: list[dict] = []

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), capture_output=True, check=True).stdout
        return f"{signing_input}.{_b64url(signature)}"


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    server: _TokenServer

    def do_GET(self):  # noqa: N802 - the http.server API
        from urllib.parse import parse_qs, urlparse

        query = parse_qs(urlparse(self.path).query)
        auth = self.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if (name, password) in ((self.server.user, self.server.password), ("pull-only", "pw")):
                user = name
        self.server.requests.append({"scope": query.get("scope", []), "service": query.get("service", [""])[0],
                                     "user": user})
        if user is None:
            self.send_response(401)
            self.end_headers()
            return
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else (scope, "", "")
            granted = [a for a in actions.split(",") if a in ("pull", "*") and (kind == "repository" or user != "pull-only")]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(__import__("time").time())
        token = self.server.sign({"iss": "bai-test-issuer", "sub": user, "aud": query.get("service", [""])[0],
                                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(now),
                                  "access": access})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def token_registry(pushed_reference_images, plain_registry, tmp_path_factory):
    """A second ``docker-registry`` serving the plain registry's storage (read only) with ``auth: token``
    against :class:`_TokenServer`: yields (address, token server)."""
    from imagekit.localenv.registry import REGISTRY_BIN

    pushed_reference_images("python-minimal")  # in the shared storage before the second registry starts
    directory = tmp_path_factory.mktemp("token-registry")
    key, cert = directory / "token.key", directory / "token.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=bai-test token signer", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True,
                         capture_output=True).stdout
    server = _TokenServer(key, der, "bearer-user", "bearer-pass")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = directory / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {plain_registry.directory / 'storage'}\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: bai-test-token-registry\n"
        f"auth:\n  token:\n    realm: http://127.0.0.1:{server.server_address[1]}/token\n"
        f"    service: bai-test-registry\n    issuer: bai-test-issuer\n    rootcertbundle: {cert}\n")
    with open(directory / "registry.log", "wb") as log:
        proc = subprocess.Popen([str(REGISTRY_BIN), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        import time
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401 and "Bearer" in exc.headers.get("WWW-Authenticate", "")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (directory / "registry.log").read_text()
                time.sleep(0.1)
        yield f"127.0.0.1:{port}", server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.shutdown()
        server.server_close()


def test_bearer_token_flow_against_a_token_auth_registry(token_registry, docker_config):
    address, server = token_registry
    ref = f"{address}/bai-ref/python-minimal:latest"
    anonymous = cli("validate", "--insecure", "--labels-only", ref)
    assert anonymous.returncode == 2
    assert "refused anonymous access" in anonymous.stderr and "Traceback" not in anonymous.stderr

    token = base64.b64encode(b"bearer-user:bearer-pass").decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {address: {"auth": token}}}))
    server.requests.clear()
    out = cli("validate", "--insecure", "--labels-only", ref, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert as_json(out)["rescan"][0]["verdict"] == "kernel"
    assert {"scope": ["repository:bai-ref/python-minimal:pull"], "service": "bai-test-registry",
            "user": "bearer-user"} in server.requests

    scan = cli("registry", "scan", f"{address}/bai-ref", "--insecure", "--format", "json",
               env={"DOCKER_CONFIG": str(docker_config)})
    assert scan.returncode in (0, 1), scan.stderr
    assert ref in {image["reference"] for image in json.loads(scan.stdout)["images"]}
    assert any(r["scope"] == ["registry:catalog:*"] for r in server.requests)

    pull_only = base64.b64encode(b"pull-only:pw").decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {address: {"auth": pull_only}}}))
    no_catalog = cli("registry", "scan", address, "--insecure", env={"DOCKER_CONFIG": str(docker_config)})
    assert no_catalog.returncode == 2 and "Traceback" not in no_catalog.stderr
    assert "access denied" in no_catalog.stderr and "does not let this account list its repositories" in no_catalog.stderr


def test_every_platform_gets_the_content_rules_and_shared_layers_are_fetched_once(two_platform_index,
                                                                                  docker_config):
    index = two_platform_index.matching
    amd64 = get_manifest(two_platform_index.source.registry, index.repository, index.amd64_digest).document()
    out = cli("validate", "--insecure", index.reference, "--format", "json")
    assert out.returncode in (0, 1), out.stderr
    doc = as_json(out)
    by_target = {t: comparable([f for f in doc["findings"] if f["target"] == t], t) for t in doc["targets"]}
    amd, arm = (by_target[f"{index.reference} ({p})"] for p in ("linux/amd64", "linux/arm64/v8"))
    assert amd == arm  # the same labels and the same layers: the same findings
    assert any(rule.startswith("BAI3") for rule, *_ in amd)  # …including those of the image's files (BAI3xx)
    assert out.stderr.count("downloading layer") == len(amd64["layers"])  # the twin reuses the amd64 layers
