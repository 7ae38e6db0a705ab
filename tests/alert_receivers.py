"""Real local receivers for alert notifications: an HTTP server that takes Apprise's
`json://` posts, and an SMTP server (aiosmtpd) for `mailto://`. Started by the tests."""

from __future__ import annotations

import asyncio
import email
import json
import time
from email import policy

import tornado.httpserver
import tornado.netutil
import tornado.web
from aiosmtpd.controller import Controller

from smartanom.testing import free_port


class _Collect(tornado.web.RequestHandler):
    def initialize(self, receiver: "JSONReceiver") -> None:
        self.receiver = receiver

    def post(self) -> None:
        if self.receiver.failing:
            self.set_status(503)
            self.receiver.refused += 1
            return self.finish("down for maintenance")
        self.receiver.posts.append((time.monotonic(), json.loads(self.request.body)))
        self.finish("ok")


class JSONReceiver:
    """A webhook: `url` is the Apprise URL; `posts` the (monotonic time, JSON body) received.
    Set `failing` to answer 503, as a service that is down."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, dict]] = []
        self.failing = False
        self.refused = 0
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self.server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/hook(?:/.*)?", _Collect, {"receiver": self})]))
        self.server.add_sockets(sockets)
        self.url = f"json://127.0.0.1:{self.port}/hook"

    @property
    def bodies(self) -> list[dict]:
        return [body for _, body in self.posts]

    def stop(self) -> None:
        self.server.stop()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"


class SMTPReceiver:
    """A real SMTP server on loopback (its own thread); `messages` are the parsed e-mails."""

    def __init__(self) -> None:
        self.mailbox = _Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        # Apprise's mailto: plain SMTP (mode=insecure) to this host and port, no login.
        self.url = f"mailto://127.0.0.1:{self.port}?smtp=127.0.0.1&mode=insecure&from=hub@example.com&to=grower@example.com"

    @property
    def messages(self):
        return self.mailbox.messages

    def stop(self) -> None:
        self.controller.stop()


async def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    """Poll `condition()` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return result
