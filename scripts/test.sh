#!/usr/bin/env bash
# The one test command: formatting, lints and the whole test suite (unit, integration and
# end-to-end tests against real services). It installs what is missing, starts the services
# the tests need through scripts/services.sh, and stops what it started.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p kedge   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Build output is kept outside the clone so a fresh clone on the same machine reuses it; a
# cold run on a new machine simply builds everything once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kedge/target}"
# Integration tests fail (rather than skip) when a service they need is not configured.
export KEDGE_REQUIRE_SERVICES=1

step "services"
scripts/services.sh start
trap 'scripts/services.sh stop' EXIT
# shellcheck disable=SC1091
[ -f .kedge/services.env ] && . .kedge/services.env

step "cargo fmt --check"
cargo fmt --all -- --check

step "manifests"
scripts/validate-manifests.sh

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The image's build (Dockerfile): kedge without `kedge dev` and its embedded local-cluster.
cargo clippy -p kedge --locked --no-default-features -- -D warnings

step "cargo test"
cargo test --workspace --locked "$@"
