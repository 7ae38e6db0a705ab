"""Deriving each device's status from what arrives.

A device is `active` while its readings arrive, `inactive` once none came
within its `offline_after` seconds or its plugin reported the hardware gone,
and `maintenance` when a client says so (sticky until a client changes it).
Each change is published once on the bus as a DeviceStatusChanged.
"""

from __future__ import annotations

import asyncio
import logging
import time

from smartanom.bus import EventBus
from smartanom.events import DeviceStatus, DeviceStatusChanged, SensorReading
from smartanom.registry import Device, Registry

log = logging.getLogger("smartanom.status")


class StatusTracker:
    def __init__(self, registry: Registry, bus: EventBus):
        self.registry = registry
        self.bus = bus
        # Every device starts inactive: nothing has been heard from it yet.
        self._status: dict[int, DeviceStatus] = {d: DeviceStatus.INACTIVE for d in registry.devices}
        # Wall-clock time of the last reading, for people (API, dashboard)...
        self._last_seen: dict[int, float | None] = {d: None for d in registry.devices}
        # ...and monotonic time for the offline timer, which must not jump when
        # NTP sets the clock of a Raspberry Pi (no real-time clock) after boot.
        self._heard: dict[int, float | None] = {d: None for d in registry.devices}
        self._unsubscribe = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._unsubscribe = self.bus.subscribe(SensorReading, self._on_reading)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def of(self, device_id: int) -> DeviceStatus | None:
        """A device's current status, or None for an unknown device."""
        return self._status.get(device_id)

    def last_reading_at(self, device_id: int) -> float | None:
        """Wall-clock time (epoch seconds) of the device's last reading, or None."""
        return self._last_seen.get(device_id)

    def _on_reading(self, reading: SensorReading) -> None:
        device = reading.sensor.device
        self._last_seen[device.id] = time.time()
        self._heard[device.id] = time.monotonic()
        if self._status[device.id] is DeviceStatus.INACTIVE:
            self._change(device, DeviceStatus.ACTIVE, "reading received")

    def set_status(self, device: Device, status: DeviceStatus, reason: str = "") -> bool:
        """Set a status by request (a client, a plugin). Returns whether it changed."""
        if status is DeviceStatus.ACTIVE:
            # An explicit 'active' starts a fresh offline_after window.
            self._heard[device.id] = time.monotonic()
        return self._change(device, status, reason)

    def set_available(self, device: Device, available: bool, reason: str = "") -> None:
        if not available and self._status[device.id] is DeviceStatus.ACTIVE:
            self._change(device, DeviceStatus.INACTIVE, reason or "hardware unavailable")

    def _forgive(self, seconds: float) -> None:
        for device_id, heard in self._heard.items():
            if heard is not None:
                self._heard[device_id] = heard + seconds

    def _change(self, device: Device, status: DeviceStatus, reason: str) -> bool:
        previous = self._status[device.id]
        if previous is status:
            return False
        self._status[device.id] = status
        log.info("Device %s (%s): %s -> %s (%s)", device.id, device.name, previous, status, reason)
        self.bus.publish(DeviceStatusChanged(device, status, time.time(), previous, reason))
        return True

    async def _watch(self) -> None:
        period = min([d.offline_after for d in self.registry.devices.values()] + [4.0]) / 4
        period = max(period, 0.05)
        woke = time.monotonic()
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            # Waking late means the loop was held (core/watchdog.py names by whom):
            # readings could not be received meanwhile, so that time is not
            # counted as the devices' silence.
            held, woke = now - woke - period, now
            if held > period:
                self._forgive(held)
            for device in self.registry.devices.values():
                seen = self._heard[device.id]
                if (
                    self._status[device.id] is DeviceStatus.ACTIVE
                    and seen is not None
                    and now - seen > device.offline_after
                ):
                    self._change(device, DeviceStatus.INACTIVE, f"no reading for {device.offline_after:g} s")
