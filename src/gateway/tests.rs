//! The gateway against an AWS side played by cgwd's own `IkeSa` (AWS's role: lowest-option choice),
//! over a simulated network with a virtual clock: every lifecycle path, spoofed input, no root.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::crypto::SeededRandom;
use crate::ike::{IkeConfig, IkeSa, Role};
use crate::sa::TunnelId;
use crate::secret::Secret;

const CGW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const AWS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const CGW6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);
const AWS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffaa, 1, 0, 0, 0, 0x21);

thread_local! {
    /// This test (thread) runs over IPv6 outside addresses ([`over_ipv6_outside_addresses`]).
    static OUTSIDE_V6: Cell<bool> = const { Cell::new(false) };
}

fn cgw_ip() -> IpAddr {
    if OUTSIDE_V6.with(Cell::get) {
        CGW6.into()
    } else {
        CGW.into()
    }
}

fn aws_ip() -> IpAddr {
    if OUTSIDE_V6.with(Cell::get) {
        AWS6.into()
    } else {
        AWS.into()
    }
}

fn cgwd_cfg() -> IkeConfig {
    let mut c = IkeConfig::aws_defaults(
        TunnelId::One,
        cgw_ip(),
        aws_ip(),
        Secret::from_slice(b"gateway test psk 0123456789"),
    );
    c.dpd_interval = Duration::from_secs(10);
    c
}

fn aws_cfg() -> IkeConfig {
    let mut c = cgwd_cfg().mirrored();
    c.selection = crate::ike::proposal::Selection::Lowest;
    c
}

fn seeded(seed: u64) -> Box<dyn FnMut() -> Box<dyn crate::crypto::Random> + Send> {
    let mut n = seed;
    Box::new(move || {
        n += 1;
        Box::new(SeededRandom::new(n))
    })
}

/// The gateway (cgwd) and AWS's endpoint (its own IKE SAs), joined by a network that can be cut.
struct Lab {
    now: Instant,
    gw: Gateway,
    t: TunnelHandle,
    /// AWS's IKE SAs: the one cgwd's initiation made, ones AWS opened itself.
    aws: Vec<IkeSa>,
    aws_cfg: Arc<IkeConfig>,
    /// Datagrams in flight: (arrival, to AWS?, data).
    wire: Vec<(Instant, bool, Vec<u8>)>,
    /// The path between cgwd and AWS drops everything.
    cut: bool,
    /// Everything the gateway output, in order.
    outputs: Vec<Output>,
    /// IKE_SA_INIT requests cgwd sent, with when.
    inits_sent: Vec<Instant>,
    seed: u64,
    /// cgwd's data plane SA table, changed by the gateway's SA commands as the daemon does.
    table: crate::esp::SaTable,
    /// Child SAs the table refused (handed back to the gateway, as the daemon does).
    refused: Vec<Refused>,
    /// cgwd behind a NAT: the port AWS sees all of cgwd's datagrams come from; AWS's datagrams to
    /// any other port are dropped (the NAT has no mapping for them).
    nat_port: Option<u16>,
    /// Where AWS's IKE SAs sent each datagram.
    aws_sent_to: Vec<SocketAddr>,
}

fn cgw_addr(port: u16) -> SocketAddr {
    SocketAddr::new(cgw_ip(), port)
}

fn aws_addr(port: u16) -> SocketAddr {
    SocketAddr::new(aws_ip(), port)
}

const LATENCY: Duration = Duration::from_millis(5);

impl Lab {
    fn new(seed: u64) -> Lab {
        #[allow(clippy::disallowed_methods)] // the base of the virtual clock
        let now = Instant::now();
        let mut gw = Gateway::with_rng(seeded(seed));
        let t = gw.add_tunnel(
            TunnelSpec {
                cfg: Arc::new(cgwd_cfg()),
                initiate: true,
                reinitiate: true,
            },
            now,
        );
        Lab {
            now,
            gw,
            t,
            aws: Vec::new(),
            aws_cfg: Arc::new(aws_cfg()),
            wire: Vec::new(),
            cut: false,
            outputs: Vec::new(),
            inits_sent: Vec::new(),
            seed,
            table: crate::esp::SaTable::new(),
            refused: Vec::new(),
            nat_port: None,
            aws_sent_to: Vec::new(),
        }
    }

