"""What the hub's web server does to every request before a handler sees it (docs/security.md).

- Every answer carries `X-Content-Type-Options: nosniff` and refuses to be framed
  (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`); pages add their own CSP.
- A request whose Host header is not one of the hub's own names or addresses is
  refused: a DNS-rebinding page reaches the hub under the attacker's host name.
- An overlong request line is answered 414, oversized headers 431 (not a silent close).
- Logged request lines never carry a token: `?token=` values are redacted.
- The TCP server caps connections (total and per client address), never
  busy-loops when the process runs out of file descriptors, and raises the
  soft open-files limit at start where the hard limit allows.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import resource
import socket
from typing import Callable, Iterable

import tornado.httpserver
import tornado.web
from tornado import httputil
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError

from smartanom.auth import RedactTokens, redact
from smartanom.throttle import LogThrottle

log = logging.getLogger("smartanom.web")
access_log = logging.getLogger("tornado.access")

# A request line longer than this is answered 414, headers larger than this 431.
# Tornado reads up to MAX_HEADER_BYTES so that it can answer at all; beyond that
# it closes the connection (the request is then not even an HTTP request).
MAX_URI_BYTES = 8192
MAX_HEADERS_BYTES = 32768
MAX_HEADER_BYTES = 256 * 1024
# Errors accepting connections (out of file descriptors) are logged at most this often.
ACCEPT_ERROR_LOG_EVERY = 60.0
# After such an error the listening socket rests this long instead of spinning.
ACCEPT_PAUSE = 0.5
# The answer to a connection over a cap (docs/security.md).
OVER_CAP = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 10\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 39\r\n\r\n"
    b"too many connections; try again later\r\n"
)
# Answers that are not pages get this CSP: nothing to run, nothing to frame.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"


class SecurityHeaders(tornado.web.OutputTransform):
    """Headers every answer carries, whichever handler wrote it."""

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
        return status_code, headers, chunk


class RefusedHandler(tornado.web.RequestHandler):
    """Answers a request refused before routing, in plain text."""

    def initialize(self, status: int, message: str) -> None:
        self.status, self.message = status, message

    def prepare(self) -> None:
        self.set_status(self.status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(self.message + "\n")


class SafeStaticFileHandler(tornado.web.StaticFileHandler):
    """/static/: a path no file can have (a NUL byte) is a 404, not a 500."""

    def get(self, path: str, include_body: bool = True):
        if "\x00" in path:  # os.path would raise ValueError: a 500
            raise tornado.web.HTTPError(404)
        return super().get(path, include_body)


def install_redaction() -> None:
    """Redact tokens from every line Tornado logs (uncaught errors print the request URL)."""
    for name in ("tornado.access", "tornado.application", "tornado.general"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def redacted_summary(handler: tornado.web.RequestHandler) -> str:
    request = handler.request
    return f"{request.method} {redact(request.uri or '')} ({request.remote_ip})"


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The access log line, as Tornado writes it but with tokens redacted.

    A handler may set `quiet_log = True` for an answer it reports itself (the
    health probe logs storage state changes, not every 503 a probe gets).
    """
    status = handler.get_status()
    if getattr(handler, "quiet_log", False):
        method = access_log.debug
    else:
        method = access_log.info if status < 400 else access_log.warning if status < 500 else access_log.error
    method("%d %s %.2fms", status, redacted_summary(handler), 1000.0 * handler.request.request_time())


class HubApplication(tornado.web.Application):
    """Refuses foreign Host headers and oversized requests before routing."""

    def __init__(self, routes, allowed_hosts: Callable[[str], bool], **settings):
        super().__init__(routes, transforms=[SecurityHeaders], log_function=log_request, **settings)
        self._host_allowed = allowed_hosts
        install_redaction()

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs):
        refusal = self._refusal(request)
        if refusal is not None:
            return self.get_handler_delegate(request, RefusedHandler, {"status": refusal[0], "message": refusal[1]})
        return super().find_handler(request, **kwargs)

    def _refusal(self, request: httputil.HTTPServerRequest) -> tuple[int, str] | None:
        if len(request.uri or "") > MAX_URI_BYTES:
            return 414, f"the request line is longer than {MAX_URI_BYTES} bytes"
        if sum(len(k) + len(v) + 4 for k, v in request.headers.get_all()) > MAX_HEADERS_BYTES:
            return 431, f"the request headers are larger than {MAX_HEADERS_BYTES} bytes"
        if not self._host_allowed(request.host):
            return 421, (
                f"this hub does not answer to the host name {request.host_name[:100]!r}; "
                "add it to server.allowed_hosts if it is really this hub's name"
            )
        return None


