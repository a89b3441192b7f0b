"""Several nodes on one database (D43): whether this configuration shares its agents, and
the picture of the whole center the admin web shows."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.records import utcnow
from callpilot.infra.db.shared_state import NodeBoard

logger = logging.getLogger(__name__)

FRESH = timedelta(seconds=10)      # a node that published no picture for this long is left out
READ_SECONDS = 1.0                 # the web reads the other nodes' pictures at most this often


def shares_agents(config: Config) -> bool:
    """``acd.shared_agents``: "on", or "auto" with PostgreSQL (the scale-out database)."""
    setting = config.acd.shared_agents
    return setting == "on" or (setting == "auto" and db.dialect_of(config.db_url) == "postgresql")


class CenterPicture:
    """This node's serve's live snapshot (its socket) with the pictures the other nodes
    published, merged by ``merge``; the other nodes' read at most every READ_SECONDS."""

    def __init__(self, local: Callable[[], dict | None], board: NodeBoard, node: str,
                 merge: Callable[[list[dict]], dict | None]) -> None:
        self.local = local
        self.board = board
        self.node = node
        self.merge = merge
        self._others: list[dict] = []
        self._read_at = float("-inf")

    def __call__(self) -> dict[str, Any] | None:
        local = self.local()
        snapshots = ([local] if local is not None else []) + self._other_nodes()
        return self.merge(snapshots)

    def _other_nodes(self) -> list[dict]:
        now = time.monotonic()
        if now - self._read_at >= READ_SECONDS:
            self._read_at = now
            try:
                fresh = self.board.fresh(utcnow() - FRESH)
                self._others = [picture for name, picture in sorted(fresh.items()) if name != self.node]
            except Exception:                  # the database away: this node's picture only
                logger.exception("the other nodes' pictures not read")
                self._others = []
        return self._others