    /// cgwd's address and `port` as AWS sees them (through the NAT, if any).
    fn cgw_seen(&self, port: u16) -> SocketAddr {
        cgw_addr(self.nat_port.unwrap_or(port))
    }

    fn collect(&mut self) {
        while let Some(o) = self.gw.poll_output() {
            if let Output::Transmit { tx, .. } = &o {
                if tx.data.len() >= 28 && tx.data[18] == 34 && tx.data[19] & 0x20 == 0 {
                    self.inits_sent.push(self.now);
                }
                if !self.cut {
                    self.wire.push((self.now + LATENCY, true, tx.data.clone()));
                }
            }
            if let Output::Sa(c) = &o
                && let Err(r) = c.apply(&self.table)
            {
                self.refused.push(r);
                self.gw.child_sa_refused(self.now, r);
            }
            self.outputs.push(o);
        }
        for sa in &mut self.aws {
            while let Some(tx) = sa.poll_transmit() {
                self.aws_sent_to.push(tx.to);
                if !self.cut && self.nat_port.is_none_or(|p| p == tx.to.port()) {
                    self.wire.push((self.now + LATENCY, false, tx.data));
                }
            }
            while sa.poll_event().is_some() {}
        }
        self.aws.retain(|sa| sa.state() != crate::ike::State::Closed);
    }

    /// A datagram as if from AWS's address (genuine or spoofed), delivered now.
    fn spoof_from_aws(&mut self, data: &[u8]) {
        self.gw
            .handle_datagram(self.now, aws_addr(4500), cgw_addr(4500), data);
        self.collect();
    }

    fn deliver_to_aws(&mut self, data: Vec<u8>) {
        let h = Header::parse(&data);
        let (from, from_500) = (self.cgw_seen(4500), self.cgw_seen(500));
        if let Some(sa) = self
            .aws
            .iter_mut()
            .find(|sa| h.is_some_and(|h| sa.spis().0 == h.spi_i))
        {
            sa.handle_datagram(self.now, from, aws_addr(4500), &data);
        } else if h.is_some_and(|h| h.init_request) {
            self.seed += 1;
            if let Ok(sa) = IkeSa::responder(
                self.aws_cfg.clone(),
                self.now,
                Box::new(SeededRandom::new(self.seed ^ 0xa5a5)),
                &data,
                from_500,
                aws_addr(500),
            ) {
                self.aws.push(sa);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.collect();
        for _ in 0..1_000_000 {
            let next_wire = self.wire.iter().map(|(at, ..)| *at).min();
            let next_timer = [self.gw.poll_timeout()]
                .into_iter()
                .chain(self.aws.iter().map(IkeSa::poll_timeout))
                .flatten()
                .min();
            let next = match (next_wire, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_wire == Some(next) {
                let i = self.wire.iter().position(|(at, ..)| *at == next).unwrap();
                let (_, to_aws, data) = self.wire.remove(i);
                if to_aws {
                    self.deliver_to_aws(data);
                } else {
                    self.gw
                        .handle_datagram(self.now, aws_addr(4500), cgw_addr(4500), &data);
                }
            } else {
                let now = self.now;
                self.gw.handle_timeout(now);
                for sa in &mut self.aws {
                    if sa.poll_timeout().is_some_and(|t| t <= now) {
                        sa.handle_timeout(now);
                    }
                }
            }
            self.collect();
        }
        self.now = self.now.max(end);
    }

    fn up(&self) -> bool {
        let (p1, p2, _) = self.gw.tunnel(self.t).phases();
        p1 == crate::ike::LinkState::Established && p2 == crate::ike::LinkState::Established
    }

    /// AWS opens an IKE SA of its own (StartupAction start, or after losing its state).
    fn aws_initiates(&mut self) {
        self.seed += 1;
        let sa = IkeSa::initiator(
            self.aws_cfg.clone(),
            self.now,
            Box::new(SeededRandom::new(self.seed ^ 0x5a5a)),
        );
        self.aws.push(sa);
        self.collect();
    }

    fn sa_commands(&self) -> Vec<&SaCommand> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Sa(c) => Some(c),
                _ => None,
            })
            .collect()
    }
}

