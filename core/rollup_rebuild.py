"""`smartanom rebuild-rollups`: fold stored readings into the rollups, with a progress bar.

For a database from a release before rollups, or after readings were imported
behind the hub's back. The running hub's writer does the same catch-up by
itself, a chunk at a time between its flushes; this command does it at full
speed and shows how long it will take. It may run while the hub runs: both
take SQLite's write lock per chunk and continue from the same `covered_id`, so
nothing is counted twice. `--from-scratch` first forgets every rollup (also
those whose raw readings retention has already deleted: that history is lost).
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

from smartanom import rollups, schema
from smartanom.storage import connect

CHUNK = 200_000


def rebuild(path: str, from_scratch: bool = False, file=sys.stderr) -> int:
    """Returns the number of reading ids folded in (0 when the rollups were complete)."""
    conn = connect(path)
    try:
        schema.upgrade(conn)
        if from_scratch:
            rollups.clear(conn)
        first, newest = rollups.progress(conn)
        # Readings ids, not rows: ids that retention deleted are skipped at no cost.
        with tqdm(total=newest - first, unit=" ids", unit_scale=True, desc="rollups", file=file, smoothing=0.1) as bar:
            done = first
            while done < newest:
                step, newest = rollups.catch_up(conn, CHUNK)
                bar.total = newest - first
                bar.update(step - done)
                done = step
        return done - first
    finally:
        conn.close()


def main(path: str, from_scratch: bool) -> int:
    if not os.path.exists(path):
        print(f"no database at {path} (storage.path in the config)", file=sys.stderr)
        return 2
    try:
        folded = rebuild(path, from_scratch)
    except KeyboardInterrupt:
        # Each chunk is one transaction: the one interrupted rolled back, those before it stay.
        conn = connect(path)
        try:
            covered, newest = rollups.progress(conn) if schema.version(conn) >= 4 else (0, 0)
        finally:
            conn.close()
        print(f"\ninterrupted: rollups cover reading ids up to {covered:,} of {newest:,}; "
              "run the command again to go on from there", file=sys.stderr)
        return 130
    print(f"{path}: rollups complete ({folded:,} reading ids folded in)")
    return 0
