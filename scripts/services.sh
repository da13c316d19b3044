#!/usr/bin/env bash
# Starts (and stops) the real services the tests talk to. Idempotent: `start` leaves running
# services alone and only stops, on `stop`, what it started itself. Each service it starts
# writes its address to .kedge/services.env, which scripts/test.sh sources.
#
#   scripts/services.sh start | stop | status
#
# The machines this project runs on start PostgreSQL, RabbitMQ, Redis, MariaDB, NATS and
# Mosquitto on their standard loopback ports; nothing else is assumed. The scaler suites add
# their services here (Kafka via tansu, SQS via moto, Prometheus, RabbitMQ's management
# plugin) as they land.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.kedge/services
mkdir -p "$state"
touch .kedge/services.env

case "${1:-}" in
  start)
    # Tools the end-to-end tests drive as real clients.
    if ! command -v kubectl >/dev/null 2>&1; then
      echo "services: kubectl is not installed; the local-cluster tests that drive kubectl need it" >&2
    fi
    ;;
  stop)
    for pidfile in "$state"/*.pid; do
      [ -e "$pidfile" ] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    done
    ;;
  status)
    ls "$state"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