/// An IKE_SA_INIT request as a spoofer from AWS's address would send: well-formed with a KE of a
/// group cgwd does not pick (`group`), or a malformed KE (`malformed`).
fn spoofed_init(spi: u64, group: u16, malformed: bool) -> Vec<u8> {
    use crate::wire::ike::{ExchangeType, Flags, HeaderRepr, PayloadRepr, PayloadType, SaRepr, emit_message};
    let set = crate::ike::AlgorithmSet::aws_default();
    let proposals = crate::ike::proposal::ike_offer(&set, &[], None)
        .iter()
        .map(crate::ike::proposal::Proposal::to_repr)
        .collect();
    // A real public value, so the responder keeps state (a worst case for a flood).
    let data = match crate::suite::DhGroup::new(group) {
        _ if malformed => vec![0u8; 7],
        Some(g) => crate::crypto::DhPrivate::generate(g, &mut SeededRandom::new(spi))
            .unwrap()
            .public_value()
            .to_vec(),
        None => vec![0x42; 64],
    };
    let header = HeaderRepr {
        spi_i: spi,
        spi_r: 0,
        next_payload: PayloadType::NONE,
        exchange: ExchangeType::IKE_SA_INIT,
        flags: Flags::INITIATOR,
        message_id: 0,
        length: 0,
    };
    let payloads = [
        PayloadRepr::Sa(SaRepr { proposals }),
        PayloadRepr::Ke { group, data },
        PayloadRepr::Nonce(vec![7; 32]),
    ];
    let mut out = Vec::new();
    emit_message(&header, &payloads, &mut out).unwrap();
    out
}

#[test]
fn the_tunnel_comes_up_and_installs_its_child_sa_before_anything_else() {
    let mut lab = Lab::new(1);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let cmds = lab.sa_commands();
    assert!(matches!(cmds.first(), Some(SaCommand::Install(_))), "{cmds:?}");
}

/// The wedge: while the tunnel is down and cgwd retries, spoofed IKE_SA_INITs from AWS's address
/// (a KE group cgwd does not pick, a malformed KE) used to replace the tunnel's SA with one that
/// closed on its stateless reply, and cgwd never initiated again. Now they are half-open SAs beside
/// cgwd's attempts, and the tunnel comes back as soon as the path does.
#[test]
fn spoofed_inits_while_down_never_stop_cgwd_initiating() {
    for (group, malformed) in [(2, false), (19, true), (14, false)] {
        let mut lab = Lab::new(2);
        lab.cut = true;
        lab.run_for(Duration::from_secs(10));
        assert!(!lab.up());
        for n in 0..20u64 {
            lab.spoof_from_aws(&spoofed_init(0x1000 + n, group, malformed));
            lab.run_for(Duration::from_secs(1));
        }
        lab.cut = false;
        let restored = lab.now;
        let mut back = None;
        for _ in 0..120 {
            lab.run_for(Duration::from_millis(100));
            if lab.up() {
                back = Some(lab.now - restored);
                break;
            }
        }
        let back = back.unwrap_or_else(|| panic!("group {group} malformed {malformed}: tunnel stayed down"));
        assert!(back <= Duration::from_secs(5), "back after {back:?}");
        let s = lab.gw.stats();
        assert_eq!(
            s.init_rejected + s.half_open_started + s.half_open_refused,
            20,
            "{s:?}"
        );
    }
}

/// Spoofed IKE_SA_INITs during cgwd's own IKE_SA_INIT exchange do not displace it.
#[test]
fn a_spoofed_init_during_our_exchange_changes_nothing() {
    let mut lab = Lab::new(3);
    // cgwd's IKE_SA_INIT is on the wire, not answered yet.
    lab.run_for(Duration::from_millis(1));
    lab.spoof_from_aws(&spoofed_init(0x77, 14, false));
    lab.spoof_from_aws(&spoofed_init(0x78, 19, true));
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    // The same INITs as without the spoofs (AWS asks for its own group once: INVALID_KE_PAYLOAD).
    let mut plain = Lab::new(3);
    plain.run_for(Duration::from_secs(2));
    assert_eq!(lab.inits_sent.len(), plain.inits_sent.len());
    assert_eq!(
        lab.gw.tunnel(lab.t).sa.unwrap().spis(),
        plain.gw.tunnel(plain.t).sa.unwrap().spis(),
        "the same IKE SA as without the spoofs"
    );
}

