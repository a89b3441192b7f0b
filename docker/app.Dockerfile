# syntax=docker/dockerfile:1
# CallPilot application image: `callpilot serve` (default) and `callpilot web`, and the
# one-shot `callpilot asterisk render` of the compose `render` service.
# Build context: the repository root (compose: `context: ..`); app.Dockerfile.dockerignore
# limits it to the package sources.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
SHELL ["/bin/bash", "-o", "pipefail", "-euc"]

# espeak-ng: the speech engine pyttsx3 drives for the IVR prompts.
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng \
 && rm -rf /var/lib/apt/lists/*

# Same uid/gid as the `asterisk` user of asterisk.Dockerfile (shared state volume).
ARG CALLPILOT_UID=900
ARG CALLPILOT_GID=900
RUN groupadd --system --gid "${CALLPILOT_GID}" callpilot \
 && useradd --system --uid "${CALLPILOT_UID}" --gid callpilot --no-create-home \
        --home-dir /var/lib/callpilot --shell /usr/sbin/nologin callpilot \
 && install -d -o callpilot -g callpilot -m 0750 /var/lib/callpilot

# Optional dependency groups of pyproject.toml to install with the wheel.
ARG CALLPILOT_EXTRAS=postgres
COPY --from=build /wheels /tmp/wheels
# The project's own wheel; its dependencies keep the ranges of pyproject.toml.
# hadolint ignore=DL3013
RUN wheel="$(echo /tmp/wheels/callpilot-*.whl)" \
 && pip install --no-cache-dir "${wheel}[${CALLPILOT_EXTRAS}]" \
 && rm -rf /tmp/wheels

COPY --chmod=0755 docker/app-entrypoint.sh /usr/local/bin/callpilot-entrypoint
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/callpilot-healthcheck

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CALLPILOT_STATE_DIR=/var/lib/callpilot
USER ${CALLPILOT_UID}:${CALLPILOT_GID}
WORKDIR /var/lib/callpilot
ENTRYPOINT ["callpilot-entrypoint"]
CMD ["callpilot", "serve"]
