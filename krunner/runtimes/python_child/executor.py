"""Compiling and running cells in one persistent namespace, and the tracebacks they print."""

from __future__ import annotations

import ast
import builtins
import collections
import linecache
import os
import sys
import traceback
import types

from . import CHILD_DIR
from .display import Displayer
from .interrupts import InterruptGuard

CELL_PREFIX = "<cell "
_CO_COROUTINE = 0x0080
_TOP_LEVEL_AWAIT = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)


#: characters of cell source kept for tracebacks; the oldest cells' lines are dropped past this, so a
#: run of huge cells (a 10 MB generated script) does not stay in the REPL's memory for good
SOURCE_BUDGET = 4 << 20
_registered: collections.OrderedDict = collections.OrderedDict()


def _register_source(filename: str, source: str) -> None:
    lines = source.splitlines(True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    linecache.cache[filename] = (len(source), None, lines, filename)
    _registered[filename] = len(source)
    total = sum(_registered.values())
    while total > SOURCE_BUDGET and len(_registered) > 1:
        old, size = _registered.popitem(last=False)
        linecache.cache.pop(old, None)
        total -= size


def _future_flags(tree: ast.Module) -> int:
    import __future__

    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
    return flags


def _is_repl_frame(tb: types.TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    if not filename or filename.startswith("<"):
        return False
    return os.path.normcase(os.path.dirname(os.path.abspath(filename))) == CHILD_DIR


def trim_traceback(tb):
    """Drop the REPL's own frames; start at the first ``<cell N>`` frame."""
    start = tb
    while start is not None and not start.tb_frame.f_code.co_filename.startswith(CELL_PREFIX):
        start = start.tb_next
    if start is None:
        start = tb
    kept = []
    entry = start
    while entry is not None:
        if not _is_repl_frame(entry):
            kept.append(entry)
        entry = entry.tb_next
    if not kept:
        return None
    for current, following in zip(kept, kept[1:]):
        current.tb_next = following  # writable on every supported Python (3.8+)
    kept[-1].tb_next = None
    return kept[0]


def print_exception(exc: BaseException) -> None:
    stderr = sys.stderr or sys.__stderr__
    try:
        tb = trim_traceback(exc.__traceback__)
        lines = traceback.format_exception(type(exc), exc, tb)
        stderr.write("".join(lines))
    except Exception:
        stderr.write("%s: %s\n" % (type(exc).__name__, exc))


def _remember_last_exception(exc: BaseException) -> None:
    """Like the interactive interpreter, so that pdb.pm() works."""
    sys.last_type = type(exc)
    sys.last_value = exc
    sys.last_traceback = exc.__traceback__
    if sys.version_info >= (3, 12):
        sys.last_exc = exc  # type: ignore[attr-defined]


def print_syntax_error(exc: BaseException) -> None:
    stderr = sys.stderr or sys.__stderr__
    stderr.write("".join(traceback.format_exception_only(type(exc), exc)))


def system_exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)
    stderr = sys.stderr or sys.__stderr__
    try:
        stderr.write("%s\n" % (code,))
    except Exception:
        pass
    return 1


class CellExecutor:
    """Compiles and runs cells in one persistent namespace."""

    def __init__(self, namespace: dict, displayer: Displayer, guard: InterruptGuard) -> None:
        self._namespace = namespace
        self._displayer = displayer
        self._guard = guard
        self._cell_count = 0
        self._flags = 0
        self._loop = None

    def run(self, source: str) -> int:
        self._cell_count += 1
        filename = "<cell %d>" % self._cell_count
        _register_source(filename, source)
        try:
            body, last_expr = self._compile(source, filename)
        except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
            print_syntax_error(exc)
            return 1
        try:
            with self._guard.user_code():
                self._run_code(body)
                if last_expr is not None:
                    self._show_result(self._run_code(last_expr))
        except SystemExit as exc:
            return system_exit_code(exc)
        except BaseException as exc:
            _remember_last_exception(exc)
            print_exception(exc)
            return 1
        return 0

    def _compile(self, source: str, filename: str):
        base_flags = self._flags | _TOP_LEVEL_AWAIT
        tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST | base_flags, dont_inherit=True)
        self._flags |= _future_flags(tree)
        flags = self._flags | _TOP_LEVEL_AWAIT
        statements = tree.body
        last_expr = None
        if statements and isinstance(statements[-1], ast.Expr):
            last_expr = ast.Expression(body=statements[-1].value)
            statements = statements[:-1]
        module = ast.Module(body=statements, type_ignores=[])
        body = compile(module, filename, "exec", flags, dont_inherit=True)
        expr = None
        if last_expr is not None:
            expr = compile(last_expr, filename, "eval", flags, dont_inherit=True)
        return body, expr

    def _run_code(self, code: types.CodeType) -> object:
        if code.co_flags & _CO_COROUTINE:
            return self._run_coroutine(eval(code, self._namespace))
        return eval(code, self._namespace)

    def _run_coroutine(self, coroutine: object) -> object:
        import asyncio

        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        loop = self._loop
        task = loop.create_task(coroutine)  # type: ignore[arg-type]
        try:
            return loop.run_until_complete(task)
        except BaseException:
            if not task.done():
                task.cancel()
                try:
                    loop.run_until_complete(task)
                except BaseException:
                    pass
            raise

    def _show_result(self, value: object) -> None:
        if value is None:
            return
        builtins._ = value  # type: ignore[attr-defined]
        self._displayer.show(value)