/// While established, a flood of IKE_SA_INITs keeps at most HALF_OPEN_PER_TUNNEL half-open SAs, the
/// tunnel keeps its SAs, and nothing is installed or removed.
#[test]
fn an_init_flood_while_established_is_bounded_and_harmless() {
    let mut lab = Lab::new(4);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let spis = lab.gw.tunnel(lab.t).sa.unwrap().spis();
    let cmds_before = lab.sa_commands().len();
    let init = spoofed_init(0x10_0000, 19, false);
    for n in 0..2000u64 {
        // The same valid KE under 2000 SPIs (generating 2000 keys would only slow the test).
        let mut m = init.clone();
        m[0..8].copy_from_slice(&(0x10_0000 + n).to_be_bytes());
        lab.spoof_from_aws(&m);
    }
    lab.run_for(Duration::from_secs(1));
    assert!(lab.gw.half_open() <= HALF_OPEN_PER_TUNNEL);
    let s = lab.gw.stats();
    assert!(s.half_open_refused > 0, "{s:?}");
    assert_eq!(lab.gw.tunnel(lab.t).sa.unwrap().spis(), spis);
    assert_eq!(lab.sa_commands().len(), cmds_before);
    assert!(lab.up());
    // The half-open SAs time out, and the tunnel still answers AWS.
    lab.run_for(Duration::from_secs(60));
    assert!(lab.gw.half_open() == 0);
    assert!(lab.up());
}

/// AWS initiates while the tunnel is down (before cgwd's retry): its SA takes the tunnel once it
/// authenticates, cgwd's pending retry is cancelled.
#[test]
fn aws_initiating_while_down_takes_the_tunnel() {
    let mut lab = Lab::new(5);
    lab.cut = true;
    lab.run_for(Duration::from_secs(5));
    lab.cut = false;
    lab.aws.clear();
    lab.aws_initiates();
    lab.run_for(Duration::from_millis(100));
    assert!(lab.up());
    let role = lab.gw.tunnel(lab.t).sa.unwrap().status().role;
    assert_eq!(role, Role::Responder);
}

/// AWS opens a second IKE SA while cgwd's is established: its Child SA's inbound half is installed
/// before the IKE_AUTH response goes out, the tunnel moves to it after HANDOVER_GRACE, and the older
/// SA gets its DELETE RETIRE_GRACE later; its inbound SA lingers.
#[test]
fn a_second_ike_sa_from_aws_takes_over_make_before_break() {
    let mut lab = Lab::new(6);
    lab.run_for(Duration::from_secs(2));
    let old = lab.gw.tunnel(lab.t).sa.unwrap().spis();
    let mark = lab.outputs.len();
    lab.aws_initiates();
    lab.run_for(Duration::from_millis(100));
    // InstallInbound precedes the IKE_AUTH response (exchange 35).
    let seq: Vec<&Output> = lab.outputs[mark..].iter().collect();
    let inbound = seq
        .iter()
        .position(|o| matches!(o, Output::Sa(SaCommand::InstallInbound(_))))
        .expect("inbound installed");
    let auth = seq
        .iter()
        .position(|o| matches!(o, Output::Transmit { tx, .. } if tx.data[18] == 35))
        .expect("IKE_AUTH answered");
    assert!(inbound < auth);
    assert_eq!(
        lab.gw.tunnel(lab.t).sa.unwrap().spis(),
        old,
        "not before the grace"
    );
    lab.run_for(tunnel::HANDOVER_GRACE);
    assert_ne!(lab.gw.tunnel(lab.t).sa.unwrap().spis(), old);
    assert!(lab.up());
    lab.run_for(Duration::from_secs(7));
    let events: Vec<&TunnelEvent> = lab
        .outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event { event, .. } => Some(event),
            _ => None,
        })
        .collect();
    assert!(events.iter().any(|e| matches!(e, TunnelEvent::MovedToPeersIkeSa)));
    assert!(events.iter().any(|e| matches!(e, TunnelEvent::OldIkeSaDeleted)));
    // The old Child SA's inbound half lingered, then went.
    assert!(
        lab.sa_commands()
            .iter()
            .any(|c| matches!(c, SaCommand::RemoveInbound(_)))
    );
    assert!(lab.up());
}

