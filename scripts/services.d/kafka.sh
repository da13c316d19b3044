# Kafka for the kafka scaler's tests: tansu 0.6.0 (a Kafka-protocol broker in Rust) on the
# SQLite engine, plus the C build dependencies of the `rdkafka` crate's bundled librdkafka.
#
# Why tansu and why SQLite: see shared/reference/kafka-test-broker.md. No Kafka broker is
# installable from the registries this project can reach; tansu's in-memory engine reports
# wrong high watermarks when producers batch, the SQLite engine is exact.
#
# Exports:
#   KEDGE_KAFKA_BOOTSTRAP  host:port of the shared broker, 127.0.0.1:19092 unless that port is
#                          taken (tests use unique topic and group names)
#   KEDGE_TANSU_BIN        the tansu binary, for tests that start a private broker

TANSU_VERSION=0.6.0

kafka_start() {
  # librdkafka's own build (rdkafka-sys) needs a C toolchain and make (on the image); the
  # `ssl` feature needs OpenSSL headers and `curl` (OAUTHBEARER/OIDC) the curl headers.
  apt_install build-essential pkg-config libssl-dev libcurl4-openssl-dev

  local prefix="$KEDGE_CACHE/tansu"
  local bin="$prefix/bin/tansu"
  if ! "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    # 9 minutes and 1.7 GB of RAM on 2 idle cores (20 minutes next to other builds), once per
    # machine: $KEDGE_CACHE outlives clones.
    echo "services: building tansu $TANSU_VERSION into $prefix (9-20 min, once per machine)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features libsql \
      --root "$prefix" --quiet
  fi
  export_env KEDGE_TANSU_BIN "$bin"

  local port_file="$KEDGE_STATE/kafka.port"
  if running kafka && [ -f "$port_file" ]; then
    export_env KEDGE_KAFKA_BOOTSTRAP "127.0.0.1:$(cat "$port_file")"
    return 0
  fi

  local port dir
  # A fixed port, so examples/scalers/kafka.yaml can name it; any free one if it is taken.
  port="${KEDGE_KAFKA_PORT:-19092}"
  if kafka_port_open "$port"; then port=$(kafka_free_port); fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/kedge-tansu.XXXXXX")
  # The SQLite path is relative to the working directory, so run inside the temp dir.
  (
    cd "$dir" || exit 1
    exec "$bin" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine sqlite://tansu.db \
      --silent >broker.log 2>&1
  ) &
  remember kafka $!
  echo "$port" >"$port_file"
  echo "$dir" >"$KEDGE_STATE/kafka.dir"
  if ! wait_for 30 kafka_port_open "$port"; then
    echo "services: tansu did not listen on 127.0.0.1:$port; log:" >&2
    cat "$dir/broker.log" >&2 || true
    return 1
  fi
  # The topic examples/scalers/kafka.yaml measures (tests create their own).
  "$bin" topic create orders --partitions 3 --broker "tcp://127.0.0.1:$port" >/dev/null ||
    echo "services: could not create topic 'orders' for the kafka example" >&2
  export_env KEDGE_KAFKA_BOOTSTRAP "127.0.0.1:$port"
}

kafka_stop() {
  if running kafka; then
    local pid
    pid=$(cat "$KEDGE_STATE/kafka.pid")
    kill "$pid" 2>/dev/null || true
    # tansu takes up to ~2 s to exit on SIGTERM once clients have connected.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$KEDGE_STATE/kafka.pid" "$KEDGE_STATE/kafka.port"
  if [ -f "$KEDGE_STATE/kafka.dir" ]; then
    rm -rf "$(cat "$KEDGE_STATE/kafka.dir")"
    rm -f "$KEDGE_STATE/kafka.dir"
  fi
}

# kafka_free_port : a TCP port on 127.0.0.1 nobody listens on.
kafka_free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    kafka_port_open "$p" || { echo "$p"; return 0; }
  done
}

# kafka_port_open PORT : true once something accepts connections on 127.0.0.1:PORT.
kafka_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
