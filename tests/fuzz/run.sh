#!/usr/bin/env bash
# Build every libFuzzer target (tests/fuzz/fuzz_*.c) with clang and run each for SECONDS
# (default 30) on its seed corpus in tests/fuzz/corpus/<name>/. Crashing inputs are kept in
# tests/fuzz/artifacts/; any crash fails the run. Usage: tests/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
CC=clang cmake -S . -B build-fuzz -DSLUICE_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug -DSLUICE_WERROR=ON >/dev/null
cmake --build build-fuzz -j"${JOBS:-2}" >/dev/null
mkdir -p tests/fuzz/artifacts
fail=0; ran=0
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c); short=${name#fuzz_}
  corpus=tests/fuzz/corpus/$short
  work=$(mktemp -d); mkdir -p "$corpus"
  # New inputs go to a scratch dir so the committed corpus only changes on purpose.
  if build-fuzz/"$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix=tests/fuzz/artifacts/"$name"- "$work" "$corpus" >"$work.log" 2>&1; then
    echo "fuzz $name: ok ($(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$work.log" | grep -Eo '[0-9]+' || echo '?') runs in ${secs}s)"
  else
    echo "fuzz $name: FAILED"; tail -40 "$work.log"; fail=1
  fi
  ran=$((ran+1)); rm -rf "$work" "$work.log"
done
echo "fuzz: $ran targets, $([ $fail = 0 ] && echo 0 || echo some) failed"
exit $fail
