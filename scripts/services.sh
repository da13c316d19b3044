#!/usr/bin/env bash
# Starts (and stops) the real services the tests talk to.
#
#   scripts/services.sh start | stop | status
#
# Each service is a plug-in, scripts/services.d/<name>.sh, defining `<name>_start` and
# `<name>_stop`. `start` is idempotent: a service already running (by us or by the machine)
# is left alone, and `stop` stops only what `start` started, by PID files in .kedge/services/.
# Plug-ins append `export NAME=value` lines to .kedge/services.env (addresses, credentials),
# which scripts/test.sh sources before running the tests.
#
# The machines this project runs on start PostgreSQL, RabbitMQ, Redis, MariaDB, NATS and
# Mosquitto on their standard loopback ports; everything else is installed and started here.
set -euo pipefail
cd "$(dirname "$0")/.."

export KEDGE_STATE="$PWD/.kedge/services"
export KEDGE_SERVICES_ENV="$PWD/.kedge/services.env"
# Tools and builds that outlive a clone (tansu, python venvs) live here.
export KEDGE_CACHE="${KEDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kedge}"
mkdir -p "$KEDGE_STATE" "$KEDGE_CACHE"

# Helpers for plug-ins.
# wait_for SECONDS CMD... : poll CMD every 0.2 s until it succeeds; fail after SECONDS.
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}
# running NAME : true if the PID recorded for NAME is alive.
running() { [ -f "$KEDGE_STATE/$1.pid" ] && kill -0 "$(cat "$KEDGE_STATE/$1.pid")" 2>/dev/null; }
# remember NAME PID : record a PID that `stop` will kill.
remember() { echo "$2" > "$KEDGE_STATE/$1.pid"; }
# export_env NAME VALUE : make NAME=VALUE visible to the tests.
export_env() { echo "export $1=$(printf '%q' "$2")" >> "$KEDGE_SERVICES_ENV"; }
# apt_install PKG... : install Debian packages that are missing.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ ! -f "$KEDGE_CACHE/.apt-updated" ]; then apt-get update -qq && touch "$KEDGE_CACHE/.apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
export -f wait_for running remember export_env apt_install

plugins=()
for f in scripts/services.d/*.sh; do
  [ -e "$f" ] || continue
  # shellcheck disable=SC1090
  . "$f"
  plugins+=("$(basename "$f" .sh)")
done

case "${1:-}" in
  start)
    : > "$KEDGE_SERVICES_ENV"
    for p in "${plugins[@]}"; do
      echo "services: starting $p"
      "${p//-/_}_start"
    done
    ;;
  stop)
    for p in "${plugins[@]}"; do "${p//-/_}_stop" || true; done
    for pidfile in "$KEDGE_STATE"/*.pid; do
      [ -e "$pidfile" ] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    done
    ;;
  status)
    for pidfile in "$KEDGE_STATE"/*.pid; do
      [ -e "$pidfile" ] || continue
      n=$(basename "$pidfile" .pid)
      if running "$n"; then echo "$n: running"; else echo "$n: stopped"; fi
    done
    cat "$KEDGE_SERVICES_ENV"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
