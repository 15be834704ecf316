"""ttyd message encoding/decoding (pure, fast).

WebSocket handshake and framing come from the ``websockets`` library; their rules as the
web terminal applies them are checked on the wire in test_webterm_server.py.
"""

from __future__ import annotations

import json

import pytest

from krunner.webterm import protocol as tty


def test_auth_message() -> None:
    auth = tty.decode_auth(b'{"AuthToken": "t0k", "columns": 120, "rows": 40}')
    assert auth == tty.Auth("t0k", 120, 40)
    assert tty.decode_auth(tty.encode_auth(100, 30)) == tty.Auth("", 100, 30)
    assert tty.decode_auth(b"{}") == tty.Auth("", tty.DEFAULT_COLUMNS, tty.DEFAULT_ROWS)
    assert tty.decode_auth(b'{"columns": 80.0, "rows": 24}').columns == 80


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'{"AuthToken": 5}', b'{"columns": "80"}', b'{"rows": 0}',
     b'{"columns": true}', b'{"rows": 1e9}', b"\xff\xfe"],
)
def test_bad_auth_messages(raw: bytes) -> None:
    with pytest.raises(tty.ProtocolError):
        tty.decode_auth(raw)


def test_client_commands() -> None:
    assert tty.decode_client_message(b"0ls -l\r") == tty.Input(b"ls -l\r")
    assert tty.decode_client_message(b"0") == tty.Input(b"")
    assert tty.decode_client_message("0\u00e9".encode()) == tty.Input("\u00e9".encode())
    assert tty.decode_client_message(b'1{"columns": 132, "rows": 43}') == tty.Resize(132, 43)
    assert tty.decode_client_message(b"2") == tty.Pause()
    assert tty.decode_client_message(b"3") == tty.Resume()
    assert tty.decode_client_message(tty.encode_input("x")) == tty.Input(b"x")
    assert tty.decode_client_message(tty.encode_resize(10, 5)) == tty.Resize(10, 5)
    assert tty.decode_client_message(tty.encode_pause()) == tty.Pause()
    assert tty.decode_client_message(tty.encode_resume()) == tty.Resume()


@pytest.mark.parametrize(
    "raw", [b"", b"4", b"9abc", b"1", b"1{", b'1{"columns": 10}', b'1{"columns": -1, "rows": 5}', b"1[]"]
)
def test_bad_client_commands(raw: bytes) -> None:
    with pytest.raises(tty.ProtocolError):
        tty.decode_client_message(raw)


def test_server_messages() -> None:
    assert tty.encode_output(b"\x1b[1mhi") == b"0\x1b[1mhi"
    assert tty.encode_title("bash (host)") == b"1bash (host)"
    assert tty.encode_preferences() == b"2{}"
    assert json.loads(tty.encode_preferences({"fontSize": 16})[1:]) == {"fontSize": 16}
    assert tty.decode_server_message(b"0abc") == (tty.OUTPUT, b"abc")
    with pytest.raises(tty.ProtocolError):
        tty.decode_server_message(b"7")
