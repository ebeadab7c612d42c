#!/usr/bin/env bash
#
# bgp_lab.sh - cgwd's built-in BGP against the reference customer gateway (strongSwan charon +
# BIRD), both against the same AWS-faithful lab (../shared/lab: strongSwan and BIRD playing AWS's
# two endpoints, a VPC router on iBGP): memory (RSS of the gateway's processes with both tunnels
# and both BGP sessions up) and the round-trip outage when tunnel 1 is cut silently (AWS's UDP
# 500/4500 dropped) while on-prem pings the VPC every 0.2 s. Figures are ratios against the
# reference measured in the same run.
#
# Usage (root, from the project root): LAB=../shared/lab benches/bgp_lab.sh [OUTDIR]
# Needs the lab (not part of this repository) and a release build (`cargo build --release`).
set -euo pipefail

LAB=${LAB:-../shared/lab}
L=$(readlink -f "$LAB")/aws-lab
OUT=${1:-/tmp/cgwd-bgp-lab}
CGWD=$(readlink -f target/release/cgwd)
CUT_FOR=${CUT_FOR:-70}
mkdir -p "$OUT"
[[ -x $L ]] || { echo "no lab at $LAB (set LAB=)" >&2; exit 2; }
[[ -x $CGWD ]] || { echo "build first: cargo build --release" >&2; exit 2; }
eval "$("$L" env)"
say() { echo "== $*" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"

# The RSS (KiB) of the processes named $@ running in namespace cgw.
rss_of() {
	local total=0 pid comm kb
	for pid in $(ip netns pids cgw); do
		comm=$(cat /proc/$pid/comm 2>/dev/null) || continue
		for name in "$@"; do
			if [[ $comm == "$name" ]]; then
				kb=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
				total=$((total + kb))
			fi
		done
	done
	echo $total
}

# ping_stats FILE INTERVAL -> "tx rx lost longest_outage_s"
ping_stats() {
	awk -v iv="$2" '
		/packets transmitted/ { tx = $1; rx = $4 }
		/bytes from/ { match($0, /icmp_seq=[0-9]+/); s = substr($0, RSTART + 9, RLENGTH - 9) + 0
			if (s - last - 1 > gap) gap = s - last - 1; last = s }
		END { if (tx - last > gap) gap = tx - last
			printf "%d %d %d %.1f\n", tx, rx, tx - rx, gap * iv }' "$1"
}

# cut_test NAME: ping every 0.2 s, cut tunnel 1 (drop) after 5 s, report the longest outage.
cut_test() {
	local log=$OUT/$1-cut-ping.txt
	ip netns exec onprem ping -D -O -i 0.2 -w "$CUT_FOR" "$VPC_HOST" >"$log" 2>&1 &
	local ping_pid=$!
	sleep 5
	"$L" cut 1 drop
	wait $ping_pid || true
	read -r tx rx lost gap < <(ping_stats "$log" 0.2)
	say "  $1: silent cut of tunnel 1: sent $tx, received $rx, lost $lost; longest outage ${gap} s"
	echo "$gap" >"$OUT/$1-outage"
	"$L" restore 1
}

"$L" down >/dev/null 2>&1 || true
"$L" up >/dev/null

say "reference: strongSwan charon + BIRD as the customer gateway"
"$L" ref-cgw start >/dev/null
"$L" wait 60 >/dev/null
sleep 5
ref_rss=$(rss_of charon bird)
say "  RSS charon + BIRD: ${ref_rss} KiB"
cut_test reference
"$L" wait 90 >/dev/null || true
"$L" ref-cgw stop >/dev/null

say "cgwd (built-in BGP) as the customer gateway"
"$L" down >/dev/null 2>&1 || true
"$L" up >/dev/null
"$(dirname "$L")/aws-config" "$(dirname "$L")/aws-vpn.env" json >"$OUT/vpn.json"
mkdir -p /tmp/cgwd-lab
"$(dirname "$L")/settings-from-env" "$(dirname "$L")/aws-vpn.env" --socket "$OUT/cgwd.sock" \
	--health "$OUT/health.jsonl" >"$OUT/cgwd.toml"
ip netns exec cgw "$CGWD" run "$OUT/vpn.json" --settings "$OUT/cgwd.toml" >"$OUT/cgwd.log" 2>&1 &
t0=$SECONDS
"$L" wait 60 >/dev/null
say "  both tunnels and BGP sessions up on AWS's side $((SECONDS - t0)) s after cgwd run"
sleep 5
cgwd_rss=$(rss_of cgwd)
say "  RSS cgwd: ${cgwd_rss} KiB"
cut_test cgwd
"$L" wait 90 >/dev/null || true
"$L" down >/dev/null 2>&1 || true

awk -v r="$ref_rss" -v c="$cgwd_rss" -v ro="$(cat "$OUT/reference-outage")" -v co="$(cat "$OUT/cgwd-outage")" 'BEGIN {
	printf "== cgwd / reference: RSS %.2f (%d / %d KiB), outage %.3f (%.1f / %.1f s)\n", c / r, c, r, (ro > 0 ? co / ro : 0), co, ro
}' | tee -a "$OUT/summary.txt"
