#!/usr/bin/env bash
# Load test of the metrics adapter's serving path on loopback: 1,000 ScaledObjects whose values
# are cached in memory (the operator's cache stand-in), read by oha through TLS the way the HPA
# reads them, once with authentication off (local mode) and once with front-proxy client
# certificate authentication (the aggregator's path in a cluster).
#
#   scripts/bench-adapter.sh                  # both modes, fixed 5,000 req/s, then flat out
#   RATE=2000 DURATION=20s scripts/bench-adapter.sh
#
# Knobs (environment): OBJECTS (1000), RATE (5000 req/s for the fixed-rate run), DURATION (30s),
# CONNECTIONS (50 concurrent HTTP/1.1 keep-alive connections), MODES ("none front-proxy").
# Prints one line per run; results are recorded by hand in docs/benchmarks.md
# ("Metrics adapter").
set -euo pipefail
cd "$(dirname "$0")/.."

OBJECTS=${OBJECTS:-1000}
RATE=${RATE:-5000}
DURATION=${DURATION:-30s}
CONNECTIONS=${CONNECTIONS:-50}
MODES=${MODES:-none front-proxy}
OHA_VERSION=1.16.0

if ! command -v oha >/dev/null 2>&1 || ! oha --version | grep -q "$OHA_VERSION"; then
  echo "installing oha $OHA_VERSION (cargo install)..." >&2
  cargo install --locked --quiet oha --version "$OHA_VERSION"
fi
command -v python3 >/dev/null 2>&1 || { echo "python3 is needed to read oha's JSON" >&2; exit 1; }

cargo build --quiet --release -p kedge-metrics-adapter --example bench_adapter
server_bin=target/release/examples/bench_adapter

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

summarise() { # label json-file
  python3 - "$1" "$2" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
m = r["metrics"]
codes = ", ".join(f"{k}: {v}" for k, v in sorted(r.get("statusCodeDistribution", {}).items()))
errors = ", ".join(f"{v}× {k}" for k, v in r.get("errorDistribution", {}).items()) or "none"
print(f"{label:<44} {m['requests_per_sec']:>9.0f} req/s   p50 {m['latency_ms']['p50']:6.2f} ms   "
      f"p99 {m['latency_ms']['p99']:6.2f} ms   max {m['latency_ms']['max']:7.2f} ms   [{codes}; errors: {errors}]")
# Only 200s count: anything else means the benchmark measured error paths, not the serving path.
# (oha counts requests still in flight when the duration ends as errors: at most one per
# connection.)
if set(r.get("statusCodeDistribution", {})) - {"200"}:
    sys.exit(f"{label}: responses other than 200: {codes}")
PY
}

# Every request picks one of the ScaledObjects at random (so-000 … so-999).
digits=${#OBJECTS}; digits=$(( digits > 3 ? digits - 1 : 3 ))
for mode in $MODES; do
  rm -f "$work/port"
  # stdin from a fifo we hold open: the server exits when the script does.
  mkfifo "$work/stdin.$mode"
  "$server_bin" --dir "$work" --objects "$OBJECTS" --auth "$mode" <"$work/stdin.$mode" &
  server_pid=$!
  exec 9>"$work/stdin.$mode"
  for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
  [ -s "$work/port" ] || { echo "the bench adapter did not start" >&2; exit 1; }
  port=$(cat "$work/port")
  # oha reads this as a regex after URL parsing: literal dots and '?' go in classes, not escapes.
  url="https://localhost:${port}/apis/external[.]metrics[.]k8s[.]io/v1beta1/namespaces/bench/s0-metric[?]labelSelector=scaledobject[.]keda[.]sh%2Fname%3Dso-[0-9]{${digits}}"
  args=(--no-tui --output-format json -c "$CONNECTIONS" --cacert "$work/serving-ca.pem" --rand-regex-url "$url")
  if [ "$mode" = front-proxy ]; then
    args+=(--cert "$work/front-proxy.crt" --key "$work/front-proxy.key"
           -H "X-Remote-User: system:serviceaccount:kube-system:horizontal-pod-autoscaler"
           -H "X-Remote-Group: system:serviceaccounts")
  fi
  # Warm-up (connections, caches), then a fixed-rate run with latency correction (no
  # coordinated omission), then flat out.
  oha "${args[@]}" -z 3s >/dev/null
  oha "${args[@]}" -z "$DURATION" -q "$RATE" --latency-correction >"$work/fixed.json"
  summarise "auth=$mode, $OBJECTS objects, fixed $RATE req/s" "$work/fixed.json"
  oha "${args[@]}" -z "$DURATION" >"$work/max.json"
  summarise "auth=$mode, $OBJECTS objects, max, $CONNECTIONS conns" "$work/max.json"
  exec 9>&-
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
done
