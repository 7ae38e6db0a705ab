"""The `mqtt_switch` output: a Tasmota or ESPHome relay, switched through the mqtt instance's connection.

A command goes straight to the broker on the bridge's live connection, never
into the outbox: a command queued while the broker is away and delivered
later would switch a pump that nobody asked for any more. A switch counts
only when the device confirms it on its state topic within `confirm_timeout`;
otherwise `set` raises, the hub marks the output unavailable and retries its
safe state every control period.

The hub's own view of each of these outputs is published (retained) on
<prefix>/<hub_id>/output/<id>/state and announced to Home Assistant as a
`switch` whose command topic <prefix>/<hub_id>/output/<id>/set asks the hub
for a manual override (homeassistant.override_minutes), never the device
directly: the hub's limits and interlocks still apply.
"""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from pydantic import Field, model_validator

from smartanom import OutputChanged, OutputContext, OutputError, OutputKind, OutputOptions, OverrideRequest
from smartanom.builtin.mqtt.messages import Message


class MqttSwitchOptions(OutputOptions):
    mqtt: str | None = Field(None, description="the `name:` of the mqtt plugin instance to use (default: the only one)")
    style: Literal["tasmota", "esphome"]
    node: str = Field(min_length=1, description="Tasmota: its topic (e.g. tasmota_5C1A2B); ESPHome: the node name")
    relay: int | None = Field(None, ge=1, le=32, description="Tasmota: which relay (POWER1...), none for a single relay")
    switch: str | None = Field(None, min_length=1, description="ESPHome: the switch's object id (e.g. pump_relay)")
    confirm_timeout: float = Field(5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _style_keys(self):
        if self.style == "esphome" and self.switch is None:
            raise ValueError("style esphome needs 'switch:', the switch's object id on the node")
        if self.style == "tasmota" and self.switch is not None:
            raise ValueError("'switch:' is for style esphome; Tasmota relays are chosen with 'relay:'")
        return self

    def topics(self) -> tuple[str, str]:
        """(command topic, state topic) of the device."""
        if self.style == "tasmota":
            power = f"POWER{self.relay or ''}"
            return f"cmnd/{self.node}/{power}", f"stat/{self.node}/{power}"
        base = f"{self.node}/switch/{self.switch}"
        return f"{base}/command", f"{base}/state"


class SwitchLink:
    """What one mqtt instance offers the switches that use it: its live client,
    confirmations from the devices, and Home Assistant's view of each switch."""

    def __init__(self, topics, enqueue, bus, ha_prefix: str | None, hub_id: str, override_minutes: float):
        self.client = None  # the connected aiomqtt.Client, None while the broker is away
        self.topics = topics
        self.enqueue = enqueue  # the bridge's outbox: for the hub's own retained state, never for commands
        self.bus = bus
        self.ha_prefix = ha_prefix
        self.hub_id = hub_id
        self.override_minutes = override_minutes
        self.switches: dict[str, MqttSwitchOptions] = {}
        self._set_topics: dict[str, str] = {}  # <base>/output/<id>/set -> output id
        self._subscribed: set[str] = set()
        self._waiting: dict[str, list[tuple[bytes, asyncio.Future]]] = {}

    def state_topics(self) -> set[str]:
        return {o.topics()[1] for o in self.switches.values()}

    async def register(self, options: MqttSwitchOptions) -> None:
        if options.id in self.switches:
            return
        self.switches[options.id] = options
        self._set_topics[f"{self.topics.base}/output/{options.id}/set"] = options.id
        if self.ha_prefix is not None:
            for message in self.discovery_messages([options]):
                self.enqueue(message)
        if self.client is not None:
            await self._subscribe_all()

    async def connected(self, client) -> None:
        self._subscribed = set()
        self.client = client
        await self._subscribe_all()

    def disconnected(self) -> None:
        self.client = None
        for waiters in self._waiting.values():
            for _, future in waiters:
                if not future.done():
                    future.set_exception(OutputError("lost the broker before the device confirmed"))
        self._waiting.clear()

    async def _subscribe_all(self) -> None:
        for topic in sorted(self.state_topics() | (set(self._set_topics) if self.ha_prefix else set())):
            if topic not in self._subscribed:
                await self.client.subscribe(topic, qos=1)
                self._subscribed.add(topic)

    async def command(self, options: MqttSwitchOptions, on: bool) -> None:
        await self.register(options)
        if self.client is None:
            raise OutputError("not connected to the broker")
        topic, state_topic = options.topics()
        payload = "ON" if on else "OFF"
        future = asyncio.get_running_loop().create_future()
        waiter = (payload.encode(), future)
        waiters = self._waiting.setdefault(state_topic, [])
        waiters.append(waiter)
        try:
            await self.client.publish(topic, payload, qos=1)
            await asyncio.wait_for(future, options.confirm_timeout)
        except asyncio.TimeoutError:
            raise OutputError(f"no confirmation on {state_topic} within {options.confirm_timeout:g} s") from None
        except OutputError:
            raise
        except Exception as exc:  # aiomqtt's MqttError and its kin
            raise OutputError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if waiter in waiters:
                waiters.remove(waiter)

    def accept(self, topic: str, payload: bytes, retained: bool) -> bool:
        """True if the message was for a switch (then it is not a reading)."""
        if topic in self._set_topics:
            if not retained and payload.strip().upper() in (b"ON", b"OFF"):
                # Home Assistant's switch: a manual override, with an expiry like the API's.
                on = payload.strip().upper() == b"ON"
                self.bus.publish(OverrideRequest(self._set_topics[topic], on, self.override_minutes * 60, "Home Assistant (MQTT)"))
            return True
        if topic not in self.state_topics():
            return False
        if retained:
            return True  # replayed at subscribe time: says nothing about the command just sent
        state = payload.strip().upper()
        for expected, future in self._waiting.get(topic, []):
            if expected == state and not future.done():
                future.set_result(None)
        return True

    def on_output_changed(self, event: OutputChanged) -> None:
        if event.output.id in self.switches and event.ok:
            payload = {"state": "ON" if event.on else "OFF", "source": event.source, "reason": event.reason}
            self.enqueue(Message(f"{self.topics.base}/output/{event.output.id}/state", json.dumps(payload, separators=(",", ":")), 1, True))

    def discovery_messages(self, switches=None) -> list[Message]:
        """Home Assistant discovery of each switch as a `switch` entity, retained."""
        node = f"smartanom_{self.hub_id}"
        messages = []
        for options in self.switches.values() if switches is None else switches:
            base = f"{self.topics.base}/output/{options.id}"
            config = {
                "name": options.name,
                "unique_id": f"{node}_output_{options.id}",
                "state_topic": f"{base}/state",
                "command_topic": f"{base}/set",
                "value_template": "{{ value_json.state }}",
                "availability": [{"topic": self.topics.availability}],
                "device": {"identifiers": [f"{node}_device_{options.device}" if options.device is not None else node]},
            }
            messages.append(Message(f"{self.ha_prefix}/switch/{node}/output_{options.id}/config", json.dumps(config), 1, True))
        return messages


class MqttSwitch:
    def __init__(self, options: MqttSwitchOptions, ctx: OutputContext):
        self.options = options
        self.ctx = ctx

    async def set(self, on: bool) -> None:
        link: SwitchLink = self.ctx.instance_object("mqtt", self.options.mqtt, "mqtt")
        await link.command(self.options, on)


OUTPUT_KIND = OutputKind(
    name="mqtt_switch",
    create=MqttSwitch,
    options=MqttSwitchOptions,
    description="A Tasmota or ESPHome relay over MQTT, confirmed on its state topic",
)
