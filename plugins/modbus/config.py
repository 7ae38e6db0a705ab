"""YAML options of a `platform: modbus` entry: one bus and the registers polled on it.

Everything that can be checked before the hub starts is checked here, so a
wrong entry fails `smartanom check-config` with file and line (see
docs/modbus.md for the rules, in particular the bus-capacity rule).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from smartanom import PlatformOptions
from smartanom.builtin.modbus.decoding import DATA_TYPES, register_count

DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64"]
assert set(DataType.__args__) == set(DATA_TYPES)  # the schema and the decoder list the same types

_RTU_ONLY = ("baudrate", "parity", "stopbits", "bytesize", "local_echo")


class RegisterSensor(BaseModel):
    """One value on the bus and the hub sensor it feeds."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sensor: int = Field(ge=1, description="hub sensor id, on this entry's device")
    slave: int = Field(ge=0, le=255, description="unit (slave) id: 1-247 on RTU; 0-255 on TCP (0 or 255 for a device addressed directly)")
    register_type: Literal["holding", "input"] = "holding"
    address: int = Field(ge=0, le=65535, description="0-based: datasheet 40001 (holding) or 30001 (input) is 0")
    data_type: DataType = "int16"
    word_order: Literal["big", "little"] | None = None
    byte_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    precision: int | None = Field(None, ge=0, le=10, description="decimal places kept (default: not rounded)")
    interval: float = Field(5.0, gt=0, description="scan interval in seconds")

    @field_validator("word_order")
    @classmethod
    def _word_order_needs_two_registers(cls, value, info: ValidationInfo):
        data_type = info.data.get("data_type")
        if value is not None and data_type is not None and register_count(data_type) == 1:
            raise ValueError(
                f"word_order does not apply to {data_type}: a 16-bit value is one register "
                "(use byte_order: little for a byte-swapped register, or a 32-bit data_type)"
            )
        return value

    @model_validator(mode="after")
    def _address_range_fits(self):
        last = self.address + register_count(self.data_type) - 1
        if last > 65535:
            raise ValueError(f"{self.data_type} at address {self.address} runs past the last register (65535)")
        return self

    @property
    def count(self) -> int:
        return register_count(self.data_type)

    @property
    def words(self) -> Literal["big", "little"]:
        return self.word_order or "big"


