"""ImageFS over a real image: files are read from a created (never started) container."""

from __future__ import annotations

import io
import tarfile
import uuid

import pytest

from imagekit.findings import Severity
from imagekit.imagefs import LABEL, open_image_fs
from imagekit.kernel_inputs import KernelInputs
from imagekit.rules import image_contents

pytestmark = pytest.mark.docker

DOCKERFILE = """\
FROM bai-local/debian:bookworm
RUN set -e; \\
    mkdir -p /opt/app/bin /etc/backend.ai/service-defs /etc/backend.ai/jail; \\
    printf '#!/bin/sh\\necho hi\\n' > /opt/app/bin/tool-1.0; chmod 755 /opt/app/bin/tool-1.0; \\
    ln -s tool-1.0 /opt/app/bin/tool; \\
    ln -s /opt/app/bin/tool /usr/local/bin/tool; \\
    printf 'data\\n' > /opt/app/data.txt; \\
    ln -s ../data.txt /opt/app/bin/up; \\
    ln -s /opt/app/bin /opt/alias; \\
    ln -s loop-b /opt/loop-a; ln -s loop-a /opt/loop-b; \\
    ln -s /nonexistent/file /opt/dangling; \\
    printf '{"command": ["true"]}' > /etc/backend.ai/service-defs/ok.json; chmod 644 /etc/backend.ai/service-defs/ok.json; \\
    printf '{}' > /etc/backend.ai/service-defs/secret.json; chmod 600 /etc/backend.ai/service-defs/secret.json; \\
    printf 'x: 1\\n' > /etc/backend.ai/jail/policy.yml; chmod 600 /etc/backend.ai/jail/policy.yml
LABEL ai.backend.runtime-path=/usr/local/bin/tool ai.backend.base-distro=ubuntu22.04
"""


@pytest.fixture(scope="module")
def client(localenv):
    from imagekit.localenv.engine import ensure_engine

    return ensure_engine()


@pytest.fixture(scope="module")
def fs_image(client):
    tag = f"bai-test/imagefs:{uuid.uuid4().hex[:8]}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True, forcerm=True,
                        network_mode="none")  # fmt: skip
    try:
        yield tag
    finally:
        client.images.remove(tag, force=True)


def _scratch_containers(client) -> list:
    return client.containers.list(all=True, filters={"label": LABEL})


def test_reads_stat_and_listdir(client, fs_image):
    before = _scratch_containers(client)
    with open_image_fs(client, fs_image) as fs:
        (scratch,) = [c for c in _scratch_containers(client) if c not in before]
        assert scratch.status == "created"  # never started

        # a chain: absolute link -> relative link -> file
        assert fs.read_bytes("/usr/local/bin/tool") == b"#!/bin/sh\necho hi\n"
        info = fs.stat("/usr/local/bin/tool")
        assert info is not None and info.kind == "file" and info.executable and info.mode == 0o755
        assert fs.realpath("/usr/local/bin/tool") == "/opt/app/bin/tool-1.0"
        # '..' in a relative target resolves from the link's real directory, not the alias
        assert fs.read_bytes("/opt/alias/up") == b"data\n"
        assert fs.read_bytes("/opt/alias/tool-1.0", limit=4) == b"#!/b"
        # merged-/usr links and the shell
        assert fs.realpath("/bin/sh") == "/usr/bin/dash" and fs.stat("/bin/sh").executable
        # loops and dangling links read as missing, stat as "symlink"
        assert fs.stat("/opt/loop-a").kind == "symlink" and fs.read_bytes("/opt/loop-a") is None
        assert fs.stat("/opt/dangling").kind == "symlink" and fs.read_bytes("/opt/dangling") is None
        assert fs.stat("/opt/nothing") is None and fs.read_bytes("/opt/nothing") is None
        assert fs.stat("/etc/hostname/below-a-file") is None
        # the non-readable file: root can read it, the mode says others cannot
        secret = fs.stat("/etc/backend.ai/service-defs/secret.json")
        assert secret.kind == "file" and secret.mode == 0o600
        assert fs.listdir("/etc/backend.ai/service-defs") == ["ok.json", "secret.json"]
        assert fs.listdir("/opt/alias") == ["tool", "tool-1.0", "up"]
        assert fs.listdir("/usr/local/bin/tool") is None
        assert fs.stat("/opt/app").kind == "dir"
    assert _scratch_containers(client) == before


def test_container_removed_on_error(client, fs_image):
    before = _scratch_containers(client)
    with pytest.raises(RuntimeError):
        with open_image_fs(client, fs_image):
            raise RuntimeError("boom")
    assert _scratch_containers(client) == before


def test_image_contents_rules_on_real_image(client, fs_image):
    labels = client.images.get(fs_image).labels
    with open_image_fs(client, fs_image) as fs:
        findings = image_contents.check(KernelInputs(target=fs_image, labels=labels, image_fs=fs))
    got = {(f.rule, f.location.file if f.location else None, f.severity) for f in findings}
    assert got == {
        ("BAI303", fs_image, Severity.INFO),  # ubuntu22.04 standing in for debian12
        ("BAI311", "/etc/backend.ai/service-defs/secret.json", Severity.ERROR),
        ("BAI312", "/etc/backend.ai/jail/policy.yml", Severity.WARNING),
    }, findings
    # and a broken runtime path is seen through the symlink chain
    with open_image_fs(client, fs_image) as fs:
        bad = image_contents.check(KernelInputs(target=fs_image, labels={**labels, "ai.backend.runtime-path": "/opt/dangling"},
                                                image_fs=fs))  # fmt: skip
    assert "BAI301" in {f.rule for f in bad}
