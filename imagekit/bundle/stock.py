"""Upstream's runner as a stock Backend.AI agent deploys it, for ``bai-imagekit test --runner stock``.

A stock agent (26.9.x) runs kernels with three PyPI packages:

* ``backend.ai-krunner-static-gnu`` 4.4.0 – the volume ``backendai-krunner.v14.<arch>.static-gnu``
  (a relocatable CPython 3.13 and the runner's dependencies) at ``/opt/backend.ai``;
* ``backend.ai-kernel`` / ``backend.ai-kernel-helper`` 26.9.6 – the runner packages
  ``ai.backend.kernel`` and ``ai.backend.helpers``, bind-mounted over the volume's
  ``lib/python3.13/site-packages``;
* ``backend.ai-kernel-binary`` 26.9.6 – ``entrypoint.sh``, ``su-exec``, ``dropbearmulti``,
  ``sftp-server``, ``ttyd``, ``tmux`` and the dotfile/password helpers under ``/opt/kernel``.

``bai-imagekit krunner install --stock`` (an explicit set-up step: it downloads the wheels from
PyPI with pip and creates the volume) assembles exactly that in the cache directory;
:func:`stock_mount` then hands the harness a :class:`~imagekit.harness.krunner_mount.KrunnerMount`.
What a stock agent adds beyond the mounts (``LD_PRELOAD`` of ``libbaihook.so``, its seccomp
profile) is not reproduced; the agent-driven tests in ``tests/agent`` cover those.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import ARCH, VARIANT, cache_root, volume_name

STOCK_KRUNNER = "backend.ai-krunner-static-gnu==4.4.0"
STOCK_KERNEL = ("backend.ai-kernel==26.9.6", "backend.ai-kernel-helper==26.9.6")
STOCK_BINARY = "backend.ai-kernel-binary==26.9.6"
STOCK_PYTHON = "3.13"
#: /opt/kernel name → file in the kernel-binary wheel's ai/backend/runner/ ({arch} filled in)
KERNEL_TOOLS = {
    "entrypoint.sh": "entrypoint.sh",
    "su-exec": "su-exec.{arch}.bin",
    "dropbearmulti": "dropbearmulti.{arch}.bin",
    "sftp-server": "sftp-server.{arch}.bin",
    "ttyd": "ttyd_linux.{arch}.bin",
    "tmux": "tmux.{arch}.bin",
    "extract_dotfiles.py": "extract_dotfiles.py",
    "fantompass.py": "fantompass.py",
    "hash_phrase.py": "hash_phrase.py",
    "words.json": "words.json",
}
#: dotfiles the agent copies into every new /home/work (its ttyd runs `tmux attach`, which needs
#: the session that .tmux.conf creates)
HOME_FILES = (".bashrc", ".bash_profile", ".zshrc", ".vimrc", ".tmux.conf")
SITE_PACKAGES = f"/opt/backend.ai/lib/python{STOCK_PYTHON}/site-packages"


class StockRunnerMissing(RuntimeError):
    """The stock runner has not been installed (``bai-imagekit krunner install --stock``)."""


@dataclass(frozen=True)
class StockRunner:
    root: Path  # the cache directory
    volume: str
    kernel_tools: Path  # → /opt/kernel entries
    packages: Path  # holds ai/backend/{kernel,helpers}
    home_files: Path  # copied into /home/work


def default_cache_dir() -> Path:
    return cache_root() / "stock-runner"


def stock_volume_name(version: int = 14) -> str:
    return volume_name(version, ARCH, VARIANT)


def _download(requirements: list[str], into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
         "--only-binary=:all:", "--python-version", STOCK_PYTHON, "--platform", f"manylinux2014_{ARCH}",
         "-d", str(into), *requirements],
        capture_output=True, text=True, timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip download {' '.join(requirements)} failed:\n{proc.stderr[-3000:]}")
    return sorted(into.glob("*.whl"))


def _extract(wheel: Path, prefix: str, dest: Path) -> list[str]:
    names = []
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(prefix) and not name.endswith("/") and "__pycache__" not in name:
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                names.append(name)
    return names


def install_stock_runner(cache: Path | None = None, client=None, base_image: str | None = None) -> StockRunner:
    """Download upstream's packages, unpack the runner and tools, and create the volume (idempotent)."""
    from imagekit.bundle.volume import install_plain_volume

    root = Path(cache or default_cache_dir())
    marker = root / "installed.json"
    marker.unlink(missing_ok=True)
    wheels = _download([STOCK_KRUNNER, *STOCK_KERNEL, STOCK_BINARY], root / "wheels")
    by_name = {w.name.split("-")[0].lower(): w for w in wheels}
    packages, tools = root / "packages", root / "kernel-tools"
    shutil.rmtree(packages, ignore_errors=True)
    shutil.rmtree(tools, ignore_errors=True)
    for dist in ("backend_ai_kernel", "backend_ai_kernel_helper"):
        _extract(by_name[dist], "ai/backend/", packages)
    staging = root / "binary"
    shutil.rmtree(staging, ignore_errors=True)
    _extract(by_name["backend_ai_kernel_binary"], "ai/backend/runner/", staging)
    tools.mkdir(parents=True)
    for target, source in KERNEL_TOOLS.items():
        src = staging / "ai/backend/runner" / source.format(arch=ARCH)
        shutil.copy2(src, tools / target)
        (tools / target).chmod(0o755)
    home = root / "home-files"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    for name in HOME_FILES:
        shutil.copy2(staging / "ai/backend/runner" / name, home / name)
    krunner_pkg = root / "krunner"
    shutil.rmtree(krunner_pkg, ignore_errors=True)
    _extract(by_name["backend_ai_krunner_static_gnu"], "ai/backend/krunner/", krunner_pkg)
    pkg = krunner_pkg / "ai/backend/krunner/static_gnu"
    version = int((pkg / f"krunner-version.{VARIANT}.txt").read_text().strip())
    volume = stock_volume_name(version)
    install_plain_volume(pkg / f"krunner-env.{VARIANT}.{ARCH}.tar.xz", volume, str(version), client=client,
                         base_image=base_image)
    marker.write_text(json.dumps({"volume": volume}))
    return StockRunner(root=root, volume=volume, kernel_tools=tools, packages=packages / "ai/backend", home_files=home)


def find_stock_runner(cache: Path | None = None) -> StockRunner:
    """The installed stock runner; raises :class:`StockRunnerMissing` saying how to install it."""
    root = Path(cache or default_cache_dir())
    try:
        volume = json.loads((root / "installed.json").read_text())["volume"]
    except (OSError, ValueError, KeyError):
        raise StockRunnerMissing(
            f"the stock Backend.AI runner is not installed in {root}; run `bai-imagekit krunner install --stock` "
            f"(downloads {STOCK_KRUNNER}, {', '.join(STOCK_KERNEL)} and {STOCK_BINARY} from PyPI)"
        ) from None
    return StockRunner(root=root, volume=volume, kernel_tools=root / "kernel-tools",
                       packages=root / "packages/ai/backend", home_files=root / "home-files")


def stock_mount(runner: StockRunner):
    """The harness mount set of a stock agent: volume, runner packages over it, its /opt/kernel tools."""
    from imagekit.harness.krunner_mount import KrunnerMount

    return KrunnerMount(
        volume=runner.volume,
        overlays=[(runner.packages / "kernel", f"{SITE_PACKAGES}/ai/backend/kernel"),
                  (runner.packages / "helpers", f"{SITE_PACKAGES}/ai/backend/helpers")],
        kernel_dir=runner.kernel_tools,
        home_files=runner.home_files,
    )
