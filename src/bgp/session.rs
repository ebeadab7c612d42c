//! One BGP session (RFC 4271 §8), sans-IO: fed the TCP byte stream and time, it returns bytes to
//! write, a timer and events. The TCP connection itself (connecting through the tunnel, retrying)
//! belongs to the I/O shell, which tells the session when it is connected or gone.
//!
//! ```text
//!  Idle ──connected──► OpenSent ──OPEN──► OpenConfirm ──KEEPALIVE──► Established
//!    ▲                     │                   │                          │
//!    └──── NOTIFICATION sent or received, hold timer, TCP gone ◄──────────┘
//! ```
//!
//! The OPEN is checked against the tunnel's configuration: the peer's AS must be AWS's from the
//! file (else NOTIFICATION 2/2, Bad Peer AS), the hold time is the smaller of both (AWS: 30 s; 0
//! turns keepalives off, §4.2), keepalives go every third of it. Routes are sent as UPDATEs of at
//! most 4,096 octets, End-of-RIB after the first full table (RFC 4724 §2). A malformed UPDATE
//! resets the session with the NOTIFICATION its error names, unless RFC 7606 lets the session
//! live and treat its prefixes as withdrawn.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::wire::{
    self, AFI_IPV6, Attributes, Capability, Message, Notification, Open, Origin, SAFI_UNICAST, Segment,
    Update, code,
};

/// What one session needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: u32,
    pub peer_as: u32,
    /// Our BGP identifier: the customer inside address (unique per tunnel, as AWS's recipes do).
    pub router_id: Ipv4Addr,
    /// Offered hold time (AWS: 30 s from the file).
    pub hold_time: u16,
    /// NEXT_HOP of what we announce: our inside address.
    pub next_hop: Ipv4Addr,
    /// Our IPv6 inside address, for IPv6 prefixes (IPv6-inside tunnels).
    pub next_hop_v6: Option<Ipv6Addr>,
}

/// A route we announce: a prefix with how many extra times our AS is prepended (AS-path prepend
/// makes a tunnel the standby one for AWS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Announcement {
    pub prefix: IpNet,
    pub prepend: u8,
}

/// A route the peer announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    pub prefix: IpNet,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SessionState {
    Idle,
    OpenSent,
    OpenConfirm,
    Established,
}

impl SessionState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::OpenSent => "opensent",
            Self::OpenConfirm => "openconfirm",
            Self::Established => "established",
        }
    }
}

/// Why a session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We sent a NOTIFICATION (the peer's error, our hold timer, our shutdown).
    Sent(Notification),
    /// The peer sent one.
    Received(Notification),
    /// The TCP connection closed without one.
    ConnectionLost,
}

impl DownReason {
    pub fn describe(&self) -> String {
        let n = |n: &Notification| {
            format!(
                "{}/{} ({})",
                n.code,
                n.subcode,
                notification_name(n.code, n.subcode)
            )
        };
        match self {
            Self::Sent(x) => format!("cgwd sent NOTIFICATION {}", n(x)),
            Self::Received(x) => format!("AWS sent NOTIFICATION {}", n(x)),
            Self::ConnectionLost => "TCP connection closed".into(),
        }
    }
}

/// Human words for the NOTIFICATION codes cgwd meets.
pub fn notification_name(c: u8, sub: u8) -> &'static str {
    match (c, sub) {
        (code::HEADER, _) => "message header error",
        (code::OPEN, code::OPEN_BAD_PEER_AS) => "bad peer AS",
        (code::OPEN, code::OPEN_UNACCEPTABLE_HOLD_TIME) => "unacceptable hold time",
        (code::OPEN, _) => "OPEN message error",
        (code::UPDATE, _) => "UPDATE message error",
        (code::HOLD_TIMER_EXPIRED, _) => "hold timer expired",
        (code::FSM, _) => "finite state machine error",
        (code::CEASE, code::CEASE_ADMIN_SHUTDOWN) => "administrative shutdown",
        (code::CEASE, code::CEASE_ADMIN_RESET) => "administrative reset",
        (code::CEASE, code::CEASE_COLLISION) => "connection collision resolution",
        (code::CEASE, code::CEASE_MAX_PREFIXES) => "maximum number of prefixes reached",
        (code::CEASE, _) => "cease",
        (code::ROUTE_REFRESH, _) => "ROUTE-REFRESH message error",
        _ => "unknown error",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    Established {
        peer_id: Ipv4Addr,
        hold_time: u16,
    },
    /// Prefixes the peer announced (replacing what it said of them before) and withdrew.
    Routes {
        announced: Vec<Learned>,
        withdrawn: Vec<IpNet>,
    },
    /// The peer finished its initial table (RFC 4724 End-of-RIB).
    EndOfRib,
    /// The session ended; the I/O shell closes the TCP connection once the bytes are written.
    Down(DownReason),
}

