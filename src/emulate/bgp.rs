//! AWS's BGP for one emulated tunnel endpoint (`cgwd emulate-aws` with `bgp.speaker = "builtin"`):
//! it listens on its inside address (the customer gateway connects, as with AWS), announces the
//! VPC prefixes (`routing.vpc_cidrs`) and installs what the customer gateway announces towards its
//! tunnel, as a VPC route table propagating VPN routes would.
//!
//! AWS's choice among tunnels (both endpoints share the namespace's routing table): a learned
//! route's metric is 100 + 10 × AS path length + the tunnel number, so the shorter path wins, tunnel
//! 1 on a tie, and a more-specific prefix wins whatever its metric (longest match), which is what
//! cgwd's fast inbound failover relies on.
//!
//! IPv6-inside tunnels: the session runs over AWS's inside IPv6 address (MP-BGP IPv6 unicast) and
//! only IPv6 prefixes are announced and installed.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

use ipnet::IpNet;

use crate::bgp::session::{Announcement, Session, SessionConfig, SessionEvent, SessionState};
use crate::sa::TunnelId;

/// One endpoint's BGP: the listening socket, the accepted connection, the session.
pub struct AwsBgp {
    listener: TcpListener,
    stream: Option<TcpStream>,
    pending: Vec<u8>,
    session: Session,
    interface: String,
    tunnel: TunnelId,
    /// Installed routes: prefix → metric.
    installed: BTreeMap<IpNet, u32>,
    /// The session runs over the IPv6 inside addresses (and carries IPv6 prefixes only).
    v6: bool,
}

impl AwsBgp {
    /// Listen on AWS's inside address of the tunnel (already on the TUN device).
    pub fn new(
        tunnel: TunnelId,
        interface: &str,
        session: SessionConfig,
        vpc: &[IpNet],
    ) -> std::io::Result<AwsBgp> {
        let v6 = session.next_hop_v6.is_some();
        let at = session
            .next_hop_v6
            .map_or(IpAddr::V4(session.router_id), IpAddr::V6);
        let listener = TcpListener::bind(SocketAddr::new(at, crate::daemon::bgp_io::BGP_PORT))?;
        listener.set_nonblocking(true)?;
        let mut s = Session::new(session);
        s.set_announcements(
            vpc.iter()
                .filter(|n| matches!(n, IpNet::V6(_)) == v6)
                .map(|n| Announcement {
                    prefix: *n,
                    prepend: 0,
                })
                .collect(),
        );
        Ok(AwsBgp {
            listener,
            stream: None,
            pending: Vec::new(),
            session: s,
            interface: interface.to_string(),
            tunnel,
            installed: BTreeMap::new(),
            v6,
        })
    }

    /// The session config AWS uses for `tunnel` of a BGP connection: its ASN and inside address
    /// (and inside IPv6 address on an IPv6-inside tunnel), the customer's as the peer.
    pub fn session_config(
        aws_as: u32,
        customer_as: u32,
        hold_time: u16,
        aws_inside: Ipv4Addr,
        aws_inside_v6: Option<Ipv6Addr>,
    ) -> SessionConfig {
        SessionConfig {
            local_as: aws_as,
            peer_as: customer_as,
            router_id: aws_inside,
            hold_time,
            next_hop: aws_inside,
            next_hop_v6: aws_inside_v6,
        }
    }

    pub fn established(&self) -> bool {
        self.session.state() == SessionState::Established
    }

    /// One tick: accept, read, write, and apply what was learned to the routing table.
    pub fn poll(&mut self, now: Instant) {
        match self.listener.accept() {
            Ok((stream, from)) if self.stream.is_none() => {
                if stream.set_nonblocking(true).is_ok() {
                    let _ = stream.set_nodelay(true);
                    tracing::info!(%from, tunnel = %self.tunnel, "AWS: BGP connection accepted");
                    self.stream = Some(stream);
                    self.pending.clear();
                    self.session.connected(now);
                }
            }
            // One session per tunnel: a second connection is refused (collision: ours stays).
            Ok((stream, _)) => drop(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => tracing::debug!(error = %e, "AWS: BGP accept"),
        }
        if let Some(stream) = self.stream.as_mut() {
            let closed = crate::daemon::bgp_io::pump(now, stream, &mut self.session, &mut self.pending);
            if closed {
                self.session.disconnected();
            }
            if closed || self.session.state() == SessionState::Idle {
                self.stream = None;
            }
        }
        while let Some(e) = self.session.poll_event() {
            match e {
                SessionEvent::Established { .. } => {
                    tracing::info!(tunnel = %self.tunnel, "AWS: BGP session established");
                }
                SessionEvent::Routes { announced, withdrawn } => {
                    for p in withdrawn {
                        self.remove(p);
                    }
                    // The tunnel's IP version only: it carries nothing else.
                    let v6 = self.v6;
                    for l in announced {
                        if matches!(l.prefix, IpNet::V6(_)) != v6 {
                            continue;
                        }
                        let metric =
                            100 + 10 * l.attributes.as_path_len() as u32 + u32::from(self.tunnel.number());
                        self.install(l.prefix, metric);
                    }
                }
                SessionEvent::Down(why) => {
                    tracing::warn!(tunnel = %self.tunnel, "AWS: BGP session down: {}", why.describe());
                    self.remove_all();
                }
                SessionEvent::EndOfRib => {}
            }
        }
    }

    fn ip_route(&self, verb: &str, net: IpNet, metric: u32) -> bool {
        let (net_s, metric_s) = (net.to_string(), metric.to_string());
        let args = ["route", verb, &net_s, "dev", &self.interface, "metric", &metric_s];
        match std::process::Command::new("ip").args(args).output() {
            Ok(o) if o.status.success() => true,
            Ok(o) => {
                tracing::warn!(dst = %net, error = %String::from_utf8_lossy(&o.stderr).trim(), "AWS: ip route {verb}");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "AWS: running ip route");
                false
            }
        }
    }

    fn install(&mut self, net: IpNet, metric: u32) {
        if self.installed.get(&net) == Some(&metric) {
            return;
        }
        self.remove(net);
        if self.ip_route("replace", net, metric) {
            tracing::info!(dst = %net, dev = %self.interface, metric, "AWS: route learned over BGP installed");
            self.installed.insert(net, metric);
        }
    }

    fn remove(&mut self, net: IpNet) {
        if let Some(metric) = self.installed.remove(&net) {
            self.ip_route("del", net, metric);
        }
    }

    fn remove_all(&mut self) {
        let all: Vec<IpNet> = self.installed.keys().copied().collect();
        for n in all {
            self.remove(n);
        }
    }

    /// Shutdown: Cease, then the learned routes removed.
    pub fn close(&mut self) {
        self.session.close(crate::bgp::wire::code::CEASE_ADMIN_SHUTDOWN);
        if let Some(stream) = self.stream.as_mut() {
            crate::daemon::bgp_io::flush_and_shut(stream, &mut self.session, &mut self.pending);
        }
        self.stream = None;
        self.remove_all();
    }
}
