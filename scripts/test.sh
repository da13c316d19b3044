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

# Builds are shared between clones when CARGO_TARGET_DIR is set (CI sets none: a cold run
# must pass on its own).
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step "services"
scripts/services.sh start
trap 'scripts/services.sh stop' EXIT
# shellcheck disable=SC1091
[ -f .kedge/services.env ] && . .kedge/services.env

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked "$@"