/// A path restored after a long cut brings the tunnel back within 5 s, and while it is down cgwd
/// sends AWS at most one IKE_SA_INIT every few seconds.
#[test]
fn a_restored_path_brings_the_tunnel_back_quickly_without_hammering_aws() {
    let mut lab = Lab::new(7);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    lab.cut = true;
    lab.aws.clear();
    let cut_at = lab.now;
    // cgwd's DPD declares AWS dead, then it keeps trying.
    lab.run_for(Duration::from_secs(120));
    assert!(!lab.up());
    let inits: Vec<Duration> = lab
        .inits_sent
        .iter()
        .filter(|t| **t > cut_at)
        .map(|t| *t - cut_at)
        .collect();
    for w in inits.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_secs(2),
            "INITs too close: {inits:?}"
        );
    }
    assert!(!inits.is_empty());
    lab.cut = false;
    let restored = lab.now;
    let mut back = None;
    for _ in 0..100 {
        lab.run_for(Duration::from_millis(100));
        if lab.up() {
            back = Some(lab.now - restored);
            break;
        }
    }
    let back = back.expect("tunnel back");
    assert!(back <= Duration::from_secs(5), "back after {back:?}");
}

/// `cgwd tunnel down` deletes the IKE SA and keeps the tunnel down (no initiating, AWS's
/// IKE_SA_INITs unanswered); `up` brings it back at once; `reset` replaces the IKE SA now.
#[test]
fn an_operator_takes_a_tunnel_down_brings_it_up_and_resets_it() {
    let mut lab = Lab::new(8);
    lab.run_for(Duration::from_secs(2));
    let first = lab.gw.tunnel(lab.t).sa.unwrap().spis();
    let now = lab.now;
    lab.gw.operate(lab.t, now, TunnelOp::Down);
    lab.collect();
    assert!(
        lab.sa_commands()
            .iter()
            .any(|c| matches!(c, SaCommand::RemoveTunnel(_)))
    );
    let inits = lab.inits_sent.len();
    lab.run_for(Duration::from_secs(30));
    assert!(!lab.up());
    assert!(lab.gw.admin_down(lab.t));
    assert_eq!(lab.inits_sent.len(), inits, "no initiating while down");
    assert!(lab.aws.is_empty(), "AWS got the DELETE");
    lab.aws_initiates();
    lab.run_for(Duration::from_secs(2));
    assert!(!lab.up(), "AWS's IKE_SA_INIT is not answered while down");
    lab.aws.clear();
    let now = lab.now;
    lab.gw.operate(lab.t, now, TunnelOp::Up);
    lab.run_for(Duration::from_secs(1));
    assert!(lab.up());
    let second = lab.gw.tunnel(lab.t).sa.unwrap().spis();
    assert_ne!(second, first);
    let now = lab.now;
    lab.gw.operate(lab.t, now, TunnelOp::Reset);
    lab.run_for(Duration::from_secs(1));
    assert!(lab.up());
    assert_ne!(lab.gw.tunnel(lab.t).sa.unwrap().spis(), second);
}

/// Behind a NAT that changed cgwd's mapping (issue #17), AWS keeps sending to the old port until an
/// authenticated request reaches it from the new one (RFC 7296 §2.23). The liveness check the
/// daemon asks for when its probes go unanswered is that request: AWS answers it at the new port,
/// and everything after goes there, long before the next DPD interval would have sent one.
#[test]
fn a_liveness_check_moves_aws_to_a_new_nat_mapping() {
    let mut lab = Lab::new(10);
    lab.nat_port = Some(20000);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    assert_eq!(lab.aws_sent_to.last(), Some(&cgw_addr(20000)));
    // The NAT forgets the mapping: cgwd's datagrams now leave from port 25000.
    lab.nat_port = Some(25000);
    let (now, sent) = (lab.now, lab.aws_sent_to.len());
    lab.gw.check_liveness(lab.t, now);
    lab.run_for(Duration::from_millis(100));
    assert_eq!(
        lab.aws_sent_to[sent..],
        [cgw_addr(25000)],
        "AWS answered the DPD at the new port"
    );
    // The answer arrived (no retransmission), the tunnel stays up, and all AWS sends later (its
    // answers to cgwd's periodic DPD, its own DPD) goes to the new port.
    lab.run_for(Duration::from_secs(25));
    assert!(lab.up());
    assert!(lab.aws_sent_to.len() > sent + 1);
    assert!(lab.aws_sent_to[sent..].iter().all(|a| *a == cgw_addr(25000)));
}