/// Most unread TCP bytes kept: one message of the largest size and the start of the next.
const MAX_BUFFER: usize = 2 * wire::MAX_MESSAGE_LEN;

pub struct Session {
    cfg: SessionConfig,
    state: SessionState,
    rx: Vec<u8>,
    tx: Vec<u8>,
    events: VecDeque<SessionEvent>,
    /// Negotiated: the smaller hold time (0: no timers) and both sides' 4-octet AS capability.
    hold_time: u16,
    four_octet: bool,
    ipv6: bool,
    hold_deadline: Option<Instant>,
    keepalive_at: Option<Instant>,
    /// What we announce now (sent again whole after a ROUTE-REFRESH or a new session).
    announced: Vec<Announcement>,
    /// The peer's BGP identifier, from its OPEN.
    peer_id: Option<Ipv4Addr>,
}

/// Before the OPEN arrives, the hold timer is the RFC's suggested 4 minutes (§8).
const OPEN_HOLD: Duration = Duration::from_secs(240);

impl Session {
    pub fn new(cfg: SessionConfig) -> Session {
        Session {
            cfg,
            state: SessionState::Idle,
            rx: Vec::new(),
            tx: Vec::new(),
            events: VecDeque::new(),
            hold_time: 0,
            four_octet: false,
            ipv6: false,
            hold_deadline: None,
            keepalive_at: None,
            announced: Vec::new(),
            peer_id: None,
        }
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// The negotiated hold time (after OPEN).
    pub fn hold_time(&self) -> u16 {
        self.hold_time
    }

    /// The TCP connection is up: send our OPEN.
    pub fn connected(&mut self, now: Instant) {
        self.rx.clear();
        self.tx.clear();
        self.peer_id = None;
        let open = Open::ours(
            self.cfg.local_as,
            self.cfg.hold_time,
            self.cfg.router_id,
            self.cfg.next_hop_v6.is_some(),
        );
        Message::Open(open).encode(false, &mut self.tx);
        self.state = SessionState::OpenSent;
        self.hold_deadline = Some(now + OPEN_HOLD);
        self.keepalive_at = None;
    }

    /// The TCP connection closed (or failed) under the session.
    pub fn disconnected(&mut self) {
        if self.state != SessionState::Idle {
            self.down(DownReason::ConnectionLost);
        }
    }

    /// Bytes read from the TCP connection.
    pub fn handle_bytes(&mut self, now: Instant, data: &[u8]) {
        if self.state == SessionState::Idle {
            return;
        }
        self.rx.extend_from_slice(data);
        loop {
            let (kind, body, used) = match wire::frame(&self.rx) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return self.fail(e),
            };
            let message = wire::decode(kind, body, self.four_octet);
            self.rx.drain(..used);
            match message {
                Ok(m) => self.message(now, m),
                Err(e) => return self.fail(e),
            }
            if self.state == SessionState::Idle {
                return;
            }
        }
        if self.rx.len() > MAX_BUFFER {
            // Cannot happen with a valid length field; bounded anyway.
            self.rx.clear();
        }
    }

    fn message(&mut self, now: Instant, m: Message) {
        if let Some(hold) = self
            .hold_duration()
            .filter(|_| self.state != SessionState::OpenSent)
        {
            self.hold_deadline = Some(now + hold);
        }
        match (self.state, m) {
            (_, Message::Notification(n)) => self.down(DownReason::Received(n)),
            (SessionState::OpenSent, Message::Open(o)) => self.open(now, o),
            (SessionState::OpenConfirm, Message::Keepalive) => {
                self.state = SessionState::Established;
                self.hold_deadline = self.hold_duration().map(|h| now + h);
                self.events.push_back(SessionEvent::Established {
                    peer_id: self.peer_id.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    hold_time: self.hold_time,
                });
                self.send_table();
            }
            (SessionState::Established, Message::Keepalive) => {}
            (SessionState::Established, Message::Update(u)) => self.update(u),
            (SessionState::Established, Message::RouteRefresh { .. }) => self.send_table(),
            // §8.2.2: anything else is a finite state machine error.
            _ => self.fail(wire::WireError {
                code: code::FSM,
                subcode: 0,
                data: Vec::new(),
                what: "unexpected message",
            }),
        }
    }

