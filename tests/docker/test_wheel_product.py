"""The installed wheel, a fresh venv and an empty directory: the whole user path with Docker.

``init``, then ``test`` says what is missing (exit 2) before ``krunner build`` and ``krunner install``
have run, then ``build``, ``validate`` and ``test`` pass.  No checkout is visible to the venv (no
``PYTHONPATH``, working directory outside the repository); the bundle's inputs are the wheel's own
``krunner`` package.  The base image is the local debootstrap one (``--base-image``: nothing is
pulled), the web terminal assets and CA bundle are the test set-up's, and the bundle goes to the
test set-up's bundle directory: the build is cached by its inputs hash, so when the wheel's sources
equal the working tree's it is reused (``(cached)``), otherwise this is a real build of a few minutes.
"""

from __future__ import annotations

import json

import docker
import pytest

from tests.wheel_venv import install_wheel, run, user_env

pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

TAG = "bai-test/wheel-product:latest"


@pytest.fixture(scope="module")
def product(localenv, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel-product")
    return install_wheel(tmp) / "bai-imagekit", tmp


def test_installed_wheel_builds_installs_and_tests(product, krunner_bundle):
    from imagekit.bundle import manifest_name
    from imagekit.localenv.base_image import ensure_base_image
    from imagekit.localenv.checkout import BUNDLE_DIR
    from imagekit.localenv.krunner_dev import host_ca_bundle
    from imagekit.localenv.webterm_assets import ensure_webterm_assets

    cli, tmp = product
    cli = str(cli)
    base = ensure_base_image()
    work = tmp / "work"
    work.mkdir()
    env = user_env(XDG_CACHE_HOME=str(tmp / "xdg-cache"))
    run([cli, "init", "mykernel", "--runtime", "python"], work, env)

    # before `krunner build`: nothing in the user's cache, and `test` says so
    missing = run([cli, "test", TAG], work, env, expect=2)
    shown = " ".join(missing.stderr.split())
    assert f"{tmp / 'xdg-cache'}/bai-imagekit/krunner-bundle/{manifest_name()} is missing" in shown, shown
    assert "bai-imagekit krunner build" in shown and "bai-imagekit krunner install" in shown, shown

    # a bundle whose volume is not installed: `test` names the volume and `krunner install`
    stale = tmp / "stale-bundle"
    (stale / "kernel").mkdir(parents=True)
    manifest = json.loads((BUNDLE_DIR / manifest_name()).read_text())
    manifest["volume_version"] = 1000000007  # no volume of that name exists
    (stale / manifest_name()).write_text(json.dumps(manifest))
    out = run([cli, "test", TAG], work, {**env, "BAI_IMAGEKIT_BUNDLE_DIR": str(stale)}, expect=2)
    shown = " ".join(out.stderr.split())
    assert "backendai-krunner.v1000000007.x86_64.static-gnu" in shown and "is not on the engine" in shown, shown
    assert shown.endswith("Run `bai-imagekit krunner install`"), shown  # that directory is the default one here

    # the explicit set-up steps, into the test set-up's bundle directory (cached by inputs hash)
    bundle_env = {**env, "BAI_IMAGEKIT_BUNDLE_DIR": str(BUNDLE_DIR)}
    argv = [cli, "krunner", "build", "--base-image", base, "--webterm-assets", str(ensure_webterm_assets())]
    ca = host_ca_bundle()
    if ca is not None:
        argv += ["--ca-bundle", str(ca)]
    built = run(argv, work, bundle_env, timeout=1800)
    print("krunner build from the wheel:", built.stderr.strip().splitlines()[-1])
    assert built.stdout.strip().endswith(".tar.xz")
    installed = run([cli, "krunner", "install", "--base-image", base], work, bundle_env)
    volume = installed.stdout.strip()
    assert volume.startswith("backendai-krunner.v") and volume.endswith(".x86_64.static-gnu")
    client = docker.from_env()
    assert client.volumes.get(volume)

    try:
        run([cli, "build", "mykernel", "-t", TAG, "--build-arg", f"BASE_IMAGE={base}"], work, bundle_env, timeout=900)
        validated = run([cli, "validate", TAG, "--format", "json"], work, bundle_env, expect=None)
        assert validated.returncode == 0, validated.stdout[-3000:] + validated.stderr[-3000:]
        tested = run([cli, "test", TAG], work, bundle_env, timeout=900, expect=None)
        assert tested.returncode == 0, tested.stdout[-5000:] + tested.stderr[-3000:]
        assert f"== {TAG}: passed" in tested.stdout, tested.stdout
        assert "PASS service hello" in tested.stdout and "PASS intrinsic web terminal" in tested.stdout, tested.stdout
    finally:
        try:
            client.images.remove(TAG, force=True)
        except docker.errors.ImageNotFound:
            pass
