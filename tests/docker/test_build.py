"""``bai-imagekit init`` → ``build`` against the real engine, the refusal paths, and the proxy CA bundle."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound, NotFound

from imagekit.image_build import CA_ARGS, CA_TARGET

pytestmark = pytest.mark.docker

BASE = "bai-local/debian:bookworm"
CLI = [sys.executable, "-m", "imagekit.cli"]


@pytest.fixture
def client(localenv):
    c = docker.from_env(timeout=600)
    yield c
    c.close()


@pytest.fixture
def cleanup(client):
    """Collects image ids/tags made by a test and removes them at the end."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        try:
            client.images.remove(ref, force=True)
        except (ImageNotFound, NotFound):
            pass


def _tag(name: str) -> str:
    return f"bai-test/imagekit-{name}:{uuid.uuid4().hex[:8]}"


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BAI_IMAGEKIT_CA_BUNDLE", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=900)


def _read_file(client, image: str, path: str) -> bytes | None:
    """The content of *path* in *image* (None if absent), read from a created, never started container."""
    container = client.containers.create(image, entrypoint=["/nonexistent"], command=[])
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            fh = tar.extractfile(tar.getmembers()[0])
            return fh.read() if fh else b""
    except NotFound:
        return None
    finally:
        container.remove(force=True)


def _image_has_file(client, image: str, path: str) -> bool:
    container = client.containers.create(image, entrypoint=["/nonexistent"], command=[])
    try:
        container.get_archive(path)
        return True
    except NotFound:
        return False
    finally:
        container.remove(force=True)


