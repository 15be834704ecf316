"""``krunner package``: the bundle as a wheel that a stock Backend.AI agent installs as its krunner.

A stock agent (``backend.ai-agent`` 26.x) finds its kernel runners through Python
entry points of group :data:`ENTRY_POINT_GROUP`. For an entry point named ``N``
it reads the package ``ai.backend.krunner.N``:

* ``versions.txt`` – the variants it provides, one a line (``static-gnu``);
* ``krunner-version.<variant>.txt`` – the integer in the volume name;
* ``krunner-python.<variant>.txt`` – the ``X.Y`` under which it bind-mounts its own runner
  packages (``lib/pythonX.Y/site-packages/ai/backend/{kernel,helpers}``);
* ``krunner-env.<variant>.<arch>.tar.xz`` – the volume content, extracted with its own
  extractor image into ``backendai-krunner.v<version>.<arch>.<variant>``.

The agent pins ``backend.ai-krunner-static-gnu`` and reads the Python version from the
module ``ai.backend.krunner.static_gnu`` whatever package provided the volume, so the
wheel *is* that distribution, with a local version label (``4.4.0+bai.v<N>``): pip
replaces the stock package in place, the agent's pin still holds (a local label is ignored
when matching ``==4.4.0``), and reinstalling the stock version rolls back.
See docs/krunner-volume.md ("Installing into a Backend.AI agent").
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import ARCH, VARIANT, tarball_name, volume_name
from .manifest import Manifest

ENTRY_POINT_GROUP = "backendai_krunner_v10"
DISTRIBUTION = "backend.ai-krunner-static-gnu"
#: the version of DISTRIBUTION that backend.ai-agent 26.9.x pins
DEFAULT_BASE_VERSION = "4.4.0"
#: manylinux2014 ⇔ the platform tags the stock wheel carries for Linux
PLATFORM_TAGS = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}

PLUGIN_SOURCE = '''"""Entry point of the bai-kernel-toolkit krunner for Backend.AI agents (group {group})."""

from typing import Any, Mapping


async def init(config: Mapping[str, Any]) -> None:
    """Called by the agent when it loads the entry point; there is nothing to set up."""
'''


@dataclass(frozen=True)
class AgentPackage:
    wheel: Path
    version: str
    volume: str
    agent_python: str


def module_name(variant: str = VARIANT) -> str:
    """``static-gnu`` → ``static_gnu`` (the entry point name and the package under ai.backend.krunner)."""
    return variant.replace("-", "_")


def package_version(manifest: Manifest, base_version: str = DEFAULT_BASE_VERSION) -> str:
    return f"{base_version}+bai.v{manifest.volume_version}"


def wheel_name(version: str, arch: str = ARCH) -> str:
    dist = DISTRIBUTION.replace("-", "_").replace(".", "_")
    return f"{dist}-{version}-py3-none-{PLATFORM_TAGS[arch]}.whl"


def _package_files(manifest: Manifest, tarball: Path, version: str) -> dict[str, bytes | Path]:
    variant, pkg = manifest.variant, f"ai/backend/krunner/{module_name(manifest.variant)}"
    return {
        f"{pkg}/__init__.py": (
            f'"""The bai-kernel-toolkit krunner bundle ({variant}), packaged for Backend.AI agents."""\n\n'
            f'__version__ = "{version}"\n'
            f'BUNDLE_VERSION = "{manifest.version}"\n'
            f'VOLUME = "{volume_name(manifest.volume_version, manifest.arch, variant)}"\n'
        ).encode(),
        f"{pkg}/plugin.py": PLUGIN_SOURCE.format(group=ENTRY_POINT_GROUP).encode(),
        f"{pkg}/versions.txt": f"{variant}\n".encode(),
        f"{pkg}/krunner-version.{variant}.txt": f"{manifest.volume_version}\n".encode(),
        f"{pkg}/krunner-python.{variant}.txt": f"{manifest.agent_python}\n".encode(),
        f"{pkg}/krunner-env.{variant}.{manifest.arch}.manifest.json": manifest.text.encode(),
        f"{pkg}/{tarball_name(variant, manifest.arch)}": tarball,
    }


def _metadata(version: str, manifest: Manifest) -> dict[str, bytes]:
    info = f"{DISTRIBUTION.replace('-', '_').replace('.', '_')}-{version}.dist-info"
    metadata = (
        "Metadata-Version: 2.1\n"
        f"Name: {DISTRIBUTION}\n"
        f"Version: {version}\n"
        "Summary: bai-kernel-toolkit krunner (self-contained, runs in any image) for Backend.AI agents; "
        f"replaces the stock {DISTRIBUTION}\n"
        "License: MIT\n"
        "Requires-Python: >=3.8\n"
        f"\nkrunner bundle {manifest.version}; volume "
        f"{volume_name(manifest.volume_version, manifest.arch, manifest.variant)}.\n"
    )
    wheel = (
        "Wheel-Version: 1.0\n"
        "Generator: bai-imagekit krunner package\n"
        "Root-Is-Purelib: true\n"
        f"Tag: py3-none-{PLATFORM_TAGS[manifest.arch]}\n"
    )
    entry_points = (
        f"[{ENTRY_POINT_GROUP}]\n"
        f"{module_name(manifest.variant)} = ai.backend.krunner.{module_name(manifest.variant)}.plugin\n"
    )
    return {
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": wheel.encode(),
        f"{info}/entry_points.txt": entry_points.encode(),
        f"{info}/top_level.txt": b"ai\n",
    }


def _record_line(name: str, data: bytes | Path) -> str:
    digest = hashlib.sha256()
    size = 0
    if isinstance(data, Path):
        with open(data, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    else:
        digest.update(data)
        size = len(data)
    b64 = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    return f"{name},sha256={b64},{size}"


def build_agent_package(
    tarball: Path, output_dir: Path, *, base_version: str = DEFAULT_BASE_VERSION
) -> AgentPackage:
    """Write the wheel for *tarball* into *output_dir*; raises ManifestError for a bad tarball."""
    manifest = Manifest.from_tarball(tarball)
    if manifest.arch not in PLATFORM_TAGS:
        raise ValueError(f"no wheel platform tag for architecture {manifest.arch!r}")
    version = package_version(manifest, base_version)
    files: dict[str, bytes | Path] = {**_package_files(manifest, Path(tarball), version), **_metadata(version, manifest)}
    info = next(name.split("/")[0] for name in files if name.endswith(".dist-info/WHEEL"))
    output_dir.mkdir(parents=True, exist_ok=True)
    wheel = output_dir / wheel_name(version, manifest.arch)
    partial = wheel.with_name(wheel.name + ".part")
    records = []
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            # the tarball is xz already; storing it keeps packaging fast
            kind = zipfile.ZIP_STORED if isinstance(data, Path) else zipfile.ZIP_DEFLATED
            if isinstance(data, Path):
                zf.write(data, name, compress_type=kind)
            else:
                zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data, compress_type=kind)
            records.append(_record_line(name, data))
        records.append(f"{info}/RECORD,,")
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0)), "\n".join(records) + "\n")
    partial.replace(wheel)
    return AgentPackage(
        wheel=wheel, version=version,
        volume=volume_name(manifest.volume_version, manifest.arch, manifest.variant),
        agent_python=manifest.agent_python,
    )
