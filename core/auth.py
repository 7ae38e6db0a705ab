"""Who may connect, and what they may do (docs/security.md).

Off by default, for a hub on a trusted bench. With `auth.enabled: true` every
WebSocket and every /api/ request must present a token, and each token has a
role: `read` may subscribe and query, `write` may also send sensor_data and
device_status. Tokens come from a secrets file or an environment variable,
never from the main config file, which gets copied around and committed.

A client presents its token in the `Authorization: Bearer` header, in the URL
query (`?token=`, for browsers, whose WebSocket API cannot set headers), or, on
a WebSocket, in a first message `{"type": "auth", "token": ...}`.
"""

from __future__ import annotations

import enum
import hmac
import logging
import re
import urllib.parse
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

MIN_TOKEN_LENGTH = 16
TOKEN_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"


class Role(str, enum.Enum):
    READ = "read"
    WRITE = "write"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Token:
    name: str
    role: Role
    secret: str = field(repr=False)  # never in logs or reprs


class TokenEntry(BaseModel):
    """One entry of the secrets file's `tokens:` list."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1)
    role: Role = Field(strict=False)
    token: str = Field(min_length=MIN_TOKEN_LENGTH)


class TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    tokens: list[TokenEntry]


def parse_tokens_env(name: str, value: str) -> list[Token]:
    """`role:token` pairs separated by commas or whitespace -> Tokens. Raises ValueError."""
    tokens = []
    for index, item in enumerate(value.replace(",", " ").split()):
        role, sep, secret = item.partition(":")
        if not sep or role not in ("read", "write"):
            raise ValueError(f"entry {index + 1} of ${name} must be 'read:TOKEN' or 'write:TOKEN'")
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ValueError(f"entry {index + 1} of ${name}: a token needs at least {MIN_TOKEN_LENGTH} characters; {TOKEN_HINT}")
        tokens.append(Token(f"${name}[{index + 1}]", Role(role), secret))
    return tokens


class Authenticator:
    """The one place that decides whether a presented token is good, for every route."""

    def __init__(self, enabled: bool, tokens: list[Token]):
        self.enabled = enabled
        self._tokens = [(t, t.secret.encode()) for t in tokens]

    def replace(self, tokens: list[Token]) -> None:
        """Take a new set of tokens (a reload); connections already in keep their role."""
        self._tokens = [(t, t.secret.encode()) for t in tokens]

    @property
    def count(self) -> int:
        return len(self._tokens)

    def identify(self, presented: str | None) -> Token | None:
        """The token matching `presented`, or None. Constant time in the token's content."""
        if presented is None:
            return None
        candidate = presented.encode("utf-8", "replace")
        found = None
        for token, secret in self._tokens:
            # Compare against every token, so the time taken does not tell which one nearly matched.
            if hmac.compare_digest(candidate, secret) and found is None:
                found = token
        return found


def token_from_request(request) -> str | None:
    """The token a request carries in `Authorization: Bearer` or `?token=`, or None."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    values = request.query_arguments.get("token")
    if values:
        return values[-1].decode("utf-8", "replace")
    return None


# `token=VALUE` in a query string or URL, up to the next `&`, space or `#`: Tornado
# splits a query at `&` only, so `;` or a quote belongs to the token and must go too.
# Percent-encoded forms (token%3D) are covered, as a logged URL may carry either.
_TOKEN_IN_URL = re.compile(r"(token(?:=|%3[dD]))[^&\s#]*", re.IGNORECASE)
# Any other query parameter: its name may be percent-encoded (`%74oken=` is `token=`
# to Tornado, which decodes names), so names are compared decoded.
_QUERY_PARAMETER = re.compile(r"([?&;])([^=&\s#?]*%[^=&\s#?]*)=[^&\s#]*")


def _redact_encoded_name(match: re.Match) -> str:
    if urllib.parse.unquote_plus(match.group(2)).strip().lower() != "token":
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}=REDACTED"


def redact(text: str) -> str:
    """`text` with the value of every `token=` replaced, for log lines."""
    return _QUERY_PARAMETER.sub(_redact_encoded_name, _TOKEN_IN_URL.sub(r"\1REDACTED", text))


class RedactTokens(logging.Filter):
    """A logging filter that redacts `token=` values from every record it sees.

    The hub never logs a URL's query itself (core/websurface.py redacts Tornado's
    request lines); this is the second line: installed on Tornado's loggers and on
    the command's log handler, so a library's message cannot carry a token out either.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken format string is the logging module's to report
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