def host_checker(allowed: list[str] | None, bound_host: str) -> Callable[[str], bool]:
    """A predicate for Host headers: IP literals, the machine's own names, and `allowed`.

    DNS rebinding needs a host name the attacker controls, so a literal address
    is always safe to answer; names must be known. `["*"]` turns the check off.
    """
    if allowed is not None and "*" in allowed:
        return lambda host: True
    names = {"localhost", "localhost.localdomain"}
    if bound_host:
        names.add(bound_host.lower())
    try:
        hostname = socket.gethostname().lower()
        names |= {hostname, f"{hostname}.local", socket.getfqdn().lower()}
    except OSError:
        pass
    names |= {name.lower().rstrip(".") for name in (allowed or [])}

    def check(host: str) -> bool:
        name = httputil.split_host_and_port(host.lower())[0].strip("[]").rstrip(".")
        if name in names or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return False

    return check


class HubHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server with connection caps and a calm accept loop."""

    def initialize(self, *args, max_connections: int = 0, max_per_client: int = 0, **kwargs) -> None:
        super().initialize(*args, **kwargs)
        self.max_connections, self.max_per_client = max_connections, max_per_client
        self.refused = 0
        self._open: list[tuple[str, socket.socket]] = []  # (client address, its socket), live or closed
        self._accept_log = LogThrottle(ACCEPT_ERROR_LOG_EVERY)
        self._cap_log = LogThrottle(ACCEPT_ERROR_LOG_EVERY)

    def handle_stream(self, stream: IOStream, address) -> None:
        # A socket IOStream closed is fileno() -1 (IOStream keeps no other trace once detached
        # for a WebSocket), so the live ones are counted here, where they come in.
        self._open = [(ip, sock) for ip, sock in self._open if sock.fileno() != -1]
        ip = address[0] if isinstance(address, tuple) else str(address)
        total = len(self._open)
        mine = sum(1 for other, _ in self._open if other == ip)
        if (self.max_connections and total >= self.max_connections) or (self.max_per_client and mine >= self.max_per_client):
            self.refused += 1
            if self._cap_log.allow():
                log.warning(
                    "Refusing connections (503): %d open, %d from %s (server.max_connections %d, "
                    "server.max_connections_per_client %d); %d refused so far",
                    total, mine, ip, self.max_connections, self.max_per_client, self.refused,
                )
            _refuse(stream)
            return
        self._open.append((ip, stream.socket))
        super().handle_stream(stream, address)

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_on(sock)

    def _accept_on(self, sock: socket.socket) -> Callable[[], None]:
        """tornado.netutil.add_accept_handler, but an accept error pauses instead of spinning.

        Out of file descriptors, accept() fails while the connection stays queued,
        so the socket stays readable: retrying at once burns a core and floods the log.
        """
        loop = IOLoop.current()
        state = {"removed": False, "paused": False}

        def accept(fd, events) -> None:
            for _ in range(128):
                if state["removed"] or state["paused"]:
                    return
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    self._accept_failed(exc)
                    state["paused"] = True
                    loop.remove_handler(sock)
                    loop.call_later(ACCEPT_PAUSE, resume)
                    return
                self._handle_connection(connection, address)

        def resume() -> None:
            state["paused"] = False
            if not state["removed"]:
                loop.add_handler(sock, accept, IOLoop.READ)

        def remove() -> None:
            if not state["paused"]:
                loop.remove_handler(sock)
            state["removed"] = True

        loop.add_handler(sock, accept, IOLoop.READ)
        return remove

    def _accept_failed(self, exc: OSError) -> None:
        if not self._accept_log.allow():
            return
        hint = ""
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            hint = f" (open-files limit {soft}, hard {hard}: lower server.max_connections or raise the limit)"
        log.error("Cannot accept connections: %s%s; pausing %g s between attempts (logged at most once a minute)", exc, hint, ACCEPT_PAUSE)


def _refuse(stream: IOStream) -> None:
    """Answer 503 and close at once. The answer fits a new socket's send buffer, and the
    descriptor is freed in this turn: a burst of connections past the cap must not hold
    one each while a write is scheduled, or the burst itself runs out of descriptors."""
    try:
        stream.socket.send(OVER_CAP)
    except OSError:
        pass  # the client is gone or its buffer is full: closing is the answer
    stream.close()


def raise_open_files_limit(wanted: int = 65536) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards the hard limit (never above `wanted`). Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return soft, target
        except (ValueError, OSError) as exc:
            log.warning("Could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft, soft
