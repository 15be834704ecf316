"""The two channels between the runner and the REPL child, and their framing.

File descriptors (set up by the parent runner):

* fd 0: /dev/null
* fd 1 / fd 2: the user's stdout / stderr (pipes read by the parent)
* fd 3: control channel, child -> parent (events)
* fd 4: command channel, parent -> child (commands)

Both channels carry frames made of a 4-byte big-endian length followed by a
UTF-8 encoded JSON object.  The runner imports this module too.
"""

from __future__ import annotations

import json
import struct

CONTROL_FD = 3
COMMAND_FD = 4
MAX_FRAME_SIZE = 1 << 30
_HEADER = struct.Struct(">I")


def pack_frame(obj: dict) -> bytes:
    """Encode one message: 4-byte big-endian length + UTF-8 JSON object."""
    try:
        payload = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be encoded as UTF-8; fall back to \u escapes.
        payload = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder for length-prefixed JSON frames."""

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self._max_frame_size = max_frame_size
        self._carry: list = []

    def feed(self, data: bytes) -> list:
        """Add bytes and return every complete message decoded so far.

        A frame that is not a JSON object raises ValueError; the bad frame is
        consumed, and messages decoded before it in the same call are returned
        by the next call (e.g. ``feed(b"")``).
        """
        self._buffer.extend(data)
        messages, self._carry = self._carry, []
        while True:
            try:
                message = self._next_message()
            except ValueError:
                self._carry = messages
                raise
            if message is None:
                return messages
            messages.append(message)

    def _next_message(self):
        if len(self._buffer) < _HEADER.size:
            return None
        (length,) = _HEADER.unpack_from(self._buffer, 0)
        if length > self._max_frame_size:
            self._buffer.clear()
            raise ValueError("frame too large: %d bytes" % length)
        end = _HEADER.size + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[_HEADER.size:end])
        del self._buffer[:end]
        message = json.loads(payload.decode("utf-8"))
        if not isinstance(message, dict):
            raise ValueError("frame is not a JSON object")
        return message
