"""Which query engine serves which runtime: the one registry, beside the engines."""

from __future__ import annotations

from .base import QueryEngineBase
from .languages import Language, QueryEngine
from .python import PythonRepl
from .snippet import NoQuery, ShellQuery, SnippetQuery

ENGINES: dict[QueryEngine, type[QueryEngineBase]] = {
    QueryEngine.PYTHON_REPL: PythonRepl,
    QueryEngine.SNIPPET: SnippetQuery,
    QueryEngine.SHELL: ShellQuery,
    QueryEngine.NONE: NoQuery,
}


def engine_class(language: Language) -> type[QueryEngineBase]:
    return ENGINES[language.query_engine]
