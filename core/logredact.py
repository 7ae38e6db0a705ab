"""Keep API tokens out of Tornado's log lines.

Clients may pass their token as `?token=` (browsers' WebSocket API cannot set
headers), and Tornado logs a request's URI when it fails: the access log on every
4xx/5xx, and the request itself with an uncaught exception's traceback. That
covers every handler, the hub's and plugins' alike, so the token is taken out
of the record on Tornado's loggers rather than in each handler.
"""

from __future__ import annotations

import logging
import re

TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&#\s'\"]*")
REDACTED = r"\1[redacted]"
LOGGERS = ("tornado.access", "tornado.application", "tornado.general")


class TokenFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = TOKEN_IN_QUERY.sub(REDACTED, message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = TokenFilter()


def install() -> None:
    """Put the filter on Tornado's loggers (idempotent: one shared instance)."""
    for name in LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)
