#!/usr/bin/env bash
#
# report.sh - the benchmark report: runs benches/throughput.sh (or reads a TSV it wrote earlier) and
# writes, under benches/results/, a markdown table with ratios against the references measured in the
# same run, and a PNG chart of throughput, RTT and CPU per Gb/s (gnuplot).
#
# Usage (root, after `cargo build --release`):
#   benches/report.sh                  # run every scenario, then write the report
#   ROUNDS=3 benches/report.sh         # each scenario 3 times interleaved, medians reported
#   benches/report.sh results.tsv      # write the report from an earlier throughput.sh output
# Installs nothing: without gnuplot (Debian: gnuplot-nox) the PNG is skipped and the table still written.
set -euo pipefail
HERE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
OUT="$HERE/results"
mkdir -p "$OUT"
stamp=$(date -u +%Y-%m-%d)
tsv="$OUT/throughput-$stamp.tsv"
if [ $# -ge 1 ]; then
  cp "$1" "$tsv"
else
  "$HERE/throughput.sh" | tee "$tsv.raw"
  grep -v '^ratios' "$tsv.raw" > "$tsv" && rm -f "$tsv.raw"
fi

machine="$(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/{print $2}') GiB, Linux $(uname -r)"
md="$OUT/throughput-$stamp.md"
png="$OUT/throughput-$stamp.png"
rounds=${ROUNDS:-1}
awk -F'\t' -v machine="$machine" -v stamp="$stamp" -v png="$(basename "$png")" -v rounds="$rounds" '
  NR == 1 { next }
  { name[NR] = $1; tcp[NR] = $2; udp[NR] = $3; rtt[NR] = $4; cpu[NR] = $5; ref[$1] = NR; n = NR }
  function r(a, b) { return (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) ? sprintf("%.1f×", a / b) : "–" }
  function r2(a, b) { return (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) ? sprintf("%.2f×", a / b) : "–" }
  function perg(c, t) { return (c ~ /^[0-9.]+$/ && t ~ /^[0-9.]+$/ && t > 0) ? sprintf("%.0f", c / (t / 1000)) : "–" }
  END {
    print "# Throughput report, " stamp
    print ""
    print "Machine: " machine ". Every scenario ran in the same run, over the same four network"
    print "namespaces (onprem — gw1 — gw2 — vpc), with both tunnel ends and iperf3 sharing the cores."
    print "Single-stream iperf3 TCP, UDP with 1300-byte datagrams, ping RTT average, CPU of both tunnel"
    print "processes during the TCP run (% of one core). Ratios are against strongSwan (kernel-libipsec)"
    print "and wireguard-go (throughput) and boringtun (RTT) measured in this run."
    if (rounds > 1)
      print "Each scenario ran " rounds " times, interleaved; every column is the median of its rounds."
    print ""
    print "| scenario | TCP Mbit/s | UDP Mbit/s | RTT avg ms | CPU % | CPU % per Gbit/s | TCP vs strongSwan | TCP vs wireguard-go | RTT vs boringtun |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    s = ref["strongswan"]; w = ref["wireguard-go"]; b = ref["boringtun"]
    for (i = 2; i <= n; i++)
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name[i], tcp[i], udp[i], rtt[i], cpu[i], perg(cpu[i], tcp[i]), r(tcp[i], tcp[s]), r(tcp[i], tcp[w]), r2(rtt[i], rtt[b])
    print ""
    print "![throughput](" png ")"
  }' "$tsv" > "$md"

if command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 1200,420 font "sans,10"
set output "$png"
set datafile separator "\t"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set key off
set grid ytics
set xtics rotate by -30
set multiplot layout 1,3 title "cgwd throughput report $stamp"
set title "TCP single stream (Mbit/s)"
plot "$tsv" every ::1 using (column(2) > 0 ? column(2) : 0):xtic(1) lc rgb "#3b7dd8"
set title "ping RTT average (ms)"
plot "$tsv" every ::1 using (column(4) > 0 ? column(4) : 0):xtic(1) lc rgb "#d8843b"
set title "CPU % per Gbit/s (lower is better)"
plot "$tsv" every ::1 using ((column(2) > 0 && column(5) > 0) ? column(5) / (column(2) / 1000.0) : 0):xtic(1) lc rgb "#4caf50"
unset multiplot
GP
  echo "wrote $md and $png"
else
  echo "wrote $md (no gnuplot: install gnuplot-nox for the PNG chart)"
fi
