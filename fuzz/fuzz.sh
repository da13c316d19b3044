#!/usr/bin/env bash
# Builds kedge's fuzz targets and runs each for a bounded time (docs/fuzzing.md).
#
#   fuzz/fuzz.sh                          # every target, KEDGE_FUZZ_SECONDS (10) s each
#   fuzz/fuzz.sh --quick                  # only the quick set (what scripts/test.sh runs)
#   fuzz/fuzz.sh 600 formula check_yaml   # those two, 10 minutes each
#   fuzz/fuzz.sh build | list             # only build / name the targets (with --quick: its set)
#
# The quick set is the targets that build without the `all` feature of fuzz/Cargo.toml: a cold
# build of the others compiles the whole operator (about 25 CPU-minutes instrumented).
#
# A crash, panic, timeout (KEDGE_FUZZ_TIMEOUT s for one input) or oversized allocation fails
# the run; the input is saved in fuzz/artifacts/<target>/ and cargo-fuzz prints how to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${XDG_CACHE_HOME:-$HOME/.cache}/kedge"
# Its own target dir: the fuzz build's flags (coverage instrumentation, sanitizer) differ from
# the workspace's, so sharing one would rebuild both every time.
target_dir="${KEDGE_FUZZ_TARGET_DIR:-$cache/fuzz-target}"
# What the fuzzer learns is kept here between runs; fuzz/corpus/<target> holds the checked-in
# seeds, which runs read but never write.
work_corpus="${KEDGE_FUZZ_CORPUS:-$cache/fuzz-corpus}"
seconds="${KEDGE_FUZZ_SECONDS:-10}"
timeout="${KEDGE_FUZZ_TIMEOUT:-10}"
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sanitizer coverage options) to
# rustc and cargo. The stable toolchain implements them; RUSTC_BOOTSTRAP=1 lets it accept them.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# AddressSanitizer keeps the stack of every allocation (30 frames by default) in a store that
# never shrinks; the parsers' deep recursion makes that grow past libFuzzer's 2 GiB limit in a
# few minutes. 8 frames still locate a fault.
export ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=8}"

# The fuzz crate is a workspace of its own; its lock file is the workspace's (kept out of git),
# so both build the same versions, plus libFuzzer's few crates.
cp Cargo.lock fuzz/Cargo.lock

# Release code with debug assertions and overflow checks, AddressSanitizer (cargo-fuzz's
# defaults), and 16 codegen units instead of one: a much shorter cold build for a slightly
# slower fuzzer.
build_flags=(--fuzz-dir fuzz --target-dir "$target_dir" -O -a --codegen-units 16)
quick=0
if [ "${1:-}" = --quick ]; then
  quick=1
  build_flags+=(--no-default-features)
  shift
fi

# Every target, or with --quick those without `required-features` in fuzz/Cargo.toml.
targets() {
  if [ "$quick" = 1 ]; then
    awk '/^\[/ { if (name != "" && !req) print name; name = ""; req = 0; bin = /^\[\[bin\]\]/ }
         bin && /^name = / { gsub(/"/, "", $3); name = $3 }
         /^required-features/ { req = 1 }
         END { if (name != "" && !req) print name }' fuzz/Cargo.toml
  else
    cargo fuzz list --fuzz-dir fuzz
  fi
}

case "${1:-}" in
  list) targets; exit 0 ;;
  build) cargo fuzz build "${build_flags[@]}"; exit 0 ;;
  '' ) ;;
  *[!0-9]*) echo "usage: fuzz/fuzz.sh [--quick] [SECONDS [TARGET...] | build | list]" >&2; exit 2 ;;
  *) seconds="$1"; shift ;;
esac
if [ "$#" -gt 0 ]; then
  selected=("$@")
else
  mapfile -t selected < <(targets)
fi

cargo fuzz build "${build_flags[@]}"
for target in "${selected[@]}"; do
  mkdir -p "$work_corpus/$target"
  printf -- '--- %s: %ss\n' "$target" "$seconds"
  # -malloc_limit_mb: no input of a few KiB may make kedge allocate 256 MiB at once (the memory
  # bombs of issue 15). Statistics go to the log; only libFuzzer's summary lines are shown.
  log="$target_dir/fuzz-$target.log"
  if ! cargo fuzz run "${build_flags[@]}" "$target" "$work_corpus/$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout="$timeout" -malloc_limit_mb=256 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/ (full log: $log)" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | tr '\n' ' '
  echo
done
