//! Two in-process `IkeSa`s (cgwd as initiator, cgwd playing AWS as responder) joined by a simulated
//! network with a virtual clock: deterministic, instant, and able to drop, duplicate or delay any message
//! (quinn-proto's `Pair` crossed with strongSwan's exchange test helper).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgwd::crypto::SeededRandom;
use cgwd::ike::{Event, IkeConfig, IkeSa, State, Transmit};
use cgwd::sa::TunnelId;
use cgwd::secret::Secret;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Initiator (cgwd) to responder.
    ToResponder,
    /// Responder to initiator.
    ToInitiator,
}

/// What the simulated network does with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Drop,
    Duplicate,
    Delay(Duration),
}

/// A message seen on the simulated wire, for assertions.
#[derive(Debug, Clone)]
pub struct Seen {
    pub dir: Dir,
    pub at: Duration,
    pub exchange: u8,
    pub response: bool,
    pub msg_id: u32,
    pub fate: Fate,
    pub len: usize,
}

pub type Policy = Box<dyn FnMut(Dir, usize, &[u8]) -> Fate>;

pub struct Pair {
    pub start: Instant,
    pub now: Instant,
    pub initiator: IkeSa,
    pub responder: Option<IkeSa>,
    pub responder_cfg: Arc<IkeConfig>,
    pub initiator_events: Vec<Event>,
    pub responder_events: Vec<Event>,
    /// Every message put on the wire, in order.
    pub wire: Vec<Seen>,
    /// Raw bytes of every message put on the wire, in order.
    pub raw: Vec<(Dir, Vec<u8>)>,
    /// How many responder SAs were created (stateless replies create throwaway ones).
    pub responders_created: usize,
    pub latency: Duration,
    pub policy: Policy,
    queue: Vec<(Instant, Dir, Transmit)>,
    counts: [usize; 2],
    seed: u64,
}

pub const PSK: &[u8] = b"in-process test PSK 0123456789";

/// A tunnel config as cgwd's daemon would build it for AWS tunnel 1 (documentation addresses).
pub fn config() -> IkeConfig {
    IkeConfig::aws_defaults(
        TunnelId::One,
        Ipv4Addr::new(192, 0, 2, 10),
        Ipv4Addr::new(198, 51, 100, 11),
        Secret::from_slice(PSK),
    )
}

fn peek(data: &[u8]) -> (u8, bool, u32) {
    if data.len() < 28 {
        return (0, false, 0);
    }
    let id = u32::from_be_bytes([data[20], data[21], data[22], data[23]]);
    (data[18], data[19] & 0x20 != 0, id)
}

impl Pair {
    /// `initiator` is cgwd's side; `responder` the peer's config (usually `initiator.mirrored()`).
    pub fn new(initiator: IkeConfig, responder: IkeConfig, seed: u64) -> Pair {
        #[allow(clippy::disallowed_methods)] // the only real clock read: a base for the virtual clock
        let start = Instant::now();
        let sa = IkeSa::initiator(Arc::new(initiator), start, Box::new(SeededRandom::new(seed)));
        let mut p = Pair {
            start,
            now: start,
            initiator: sa,
            responder: None,
            responder_cfg: Arc::new(responder),
            initiator_events: Vec::new(),
            responder_events: Vec::new(),
            wire: Vec::new(),
            raw: Vec::new(),
            responders_created: 0,
            latency: Duration::from_millis(10),
            policy: Box::new(|_, _, _| Fate::Deliver),
            queue: Vec::new(),
            counts: [0, 0],
            seed,
        };
        p.collect();
        p
    }

    pub fn mirrored(cfg: IkeConfig, seed: u64) -> Pair {
        let r = cfg.mirrored();
        Pair::new(cfg, r, seed)
    }

    /// Take what both sides want to send and report (after acting on one of them directly).
    pub fn collect(&mut self) {
        while let Some(t) = self.initiator.poll_transmit() {
            self.put(Dir::ToResponder, t);
        }
        while let Some(e) = self.initiator.poll_event() {
            self.initiator_events.push(e);
        }
        if let Some(r) = self.responder.as_mut() {
            let mut out = Vec::new();
            while let Some(t) = r.poll_transmit() {
                out.push(t);
            }
            while let Some(e) = r.poll_event() {
                self.responder_events.push(e);
            }
            for t in out {
                self.put(Dir::ToInitiator, t);
            }
        }
    }

    fn put(&mut self, dir: Dir, t: Transmit) {
        let n = &mut self.counts[dir as usize];
        let fate = (self.policy)(dir, *n, &t.data);
        *n += 1;
        let (exchange, response, msg_id) = peek(&t.data);
        self.raw.push((dir, t.data.clone()));
        self.wire.push(Seen {
            dir,
            at: self.now - self.start,
            exchange,
            response,
            msg_id,
            fate,
            len: t.data.len(),
        });
        let at = self.now + self.latency;
        match fate {
            Fate::Deliver => self.queue.push((at, dir, t)),
            Fate::Drop => {}
            Fate::Duplicate => {
                self.queue.push((at, dir, t.clone()));
                self.queue.push((at + Duration::from_millis(1), dir, t));
            }
            Fate::Delay(d) => self.queue.push((at + d, dir, t)),
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let a = self.initiator.poll_timeout();
        let b = self.responder.as_ref().and_then(|r| r.poll_timeout());
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run the simulation until the virtual clock has advanced by `d` (or nothing is left to do).
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            let next_packet = self.queue.iter().map(|(at, _, _)| *at).min();
            let next = match (next_packet, self.next_timer()) {
                (Some(p), Some(t)) => p.min(t),
                (p, t) => match p.or(t) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                let i = self
                    .queue
                    .iter()
                    .position(|(at, _, _)| *at == next)
                    .expect("present");
                let (_, dir, t) = self.queue.remove(i);
                self.deliver(dir, t);
            } else {
                let now = self.now;
                self.initiator.handle_timeout(now);
                if let Some(r) = self.responder.as_mut() {
                    r.handle_timeout(now);
                }
            }
            self.collect();
        }
        self.now = self.now.max(end);
    }

