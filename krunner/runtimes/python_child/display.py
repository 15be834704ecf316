"""display() and the last-expression display: the ``_repr_*_`` protocol as ``media`` events."""

from __future__ import annotations

import base64
import json
import sys

from .channel import ControlChannel

MIME_PREFERENCE = (
    "image/png",
    "image/jpeg",
    "image/svg+xml",
    "text/html",
    "text/markdown",
    "text/latex",
    "application/json",
)
_REPR_METHODS = (
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("image/svg+xml", "_repr_svg_"),
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
)
_TEXT_MIMES = ("image/svg+xml", "text/html", "text/markdown", "text/latex")
_IMAGE_MIMES = ("image/png", "image/jpeg")


def safe_getattr(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _call_repr(method: object, *args: object, **kwargs: object) -> object:
    if not callable(method):
        return None
    try:
        result = method(*args, **kwargs)
    except Exception:
        return None
    if isinstance(result, tuple) and len(result) == 2:
        result = result[0]  # (data, metadata)
    return result


def collect_mimebundle(obj: object) -> dict:
    """Gather every representation the object offers, keyed by MIME type."""
    bundle: dict = {}
    data = _call_repr(safe_getattr(obj, "_repr_mimebundle_"), include=None, exclude=None)
    if isinstance(data, dict):
        bundle.update(data)
    for mime, method_name in _REPR_METHODS:
        if mime in bundle:
            continue
        value = _call_repr(safe_getattr(obj, method_name))
        if value is not None:
            bundle[mime] = value
    return bundle


def image_payload(mime: str, value: object):
    if isinstance(value, (bytes, bytearray, memoryview)):
        encoded = base64.b64encode(bytes(value)).decode("ascii")
    elif isinstance(value, str):
        encoded = "".join(value.split())
    else:
        return None
    return "data:%s;base64,%s" % (mime, encoded)


def _media_payload(mime: str, value: object):
    """Convert a bundle value to the event payload, or None if unusable."""
    if value is None:
        return None
    if mime in _IMAGE_MIMES:
        return image_payload(mime, value)
    if mime in _TEXT_MIMES:
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value if isinstance(value, str) else None
    if mime == "application/json":
        if isinstance(value, (bytes, str)):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            return None
        return value
    return None


def select_rich_output(bundle: dict):
    """Pick the preferred supported (mime, payload) pair, or None."""
    for mime in MIME_PREFERENCE:
        payload = _media_payload(mime, bundle.get(mime))
        if payload is not None:
            return mime, payload
    return None


class Displayer:
    """Implements display() and the last-expression display."""

    def __init__(self, channel: ControlChannel) -> None:
        self._channel = channel

    def display(self, *objs: object) -> None:
        for obj in objs:
            self.show(obj)

    def show(self, obj: object) -> None:
        bundle = collect_mimebundle(obj)
        rich = select_rich_output(bundle)
        if rich is not None:
            mime, payload = rich
            self.emit(mime, payload)
            return
        text = bundle.get("text/plain")
        if not isinstance(text, str):
            text = repr(obj)
        stdout = sys.stdout
        if stdout is not None:
            stdout.write(text + "\n")

    def emit(self, mime: str, payload: object) -> None:
        self._channel.send({"ev": "media", "type": mime, "data": payload})
