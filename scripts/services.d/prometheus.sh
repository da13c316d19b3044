# Prometheus (Debian's package) for the prometheus scaler tests and examples/scalers/prometheus.yaml.
#
# The data is backfilled with promtool before the server starts, so it is queryable at once
# (a scrape takes ~5 s to show up); --query.lookback-delta=1d keeps those samples visible to
# instant queries for a day. The HTTP API requires basic auth (--web.config.file), so the
# tests exercise credentials against the real server.
#
# Exports KEDGE_PROMETHEUS_URL, KEDGE_PROMETHEUS_USER, KEDGE_PROMETHEUS_PASSWORD.

PROMETHEUS_PORT=9190            # examples/scalers/prometheus.yaml points here
PROMETHEUS_USER=kedge
PROMETHEUS_PASSWORD=kedge-test-password   # loopback-only test server

prometheus_bcrypt() {
  python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' "$1" 2>/dev/null \
    && return 0
  apt_install apache2-utils
  htpasswd -nbBC 10 x "$1" | cut -d: -f2
}

prometheus_start() {
  local conf="$KEDGE_STATE/prometheus.conf"
  if running prometheus && [ -f "$conf" ]; then
    # shellcheck disable=SC1090
    . "$conf"
  else
    apt_install prometheus
    local dir port hash now
    dir=$(mktemp -d /tmp/kedge-prometheus.XXXXXX)
    port=$PROMETHEUS_PORT
    if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null; then
      port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      echo "services: port $PROMETHEUS_PORT is taken; Prometheus listens on $port (examples/scalers/prometheus.yaml will not reach it)" >&2
    fi
    hash=$(prometheus_bcrypt "$PROMETHEUS_PASSWORD")
    [ -n "$hash" ] || { echo "services: cannot hash the Prometheus password" >&2; return 1; }
    printf 'basic_auth_users:\n  %s: %s\n' "$PROMETHEUS_USER" "$hash" > "$dir/web.yml"
    printf 'global: {scrape_interval: 15s, evaluation_interval: 15s}\nscrape_configs: []\n' > "$dir/prometheus.yml"
    promtool check config "$dir/prometheus.yml" >/dev/null
    now=$(date +%s)
    {
      echo '# HELP kedge_queue_depth Messages waiting, per queue (test data).'
      echo '# TYPE kedge_queue_depth gauge'
      for t in $((now - 120)) $((now - 60)); do
        echo "kedge_queue_depth{queue=\"jobs\"} 42 $t"
        echo "kedge_queue_depth{queue=\"emails\"} 7 $t"
      done
      echo '# EOF'
    } > "$dir/data.om"
    mkdir -p "$dir/data"
    promtool tsdb create-blocks-from openmetrics "$dir/data.om" "$dir/data" >"$dir/backfill.log" 2>&1 || {
      echo "services: promtool backfill failed, see $dir/backfill.log" >&2; return 1; }
    prometheus --config.file="$dir/prometheus.yml" --web.config.file="$dir/web.yml" \
      --storage.tsdb.path="$dir/data" --web.listen-address="127.0.0.1:$port" \
      --query.lookback-delta=1d >"$dir/prometheus.log" 2>&1 &
    remember prometheus $!
    printf 'PROMETHEUS_DIR=%q\nPROMETHEUS_URL=%q\n' "$dir" "http://127.0.0.1:$port" > "$conf"
    # shellcheck disable=SC1090
    . "$conf"
    wait_for 30 curl -sf -u "$PROMETHEUS_USER:$PROMETHEUS_PASSWORD" "$PROMETHEUS_URL/-/ready" || {
      echo "services: Prometheus did not become ready, see $dir/prometheus.log" >&2; return 1; }
  fi
  export_env KEDGE_PROMETHEUS_URL "$PROMETHEUS_URL"
  export_env KEDGE_PROMETHEUS_USER "$PROMETHEUS_USER"
  export_env KEDGE_PROMETHEUS_PASSWORD "$PROMETHEUS_PASSWORD"
}

prometheus_stop() {
  local conf="$KEDGE_STATE/prometheus.conf"
  [ -f "$conf" ] || return 0
  # shellcheck disable=SC1090
  . "$conf"
  if running prometheus; then
    kill "$(cat "$KEDGE_STATE/prometheus.pid")" 2>/dev/null || true
    wait_for 10 sh -c "! kill -0 $(cat "$KEDGE_STATE/prometheus.pid") 2>/dev/null" || true
  fi
  rm -f "$KEDGE_STATE/prometheus.pid" "$conf"
  case "$PROMETHEUS_DIR" in /tmp/kedge-prometheus.*) rm -rf "$PROMETHEUS_DIR" ;; esac
}
