"""The alert engine: the evaluator on the bus, with a store, a notifier and the streams.

Where it sits in a reading's road: bus -> `AlertEngine._on_reading` ->
`Evaluator` -> each transition is (1) put on the bus as an `AlertChanged` (the
MQTT plugin follows it), (2) broadcast as `{"type": "alert", ...}` to
/ws/sensor-data/ and the alert's device and sensor streams, (3) written to the
store, (4) handed to the notifier. A timer ticks the evaluator and notifier.

Other subsystems use the small public surface below: `active()`,
`active_for_sensor()`, `active_for_device()`, `raise_alert()`,
`resolve_alert()` and `acknowledge()` (docs/alerts.md, "For other subsystems").
"""

from __future__ import annotations

import asyncio
import json
import logging

from smartanom.alerts import store as db
from smartanom.alerts.evaluator import Evaluator, Transition
from smartanom.alerts.model import Alert, Clock
from smartanom.alerts.notify import Notifier
from smartanom.alerts.rules import build_rules, inactive_key, no_data_key, range_key
from smartanom.alerts.store import AlertStore
from smartanom.events import AlertChanged, DeviceStatus, DeviceStatusChanged, SensorReading

log = logging.getLogger("smartanom.alerts")

# Resolved notices still owed from before a restart are sent if the alert resolved this recently.
OWED_WINDOW = 86400.0


