"""GET /api/readings?sensors=1,2,...: several sensors' history in one answer.

A dashboard opening on the 7-day window wants the buckets of every sensor at
once. As one request per sensor, the per-request work (HTTP, a hop to the query
pool and back) cost more than the queries themselves once rollups made those
about a millisecond (docs/perf.md). Here one request runs every sensor's query
on the history pool, split between its threads, and answers with one page per
sensor; each page's `next` is the URL of the one-sensor endpoint that continues
it. Parameters and their checks are those of /api/sensors/{id}/readings
(core/api.py), plus `sensors`; JSON only.
"""

from __future__ import annotations

import asyncio
import dataclasses

from smartanom import history
from smartanom.api import ReadingsHandler, bad_parameter, rows_json

BATCH_PARAMETERS = ("sensors", "since", "until", "limit", "order", "bucket", "calibration")


def _fetch_all(conn, queries: list[history.Query]) -> list[history.Page]:
    return [history.fetch(conn, query) for query in queries]


class ManyReadingsHandler(ReadingsHandler):
    parameters = BATCH_PARAMETERS

    async def get(self) -> None:
        sensors = self._sensors()
        query, _ = self._parse(sensors[0])
        queries = [dataclasses.replace(query, sensor_id=s.id) for s in sensors]
        # One share per pool thread: SQLite runs them side by side.
        half = (len(queries) + 1) // 2
        shares = await asyncio.gather(*(self.hub.history.run(_fetch_all, part) for part in (queries[:half], queries[half:]) if part))
        pages = [page for share in shares for page in share]
        key = "buckets" if query.bucket else "readings"
        self.send_json(
            {
                "order": "desc" if query.newest_first else "asc",
                "bucket": self.get_query_argument("bucket", None),
                "sensors": [
                    {
                        "sensor_id": sensor.id,
                        "unit": sensor.unit,
                        key: rows_json(query, page),
                        "next": None if page.next_cursor is None else self._next_url(page, f"/api/sensors/{sensor.id}/readings"),
                    }
                    for sensor, page in zip(sensors, pages)
                ],
            }
        )

    def _sensors(self) -> list:
        text = self.get_query_argument("sensors", None)
        if text is None:
            found = list(self.hub.registry.sensors.values())
            if not found:
                raise bad_parameter("sensors", "this hub has no sensors")
            return found
        found = []
        for part in text.split(","):
            sensor = self.hub.registry.sensor(int(part)) if part.strip().isdigit() else None
            if sensor is None:
                raise bad_parameter("sensors", f"{part[:32]!r} is not a sensor id of this hub; see /api/sensors")
            found.append(sensor)
        return found
