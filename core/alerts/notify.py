"""Notifications through Apprise, off the event loop, retried, rate-limited, recorded.

Each `alerts.notify` URL is a target. An alert's notices (started, escalated,
repeat, resolved) are queued per (alert, target) and sent in that order by the
target's own worker thread, so a notification service that hangs or is down
delays only its own notices: never readings, nor the other targets. A failed attempt is tried again after
`retry.initial` seconds, doubling up to `retry.max`, at most `retry.attempts`
times. Every attempt, good or bad, is written to the store (and shown on
/api/alerts). A notice delivered once is never sent again, across restarts:
the store remembers what reached whom.

Timing runs on the engine's clock: `tick()` launches what is due, so tests of
backoff and repeat intervals run on simulated time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import apprise

from smartanom.alerts import store as db
from smartanom.alerts.model import FIRING, Alert, Clock
from smartanom.protocol import format_timestamp

log = logging.getLogger("smartanom.alerts")

FIRING_NOTICES = ("started", "escalated", "repeat")
# A stopping hub waits this long for a notification being sent, then leaves it behind
# (it is sent again at the next start: delivered notices are the ones recorded).
STOP_WAIT = 3.0


@dataclass
class Target:
    url: str = ""  # holds secrets (tokens, passwords): never logged or stored
    shown: str = ""  # the URL with secrets masked, as Apprise prints it

    @property
    def key(self) -> str:
        """What identifies the target in queues and delivery records. Not `shown`: two
        ntfy topics can mask alike (t...s), and each must get its own notices."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


@dataclass
class _Job:
    alert: Alert
    notice: str
    target: Target
    attempt: int = 0
    due: float = 0.0  # monotonic


class Notifier:
    def __init__(self, urls: list[str], settings, clock: Clock, store, silenced: Callable[[Alert], bool]):
        self.settings = settings  # AlertsConfig
        self.clock = clock
        self.store = store
        self.silenced = silenced
        self.targets = [Target(url, _shown(url)) for url in urls]
        # Apprise's own log lines would carry secrets: at DEBUG it logs Telegram's bot URL,
        # token and all, and webhook paths. The notifier reports each attempt itself (with
        # secrets scrubbed), so Apprise's lines stay out of the hub's log.
        logging.getLogger("apprise").propagate = False
        self._queues: dict[tuple[int, str], deque[_Job]] = {}  # (alert id, target) -> its notices in order
        self._busy: set[tuple[int, str]] = set()
        self._inflight: set[asyncio.Future] = set()
        # One worker thread per target: a service that hangs holds up its own notices only,
        # not the grower's other targets (the e-mail still goes out while ntfy times out).
        self._pools = {t.key: ThreadPoolExecutor(1, thread_name_prefix="smartanom-notify") for t in self.targets}
        self.sent = 0
        self.failed = 0
        self._stopped = False

    @property
    def pending(self) -> int:
        return sum(map(len, self._queues.values()))

    def notify(self, alert: Alert, notice: str) -> None:
        """Queue `notice` about `alert` for every target that has not had it."""
        if self.silenced(alert) or self._stopped:
            return  # stopped: the next start sends what was not delivered
        if notice == "resolved" and not self.settings.send_resolved:
            return
        for target in self.targets:
            queue = self._queues.setdefault((alert.id, target.key), deque())
            if notice != "repeat" and f"{notice}:{target.key}" in alert.delivered:
                continue  # delivered before (maybe before a restart)
            if notice == "resolved" and not _told(alert, target) and not any(j.notice in FIRING_NOTICES for j in queue):
                continue  # never told it started (silenced, or it started before this target existed)
            if notice == "repeat" and queue:
                continue  # still trying: a repeat would only pile up
            queue.append(_Job(alert, notice, target, due=self.clock.monotonic()))
        # Send now rather than at the engine's next tick (up to a second away).
        self._launch_due()

    def tick(self, active: list[Alert]) -> None:
        """Send what is due; queue repeats of alerts still firing and not acknowledged."""
        interval = self.settings.repeat_interval
        if interval > 0:
            now = self.clock.time()
            for alert in active:
                if alert.state == FIRING and not self.silenced(alert):
                    due = [t for t in self.targets if (last := _last_told(alert, t)) is not None and now - last >= interval]
                    if due:
                        self._queue_repeat(alert, due)
        self._launch_due()

    def _launch_due(self) -> None:
        now = self.clock.monotonic()
        for key, queue in list(self._queues.items()):
            if not queue:
                del self._queues[key]
            elif key not in self._busy and queue[0].due <= now:
                self._launch(key, queue[0])

    def _queue_repeat(self, alert: Alert, targets: list[Target]) -> None:
        for target in targets:
            queue = self._queues.setdefault((alert.id, target.key), deque())
            if not queue:
                queue.append(_Job(alert, "repeat", target, due=self.clock.monotonic()))

    def _launch(self, key, job: _Job) -> None:
        self._busy.add(key)
        job.attempt += 1
        title, body, kind = compose(job.alert, job.notice)
        future = asyncio.get_running_loop().run_in_executor(self._pools[job.target.key], _send, job.target.url, title, body, kind, self.settings.timeout)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        future.add_done_callback(lambda f: self._done(key, job, f))

    def _done(self, key, job: _Job, future) -> None:
        self._busy.discard(key)
        ok, error = future.result() if not future.cancelled() else (False, "cancelled")
        ts = self.clock.time()
        self.store.submit(db.record_attempt, job.alert.id, ts, job.notice, job.target.shown, job.target.key, job.attempt, ok, error)
        queue = self._queues.get(key)
        if ok:
            self.sent += 1
            job.alert.delivered[f"{job.notice}:{job.target.key}"] = ts
            if queue and queue[0] is job:
                queue.popleft()
            return
        self.failed += 1
        retry = self.settings.retry
        if job.attempt >= retry.attempts:
            log.error("Gave up notifying %s about alert %d (%s) after %d attempts: %s", job.target.shown, job.alert.id, job.notice, job.attempt, error)
            if queue and queue[0] is job:
                queue.popleft()
            return
        delay = min(retry.initial * 2 ** (job.attempt - 1), retry.max)
        job.due = self.clock.monotonic() + delay
        log.warning("Notifying %s about alert %d failed (attempt %d: %s); again in %g s", job.target.shown, job.alert.id, job.attempt, error, delay)

    async def stop(self) -> None:
        """Let an attempt under way finish (at most STOP_WAIT seconds), send nothing more."""
        self._stopped = True
        self._queues.clear()
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=STOP_WAIT)
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


