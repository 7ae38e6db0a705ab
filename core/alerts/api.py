"""HTTP: GET /api/alerts, POST /api/alerts/{id}/ack, GET /api/alerts/rules.

Thin handlers over the engine (given through `initialize`). Active alerts come
from memory, with their notification attempts from the store; past ones
(`?state=resolved` or `all`) from the store alone. docs/api.md is the guide.
"""

from __future__ import annotations

import json

from smartanom.alerts import store as db
from smartanom.alerts.model import ACKNOWLEDGED, FIRING, RESOLVED
from smartanom.api import APIError, JSONHandler, bad_parameter, parse_limit
from smartanom.auth import Role, token_from_request

STATES = {"active": (FIRING, ACKNOWLEDGED), "resolved": (RESOLVED,), "all": (FIRING, ACKNOWLEDGED, RESOLVED)}


class _AlertsHandler(JSONHandler):
    def initialize(self, auth, engine) -> None:
        super().initialize(auth)
        self.engine = engine


class AlertsHandler(_AlertsHandler):
    async def get(self) -> None:
        for name in self.request.query_arguments:
            if name not in ("state", "limit", "token"):  # ?token= is taken on every route (docs/security.md)
                raise bad_parameter(name, "unknown parameter; accepted: state, limit, token")
        state = self.get_query_argument("state", "active")
        if state not in STATES:
            raise bad_parameter("state", f"must be one of {', '.join(STATES)}, got {state[:32]!r}")
        limit = parse_limit(self.get_query_argument("limit", "100"))
        if state == "active":
            active = self.engine.active()[:limit]
            try:
                attempts = await self.engine.store.call(_attempts_of, [a.id for a in active])
            except Exception:  # the database is failing (see /api/health): the alerts themselves are in memory
                attempts = [[] for _ in active]
            alerts = [dict(a.as_json(), notifications=n) for a, n in zip(active, attempts)]
        else:
            try:
                alerts = await self.engine.store.call(db.listing, STATES[state], limit)
            except Exception as exc:
                raise APIError(503, "STORAGE_FAILING", f"past alerts cannot be read: {type(exc).__name__}: {exc}; see /api/health") from None
            live = {a.id: a for a in self.engine.active()}  # memory is newer than the store by a moment
            alerts = [dict(item, **live[item["id"]].as_json()) if item["id"] in live else item for item in alerts]
        self.send_json({"alerts": alerts})


class AlertAckHandler(_AlertsHandler):
    def post(self, alert_id: str) -> None:
        by = "anonymous"
        if self.auth.enabled:
            token = self.auth.identify(token_from_request(self.request))
            if token.role is not Role.WRITE:
                raise APIError(403, "FORBIDDEN", f"the token {token.name!r} has the read role: acknowledging an alert needs a write token")
            by = token.name
        if self.request.body:
            try:
                body = json.loads(self.request.body)
            except ValueError:
                raise APIError(400, "INVALID_BODY", "the body must be JSON, e.g. {\"by\": \"Ana\"}, or empty") from None
            if not isinstance(body, dict) or not isinstance(body.get("by", ""), str):
                raise APIError(400, "INVALID_BODY", "the body must be a JSON object whose 'by' is a string")
            by = body.get("by") or by
        try:
            alert = self.engine.acknowledge(int(alert_id), by[:100])
        except (KeyError, ValueError):
            raise APIError(404, "UNKNOWN_ALERT", f"no active alert with id {alert_id!r}; see /api/alerts") from None
        self.send_json(alert.as_json())


class AlertRulesHandler(_AlertsHandler):
    """Each sensor's good and critical range (the dashboard draws them on its charts)."""

    def get(self) -> None:
        self.send_json({"rules": [rule.as_dict() for rule in self.engine.rules.ranges.values()]})


def _attempts_of(conn, alert_ids: list[int]) -> list[list[dict]]:
    return [db.attempts(conn, alert_id) for alert_id in alert_ids]


def routes(hub) -> list:
    args = {"auth": hub.auth, "engine": hub.alerts}
    return [
        (r"/api/alerts/?", AlertsHandler, args),
        (r"/api/alerts/rules/?", AlertRulesHandler, args),
        (r"/api/alerts/([^/]+)/ack/?", AlertAckHandler, args),
    ]
