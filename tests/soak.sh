#!/usr/bin/env bash
# The long runs CI only samples (as root): the rekey soak against strongSwan playing AWS for
# SOAK_SECS (default 1200 = 20 minutes; CI runs 90 s), then, with MATRIX=1, the rekey interop matrix
# once more. Prints the counts the closing notes report. Needs what tests/run.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SOAK_SECS:-1200}"
echo "== rekey soak, ${secs} s"
CGWD_SOAK_SECS="$secs" cargo test --test rekey_soak -- --nocapture
if [ "${MATRIX:-0}" = 1 ]; then
  echo "== rekey interop matrix"
  cargo test --test rekey_matrix -- --nocapture
fi
