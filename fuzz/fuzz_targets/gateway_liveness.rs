//! Liveness of the whole gateway core under hostile input: cgwd's `Gateway` and AWS's endpoint (a
//! second `Gateway` with the mirrored configuration, choosing the lowest options as AWS does)
//! exchange their real datagrams over a simulated network on a virtual clock, while the input
//! injects datagrams from AWS's own address (both ports), replays and patches real ones in flight,
//! drops some and moves time. Then the attack stops: within five clean virtual minutes the tunnel
//! must be up again (IKE and Child SA established on cgwd's side) — whatever arrived, nothing may
//! wedge it — and nothing may panic.
//!
//! Input: a sequence of operations, `op | arguments`:
//! * 0, 1: a datagram (2-octet length, bytes) to cgwd from AWS's address, port 500 or 4500;
//! * 2: copy the in-flight datagram `index` (1 octet) with the octet at `position` (2 octets)
//!   set to `value` (1 octet), delivered to the same side;
//! * 3: drop the in-flight datagram `index`;
//! * 4: advance time by `n` × 100 ms (1 octet);
//! * 5: deliver everything in flight.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgwd::crypto::{Random, SeededRandom};
use cgwd::gateway::{Gateway, Output, TunnelHandle, TunnelSpec};
use cgwd::ike::{IkeConfig, LinkState};
use cgwd::sa::TunnelId;
use cgwd::secret::Secret;
use cgwd::suite::DhGroup;
use libfuzzer_sys::fuzz_target;

const CGW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const AWS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const LATENCY: Duration = Duration::from_millis(5);

fn config() -> IkeConfig {
    let mut c = IkeConfig::aws_defaults(
        TunnelId::One,
        CGW,
        AWS,
        Secret::from_slice(b"liveness fuzzing PSK"),
    );
    // One cheap group keeps iterations fast (the DH paths have their own targets).
    c.ike.dh = vec![DhGroup::new(19).unwrap()];
    c.esp.dh = vec![DhGroup::new(19).unwrap()];
    c
}

fn seeded(seed: u64) -> Box<dyn FnMut() -> Box<dyn Random> + Send> {
    let mut n = seed;
    Box::new(move || {
        n += 1;
        Box::new(SeededRandom::new(n))
    })
}

/// A datagram in flight: when it arrives, to AWS?, from, to, bytes.
struct Flight {
    at: Instant,
    to_aws: bool,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

struct Net {
    now: Instant,
    cgw: Gateway,
    aws: Gateway,
    tunnel: TunnelHandle,
    wire: Vec<Flight>,
    table: cgwd::esp::SaTable,
}

impl Net {
    fn new() -> Net {
        #[allow(clippy::disallowed_methods)] // the base of the virtual clock
        let now = Instant::now();
        let mut cgw = Gateway::with_rng(seeded(1));
        let tunnel = cgw.add_tunnel(
            TunnelSpec {
                cfg: Arc::new(config()),
                initiate: true,
                reinitiate: true,
            },
            now,
        );
        let mut aws_cfg = config().mirrored();
        aws_cfg.selection = cgwd::ike::proposal::Selection::Lowest;
        let mut aws = Gateway::with_rng(seeded(1_000));
        aws.add_tunnel(
            TunnelSpec {
                cfg: Arc::new(aws_cfg),
                initiate: false,
                reinitiate: false,
            },
            now,
        );
        Net {
            now,
            cgw,
            aws,
            tunnel,
            wire: Vec::new(),
            table: cgwd::esp::SaTable::new(),
        }
    }

