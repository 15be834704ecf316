"""``init --from``'s survey and the files it writes, over in-memory image filesystems (the Docker
path is tests/docker/test_init_from.py): a CUDA + conda image, an image without Python, notes."""

from __future__ import annotations

import posixpath
import tomllib
from pathlib import Path

from imagekit.adopt import survey_fs
from imagekit.adopt_files import decide, dockerfile_text, kernel_toml_text, survey_text
from imagekit.kernel_inputs import FileInfo
from imagekit.kernelspec import parse_spec

LDD = b"#!/bin/bash\necho 'ldd (Ubuntu GLIBC 2.35-0ubuntu3.8) 2.35'\n"


class MemFS:
    """path -> bytes (file), "dir", or ("link", target); executables by mode."""

    def __init__(self, files: dict[str, object], exe: set[str] = frozenset()) -> None:
        self.nodes: dict[str, object] = {"/": "dir"}
        self.exe = set(exe)
        for path, node in files.items():
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                self.nodes.setdefault("/" + "/".join(parts[:i]), "dir")
            self.nodes[path] = node

    def realpath(self, path: str) -> str | None:
        for _ in range(40):
            parts, out = path.strip("/").split("/"), "/"
            for i, part in enumerate(parts):
                out = posixpath.join(out, part)
                node = self.nodes.get(out)
                if isinstance(node, tuple):
                    target = node[1] if node[1].startswith("/") else posixpath.join(posixpath.dirname(out), node[1])
                    path = posixpath.normpath("/".join([target, *parts[i + 1:]]))
                    break
                if node is None:
                    return None
            else:
                return out
        return None

    def stat(self, path: str) -> FileInfo | None:
        real = self.realpath(path)
        if real is None:
            return None
        node = self.nodes[real]
        if node == "dir":
            return FileInfo(kind="dir", mode=0o755)
        return FileInfo(kind="file", mode=0o755 if real in self.exe else 0o644, size=len(node))

    def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes | None:
        real = self.realpath(path)
        node = self.nodes.get(real) if real else None
        return node[:limit] if isinstance(node, bytes) else None

    def listdir(self, path: str) -> list[str] | None:
        real = self.realpath(path)
        return sorted(p.rsplit("/", 1)[1] for p in self.nodes if p != "/" and posixpath.dirname(p) == real)


def _cuda_conda_image() -> MemFS:
    files = {
        "/etc/os-release": b'ID=ubuntu\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n',
        "/usr/bin/ldd": LDD,
        "/bin/bash": b"\x7fELF",
        "/lib64/ld-linux-x86-64.so.2": b"\x7fELF",
        "/opt/conda/bin/conda": b"#!/opt/conda/bin/python\n",
        "/opt/conda/bin/python3.11": b"\x7fELF",
        "/opt/conda/bin/python3": ("link", "python3.11"),
        "/opt/conda/conda-meta/history": b"==> 2024-05-01 <==\n+conda-forge/linux-64::python-3.11.9-hb806964_0_cpython\n",
        "/opt/conda/lib/python3.11/site-packages/jupyterlab/__init__.py": b"",
        "/opt/conda/lib/python3.11/site-packages/tensorboard/__init__.py": b"",
        "/usr/bin/python3.10": b"\x7fELF",
        "/usr/bin/python3": ("link", "python3.10"),
        "/usr/local/cuda/version.json": b'{"cuda": {"name": "CUDA SDK", "version": "12.4.1"}}',
        "/usr/local/cuda/lib64/libcudart.so.12": b"\x7fELF",
        "/usr/local/bin/code-server": b"#!/bin/sh\n",
        "/opt/nvidia/nvidia_entrypoint.sh": b"#!/bin/bash\nsource /etc/profile.d/env.sh\nexec \"$@\"\n",
        "/etc/passwd": b"root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n",
    }
    exe = {"/usr/bin/ldd", "/bin/bash", "/lib64/ld-linux-x86-64.so.2", "/opt/conda/bin/conda",
           "/opt/conda/bin/python3.11", "/usr/bin/python3.10", "/usr/local/bin/code-server",
           "/opt/nvidia/nvidia_entrypoint.sh"}
    return MemFS(files, exe)


