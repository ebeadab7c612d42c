//! Impairing the outside path (UDP 500/4500 between cgwd and AWS) on a kernel without netem: loss
//! from nftables, duplication, reordering and delay from a relay in userspace.
//!
//! Both sit in the middle namespace of [`super::two_aws::Topology::create_via`]:
//!
//! * [`lose`]: `numgen random mod 100 < N drop` in the prerouting hook at raw priority, once for
//!   datagrams coming from cgw and once for those going to it, each with a counter ([`lost`]).
//! * [`Relay`]: nftables' `tproxy` (prerouting, mangle priority, after the loss rules) hands every
//!   datagram addressed to one of the relayed endpoints to a local UDP socket of the relay, one
//!   listening port per endpoint, so the original destination is known without reading
//!   `IP_RECVORIGDSTADDR` control messages. The packet mark set with it selects a policy route
//!   that delivers it locally (`ip rule fwmark 1 lookup 100`, `local 0.0.0.0/0 dev lo table 100`).
//!   The relay sends each datagram on from a socket bound with `IP_TRANSPARENT` to the datagram's
//!   own source address and port, so both sides see exactly the addresses and ports they would
//!   without it (strongSwan checks the customer gateway's address, cgwd AWS's), after a delay, now
//!   and then twice (duplication) or after the next datagram to the same endpoint (reordering).
//!   Redirecting with DNAT instead would need a NAT back to the original source and a socket per
//!   flow; tproxy needs neither.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::netns::{enter, run};
use super::two_aws::nft;

/// What the relay does to each datagram.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Datagrams sent twice, per thousand.
    pub duplicate_permille: u32,
    /// Datagrams held back and sent right after the next one to the same endpoint, per thousand
    /// (or after [`Impairment::hold_limit`] if none follows).
    pub reorder_permille: u32,
    /// Every datagram waits this long, plus up to `jitter` (never overtaking an earlier one: only
    /// the reordering above changes the order).
    pub delay: Duration,
    pub jitter: Duration,
    pub hold_limit: Duration,
}

/// What a datagram carries (RFC 3948 §2: port 4500 multiplexes IKE behind a zero marker, ESP and
/// the one-octet NAT keepalive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Ike,
    Esp,
    Keepalive,
}

impl Kind {
    fn of(port: u16, data: &[u8]) -> Kind {
        if port == 500 || data.get(..4) == Some(&[0; 4]) {
            Kind::Ike
        } else if data == [0xff] {
            Kind::Keepalive
        } else {
            Kind::Esp
        }
    }
}

/// Datagrams the relay handled for one (source address, destination address, kind).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub relayed: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

pub type Key = (Ipv4Addr, Ipv4Addr, Kind);

/// A datagram waiting in the relay: when it is due, a sequence number (ties keep arrival order),
/// source, destination, bytes.
type Datagram = (Instant, u64, SocketAddrV4, SocketAddrV4, Vec<u8>);

/// Datagrams waiting for their time, earliest first.
#[derive(Default)]
struct Queue {
    heap: Mutex<BinaryHeap<Reverse<Datagram>>>,
    ready: Condvar,
    seq: AtomicU64,
}

impl Queue {
    fn push(&self, due: Instant, src: SocketAddrV4, dst: SocketAddrV4, data: Vec<u8>) {
        let seq = self.seq.fetch_add(1, Relaxed);
        self.heap
            .lock()
            .unwrap()
            .push(Reverse((due, seq, src, dst, data)));
        self.ready.notify_one();
    }
}

/// xorshift64*: enough randomness to pick datagrams, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn permille(&mut self, p: u32) -> bool {
        self.next() % 1000 < u64::from(p)
    }

    fn upto(&mut self, d: Duration) -> Duration {
        let nanos = d.as_nanos() as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { self.next() % nanos })
    }
}

/// The relay's threads in one namespace; stops them (and removes its nftables table and policy
/// route) on drop.
pub struct Relay {
    ns: String,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    counts: Arc<Mutex<BTreeMap<Key, Counts>>>,
}