class ModbusOptions(PlatformOptions):
    transport: Literal["rtu", "tcp"]
    # rtu: the serial device (/dev/ttyUSB0, COM3); tcp: the TCP port (default 502).
    port: str | int | None = None
    host: str | None = None
    baudrate: int | None = Field(None, gt=0)
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    bytesize: Literal[7, 8] | None = None
    timeout: float = Field(1.0, gt=0, le=60, description="seconds to wait for each answer")
    retries: int = Field(2, ge=0, le=10, description="extra attempts before a read counts as failed")
    gap: float = Field(0.05, ge=0, le=10, description="seconds of silence between requests on this bus")
    local_echo: bool = Field(False, description="rtu: the adapter echoes each request back (RS-485 without echo suppression)")
    reconnect_delay: float = Field(1.0, gt=0, description="first wait after a lost connection; doubles")
    reconnect_delay_max: float = Field(30.0, gt=0, description="longest wait between reconnection attempts")
    sensors: list[RegisterSensor] = Field(min_length=1)

    def readings_per_second(self, registry) -> float | None:
        return sum(1.0 / s.interval for s in self.sensors)

    @field_validator("port")
    @classmethod
    def _port_matches_transport(cls, value, info: ValidationInfo):
        transport = info.data.get("transport")
        if transport == "rtu" and not (isinstance(value, str) and value):
            raise ValueError("with transport: rtu, port is the serial device, e.g. /dev/ttyUSB0")
        if transport == "tcp" and not (isinstance(value, int) and 1 <= value <= 65535):
            raise ValueError("with transport: tcp, port is a TCP port number (1-65535), e.g. 502")
        return value

    @field_validator("host")
    @classmethod
    def _host_only_for_tcp(cls, value, info: ValidationInfo):
        if info.data.get("transport") == "rtu":
            raise ValueError("host applies to transport: tcp only (a serial bus is named by port)")
        return value

    @field_validator(*_RTU_ONLY)
    @classmethod
    def _serial_settings_only_for_rtu(cls, value, info: ValidationInfo):
        if info.data.get("transport") == "tcp":
            raise ValueError(f"{info.field_name} applies to transport: rtu only")
        return value

    @field_validator("sensors")
    @classmethod
    def _sensors_fit_the_device_and_the_bus(cls, sensors: list[RegisterSensor], info: ValidationInfo):
        errors: list[InitErrorDetails] = []

        def error(index: int, key: str, kind: str, message: str, **ctx) -> None:
            errors.append(InitErrorDetails(type=PydanticCustomError(kind, message, ctx), loc=(index, key), input=getattr(sensors[index], key)))

        registry = (info.context or {}).get("registry")
        device = registry.device(info.data["device"]) if registry is not None and info.data.get("device") is not None else None
        own = {s.id for s in device.sensors} if device is not None else None

        if info.data.get("transport") == "rtu":
            for index, s in enumerate(sensors):
                if not 1 <= s.slave <= 247:
                    error(index, "slave", "rtu_slave_range",
                          "slave {slave} is not an RTU unit id: use 1-247 (0 is broadcast on RS-485; 0 and 255 are for TCP devices)",
                          slave=s.slave)

        seen_sensor: dict[int, int] = {}
        taken: dict[tuple[int, str, int], int] = {}
        for index, s in enumerate(sensors):
            if own is not None and s.sensor not in own:
                error(index, "sensor", "sensor_not_on_device", "sensor {sensor} is not on device {device} (its sensors: {own})",
                      sensor=s.sensor, device=device.id, own=str(sorted(own)))
            if s.sensor in seen_sensor:
                error(index, "sensor", "duplicate_sensor", "sensor {sensor} is already fed by sensors[{first}] of this entry",
                      sensor=s.sensor, first=seen_sensor[s.sensor])
            seen_sensor.setdefault(s.sensor, index)
            clash = next((taken[(s.slave, s.register_type, a)] for a in range(s.address, s.address + s.count) if (s.slave, s.register_type, a) in taken), None)
            if clash is not None:
                error(index, "address", "duplicate_register",
                      "slave {slave} {register} register {address} is already read by sensors[{first}] (each (slave, address) once per bus)",
                      slave=s.slave, register=s.register_type, address=s.address, first=clash)
            for a in range(s.address, s.address + s.count):
                taken.setdefault((s.slave, s.register_type, a), index)
            if device is not None and s.interval >= device.offline_after:
                error(index, "interval", "interval_too_long",
                      "interval {interval} s is not shorter than device {device}'s offline_after ({offline} s): it would look offline between reads",
                      interval=s.interval, device=device.id, offline=device.offline_after)

        # Bus capacity: a request may hold the bus for `timeout` (a probe that answers
        # late or not at all) plus the `gap` after it, and every sensor needs one
        # request per interval, so the bus is overbooked when the sum of
        # (timeout + gap) / interval over its sensors exceeds 1.
        timeout, gap = info.data.get("timeout"), info.data.get("gap")
        if timeout is not None and gap is not None and not errors:
            slot = timeout + gap
            load = sum(slot / s.interval for s in sensors)
            if load > 1.0 + 1e-9:
                index = min(range(len(sensors)), key=lambda i: sensors[i].interval)
                needed = slot * len(sensors)
                error(index, "interval", "bus_overbooked",
                      "the bus cannot serve these scan intervals: each request may hold it for timeout + gap = {slot} s, "
                      "and {n} sensors at their intervals need {load} s of bus time per second (at most 1); "
                      "lengthen intervals (all equal: at least {needed} s), or shorten timeout or gap",
                      slot=round(slot, 3), n=len(sensors), load=round(load, 2), needed=round(needed, 3))
        if errors:
            raise ValidationError.from_exception_data("sensors", errors)
        return sensors

    @model_validator(mode="after")
    def _tcp_needs_host(self):
        if self.transport == "tcp" and not self.host:
            raise ValueError("transport: tcp needs host: (the gateway's or probe's address)")
        if self.transport == "rtu" and self.port is None:
            raise ValueError("transport: rtu needs port: (the serial device, e.g. /dev/ttyUSB0)")
        if self.reconnect_delay_max < self.reconnect_delay:
            raise ValueError("reconnect_delay_max must not be shorter than reconnect_delay")
        return self

    # Defaults that depend on the transport, resolved here so the runner reads one place.
    @property
    def serial_settings(self) -> dict:
        return {
            "baudrate": self.baudrate or 9600,
            "parity": self.parity or "N",
            "stopbits": self.stopbits or 1,
            "bytesize": self.bytesize or 8,
        }

    @property
    def tcp_port(self) -> int:
        return self.port if isinstance(self.port, int) else 502

    def exclusive_resources(self) -> dict[str, str]:
        return {"port": f"serial port {os.path.realpath(self.port)}"} if self.transport == "rtu" else {}

    def config_warnings(self) -> list[tuple[tuple, str]]:
        found = []
        for index, s in enumerate(self.sensors):
            if 30001 <= s.address <= 49999:
                table, first = ("holding", 40001) if s.address >= 40001 else ("input", 30001)
                found.append((("sensors", index, "address"),
                              f"address {s.address} looks like a datasheet register number ({table} register {first} = offset 0), "
                              f"but addresses here are 0-based offsets: if so, write address: {s.address - first} with register_type: {table}"))
        return found

    @property
    def bus_name(self) -> str:
        return f"{self.port}" if self.transport == "rtu" else f"{self.host}:{self.tcp_port}"
