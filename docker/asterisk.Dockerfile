# syntax=docker/dockerfile:1
# Asterisk 22 from Debian sid with exactly the packages in asterisk-packages.txt (the list
# the local runner installs into its rootfs too). No configuration is baked in: the compose
# `render` service writes it into the shared state volume and this image runs Asterisk on
# it (see README.md). Build context: this directory.
FROM debian:sid

SHELL ["/bin/bash", "-o", "pipefail", "-euc"]

# Same uid/gid as the `callpilot` user of app.Dockerfile: both read and write the state
# volume. The asterisk package keeps an `asterisk` user that already exists.
ARG CALLPILOT_UID=900
ARG CALLPILOT_GID=900
RUN groupadd --system --gid "${CALLPILOT_GID}" asterisk \
 && useradd --system --uid "${CALLPILOT_UID}" --gid asterisk --no-create-home \
        --home-dir /var/lib/asterisk --shell /usr/sbin/nologin asterisk

COPY asterisk-packages.txt /tmp/asterisk-packages.txt
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && sed -e 's/#.*//' /tmp/asterisk-packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/asterisk-packages.txt \
 && install -d -o asterisk -g asterisk -m 0750 /var/lib/callpilot /run/asterisk

COPY --chmod=0755 asterisk-entrypoint.sh /usr/local/bin/asterisk-entrypoint

ENV CALLPILOT_STATE_DIR=/var/lib/callpilot
USER ${CALLPILOT_UID}:${CALLPILOT_GID}
WORKDIR /var/lib/asterisk
HEALTHCHECK --interval=10s --timeout=10s --start-period=30s --retries=3 \
    CMD ["asterisk-entrypoint", "healthcheck"]
ENTRYPOINT ["asterisk-entrypoint"]
CMD ["run"]
