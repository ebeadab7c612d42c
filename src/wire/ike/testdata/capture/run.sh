#!/bin/bash
# Capture a real strongSwan IKEv2 exchange between two namespaces (for codec test vectors).
set -u
P=$$
A=ikwA$P; B=ikwB$P
D=/tmp/ikw-cap/run$P
mkdir -p $D/a $D/b
cleanup() {
  for ns in $A $B; do
    for pid in $(ip netns pids $ns 2>/dev/null); do kill $pid 2>/dev/null; done
  done
  sleep 1
  ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null
}
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add va$P type veth peer name vb$P
ip link set va$P netns $A; ip link set vb$P netns $B
ip -n $A addr add 192.0.2.10/24 dev va$P; ip -n $A link set va$P up; ip -n $A link set lo up
ip -n $B addr add 192.0.2.20/24 dev vb$P; ip -n $B link set vb$P up; ip -n $B link set lo up

conf() { # dir
cat > $1/strongswan.conf <<C
charon {
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf kernel-libipsec kernel-netlink socket-default vici
  install_routes = no
  install_virtual_ip = no
  fragment_size = ${FRAG:-1280}
  plugins { vici { socket = unix://$1/charon.vici } }
  filelog { charon { path = $1/charon.log
    flush_line = yes
    default = 1
    ike = 4 } }
}
C
}
conf $D/a; conf $D/b
cat > $D/a/swanctl.conf <<C
connections { t { version = 2
  local_addrs = 192.0.2.10
  remote_addrs = 192.0.2.20
  encap = yes
  mobike = no
  fragmentation = yes
  proposals = ${IKEP:-aes128-sha256-modp2048}
  local { auth = psk
    id = 192.0.2.10 }
  remote { auth = psk
    id = 192.0.2.20 }
  children { t { local_ts = 0.0.0.0/0
    remote_ts = 0.0.0.0/0
    esp_proposals = ${ESPP:-aes128-sha256-modp2048} } } } }
secrets { ike-1 { id-1 = 192.0.2.10
  id-2 = 192.0.2.20
  secret = "capture-test-psk" } }
C
sed -e 's/192.0.2.10/XX/g; s/192.0.2.20/192.0.2.10/g; s/XX/192.0.2.20/g' $D/a/swanctl.conf > $D/b/swanctl.conf
start() { # ns dir
  ip netns exec $1 env STRONGSWAN_CONF=$2/strongswan.conf unshare --mount --propagation private \
    sh -c "mount -t tmpfs -o size=4m tmp /run && exec /usr/lib/ipsec/charon" > $2/stdout 2>&1 &
}
start $A $D/a; start $B $D/b
for i in $(seq 50); do [ -S $D/a/charon.vici ] && [ -S $D/b/charon.vici ] && break; sleep 0.2; done
ip netns exec $A swanctl --load-all --noprompt --file $D/a/swanctl.conf --uri unix://$D/a/charon.vici > /dev/null
ip netns exec $B swanctl --load-all --noprompt --file $D/b/swanctl.conf --uri unix://$D/b/charon.vici > /dev/null
ip netns exec $A tcpdump -U -s 0 -ni va$P -w $D/cap.pcap udp > $D/tcpdump.log 2>&1 &
sleep 1
ip netns exec $A swanctl --initiate --child t --uri unix://$D/a/charon.vici --timeout 10 > $D/initiate.log 2>&1
sleep 1
ip netns exec $A swanctl --terminate --ike t --uri unix://$D/a/charon.vici --timeout 5 >> $D/initiate.log 2>&1
sleep 1
echo $D
