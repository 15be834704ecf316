"""ttyd's message format over the ``tty`` WebSocket subprotocol (pure functions).

Client → server: the first message is the JSON ``{"AuthToken": ..., "columns": C,
"rows": R}``; every later message is one ASCII command byte followed by its
argument: ``'0'`` INPUT (raw bytes), ``'1'`` RESIZE_TERMINAL (JSON ``{"columns",
"rows"}``), ``'2'`` PAUSE, ``'3'`` RESUME.

Server → client (binary frames): ``'0'`` OUTPUT (pty bytes), ``'1'``
SET_WINDOW_TITLE (text), ``'2'`` SET_PREFERENCES (JSON object).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

SUBPROTOCOL = "tty"

# client -> server
INPUT = ord("0")
RESIZE_TERMINAL = ord("1")
PAUSE = ord("2")
RESUME = ord("3")

# server -> client
OUTPUT = ord("0")
SET_WINDOW_TITLE = ord("1")
SET_PREFERENCES = ord("2")

MIN_SIZE, MAX_SIZE = 1, 10_000
DEFAULT_COLUMNS, DEFAULT_ROWS = 80, 24


class ProtocolError(ValueError):
    """A client message that does not follow the protocol (log it and ignore it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Auth:
    token: str
    columns: int
    rows: int


@dataclasses.dataclass(frozen=True, slots=True)
class Input:
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Resize:
    columns: int
    rows: int


@dataclasses.dataclass(frozen=True, slots=True)
class Pause:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Resume:
    pass


ClientMessage = Input | Resize | Pause | Resume


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _dimension(obj: dict[str, Any], key: str, default: int | None, what: str) -> int:
    value = obj.get(key, default)
    if value is None:
        raise ProtocolError(f"{what}: missing {key!r}")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ProtocolError(f"{what}: {key!r} must be a number, got {value!r}")
    size = int(value)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ProtocolError(f"{what}: {key!r}={size} is out of range {MIN_SIZE}..{MAX_SIZE}")
    return size


def decode_auth(data: bytes) -> Auth:
    """The first client message.  Missing sizes default to 80x24 (like ttyd)."""
    obj = _json_object(data, "auth message")
    token = obj.get("AuthToken", "")
    if not isinstance(token, str):
        raise ProtocolError("auth message: 'AuthToken' must be a string")
    return Auth(
        token=token,
        columns=_dimension(obj, "columns", DEFAULT_COLUMNS, "auth message"),
        rows=_dimension(obj, "rows", DEFAULT_ROWS, "auth message"),
    )


def decode_client_message(data: bytes) -> ClientMessage:
    """A command message sent after the auth message."""
    if not data:
        raise ProtocolError("empty message")
    command, rest = data[0], data[1:]
    if command == INPUT:
        return Input(rest)
    if command == RESIZE_TERMINAL:
        obj = _json_object(rest, "resize message")
        return Resize(
            columns=_dimension(obj, "columns", None, "resize message"),
            rows=_dimension(obj, "rows", None, "resize message"),
        )
    if command == PAUSE:
        return Pause()
    if command == RESUME:
        return Resume()
    raise ProtocolError(f"unknown command byte {bytes([command])!r}")


def encode_output(data: bytes) -> bytes:
    return bytes([OUTPUT]) + data


def encode_title(title: str) -> bytes:
    return bytes([SET_WINDOW_TITLE]) + title.encode("utf-8", errors="replace")


def encode_preferences(preferences: dict[str, Any] | None = None) -> bytes:
    return bytes([SET_PREFERENCES]) + json.dumps(preferences or {}, separators=(",", ":")).encode()


# -- client side (used by tests and tools) ----------------------------------------------------


def encode_auth(columns: int, rows: int, token: str = "") -> bytes:
    return json.dumps({"AuthToken": token, "columns": columns, "rows": rows}).encode()


def encode_input(data: bytes | str) -> bytes:
    return bytes([INPUT]) + (data.encode() if isinstance(data, str) else data)


def encode_resize(columns: int, rows: int) -> bytes:
    return bytes([RESIZE_TERMINAL]) + json.dumps({"columns": columns, "rows": rows}).encode()


def encode_pause() -> bytes:
    return bytes([PAUSE])


def encode_resume() -> bytes:
    return bytes([RESUME])


def decode_server_message(data: bytes) -> tuple[int, bytes]:
    """``(command byte, payload)`` of a server message."""
    if not data:
        raise ProtocolError("empty server message")
    if data[0] not in (OUTPUT, SET_WINDOW_TITLE, SET_PREFERENCES):
        raise ProtocolError(f"unknown server command byte {data[:1]!r}")
    return data[0], data[1:]