#[test]
fn a_reload_reconfigures_a_tunnel_and_removes_one_whose_endpoint_a_new_tunnel_takes() {
    let mut lab = Lab::new(9);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let first = lab.gw.tunnel(lab.t).sa.unwrap().spis();
    // New settings: the IKE SA is replaced under them, at once.
    let mut cfg = cgwd_cfg();
    cfg.dpd_interval = Duration::from_secs(5);
    let spec = |cfg: IkeConfig| TunnelSpec {
        cfg: Arc::new(cfg),
        initiate: true,
        reinitiate: true,
    };
    let now = lab.now;
    lab.gw.reconfigure(lab.t, spec(cfg.clone()), now);
    lab.run_for(Duration::from_secs(1));
    assert!(lab.up());
    let second = lab.gw.tunnel(lab.t).sa.unwrap().spis();
    assert_ne!(second, first);
    // Removed: its IKE SA deleted (AWS answered), no initiating ever again.
    let now = lab.now;
    lab.gw.remove_tunnel(lab.t, now);
    let inits = lab.inits_sent.len();
    lab.run_for(Duration::from_secs(30));
    assert!(!lab.up());
    assert!(lab.aws.is_empty(), "AWS got the DELETE");
    assert_eq!(lab.inits_sent.len(), inits);
    // A connection added for the same AWS endpoint: its tunnel gets AWS's datagrams and comes up.
    let now = lab.now;
    let old = lab.t;
    lab.t = lab.gw.add_tunnel(spec(cfg), now);
    assert_eq!(lab.gw.tunnel_for_peer(aws_addr(500)), Some(lab.t));
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    assert!(lab.gw.tunnel(old).sa.is_none());
}