    fn open(&mut self, now: Instant, o: Open) {
        if o.asn() != self.cfg.peer_as {
            let data = o.my_as.to_be_bytes().to_vec();
            return self.fail(wire::WireError {
                code: code::OPEN,
                subcode: code::OPEN_BAD_PEER_AS,
                data,
                what: "the peer's AS is not AWS's from the configuration",
            });
        }
        if o.identifier == self.cfg.router_id {
            return self.fail(wire::WireError {
                code: code::OPEN,
                subcode: code::OPEN_BAD_IDENTIFIER,
                data: Vec::new(),
                what: "the peer's BGP identifier is ours",
            });
        }
        self.hold_time = self.cfg.hold_time.min(o.hold_time);
        self.four_octet = o
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)));
        self.ipv6 = self.cfg.next_hop_v6.is_some()
            && o.has(&Capability::Multiprotocol {
                afi: AFI_IPV6,
                safi: SAFI_UNICAST,
            });
        self.state = SessionState::OpenConfirm;
        Message::Keepalive.encode(self.four_octet, &mut self.tx);
        self.hold_deadline = self.hold_duration().map(|h| now + h);
        self.keepalive_at = self.keepalive_interval().map(|k| now + k);
        self.peer_id = Some(o.identifier);
    }

    fn update(&mut self, u: Update) {
        if u.is_end_of_rib() {
            self.events.push_back(SessionEvent::EndOfRib);
            return;
        }
        let mut withdrawn = u.withdrawn;
        let announced = if u.treat_as_withdraw {
            withdrawn.extend(u.announced);
            Vec::new()
        } else {
            u.announced
                .into_iter()
                .map(|prefix| Learned {
                    prefix,
                    attributes: u.attributes.clone(),
                })
                .collect()
        };
        self.events
            .push_back(SessionEvent::Routes { announced, withdrawn });
    }

    /// Our routes to AWS: the whole set we announce now. Differences go out at once when
    /// Established; the whole set when it becomes Established.
    pub fn set_announcements(&mut self, mut routes: Vec<Announcement>) {
        routes.sort_unstable();
        routes.dedup_by_key(|a| a.prefix);
        let old = std::mem::replace(&mut self.announced, routes);
        if self.state != SessionState::Established {
            return;
        }
        let withdrawn: Vec<IpNet> = old
            .iter()
            .filter(|o| !self.announced.iter().any(|n| n.prefix == o.prefix))
            .map(|o| o.prefix)
            .collect();
        let changed: Vec<Announcement> = self
            .announced
            .iter()
            .filter(|n| !old.contains(n))
            .copied()
            .collect();
        self.send_withdrawals(&withdrawn);
        self.send_announcements(&changed);
    }

    pub fn announcements(&self) -> &[Announcement] {
        &self.announced
    }

    /// Everything we announce, then End-of-RIB.
    fn send_table(&mut self) {
        let all = self.announced.clone();
        self.send_announcements(&all);
        Message::Update(Update::default()).encode(self.four_octet, &mut self.tx);
    }

    fn send_withdrawals(&mut self, prefixes: &[IpNet]) {
        for chunk in prefixes.chunks(wire::prefixes_per_update(true)) {
            Message::Update(Update {
                withdrawn: chunk.to_vec(),
                ..Update::default()
            })
            .encode(self.four_octet, &mut self.tx);
        }
    }

    /// One UPDATE per (prepend, family), split to fit the message size.
    fn send_announcements(&mut self, routes: &[Announcement]) {
        let mut groups: std::collections::BTreeMap<(u8, bool), Vec<IpNet>> = Default::default();
        for r in routes {
            let v6 = matches!(r.prefix, IpNet::V6(_));
            if v6 && !self.ipv6 {
                continue;
            }
            groups.entry((r.prepend, v6)).or_default().push(r.prefix);
        }
        for ((prepend, v6), prefixes) in groups {
            let path = vec![self.cfg.local_as; 1 + usize::from(prepend)];
            for chunk in prefixes.chunks(wire::prefixes_per_update(v6)) {
                Message::Update(Update {
                    withdrawn: Vec::new(),
                    attributes: Attributes {
                        origin: Some(Origin::Igp),
                        as_path: vec![Segment::Sequence(path.clone())],
                        next_hop: (!v6).then_some(self.cfg.next_hop),
                        mp_next_hop: if v6 { self.cfg.next_hop_v6 } else { None },
                        ..Attributes::default()
                    },
                    announced: chunk.to_vec(),
                    treat_as_withdraw: false,
                })
                .encode(self.four_octet, &mut self.tx);
            }
        }
    }

    /// End the session with a Cease (cgwd stopping: administrative shutdown, RFC 4486).
    pub fn close(&mut self, subcode: u8) {
        if self.state == SessionState::Idle {
            return;
        }
        self.send_notification(Notification {
            code: code::CEASE,
            subcode,
            data: Vec::new(),
        });
    }

    fn fail(&mut self, e: wire::WireError) {
        tracing::debug!(error = %e, "BGP session error");
        self.send_notification(Notification {
            code: e.code,
            subcode: e.subcode,
            data: e.data,
        });
    }

    fn send_notification(&mut self, n: Notification) {
        Message::Notification(n.clone()).encode(self.four_octet, &mut self.tx);
        self.down(DownReason::Sent(n));
    }

    fn down(&mut self, why: DownReason) {
        self.state = SessionState::Idle;
        self.hold_deadline = None;
        self.keepalive_at = None;
        self.rx.clear();
        self.events.push_back(SessionEvent::Down(why));
    }

    fn hold_duration(&self) -> Option<Duration> {
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.hold_time)))
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        // A third of the hold time (§10), at least a second.
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.hold_time / 3).max(1)))
    }

    /// Timers: hold timer expiry (NOTIFICATION 4), keepalives due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.hold_deadline.is_some_and(|d| now >= d) {
            self.send_notification(Notification {
                code: code::HOLD_TIMER_EXPIRED,
                subcode: 0,
                data: Vec::new(),
            });
            return;
        }
        if let Some(at) = self.keepalive_at
            && now >= at
        {
            Message::Keepalive.encode(self.four_octet, &mut self.tx);
            self.keepalive_at = self.keepalive_interval().map(|k| now + k);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.hold_deadline, self.keepalive_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Bytes to write to the TCP connection (all of it; the shell buffers what the socket refuses).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.tx.is_empty()).then(|| std::mem::take(&mut self.tx))
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The peer's BGP identifier, once its OPEN arrived on this session's connection.
    pub fn peer_id(&self) -> Option<Ipv4Addr> {
        self.peer_id
    }

    /// A session for a second TCP connection with the same peer (AWS connecting while we do):
    /// the same configuration, nothing announced; it runs until the peer's OPEN names its BGP
    /// identifier, then [`resolve_collision`] decides which connection stays.
    pub fn candidate(&self) -> Session {
        Session::new(self.cfg.clone())
    }

    /// Continue on `winner`'s connection (a [`Session::candidate`] that reached OpenConfirm and
    /// won the collision), keeping what we announce: the full table goes out when it becomes
    /// Established. Close our own connection first when it was still open.
    pub fn adopt(&mut self, mut winner: Session) {
        winner.announced = std::mem::take(&mut self.announced);
        let mut events = std::mem::take(&mut self.events);
        events.append(&mut winner.events);
        winner.events = events;
        *self = winner;
    }
}

/// What to do with a connection the peer opened (RFC 4271 §6.8), once its OPEN named the peer's
/// BGP identifier, given the state of the session on the connection we had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collision {
    /// Ours stays: the new connection gets a Cease (connection collision resolution).
    CloseIncoming,
    /// The new connection stays; ours (when it exists) gets the Cease.
    KeepIncoming,
}

/// RFC 4271 §6.8: an Established session always stays; without one on our connection the
/// peer's connection is taken; otherwise the connection opened by the side with the higher BGP
/// identifier stays (both sides reach the same answer, so exactly one connection survives).
pub fn resolve_collision(ours: SessionState, local_id: Ipv4Addr, remote_id: Ipv4Addr) -> Collision {
    match ours {
        SessionState::Established => Collision::CloseIncoming,
        SessionState::Idle => Collision::KeepIncoming,
        SessionState::OpenSent | SessionState::OpenConfirm if u32::from(local_id) < u32::from(remote_id) => {
            Collision::KeepIncoming
        }
        SessionState::OpenSent | SessionState::OpenConfirm => Collision::CloseIncoming,
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
