"""How the hub's log lines look: with a time on a terminal or in a file, and
journald's way when systemd runs the hub as a service.

journald stamps every line with its own time, so a second timestamp only
clutters `journalctl`; and it reads a line's level from a `<N>` syslog prefix
(SyslogLevelPrefix=, on by default), so `journalctl -p warning` shows warnings
and errors only. systemd tells a service that its stderr is the journal by
setting JOURNAL_STREAM to the stream's device:inode (systemd.exec(5)); checking
that it still names our stderr keeps the timestamps when the output was
redirected to a file (INVOCATION_ID alone would not tell that apart).
"""

from __future__ import annotations

import logging
import os
import sys

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if writes_to_journal(sys.stderr):
        handler.setFormatter(JournalFormatter(JOURNAL_FORMAT))
        # What the command prints to stderr itself (config errors, "Cannot start: ...")
        # is an error: mark it so, or `journalctl -p err` would not show why the hub stopped.
        sys.stderr = ErrorLines(sys.stderr)
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT, datefmt="%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler])


def writes_to_journal(stream) -> bool:
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def syslog_priority(levelno: int) -> int:
    """sd-daemon(3) levels: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """`<N>name: message`, with the prefix on every line: journald makes each line
    its own entry, so a traceback's lines keep the error's level too."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class ErrorLines:
    """A text stream that starts every line written to it with `<3>` (error)."""

    def __init__(self, stream):
        self._stream = stream
        self._line_start = True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._line_start:
                out.append("<3>")
            out.append(piece)
            self._line_start = piece.endswith("\n")
        self._stream.write("".join(out))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)
