"""Prometheus exposition over HTTP on serve's own event loop (aiohttp, already serve's HTTP
stack for ARI and the status socket).

Why not ``prometheus_client.start_http_server``: its thread would run the collectors beside
the event loop, reading the dispatcher's dicts while the loop changes them.  Here a scrape
is one loop callback: the collectors see one consistent moment, and nothing needs a lock.
A port that cannot be bound is logged and skipped: metrics never stop calls.
"""
from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)


class MetricsHttp:
    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.host = host
        self.port = port                 # 0: no metrics endpoint
        self.registry = registry
        self._runner: web.AppRunner | None = None

    async def start(self) -> bool:
        if not self.port:
            return False
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError as exc:
            logger.error("metrics endpoint %s:%d not started: %s", self.host, self.port, exc)
            await runner.cleanup()
            return False
        self._runner = runner
        logger.info("Prometheus metrics on http://%s:%d/metrics", self.host, self.port)
        return True

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
