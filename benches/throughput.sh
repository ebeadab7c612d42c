#!/usr/bin/env bash
#
# throughput.sh - data-plane throughput of cgwd against the usual userspace tunnels, over the same
# four network namespaces and hops:
#
#   onprem 10.10.1.2 -- 10.10.1.1 [gw1] 192.0.2.1 ==veth== 192.0.2.2 [gw2] 10.20.1.1 -- 10.20.1.2 vpc
#
# Scenarios (default: all):
#   plain            routing only, no VPN (the path's own limit)
#   cgwd             cgwd <-> cgwd, `cgwd esp-static` with AES-128-GCM manual keys
#   strongswan       strongSwan <-> strongSwan, charon + kernel-libipsec (userspace ESP-in-UDP),
#                    IKEv2 PSK, ESP aes128gcm16
#   wireguard-go     wireguard-go <-> wireguard-go (Debian package wireguard-go + wireguard-tools)
#   boringtun        boringtun-cli <-> boringtun-cli ($BORINGTUN, default: PATH, then
#                    /tmp/boringtun/bin/boringtun-cli from `cargo install --root /tmp/boringtun
#                    boringtun-cli`)
#   cgwd-strongswan  `cgwd run` on gw1 (IKEv2 PSK, a describe-vpn-connections JSON generated from
#                    configs/lab.describe.json with addresses and TunnelOptions for AES-128-GCM)
#                    <-> charon + kernel-libipsec on gw2 playing AWS (ESP aes128gcm16)
#
# Each: ping RTT avg (50 x 20 ms), iperf3 TCP 1 stream ($DURATION s), iperf3 UDP with 1300-byte
# datagrams at 1.5x the TCP rate (an unlimited flood starves iperf3's control connection through
# slow tunnels), and the CPU of the tunnel processes on both gateways during the TCP run (percent
# of one core, both ends added).
#
# Installs nothing: a scenario whose tools are missing says what is missing and is skipped.
# Usage (root): benches/throughput.sh [SCENARIO...]
#   env: CGWD=path/to/cgwd DURATION=5 PINGS=50 ROUNDS=1
# ROUNDS=N runs the chosen scenarios N times, interleaved (cgwd, boringtun, cgwd, boringtun...), and
# reports the median of each column: on a shared machine one run says little about RTT.
# Besides the table it prints ratios against boringtun and plain measured in the same run.
# Build first: cargo build --release.
set -euo pipefail