CONFIG = {
    "Env": ["PATH=/opt/conda/bin:/usr/local/nvidia/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "CUDA_VERSION=12.4.1", "CONDA_DIR=/opt/conda"],
    "Entrypoint": ["/opt/nvidia/nvidia_entrypoint.sh"],
    "Cmd": None,
    "Labels": {"maintainer": "NVIDIA", "ai.backend.imagekit.base": "x"},
}


def test_survey_of_a_cuda_conda_image(tmp_path):
    found = survey_fs(_cuda_conda_image(), image="nvcr.example/pytorch:24.05", image_id="sha256:" + "a" * 64,
                      config=CONFIG)
    assert found.distro.os_release == "ubuntu22.04" and found.distro.libc == "glibc"
    assert found.distro.agent_distro == "ubuntu22.04" and "ldd --version" in found.distro.agent_probe
    conda_py, system_py = found.pythons
    assert (conda_py.path, conda_py.real_path, conda_py.version, conda_py.source) == (
        "/opt/conda/bin/python3", "/opt/conda/bin/python3.11", "3.11.9", "conda")
    assert conda_py.modules == ["jupyterlab", "tensorboard"]
    assert (system_py.path, system_py.version, system_py.source, system_py.modules) == ("/usr/bin/python3", "3.10", "path", [])
    assert [c.executable for c in found.conda] == ["/opt/conda/bin/conda"]
    assert found.cuda is not None and found.cuda.version == "12.4.1"
    assert any("libcudart.so.12" in e for e in found.cuda.evidence) and any("CUDA_VERSION" in e for e in found.cuda.evidence)
    assert found.config.entrypoint_chains is True
    assert [a.service for a in found.apps] == ["jupyterlab", "tensorboard", "code-server"]
    assert found.backend_labels == {}  # imagekit's own labels are not kernel labels
    messages = " ".join(n.message for n in found.notes)
    assert "user 'ubuntu' has uid 1000" in messages
    assert not any(n.severity == "warning" and n.topic == "entrypoint" for n in found.notes)  # it execs "$@"

    choices = decide(found)
    assert (choices.runtime_type, choices.runtime_path, choices.base_distro) == ("python", "/opt/conda/bin/python3", "ubuntu22.04")
    toml_text = kernel_toml_text(found, choices)
    assert ("# python: /opt/conda/bin/python3 -> /opt/conda/bin/python3.11 (3.11.9) in a conda install found; "
            "chosen because it has jupyterlab, tensorboard") in toml_text
    assert "# python: /usr/bin/python3 -> /usr/bin/python3.10 (3.10) in the image's PATH found\n" in toml_text
    assert "pinned to the os-release value" in toml_text
    # the written spec is a valid kernel.toml with the CUDA labels the label spec names
    spec_path = tmp_path / "kernel.toml"
    spec_path.write_text(toml_text)
    loaded = parse_spec(toml_text, Path(spec_path))
    assert loaded.labels["ai.backend.accelerators"] == "cuda"
    assert loaded.labels["ai.backend.resource.min.cuda.device"] == "1"
    assert loaded.labels["ai.backend.resource.min.cuda.shares"] == "0.1"
    assert loaded.labels["ai.backend.service-ports"] == "jupyterlab:http:8090,tensorboard:http:6006,code-server:http:8180"
    assert loaded.labels["ai.backend.runtime-path"] == "/opt/conda/bin/python3"
    dockerfile = dockerfile_text(found)
    assert "ARG BASE_IMAGE=nvcr.example/pytorch:24.05\nFROM ${BASE_IMAGE}\n" in dockerfile
    assert "USER root" not in dockerfile and "ubuntu (uid 1000)" in dockerfile
    assert "cuda:        12.4.1" in survey_text(found, choices)


def test_an_image_without_python_becomes_an_app_kernel(tmp_path):
    fs = MemFS({
        "/etc/os-release": b"ID=debian\nVERSION_ID=12\n",
        "/usr/bin/ldd": b"#!/bin/bash\necho 'ldd (Debian GLIBC 2.36-9+deb12u4) 2.36'\n",
        "/bin/bash": b"\x7fELF",
        "/lib64/ld-linux-x86-64.so.2": b"\x7fELF",
        "/usr/bin/busybox": b"\x7fELF ... httpd ...",
        "/srv/run.sh": b"#!/bin/sh\n/usr/bin/server --daemon\nsleep infinity\n",
        "/etc/passwd": b"root:x:0:0:root:/root:/bin/bash\n",
    }, {"/usr/bin/ldd", "/bin/bash", "/lib64/ld-linux-x86-64.so.2", "/usr/bin/busybox", "/srv/run.sh"})
    found = survey_fs(fs, image="my/app:1", image_id="sha256:" + "b" * 64,
                      config={"Entrypoint": ["/srv/run.sh"], "User": "1001:1001",
                              "Labels": {"ai.backend.base-distro": "ubuntu22.04"}})
    assert found.pythons == [] and found.cuda is None
    assert found.config.entrypoint_chains is False
    assert [a.service for a in found.apps] == ["static-files"]
    assert found.backend_labels == {"ai.backend.base-distro": "ubuntu22.04"}
    warnings = {n.topic for n in found.notes if n.severity == "warning"}
    assert warnings == {"entrypoint", "user", "labels"}
    choices = decide(found, ["jupyterlab"])
    assert (choices.runtime_type, choices.runtime_path) == ("app", None)
    assert choices.base_distro == "ubuntu22.04"  # the image's own label is kept
    assert [a.service for a in choices.services] == ["static-files", "jupyterlab"]
    text = kernel_toml_text(found, choices)
    spec = tomllib.loads(text)
    assert spec["kernel"]["runtime-type"] == "app" and "runtime-path" not in spec["kernel"]
    assert spec["kernel"]["features"] == ["uid-match"]
    assert "kept the image's own label ubuntu22.04" in text and "jupyterlab: asked for with --service" in text
    dockerfile = dockerfile_text(found)
    assert "USER root" in dockerfile and '/srv/run.sh does not exec "$@"' in dockerfile