/// The customer gateway's outside address changes (DHCP, PPPoE, a restarted VM): AWS does no MOBIKE,
/// so both tunnels drop their SAs and initiate at once from the new address (no DPD wait, no
/// backoff); while no address is usable nothing is initiated. AWS here accepts any address (as
/// with certificate authentication) and answers where each datagram came from.
#[test]
fn a_new_local_address_reinitiates_both_tunnels_from_it_at_once() {
    const AWS2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 12);
    const NEW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
    let ends = [AWS, AWS2];
    let cfg = |i: usize| {
        let mut c = cgwd_cfg();
        c.remote_addr = ends[i].into();
        c.remote_id = ends[i].into();
        c.tunnel = TunnelKey::new(0, TunnelId::BOTH[i]);
        c
    };
    #[allow(clippy::disallowed_methods)] // the base of the virtual clock
    let mut now = Instant::now();
    let mut gw = Gateway::with_rng(seeded(40));
    let handles: Vec<TunnelHandle> = (0..2)
        .map(|i| {
            gw.add_tunnel(
                TunnelSpec {
                    cfg: Arc::new(cfg(i)),
                    initiate: true,
                    reinitiate: true,
                },
                now,
            )
        })
        .collect();
    let aws_cfgs: Vec<Arc<IkeConfig>> = (0..2)
        .map(|i| {
            let mut c = cfg(i).mirrored();
            c.selection = crate::ike::proposal::Selection::Lowest;
            Arc::new(c)
        })
        .collect();
    // AWS's IKE SAs per endpoint, and cgwd's address the network currently delivers from (None:
    // cgwd's datagrams go nowhere).
    let mut aws: [Vec<IkeSa>; 2] = [Vec::new(), Vec::new()];
    let mut seed = 0u64;
    let table = crate::esp::SaTable::new();
    // Runs the virtual network (zero latency) for `d`; returns cgwd's transmits and SA commands.
    let mut step = |gw: &mut Gateway,
                    aws: &mut [Vec<IkeSa>; 2],
                    now: &mut Instant,
                    d: Duration,
                    wire: Option<Ipv4Addr>| {
        let end = *now + d;
        let mut sent: Vec<(TunnelHandle, crate::ike::Transmit)> = Vec::new();
        let mut cmds = Vec::new();
        loop {
            let mut moved = false;
            while let Some(o) = gw.poll_output() {
                moved = true;
                match o {
                    Output::Transmit { tunnel, tx, .. } => {
                        let i = tunnel.index();
                        if let Some(src) = wire {
                            // The datagram leaves from the socket's address, whatever tx.from says.
                            let from = SocketAddr::new(src.into(), tx.from.port());
                            let h = Header::parse(&tx.data);
                            if let Some(sa) = aws[i]
                                .iter_mut()
                                .find(|sa| h.is_some_and(|h| sa.spis().0 == h.spi_i))
                            {
                                sa.handle_datagram(*now, from, tx.to, &tx.data);
                            } else if h.is_some_and(|h| h.init_request) {
                                seed += 1;
                                if let Ok(sa) = IkeSa::responder(
                                    aws_cfgs[i].clone(),
                                    *now,
                                    Box::new(SeededRandom::new(seed)),
                                    &tx.data,
                                    from,
                                    tx.to,
                                ) {
                                    aws[i].push(sa);
                                }
                            }
                        }
                        sent.push((tunnel, tx));
                    }
                    Output::Sa(c) => {
                        let _ = c.apply(&table);
                        cmds.push(c);
                    }
                    Output::Event { .. } => {}
                }
            }
            for (i, sas) in aws.iter_mut().enumerate() {
                for sa in sas.iter_mut() {
                    while let Some(tx) = sa.poll_transmit() {
                        moved = true;
                        // AWS answers where the request came from: it reaches cgwd only if that is
                        // still cgwd's address.
                        if wire.is_some_and(|a| tx.to.ip() == std::net::IpAddr::V4(a)) {
                            gw.handle_datagram(*now, tx.from, tx.to, &tx.data);
                            debug_assert_eq!(tx.from.ip(), std::net::IpAddr::V4(ends[i]));
                        }
                    }
                    while sa.poll_event().is_some() {}
                }
                sas.retain(|sa| sa.state() != crate::ike::State::Closed);
            }
            if moved {
                continue;
            }
            let next = [gw.poll_timeout()]
                .into_iter()
                .chain(aws.iter().flatten().map(IkeSa::poll_timeout))
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    *now = (*now).max(t);
                    gw.handle_timeout(*now);
                    for sa in aws.iter_mut().flatten() {
                        if sa.poll_timeout().is_some_and(|t| t <= *now) {
                            sa.handle_timeout(*now);
                        }
                    }
                }
                _ => break,
            }
        }
        *now = (*now).max(end);
        (sent, cmds)
    };
    let up = |gw: &Gateway, h: TunnelHandle| {
        let (p1, p2, _) = gw.tunnel(h).phases();
        p1 == crate::ike::LinkState::Established && p2 == crate::ike::LinkState::Established
    };
    step(&mut gw, &mut aws, &mut now, Duration::from_secs(2), Some(CGW));
    assert!(
        handles.iter().all(|&h| up(&gw, h)),
        "both tunnels up from the first address"
    );
    let before: Vec<_> = handles.iter().map(|&h| gw.tunnel(h).sa.unwrap().spis()).collect();

    // The address is gone: both tunnels drop their SAs and initiate nothing, however long.
    gw.set_local_address(None, now);
    let (sent, cmds) = step(&mut gw, &mut aws, &mut now, Duration::from_secs(60), None);
    assert!(handles.iter().all(|&h| !up(&gw, h)));
    for k in 0..2u16 {
        let key = TunnelKey::new(0, TunnelId::BOTH[k as usize]);
        assert!(
            cmds.iter()
                .any(|c| matches!(c, SaCommand::RemoveTunnel(t) if *t == key)),
            "{cmds:?}"
        );
    }
    // Tunnels that sent an IKE_SA_INIT (AWS's lowest-option choice makes each send a second, after
    // INVALID_KE_PAYLOAD).
    let inits = |sent: &[(TunnelHandle, crate::ike::Transmit)]| {
        let mut t: Vec<usize> = sent
            .iter()
            .filter(|(_, tx)| Header::parse(&tx.data).is_some_and(|h| h.init_request))
            .map(|(h, _)| h.index())
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    assert_eq!(inits(&sent), [0usize; 0], "no IKE_SA_INIT without an address");

    // A new address: both tunnels initiate from it at once and are up within a round trip.
    let at = now;
    gw.set_local_address(Some(NEW.into()), now);
    let (sent, _) = step(&mut gw, &mut aws, &mut now, Duration::ZERO, Some(NEW));
    assert_eq!(now, at);
    for &h in &handles {
        assert!(up(&gw, h), "tunnel {} up at once", h.index() + 1);
        let sa = gw.tunnel(h).sa.unwrap();
        assert!(!before.contains(&sa.spis()), "a new IKE SA");
    }
    assert_eq!(inits(&sent), [0, 1], "both tunnels initiate");
    assert!(
        sent.iter()
            .all(|(_, tx)| tx.from.ip() == std::net::IpAddr::V4(NEW)),
        "everything from the new address: {:?}",
        sent.iter().map(|(_, tx)| tx.from).collect::<Vec<_>>()
    );
    // AWS's new IKE SAs are with the new address.
    for (i, sas) in aws.iter().enumerate() {
        let sa = sas.last().expect("AWS's new SA");
        assert_eq!(sa.state(), crate::ike::State::Established, "AWS {i}");
        assert_eq!(sa.status().remote.ip(), std::net::IpAddr::V4(NEW), "AWS {i}");
    }

    // Left alone, nothing changes; another change while established moves again, at once.
    let kept: Vec<_> = handles.iter().map(|&h| gw.tunnel(h).sa.unwrap().spis()).collect();
    step(&mut gw, &mut aws, &mut now, Duration::from_secs(30), Some(NEW));
    assert!(handles.iter().all(|&h| up(&gw, h)));
    assert_eq!(
        kept,
        handles
            .iter()
            .map(|&h| gw.tunnel(h).sa.unwrap().spis())
            .collect::<Vec<_>>(),
        "nothing changes while the address stays"
    );
    gw.set_local_address(Some(CGW.into()), now);
    let (sent, _) = step(&mut gw, &mut aws, &mut now, Duration::ZERO, Some(CGW));
    assert!(handles.iter().all(|&h| up(&gw, h)));
    assert_eq!(inits(&sent), [0, 1]);
}

