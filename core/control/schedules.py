"""Schedules: what state an output should be in at a given moment.

Stateless on purpose: the wanted state is a function of the time alone, read
in the hub's time zone (zoneinfo), so a restart picks up where the day is and a
DST change moves nothing that people set in local time.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from smartanom.control.config import ScheduleConfig, minutes_of


def local_midnight(moment: datetime) -> datetime:
    """The start of the local day containing `moment` (an aware datetime)."""
    naive = moment.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    return naive.replace(tzinfo=moment.tzinfo)


def wanted(schedule: ScheduleConfig, now: float, zone: ZoneInfo) -> tuple[bool, str]:
    """(on?, why) for the schedule at epoch seconds `now`."""
    local = datetime.fromtimestamp(now, zone)
    if schedule.windows is not None:
        minute = local.hour * 60 + local.minute
        for window in schedule.windows:
            start, end = minutes_of(window.start), minutes_of(window.end)
            inside = start <= minute < end if start < end else (minute >= start or minute < end)
            if inside:
                return True, f"schedule {window.start}-{window.end}"
        return False, "schedule: outside its windows"
    cycle = schedule.cycle
    period = (cycle.on_minutes + cycle.off_minutes) * 60
    # Real seconds since local midnight: a 23 h or 25 h day keeps the cycle's length.
    elapsed = now - local_midnight(local).timestamp()
    on = elapsed % period < cycle.on_minutes * 60
    return on, f"cycle {cycle.on_minutes:g} min on / {cycle.off_minutes:g} min off"
