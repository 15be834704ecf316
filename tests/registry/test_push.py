"""``bai-imagekit build --push`` against a real registry: every -t tag pushed by the engine, the
pushed image validated from the registry; push failures exit 2 with the registry's message."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid

import docker
import pytest
from docker.errors import ImageNotFound, NotFound

from imagekit.localenv.registry_seed import get_manifest

BASE = "bai-local/debian:bookworm"
CLI = [sys.executable, "-m", "imagekit.cli"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    env.pop("BAI_IMAGEKIT_CA_BUNDLE", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=900)


def _build(kdir, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return _cli("build", str(kdir), "--build-arg", f"BASE_IMAGE={BASE}", *args, env=env)


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory, localenv):
    """A small kernel directory from ``bai-imagekit init`` (built on the local base image, cached)."""
    kdir = tmp_path_factory.mktemp("push") / "kernel"
    out = _cli("init", str(kdir))
    assert out.returncode == 0, out.stderr
    return kdir


@pytest.fixture
def engine_tags():
    """Local tags a test makes (``127.0.0.1:PORT/...``), removed from the engine afterwards."""
    client = docker.from_env(timeout=600)
    made: list[str] = []
    yield made
    failed: list[str] = []
    for ref in made:  # untag all of them, then say what could not be untagged
        try:
            client.images.remove(ref, force=True)
        except (ImageNotFound, NotFound):
            pass
        except docker.errors.APIError as exc:
            failed.append(f"{ref}: {exc}")
    client.close()
    assert not failed, f"could not remove the test's engine tags: {failed}"


def _tags_list(registry, repository: str) -> list[str]:
    with urllib.request.urlopen(f"{registry.url}/v2/{repository}/tags/list", timeout=10) as resp:
        return sorted(json.loads(resp.read())["tags"])


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_push_every_tag_then_validate_from_the_registry(kernel_dir, plain_registry, engine_tags):
    repo = f"x/push-{uuid.uuid4().hex[:8]}"
    tags = [plain_registry.ref(repo, "1"), plain_registry.ref(repo, "latest")]
    engine_tags.extend(tags)
    out = _build(kernel_dir, "-t", tags[0], "-t", tags[1], "--push", "--insecure", "--format", "json")
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["ok"] is True and result["tags"] == tags
    # both tags are in the registry, as one manifest
    assert _tags_list(plain_registry, repo) == ["1", "latest"]
    pushed = result["pushed"]
    assert [p["reference"] for p in pushed] == tags
    digest = pushed[0]["digest"]
    assert digest.startswith("sha256:") and pushed[1]["digest"] == digest
    assert get_manifest(plain_registry, repo, "1").digest == digest == get_manifest(plain_registry, repo, "latest").digest
    # the post-push validation read the image back from the registry (once: both tags are one image)
    sections = result["registry_findings"]
    assert len(sections) == 1 and tags[0] in next(iter(sections)), sections
    found = next(iter(sections.values()))
    assert not [f for f in found if f["severity"] == "error"], found
    # and says what the manager's rescan concludes for it: a kernel on linux/amd64
    (rescan,) = result["rescan"]
    assert rescan["reference"].startswith(tags[0]) and rescan["verdict"] == "kernel", rescan
    assert [(p["architecture"], p["manifest_digest"]) for p in rescan["platforms"]] == [("x86_64", digest)], rescan
    # progress went to stderr, one line per layer and state (plain lines: not a TTY)
    assert f"validate {tags[0]} from the registry: read in" in out.stderr, out.stderr[-3000:]
    assert any(f"push {tags[0]}: layer " in line and line.endswith(")") and "pushed" in line
               for line in out.stderr.splitlines()), out.stderr[-3000:]
    assert "\r" not in out.stderr


def test_push_text_report_names_the_pushed_tags_and_the_registry_findings(kernel_dir, plain_registry, engine_tags):
    tag = plain_registry.ref(f"x/text-{uuid.uuid4().hex[:8]}", "2")
    engine_tags.append(tag)
    out = _build(kernel_dir, "-t", tag, "--push", "--insecure")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"pushed {tag} (sha256:" in out.stdout
    after = out.stdout.split("validated from the registry:", 1)
    assert len(after) == 2 and tag in after[1], out.stdout
    assert f"rescan of {tag}" in after[1] and "linux/amd64 (x86_64): registered as a kernel image" in after[1], out.stdout
    assert f"push {tag}: layer " in out.stderr and f"push {tag}: manifest sha256:" in out.stderr


def test_unreachable_registry_is_exit_2_with_the_engines_message(kernel_dir, engine_tags):
    port = _unused_port()  # nothing listens there
    tag = f"127.0.0.1:{port}/x/unreachable:1"
    engine_tags.append(tag)
    out = _build(kernel_dir, "-t", tag, "--push")
    assert out.returncode == 2, (out.stdout[-2000:], out.stderr[-3000:])
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"bai-imagekit: error: pushing {tag} failed: "), out.stderr[-3000:]
    assert f"127.0.0.1:{port}" in last and "connection refused" in last.lower(), last
    # the build itself succeeded and said so before the push
    assert "built sha256:" in out.stdout


def _docker_config(directory, registry=None) -> dict[str, str]:
    """``DOCKER_CONFIG`` = *directory*, holding the registry's test credentials (or none)."""
    auths = {}
    if registry is not None:
        token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        auths[registry.address] = {"auth": token}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"auths": auths}))
    return {"DOCKER_CONFIG": str(directory)}


def test_push_without_credentials_is_exit_2_with_the_registrys_answer(kernel_dir, tls_registry, engine_tags, tmp_path):
    tag = tls_registry.ref("x/denied", "1")
    engine_tags.append(tag)
    out = _build(kernel_dir, "-t", tag, "--push", "--format", "json", env=_docker_config(tmp_path / "empty"))
    assert out.returncode == 2, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["ok"] is True and result["pushed"] == []
    assert result["push_error"] == f"pushing {tag} failed: no basic auth credentials", result["push_error"]
    assert out.stderr.strip().splitlines()[-1] == f"bai-imagekit: error: {result['push_error']}"


def test_push_with_credentials_from_the_docker_config(kernel_dir, tls_registry, engine_tags, tmp_path):
    """TLS + basic auth: the engine takes the credentials from ``$DOCKER_CONFIG/config.json`` (as
    ``docker push`` would), and the registry read-back uses the same config and the test CA.
    (The engine itself does not check the certificate: 127.0.0.0/8 registries are insecure to it.)"""
    repo = f"x/auth-{uuid.uuid4().hex[:8]}"
    tag = tls_registry.ref(repo, "1")
    engine_tags.append(tag)
    env = {**_docker_config(tmp_path / "creds", tls_registry), "SSL_CERT_FILE": str(tls_registry.ca_cert)}
    out = _build(kernel_dir, "-t", tag, "--push", "--format", "json", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert [p["reference"] for p in result["pushed"]] == [tag]
    assert get_manifest(tls_registry, repo, "1").digest == result["pushed"][0]["digest"]
    assert len(result["registry_findings"]) == 1 and tag in next(iter(result["registry_findings"]))


def test_push_needs_a_tag_and_refuses_digests(kernel_dir):
    out = _cli("build", str(kernel_dir), "--push")
    assert out.returncode == 2 and "--push needs at least one -t" in out.stderr
    out = _cli("build", str(kernel_dir), "--push", "-t", "127.0.0.1:1/x/y@sha256:" + "0" * 64)
    assert out.returncode == 2 and "push needs a tag" in out.stderr
