#!/bin/sh
# Entry point of the Asterisk image.
#   run          Asterisk in the foreground on the configuration that
#                `callpilot asterisk render` wrote into the state volume
#   healthcheck  exit 0 once Asterisk is fully booted and answers its control socket
#   reload       `core reload` (after the render service wrote a new configuration)
#   console      an interactive remote console (docker compose exec asterisk ... console)
#   anything else is executed as given
set -eu

conf="${ASTERISK_CONF:-${CALLPILOT_STATE_DIR:-/var/lib/callpilot}/asterisk/etc/asterisk.conf}"

case "${1:-run}" in
run)
    if [ ! -r "$conf" ]; then
        echo "asterisk-entrypoint: no readable $conf; the render service writes it" \
             "(docker compose -f docker/compose.yaml up render)" >&2
        exit 78
    fi
    # -f: foreground (PID 1 is compose's init); -n: no colours in `docker compose logs`
    # shellcheck disable=SC2086  # ASTERISK_ARGS holds several words on purpose (e.g. -vvv)
    exec asterisk -f -n -C "$conf" ${ASTERISK_ARGS:-}
    ;;
healthcheck)
    exec asterisk -C "$conf" -rx "core waitfullybooted"
    ;;
reload)
    exec asterisk -C "$conf" -rx "core reload"
    ;;
console)
    exec asterisk -C "$conf" -r
    ;;
*)
    exec "$@"
    ;;
esac