mod hostile;

/// ESP from AWS proves it alive: with the data plane reporting inbound traffic every second
/// (`note_peer_alive`, as the daemon does), cgwd sends no DPD of its own; without it, one every
/// DPD interval. (IKE requests cgwd sends: datagrams whose IKE header has the response flag clear;
/// AWS's own DPD requests still get their answers.)
#[test]
fn inbound_traffic_defers_dpd() {
    fn requests_sent(lab: &Lab, from: usize) -> usize {
        lab.outputs[from..]
            .iter()
            .filter(|o| match o {
                Output::Transmit { tx, .. } => {
                    // Non-ESP marker on port 4500, then the IKE header: flags at octet 19.
                    let ike = tx.data.strip_prefix(&[0u8; 4][..]).unwrap_or(&tx.data);
                    ike.get(19).is_some_and(|f| f & 0x20 == 0)
                }
                _ => false,
            })
            .count()
    }
    // AWS sends no DPD of its own here: its requests would count as hearing from it.
    let silent_aws = || {
        let mut c = aws_cfg();
        c.dpd_interval = Duration::ZERO;
        Arc::new(c)
    };
    let mut quiet = Lab::new(11);
    quiet.aws_cfg = silent_aws();
    quiet.run_for(Duration::from_secs(2));
    assert!(quiet.up());
    let from = quiet.outputs.len();
    quiet.run_for(Duration::from_secs(35));
    assert!(
        requests_sent(&quiet, from) >= 3,
        "a DPD every 10 s when nothing comes in"
    );

    let mut busy = Lab::new(11);
    busy.aws_cfg = silent_aws();
    busy.run_for(Duration::from_secs(2));
    let from = busy.outputs.len();
    for _ in 0..35 {
        let now = busy.now;
        busy.gw.note_peer_alive(busy.t, now);
        busy.run_for(Duration::from_secs(1));
    }
    assert!(busy.up());
    assert_eq!(requests_sent(&busy, from), 0, "no DPD while ESP arrives");
}

/// The lifecycle paths above over IPv6 outside addresses (AWS `OutsideIpAddressType` Ipv6): the
/// gateway dispatches by AWS's IPv6 address, spoofs from it are contained, AWS's own IKE SAs
/// take the tunnel, a NAT's new mapping is followed.
#[test]
fn over_ipv6_outside_addresses() {
    OUTSIDE_V6.with(|v| v.set(true));
    assert_eq!(cgwd_cfg().remote_addr, IpAddr::V6(AWS6));
    the_tunnel_comes_up_and_installs_its_child_sa_before_anything_else();
    spoofed_inits_while_down_never_stop_cgwd_initiating();
    a_spoofed_init_during_our_exchange_changes_nothing();
    an_init_flood_while_established_is_bounded_and_harmless();
    aws_initiating_while_down_takes_the_tunnel();
    a_second_ike_sa_from_aws_takes_over_make_before_break();
    a_restored_path_brings_the_tunnel_back_quickly_without_hammering_aws();
    an_operator_takes_a_tunnel_down_brings_it_up_and_resets_it();
    a_liveness_check_moves_aws_to_a_new_nat_mapping();
}