def compose(alert: Alert, notice: str) -> tuple[str, str, str]:
    """(title, body, Apprise notify type) of a notice."""
    since = format_timestamp(alert.started_at)
    if notice == "resolved":
        title = f"Resolved: {alert.message.split(' is ')[0] if alert.kind == 'range' else alert.message}"
        body = f"{alert.message}\nStarted {since}, resolved {format_timestamp(alert.resolved_at or alert.started_at)}."
        return title, body, apprise.NotifyType.SUCCESS
    prefix = {"repeat": "Still ", "escalated": "Now "}.get(notice, "")
    title = f"{prefix}{alert.severity.upper()}: {alert.message.split(' (')[0]}"
    body = alert.message + f"\nSince {since}."
    if alert.recommendation:
        body += f"\n{alert.recommendation}."
    kind = apprise.NotifyType.FAILURE if alert.severity == "critical" else apprise.NotifyType.WARNING
    return title, body, kind


def _told(alert: Alert, target: Target) -> bool:
    return _last_told(alert, target) is not None


def _last_told(alert: Alert, target: Target) -> float | None:
    times = [alert.delivered.get(f"{n}:{target.key}") for n in FIRING_NOTICES]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def _shown(url: str) -> str:
    """The URL as Apprise prints it with secrets masked, without its query of defaults:
    short for people, and the same across Apprise versions (it keys what was delivered)."""
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return "(invalid URL)"
    scheme, _, rest = plugin.url(privacy=True).split("?")[0].partition("://")
    netloc, _, path = rest.partition("/")
    # Apprise leaves ntfy topics and webhook paths whole, yet knowing one is enough to
    # read or post to it: mask every path part the way Apprise masks tokens, and an
    # ntfy topic given as the host.
    if scheme in ("ntfy", "ntfys") and not path.strip("/"):
        netloc = _masked(netloc)
    path = "/".join(_masked(part) for part in path.split("/"))
    return f"{scheme}://{netloc}/{path}".rstrip("/") if path.strip("/") else f"{scheme}://{netloc}"


def _masked(part: str) -> str:
    if "..." in part or "*" in part or len(part) < 3:
        return part  # already masked by Apprise, or too short to hide anything
    return f"{part[0]}...{part[-1]}"


def _send(url: str, title: str, body: str, kind: str, timeout: float) -> tuple[bool, str]:
    """One attempt, on the notifier's thread. Returns (delivered, why not)."""
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=False)
        plugin.socket_connect_timeout = plugin.socket_read_timeout = timeout
        sender = apprise.Apprise()
        sender.add(plugin)
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = bool(sender.notify(body=body, title=title, notify_type=kind))
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        return ok, "" if ok else _scrub(lines[-1] if lines else "the service did not accept the notification", url)[:500]
    except Exception as exc:  # anything Apprise raises is one failed attempt, not a dead notifier
        return False, _scrub(f"{type(exc).__name__}: {exc}", url)[:500]


def _scrub(text: str, url: str) -> str:
    """`text` (a service's error) without any piece of `url` its masked form hides:
    an error message may quote a request URL with the token in it."""
    shown = _shown(url)
    for piece in sorted(set(re.split(r"[/:@?&=+]", url)), key=len, reverse=True):
        if len(piece) >= 4 and piece not in shown:
            text = text.replace(piece, "****")
    return text