def _build_json(*args: str) -> tuple[int, dict, str]:
    out = _cli("build", *args, "--format", "json", "--build-arg", f"BASE_IMAGE={BASE}")
    try:
        data = json.loads(out.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON result (exit {out.returncode}):\nstdout: {out.stdout}\nstderr: {out.stderr[-3000:]}")
    return out.returncode, data, out.stderr


def test_init_then_build_makes_a_clean_kernel_image(client, cleanup, tmp_path):
    kdir = tmp_path / "kernel"
    assert _cli("init", str(kdir), "--service", "jupyterlab").returncode == 0
    tag = _tag("init")
    code, result, err = _build_json(str(kdir), "-t", tag)
    if result.get("image_id"):
        cleanup.append(result["image_id"])
    assert code == 0, err[-3000:]
    # the JSON result object
    assert result["ok"] is True and result["stage"] == "done" and result["error"] is None
    assert result["tags"] == [tag] and result["image_id"].startswith("sha256:")
    assert not [f for f in result["findings"] if f["severity"] == "error"], result["findings"]
    image = client.images.get(tag)
    assert image.id == result["image_id"]
    labels = image.labels
    assert labels["ai.backend.kernelspec"] == "1"
    assert labels["ai.backend.runtime-type"] == "python"
    assert labels["ai.backend.runtime-path"] == "/usr/bin/python3"
    assert labels["ai.backend.service-ports"] == "hello:http:8080,jupyterlab:http:8090"
    assert labels["ai.backend.resource.min.mem"] == "256m"
    assert result["labels"]["ai.backend.features"] == labels["ai.backend.features"]
    # def files and policy, byte for byte
    hello = _read_file(client, tag, "/etc/backend.ai/service-defs/hello.json")
    assert hello == (kdir / "service-defs" / "hello.json").read_bytes()
    lab = _read_file(client, tag, "/etc/backend.ai/service-defs/jupyterlab.json")
    assert lab == (Path(__file__).parents[2] / "service-defs" / "jupyterlab.json").read_bytes()
    assert _read_file(client, tag, "/etc/backend.ai/jail/policy.yml") == (kdir / "policy.yml").read_bytes()
    # the kernel layer is the last step: the labels are on top of the author's RUN layer
    history = [h.get("CreatedBy", "") for h in image.history()]
    assert "LABEL" in history[0] and "apt-get" in next(h for h in history if "apt-get" in h)
    # and `validate` agrees that the image is clean
    out = _cli("validate", tag, "--format", "json")
    assert out.returncode in (0, 1), out.stderr
    found = json.loads(out.stdout)["findings"]
    assert not [f for f in found if f["severity"] == "error"], found


def test_spec_with_errors_is_refused_before_building(client, cleanup, tmp_path):
    kdir = tmp_path / "kernel"
    assert _cli("init", str(kdir)).returncode == 0
    spec = kdir / "kernel.toml"
    spec.write_text(spec.read_text().replace('runtime-type = "python"', 'runtime-type = "cobol"'))
    tag = _tag("broken")
    code, result, err = _build_json(str(kdir), "-t", tag)
    assert code == 1
    assert result["ok"] is False and result["stage"] == "validate" and result["image_id"] is None
    errors = [f for f in result["findings"] if f["severity"] == "error"]
    assert errors and errors[0]["location"]["file"].endswith("kernel.toml") and errors[0]["location"]["line"] == 3
    with pytest.raises(ImageNotFound):
        client.images.get(tag)
    # text mode says why, and --allow-errors builds and tags anyway
    text = _cli("build", str(kdir), "-t", tag, "--build-arg", f"BASE_IMAGE={BASE}")
    assert text.returncode == 1 and "nothing was built" in text.stderr and "cobol" in text.stdout
    code, result, err = _build_json(str(kdir), "-t", tag, "--allow-errors")
    cleanup.append(tag)
    assert code == 0 and result["tags"] == [tag], err[-2000:]
    assert client.images.get(tag).labels["ai.backend.runtime-type"] == "cobol"


def test_errors_only_visible_in_the_image_leave_it_untagged(client, cleanup, tmp_path):
    # the base image carries a bad label the Dockerfile cannot show: only the built image has it
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    (base_dir / "Dockerfile").write_text(f'FROM {BASE}\nLABEL ai.backend.service-ports="web:http:80"\n')
    base_tag = _tag("badbase")
    client.images.build(path=str(base_dir), tag=base_tag, rm=True, pull=False)
    cleanup.append(base_tag)
    kdir = tmp_path / "kernel"
    kdir.mkdir()
    (kdir / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (kdir / "kernel.toml").write_text('[kernel]\nruntime-type = "shell"\nrunner = "krunner"\nfeatures = ["uid-match"]\n')
    tag = _tag("verify")
    out = _cli("build", str(kdir), "-t", tag, "--format", "json", "--build-arg", f"BASE_IMAGE={base_tag}")
    result = json.loads(out.stdout)
    if result.get("image_id"):
        cleanup.append(result["image_id"])
    assert out.returncode == 1, out.stderr[-2000:]
    assert result["stage"] == "verify" and result["image_id"] and result["tags"] == []
    assert any(f["severity"] == "error" and f.get("label") == "ai.backend.service-ports" for f in result["findings"])
    assert "left untagged" in result["error"]
    with pytest.raises(ImageNotFound):
        client.images.get(tag)
    assert client.images.get(result["image_id"]).labels["ai.backend.runtime-type"] == "shell"


CA_DOCKERFILE = """\
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS fetch
# needs the proxy CA: PyPI is only reachable through the TLS-intercepting proxy
RUN test -s "$PIP_CERT" && test -s "$SSL_CERT_FILE" \\
 && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-pip >/dev/null \\
 && pip download --no-deps six -d /tmp/x && ls /tmp/x/six-*.whl

FROM ${BASE_IMAGE}
COPY --from=fetch /tmp/x /opt/wheels
RUN ["/bin/sh", "-c", "test -s /run/secrets/bai-ca.pem && test \\"$REQUESTS_CA_BUNDLE\\" = /run/secrets/bai-ca.pem"]
RUN --mount=type=tmpfs,target=/scratch test -s "$CURL_CA_BUNDLE" && touch /scratch/ok
"""


def _layer_names(client, image_id: str) -> set[str]:
    """Every path in every layer of the saved image."""
    names: set[str] = set()
    with tempfile.TemporaryFile() as fh:
        for chunk in client.images.get(image_id).save(named=False):
            fh.write(chunk)
        fh.seek(0)
        with tarfile.open(fileobj=fh) as outer:
            for member in outer.getmembers():
                if member.name.endswith("layer.tar") or member.name.startswith("blobs/"):
                    inner = outer.extractfile(member)
                    if inner is None:
                        continue
                    try:
                        with tarfile.open(fileobj=io.BytesIO(inner.read())) as layer:
                            names.update(layer.getnames())
                    except tarfile.TarError:
                        continue  # a config blob, not a layer
    return names


def test_ca_bundle_is_used_during_run_and_not_left_in_the_image(client, cleanup, tmp_path):
    ca = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    assert Path(ca).is_file(), "the machine's CA bundle is needed for this test"
    kdir = tmp_path / "kernel"
    kdir.mkdir()
    (kdir / "Dockerfile").write_text(CA_DOCKERFILE)
    (kdir / "kernel.toml").write_text('[kernel]\nruntime-type = "shell"\nrunner = "krunner"\nfeatures = ["uid-match"]\n')
    tag = _tag("ca")
    code, result, err = _build_json(str(kdir), "-t", tag, "--ca-bundle", ca, "--no-cache")  # really download
    if result.get("image_id"):
        cleanup.append(result["image_id"])
    assert code == 0, err[-4000:]
    assert "Saved /tmp/x/six" in err  # pip got through the proxy; BuildKit progress reached stderr
    assert "RUN --mount=type=secret,id=bai-ca" in err
    image = client.images.get(tag)
    env = image.attrs["Config"].get("Env") or []
    assert not [e for e in env if e.split("=", 1)[0] in CA_ARGS], env
    assert not any("bai-ca" in e for e in env)
    assert not _image_has_file(client, tag, CA_TARGET)
    assert _image_has_file(client, tag, "/opt/wheels")
    names = _layer_names(client, image.id)
    assert names and not [n for n in names if n.endswith("bai-ca.pem")], sorted(n for n in names if "secrets" in n)
    ca_text = Path(ca).read_text()
    first_cert_line = next(line for line in ca_text.splitlines() if line and not line.startswith("-----") and not line.startswith("#"))
    for h in image.history():
        assert first_cert_line not in (h.get("CreatedBy") or "")
    # the same build without the CA fails at pip: the CA really is what made the download work
    fetch_only = CA_DOCKERFILE.split("\nFROM ${BASE_IMAGE}\n")[0]
    (kdir / "Dockerfile").write_text(fetch_only.replace('test -s "$PIP_CERT" && test -s "$SSL_CERT_FILE" \\\n && ', "") + "\n")
    out = _cli("build", str(kdir), "--format", "json", "--build-arg", f"BASE_IMAGE={BASE}")
    failed = json.loads(out.stdout)
    if failed.get("image_id"):
        cleanup.append(failed["image_id"])
    assert out.returncode == 1 and failed["stage"] == "build", out.stderr[-2000:]
    assert "CERTIFICATE_VERIFY_FAILED" in out.stderr or "SSL" in out.stderr, out.stderr[-2000:]
