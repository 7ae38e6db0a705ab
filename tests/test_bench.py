"""The benchmark itself (bench/run.py) runs end to end, so it does not rot.

A tiny configuration of every scenario (hub and bare server; saturation,
latency, idle connections, simulator). No timing is asserted: only that the
report is complete and that the hub lost nothing it accepted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_run(script: str, tmp_path: Path) -> tuple[dict, str]:
    """`bench/SCRIPT --quick --json FILE`: the report, and what it printed."""
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_quick_benchmark_runs_and_reports_no_loss(tmp_path):
    report, stdout = quick_run("run.py", tmp_path)
    summary = report["summary"]
    for kind in ("hub", "bare"):
        figures = summary[kind]
        assert figures["accepted_per_s"] > 0 and figures["delivered_per_s"] > figures["accepted_per_s"]
        assert figures["cpu_us_per_update"] > 0
        assert figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
        assert figures["kb_per_idle_connection"] is not None
    for phase, loss in summary["hub"]["loss"].items():
        assert loss["sent"] == loss["accepted"] == loss["stored"] > 0, (phase, loss)
        assert loss["deliveries"] == loss["deliveries_expected"] > 0, (phase, loss)
        assert loss["errors"] == 0, (phase, loss)
    assert summary["hub"]["simulator_stored"] > 0
    assert set(summary["hub_over_bare"]) >= {"cpu_us_per_update", "accepted_per_s"}
    assert "server CPU us / delivered update" in stdout  # the table


def test_exports_benchmark_runs(tmp_path):
    """bench/exports.py (live round trip during exports and a flood): complete, no timing asserted."""
    report, _ = quick_run("exports.py", tmp_path)
    assert report["round_trip_ms_alone"]["count"] > 10 and report["round_trip_ms_during_exports_and_flood"]["count"] > 10
    assert report["load"]["csv_exports"] >= 1 and report["load"]["json_pages"] >= 1 and report["load"]["flooded"] > 0


def test_history_benchmark_runs_every_phase_on_a_small_generated_database(tmp_path):
    """bench/rollups.py (issue 18's figures) on 3 days of 20 sensors, every phase cut short."""
    out = tmp_path / "rollups.json"
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "rollups.py"), "--db", str(tmp_path / "y.db"), "--days", "3", "--raw-days", "1",
            "--rounds", "1", "--before-rounds", "1", "--browser-rounds", "1", "--writer-rate", "2000", "--writer-seconds", "1",
            "--anatomy-rows", "5000", "--farm-minutes", "0.1", "--farm-speed", "1", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["size"]["raw_rows"] > 20 * 86400 // 2
    for variant in ("after", "rollups_one_request_per_sensor", "before"):
        assert report["queries"][variant]["dashboard_7d"]["p50_ms"] > 0
    assert report["browser"]["points_per_chart"][0] > 24  # hourly buckets over the days generated
    for variant in ("rollups_on", "rollups_off"):
        writer = report["writer"][variant]
        assert writer["dropped"] == 0 and writer["rows"] > 0 and writer["roundtrip"]["samples"] > 0
    assert report["writer"]["rollups_on"]["rows_in_rollups"] == report["writer"]["rollups_on"]["rows"]
    assert len(report["writer"]["anatomy"]) == 16
    farm = report["farm"]
    assert farm["sent"] == farm["received_mqtt"] == farm["stored"] == 6 * 400
