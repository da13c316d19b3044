#!/usr/bin/env bash
# Scale-loop benchmark: 1,000 and 10,000 cron ScaledObjects on local-cluster, one kedge.
# Prints one markdown row per size (see docs/benchmarks.md for the columns).
#
#   scripts/bench-scale-loop.sh [SIZES...]      # default: 1000 10000
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kedge/target}"
cargo build --release --locked -p kedge --bin kedge
cargo build --release --locked -p kedge-e2e --example bench-scale-loop
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(1000 10000)
echo "| ScaledObjects | pollingInterval | polls measured | kedge RSS | CPU s/min | lag p50 | lag p99 | lag max | local-cluster RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  "$CARGO_TARGET_DIR/release/examples/bench-scale-loop" "$n" "${WINDOW:-60}" "${INTERVAL:-30}"
done
