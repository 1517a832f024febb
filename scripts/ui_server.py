"""Serve the built web UI (frontend/dist) on loopback: `make dev` starts it on :8080.

    .venv/bin/python scripts/ui_server.py --port 8080 --router http://127.0.0.1:4000/graphql

Static files only; the browser talks to the router directly (its CORS list names this origin).
`/config.js` tells the app where the router is. Unknown paths get index.html (client-side routes).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

DIST = Path(__file__).resolve().parents[1] / "frontend" / "dist"


def make_handler(dist: Path, router_url: str, ray_dashboard: str) -> type[BaseHTTPRequestHandler]:
    root = dist.resolve()
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(router_url))
    ws_origin = origin.replace("http", "ws", 1)
    config = json.dumps({"graphqlUrl": router_url, "rayDashboardUrl": ray_dashboard})
    config_js = f"window.OPSC_CONFIG = {config};\n".encode()
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"connect-src 'self' {origin} {ws_origin}; worker-src 'self' blob:; frame-ancestors 'none'"
    )

    class Handler(BaseHTTPRequestHandler):
        server_version = "opsconductor-ui"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the router logs the API traffic

        def _send(self, status: int, body: bytes, ctype: str, cache: str) -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.send_header("cache-control", cache)
            self.send_header("x-content-type-options", "nosniff")
            self.send_header("x-frame-options", "DENY")
            self.send_header("referrer-policy", "no-referrer")
            self.send_header("content-security-policy", csp)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/config.js":
                self._send(200, config_js, "text/javascript; charset=utf-8", "no-store")
                return
            target = (root / path.lstrip("/")).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                if path.startswith("/assets/"):
                    self._send(404, b"not found\n", "text/plain", "no-store")
                    return
                target = root / "index.html"
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith("javascript"):
                ctype += "; charset=utf-8"
            cache = "public, max-age=31536000, immutable" if path.startswith("/assets/") else "no-cache"
            self._send(200, target.read_bytes(), ctype, cache)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the built web UI (frontend/dist) on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--router", default="http://127.0.0.1:4000/graphql")
    parser.add_argument("--ray-dashboard", default="http://127.0.0.1:8265")
    parser.add_argument("--dist", type=Path, default=DIST)
    args = parser.parse_args(argv)
    if not (args.dist / "index.html").is_file():
        print(f"ui: {args.dist}/index.html is missing; run `make ui` first", file=sys.stderr)
        return 1
    server = ThreadingHTTPServer(
        (args.host, args.port), make_handler(args.dist, args.router, args.ray_dashboard)
    )
    print(f"ui: serving {args.dist} on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