class AlertEngine:
    def __init__(self, config, registry, bus, fanout, status, clock: Clock | None = None, tick: float | None = None):
        self.settings = config.alerts
        self.registry = registry
        self.bus = bus
        self.fanout = fanout
        self.status = status
        self.clock = clock or Clock()
        self.rules = build_rules(config.devices, config.alerts, config.profiles)
        self.store = AlertStore(config.storage.path)
        self.evaluator = Evaluator(registry, self.rules, self.settings, self.clock, self.store.next_id)
        self.notifier = Notifier(self.settings.notify, self.settings, self.clock, self.store, self._silenced)
        shortest = min([r.pending for r in self.rules.ranges.values() if r.pending > 0] + [4.0])
        # Pending periods are kept to about a quarter of their length, and at least once a second.
        self.tick_interval = tick if tick is not None else max(0.05, min(1.0, shortest / 4))
        self._unsubscribers: list = []
        self._task: asyncio.Task | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def start(self) -> None:
        restored, owed = await self.store.open(owed_since=self.clock.time() - OWED_WINDOW)
        self.evaluator.restore(restored)
        for alert in restored:
            self.notifier.notify(alert, "started")  # only targets it never reached
        for alert in owed:
            self.notifier.notify(alert, "resolved")
        if restored:
            log.info("%d alert(s) still active from before the restart", len(restored))
        # A rule taken out of the config while its alert was active: nothing would ever resolve it.
        self._apply([t for alert in restored if not self._still_watched(alert) for t in self.evaluator.resolve(alert.key)])
        if self.enabled:
            self._unsubscribers = [
                self.bus.subscribe(SensorReading, self._on_reading),
                self.bus.subscribe(DeviceStatusChanged, self._on_status),
            ]
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alerts")

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribers:
            unsubscribe()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.notifier.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)

    # --- the public surface for people and other subsystems ---------------------------------

    def active(self) -> list[Alert]:
        """Every active (firing or acknowledged) alert, oldest first."""
        return sorted(self.evaluator.active.values(), key=lambda a: a.id)

    def active_for_sensor(self, sensor_id: int) -> list[Alert]:
        """Active alerts about one sensor (range, no data, or raised by another subsystem)."""
        return [a for a in self.active() if a.sensor_id == sensor_id]

    def active_for_device(self, device_id: int) -> list[Alert]:
        return [a for a in self.active() if a.device_id == device_id]

    def raise_alert(self, key: str, kind: str, message: str, *, severity: str = "warning", device_id: int | None = None,
                    sensor_id: int | None = None, value: float | None = None, threshold: float | None = None,
                    recommendation: str = "") -> Alert:
        """Start an alert of another subsystem's own (e.g. kind "calibration_due"); idempotent per `key`.

        Returns the active alert with that key. It notifies, streams and is stored
        like any other, and ends with `resolve_alert(key)` or an acknowledgement
        followed by a resolve. Call on the event loop.
        """
        if severity not in ("warning", "critical"):
            raise ValueError(f"severity must be 'warning' or 'critical', got {severity!r}")
        self._apply(self.evaluator.raise_alert(
            key, kind, severity, message, device_id=device_id, sensor_id=sensor_id,
            value=value, threshold=threshold, recommendation=recommendation,
        ))
        return self.evaluator.active.get(key)

    def resolve_alert(self, key: str) -> bool:
        """End the active alert with `key`; False when there is none."""
        transitions = self.evaluator.resolve(key)
        self._apply(transitions)
        return bool(transitions)

    def acknowledge(self, alert_id: int, by: str) -> Alert:
        """Mark an active alert as seen by `by`: repeats stop; it still resolves on its own.

        Raises KeyError for an id that is not active."""
        transitions = self.evaluator.acknowledge(alert_id, by)
        self._apply(transitions)
        return next(a for a in self.evaluator.active.values() if a.id == alert_id)

    def catalog(self) -> list[dict]:
        """Every condition watched: {key, name, device_id, sensor_id}, for mirrors such as MQTT."""
        if not self.enabled:
            return []
        rules = []
        for device in self.registry.devices.values():
            rules.append({"key": inactive_key(device.id), "name": f"{device.name} inactive", "device_id": device.id, "sensor_id": None})
            for sensor in device.sensors:
                if sensor.id in self.rules.ranges:
                    rules.append({"key": range_key(sensor.id), "name": f"{sensor.name} out of range", "device_id": device.id, "sensor_id": sensor.id})
                if self.rules.no_data_after.get(sensor.id, 0) > 0:
                    rules.append({"key": no_data_key(sensor.id), "name": f"{sensor.name} silent", "device_id": device.id, "sensor_id": sensor.id})
        return rules

    def health(self) -> dict:
        """For /api/health: how many alerts are active, and how notifying goes."""
        notifier = self.notifier
        return {
            "active": len(self.evaluator.active),
            "notifications": {"sent": notifier.sent, "failed": notifier.failed, "pending": notifier.pending},
            "store_error": self.store.error,
        }

    def check(self) -> None:
        """Run timers now (the tick loop calls this; tests on a FakeClock call it after advancing)."""
        self._apply(self.evaluator.tick())
        self.notifier.tick(self.active())

    # --- internals -------------------------------------------------------------------------

    def _still_watched(self, alert: Alert) -> bool:
        if alert.kind == "range":
            return alert.sensor_id in self.rules.ranges
        if alert.kind == "no_data":
            return self.rules.no_data_after.get(alert.sensor_id, 0) > 0
        if alert.kind == "inactive":
            return alert.device_id in self.registry.devices
        return True  # raised by another subsystem: it resolves its own

    def _silenced(self, alert: Alert) -> bool:
        return alert.device_id is not None and self.status.of(alert.device_id) is DeviceStatus.MAINTENANCE

    def _on_reading(self, reading: SensorReading) -> None:
        self._apply(self.evaluator.reading(reading.sensor, reading.value, reading.timestamp))

    def _on_status(self, event: DeviceStatusChanged) -> None:
        self._apply(self.evaluator.device_status(event.device.id, event.status, event.reason))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                self.check()
            except Exception:
                log.exception("Alert check failed; trying again in %g s", self.tick_interval)

    def _apply(self, transitions: list[Transition]) -> None:
        for event, alert in transitions:
            log.log(logging.WARNING if event in ("started", "escalated") else logging.INFO,
                    "Alert %d %s (%s, %s): %s", alert.id, event, alert.key, alert.severity, alert.message)
            self.bus.publish(AlertChanged(event, alert.key, alert.as_json()))
            self._broadcast(event, alert)
            self.store.submit(db.save, event, alert, self.clock.time())
            if event in ("started", "escalated", "resolved"):
                self.notifier.notify(alert, event)

    def _broadcast(self, event: str, alert: Alert) -> None:
        text = json.dumps({"type": "alert", "event": event, **alert.as_json()}, separators=(",", ":"))
        self.fanout.broadcast(text, device_id=alert.device_id, sensor_id=alert.sensor_id)
