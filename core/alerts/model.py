"""An alert, and the clock alerting runs on.

An alert is one episode of one condition (a rule key such as
`sensor_2_range`, `sensor_2_no_data`, `device_1_inactive`, or a key another
subsystem raises): it starts `firing`, may be `acknowledged` by a person, and
ends `resolved`. At most one alert per key is active at a time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from smartanom.protocol import format_timestamp

FIRING, ACKNOWLEDGED, RESOLVED = "firing", "acknowledged", "resolved"
SEVERITIES = ("warning", "critical")


class Clock:
    """Wall time for people and records, monotonic time for periods.

    Tests pass a FakeClock and move it forward; the hub uses this one.
    """

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock(Clock):
    """Simulated time for tests: `advance(seconds)` moves both clocks."""

    def __init__(self, start: float = 1_750_000_000.0):
        self._wall = start
        self._mono = 1000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds


@dataclass
class Alert:
    id: int
    key: str
    kind: str  # range | no_data | inactive | whatever another subsystem raises
    device_id: int | None
    sensor_id: int | None
    severity: str
    message: str
    started_at: float
    state: str = FIRING
    value: float | None = None
    threshold: float | None = None
    trigger: str = ""  # below_min, above_max, below_critical_min, above_critical_max, no_data, inactive, ...
    recommendation: str = ""
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    # Notices the notifier has delivered, by "notice:target" (restored from the store).
    delivered: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def active(self) -> bool:
        return self.state != RESOLVED

    def as_json(self) -> dict:
        data = asdict(self)
        data.pop("delivered")
        for key in ("started_at", "acknowledged_at", "resolved_at"):
            if data[key] is not None:
                data[key] = format_timestamp(data[key])
        return data
