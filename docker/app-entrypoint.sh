#!/bin/sh
# Entry point of the CallPilot app image: exports the database password from a file
# (compose secret) as libpq's PGPASSWORD, so CALLPILOT_DATABASE_URL carries no password,
# then runs the given command (`callpilot serve`, `callpilot web`, ...).
set -eu

if [ -n "${PGPASSWORD_FILE:-}" ]; then
    if [ ! -r "$PGPASSWORD_FILE" ]; then
        echo "callpilot-entrypoint: cannot read PGPASSWORD_FILE=$PGPASSWORD_FILE" \
             "(create it as docker/README.md says)" >&2
        exit 78
    fi
    PGPASSWORD="$(cat "$PGPASSWORD_FILE")"
    export PGPASSWORD
    unset PGPASSWORD_FILE
fi

exec "$@"
