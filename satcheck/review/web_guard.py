"""What a web page elsewhere cannot do to the review server: the checks every request passes first.

A request whose ``Host`` is not this server's is refused (421, DNS rebinding); a POST needs
``Content-Type: application/json`` (415), an ``Origin`` (or, lacking it, ``Referer``) of this server and the
per-start secret the page carries, in ``X-Satcheck-Csrf`` (403); bodies over :data:`MAX_BODY` are refused unread
(413).  With a token (required off loopback), a request without it is refused (401).  Every response carries a
Content-Security-Policy (no inline script), ``X-Frame-Options: DENY``, ``nosniff`` and
``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request

MAX_BODY = 64 * 1024  # bytes of a request body
COOKIE = "satcheck_token"
CSRF_HEADER = "x-satcheck-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _authority(value: str, default_port: int = 80) -> tuple[str, int] | None:
    """(host name, port) of a Host header value or a URL's authority; None when it is not one."""
    if not value or any(c in value for c in "@/?#\\ \t"):
        return None
    try:
        parts = urlsplit("//" + value)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), default_port if port is None else port


class Hosts:
    """The Host header values this server answers: its bound host (loopback names when on loopback) and port.

    Bound to every address (0.0.0.0, ::) it also answers any IP address and the machine's name: a DNS name
    of somebody else's (DNS rebinding) is never answered.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        h = host.strip("[]").lower()
        self.port = port
        self.any_address = h in ("0.0.0.0", "::", "")
        self.names = set(LOOPBACK_NAMES) | {h}
        if self.any_address:
            self.names.add(socket.gethostname().lower())

    def allows(self, value: str) -> bool:
        found = _authority(value)
        if found is None:
            return False
        name, port = found
        if self.port is not None and port != self.port:
            return False
        if name in self.names:
            return True
        if self.any_address:
            try:
                ipaddress.ip_address(name)
                return True
            except ValueError:
                return False
        return False


def _same_origin(url: str, scheme: str, host: str) -> bool:
    """Whether an Origin or Referer value names this server (scheme, host and port of the Host header)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    default = 443 if scheme == "https" else 80
    theirs = _authority(parts.netloc, 443 if parts.scheme == "https" else 80)
    return parts.scheme == scheme and theirs is not None and theirs == _authority(host, default)


async def _refuse(send, status: int, message: str, extra: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Host, token, CSRF and body-size checks before the app sees a request; security headers on every answer."""

    def __init__(self, app, hosts: Hosts, token: str | None, csrf: str, max_body: int = MAX_BODY):
        self.app, self.hosts, self.token, self.csrf, self.max_body = app, hosts, token, csrf, max_body
        # The cookie holds a digest of the token, not the token: any characters, and nothing to read back.
        self.cookie = hashlib.sha256(b"satcheck review cookie\0" + token.encode()).hexdigest() if token else ""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cookie: list[tuple[bytes, bytes]] = []

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *SECURITY_HEADERS, *cookie])
            await send(message)

        out = send_with_headers
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.hosts.allows(host):
            return await _refuse(out, 421, "this server does not answer for that Host; open the address that "
                                           "'satcheck review serve' printed")
        method = scope["method"]
        if self.token and not self._authorised(scope, headers, method, cookie):
            return await _refuse(out, 401, "token required: open the page with the address "
                                           "'satcheck review serve' printed (?token=...)")
        if method not in SAFE_METHODS:
            refused = self._unsafe(scope, headers, host)
            if refused:
                return await _refuse(out, *refused)
            body = await _read_body(receive, self.max_body)
            if body is None:
                return await _refuse(out, 413, f"request body over {self.max_body // 1024} KB")
            receive = _replay(body, receive)
        await self.app(scope, receive, out)

    def _authorised(self, scope, headers: Headers, method: str, cookie: list) -> bool:
        """The token as a header (scripts), as the cookie the page got, or once in the page's address."""
        if "x-satcheck-token" in headers:
            return _equal(headers["x-satcheck-token"], self.token)
        request = Request(scope)
        if scope["path"] == "/" and method == "GET" and "token" in request.query_params:  # before a stale cookie
            if not _equal(request.query_params["token"], self.token):
                return False
            cookie.append((b"set-cookie", f"{COOKIE}={self.cookie}; HttpOnly; SameSite=Strict; Path=/".encode()))
            return True
        return _equal(request.cookies.get(COOKIE, ""), self.cookie)

    def _unsafe(self, scope, headers: Headers, host: str) -> tuple[int, str] | None:
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                return 400, "bad Content-Length"
            if int(length) > self.max_body:
                return 413, f"request body over {self.max_body // 1024} KB"
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return 415, "send Content-Type: application/json"
        origin = headers.get("origin") or headers.get("referer")
        if not origin or not _same_origin(origin, scope.get("scheme", "http"), host):
            return 403, "cross-site request refused: Origin (or Referer) must be this review page"
        if not _equal(headers.get(CSRF_HEADER, ""), self.csrf):
            return 403, "cross-site request refused: the X-Satcheck-Csrf header of the review page is missing"
        return None


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def _read_body(receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes (the rest is never read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away; the app finds out on its own
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
