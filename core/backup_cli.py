"""`smartanom backup` and `smartanom restore`: the command-line side of core/backup.py.

Both find the database the way the hub does, from the config file's
storage.path (or take --database). Progress goes to a terminal only, so a cron
job's mail or the journal gets one line per backup, not hundreds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from smartanom import backup


def add_commands(sub, common: argparse.ArgumentParser, default_config: str) -> None:
    make = sub.add_parser(
        "backup", parents=[common],
        help="copy the database consistently, also while the hub runs",
        description="Copy the hub's database with SQLite's online backup API; safe while the hub runs.",
    )
    make.add_argument("path", type=Path, help="file to write, or an existing folder (then named DBNAME-YYYYMMDDTHHMMSS.db)")
    _database_options(make, default_config)

    put = sub.add_parser(
        "restore", parents=[common],
        help="put a backup back (the hub must be stopped)",
        description="Make the hub's database hold exactly what BACKUP holds. Stop the hub first; "
        "the current database is kept as DB.before-restore-TIME.",
    )
    put.add_argument("backup", type=Path, help="a file written by `smartanom backup`")
    _database_options(put, default_config)


def _database_options(parser: argparse.ArgumentParser, default_config: str) -> None:
    parser.add_argument("--config", default=os.environ.get("SMARTANOM_CONFIG", default_config), help="config file whose storage.path is the database")
    parser.add_argument("--database", type=Path, help="the database file itself (instead of reading --config)")


def run(args, load_config: Callable[[str], object]) -> int:
    database = args.database or Path(load_config(args.config).storage.path)
    progress = _TerminalProgress("Backing up" if args.command == "backup" else "Restoring") if sys.stderr.isatty() else None
    try:
        if args.command == "backup":
            written = backup.backup(database, args.path, progress)
        else:
            kept = backup.restore(args.backup, database, progress)
    except backup.BackupError as exc:
        print(f"{'' if progress is None else progress.end()}{args.command.capitalize()} failed: {exc}", file=sys.stderr)
        return 2
    if progress is not None:
        progress.end()
    if args.command == "backup":
        print(f"Backed up {database} to {written} ({written.stat().st_size / 1e6:.1f} MB)")
    else:
        print(f"Restored {args.backup} to {database}" + (f"; what it held before is kept in {kept}" if kept else ""))
    return 0


class _TerminalProgress:
    def __init__(self, action: str):
        self.action = action
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        sys.stderr.write(f"\r{self.action}: {percent:3d}% ({done} of {total} pages)")
        sys.stderr.flush()
        self.shown = True

    def end(self) -> str:
        """Finish the progress line; returns '' so it can sit in an f-string."""
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False
        return ""
