#!/usr/bin/env bash
# Runs every fuzz target for SECS seconds (default 10: the CI smoke run) with libFuzzer's coverage
# guidance, starting from the seeds under fuzz/corpus/<target> (what a run finds goes to
# CORPUS_OUT/<target>, default a temporary directory, so the repository keeps its seeds). On the stable
# toolchain cargo-fuzz works without a sanitizer (`--sanitizer none`); Rust's own checks (bounds,
# overflow in debug assertions, which cargo-fuzz turns on) still turn every bug into a crash.
# Any crash fails the run and leaves its input under fuzz/artifacts/<target>/.
#
#   bash fuzz/smoke.sh                 # CI: 10 s per target
#   SECS=600 bash fuzz/smoke.sh        # a long run; prints executions and corpus size per target
#   bash fuzz/smoke.sh ike_message     # some targets only
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
echo "== building ${#targets[@]} fuzz targets"
cargo fuzz build --sanitizer none >/dev/null
out_root=${CORPUS_OUT:-$(mktemp -d)}
report=""
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "$out_root/$t"
  log=$(mktemp)
  if ! cargo fuzz run --sanitizer none "$t" "$out_root/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "== $t: CRASH (input under fuzz/artifacts/$t/)"
    rm -f "$log"
    exit 1
  fi
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  corpus=$(find "$out_root/$t" "fuzz/corpus/$t" -type f | wc -l)
  line=$(printf "%-16s %10s executions in %s s, corpus %s inputs, 0 crashes" "$t" "${runs:-?}" "$SECS" "$corpus")
  echo "== $line"
  report+="$line"$'\n'
  rm -f "$log"
done
printf '%s' "$report" >fuzz/last-run.txt
[ -n "${CORPUS_OUT:-}" ] || rm -rf "$out_root"
