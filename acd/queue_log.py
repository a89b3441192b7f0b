"""An Asterisk-format ``queue_log`` file, so existing queue-report tools read CallPilot's history.

Line format, as Asterisk's ``ast_queue_log`` writes it (main/logger.c)::

    epoch|callid|queuename|agent|event|data1|data2|...

``epoch`` is whole seconds (``time(NULL)``); the data part always follows a ``|``, so an
event without data ends in ``|`` (``...|UNPAUSE|``).  Event names and field orders are
app_queue's (apps/app_queue.c, Asterisk 22):

=================  ==========  =============  ===========================================
event              callid      agent          data
=================  ==========  =============  ===========================================
ENTERQUEUE         caller      NONE           url|callerid|position
RINGNOANSWER       caller      member         ringtime in milliseconds
CONNECT            caller      member         holdtime|bridged channel uniqueid|ringtime
COMPLETEAGENT      caller      member         holdtime|calltime|origposition
COMPLETECALLER     caller      member         holdtime|calltime|origposition
ABANDON            caller      NONE           position|origposition|waittime
EXITWITHTIMEOUT    caller      NONE           position|origposition|waittime
EXITWITHKEY        caller      NONE           key|position|origposition|waittime (took a callback)
ADDMEMBER          NONE        member         "" (or PAUSED)
REMOVEMEMBER       NONE        member         ""
AGENTLOGIN         NONE        member         channel      (queuename NONE)
AGENTLOGOFF        NONE        member         channel|logintime       (queuename NONE)
PAUSEALL           NONE        member         reason       (queuename NONE)
PAUSE              NONE        member         reason
UNPAUSEALL         NONE        member         reason       (queuename NONE)
UNPAUSE            NONE        member         reason
=================  ==========  =============  ===========================================

Callbacks (issue 12) are CallPilot's own events, not app_queue's: queue_log readers that
do not know them skip unknown event names.  Their callid is ``callback-<callback id>`` so a
callback's life reads as one "call"; CONNECT and COMPLETEAGENT/COMPLETECALLER are written
for it too (holdtime counted from the ORIGINAL queue entry):

=================  ==================  =========  ========================================
event              callid              agent      data
=================  ==================  =========  ========================================
CALLBACKREQUEST    callback-<id>       NONE       number|source|original call id
CALLBACKATTEMPT    callback-<id>       member     attempt id|number
CALLBACKRESULT     callback-<id>       member     attempt id|outcome|callback state|detail
CALLBACKCLOSED     callback-<id>       NONE       state|detail (expired, merged, cancelled)
=================  ==================  =========  ========================================

Times in seconds are whole seconds (rounded), like app_queue's ``time(NULL)`` differences.

**Agent field.** CallPilot writes the member name Asterisk itself would write for our agents:
the PJSIP interface ``PJSIP/<extension>`` (the ``bench`` app_queue queue declares its members
as ``member => PJSIP/<extension>`` without a name, so app_queue's member name is that
interface too).  A value that already holds a ``/`` is written as it is.

Field values never contain ``|`` or line breaks: ``|`` becomes ``_`` (app_queue does the
same to caller names) and line breaks become spaces.
"""
from __future__ import annotations

import enum
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)

NONE = "NONE"   # app_queue's placeholder for "no call", "no queue", "no agent"


class QueueLogEvent(enum.StrEnum):
    ENTERQUEUE = "ENTERQUEUE"
    RINGNOANSWER = "RINGNOANSWER"
    CONNECT = "CONNECT"
    COMPLETEAGENT = "COMPLETEAGENT"
    COMPLETECALLER = "COMPLETECALLER"
    ABANDON = "ABANDON"
    EXITWITHTIMEOUT = "EXITWITHTIMEOUT"
    EXITWITHKEY = "EXITWITHKEY"
    ADDMEMBER = "ADDMEMBER"
    REMOVEMEMBER = "REMOVEMEMBER"
    AGENTLOGIN = "AGENTLOGIN"
    AGENTLOGOFF = "AGENTLOGOFF"
    PAUSEALL = "PAUSEALL"
    PAUSE = "PAUSE"
    UNPAUSEALL = "UNPAUSEALL"
    UNPAUSE = "UNPAUSE"
    # CallPilot's own (app_queue has no callbacks), see the table above
    CALLBACKREQUEST = "CALLBACKREQUEST"
    CALLBACKATTEMPT = "CALLBACKATTEMPT"
    CALLBACKRESULT = "CALLBACKRESULT"
    CALLBACKCLOSED = "CALLBACKCLOSED"


def member_name(agent: str) -> str:
    """The queue_log agent field for a CallPilot agent extension: ``1001`` -> ``PJSIP/1001``."""
    return agent if "/" in agent else f"PJSIP/{agent}"


def seconds(value: float) -> int:
    """Whole seconds of a non-negative duration, rounded half up (2.5 -> 3)."""
    return int(max(0.0, value) + 0.5)


def clean(value: object) -> str:
    """A field value safe for the pipe-separated line."""
    text = "" if value is None else str(value)
    return text.replace("|", "_").replace("\r", " ").replace("\n", " ")


def format_line(epoch: float, callid: str, queue: str, agent: str, event: str,
                data: Iterable[object] = ("",)) -> str:
    """One queue_log line, without the newline."""
    head = "|".join(clean(v) for v in (int(epoch), callid, queue, agent, event))
    return f"{head}|{'|'.join(clean(v) for v in data)}"


@dataclass(frozen=True)
class QueueLogLine:
    epoch: int
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]


def parse_line(line: str) -> QueueLogLine:
    """The fields of one queue_log line (for readers and tests)."""
    epoch, callid, queue, agent, event, *data = line.rstrip("\r\n").split("|")
    return QueueLogLine(int(epoch), callid, queue, agent, event, tuple(data))


class QueueLogFile:
    """Appends lines to a queue_log file; safe for concurrent writers within one process.

    Opened in append mode and line buffered: every line reaches the file in one ``write``
    when written.  Before each line the path's inode is compared with the open file's, so a
    file moved away by logrotate (or deleted) is followed by a new file at the same path.
    The file is opened on the first line; ``OSError`` from opening or writing is raised to
    the caller (``QueueEventRecorder`` logs it).
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fh: TextIO | None = None
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            fh = self._current()
            fh.write(line + "\n")

    def _current(self) -> TextIO:
        if self._fh is not None and not self._same_file(self._fh):
            logger.info("queue_log %s rotated or removed: reopening", self.path)
            self._close()
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", buffering=1, encoding="utf-8", newline="\n")
        return self._fh

    def _same_file(self, fh: TextIO) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fh.fileno())
        return (on_disk.st_ino, on_disk.st_dev) == (mine.st_ino, mine.st_dev)

    def _close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                logger.exception("queue_log %s: close failed", self.path)

    def close(self) -> None:
        with self._lock:
            self._close()