/// First of the relay's listening ports in its namespace (one per endpoint).
const LISTEN_BASE: u16 = 41000;

impl Relay {
    /// Relays every UDP datagram that `ns` receives for one of `endpoints`, impaired as `imp`
    /// says; `seed` makes the choices reproducible.
    pub fn start(ns: &str, endpoints: &[SocketAddrV4], imp: Impairment, seed: u64) -> Relay {
        let mut relay = Relay {
            ns: ns.to_string(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            counts: Arc::new(Mutex::new(BTreeMap::new())),
        };
        let queue = Arc::new(Queue::default());
        // Listeners first: tproxy must find their sockets before the first datagram is diverted.
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        for (n, &dst) in endpoints.iter().enumerate() {
            let port = LISTEN_BASE + n as u16;
            let (ns, stop, queue, counts, bound) = (
                ns.to_string(),
                relay.stop.clone(),
                queue.clone(),
                relay.counts.clone(),
                bound_tx.clone(),
            );
            let rng = Rng(seed
                .wrapping_add(n as u64 + 1)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                | 1);
            relay.threads.push(std::thread::spawn(move || {
                let sock = listener(&ns, port);
                let _ = bound.send(sock.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                if let Ok(sock) = sock {
                    receive(sock, dst, imp, rng, &stop, &queue, &counts);
                }
            }));
        }
        for _ in endpoints {
            bound_rx.recv().unwrap().expect("relay listener");
        }
        let (ns2, stop) = (ns.to_string(), relay.stop.clone());
        relay
            .threads
            .push(std::thread::spawn(move || send(&ns2, &stop, &queue)));
        let mut rules = vec![
            "add table ip impair".to_string(),
            "add chain ip impair pre { type filter hook prerouting priority mangle ; policy accept ; }"
                .to_string(),
        ];
        for (n, dst) in endpoints.iter().enumerate() {
            rules.push(format!(
                "add rule ip impair pre ip daddr {} udp dport {} tproxy to :{} meta mark set 1 accept",
                dst.ip(),
                dst.port(),
                LISTEN_BASE + n as u16
            ));
        }
        for rule in &rules {
            nft(ns, rule);
        }
        run("ip", &["-n", ns, "rule", "add", "fwmark", "1", "lookup", "100"]).unwrap();
        run(
            "ip",
            &[
                "-n",
                ns,
                "route",
                "add",
                "local",
                "0.0.0.0/0",
                "dev",
                "lo",
                "table",
                "100",
            ],
        )
        .unwrap();
        relay
    }

    /// What the relay did so far, by (source, destination, kind).
    pub fn counts(&self) -> BTreeMap<Key, Counts> {
        self.counts.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = run(
            "ip",
            &[
                "netns", "exec", &self.ns, "nft", "delete", "table", "ip", "impair",
            ],
        );
        self.stop.store(true, Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn listener(ns: &str, port: u16) -> std::io::Result<Socket> {
    enter(ns)?;
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_ip_transparent_v4(true)?;
    sock.set_recv_buffer_size(1 << 20)?;
    sock.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    sock.set_read_timeout(Some(Duration::from_millis(5)))?;
    Ok(sock)
}

/// One endpoint's listener: schedules each datagram (a delay, sometimes twice, sometimes held back
/// for the next one) on `queue`.
fn receive(
    sock: Socket,
    dst: SocketAddrV4,
    imp: Impairment,
    mut rng: Rng,
    stop: &AtomicBool,
    queue: &Queue,
    counts: &Mutex<BTreeMap<Key, Counts>>,
) {
    let sock = std::net::UdpSocket::from(sock);
    let mut buf = vec![0u8; 65536];
    let mut last_due = cgwd::io::clock::now();
    let mut held: Option<(Instant, SocketAddrV4, Vec<u8>)> = None;
    while !stop.load(Relaxed) {
        let now = cgwd::io::clock::now();
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok((n, SocketAddr::V4(from))) => (n, from),
            Ok(_) => continue,
            Err(_) => {
                // Nothing followed a held datagram in time: it goes on alone.
                if let Some((_, src, data)) = held.take_if(|h| now - h.0 >= imp.hold_limit) {
                    queue.push(now.max(last_due), src, dst, data);
                }
                continue;
            }
        };
        let data = buf[..n].to_vec();
        let kind = Kind::of(dst.port(), &data);
        let due = (now + imp.delay + rng.upto(imp.jitter)).max(last_due);
        last_due = due;
        let mut c = Counts {
            relayed: 1,
            ..Counts::default()
        };
        if let Some((_, src, late)) = held.take() {
            queue.push(due, from, dst, data);
            queue.push(due, src, dst, late);
        } else if rng.permille(imp.reorder_permille) {
            c.reordered = 1;
            held = Some((now, from, data));
        } else {
            if rng.permille(imp.duplicate_permille) {
                c.duplicated = 1;
                queue.push(due, from, dst, data.clone());
            }
            queue.push(due, from, dst, data);
        }
        let mut all = counts.lock().unwrap();
        let e = all.entry((*from.ip(), *dst.ip(), kind)).or_default();
        e.relayed += c.relayed;
        e.duplicated += c.duplicated;
        e.reordered += c.reordered;
    }
}

/// Sends each datagram when due, from a transparent socket bound to its original source.
fn send(ns: &str, stop: &AtomicBool, queue: &Queue) {
    enter(ns).expect("relay sender enters its namespace");
    let mut socks: HashMap<SocketAddrV4, std::net::UdpSocket> = HashMap::new();
    while !stop.load(Relaxed) {
        let next = {
            let mut heap = queue.heap.lock().unwrap();
            loop {
                let now = cgwd::io::clock::now();
                let wait = match heap.peek() {
                    Some(Reverse(d)) if d.0 <= now => break heap.pop().map(|Reverse(d)| d),
                    Some(Reverse(d)) => (d.0 - now).min(Duration::from_millis(20)),
                    None => Duration::from_millis(20),
                };
                if stop.load(Relaxed) {
                    break None;
                }
                heap = queue.ready.wait_timeout(heap, wait).unwrap().0;
            }
        };
        let Some((_, _, src, dst, data)) = next else {
            continue;
        };
        let sock = socks.entry(src).or_insert_with(|| {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            s.set_ip_transparent_v4(true).unwrap();
            s.set_reuse_address(true).unwrap();
            s.bind(&SocketAddr::V4(src).into()).unwrap();
            s.into()
        });
        let _ = sock.send_to(&data, dst);
    }
}

/// Datagrams the relay's own listeners dropped because their receive buffers were full (the
/// `drops` column of /proc/net/udp in `ns`): a machine too loaded to keep up, not the impairment.
pub fn overflowed(ns: &str) -> u64 {
    let table = run("ip", &["netns", "exec", ns, "cat", "/proc/net/udp"]).unwrap_or_default();
    let ports = LISTEN_BASE..LISTEN_BASE + 16;
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            ports.contains(&port).then(|| f.last()?.parse::<u64>().ok())?
        })
        .sum()
}

/// Drops `percent` % of the UDP 500/4500 datagrams crossing `ns` in each direction, counted per
/// direction; `from_cgw` is the interface facing cgw.
pub fn lose(ns: &str, percent: u32, from_cgw: &str) {
    for rule in [
        "add table ip impairloss".to_string(),
        "add chain ip impairloss pre { type filter hook prerouting priority raw ; policy accept ; }"
            .to_string(),
        format!(
            "add rule ip impairloss pre iifname {from_cgw} udp dport {{ 500, 4500 }} numgen random mod 100 < \
             {percent} counter drop"
        ),
        format!(
            "add rule ip impairloss pre iifname != {from_cgw} udp dport {{ 500, 4500 }} numgen random mod 100 \
             < {percent} counter drop"
        ),
    ] {
        nft(ns, &rule);
    }
}

/// Datagrams [`lose`] dropped so far: (from cgw, toward cgw).
pub fn dropped(ns: &str) -> (u64, u64) {
    let n = super::two_aws::nft_counters(ns, "ip impairloss");
    (n.first().copied().unwrap_or(0), n.get(1).copied().unwrap_or(0))
}
