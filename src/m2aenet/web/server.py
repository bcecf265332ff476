"""The HTTP side of `m2aenet web`: the standard library's threading server around `handlers`.

Each connection gets a thread; they take turns on the model inside `DeblurService`. The
server listens on loopback unless told otherwise, and then also refuses requests whose Host
header names another machine, so a web page elsewhere cannot reach it through a DNS name that
resolves to 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from m2aenet.errors import ConfigError
from m2aenet.web.handlers import (
    MAX_UPLOAD_BYTES,
    DeblurService,
    Response,
    error_response,
    handle,
    upload_too_large_message,
)

#: Only this page's own files, and pictures it made itself or the user dropped (blob:).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; "
        "style-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
_CHUNK = 1 << 20


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """ConfigError unless `host` is loopback or the user asked for other machines."""
    if not allow_remote and not is_loopback(host):
        raise ConfigError(
            f"--host {host}: not a loopback address; the page would be open to other machines "
            "(add --allow-remote if that is what you want)"
        )


def _host_of(header: str) -> str:
    """The host name of a Host header (`127.0.0.1:8765`, `[::1]:8765`, `localhost`)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class WebServer(ThreadingHTTPServer):
    """A threading HTTP server holding the `DeblurService` its requests use."""

    daemon_threads = True  # a stuck browser connection must not keep the process alive
    service: DeblurService
    allow_remote: bool

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the fully qualified name; offline that can hang.
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class WebServer6(WebServer):
    address_family = socket.AF_INET6


class RequestHandler(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"
    timeout = 120  # seconds a client may stall while sending a request

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self._respond(self._response("GET", b""))

    def do_POST(self) -> None:  # noqa: N802
        length_text = self.headers.get("Content-Length", "")
        if not length_text and "Transfer-Encoding" not in self.headers:
            length_text = "0"  # a POST without a body
        if not length_text.isdigit():
            self._respond(error_response(411, "the upload has no length"), close=True)
            return
        length = int(length_text)
        if length > MAX_UPLOAD_BYTES:
            self._respond(error_response(413, upload_too_large_message(length)), close=True)
            return
        self._respond(self._response("POST", self.rfile.read(length)))

    def _response(self, method: str, body: bytes) -> Response:
        if not self.server.allow_remote and not is_loopback(_host_of(self.headers.get("Host", ""))):
            return error_response(403, "this page answers only to localhost / 127.0.0.1")
        return handle(self.server.service, method, self.path, body)

    def _respond(self, response: Response, close: bool = False) -> None:
        size = response.file.stat().st_size if response.file is not None else len(response.body)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(size))
        for name, value in {**SECURITY_HEADERS, **response.headers}.items():
            self.send_header(name, value)
        if close:  # the unread body of a refused upload must not be taken for a request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if response.file is None:
            self.wfile.write(response.body)
            return
        with open(response.file, "rb") as stream:
            shutil.copyfileobj(stream, self.wfile, _CHUNK)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        sys.stderr.write(f"m2aenet web: {self.address_string()} {format % args}\n")


def make_server(
    service: DeblurService, host: str = "127.0.0.1", port: int = 0, allow_remote: bool = False
) -> WebServer:
    """Bind a server for `service` (port 0: a free port; see `server.server_port`).

    Raises ConfigError for a non-loopback `host` without `allow_remote`, and for an address
    that cannot be bound (port in use, no such interface), naming the option.
    """
    check_host(host, allow_remote)
    server_class = WebServer6 if ":" in host else WebServer
    try:
        server = server_class((host, port), RequestHandler)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({reason})") from None
    server.service = service
    server.allow_remote = allow_remote
    return server


def page_address(server: WebServer) -> str:
    """The URL to open for `server`."""
    host = server.server_name
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server.server_port}/"