    fn deliver(&mut self, dir: Dir, t: Transmit) {
        let now = self.now;
        match dir {
            Dir::ToInitiator => self.initiator.handle_datagram(now, t.from, t.to, &t.data),
            Dir::ToResponder => {
                let is_init_request = t.data.len() >= 28 && t.data[8..16] == [0; 8] && t.data[18] == 34;
                let fresh = match &self.responder {
                    None => true,
                    Some(r) => r.state() == cgwd::ike::State::Closed,
                };
                if is_init_request && fresh {
                    self.responders_created += 1;
                    let rng = Box::new(SeededRandom::new(
                        self.seed ^ 0x5eed_0000 ^ self.responders_created as u64,
                    ));
                    if let Ok(r) =
                        IkeSa::responder(self.responder_cfg.clone(), now, rng, &t.data, t.from, t.to)
                    {
                        self.responder = Some(r);
                    }
                } else if let Some(r) = self.responder.as_mut() {
                    r.handle_datagram(now, t.from, t.to, &t.data);
                }
            }
        }
    }

    /// Hand `data` to one side right now, as if it came from the other (spoofed or replayed input).
    pub fn inject(&mut self, dir: Dir, data: &[u8]) {
        let (from, to) = match dir {
            Dir::ToResponder => (self.initiator.status().local, self.initiator.status().remote),
            Dir::ToInitiator => (self.initiator.status().remote, self.initiator.status().local),
        };
        self.deliver(
            dir,
            Transmit {
                from,
                to,
                data: data.to_vec(),
            },
        );
        self.collect();
    }

    pub fn responder(&self) -> &IkeSa {
        self.responder.as_ref().expect("a responder was created")
    }

    /// The Child SA each side reported, if any.
    pub fn child_ups(events: &[Event]) -> Vec<&cgwd::sa::ChildSa> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::ChildUp(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    pub fn failures(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Failed(f) | Event::ChildFailed(f) => Some(f.message()),
                _ => None,
            })
            .collect()
    }

    /// How many messages of this exchange/direction were put on the wire.
    pub fn count(&self, dir: Dir, exchange: u8, response: bool) -> usize {
        self.wire
            .iter()
            .filter(|s| s.dir == dir && s.exchange == exchange && s.response == response)
            .count()
    }
}

pub const IKE_SA_INIT: u8 = 34;
pub const IKE_AUTH: u8 = 35;
pub const INFORMATIONAL: u8 = 37;

/// Both sides up, with one Child SA each whose SPIs and keys mirror the other's.
pub fn assert_established(p: &Pair) {
    assert_eq!(
        p.initiator.state(),
        State::Established,
        "initiator: {:?}",
        Pair::failures(&p.initiator_events)
    );
    assert_eq!(
        p.responder().state(),
        State::Established,
        "responder: {:?}",
        Pair::failures(&p.responder_events)
    );
    assert!(matches!(p.initiator_events.first(), Some(Event::Established)));
    assert!(matches!(p.responder_events.first(), Some(Event::Established)));
    let (i, r) = (
        Pair::child_ups(&p.initiator_events),
        Pair::child_ups(&p.responder_events),
    );
    assert_eq!((i.len(), r.len()), (1, 1));
    let (i, r) = (i[0], r[0]);
    // SPIs crossed: what one side receives on is what the other sends to.
    assert_eq!(i.inbound.spi, r.outbound.spi);
    assert_eq!(i.outbound.spi, r.inbound.spi);
    assert_ne!(i.inbound.spi, i.outbound.spi);
    // Identical keys per direction.
    assert_eq!(i.outbound.encryption_key, r.inbound.encryption_key);
    assert_eq!(i.outbound.integrity_key, r.inbound.integrity_key);
    assert_eq!(i.inbound.encryption_key, r.outbound.encryption_key);
    assert_eq!(i.inbound.integrity_key, r.outbound.integrity_key);
    assert_ne!(i.inbound.encryption_key, i.outbound.encryption_key);
    assert_eq!(i.local_ts, r.remote_ts);
    assert_eq!(i.remote_ts, r.local_ts);
    // ESP in UDP on 4500 both ways.
    assert_eq!(i.local.port(), 4500);
    assert_eq!(i.remote.port(), 4500);
    assert_eq!(r.remote.port(), 4500);
    assert_eq!(
        p.initiator.status().child_spis,
        Some((i.inbound.spi.0, i.outbound.spi.0))
    );
}
