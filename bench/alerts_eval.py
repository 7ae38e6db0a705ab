"""What judging a reading against its alert rule costs: `.venv/bin/python bench/alerts_eval.py`.

The alert engine is one more bus listener on every reading (core/alerts/engine.py);
this times its evaluator alone, for a sensor with a profile range, in range and
out of range (pending or firing), on the real clock. Results: docs/perf.md.
"""

from __future__ import annotations

import pathlib
import tempfile
import textwrap
import timeit

from smartanom.alerts.evaluator import Evaluator
from smartanom.alerts.model import Clock
from smartanom.alerts.rules import build_rules
from smartanom.config import load_config

YAML = """
devices:
  - id: 1
    name: Tank
    profile: lettuce
    sensors:
      - {id: 1, type: ph}
"""


def main(n: int = 200_000) -> None:
    path = pathlib.Path(tempfile.mkdtemp()) / "hub.yaml"
    path.write_text(textwrap.dedent(YAML))
    config = load_config(path, {})
    registry = config.build_registry()
    ids = iter(range(1, 10**9))
    evaluator = Evaluator(registry, build_rules(config.devices, config.alerts, config.profiles), config.alerts, Clock(), lambda: next(ids))
    sensor = registry.sensor(1)
    for label, value in (("in range", 6.0), ("out of range (pending, then firing)", 6.5)):
        best = min(timeit.repeat(lambda: evaluator.reading(sensor, value, None), number=n, repeat=5)) / n
        print(f"evaluator.reading, {label}: {best * 1e6:.2f} us per reading")


if __name__ == "__main__":
    main()