HERE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
ROOT="$(dirname "$HERE")"
CGWD=${CGWD:-${CARGO_TARGET_DIR:-$ROOT/target}/release/cgwd}
BORINGTUN=${BORINGTUN:-$(command -v boringtun-cli || echo /tmp/boringtun/bin/boringtun-cli)}
CHARON=${CHARON:-/usr/lib/ipsec/charon}
DURATION=${DURATION:-5}
PINGS=${PINGS:-50}
ROUNDS=${ROUNDS:-1}
SCENARIOS=("$@"); ((${#SCENARIOS[@]})) || SCENARIOS=(plain cgwd cgwd-strongswan strongswan wireguard-go boringtun)
TAG=tp$$
RUN=/tmp/cgwd-throughput-$TAG
HZ=$(getconf CLK_TCK)
NS_ON=$TAG-onprem NS_G1=$TAG-gw1 NS_G2=$TAG-gw2 NS_VPC=$TAG-vpc
ONPREM_NET=10.10.1.0/24 VPC_NET=10.20.1.0/24 VPC_HOST=10.20.1.2
declare -A RESULT

log() { echo "throughput: $*" >&2; }
[[ $(id -u) == 0 ]] || { echo "throughput.sh: needs root (namespaces, TUN)" >&2; exit 1; }
for t in ip iperf3 ping jq awk; do
	command -v $t >/dev/null || { echo "throughput.sh: missing $t" >&2; exit 1; }
done
mkdir -p "$RUN"

# ------------------------------------------------------------ helpers ------

# proc_ticks PID... -> utime+stime of all threads, in clock ticks
proc_ticks() {
	local t=0 p
	for p in "$@"; do
		[[ -r /proc/$p/stat ]] || continue
		t=$(( t + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ))
	done
	echo $t
}

# bg NAME NS CMD...: CMD in NS in the background, its pid in $RUN/NAME.pid
bg() {
	local name=$1 ns=$2; shift 2
	setsid ip netns exec "$ns" "$@" </dev/null >>"$RUN/$name.log" 2>&1 &
	echo $! >"$RUN/$name.pid"
}
stop_bg() {
	local f pid
	for f in "$RUN"/*.pid; do
		[[ -e $f ]] || continue
		pid=$(<"$f"); rm -f "$f"
		[[ -d /proc/$pid ]] || continue
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 30); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
}

lab_down() {
	stop_bg
	local ns pid
	for ns in $NS_ON $NS_G1 $NS_G2 $NS_VPC; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
}
trap 'lab_down; [[ -n ${KEEP_RUN:-} ]] || rm -rf "$RUN"' EXIT

# link NS_A IF_A ADDR_A NS_B IF_B ADDR_B
link() {
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
	ip -n "$1" addr add "$3" dev "$2"; ip -n "$1" link set "$2" up
	ip -n "$4" addr add "$6" dev "$5"; ip -n "$4" link set "$5" up
}

lab_up() {
	lab_down
	local ns
	for ns in $NS_ON $NS_G1 $NS_G2 $NS_VPC; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	done
	link $NS_ON eth0 10.10.1.2/24 $NS_G1 lan0 10.10.1.1/24
	link $NS_G1 out0 192.0.2.1/24 $NS_G2 out0 192.0.2.2/24
	link $NS_VPC eth0 10.20.1.2/24 $NS_G2 lan0 10.20.1.1/24
	ip -n $NS_ON route add default via 10.10.1.1
	ip -n $NS_VPC route add default via 10.20.1.1
	ip netns exec $NS_G1 sysctl -qw net.ipv4.ip_forward=1
	ip netns exec $NS_G2 sysctl -qw net.ipv4.ip_forward=1
	TUNNEL_PIDS=""
}

# ---------------------------------------------------------- scenarios ------
# Each setup_X returns 0 with a working onprem <-> vpc path and TUNNEL_PIDS set, or 1 (skipped).

setup_plain() {
	lab_up
	ip -n $NS_G1 route add $VPC_NET via 192.0.2.2
	ip -n $NS_G2 route add $ONPREM_NET via 192.0.2.1
}

cgwd_conf() { # cgwd_conf INSIDE PEER_INSIDE LOCAL PEER SPI_OUT SPI_IN KEY_OUT KEY_IN ROUTE
	cat <<EOF
tun = "cgwd0"
mtu = 1436
inside_address = "$1/30"
peer_inside = "$2"
local = "$3:4500"
peer = "$4:4500"
encryption = "AES128-GCM-16"
spi_out = $5
spi_in = $6
key_out = "$7"
key_in = "$8"
routes = ["$9"]
tcp_mss = 1379
EOF
}

setup_cgwd() {
	[[ -x $CGWD ]] || { log "cgwd: no binary at $CGWD (cargo build --release, or set CGWD)"; return 1; }
	lab_up
	local k1 k2
	k1=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n'); k2=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
	cgwd_conf 169.254.10.2 169.254.10.1 192.0.2.1 192.0.2.2 4097 8194 "$k1" "$k2" $VPC_NET >"$RUN/gw1.toml"
	cgwd_conf 169.254.10.1 169.254.10.2 192.0.2.2 192.0.2.1 8194 4097 "$k2" "$k1" $ONPREM_NET >"$RUN/gw2.toml"
	bg cgwd-gw1 $NS_G1 "$CGWD" esp-static --config "$RUN/gw1.toml"
	bg cgwd-gw2 $NS_G2 "$CGWD" esp-static --config "$RUN/gw2.toml"
	for _ in $(seq 50); do
		grep -q ready "$RUN/cgwd-gw1.log" 2>/dev/null && grep -q ready "$RUN/cgwd-gw2.log" 2>/dev/null && break
		sleep 0.1
	done
	grep -q ready "$RUN/cgwd-gw2.log" || { log "cgwd did not start: $(cat "$RUN"/cgwd-*.log)"; return 1; }
	TUNNEL_PIDS="$(<"$RUN/cgwd-gw1.pid") $(<"$RUN/cgwd-gw2.pid")"
}

# strongSwan: one charon per gateway, kernel-libipsec, private /run (own pid file), own vici socket.
ss_conf() { # ss_conf DIR LOCAL REMOTE LOCAL_TS REMOTE_TS START_ACTION [PSK [EXTRA_CHARON_LINES]]
	mkdir -p "$1"
	# A previous round's socket would pass the "charon is up" check before the new charon listens.
	rm -f "$1/charon.vici"
	cat >"$1/strongswan.conf" <<EOF
charon {
	# openssl/aesni before aes/gcm: the plain C ones have no AES-NI.
	load = random nonce openssl aesni aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 x509 kernel-libipsec kernel-netlink socket-default vici
	install_virtual_ip = no
	${8:-}
	plugins {
		vici {
			socket = unix://$1/charon.vici
		}
	}
	filelog {
		charon {
			path = $1/charon.log
			flush_line = yes
			default = 1
		}
	}
}
EOF
	cat >"$1/swanctl.conf" <<EOF
connections {
	bench {
		local_addrs = $2
		remote_addrs = $3
		encap = yes
		mobike = no
		proposals = aes128gcm16-prfsha256-ecp256
		local { auth = psk
			id = $2 }
		remote { auth = psk
			id = $3 }
		children {
			bench {
				local_ts = $4
				remote_ts = $5
				esp_proposals = aes128gcm16
				start_action = $6
			}
		}
	}
}
secrets {
	ike-bench {
		id-a = 192.0.2.1
		id-b = 192.0.2.2
		secret = "${7:-throughput-bench-psk-$TAG}"
	}
}
EOF
}

setup_strongswan() {
	[[ -x $CHARON ]] || { log "strongswan: no charon at $CHARON (apt-get install strongswan-charon libcharon-extra-plugins libstrongswan-standard-plugins)"; return 1; }
	command -v swanctl >/dev/null || { log "strongswan: no swanctl (apt-get install strongswan-swanctl)"; return 1; }
	lab_up
	ss_conf "$RUN/ss-gw2" 192.0.2.2 192.0.2.1 $VPC_NET $ONPREM_NET none
	ss_conf "$RUN/ss-gw1" 192.0.2.1 192.0.2.2 $ONPREM_NET $VPC_NET start
	local gw
	for gw in gw2 gw1; do
		local ns=$NS_G1; [[ $gw == gw2 ]] && ns=$NS_G2
		bg ss-$gw $ns env STRONGSWAN_CONF="$RUN/ss-$gw/strongswan.conf" unshare --mount --propagation private \
			sh -c "mount -t tmpfs -o size=4m,mode=755 tp-run /run && exec $CHARON"
		for _ in $(seq 100); do [[ -S $RUN/ss-$gw/charon.vici ]] && break; sleep 0.1; done
		swanctl --load-all --noprompt --file "$RUN/ss-$gw/swanctl.conf" --uri "unix://$RUN/ss-$gw/charon.vici" >"$RUN/ss-$gw/load.log" 2>&1 ||
			{ log "strongswan: swanctl --load-all failed in $gw: $(cat "$RUN/ss-$gw/load.log")"; return 1; }
	done
	for _ in $(seq 100); do
		swanctl --list-sas --uri "unix://$RUN/ss-gw1/charon.vici" 2>/dev/null | grep -q INSTALLED && break
		sleep 0.1
	done
	swanctl --list-sas --uri "unix://$RUN/ss-gw1/charon.vici" 2>/dev/null | grep -q INSTALLED ||
		{ log "strongswan: no CHILD_SA (see $RUN/ss-gw1/charon.log)"; return 1; }
	for _ in $(seq 50); do ip netns exec $NS_ON ping -c1 -W1 $VPC_HOST >/dev/null 2>&1 && break; sleep 0.1; done
	TUNNEL_PIDS="$(<"$RUN/ss-gw1.pid") $(<"$RUN/ss-gw2.pid")"
}

# cgwd (gw1, `cgwd run`, IKE) <-> charon (gw2, AWS's side). cgwd gets what AWS would hand out: a
# describe-vpn-connections JSON (the lab file with this lab's addresses; tunnel 2's AWS endpoint
# 192.0.2.3 does not exist, as if AWS's second endpoint were down) narrowed to the suite the other
# scenarios use (AES-128-GCM-16, PRF SHA2-256, ECP-256), plus a settings file.
setup_cgwd_strongswan() {
	[[ -x $CGWD ]] || { log "cgwd-strongswan: no binary at $CGWD (cargo build --release, or set CGWD)"; return 1; }
	[[ -x $CHARON ]] || { log "cgwd-strongswan: no charon at $CHARON (apt-get install strongswan-charon libcharon-extra-plugins libstrongswan-standard-plugins)"; return 1; }
	command -v swanctl >/dev/null || { log "cgwd-strongswan: no swanctl (apt-get install strongswan-swanctl)"; return 1; }
	local src=$ROOT/configs/lab.describe.json psk=lab_tunnel1_psk.AWS1
	[[ -r $src ]] || { log "cgwd-strongswan: $src missing"; return 1; }
	lab_up
	sed -e 's/192\.0\.2\.10/192.0.2.1/g' -e 's/198\.51\.100\.11/192.0.2.2/g' -e 's/203\.0\.113\.12/192.0.2.3/g' "$src" |
		jq '.VpnConnections[0].Options.TunnelOptions[] |= (
			.Phase1EncryptionAlgorithms = [{Value: "AES128-GCM-16"}] | .Phase2EncryptionAlgorithms = [{Value: "AES128-GCM-16"}]
			| .Phase1IntegrityAlgorithms = [{Value: "SHA2-256"}] | .Phase2IntegrityAlgorithms = [{Value: "SHA2-256"}]
			| .Phase1DHGroupNumbers = [{Value: 19}] | .Phase2DHGroupNumbers = [{Value: 19}])' >"$RUN/vpn.describe.json"
	printf '[interface]\nname = "cgwd0"\n[local]\naddress = "192.0.2.1"\n[routing]\nvpc_cidrs = ["%s"]\nonprem_cidrs = ["%s"]\n[control]\nsocket = "%s"\n' \
		"$VPC_NET" "$ONPREM_NET" "$RUN/cgwd.sock" >"$RUN/cgwd-run.toml"
	# AWS's side: traffic selectors 0.0.0.0/0 like AWS's, routes set by hand. kernel-libipsec still
	# routes 0.0.0.0/0 into ipsec0 in table 220; its rule goes after main so the VPC stays reachable.
	ss_conf "$RUN/ss-gw2" 192.0.2.2 192.0.2.1 0.0.0.0/0 0.0.0.0/0 none $psk \
		"install_routes = no
	routing_table_prio = 32768"
	bg ss-gw2 $NS_G2 env STRONGSWAN_CONF="$RUN/ss-gw2/strongswan.conf" unshare --mount --propagation private \
		sh -c "mount -t tmpfs -o size=4m,mode=755 tp-run /run && exec $CHARON"
	for _ in $(seq 100); do [[ -S $RUN/ss-gw2/charon.vici ]] && break; sleep 0.1; done
	swanctl --load-all --noprompt --file "$RUN/ss-gw2/swanctl.conf" --uri "unix://$RUN/ss-gw2/charon.vici" >"$RUN/ss-gw2/load.log" 2>&1 ||
		{ log "cgwd-strongswan: swanctl --load-all failed in gw2: $(cat "$RUN/ss-gw2/load.log")"; return 1; }
	ip -n $NS_G2 link set ipsec0 up
	ip -n $NS_G2 addr add 169.254.10.5/30 dev ipsec0
	ip -n $NS_G2 route add $ONPREM_NET dev ipsec0
	bg cgwd-run-gw1 $NS_G1 "$CGWD" run "$RUN/vpn.describe.json" --settings "$RUN/cgwd-run.toml"
	local up=0
	for _ in $(seq 150); do
		# `cgwd status` exits non-zero while tunnel 2 is down (it is, here): read the JSON only.
		if { "$CGWD" status --json --socket "$RUN/cgwd.sock" 2>/dev/null || true; } |
			jq -e '.tunnels[0].ike_phase2_state == "established"' >/dev/null 2>&1; then up=1; break; fi
		sleep 0.1
	done
	((up)) || { log "cgwd-strongswan: tunnel 1 not established: $(tail -20 "$RUN/cgwd-run-gw1.log")"; return 1; }
	for _ in $(seq 50); do ip netns exec $NS_ON ping -c1 -W1 $VPC_HOST >/dev/null 2>&1 && break; sleep 0.1; done
	TUNNEL_PIDS="$(<"$RUN/cgwd-run-gw1.pid") $(<"$RUN/ss-gw2.pid")"
}

# WireGuard: IMPL = wireguard-go | boringtun; UAPI socket in a private /run per gateway.
setup_wg() {
	local impl=$1 bin
	command -v wg >/dev/null || { log "$impl: no wg tool (apt-get install wireguard-tools)"; return 1; }
	if [[ $impl == wireguard-go ]]; then
		bin=$(command -v wireguard-go) || { log "wireguard-go: not installed (apt-get install wireguard-go)"; return 1; }
	else
		bin=$BORINGTUN
		[[ -x $bin ]] || { log "boringtun: no boringtun-cli at $bin (cargo install --root /tmp/boringtun boringtun-cli)"; return 1; }
	fi
	lab_up
	local gw ns run="mount -t tmpfs -o size=1m tmpfs /run && mkdir -p /run/wireguard && exec"
	for gw in gw1 gw2; do
		ns=$NS_G1; [[ $gw == gw2 ]] && ns=$NS_G2
		(umask 077; wg genkey >"$RUN/$gw.key"); wg pubkey <"$RUN/$gw.key" >"$RUN/$gw.pub"
		if [[ $impl == wireguard-go ]]; then
			bg wg-$gw $ns env WG_PROCESS_FOREGROUND=1 unshare -m --propagation private sh -c "$run $bin -f wg0"
		else
			bg wg-$gw $ns unshare -m --propagation private sh -c "$run $bin --foreground --disable-drop-privileges wg0"
		fi
	done
	for _ in $(seq 50); do
		ip -n $NS_G1 link show wg0 &>/dev/null && ip -n $NS_G2 link show wg0 &>/dev/null && break
		sleep 0.1
	done
	local p1 p2
	p1=$(<"$RUN/wg-gw1.pid"); p2=$(<"$RUN/wg-gw2.pid")
	nsenter -t "$p1" -m -n wg set wg0 private-key "$RUN/gw1.key" listen-port 51820 \
		peer "$(<"$RUN/gw2.pub")" endpoint 192.0.2.2:51820 allowed-ips $VPC_NET
	nsenter -t "$p2" -m -n wg set wg0 private-key "$RUN/gw2.key" listen-port 51820 \
		peer "$(<"$RUN/gw1.pub")" endpoint 192.0.2.1:51820 allowed-ips $ONPREM_NET
	ip -n $NS_G1 addr add 169.254.99.2/30 dev wg0; ip -n $NS_G2 addr add 169.254.99.1/30 dev wg0
	ip -n $NS_G1 link set wg0 mtu 1420 up; ip -n $NS_G2 link set wg0 mtu 1420 up
	ip -n $NS_G1 route add $VPC_NET dev wg0; ip -n $NS_G2 route add $ONPREM_NET dev wg0
	ip netns exec $NS_ON ping -c1 -W2 $VPC_HOST >/dev/null 2>&1 || log "$impl: first ping failed"
	TUNNEL_PIDS="$p1 $p2"
}

# ------------------------------------------------------------ measure ------

measure() {
	local sc=$1 tcp=$RUN/$1-tcp.json udp=$RUN/$1-udp.json
	bg iperf3-server $NS_VPC iperf3 -s -B $VPC_HOST
	sleep 0.5
	local rtt
	rtt=$(ip netns exec $NS_ON ping -q -c "$PINGS" -i 0.02 $VPC_HOST 2>/dev/null | awk -F'/' '/^rtt/{printf "%.3f", $5}' || true)
	[[ -n $rtt ]] || rtt=err

	local p0 p1 cli cpu tcp_mbps
	setsid ip netns exec $NS_ON iperf3 -c $VPC_HOST -t "$DURATION" -J >"$tcp" 2>&1 &
	cli=$!
	p0=$(proc_ticks $TUNNEL_PIDS)
	wait $cli || true
	p1=$(proc_ticks $TUNNEL_PIDS)
	cpu=$(awk -v d=$((p1 - p0)) -v hz="$HZ" -v s="$DURATION" 'BEGIN{printf "%.0f", d / hz / s * 100}')
	tcp_mbps=$(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$tcp" 2>/dev/null || echo err)

	sleep 0.5
	local rate=20 udp_mbps
	[[ $tcp_mbps =~ ^[0-9]+$ ]] && rate=$(( tcp_mbps * 3 / 2 ))
	((rate >= 20)) || rate=20
	ip netns exec $NS_ON iperf3 -c $VPC_HOST -u -b "${rate}M" -l 1300 -w 4M -t "$DURATION" -J >"$udp" 2>&1 || true
	if jq -e '.error' "$udp" >/dev/null 2>&1 || ! jq -e '.end.sum' "$udp" >/dev/null 2>&1; then
		udp_mbps=err
	else
		udp_mbps=$(jq -r '.end.sum_received.bits_per_second // (.end.sum.bits_per_second * (100 - .end.sum.lost_percent) / 100) | . / 1e6 | floor' "$udp")
	fi
	stop_bg
	RESULT[$sc]="$tcp_mbps	$udp_mbps	$rtt	$cpu"
	log "$sc: TCP $tcp_mbps Mbit/s, UDP $udp_mbps Mbit/s (offered $rate), RTT avg $rtt ms, tunnel CPU $cpu%"
}

ratio() { # ratio A B -> A/B with 2 decimals, or n/a
	awk -v a="$1" -v b="$2" 'BEGIN{ if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "n/a" }'
}

# --------------------------------------------------------------- main ------

declare -A ROWS # scenario -> one TSV row per round
for round in $(seq "$ROUNDS"); do
	for sc in "${SCENARIOS[@]}"; do
		log "=== $sc (round $round of $ROUNDS)"
		ok=0
		case $sc in
		plain) setup_plain && ok=1 ;;
		cgwd) setup_cgwd && ok=1 ;;
		strongswan) setup_strongswan && ok=1 ;;
		wireguard-go) setup_wg wireguard-go && ok=1 ;;
		boringtun) setup_wg boringtun && ok=1 ;;
		cgwd-strongswan) setup_cgwd_strongswan && ok=1 ;;
		*) log "unknown scenario $sc" ;;
		esac
		if ((ok)); then measure "$sc"; else RESULT[$sc]="skipped	skipped	skipped	skipped"; fi
		ROWS[$sc]+="${RESULT[$sc]}"$'\n'
		lab_down
	done
done

# median ROWS COLUMN -> the median of the numeric values in that column, else the first value
median() {
	local col
	col=$(printf '%s' "$1" | cut -f"$2")
	printf '%s\n' "$col" | grep -E '^[0-9.]+$' | sort -g | awk -v first="$(head -1 <<<"$col")" '
		{ v[NR] = $1 }
		END { if (NR == 0) print first; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
if ((ROUNDS > 1)); then
	for sc in "${SCENARIOS[@]}"; do
		log "$sc per round (tcp udp rtt cpu): $(printf '%s' "${ROWS[$sc]}" | tr '\t\n' ' ;')"
		RESULT[$sc]="$(median "${ROWS[$sc]}" 1)	$(median "${ROWS[$sc]}" 2)	$(median "${ROWS[$sc]}" 3)	$(median "${ROWS[$sc]}" 4)"
	done
fi

printf 'scenario\ttcp_mbps\tudp_mbps\trtt_avg_ms\tcpu_pct\n'
for sc in "${SCENARIOS[@]}"; do printf '%s\t%s\n' "$sc" "${RESULT[$sc]}"; done
field() { [[ -n ${RESULT[$1]:-} ]] && cut -f"$2" <<<"${RESULT[$1]}" || echo n/a; }
printf 'ratios: cgwd/strongswan tcp=%s udp=%s; cgwd/wireguard-go tcp=%s udp=%s\n' \
	"$(ratio "$(field cgwd 1)" "$(field strongswan 1)")" "$(ratio "$(field cgwd 2)" "$(field strongswan 2)")" \
	"$(ratio "$(field cgwd 1)" "$(field wireguard-go 1)")" "$(ratio "$(field cgwd 2)" "$(field wireguard-go 2)")"
printf 'ratios: cgwd/boringtun rtt=%s tcp=%s udp=%s; cgwd/plain rtt=%s tcp=%s udp=%s\n' \
	"$(ratio "$(field cgwd 3)" "$(field boringtun 3)")" "$(ratio "$(field cgwd 1)" "$(field boringtun 1)")" \
	"$(ratio "$(field cgwd 2)" "$(field boringtun 2)")" "$(ratio "$(field cgwd 3)" "$(field plain 3)")" \
	"$(ratio "$(field cgwd 1)" "$(field plain 1)")" "$(ratio "$(field cgwd 2)" "$(field plain 2)")"
printf 'ratios: cgwd-strongswan/strongswan tcp=%s udp=%s\n' \
	"$(ratio "$(field cgwd-strongswan 1)" "$(field strongswan 1)")" "$(ratio "$(field cgwd-strongswan 2)" "$(field strongswan 2)")"
