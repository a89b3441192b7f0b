#!/usr/bin/env python3
"""Container healthcheck of the app image: ``callpilot-healthcheck serve|web``.

serve: healthy while its Stasis application is registered with Asterisk, that is while
``callpilot serve`` holds its ARI WebSocket (``GET /ari/applications/<app>`` answers 200;
404 when no WebSocket is connected). It never touches the FastAGI port: a connection that
closes without sending AGI headers makes panoramisk's FastAGI handler spin forever.
web: healthy when the WSGI server answers HTTP on web_host:web_port with a status below 500.

Exit status 0 when healthy, 1 otherwise (the reason on stderr). Settings come from the
same configuration as the process checked (``callpilot.infra.config.load``).
"""
from __future__ import annotations

import base64
import sys
import urllib.error
import urllib.request

from callpilot.infra import config
TIMEOUT_SECONDS = 5
ANY_ADDRESS = {"", "0.0.0.0", "::"}


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def check_serve(cfg: config.Config) -> str | None:
    creds = f"{cfg.secrets.ari_user}:{cfg.secrets.ari_password}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(creds).decode()}
    app = cfg.asterisk.app_name
    status = http_status(f"{cfg.ari_url}/ari/applications/{app}", headers)
    if status != 200:
        return f"ARI application {app!r} is not registered (HTTP {status})"
    return None


def check_web(cfg: config.Config) -> str | None:
    host = "127.0.0.1" if cfg.web_host in ANY_ADDRESS else cfg.web_host
    status = http_status(f"http://{host}:{cfg.web_port}/")
    if status >= 500:
        return f"admin web answered HTTP {status}"
    return None


CHECKS = {"serve": check_serve, "web": check_web}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in CHECKS:
        print(f"usage: {argv[0]} {'|'.join(CHECKS)}", file=sys.stderr)
        return 2
    try:
        problem = CHECKS[argv[1]](config.load())
    except (OSError, config.ConfigError) as exc:  # URLError and timeouts are OSErrors
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
