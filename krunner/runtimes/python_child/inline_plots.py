"""The matplotlib inline backend (only used if the user imports matplotlib)."""

from __future__ import annotations

import io
import os
import sys
import types

from .display import Displayer, image_payload

INLINE_BACKEND_MODULE = "_krunner_inline"


class InlinePlots:
    """Emits open matplotlib figures as PNG media events.

    The inline backend is an in-memory module named ``_krunner_inline``.  A
    tiny meta-path finder creates it on demand, i.e. only when matplotlib
    itself loads the backend, so matplotlib is never imported by the REPL.
    """

    def __init__(self, displayer: Displayer) -> None:
        self._displayer = displayer

    def install_backend(self) -> None:
        sys.meta_path.append(_InlineBackendFinder(self))
        if "MPLBACKEND" in os.environ:
            return
        os.environ["MPLBACKEND"] = "module://" + INLINE_BACKEND_MODULE
        # The backend module only exists in this process: keep the variable
        # visible to matplotlib here (os.environ) but out of the C environment
        # inherited by subprocesses, which could not import the backend.
        if hasattr(os, "unsetenv"):
            os.unsetenv("MPLBACKEND")

    def populate_backend(self, module: types.ModuleType) -> None:
        """Fill the backend module: Agg's public API plus our show()."""
        from matplotlib.backends import backend_agg

        for name, value in vars(backend_agg).items():
            if not name.startswith("_"):
                module.__dict__[name] = value

        def show(*args: object, **kwargs: object) -> None:
            self.flush_figures()

        def draw_if_interactive(*args: object, **kwargs: object) -> None:
            return None

        def __getattr__(name: str) -> object:
            return getattr(backend_agg, name)

        module.__doc__ = "krunner inline matplotlib backend (Agg + PNG media events)."
        module.show = show  # type: ignore[attr-defined]
        module.draw_if_interactive = draw_if_interactive  # type: ignore[attr-defined]
        module.__getattr__ = __getattr__  # type: ignore[attr-defined]

    def flush_figures(self) -> None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        try:
            for number in list(pyplot.get_fignums()):
                self._emit_figure(pyplot.figure(number))
        finally:
            pyplot.close("all")

    def _emit_figure(self, figure: object) -> None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")  # type: ignore[attr-defined]
        self._displayer.emit("image/png", image_payload("image/png", buffer.getvalue()))


class _InlineBackendFinder:
    """Meta-path finder/loader providing only the in-memory inline backend."""

    def __init__(self, plots: InlinePlots) -> None:
        self._plots = plots

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != INLINE_BACKEND_MODULE:
            return None
        import importlib.machinery

        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: object) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        self._plots.populate_backend(module)
