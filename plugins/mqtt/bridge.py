"""The mqtt platform's task: keep a broker connection and move messages both ways.

Out: bus events (readings, device status changes) -> `Outbox` -> the broker,
in order, at least once for QoS >= 1. In: subscribed topics -> `Route`s ->
`ctx.publish_reading`, so MQTT devices and edge hubs feed this hub's bus like
any plugin. A broker that is down at start or lost later is retried with
exponential backoff; meanwhile the outbox keeps the newest `queue_size`
messages. aiomqtt's errors stay in here: the hub only sees counters in
`ctx.stats` (GET /api/plugins) and log lines.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from importlib import metadata

import aiomqtt

from smartanom import AlertChanged, DeviceStatus, DeviceStatusChanged, LogThrottle, OutputChanged, PluginContext, SensorReading
from smartanom.builtin.mqtt import alerts
from smartanom.builtin.mqtt.config import MqttOptions, TlsOptions
from smartanom.builtin.mqtt.discovery import discovery_messages
from smartanom.builtin.mqtt.inbound import PayloadError, Route, routes_from
from smartanom.builtin.mqtt.messages import OFFLINE, ONLINE, Message, Topics, reading_message, status_message
from smartanom.builtin.mqtt.outbox import Outbox
from smartanom.builtin.mqtt.switch import SwitchLink

# Messages handed to the client at once; a QoS 1 batch costs one round trip, not one per message.
BATCH = 100
# How long a stopping hub waits for the broker to acknowledge its "offline".
GOODBYE_TIMEOUT = 2.0


async def run(ctx: PluginContext) -> None:
    await Bridge(ctx).run()


def tls_context(tls: TlsOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure:
        context.check_hostname = False
    return context


class Bridge:
    def __init__(self, ctx: PluginContext):
        self.ctx = ctx
        self.options: MqttOptions = ctx.options
        options = self.options
        self.topics = Topics(options.topic_prefix, options.hub_id)
        self.outbox = Outbox(options.queue_size)
        self.routes: dict[str, list[Route]] = routes_from(options)
        self.ha_status_topic = f"{options.homeassistant.prefix}/status" if self._discovery else None
        self.broker = f"{options.broker.host}:{options.broker.port}"
        self.stats = ctx.stats
        self.stats.update(
            broker=self.broker, connected=False, connections=0, published=0, queued=0, dropped=0,
            queue_size=options.queue_size, received=0, rejected=0, retained_skipped=0, last_error=None,
        )
        self._warned = LogThrottle()  # per kind of warning: one a minute each
        self._announced_alerts: set[str] = set()
        ha = options.homeassistant
        self.switches = SwitchLink(
            self.topics, self._enqueue, ctx.bus, ha.prefix if self._discovery else None, options.hub_id,
            ha.override_minutes if ha is not None else 60.0,
        )
        ctx.shared[("mqtt", ctx.label)] = self.switches  # for mqtt_switch outputs (switch.py)

    @property
    def _discovery(self) -> bool:
        ha = self.options.homeassistant
        return ha is not None and ha.discovery

    async def run(self) -> None:
        bus = self.ctx.bus
        unsubscribe = []
        if self.options.publish_readings:
            unsubscribe.append(bus.subscribe(SensorReading, self._on_reading))
        if self.options.publish_status:
            unsubscribe.append(bus.subscribe(DeviceStatusChanged, self._on_status))
        if self.options.publish_alerts:
            unsubscribe.append(bus.subscribe(AlertChanged, self._on_alert))
        unsubscribe.append(bus.subscribe(OutputChanged, self.switches.on_output_changed))
        delay = self.options.reconnect_min_delay
        try:
            while True:
                try:
                    await self._session()
                except aiomqtt.MqttError as exc:
                    self.stats["last_error"] = str(exc) or type(exc).__name__
                if self.stats["connected"]:
                    delay = self.options.reconnect_min_delay  # it was up: start the backoff afresh
                    self.ctx.log.warning("%s: lost the broker %s (%s); reconnecting in %g s", self.ctx.label, self.broker, self.stats["last_error"], delay)
                else:
                    self.ctx.log.warning("%s: cannot reach the broker %s (%s); retrying in %g s, %d messages queued", self.ctx.label, self.broker, self.stats["last_error"], delay, len(self.outbox))
                self.stats["connected"] = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.reconnect_max_delay)
        finally:
            for undo in unsubscribe:
                undo()
            self.stats["connected"] = False
            self.ctx.shared.pop(("mqtt", self.ctx.label), None)

    # --- bus -> outbox ------------------------------------------------------------

    def _on_reading(self, reading: SensorReading) -> None:
        self._enqueue(reading_message(self.topics, reading, self.options.qos, self.options.retain))

    def _on_status(self, event: DeviceStatusChanged) -> None:
        self._enqueue(status_message(self.topics, event, self.options.qos, self.options.retain_status))

    def _on_alert(self, event: AlertChanged) -> None:
        if self._discovery and event.key not in self._announced_alerts:
            # Raised by another subsystem (not among ctx.alert_rules()): announce it now.
            self._announced_alerts.add(event.key)
            rule = {"key": event.key, "name": event.alert["message"][:80], "device_id": event.alert["device_id"]}
            self._enqueue(alerts.discovery_messages([rule], self.options.hub_id, self.options.homeassistant.prefix, self.topics, _version())[0])
        self._enqueue(alerts.state_message(self.topics, event.key, event.alert, self.options.qos))

    def _enqueue(self, message: Message) -> None:
        before = self.outbox.dropped
        self.outbox.put(message)
        self._count()
        if self.outbox.dropped != before and self._may_warn("dropped"):
            self.ctx.log.warning(
                "%s: broker %s away and the queue is full (%d messages): %d oldest dropped so far",
                self.ctx.label, self.broker, self.outbox.maxlen, self.outbox.dropped,
            )

    def _count(self) -> None:
        self.stats["queued"] = len(self.outbox)
        self.stats["dropped"] = self.outbox.dropped

    # --- one connection -----------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        broker = self.options.broker
        client = aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=broker.client_id or f"smartanom-{self.options.hub_id}",
            clean_session=not broker.persistent_session,
            keepalive=broker.keepalive,
            will=aiomqtt.Will(self.topics.availability, OFFLINE, qos=1, retain=True),
            tls_context=tls_context(broker.tls) if broker.tls is not None else None,
            timeout=10,
        )
        # A whole batch in flight is normal here, not the warning sign aiomqtt's default assumes.
        client.pending_calls_threshold = BATCH + len(self.routes) + 10
        _manual_acks(client)
        return client

    async def _session(self) -> None:
        """Connect, announce, then pump both ways until the connection fails (MqttError)."""
        client = self._client()
        stopping = False
        try:
            async with client:
                self.stats["connections"] += 1
                self.ctx.log.info("%s: connected to the broker %s as hub %s (%d messages queued)", self.ctx.label, self.broker, self.options.hub_id, len(self.outbox))
                try:
                    await self._announce(client)
                    self.stats["connected"] = True  # announced: from here on it is business as usual
                    await self._pump(client)
                except asyncio.CancelledError:
                    stopping = True
                    await self._say_offline(client)
                    raise
        except aiomqtt.MqttError:
            if stopping:
                # Older aiomqtt (2.3) raises the disconnect reason on leaving `async with`:
                # the hub's cancellation must still win, or the task would not stop.
                raise asyncio.CancelledError from None
            raise
        finally:
            self.switches.disconnected()
            _read_disconnect_reason(client)

    async def _announce(self, client: aiomqtt.Client) -> None:
        await client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        for topic in [*self.routes, *([self.ha_status_topic] if self._discovery else [])]:
            granted = await client.subscribe(topic, qos=1)
            if any(int(getattr(code, "value", code)) >= 0x80 for code in granted):
                # An ACL said no: the rest still works, but this topic will stay silent.
                self.ctx.log.error("%s: the broker %s refused the subscription to %s (check its ACL)", self.ctx.label, self.broker, topic)
        await self.switches.connected(client)
        if self._discovery:
            self.outbox.put_back(self._discovery_messages() + self.switches.discovery_messages())
        if self.options.publish_status:
            # After the backlog: the broker's retained status ends up current even if a
            # change happened before this task subscribed to the bus.
            for message in self._status_snapshot():
                self.outbox.put(message)
        if self.options.publish_alerts:
            # Straight to the broker, not through the bounded outbox, where current states would
            # push out queued readings; changes queued meanwhile follow them, in order.
            snapshot = alerts.snapshot(self.ctx.alert_rules(), self.ctx.active_alerts(), self.topics, self.options.qos)
            await asyncio.gather(*(client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain) for m in snapshot))

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """The hub is stopping: say goodbye ourselves (a clean disconnect sends no will)."""
        self.ctx.log.info("%s: stopping: telling the broker %s this hub is going offline", self.ctx.label, self.broker)
        goodbye = asyncio.ensure_future(client.publish(self.topics.availability, OFFLINE, qos=1, retain=True))
        # If the broker goes away meanwhile no acknowledgement will come: stop waiting then.
        await asyncio.wait({goodbye, _connection_lost(client)}, timeout=GOODBYE_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        goodbye.cancel()
        await asyncio.gather(goodbye, return_exceptions=True)

    async def _pump(self, client: aiomqtt.Client) -> None:
        sender = asyncio.ensure_future(self._send(client))
        receiver = asyncio.ensure_future(self._receive(client))
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sender.cancel()
            receiver.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)
        for task in done:
            task.result()  # the MqttError that ended the connection
        raise aiomqtt.MqttError("connection ended")

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            batch = await self.outbox.take(BATCH)
            self._count()
            try:
                results = await asyncio.gather(
                    *(client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain) for m in batch),
                    return_exceptions=True,
                )
            except asyncio.CancelledError:
                # Connection gone mid-batch: resend all of it (at least once, never lost).
                self.outbox.put_back(batch)
                self._count()
                raise
            failed = [m for m, result in zip(batch, results) if isinstance(result, BaseException)]
            self.stats["published"] += len(batch) - len(failed)
            if failed:
                self.outbox.put_back(failed)
                self._count()
                error = next(r for r in results if isinstance(r, BaseException))
                raise error if isinstance(error, aiomqtt.MqttError) else aiomqtt.MqttError(str(error))

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            if topic == self.ha_status_topic:
                if payload.strip() == b"online":
                    # Home Assistant restarted: it asks integrations to announce themselves again.
                    self.outbox.put_back(self._discovery_messages() + self.switches.discovery_messages())
                _ack(client, message)
                continue
            if self.switches.accept(topic, payload, message.retain):
                _ack(client, message)
                continue
            routes = self.routes.get(topic, ())
            if routes and message.retain and not self.options.accept_retained:
                # Replayed by the broker at subscribe time, not sent now: stale, or already stored.
                self.stats["retained_skipped"] += 1
                _ack(client, message)
                continue
            for route in routes:
                self._accept(route, payload)
            _ack(client, message)

    def _accept(self, route: Route, payload: bytes) -> None:
        try:
            value, timestamp = route.extract(payload)
            accepted = self.ctx.publish_reading(route.sensor_id, value, timestamp)
        except (PayloadError, ValueError) as exc:
            self.stats["rejected"] += 1
            if self._may_warn(f"reject:{route.topic}"):
                self.ctx.log.warning(
                    "%s: ignored a message on %s for sensor %d: %s (%d rejected in all; logged once a minute per topic)",
                    self.ctx.label, route.topic, route.sensor_id, exc, self.stats["rejected"],
                )
            return
        if not accepted:  # out of the sensor's range: counted per sensor and logged by the hub
            self.stats["rejected"] += 1
            return
        self.stats["received"] += 1

    # --- what is announced on each connection --------------------------------------

    def _discovery_messages(self) -> list[Message]:
        # Without readings the sensors' state topics would stay empty: no sensor entities (check-config warns).
        messages = [] if not self.options.publish_readings else discovery_messages(
            self.ctx.registry,
            self.options.hub_id,
            self.options.homeassistant.prefix,
            self.topics,
            device_availability=self.options.publish_status and self.options.retain_status,
            version=_version(),
        )
        if self.options.publish_alerts:
            rules = self.ctx.alert_rules()
            self._announced_alerts.update(rule["key"] for rule in rules)
            messages += alerts.discovery_messages(rules, self.options.hub_id, self.options.homeassistant.prefix, self.topics, _version())
        return messages

    def _status_snapshot(self) -> list[Message]:
        now = time.time()
        messages = []
        for device in self.ctx.registry.devices.values():
            status = self.ctx.device_status(device.id) or DeviceStatus.INACTIVE
            event = DeviceStatusChanged(device, status, now, None, "current status")
            messages.append(status_message(self.topics, event, self.options.qos, self.options.retain_status))
        return messages

    def _may_warn(self, kind: str) -> bool:
        return self._warned.allow(kind)


def _manual_acks(client: aiomqtt.Client) -> None:
    """Acknowledge QoS 1/2 messages ourselves, once the hub has taken them (`_ack`).

    By default paho acknowledges a message as soon as it is queued for us: a hub
    stopped (or crashed) before taking it from aiomqtt's queue lost it, even
    with a persistent session, since the broker had its PUBACK. Unacknowledged,
    the broker delivers it again on the next connection. aiomqtt 2.x has no
    API for this yet (empicano/aiomqtt#345, PR #346); paho's is public.
    """
    client._client.manual_ack_set(True)  # noqa: SLF001


def _ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """After the message is handled (published on the bus, or refused and counted)."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)  # noqa: SLF001


def _connection_lost(client: aiomqtt.Client) -> asyncio.Future:
    """aiomqtt's future that completes, with the reason, when the connection ends."""
    return client._disconnected  # noqa: SLF001 (no public equivalent in aiomqtt 2.x)


def _read_disconnect_reason(client: aiomqtt.Client) -> None:
    """Mark why the connection ended as seen. aiomqtt stores it in a future that only its
    message iterator reads (and, in aiomqtt 2.3, `__aexit__`); when our receiver is no longer
    iterating (cancelled because the hub stops or the sender failed first) nothing reads it,
    and asyncio logs "Future exception was never retrieved" once the client is collected,
    typically as the process exits. Nothing is lost: a session that failed on its own
    already raised the MqttError that `run` reports, and a stopping hub needs no reason."""
    lost = _connection_lost(client)
    if lost.done() and not lost.cancelled():
        lost.exception()


def _version() -> str:
    try:
        return metadata.version("smartanom")
    except metadata.PackageNotFoundError:
        return "dev"
