"""The terminal page (``GET /``): xterm.js + addon-fit speaking ttyd's protocol.

All URLs are built relative to ``location`` (assets, ``token`` and ``ws``), so the
page works at ``/`` and behind a proxy path prefix (``/some/prefix/`` or
``/some/prefix``).  ``window.term`` (the xterm ``Terminal``) and
``window.webterm`` (connection state) are exposed for tests and debugging.
"""

from __future__ import annotations

import html

# The files the page loads from ``<base>/assets/``; see docs/architecture.md.
ASSET_FILES: dict[str, str] = {
    "xterm.js": "text/javascript; charset=utf-8",
    "xterm.css": "text/css; charset=utf-8",
    "addon-fit.js": "text/javascript; charset=utf-8",
}

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  html, body { margin: 0; padding: 0; height: 100%; background: #000; overflow: hidden; }
  #terminal { position: absolute; inset: 0; padding: 4px; }
  #webterm-error { color: #f66; font: 14px monospace; padding: 1em; white-space: pre-wrap; }
</style>
</head>
<body>
<div id="terminal"></div>
<script>
(function () {
  'use strict';
  var INPUT = 0x30, RESIZE = 0x31, PAUSE = 0x32, RESUME = 0x33;   // '0'..'3'
  var OUTPUT = 0x30, SET_TITLE = 0x31, SET_PREFS = 0x32;
  var FLOW_LIMIT = 100000, FLOW_HIGH = 10, FLOW_LOW = 4;

  var path = location.pathname.replace(/index\\.html$/, '');
  if (path.charAt(path.length - 1) !== '/') { path += '/'; }
  var wsUrl = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + path + 'ws' + location.search;
  var enc = new TextEncoder(), dec = new TextDecoder();
  var state = window.webterm = { connected: false, closed: false, closeCode: null, ws: null, messages: 0 };
  var term = null, ws = null, written = 0, pending = 0, paused = false;

  function fail(message) {
    var box = document.createElement('div');
    box.id = 'webterm-error';
    box.textContent = message;
    document.body.appendChild(box);
    state.error = message;
  }

  function load(tag, attrs) {
    return new Promise(function (resolve, reject) {
      var el = document.createElement(tag);
      Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
      el.onload = resolve;
      el.onerror = function () { reject(new Error('cannot load ' + (attrs.src || attrs.href))); };
      document.head.appendChild(el);
    });
  }

  function send(command, payload) {
    if (!ws || ws.readyState !== WebSocket.OPEN) { return; }
    var body = payload || new Uint8Array(0);
    var frame = new Uint8Array(body.length + 1);
    frame[0] = command;
    frame.set(body, 1);
    ws.send(frame);
  }

  function writeOutput(data) {
    written += data.length;
    if (written <= FLOW_LIMIT) { term.write(data); return; }
    written = 0;
    pending += 1;
    term.write(data, function () {
      pending = Math.max(pending - 1, 0);
      if (paused && pending < FLOW_LOW) { paused = false; send(RESUME); }
    });
    if (!paused && pending > FLOW_HIGH) { paused = true; send(PAUSE); }
  }

  function applyPreferences(prefs) {
    Object.keys(prefs || {}).forEach(function (key) {
      try { term.options[key] = prefs[key]; } catch (e) { console.warn('webterm: ignoring preference', key, e); }
    });
  }

  function onMessage(event) {
    var data = typeof event.data === 'string' ? enc.encode(event.data) : new Uint8Array(event.data);
    if (data.length === 0) { return; }
    state.messages += 1;
    var payload = data.subarray(1);
    switch (data[0]) {
      case OUTPUT: writeOutput(payload); break;
      case SET_TITLE: document.title = dec.decode(payload); break;
      case SET_PREFS:
        try { applyPreferences(JSON.parse(dec.decode(payload))); } catch (e) { console.warn('webterm: bad preferences', e); }
        break;
      default: console.warn('webterm: unknown server command', data[0]);
    }
  }

  function connect() {
    state.closed = false; state.closeCode = null;
    written = 0; pending = 0; paused = false;
    var tokenRequest = fetch(path + 'token', { cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (j) { return (j && typeof j.token === 'string') ? j.token : ''; })
      .catch(function () { return ''; });
    tokenRequest.then(function (token) {
      ws = state.ws = new WebSocket(wsUrl, ['tty']);
      ws.binaryType = 'arraybuffer';
      ws.onopen = function () {
        ws.send(enc.encode(JSON.stringify({ AuthToken: token, columns: term.cols, rows: term.rows })));
        state.connected = true;
        term.focus();
      };
      ws.onmessage = onMessage;
      ws.onclose = function (event) {
        state.connected = false; state.closed = true; state.closeCode = event.code;
        term.write('\\r\\n\\x1b[33m[connection closed (' + event.code + '); press Enter to reconnect]\\x1b[0m\\r\\n');
      };
    });
  }

  function start() {
    term = window.term = new Terminal({
      cursorBlink: true, fontSize: 14, scrollback: 5000,
      fontFamily: 'Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace'
    });
    var fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(document.getElementById('terminal'));
    try { fit.fit(); } catch (e) { console.warn('webterm: fit failed', e); }
    window.addEventListener('resize', function () { try { fit.fit(); } catch (e) { /* hidden */ } });
    term.onData(function (data) {
      if (state.closed) { if (data === '\\r') { term.reset(); connect(); } return; }
      send(INPUT, enc.encode(data));
    });
    term.onBinary(function (data) {
      var bytes = new Uint8Array(data.length);
      for (var i = 0; i < data.length; i++) { bytes[i] = data.charCodeAt(i) & 0xff; }
      send(INPUT, bytes);
    });
    term.onResize(function (size) {
      send(RESIZE, enc.encode(JSON.stringify({ columns: size.cols, rows: size.rows })));
    });
    term.onTitleChange(function (title) { document.title = title; });
    connect();
  }

  load('link', { rel: 'stylesheet', href: path + 'assets/xterm.css' }).catch(function (e) { console.warn(e); });
  load('script', { src: path + 'assets/xterm.js' })
    .then(function () { return load('script', { src: path + 'assets/addon-fit.js' }); })
    .then(start)
    .catch(function (e) { fail('web terminal: ' + e.message); });
})();
</script>
</body>
</html>
"""


def render_index(title: str = "Terminal") -> bytes:
    """The HTML page, UTF-8 encoded."""
    return _TEMPLATE.replace("__TITLE__", html.escape(title)).encode("utf-8")
