"""Checking `outputs:` and `control:` of the config file, with file and line.

Called by core/config.py's load_config after devices and plugins: each output
entry against the options of its `type:` (an OutputKind from a plugin), then
the control section, then what crosses entries (see config.check_references).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Mapping

from pydantic import ValidationError

from smartanom.control.config import ControlConfig, check_references
from smartanom.control.outputs import OutputKind, OutputOptions
from smartanom.errors import ConfigIssue
from smartanom.yamlfile import format_path, locate


def check_outputs(data, filename: str, issues: list[ConfigIssue], registry, kinds: Mapping[str, OutputKind]) -> tuple[list[OutputOptions], set[str]]:
    """Valid outputs, and the ids of every entry (valid or not), so that a rule
    naming a broken output is not also told that it does not exist."""
    from smartanom.config import _issues  # core/config.py imports this module

    raw = data.get("outputs")
    if not isinstance(raw, list):
        return [], set()
    valid: list[OutputOptions] = []
    ids: set[str] = {e["id"] for e in raw if isinstance(e, dict) and isinstance(e.get("id"), str)}
    seen: dict[str, int] = {}
    available = ", ".join(sorted(kinds)) or "none"
    for index, entry in enumerate(raw):
        loc = ("outputs", index)
        if not isinstance(entry, dict):
            continue  # the schema reports it
        kind_name = entry.get("type")
        kind = kinds.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            message = f"every output needs 'type: NAME' (available: {available})" if not isinstance(kind_name, str) else f"unknown output type '{kind_name}' (available: {available})"
            hint = difflib.get_close_matches(kind_name, kinds, n=1) if isinstance(kind_name, str) else []
            if hint:
                message += f". Did you mean '{hint[0]}'?"
            issues.append(ConfigIssue(filename, locate(data, loc + ("type",)), format_path(loc + ("type",)), message))
            continue
        try:
            options = kind.options.model_validate(entry, context={"registry": registry, "config_dir": Path(filename).parent})
        except ValidationError as exc:
            issues.extend(_issues(exc, data, filename, kind.options, prefix=loc))
            continue
        if options.id in seen:
            issues.append(ConfigIssue(filename, locate(data, loc + ("id",)), format_path(loc + ("id",)), f"output id '{options.id}' is already used by outputs[{seen[options.id]}]"))
            continue
        seen[options.id] = index
        if options.device is not None and registry.device(options.device) is None:
            known = ", ".join(str(d) for d in registry.devices) or "none"
            issues.append(ConfigIssue(filename, locate(data, loc + ("device",)), format_path(loc + ("device",)), f"device {options.device} is not defined under 'devices:' (defined: {known})"))
            continue
        valid.append(options)
    return valid, ids


def check_control(data, filename: str, issues: list[ConfigIssue], registry, outputs: list[OutputOptions], all_output_ids: set[str]) -> ControlConfig | None:
    from smartanom.config import _issues

    raw = data.get("control")
    if raw is None:
        return ControlConfig()
    try:
        control = ControlConfig.model_validate(raw)
    except ValidationError as exc:
        issues.extend(_issues(exc, data, filename, ControlConfig, prefix=("control",)))
        return None
    by_id = {o.id: o for o in outputs}
    broken = all_output_ids - set(by_id)
    for path, message in check_references(control, by_id, registry):
        named = getattr(_rule(control, path), "output", None)
        if path[-1] == "output" and named in broken:
            continue  # that output's own errors are reported where it is defined
        loc = ("control",) + path
        issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), message))
    return control


def _rule(control: ControlConfig, path: tuple):
    section, index = path[0], path[1]
    return getattr(control, section)[index]
