"""Alerting: plant profiles, rules, the evaluator, the store, notifications, the API.

A reading's road continues here (core/alerts/engine.py): bus -> evaluator ->
alert transitions -> bus (AlertChanged), WebSocket streams, SQLite, Apprise.
docs/alerts.md is the guide. Modules: profiles.py (built-in crop ranges),
config.py (YAML models), rules.py (config -> rules), model.py (Alert, Clock),
evaluator.py (the state machine), store.py (schema 2), notify.py (Apprise),
engine.py (the wiring and the public surface), api.py and openapi.py (HTTP).
"""
