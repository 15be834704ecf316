"""Completion against the user namespace: names, attributes, modules and dict keys."""

from __future__ import annotations

import builtins
import keyword
import re
import sys
import threading
import time

MAX_SUGGESTIONS = 200
MODULE_CACHE_TTL = 30.0


_IMPORT_RE = re.compile(r"^\s*import\s+(?:[\w.]+(?:\s+as\s+\w+)?\s*,\s*)*([\w.]*)$")
_FROM_RE = re.compile(r"^\s*from\s+([\w.]*)$")
_FROM_IMPORT_RE = re.compile(
    r"^\s*from\s+([\w.]+)\s+import\s+\(?\s*(?:\w+(?:\s+as\s+\w+)?\s*,\s*)*(\w*)$"
)
_KEY_RE = re.compile(r"""([A-Za-z_][\w.]*)\s*\[\s*(['"])([^'"\\]*)$""")
_TOKEN_RE = re.compile(r"[\w.]*$")
_ATTR_RE = re.compile(r"^(\w+(?:\.\w+)*)\.(\w*)$")
_NO_SPACE_KEYWORDS = {"False", "None", "True", "break", "continue", "pass", "else", "_"}


class ModuleIndex:
    """Module names for import completion, cached for a short while."""

    def __init__(self, ttl: float = MODULE_CACHE_TTL) -> None:
        self._ttl = ttl
        self._names: list = []
        self._stamp = -1.0e9
        self._lock = threading.Lock()

    def top_level(self) -> list:
        with self._lock:
            if time.monotonic() - self._stamp > self._ttl:
                self._names = self._scan()
                self._stamp = time.monotonic()
            return self._names

    @staticmethod
    def _scan() -> list:
        import pkgutil

        names = set(sys.builtin_module_names)
        names.update(name for name in list(sys.modules) if "." not in name)
        for info in pkgutil.iter_modules():
            names.add(info.name)
        return sorted(name for name in names if name.isidentifier())

    def submodules(self, package: str) -> list:
        paths = _package_paths(package)
        if not paths:
            return []
        import pkgutil

        return sorted(info.name for info in pkgutil.iter_modules(paths))


def _package_paths(package: str) -> list:
    """Search locations of a package, without importing it if possible."""
    module = sys.modules.get(package)
    if module is not None:
        return list(getattr(module, "__path__", None) or [])
    import importlib.machinery
    import importlib.util

    parts = package.split(".")
    paths = None
    for index in range(len(parts)):
        fullname = ".".join(parts[: index + 1])
        if index == 0:
            spec = importlib.util.find_spec(fullname)
        else:
            spec = importlib.machinery.PathFinder.find_spec(fullname, paths)
        if spec is None or not spec.submodule_search_locations:
            return []
        paths = list(spec.submodule_search_locations)
    return paths or []


def _loaded_submodules(package: str) -> list:
    """Names of already imported modules directly below ``package``."""
    prefix = package + "."
    tails = [name[len(prefix):] for name in list(sys.modules) if name.startswith(prefix)]
    return [tail for tail in tails if tail and "." not in tail]


def _callable_suffix(value: object, word: str) -> str:
    try:
        return word + "(" if callable(value) else word
    except Exception:
        return word


