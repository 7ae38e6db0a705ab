"""GET /api/readings?sensors=1,2,...: several sensors' history in one answer.

A dashboard opening on the 7-day window wants the buckets of every sensor at
once. As one request per sensor, the per-request work (HTTP, a hop to the query
pool and back) cost more than the queries themselves once rollups made those
about a millisecond (docs/perf.md). Here one request runs every sensor's page
on the history pool and answers with the list of them: each is exactly what
/api/sensors/{id}/readings answers for that sensor (core/api.py builds it), so
its `next` continues on that endpoint. Parameters and their checks are that
endpoint's, plus `sensors`; JSON only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

from smartanom.api import ReadingsHandler, _page_body, bad_parameter

BATCH_PARAMETERS = ("sensors", "since", "until", "limit", "order", "bucket", "calibration", "token")


def _bodies(conn, jobs: list[tuple]) -> list[bytes]:
    return [_page_body(conn, *job)[0] for job in jobs]


class ManyReadingsHandler(ReadingsHandler):
    parameters = BATCH_PARAMETERS

    async def get(self) -> None:
        sensors = self._sensors()
        query, _ = self._parse(sensors[0])
        params = {k: v[0].decode() for k, v in self.request.query_arguments.items() if k not in ("cursor", "sensors")}
        bucket = self.get_query_argument("bucket", None)
        order = "desc" if query.newest_first else "asc"
        jobs = [
            (dataclasses.replace(query, sensor_id=s.id), False,
             {"sensor_id": s.id, "unit": s.unit, "order": order, "bucket": bucket}, f"/api/sensors/{s.id}/readings", params)
            for s in sensors
        ]
        if query.bucket:
            # Buckets: SQLite aggregates without the GIL and few rows are formatted,
            # so the pool's two threads share the sensors.
            half = (len(jobs) + 1) // 2
            shares = await asyncio.gather(*(self.history.run(_bodies, part) for part in (jobs[:half], jobs[half:]) if part))
            bodies = [body for share in shares for body in share]
        else:
            # Raw readings are formatting-heavy: one job in the lane, as the one-sensor pages.
            bodies = await self.lane.run(self.history, _bodies, jobs)
        head = json.dumps({"order": order, "bucket": bucket, "sensors": []})
        self.finish(head.replace('"sensors": []', '"sensors": [' + b",".join(bodies).decode() + "]", 1))

    def _sensors(self) -> list:
        text = self.get_query_argument("sensors", None)
        if text is None:
            found = list(self.registry.sensors.values())
            if not found:
                raise bad_parameter("sensors", "this hub has no sensors")
            return found
        found = []
        for part in text.split(","):
            # isdigit() alone also admits "²", which int() refuses: ASCII digits only.
            sensor = self.registry.sensor(int(part)) if part.strip().isascii() and part.strip().isdigit() else None
            if sensor is None:
                raise bad_parameter("sensors", f"{part[:32]!r} is not a sensor id of this hub; see /api/sensors")
            found.append(sensor)
        return found

