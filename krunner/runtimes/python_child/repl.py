"""Entry script of the query-mode REPL child (see ``__init__.py`` for the modules).

The runner starts this file with the image's own Python (3.8 or newer):
``<python> .../python_child/repl.py``, fds 3 and 4 wired as ``framing``
describes.  It loads this directory as the private package ``_krunner_child``
-- by path, so nothing depends on ``sys.path`` and no user module named like
one of ours (``display``, ``completion``...) is shadowed -- and runs
``mainloop.main()``.

Importing this file has no side effects beyond loading that package; it
re-exports the framing (``pack_frame``, ``FrameDecoder``) for code that loads
it by path.  Inside krunner, import ``krunner.runtimes.python_child.framing``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

PACKAGE = "_krunner_child"


def load_package() -> object:
    """Import this directory as the package ``_krunner_child`` (once)."""
    package = sys.modules.get(PACKAGE)
    if package is not None:
        return package
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        PACKAGE, os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    if spec is None or spec.loader is None:
        raise ImportError("cannot load the REPL modules from %s" % here)
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules[PACKAGE]
        raise
    return package


def _import(name: str) -> object:
    # The runner's directory may be a shared read-only volume: never write bytecode into it.
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        load_package()
        return importlib.import_module(PACKAGE + "." + name)
    finally:
        sys.dont_write_bytecode = dont_write


if __package__:  # imported as krunner.runtimes.python_child.repl
    from .framing import FrameDecoder, pack_frame
else:  # run as the entry script, or loaded by file path
    _framing = _import("framing")
    FrameDecoder = _framing.FrameDecoder  # type: ignore[misc]
    pack_frame = _framing.pack_frame  # type: ignore[assignment]

__all__ = ["FrameDecoder", "load_package", "pack_frame"]


if __name__ == "__main__":
    _import("mainloop").main()  # type: ignore[attr-defined]