    /// Both sides' outputs onto the wire (cgwd's SA commands applied to its table, refusals
    /// handed back, as the daemon does).
    fn collect(&mut self) {
        while let Some(o) = self.cgw.poll_output() {
            match o {
                Output::Transmit { tx, .. } => self.wire.push(Flight {
                    at: self.now + LATENCY,
                    to_aws: true,
                    from: tx.from,
                    to: tx.to,
                    data: tx.data,
                }),
                Output::Sa(c) => {
                    if let Err(refused) = c.apply(&self.table) {
                        self.cgw.child_sa_refused(self.now, refused);
                    }
                }
                Output::Event { .. } => {}
            }
        }
        while let Some(o) = self.aws.poll_output() {
            if let Output::Transmit { tx, .. } = o {
                self.wire.push(Flight {
                    at: self.now + LATENCY,
                    to_aws: false,
                    from: tx.from,
                    to: tx.to,
                    data: tx.data,
                });
            }
        }
        // Bounded: a side that floods the wire is a finding of its own, not a reason to grow.
        if self.wire.len() > 256 {
            self.wire.drain(..self.wire.len() - 256);
        }
    }

    fn deliver(&mut self, f: Flight) {
        if f.to_aws {
            self.aws.handle_datagram(self.now, f.from, f.to, &f.data);
        } else {
            self.cgw.handle_datagram(self.now, f.from, f.to, &f.data);
        }
        self.collect();
    }

    /// Runs the network and both sides' timers until `until`.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.collect();
            let next_wire = self.wire.iter().map(|f| f.at).min();
            let next = [next_wire, self.cgw.poll_timeout(), self.aws.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    if let Some(i) = self.wire.iter().position(|f| f.at <= self.now) {
                        let f = self.wire.remove(i);
                        self.deliver(f);
                    } else {
                        self.cgw.handle_timeout(self.now);
                        self.aws.handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    fn up(&self) -> bool {
        let (ike, child, _) = self.cgw.tunnel(self.tunnel).phases();
        ike == LinkState::Established && child == LinkState::Established
    }
}

fuzz_target!(|data: &[u8]| {
    let mut net = Net::new();
    let aws = |port| SocketAddr::new(AWS.into(), port);
    let cgw = |port| SocketAddr::new(CGW.into(), port);
    let mut rest = data;
    let mut ops = 0;
    while let Some((&op, more)) = rest.split_first() {
        rest = more;
        ops += 1;
        if ops > 200 {
            break;
        }
        match op % 6 {
            0 | 1 => {
                let [a, b, tail @ ..] = rest else { break };
                let n = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
                let port = if op % 6 == 0 { 500 } else { 4500 };
                net.cgw.handle_datagram(net.now, aws(port), cgw(port), &tail[..n]);
                net.collect();
                rest = &tail[n..];
            }
            2 => {
                let [i, p0, p1, v, tail @ ..] = rest else { break };
                rest = tail;
                if net.wire.is_empty() {
                    continue;
                }
                let f = &net.wire[usize::from(*i) % net.wire.len()];
                let mut copy = Flight {
                    at: net.now,
                    to_aws: f.to_aws,
                    from: f.from,
                    to: f.to,
                    data: f.data.clone(),
                };
                if !copy.data.is_empty() {
                    let pos = usize::from(u16::from_be_bytes([*p0, *p1])) % copy.data.len();
                    copy.data[pos] = *v;
                }
                net.deliver(copy);
            }
            3 => {
                let [i, tail @ ..] = rest else { break };
                rest = tail;
                if !net.wire.is_empty() {
                    let n = usize::from(*i) % net.wire.len();
                    net.wire.remove(n);
                }
            }
            4 => {
                let [n, tail @ ..] = rest else { break };
                rest = tail;
                let until = net.now + Duration::from_millis(100) * u32::from(*n);
                net.run_until(until);
            }
            _ => {
                let until = net.now + LATENCY;
                net.run_until(until);
            }
        }
    }
    // The attack is over: the tunnel must come (back) up on its own.
    let deadline = net.now + Duration::from_secs(300);
    while !net.up() && net.now < deadline {
        let until = net.now + Duration::from_secs(1);
        net.run_until(until);
    }
    assert!(
        net.up(),
        "the tunnel did not come back within 5 minutes after the hostile input stopped"
    );
});
