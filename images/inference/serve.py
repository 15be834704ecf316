"""A minimal inference server: GET /health, POST /v1/predict {"inputs": [numbers]} -> sum and mean.

Reads its "weights" (a scale factor) from the model folder given as argv[2].
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = int(sys.argv[1])
MODEL_DIR = Path(sys.argv[2])
SCALE = float(json.loads((MODEL_DIR / "weights.json").read_text())["scale"])


class Handler(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/health":
            self._reply(200, {"status": "ok", "model": MODEL_DIR.name})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/v1/predict":
            self._reply(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            inputs = [float(x) for x in json.loads(self.rfile.read(length))["inputs"]]
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(400, {"error": f"bad request: {exc}"})
            return
        total = SCALE * sum(inputs)
        self._reply(200, {"sum": total, "mean": total / len(inputs) if inputs else None})

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write("serve: " + fmt % args + "\n")


ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
