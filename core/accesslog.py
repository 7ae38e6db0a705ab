"""Tornado's access log line, with any `token=` in the URL blanked.

Tokens may travel in the query (`?token=...`: the dashboard, WebSocket clients,
and scrapers that cannot set headers, docs/metrics.md), and Tornado's access log
writes each request's URL: refused ones (401, often a rotated or mistyped but
real token) as warnings, and every request at --log-level DEBUG. A token must
never reach a log (the journal is kept, and shared when asking for help).
"""

from __future__ import annotations

import re

import tornado.web
from tornado.log import access_log

_TOKEN = re.compile(r"([?&]token=)[^&#]*", re.IGNORECASE)


def redact(uri: str) -> str:
    return _TOKEN.sub(r"\1***", uri)


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Application(log_function=...): Tornado's own line and levels, token blanked."""
    status = handler.get_status()
    if status < 400:
        log_method = access_log.info
    elif status < 500:
        log_method = access_log.warning
    else:
        log_method = access_log.error
    request = handler.request
    log_method(
        "%d %s %s (%s) %.2fms",
        status, request.method, redact(request.uri or ""), request.remote_ip, 1000.0 * request.request_time(),
    )
