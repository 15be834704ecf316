"""sitecustomize for batch programs run by krunner.

The runner puts this directory first on PYTHONPATH for batch ``exec`` steps.
When ``_BACKEND_BATCH_MODE`` is a non-zero integer, ``input()`` and
``getpass.getpass()`` ask the runner for user input over an AF_UNIX socket.
Afterwards the image's own ``sitecustomize`` (if any) is executed as well.

Runs under the image's Python (3.8+): standard library only.
"""

from __future__ import annotations

import builtins
import os
import sys

DEFAULT_INPUT_SOCKET = "/tmp/bai-user-input.sock"


def _batch_mode_enabled() -> bool:
    try:
        return int(os.environ.get("_BACKEND_BATCH_MODE", "0").strip()) != 0
    except ValueError:
        return False


def _write_prompt(prompt: str) -> None:
    stdout = sys.stdout
    if stdout is None:
        return
    stdout.write(prompt)
    stdout.flush()


def _receive_all(sock: object) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)  # type: ignore[attr-defined]
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _request_input(prompt: str, password: bool) -> str:
    import json
    import socket

    _write_prompt(prompt)
    path = os.environ.get("BACKENDAI_INPUT_SOCKET", DEFAULT_INPUT_SOCKET)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(path)
        except OSError:
            raise EOFError("user input is not available") from None
        request = json.dumps({"prompt": prompt, "password": password}) + "\n"
        sock.sendall(request.encode("utf-8"))
        text = _receive_all(sock).decode("utf-8", "replace")
    finally:
        sock.close()
    return text[:-1] if text.endswith("\n") else text


def _batch_input(prompt: object = "") -> str:
    return _request_input(str(prompt), False)


def _batch_getpass(prompt: str = "Password: ", stream: object = None) -> str:
    return _request_input(str(prompt), True)


def _install_input_hooks() -> None:
    import getpass

    builtins.input = _batch_input
    getpass.getpass = _batch_getpass


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _chain_image_sitecustomize() -> None:
    """Run the next ``sitecustomize`` on sys.path (the image's own one)."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    search_path = [entry for entry in sys.path if not _same_file(entry or os.curdir, here)]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", search_path)
    if spec is None or spec.loader is None:
        return
    if spec.origin and _same_file(spec.origin, os.path.abspath(__file__)):
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def _main() -> None:
    if _batch_mode_enabled():
        try:
            _install_input_hooks()
        except Exception as exc:
            sys.stderr.write("krunner sitecustomize: cannot patch input(): %r\n" % (exc,))
    try:
        _chain_image_sitecustomize()
    except Exception:
        import traceback

        sys.stderr.write("Error in the image's sitecustomize:\n")
        traceback.print_exc()


_main()