class Completer:
    """Completion against the user namespace (safe to call from any thread)."""

    def __init__(self, namespace: dict, modules: ModuleIndex) -> None:
        self._namespace = namespace
        self._modules = modules

    def complete(self, code: str, cursor: object) -> list:
        if isinstance(cursor, int) and not isinstance(cursor, bool):
            code = code[: max(0, cursor)]
        line = code.split("\n")[-1]
        matches = self._match_line(line)
        return sorted(set(matches))[:MAX_SUGGESTIONS]

    def _match_line(self, line: str) -> list:
        match = _FROM_IMPORT_RE.match(line)
        if match:
            return self._from_import_matches(match.group(1), match.group(2))
        match = _IMPORT_RE.match(line) or _FROM_RE.match(line)
        if match:
            return self._module_matches(match.group(1))
        match = _KEY_RE.search(line)
        if match:
            return self._key_matches(match.group(1), match.group(3))
        token = _TOKEN_RE.search(line).group()
        if not token or token[0].isdigit():
            return []
        if "." in token:
            return self._attr_matches(token)
        return self._global_matches(token)

    def _module_matches(self, prefix: str) -> list:
        package, dot, stem = prefix.rpartition(".")
        if not dot:
            return [name for name in self._modules.top_level() if name.startswith(stem)]
        if not package or package.startswith("."):
            return []
        names = set(self._modules.submodules(package))
        names.update(_loaded_submodules(package))
        return [package + "." + name for name in names if name.startswith(stem)]

    def _from_import_matches(self, module_name: str, prefix: str) -> list:
        if module_name.startswith("."):
            return []
        names = set(self._modules.submodules(module_name))
        names.update(_loaded_submodules(module_name))
        module = sys.modules.get(module_name)
        if module is not None:
            names.update(dir(module))
        hide_private = not prefix.startswith("_")
        return [
            name
            for name in names
            if name.startswith(prefix) and not (hide_private and name.startswith("_"))
        ]

    def _lookup(self, dotted: str) -> object:
        parts = dotted.split(".")
        namespace = self._namespace
        if parts[0] in namespace:
            obj = namespace[parts[0]]
        elif hasattr(builtins, parts[0]):
            obj = getattr(builtins, parts[0])
        else:
            raise LookupError(parts[0])
        for part in parts[1:]:
            obj = _static_attr(obj, part)
        return obj

    def _key_matches(self, expr: str, prefix: str) -> list:
        try:
            obj = self._lookup(expr)
        except Exception:
            return []
        import collections.abc

        if not isinstance(obj, collections.abc.Mapping):
            return []
        matches = []
        for index, key in enumerate(list(obj.keys())):
            if index >= 100000:
                break
            if isinstance(key, str) and key.startswith(prefix):
                matches.append(key)
        return matches

    def _global_matches(self, text: str) -> list:
        matches = []
        seen = set()
        for word in keyword.kwlist + list(getattr(keyword, "softkwlist", [])):
            if word.startswith(text):
                seen.add(word)
                if word in ("finally", "try"):
                    word += ":"
                elif word not in _NO_SPACE_KEYWORDS:
                    word += " "
                matches.append(word)
        for space in (dict(self._namespace), dict(vars(builtins))):
            for word, value in space.items():
                if word.startswith(text) and word not in seen and word.isidentifier():
                    seen.add(word)
                    matches.append(_callable_suffix(value, word))
        return matches

    def _attr_matches(self, token: str) -> list:
        match = _ATTR_RE.match(token)
        if not match:
            return []
        expr, attr = match.group(1), match.group(2)
        try:
            obj = self._lookup(expr)
        except Exception:
            return []
        words = set(_safe_dir(obj))
        words.discard("__builtins__")
        if hasattr(obj, "__class__"):
            words.add("__class__")
            words.update(_class_members(type(obj)))
        if attr == "":
            hidden = "_"
        elif attr == "_":
            hidden = "__"
        else:
            hidden = None
        matches = []
        for word in words:
            if not word.startswith(attr) or (hidden and word.startswith(hidden)):
                continue
            matches.append(expr + "." + self._attr_word(obj, word))
        return matches

    @staticmethod
    def _attr_word(obj: object, word: str) -> str:
        if isinstance(_safe_getattr(type(obj), word), property):
            return word
        try:
            value = _static_attr(obj, word)
        except Exception:
            return word
        return _callable_suffix(value, word)


def _safe_getattr(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _static_attr(obj: object, name: str) -> object:
    """getattr() that refuses to run properties."""
    if isinstance(_safe_getattr(type(obj), name), property):
        raise LookupError(name)
    return getattr(obj, name)


def _safe_dir(obj: object) -> list:
    try:
        return [name for name in dir(obj) if isinstance(name, str)]
    except Exception:
        return []


def _class_members(cls: type) -> list:
    names = []
    for klass in getattr(cls, "__mro__", ()):
        names.extend(_safe_dir(klass))
    return names
