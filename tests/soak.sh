#!/usr/bin/env bash
# The long runs CI only samples (as root): the rekey soak against strongSwan playing AWS for
# SOAK_SECS (default 1200 = 20 minutes; CI runs 90 s), then, with MATRIX=1, the rekey interop matrix
# once more. Prints the counts the closing notes report. Needs what tests/run.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SOAK_SECS:-1200}"
csv="${SOAK_CSV:-/tmp/cgwd-soak-$(date +%Y%m%d-%H%M).csv}"
echo "== rekey soak, ${secs} s (cgwd's RSS and file descriptors every 5 s: $csv)"
CGWD_SOAK_SECS="$secs" CGWD_SOAK_CSV="$csv" cargo test --test rekey_soak -- --nocapture
if command -v gnuplot >/dev/null; then
  gnuplot -e "set terminal png size 900,400; set output '${csv%.csv}.png'; set datafile separator ',';
    set key autotitle columnhead; set xlabel 'seconds'; set ylabel 'RSS KiB'; set y2label 'fds';
    set y2tics; set yrange [0:*]; set y2range [0:*];
    plot '$csv' using 1:2 with lines, '' using 1:3 axes x1y2 with lines"
  echo "== plot: ${csv%.csv}.png"
else
  echo "== no gnuplot (apt-get install gnuplot-nox): no plot, the CSV is $csv"
fi
if [ "${MATRIX:-0}" = 1 ]; then
  echo "== rekey interop matrix"
  cargo test --test rekey_matrix -- --nocapture
fi
