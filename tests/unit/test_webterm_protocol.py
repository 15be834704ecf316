"""ttyd message encoding/decoding and WebSocket framing (pure, fast)."""

from __future__ import annotations

import asyncio
import json

import pytest

from krunner.webterm import protocol as tty
from krunner.webterm import websocket as wsp


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


def test_accept_key_rfc6455_example() -> None:
    assert wsp.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("mask", [False, True])
def test_frame_roundtrip(size: int, mask: bool) -> None:
    payload = bytes(i % 251 for i in range(size))

    async def roundtrip() -> wsp.Frame:
        reader = asyncio.StreamReader()
        reader.feed_data(wsp.encode_frame(wsp.OP_BINARY, payload, mask=mask))
        reader.feed_eof()
        return await wsp.read_frame(reader, masked=mask, max_size=1 << 20)

    frame = asyncio.run(roundtrip())
    assert frame == wsp.Frame(True, wsp.OP_BINARY, payload)


def _read(data: bytes, *, masked: bool = True, max_size: int = 1024) -> wsp.Frame:
    async def run() -> wsp.Frame:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await wsp.read_frame(reader, masked=masked, max_size=max_size)

    return asyncio.run(run())


def test_frame_violations() -> None:
    with pytest.raises(wsp.WebSocketError):  # server needs masked client frames
        _read(wsp.encode_frame(wsp.OP_TEXT, b"hi"))
    with pytest.raises(wsp.WebSocketError) as too_big:
        _read(wsp.encode_frame(wsp.OP_BINARY, b"x" * 2000, mask=True))
    assert too_big.value.code == wsp.CLOSE_TOO_BIG
    with pytest.raises(wsp.WebSocketError):  # RSV1 (compression) never negotiated
        _read(b"\xc2\x80" + b"\x00" * 4)
    with pytest.raises(wsp.WebSocketError):  # fragmented ping
        _read(wsp.encode_frame(wsp.OP_PING, b"", fin=False, mask=True))
    with pytest.raises(wsp.ConnectionClosed):
        _read(wsp.encode_frame(wsp.OP_TEXT, b"hello", mask=True)[:-2])


def test_handshake_response() -> None:
    headers = {
        "upgrade": "websocket",
        "connection": "keep-alive, Upgrade",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-protocol": "foo, tty",
    }
    response, selected = wsp.server_handshake_response(headers, ["tty"])
    assert selected == "tty"
    assert b"101 Switching Protocols" in response
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in response
    assert b"Sec-WebSocket-Protocol: tty" in response
    with pytest.raises(wsp.WebSocketError) as bad_version:
        wsp.server_handshake_response({**headers, "sec-websocket-version": "8"}, ["tty"])
    assert bad_version.value.code == 426
    with pytest.raises(wsp.WebSocketError):
        wsp.server_handshake_response({**headers, "sec-websocket-key": "short"}, ["tty"])
    with pytest.raises(wsp.WebSocketError):
        wsp.server_handshake_response({k: v for k, v in headers.items() if k != "upgrade"}, ["tty"])
