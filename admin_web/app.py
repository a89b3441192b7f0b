"""Admin web UI (Flask).  Only the application shell and health check exist so far: the
editors for flows, queues, agents and campaigns arrive with their own issues."""
from __future__ import annotations

import logging

from flask import Flask, jsonify

from admin_web import callme
from callpilot.infra.config import Config

logger = logging.getLogger(__name__)


def create_app(config: Config | None = None) -> Flask:
    app = Flask(__name__)
    app.config["CALLPILOT"] = config
    app.register_blueprint(callme.make_blueprint(config))

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    return app


def run(config: Config) -> None:
    from waitress import serve
    logger.info("admin web on http://%s:%d", config.web_host, config.web_port)
    serve(create_app(config), host=config.web_host, port=config.web_port)
