#!/usr/bin/env bash
# The one test command: formatting, lints and the whole test suite (unit, integration and
# end-to-end tests against real services). It installs what is missing, starts the services
# the tests need through scripts/services.sh, and stops what it started.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p kedge   # extra arguments go to `cargo test`
#   KEDGE_AUDIT=1 scripts/test.sh       # also checks RustSec advisories (needs the network)
#   KEDGE_FUZZ_SECONDS=60 scripts/test.sh   # each fuzz target for 60 s instead of 10 (0: none)
#   KEDGE_FUZZ=all scripts/test.sh      # every fuzz target, not only the quick set
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
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "manifests"
scripts/validate-manifests.sh

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The image's build (Dockerfile): kedge without `kedge dev` and its embedded local-cluster.
cargo clippy -p kedge --locked --no-default-features -- -D warnings

step "cargo deny (licenses, bans, sources)"
# Policy and the reasons for each exception: deny.toml.
cargo deny --version >/dev/null 2>&1 || cargo install cargo-deny --locked --version '^0.20'
cargo deny --offline --locked check licenses bans sources
if [ "${KEDGE_AUDIT:-0}" = 1 ]; then
  step "cargo deny (advisories)"
  # Fetches the RustSec advisory database, so only when asked.
  cargo deny --locked check advisories
fi

step "cargo test"
cargo test --workspace --locked "$@"

if [ "${KEDGE_FUZZ_SECONDS:-10}" != 0 ]; then
  step "fuzz (${KEDGE_FUZZ:-quick} set, ${KEDGE_FUZZ_SECONDS:-10} s per target)"
  # Builds the targets of fuzz/ with cargo-fuzz and runs each briefly (docs/fuzzing.md). The
  # quick set builds in about 4 minutes cold; all of them compile the whole operator again,
  # instrumented (about 25 CPU-minutes), so only when asked.
  cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version '^0.13'
  if [ "${KEDGE_FUZZ:-quick}" = all ]; then fuzz/fuzz.sh; else fuzz/fuzz.sh --quick; fi
fi
