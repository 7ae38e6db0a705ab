"""Migration 5 (outputs): a database of the previous version keeps every row, and gains the empty
actuations and doses tables the control loop then writes (docs/schema.md's rule)."""

import pytest

from schema_upgrade import HUB_YAML, assert_upgraded, database_at, fill, table_rows, upgrade_through_hub
from smartanom import schema

OUTPUT = """
outputs:
  - id: lights
    name: Grow lights
    type: simulated
    device: 1
"""  # appended to HUB_YAML, a format string: no braces


@pytest.mark.gen_test(timeout=30)
async def test_upgrade_to_5_keeps_every_row_and_records_actuations(hub_factory, tmp_path):
    previous = max(m.version for m in schema.MIGRATIONS if m.version < 5)
    db = tmp_path / "smartanom.db"
    conn = database_at(db, previous)
    before = fill(conn, {
        "readings": [{"sensor_id": 1, "ts": 1757604600.0, "value": 6.02}, {"sensor_id": 2, "ts": 1757604601.5, "value": 1.4}],
        "device_status": [{"device_id": 1, "ts": 1757604600.0, "status": "active", "reason": "reading received"}],
    })
    conn.close()

    await upgrade_through_hub(hub_factory, db, HUB_YAML + OUTPUT)

    assert_upgraded(db, before)
    rows = table_rows(db, "actuations", ["output_id", "state", "source", "ok"])
    # The hub that upgraded it made its output safe at start and at stop, and recorded both.
    assert [(r["output_id"], r["state"], r["source"], r["ok"]) for r in rows.values()] == [
        ("lights", "off", "start", 1), ("lights", "off", "safe", 1)]
    assert table_rows(db, "doses", ["controller_id", "ml"]) == {}
