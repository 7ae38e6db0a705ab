"""Plugins' own HTTP routes (the `register_routes` hook), each under `/plugins/<name>/`.

A plugin's page or API lives under a prefix named after its entry point, so two
plugins cannot take each other's URLs or the hub's. With auth on, every route
needs a token of either role, exactly like the hub's API: the hub slips
`TokenRequired` in front of the plugin's handler class, so a plugin cannot
forget the check.
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING, Callable

import tornado.web

from smartanom.auth import Authenticator, token_from_request

if TYPE_CHECKING:
    from smartanom.hubview import HubView
    from smartanom.plugins import PluginHost

PREFIX = "/plugins/{name}/"


class TokenRequired:
    """Put in front of a plugin's handler: a request without a valid token gets a JSON 401,
    and an error the handler does not answer itself gets JSON like the hub's API."""

    def initialize(self, smartanom_auth: Authenticator, smartanom_report: Callable[..., None], **kwargs) -> None:
        self._smartanom_auth = smartanom_auth
        self._smartanom_report = smartanom_report
        super().initialize(**kwargs)

    def prepare(self):
        auth = self._smartanom_auth
        if auth.enabled and auth.identify(token_from_request(self.request)) is None:
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Bearer realm="smartanom"')
            self.set_header("Content-Type", "application/json; charset=utf-8")
            message = "authentication is on: send 'Authorization: Bearer TOKEN' or ?token=TOKEN"
            self.finish(json.dumps({"error": {"code": "UNAUTHORIZED", "message": message}}))
            return None
        return super().prepare()

    def write_error(self, status_code: int, **kwargs) -> None:
        if super().write_error.__func__ is not tornado.web.RequestHandler.write_error:
            return super().write_error(status_code, **kwargs)  # the plugin answers its errors itself
        exc = kwargs.get("exc_info", (None, None))[1]
        if status_code >= 500:
            code, message = "INTERNAL_ERROR", "internal error in a plugin's route; see the hub's log"
        else:
            code, message = _CODES.get(status_code, "BAD_REQUEST"), self._reason
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": {"code": code, "message": message}}))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, tornado.web.HTTPError):
            return super().log_exception(typ, value, tb)  # an answer the plugin chose, logged as Tornado does
        # Against the plugin, with the path only: a query string may hold a ?token=.
        request = self.request
        self._smartanom_report(f"route {request.method} {request.path} raised {typ.__name__}: {value}", (typ, value, tb))
        return None


# The codes of the hub's own API errors (core/api.py), for the statuses a route may send.
_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def collect_routes(host: "PluginHost", view: "HubView", auth: Authenticator) -> list[tuple]:
    """Every plugin's routes, prefixed and guarded; unusable ones are reported and left out."""
    routes = []
    for plugin_name, result in host.call_each_sync("register_routes", hub=view):
        if result is None:
            continue
        if not isinstance(result, (list, tuple)):
            host.report(plugin_name, f"register_routes must return a list of (pattern, handler_class[, kwargs]), got {type(result).__name__}")
            continue
        prefix = PREFIX.format(name=re.escape(plugin_name))
        for entry in result:
            problem = _problem(entry)
            if problem:
                host.report(plugin_name, f"register_routes returned an unusable route: {problem}")
                continue
            pattern, handler, *kwargs = entry
            guarded = type(handler.__name__, (TokenRequired, handler), {"__module__": handler.__module__})
            report = functools.partial(host.report, plugin_name)
            extra = {"smartanom_auth": auth, "smartanom_report": report}
            routes.append((prefix + _relative(pattern), guarded, {**extra, **(kwargs[0] if kwargs else {})}))
    return routes


def _relative(pattern: str) -> str:
    """`pattern` as a group after the prefix: an alternation (`a|/api/x`) must not
    match outside it, and Tornado-style anchors (`^/page$`) mean the prefix's start."""
    return "(?:" + pattern.removeprefix("^").lstrip("/") + ")"


def _problem(entry: object) -> str | None:
    if not isinstance(entry, tuple) or len(entry) not in (2, 3):
        return f"{entry!r} is not a (pattern, handler_class) or (pattern, handler_class, kwargs) tuple"
    pattern, handler = entry[0], entry[1]
    if not isinstance(pattern, str):
        return f"pattern {pattern!r} is not a string"
    if not (isinstance(handler, type) and issubclass(handler, tornado.web.RequestHandler)):
        return f"{handler!r} is not a tornado.web.RequestHandler subclass"
    if len(entry) == 3 and not isinstance(entry[2], dict):
        return f"kwargs {entry[2]!r} is not a dict"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"pattern {pattern!r} is not a regular expression: {exc}"
    return None
