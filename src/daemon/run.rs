//! `cgwd run`: the foreground daemon, the I/O shell around the gateway core.
//!
//! ```text
//!  AWS files (one per VPN connection) ─► start-up checks ─► one TUN + every inside address
//!        ─► UDP 500 (reader thread) / 4500 (data plane), shared by every connection
//!        ─► gateway core (crate::gateway): every tunnel's IKE SAs, sans-IO ─► control loop:
//!           IKE datagrams, timers, `cgwd rekey|tunnel` ──► gateway ──► IKE datagrams to send ·
//!           SA-table commands · tunnel events ──► per-connection failover, health records
//!           probes · failover → the data plane's usable flags · prefix table · routes · status
//!        ─► SIGHUP / `cgwd reload`: the difference applied ([`super::reload`])
//!        ─► SIGTERM/SIGINT: DELETE every IKE SA, stop workers, remove routes/addresses/TUN
//! ```
//!
//! One control thread drives everything but the packet path; it wakes at least every [`TICK`]
//! (the failover and probe resolution) and otherwise blocks on the IKE input channel, handling at
//! most [`IKE_PER_TICK`] datagrams before its timers run again.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::control::{Command, ControlServer, SharedStatus};
use super::icmp::{RawIcmp, RawIcmp6};
use super::observer::{Observer, failure_event, ike_header};
use super::privilege::{Identity, PrivilegeError};
use super::signals::Signals;
use super::status::{Algorithms, PhaseState, RouteStatus, StatusSnapshot, Traffic, TunnelStatus};
use crate::config::{ConfigError, Settings, VpnConnection};
use crate::crypto::OsRandom;
use crate::dataplane::RouteTable;
use crate::dataplane::{Dataplane, DataplaneConfig, IkeDatagram, KEEPALIVE_INTERVAL, POLL_INTERVAL, Shared};
use crate::esp::SaTable;
use crate::failover::probe::{Inbound, Prober};
use crate::failover::{DownReason, FailoverTimers, Monitor, Outbound, Verdict};
use crate::gateway::{Gateway, Output, SaCommand, TunnelEvent, TunnelHandle, TunnelSpec};
use crate::ike::{Event, FailReason, IkeConfig, LinkState, State};
use crate::io::clock;
use crate::io::tun::{Tun, TunConfig};
use crate::io::udp::UdpSocket;
use crate::observe::{HealthEvent, TunnelHealth};
use crate::routing::Router;
use crate::sa::{TunnelId, TunnelKey};
use crate::suite::Suite;
use crate::wire::udp_encap::NON_ESP_MARKER;

/// The control loop's longest sleep: failover and probe timing resolution.
pub const TICK: Duration = Duration::from_millis(50);
/// How often the status snapshot is refreshed (and on every state change).
const STATUS_EVERY: Duration = Duration::from_millis(500);
/// How long the shutdown waits for the DELETE exchanges to be answered once they are sent (a DELETE
/// queued behind a request in flight may first wait up to [`crate::ike::CLOSE_WAIT`]).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);
/// IKE datagrams queued from the RX worker before it starts dropping (control traffic is sparse).
const IKE_QUEUE: usize = 64;
/// IKE datagrams handled before the loop runs its timers, probes and failover again.
const IKE_PER_TICK: usize = 64;
/// Probe replies read per tick at most.
const PROBE_REPLIES_PER_TICK: usize = 64;
/// Linux capability number of CAP_NET_ADMIN.
const CAP_NET_ADMIN: u32 = 12;

/// An IKE datagram for the control loop, from either port.
struct IkeInput {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// Feed the control loop from both IKE ports so it wakes the moment a message arrives (a DELETE
/// must switch traffic at once): a reader thread on UDP 500, and a forwarder for what the
/// data-plane RX worker hands over from UDP 4500. Both end when the loop's receiver is dropped (or
/// the data plane stops, or `stop` is set).
fn spawn_ike_inputs(
    local: IpAddr,
    udp500: Arc<UdpSocket>,
    from_rx_worker: Receiver<IkeDatagram>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<Receiver<IkeInput>> {
    let (tx, rx) = sync_channel::<IkeInput>(IKE_QUEUE);
    let tx500 = tx.clone();
    std::thread::Builder::new()
        .name("cgwd-ike500".into())
        .spawn(move || {
            let to = SocketAddr::new(local, 500);
            let mut buf = vec![0u8; 65536];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match udp500.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let input = IkeInput {
                            from,
                            to,
                            data: buf[..n].to_vec(),
                        };
                        match tx500.try_send(input) {
                            Ok(()) | Err(std::sync::mpsc::TrySendError::Full(_)) => {}
                            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return,
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "UDP 500 receive failed");
                        std::thread::sleep(TICK);
                    }
                }
            }
        })?;
    std::thread::Builder::new()
        .name("cgwd-ike4500".into())
        .spawn(move || {
            let to = SocketAddr::new(local, 4500);
            for dg in from_rx_worker {
                let input = IkeInput {
                    from: dg.from,
                    to,
                    data: dg.message,
                };
                if tx.send(input).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// Why `cgwd run` could not start, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Privilege(#[from] PrivilegeError),
    #[error(
        "cgwd run needs root or CAP_NET_ADMIN (to create the TUN device and routes): run it with sudo, \
         or give the service AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW"
    )]
    NotPrivileged,
    #[error(
        "/dev/net/tun is missing: load the tun module (`modprobe tun`) or give the container /dev/net/tun"
    )]
    NoTun,
    #[error(
        "UDP port {port} on {addr} is already in use — another IPsec daemon (strongSwan, libreswan) \
         or cgwd is running; see `ss -ulpn 'sport = :{port}'`"
    )]
    PortTaken { port: u16, addr: IpAddr },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl StartError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
        let what = what.into();
        move |source| StartError::Io { what, source }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            // daemon.user is a setting: its mistakes exit as the settings' do.
            Self::Config(_) | Self::Privilege(_) => ConfigError::EXIT_STATUS,
            _ => 1,
        }
    }
}

/// Which end of the VPN this process plays: the same loop serves `cgwd run` and `cgwd emulate-aws`.
#[derive(Debug, Clone, Default)]
pub enum Role {
    /// The customer gateway (`cgwd run`).
    #[default]
    Customer,
    /// AWS's endpoint of one tunnel (`cgwd emulate-aws`).
    Aws(AwsRole),
}

/// What the AWS role needs beyond the configuration.
#[derive(Debug, Clone)]
pub struct AwsRole {
    /// The tunnel this process serves (one outside address per process).
    pub tunnel: TunnelId,
    /// Overrides `control.socket` (the customer side may use the settings' path on the same host).
    pub control_socket: Option<std::path::PathBuf>,
    /// Overrides `interface.name`.
    pub interface: Option<String>,
}

/// Entry point of `cgwd run` (one AWS file or directory per VPN connection).
pub fn main(configs: &[PathBuf], settings: Option<&Path>) -> ExitCode {
    main_as(configs, settings, &Role::Customer)
}

/// Entry point shared by `cgwd run` and `cgwd emulate-aws` (which plays one tunnel of the first
/// connection per process).
pub fn main_as(configs: &[PathBuf], settings: Option<&Path>, role: &Role) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    match run_as(configs, settings, role) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let cmd = match role {
                Role::Customer => "cgwd run",
                Role::Aws(_) => "cgwd emulate-aws",
            };
            eprintln!("{cmd}: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Effective capabilities include CAP_NET_ADMIN (root has it unless dropped).
fn has_net_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

fn bind(addr: IpAddr, port: u16, timeout: Duration) -> Result<UdpSocket, StartError> {
    UdpSocket::bind(SocketAddr::new(addr, port), timeout).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            StartError::PortTaken { port, addr }
        } else if e.kind() == std::io::ErrorKind::PermissionDenied && port < 1024 {
            // Unprivileged (daemon.user, a service, a container): the one capability missing.
            StartError::Other(format!(
                "binding UDP {addr}:{port}: {e}: ports below 1024 need CAP_NET_BIND_SERVICE \
                 (systemd: AmbientCapabilities=; a container: --cap-add=NET_BIND_SERVICE, or its own \
                 network namespace with net.ipv4.ip_unprivileged_port_start=0)"
            ))
        } else {
            StartError::Io {
                what: format!("binding UDP {addr}:{port}"),
                source: e,
            }
        }
    })
}

/// Checks that need no change to the host, in the order a user would fix them.
pub fn preflight() -> Result<(), StartError> {
    if !has_net_admin() {
        return Err(StartError::NotPrivileged);
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(StartError::NoTun);
    }
    Ok(())
}

/// `daemon.user` (see [`super::privilege`]), while cgwd has one thread and has created nothing:
/// the user resolved (every mistake found before anything changes), the control socket's
/// directory made for it, then the drop and checks that the files `cgwd reload` reads again are
/// readable, and the control socket's directory writable, as that user. Without `daemon.user`, a
/// root start is warned about (`warn_root`) and a non-root one raises its permitted network
/// capabilities.
fn settle_privileges(
    settings: &Settings,
    configs: &[PathBuf],
    settings_path: Option<&Path>,
    warn_root: bool,
) -> Result<(), StartError> {
    use super::privilege;
    let identity = privilege::resolve(&settings.daemon.user)?;
    match &identity {
        Some(id) => {
            preflight()?;
            super::control::create_directory_for(&settings.control.socket, id.uid, id.gid).map_err(|e| {
                let dir = settings
                    .control
                    .socket
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .display();
                StartError::Other(format!(
                    "control.socket: creating {dir} for {user} (daemon.user): {e}. Fix: create it \
                     owned by {user} beforehand (`install -d -o {user} -m 0700 {dir}`; a container: \
                     --tmpfs {dir}:mode=0700,uid={uid},gid={gid}), or grant CAP_CHOWN",
                    user = id.name,
                    uid = id.uid,
                    gid = id.gid,
                ))
            })?;
            privilege::drop_to(id)?;
            readable_as(id, configs, settings_path)?;
            control_directory_writable_by(id, &settings.control.socket)?;
        }
        None if privilege::is_root() => {
            if warn_root {
                tracing::warn!(
                    "running as root with every capability: set daemon.user (CGWD_DAEMON_USER) to an \
                     unprivileged user to keep only {}; the systemd unit and the container image start \
                     cgwd unprivileged already",
                    privilege::kept_names()
                );
            }
        }
        None => privilege::raise_kept()?,
    }
    Ok(())
}

/// After the drop, the files `cgwd reload` reads again must be readable by the user: found now,
/// not at the first reload.
fn readable_as(id: &Identity, configs: &[PathBuf], settings: Option<&Path>) -> Result<(), StartError> {
    let unreadable = |path: &Path, e: &dyn std::fmt::Display| {
        StartError::Other(format!(
            "daemon.user = \"{user}\": {path}: {e}; cgwd runs as {user} from start-up on and `cgwd \
             reload` reads this file again. Fix: make it and its directories readable by {user} (e.g. \
             `chgrp {group} {path} && chmod g+r {path}`), or leave daemon.user empty and let systemd \
             pass the files (LoadCredential=, configs/packaging/cgwd.service)",
            user = id.name,
            group = id.group,
            path = path.display(),
        ))
    };
    let files = crate::config::expand_config_paths(configs).map_err(|e| match &e {
        ConfigError::Io { file, source } => unreadable(file, source),
        _ => StartError::Config(e),
    })?;
    for f in files.iter().map(PathBuf::as_path).chain(settings) {
        std::fs::File::open(f).map_err(|e| unreadable(f, &e))?;
    }
    Ok(())
}

/// After the drop, the user binds the control socket (and removes it at stop): an existing
/// directory it may not write (one a root run left) is found now, before anything is created.
fn control_directory_writable_by(id: &Identity, socket: &Path) -> Result<(), StartError> {
    use nix::unistd::{AccessFlags, access};
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    match access(dir, AccessFlags::W_OK | AccessFlags::X_OK) {
        Ok(()) => Ok(()),
        Err(e) => Err(StartError::Other(format!(
            "control.socket: {dir} is not writable by {user} (daemon.user), who binds the socket \
             there from start-up on ({e}). Fix: remove it so cgwd creates it for {user}, `chown \
             {user} {dir}`, or set control.socket in a directory {user} owns",
            dir = dir.display(),
            user = id.name,
        ))),
    }
}

/// One tunnel as the daemon sees it: its handle in the gateway core, and what failover, probes and
/// status keep beside the IKE SAs.
struct Tunnel {
    id: TunnelId,
    /// The tunnel's key in the SA table and the data plane.
    key: TunnelKey,
    /// The tunnel in the gateway (None: this process does not serve it, as an `emulate-aws`
    /// endpoint serves one).
    handle: Option<TunnelHandle>,
    cfg: Arc<IkeConfig>,
    prober: Prober,
    inside: Ipv4Net,
    aws_inside: Ipv4Addr,
    /// IPv6-inside tunnels: our /126 address and the peer's (the tunnel's traffic is IPv6 only).
    inside6: Option<Ipv6Net>,
    aws_inside6: Option<Ipv6Addr>,
    last_rx_packets: u64,
    child_since: Option<Instant>,
    child_spis: Option<(u32, u32)>,
    last_reason: Option<String>,
    rtt: Option<Duration>,
    ike_suite: Option<Suite>,
    esp_suite: Option<Suite>,
    nat: bool,
}

impl Tunnel {
    /// The inside addresses this tunnel puts on the device.
    fn nets(&self) -> impl Iterator<Item = IpNet> + use<> {
        std::iter::once(IpNet::V4(self.inside)).chain(self.inside6.map(IpNet::V6))
    }

    fn phase_states(&self, gw: &Gateway) -> (PhaseState, PhaseState) {
        let map = |l: LinkState| match l {
            LinkState::Established => PhaseState::Established,
            LinkState::Negotiating => PhaseState::Negotiating,
            LinkState::Down => PhaseState::Down,
        };
        let Some(h) = self.handle else {
            return (PhaseState::Down, PhaseState::Down);
        };
        let (p1, p2, rekeying) = gw.tunnel(h).phases();
        // A CREATE_CHILD_SA of ours in flight while established: AWS's "rekeying".
        let p2 = if rekeying && p2 == LinkState::Established {
            PhaseState::Rekeying
        } else {
            map(p2)
        };
        (map(p1), p2)
    }

    /// Seconds until cgwd rekeys the Child SA.
    fn next_rekey(&self, gw: &Gateway, now: Instant) -> Option<u64> {
        let at = gw.tunnel(self.handle?).next_child_rekey()?;
        Some(at.saturating_duration_since(now).as_secs())
    }

    /// The tunnel's IKE SA is established.
    fn ike_up(&self, gw: &Gateway) -> bool {
        self.handle
            .and_then(|h| gw.tunnel(h).sa)
            .is_some_and(|sa| sa.state() == State::Established)
    }
}

/// One VPN connection the daemon serves: its two tunnels, its failover policy and health records.
struct Connection {
    /// Its tunnels' [`TunnelKey`] connection number, kept for its life (reloads add and remove
    /// others around it).
    slot: u16,
    conn: VpnConnection,
    /// The daemon's settings with this connection's `[connections.<id>]` overrides.
    settings: Settings,
    tunnels: [Tunnel; 2],
    monitor: Monitor,
    /// Health records and metrics of this connection (docs/observability.md).
    observer: Observer,
    /// emulate-aws: the routes AWS installs while its tunnel is up.
    aws_routes: Option<crate::emulate::AwsRoutes>,
    /// At least one tunnel is not down (its VPC routes belong in the kernel).
    any_up: bool,
    /// The built-in BGP speaker (dynamic routing with `bgp.speaker = "builtin"`).
    bgp: Option<ConnectionBgp>,
    /// emulate-aws: AWS's side of the BGP session of the tunnel this process serves.
    aws_bgp: Option<crate::emulate::bgp::AwsBgp>,
}

struct Daemon {
    connections: Vec<Connection>,
    /// Gateway handle → (connection, tunnel index).
    by_handle: HashMap<TunnelHandle, (usize, usize)>,
    /// Our outside address, IPv4 or IPv6 (the family of AWS's endpoints).
    local: IpAddr,
    udp500: Arc<UdpSocket>,
    udp4500: Arc<UdpSocket>,
    /// IKE datagrams from both ports, in arrival order; the loop blocks here.
    input: Receiver<IkeInput>,
    shared: Arc<Shared>,
    router: Router,
    /// The VPC prefixes of the connections with a tunnel up, as last handed to the router.
    routed: Option<Vec<IpNet>>,
    icmp: Option<RawIcmp>,
    /// ICMPv6 probes of IPv6-inside tunnels.
    icmp6: Option<RawIcmp6>,
    status: SharedStatus,
    started: Instant,
    last_status: Option<Instant>,
    /// emulate-aws: the maintenance rehearsal (None for `cgwd run`).
    maintenance: Option<crate::emulate::Maintenance>,
    /// When the customer gateway certificate's expiry was last looked at (loading warns first,
    /// then the loop once a day: [`Daemon::certificate_expiry`]).
    certificate_checked: Instant,
    /// `cgwd emulate-aws`: AWS's routes are its own ([`crate::emulate::AwsRoutes`]), not the VPC's.
    aws_role: bool,
    interface: String,
    /// Every tunnel's IKE SAs and their lifecycle (sans-IO).
    gateway: Gateway,
    /// Requests from the control socket (`cgwd rekey`, `cgwd tunnel`, `cgwd reload`).
    commands: Receiver<Command>,
    /// What was read at start, read again on reload.
    config_paths: Vec<PathBuf>,
    settings_path: Option<PathBuf>,
    /// The daemon-wide settings running (a reload may not change its restart-only keys).
    daemon_settings: Settings,
    setup: ConnectionSetup,
    ifindex: u32,
    /// `bgp.speaker = "external"`: each tunnel's own device, by slot (its inside address is there).
    device_ifindex: HashMap<usize, u32>,
    /// Tunnels a reload changed, re-established one at a time: (VPN ID, tunnel).
    reconfigure: std::collections::VecDeque<(String, TunnelId)>,
    /// The one being re-established, and since when.
    reconfiguring: Option<(String, TunnelId, Instant)>,
    /// Tunnel-key slots of removed connections whose IKE SAs are still being deleted: not reused
    /// until they are gone (their last SA-table commands name the slot).
    draining: Vec<(u16, Vec<TunnelHandle>)>,
    reload_status: Option<super::status::ReloadStatus>,
    /// `local.address = "auto"`: the outside address followed ([`Daemon::follow_local_address`]).
    local_watch: Option<super::local_address::LocalWatch>,
}

/// A reload changed the connection's certificate (renewed, or another one): each tunnel's IKE SAs
/// from now on authenticate with it; the current ones carry on (see
/// [`Gateway::renew_credentials`]). A tunnel whose own parameters changed too is re-established
/// by the reload plan anyway.
fn renew_certificate(c: &Connection, gateway: &mut Gateway, local: IpAddr) {
    if let Some(cert) = &c.conn.certificate {
        tracing::info!(
            vpn = %c.conn.id,
            subject = %cert.subject,
            not_after = %cert.not_after,
            "customer gateway certificate changed by the reload: new IKE SAs authenticate with it, the current ones stay up"
        );
    }
    for t in &c.tunnels {
        let Some(h) = t.handle else { continue };
        match super::ike_config_for(&c.conn, &c.settings, t.id, local) {
            Ok(mut cfg) => {
                cfg.tunnel = t.key;
                gateway.renew_credentials(h, Arc::new(cfg));
            }
            Err(e) => {
                tracing::error!(vpn = %c.conn.id, tunnel = %t.id, error = %e, "renewing the certificate")
            }
        }
    }
}

/// How long a re-established tunnel may take before the next changed tunnel goes anyway.
const RECONFIGURE_WAIT: Duration = Duration::from_secs(30);

fn suite_algorithms(s: &Option<Suite>) -> Option<Algorithms> {
    s.map(|s| Algorithms {
        encryption: s.encryption.aws_name().to_string(),
        integrity: s.integrity.or(s.prf).map(|i| i.aws_name().to_string()),
        dh_group: s.dh.map(|g| g.number()),
    })
}

/// One IKE datagram out (port 4500 with the non-ESP marker). The 4500 socket is the data plane's
/// too: a send buffer momentarily full of ESP gets one more try a millisecond later, and a datagram
/// still not sent is logged (IKE retransmits requests, but a lost response waits for the peer's).
fn send_ike(udp500: &UdpSocket, udp4500: &UdpSocket, tx: &crate::ike::Transmit) {
    let send = || {
        if tx.from.port() == 4500 || tx.to.port() == 4500 {
            let mut data = Vec::with_capacity(tx.data.len() + 4);
            data.extend_from_slice(&NON_ESP_MARKER);
            data.extend_from_slice(&tx.data);
            udp4500.send_to(&data, tx.to)
        } else {
            udp500.send_to(&tx.data, tx.to)
        }
    };
    let mut r = send();
    if matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
        std::thread::sleep(Duration::from_millis(1));
        r = send();
    }
    if let Err(e) = r {
        tracing::warn!(error = %e, to = %tx.to, bytes = tx.data.len(), "IKE datagram not sent");
    }
}

fn down_reason(f: &FailReason, was_up: bool) -> DownReason {
    match f {
        FailReason::DeletedByPeer => DownReason::DeleteReceived,
        FailReason::PeerNotResponding { .. } if was_up => DownReason::DpdTimeout,
        _ => DownReason::NegotiationFailed,
    }
}

/// The data plane's prefix table for these connections: each connection's VPC prefixes (or
/// everything, IPv4 and IPv6, when it names none) through both its tunnels, every tunnel's far
/// inside address pinned to it. Connections routing the same prefix share it by flow hash (ECMP).
/// AWS's side (`aws_role`) sends everything into its tunnel: its VPC router already chose it.
/// The same table checks inbound sources (`routing.reverse_path_check`), except on AWS's side and
/// with `bgp.speaker = "external"`, whose routes cgwd does not know.
fn route_table(connections: &[Connection], aws_role: bool) -> RouteTable {
    let mut b = RouteTable::builder();
    for c in connections {
        if aws_role || !c.settings.checks_inbound_sources() {
            b.accept_any_source(c.slot);
        }
        let served: Vec<&Tunnel> = c.tunnels.iter().filter(|t| t.handle.is_some()).collect();
        for t in &served {
            b.pin(IpAddr::V4(t.aws_inside), t.key);
            if let Some(a) = t.aws_inside6 {
                b.pin(IpAddr::V6(a), t.key);
            }
            if aws_role {
                b.route("0.0.0.0/0".parse().expect("literal"), t.key);
                b.route("::/0".parse().expect("literal"), t.key);
                continue;
            }
            // A BGP connection routes what it learned (below); static ones everything if nothing
            // is configured.
            if c.settings.routing.vpc_cidrs.is_empty() && c.bgp.is_none() {
                b.route("0.0.0.0/0".parse().expect("literal"), t.key);
                b.route("::/0".parse().expect("literal"), t.key);
            }
            for n in &c.settings.routing.vpc_cidrs {
                b.route(*n, t.key);
            }
        }
        if let Some(bgp) = &c.bgp {
            for r in bgp.speaker.routes() {
                for (tier, tunnels) in r.tiers.iter().enumerate() {
                    for id in tunnels {
                        let key = c.tunnels[id.index()].key;
                        b.route_tier(r.prefix, key, tier.min(usize::from(u8::MAX)) as u8);
                    }
                }
            }
        }
    }
    b.build()
}

/// A connection's BGP: the speaker and each tunnel's TCP connection.
struct ConnectionBgp {
    speaker: crate::bgp::speaker::Speaker,
    links: [super::bgp_io::BgpLink; 2],
    /// The prefixes learned, as of the last change (the kernel routes want them every tick).
    learned: Vec<IpNet>,
    /// When each session became Established, and why it last went down.
    since: [Option<Instant>; 2],
    last_error: [Option<String>; 2],
}

impl ConnectionBgp {
    /// Tunnel `id`'s session for `cgwd status`.
    fn status(&self, id: TunnelId, now: Instant) -> super::status::BgpStatus {
        let cfg = self.speaker.config();
        let session = self.speaker.session(id);
        super::status::BgpStatus {
            state: session.state().name().into(),
            neighbor: self.speaker.endpoints(id).1,
            peer_as: cfg.peer_as,
            local_as: cfg.local_as,
            uptime_secs: self.since[id.index()].map(|s| now.saturating_duration_since(s).as_secs()),
            hold_time: matches!(
                session.state(),
                crate::bgp::session::SessionState::OpenConfirm
                    | crate::bgp::session::SessionState::Established
            )
            .then(|| session.hold_time()),
            prefixes_received: self.speaker.received(id) as u64,
            prefixes_advertised: if self.speaker.established(id) {
                self.speaker.announcements(id).len() as u64
            } else {
                0
            },
            last_error: self.last_error[id.index()].clone(),
        }
    }

    /// What was learned, with the tunnel numbers of each tier.
    fn routes(&self) -> Vec<super::status::BgpRouteStatus> {
        self.speaker
            .routes()
            .into_iter()
            .map(|r| {
                let numbers = |tier: Option<&Vec<TunnelId>>| -> Vec<u8> {
                    tier.map(|t| t.iter().map(|id| id.number()).collect())
                        .unwrap_or_default()
                };
                super::status::BgpRouteStatus {
                    prefix: r.prefix.to_string(),
                    tunnels: numbers(r.tiers.first()),
                    fallback: r.tiers.iter().skip(1).flatten().map(|id| id.number()).collect(),
                }
            })
            .collect()
    }
}

/// Our IPv6 inside address with its /126, for an IPv6-inside tunnel (`aws`: we play AWS's side).
fn inside_v6(t: &crate::config::TunnelConfig, aws: bool) -> Option<Ipv6Net> {
    let net = t.inside_ipv6.filter(|_| t.is_inside_ipv6())?;
    let ours = if aws {
        t.aws_inside_ipv6()
    } else {
        t.customer_inside_ipv6()
    }?;
    Ipv6Net::new(ours, net.prefix_len()).ok()
}

/// The built-in speaker for a dynamic-routing connection (`bgp.speaker = "builtin"`), else None.
fn connection_bgp(conn: &VpnConnection, settings: &Settings) -> Option<ConnectionBgp> {
    use crate::bgp::speaker::{Preference, Speaker, SpeakerConfig};
    let crate::config::Routing::Bgp {
        customer_asn,
        aws_asn,
        hold_time,
    } = conn.routing
    else {
        return None;
    };
    if settings.bgp.speaker != crate::config::BgpSpeaker::Builtin {
        return None;
    }
    let inside = TunnelId::BOTH.map(|id| {
        let t = conn.tunnel(id);
        (t.customer_inside(), t.aws_inside())
    });
    // IPv6-inside tunnels: the session runs over the /126 addresses (the router ID stays the /30's).
    let v6 = TunnelId::BOTH.map(|id| {
        let t = conn.tunnel(id);
        t.customer_inside_ipv6()
            .zip(t.aws_inside_ipv6())
            .filter(|_| t.is_inside_ipv6())
    });
    let inside_v6 = match v6 {
        [Some(a), Some(b)] => Some([a, b]),
        _ => None,
    };
    let preference = match settings.failover.policy {
        crate::config::FailoverPolicy::ActiveActive => Preference::Both,
        _ => Preference::Prefer(TunnelId::One),
    };
    Some(ConnectionBgp {
        speaker: Speaker::new(SpeakerConfig {
            local_as: customer_asn,
            peer_as: aws_asn,
            hold_time,
            inside,
            inside_v6,
            onprem: settings.routing.onprem_cidrs.clone(),
            preference,
            fast_failover: settings.bgp.fast_failover,
        }),
        links: match inside_v6 {
            Some(v) => v.map(|(ours, aws)| super::bgp_io::BgpLink::new(IpAddr::V6(ours), IpAddr::V6(aws))),
            None => inside.map(|(ours, aws)| super::bgp_io::BgpLink::new(IpAddr::V4(ours), IpAddr::V4(aws))),
        },
        learned: Vec::new(),
        since: [None; 2],
        last_error: [None, None],
    })
}

/// Start everything, run until a signal, tear down.
pub fn run(configs: &[PathBuf], settings_path: Option<&Path>) -> Result<(), StartError> {
    run_as(configs, settings_path, &Role::Customer)
}

/// [`run`] in either role.
pub fn run_as(configs: &[PathBuf], settings_path: Option<&Path>, role: &Role) -> Result<(), StartError> {
    let loaded = crate::config::load_many(configs, settings_path)?;
    let daemon_settings = loaded.settings.clone();
    let mut settings = loaded.settings;
    let mut list = loaded.connections;
    if let Role::Aws(a) = role {
        // One AWS endpoint per process: the first connection's tunnel.
        list.truncate(1);
        if let Some(p) = &a.control_socket {
            settings.control.socket = p.clone();
        }
        if let Some(n) = &a.interface {
            settings.interface.name = n.clone();
        }
        // The customer gateway's metrics listener and health log are not AWS's (and two endpoint
        // processes would fight over them).
        settings.metrics.listen = None;
        settings.log.health = Default::default();
        for (_, s) in &mut list {
            s.interface.name = settings.interface.name.clone();
            s.control.socket = settings.control.socket.clone();
            s.metrics.listen = None;
            s.log.health = Default::default();
        }
    }
    let aws = match role {
        Role::Customer => None,
        Role::Aws(a) => Some(a.tunnel),
    };
    let served = TunnelId::BOTH.map(|id| aws.is_none_or(|t| t == id));
    // The user's BGP daemon chooses the tunnel (its routes into each tunnel's device): every live
    // tunnel carries what is routed into it, whatever failover.policy says.
    let external = aws.is_none() && settings.bgp.speaker == crate::config::BgpSpeaker::External;
    if external {
        if list.iter().any(|(_, s)| s.routing.reverse_path_check) {
            tracing::info!(
                "bgp.speaker = \"external\": inbound source check (routing.reverse_path_check) off, cgwd does not know your BGP daemon's routes"
            );
        }
        for (conn, s) in &mut list {
            if s.failover.policy != crate::config::FailoverPolicy::ActiveActive {
                tracing::info!(
                    vpn = %conn.id,
                    "bgp.speaker = \"external\": your BGP daemon's routes choose the tunnel; failover.policy is active-active"
                );
                s.failover.policy = crate::config::FailoverPolicy::ActiveActive;
            }
        }
    }
    settle_privileges(&settings, configs, settings_path, aws.is_none())?;
    preflight()?;
    let Some((first_conn, _)) = list.first() else {
        return Err(StartError::Other("no VPN connection given".into()));
    };
    let metrics_observer =
        Observer::start(first_conn, &list[0].1, aws.is_none()).map_err(StartError::Other)?;
    let signals = Signals::install().map_err(StartError::io("installing signal handlers"))?;

    // One local address for every tunnel: AWS sends them all to the same customer gateway IP.
    let local_ip = match aws {
        Some(t) => first_conn.tunnel(t).aws_outside,
        None => crate::config::resolve_local_address(&settings, first_conn.tunnel(TunnelId::One))
            .map_err(StartError::io("finding the local address"))?,
    };
    let local = local_ip;
    let udp500 = Arc::new(bind(local_ip, 500, TICK)?);
    let udp4500 = Arc::new(bind(local_ip, 4500, POLL_INTERVAL)?);
    let local_watch = aws
        .is_none()
        .then(|| super::local_address::LocalWatch::for_settings(&settings, first_conn.tunnel(TunnelId::One)))
        .flatten();

    for (conn, s) in &list {
        let bgp = matches!(conn.routing, crate::config::Routing::Bgp { .. })
            && s.bgp.speaker == crate::config::BgpSpeaker::Builtin;
        if aws.is_none() && bgp && s.routing.onprem_cidrs.is_empty() {
            tracing::warn!(
                vpn = %conn.id,
                "routing.onprem_cidrs is empty: BGP announces nothing, so AWS has no route back to on-prem"
            );
        }
        if aws.is_none() && !bgp && !external && s.routing.vpc_cidrs.is_empty() {
            tracing::warn!(
                vpn = %conn.id,
                "routing.vpc_cidrs is empty: cgwd installs no routes for this connection; route the VPC networks to {} yourself",
                settings.interface.name
            );
        }
    }
    // One MTU for the device: the smallest any connection's suites allow.
    let mtu = list
        .iter()
        .map(|(c, _)| settings.interface_mtu(c))
        .min()
        .unwrap_or(1400);
    let mut addresses = Vec::new();
    for (ci, (conn, _)) in list.iter().enumerate() {
        for t in conn.tunnels.iter().filter(|t| served[t.id.index()]) {
            let ours = if aws.is_some() {
                t.aws_inside()
            } else {
                t.customer_inside()
            };
            let key = TunnelKey::new(ci as u16, t.id);
            let net =
                Ipv4Net::new(ours, t.inside.prefix_len()).map_err(|e| StartError::Other(e.to_string()))?;
            addresses.push((key, IpNet::V4(net)));
            if let Some(net6) = inside_v6(t, aws.is_some()) {
                addresses.push((key, IpNet::V6(net6)));
            }
        }
    }
    let tun = Arc::new(
        Tun::create(&TunConfig {
            name: settings.interface.name.clone(),
            mtu,
            addresses: Vec::new(),
            offload: true,
        })
        .map_err(StartError::io(format!(
            "creating TUN device {}",
            settings.interface.name
        )))?,
    );
    let ifindex = tun.if_index().map_err(StartError::io("TUN interface index"))?;
    // bgp.speaker = "external": a device per tunnel, with the tunnel's inside address on it.
    let mut devices: Vec<(TunnelKey, Arc<Tun>)> = Vec::new();
    let mut device_ifindex = HashMap::new();
    if external {
        for &(key, _) in addresses.iter().filter(|(_, n)| matches!(n, IpNet::V4(_))) {
            let name = crate::config::tunnel_device_name(&settings.interface.name, key.slot());
            let dev = Tun::create(&TunConfig {
                name: name.clone(),
                mtu,
                addresses: Vec::new(),
                offload: true,
            })
            .map_err(StartError::io(format!("creating TUN device {name}")))?;
            let index = dev.if_index().map_err(StartError::io("TUN interface index"))?;
            device_ifindex.insert(key.slot(), index);
            devices.push((key, Arc::new(dev)));
        }
    }
    let mut router = Router::new(Vec::new(), ifindex).map_err(|e| StartError::Other(e.to_string()))?;
    for &(key, net) in &addresses {
        let index = device_ifindex.get(&key.slot()).copied().unwrap_or(ifindex);
        router
            .add_address(net, index)
            .map_err(|e| StartError::Other(e.to_string()))?;
    }

    let sas = Arc::new(SaTable::new());
    let shared = Arc::new(Shared::new(sas));
    let (ike_tx, ike_rx) = sync_channel(IKE_QUEUE);
    let first = first_conn.tunnel(TunnelId::One);
    let dp_config = DataplaneConfig {
        tunnel_mtu: mtu,
        tcp_mss: Some(crate::config::mss_for_mtu(mtu)),
        clear_df_bit: first.clear_df_bit,
        icmp_source: first.aws_inside(),
        keepalive: Some(KEEPALIVE_INTERVAL),
        answer_wait: settings.answer_wait(),
    };
    let dataplane = Dataplane::spawn_with_devices(
        dp_config,
        tun.clone(),
        udp4500.clone(),
        shared.clone(),
        Some(ike_tx),
        &devices,
    )
    .map_err(StartError::io("starting data-plane workers"))?;

    let status: SharedStatus = Arc::new(Mutex::new(None));
    let (command_tx, commands) = sync_channel(super::control::COMMAND_QUEUE);
    let control = ControlServer::start(&settings.control.socket, status.clone(), command_tx)
        .map_err(|e| StartError::Other(e.to_string()))?;

    // With a device per tunnel, each probe leaves through its tunnel's device and the answer comes
    // back there: the socket is bound to no device then.
    let icmp = match RawIcmp::open().and_then(|s| {
        if external {
            Ok(s)
        } else {
            s.bind_to_device(tun.name()).map(|()| s)
        }
    }) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no raw ICMP socket: liveness probes off, failover relies on DPD");
            None
        }
    };
    // IPv6-inside tunnels are probed with ICMPv6 echo to AWS's inside IPv6 address.
    let wants_icmp6 = list
        .iter()
        .any(|(c, _)| c.tunnels.iter().any(|t| t.is_inside_ipv6()));
    let icmp6 = match wants_icmp6
        .then(|| {
            RawIcmp6::open().and_then(|s| {
                if external {
                    Ok(s)
                } else {
                    s.bind_to_device(tun.name()).map(|()| s)
                }
            })
        })
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no raw ICMPv6 socket: IPv6-inside tunnels' liveness probes off, failover relies on DPD");
            None
        }
    };
    let now = clock::now();
    let mut gateway = Gateway::new();
    let mut connections = Vec::with_capacity(list.len());
    let mut by_handle = HashMap::new();
    let mut metrics_observer = Some(metrics_observer);
    let setup = ConnectionSetup {
        aws,
        served,
        local_ip,
        probes: icmp.is_some(),
        probes6: icmp6.is_some(),
        interface: settings.interface.name.clone(),
    };
    for (ci, (conn, conn_settings)) in list.into_iter().enumerate() {
        let observer = match metrics_observer.take() {
            Some(o) => o,
            None => Observer::start_shared(
                &conn,
                &conn_settings,
                aws.is_none(),
                &connections_registry(&connections),
            )
            .map_err(StartError::Other)?,
        };
        let c = new_connection(
            ci as u16,
            conn,
            conn_settings,
            observer,
            &setup,
            &mut gateway,
            &shared,
            now,
        )
        .map_err(StartError::Other)?;
        for (i, t) in c.tunnels.iter().enumerate() {
            if let Some(h) = t.handle {
                by_handle.insert(h, (ci, i));
            }
        }
        connections.push(c);
    }
    shared.set_routes(route_table(&connections, aws.is_some()));
    tracing::info!(
        connections = connections.len(),
        local = %local,
        tun = %tun.name(),
        mtu,
        "cgwd running"
    );
    let input_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let input = spawn_ike_inputs(local, udp500.clone(), ike_rx, input_stop.clone())
        .map_err(StartError::io("starting IKE input threads"))?;
    let maintenance = match role {
        Role::Aws(_) => Some(
            crate::emulate::Maintenance::listen(&settings.control.socket)
                .map_err(StartError::io("binding the maintenance socket"))?,
        ),
        Role::Customer => None,
    };
    let mut d = Daemon {
        config_paths: configs.to_vec(),
        settings_path: settings_path.map(Path::to_path_buf),
        daemon_settings,
        setup,
        ifindex,
        device_ifindex,
        reconfigure: Default::default(),
        reconfiguring: None,
        draining: Vec::new(),
        reload_status: None,
        local_watch,
        maintenance,
        certificate_checked: now,
        aws_role: aws.is_some(),
        interface: tun.name().to_string(),
        connections,
        by_handle,
        local,
        udp500,
        udp4500,
        input,
        shared,
        router,
        routed: None,
        icmp,
        icmp6,
        status,
        started: now,
        last_status: None,
        gateway,
        commands,
    };
    // Initiate at once rather than after the first tick (both tunnels up ≤ 100 ms after start).
    d.timers(clock::now());
    d.apply_outputs(clock::now());
    let result = d.run_loop(&signals);
    d.shutdown();
    for c in &mut d.connections {
        if let Some(r) = c.aws_routes.as_mut() {
            r.sync(false);
        }
    }
    input_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(control);
    dataplane.stop();
    if let Err(e) = d.router.teardown() {
        tracing::warn!(error = %e, "removing routes and addresses");
    }
    drop(tun);
    drop(devices);
    tracing::info!("cgwd stopped");
    result
}

/// What setting up a VPN connection needs from the daemon (at start and on reload).
struct ConnectionSetup {
    /// The AWS role's tunnel (`emulate-aws`), or None for the customer gateway.
    aws: Option<TunnelId>,
    /// Which tunnels this process serves.
    served: [bool; 2],
    local_ip: IpAddr,
    /// The raw ICMP socket for liveness probes exists.
    probes: bool,
    /// The raw ICMPv6 socket for IPv6-inside tunnels' probes exists.
    probes6: bool,
    interface: String,
}

/// A VPN connection at tunnel-key slot `slot`: its tunnels added to the gateway (initiating at
/// once), their far inside addresses in the data plane. Inside addresses and routes are the
/// caller's.
#[allow(clippy::too_many_arguments)]
fn new_connection(
    slot: u16,
    conn: VpnConnection,
    conn_settings: Settings,
    observer: Observer,
    setup: &ConnectionSetup,
    gateway: &mut Gateway,
    shared: &Shared,
    now: Instant,
) -> Result<Connection, String> {
    let aws = setup.aws;
    let timers = FailoverTimers::from_settings(&conn_settings);
    // Without probes an idle tunnel would look cut: judge liveness by IKE (DPD) alone then.
    // IPv6-inside tunnels (no ICMPv4 gets through their selectors) need the ICMPv6 socket.
    let v6_inside = conn.tunnels.iter().any(|t| t.is_inside_ipv6());
    let probes = if v6_inside { setup.probes6 } else { setup.probes };
    let timers = if probes {
        timers
    } else {
        FailoverTimers {
            suspect_after: Duration::from_secs(u64::from(u32::MAX)),
            ..timers
        }
    };
    let mut rng = OsRandom;
    let mut tunnels = Vec::with_capacity(2);
    for id in TunnelId::BOTH {
        let key = TunnelKey::new(slot, id);
        let mut cfg = match aws {
            Some(_) => crate::emulate::aws_ike_config(&conn, &conn_settings, id),
            None => super::ike_config_for(&conn, &conn_settings, id, setup.local_ip),
        }
        .map_err(|e| e.to_string())?;
        cfg.tunnel = key;
        let cfg = Arc::new(cfg);
        let t = conn.tunnel(id);
        use crate::crypto::Random;
        let ident = rng.next_u32() as u16;
        // "aws_inside" is the peer's inside address; in the AWS role the peer is the customer gateway.
        let (ours, peers) = match aws {
            Some(_) => (t.aws_inside(), t.customer_inside()),
            None => (t.customer_inside(), t.aws_inside()),
        };
        let behaviour = crate::emulate::Behaviour::of(t);
        let enabled = setup.served[id.index()];
        shared.set_aws_inside(key, enabled.then_some(peers));
        let inside6 = inside_v6(t, aws.is_some());
        let aws_inside6 = inside6.and(match aws {
            Some(_) => t.customer_inside_ipv6(),
            None => t.aws_inside_ipv6(),
        });
        shared.set_aws_inside_v6(key, aws_inside6.filter(|_| enabled));
        let handle = enabled.then(|| {
            gateway.add_tunnel(
                TunnelSpec {
                    cfg: cfg.clone(),
                    initiate: aws.is_none() || behaviour.initiate_at_start,
                    reinitiate: aws.is_none() || behaviour.reinitiate_after_close,
                },
                now,
            )
        });
        tunnels.push(Tunnel {
            id,
            key,
            handle,
            prober: Prober::new(ours, peers, ident, timers.probe_interval).with_v6(aws_inside6),
            inside: Ipv4Net::new(ours, t.inside.prefix_len()).unwrap_or(t.inside),
            aws_inside: peers,
            inside6,
            aws_inside6,
            last_rx_packets: 0,
            child_since: None,
            child_spis: None,
            last_reason: None,
            rtt: None,
            ike_suite: None,
            esp_suite: None,
            nat: false,
            cfg,
        });
    }
    let [one, two]: [Tunnel; 2] = tunnels
        .try_into()
        .map_err(|_| "a connection without two tunnels".to_string())?;
    // AWS's BGP (a dynamic-routing file, `bgp.speaker = "builtin"` in emulate-aws's settings):
    // it installs what it learns; otherwise the static on-prem routes of the settings.
    let aws_bgp = match (aws, conn.routing) {
        (
            Some(t),
            crate::config::Routing::Bgp {
                customer_asn,
                aws_asn,
                hold_time,
            },
        ) if conn_settings.bgp.speaker == crate::config::BgpSpeaker::Builtin => Some(
            crate::emulate::bgp::AwsBgp::new(
                t,
                &setup.interface,
                crate::emulate::bgp::AwsBgp::session_config(
                    aws_asn,
                    customer_asn,
                    hold_time,
                    conn.tunnel(t).aws_inside(),
                    conn.tunnel(t)
                        .aws_inside_ipv6()
                        .filter(|_| conn.tunnel(t).is_inside_ipv6()),
                ),
                &conn_settings.routing.vpc_cidrs,
            )
            .map_err(|e| format!("AWS BGP listener on {}: {e}", conn.tunnel(t).aws_inside()))?,
        ),
        _ => None,
    };
    // AWS installs routes to the on-prem prefixes (static routing) through its own per-endpoint
    // routes, not the customer gateway's Router.
    let aws_routes = aws.filter(|_| aws_bgp.is_none()).map(|t| {
        crate::emulate::AwsRoutes::new(
            &setup.interface,
            t,
            crate::emulate::RouteHook::static_routes(&conn_settings),
        )
    });
    tracing::info!(
        vpn = %conn.id,
        connection = slot + 1,
        policy = conn_settings.failover.policy.name(),
        "VPN connection configured"
    );
    let bgp = aws
        .is_none()
        .then(|| connection_bgp(&conn, &conn_settings))
        .flatten();
    Ok(Connection {
        slot,
        bgp,
        aws_bgp,
        monitor: Monitor::new(conn_settings.failover.policy, timers),
        conn,
        settings: conn_settings,
        tunnels: [one, two],
        observer,
        aws_routes,
        any_up: false,
    })
}

/// The metrics registry the connections share (the first connection's observer holds the server).
fn connections_registry(connections: &[Connection]) -> Arc<crate::observe::MetricsRegistry> {
    connections
        .first()
        .map(|c| c.observer.registry())
        .unwrap_or_default()
}

impl Daemon {
    fn run_loop(&mut self, signals: &Signals) -> Result<(), StartError> {
        while !signals.stop_requested() {
            // Sleep until an IKE datagram arrives or the next tick; then at most IKE_PER_TICK of
            // them before timers, probes and failover run (a flood cannot delay DPD or failover).
            match self.input.recv_timeout(TICK) {
                Ok(first) => {
                    let mut next = Some(first);
                    let mut handled = 0;
                    while let Some(i) = next {
                        self.ike_datagram(clock::now(), i.from, i.to, &i.data);
                        handled += 1;
                        next = (handled < IKE_PER_TICK)
                            .then(|| self.input.try_recv().ok())
                            .flatten();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(StartError::Other("IKE input threads stopped".into()));
                }
            }
            let hup = signals.take_reopen();
            if hup {
                for c in &mut self.connections {
                    c.observer.reopen();
                }
            }
            let now = clock::now();
            if hup {
                self.reload(now);
            }
            self.reload_step(now);
            for c in &mut self.connections {
                c.observer.poll(now);
            }
            self.follow_local_address(now);
            if !self.maintenance_tick(now) {
                self.timers(now);
            }
            while let Ok(c) = self.commands.try_recv() {
                self.command(c, now);
            }
            self.probes(now);
            self.certificate_expiry(now);
            self.bgp(now);
            self.failover(now);
            if self
                .last_status
                .is_none_or(|t| now.saturating_duration_since(t) >= STATUS_EVERY)
            {
                self.publish_status(now);
            }
        }
        tracing::info!("stop requested");
        Ok(())
    }

    /// The connection a control request names: its VPN connection ID, its 1-based position, or
    /// the first connection when it names none.
    fn find_connection(&self, name: Option<&str>) -> Option<usize> {
        match name {
            None => (!self.connections.is_empty()).then_some(0),
            Some(n) => self.connections.iter().position(|c| c.conn.id == n).or_else(|| {
                n.parse::<usize>()
                    .ok()
                    .and_then(|k| k.checked_sub(1))
                    .filter(|&k| k < self.connections.len())
            }),
        }
    }

    /// A request from the control socket.
    fn command(&mut self, c: Command, now: Instant) {
        if c == Command::Reload {
            self.reload(now);
            return;
        }
        let (name, tunnel) = match &c {
            Command::Rekey {
                connection, tunnel, ..
            }
            | Command::Tunnel {
                connection, tunnel, ..
            } => (connection.as_deref(), *tunnel),
            Command::Reload => return,
        };
        let Some(ci) = self.find_connection(name) else {
            tracing::warn!(connection = ?name, "control request names no VPN connection of this cgwd");
            return;
        };
        let Some(h) = self.connections[ci].tunnels[tunnel.index()].handle else {
            tracing::warn!(%tunnel, "this process does not serve the tunnel");
            return;
        };
        let vpn = self.connections[ci].conn.id.clone();
        match c {
            Command::Rekey { ike, .. } => {
                tracing::info!(%vpn, %tunnel, what = if ike { "IKE SA" } else { "Child SA" }, "rekey requested");
                if !self.gateway.rekey(h, now, ike) {
                    tracing::warn!(%vpn, %tunnel, "rekey requested, but the tunnel has no established IKE SA");
                }
                self.apply_outputs(now);
            }
            Command::Tunnel { op, .. } => {
                self.gateway.operate(h, now, op);
                self.apply_outputs(now);
                if self.gateway.admin_down(h) {
                    self.connections[ci].tunnels[tunnel.index()].last_reason =
                        Some("taken down by the operator (`cgwd tunnel up` brings it back)".into());
                }
                self.publish_status(now);
            }
            Command::Reload => {}
        }
    }

    /// emulate-aws maintenance rehearsal: on a request DELETE the served SAs and forget them; true while
    /// the endpoint is silent.
    /// Once a day, the warning of [`crate::config::cert::expiry_warning`] for each certificate the
    /// connections use (`[auth]`, `[connections.<id>.auth]`): a daemon running for months hears of
    /// the renewal too.
    fn certificate_expiry(&mut self, now: Instant) {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        if now.saturating_duration_since(self.certificate_checked) < DAY {
            return;
        }
        self.certificate_checked = now;
        let mut seen = Vec::new();
        for c in self
            .connections
            .iter()
            .filter_map(|c| c.conn.certificate.as_ref())
        {
            if seen.contains(&&c.certificate_file) {
                continue;
            }
            seen.push(&c.certificate_file);
            if let Some(w) = crate::config::cert::expiry_warning(
                &c.subject,
                c.not_after,
                clock::unix_now(),
                &c.certificate_file.display().to_string(),
            ) {
                tracing::warn!("{w}");
            }
        }
    }

    fn maintenance_tick(&mut self, now: Instant) -> bool {
        let Some(m) = self.maintenance.as_mut() else {
            return false;
        };
        if let Some(d) = m.take_request(now) {
            tracing::warn!(duration = ?d, "maintenance: deleting the SAs and going silent");
            let handles: Vec<TunnelHandle> = self.by_handle.keys().copied().collect();
            for h in handles {
                self.gateway.reset(h, now);
            }
            self.apply_outputs(now);
        }
        self.maintenance.as_mut().is_some_and(|m| m.silent(now))
    }

    fn ike_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        if self.maintenance.as_mut().is_some_and(|m| m.silent(now)) {
            return;
        }
        if let Some(h) = self.gateway.tunnel_for_peer(from)
            && let Some(&(c, i)) = self.by_handle.get(&h)
        {
            self.connections[c].observer.inbound[i] = ike_header(data);
        }
        // The address it reached: the sockets' (they move with `local.address = "auto"`).
        let to = SocketAddr::new(self.local, to.port());
        self.gateway.handle_datagram(now, from, to, data);
        self.apply_outputs(now);
    }

    fn timers(&mut self, now: Instant) {
        if self.gateway.poll_timeout().is_some_and(|t| t <= now) {
            self.gateway.handle_timeout(now);
            self.apply_outputs(now);
        }
    }

    /// Carry out what the gateway core asks, in its order: send IKE datagrams, change the SA table,
    /// act on tunnel events (failover, health records, status).
    fn apply_outputs(&mut self, now: Instant) {
        while let Some(o) = self.gateway.poll_output() {
            match o {
                Output::Transmit { tunnel, current, tx } => {
                    let at = self.by_handle.get(&tunnel).copied();
                    let record = at
                        .filter(|_| current)
                        .and_then(|(c, i)| self.connections[c].observer.sent(i, &tx.data));
                    send_ike(&self.udp500, &self.udp4500, &tx);
                    if let (Some(h), Some((c, i))) = (record, at) {
                        self.report(c, i, &h, now);
                    }
                }
                Output::Sa(c) => self.sa_command(c, now),
                Output::Event { tunnel, event } => {
                    if let Some(&(c, i)) = self.by_handle.get(&tunnel) {
                        self.tunnel_event(c, i, event, now);
                    }
                }
            }
        }
    }

    /// Apply an SA command; a Child SA the table refuses goes back to the gateway (which deletes
    /// the IKE SA holding it), so IKE never reports up an SA that carries nothing.
    fn sa_command(&mut self, c: SaCommand, now: Instant) {
        if let Err(refused) = c.apply(&self.shared.sas) {
            tracing::error!(tunnel = %refused.tunnel, spi = %refused.inbound, error = %refused.error, "installing the Child SA failed");
            self.gateway.child_sa_refused(now, refused);
            return;
        }
        if let SaCommand::Install(child) = c {
            self.shared.set_peer(child.tunnel, Some(child.remote));
        }
    }

    /// A health record for `ev` on tunnel `i` of connection `c`, with the state it is in now.
    fn report(&mut self, c: usize, i: usize, ev: &HealthEvent, now: Instant) {
        let conn = &mut self.connections[c];
        let t = &conn.tunnels[i];
        let (p1, p2) = t.phase_states(&self.gateway);
        let state = TunnelHealth {
            phase1: p1,
            phase2: p2,
            dpd_enabled: true,
            nat_t_detected: t.nat,
            bgp_established: None,
            bgp_routes: None,
        };
        conn.observer.event(t.id, state, ev, now);
    }

    /// A tunnel event from the gateway core: what failover, health records and status make of it
    /// (the SA table has been changed already).
    fn tunnel_event(&mut self, c: usize, i: usize, ev: TunnelEvent, now: Instant) {
        let id = self.connections[c].tunnels[i].id;
        let key = self.connections[c].tunnels[i].key;
        let handle = self.connections[c].tunnels[i].handle;
        let ev = match ev {
            TunnelEvent::Ike(ev) => *ev,
            TunnelEvent::ChildRekeyed { .. } => {
                let current = handle
                    .and_then(|h| self.gateway.tunnel(h).status())
                    .and_then(|s| s.child_spis);
                if current.is_some() {
                    self.connections[c].tunnels[i].child_spis = current;
                }
                return;
            }
            TunnelEvent::MovedToPeersIkeSa
            | TunnelEvent::OldIkeSaDeleted
            | TunnelEvent::Closed { .. }
            | TunnelEvent::Initiating
            | TunnelEvent::RekeyStarted { .. } => return,
        };
        self.observe_event(c, i, &ev, now);
        let status = handle.and_then(|h| self.gateway.tunnel(h).status());
        match ev {
            Event::Established => {
                let t = &mut self.connections[c].tunnels[i];
                t.last_reason = None;
                if let Some(s) = status {
                    t.ike_suite = s.ike_suite;
                    t.nat = s.nat_detected;
                }
            }
            Event::ChildUp(child) => {
                let rx = self
                    .shared
                    .sas
                    .counters()
                    .tunnels
                    .get(key.slot())
                    .map_or(0, |t| t.packets_in);
                let conn = &mut self.connections[c];
                let t = &mut conn.tunnels[i];
                t.child_since.get_or_insert(now);
                t.child_spis = Some((child.inbound.spi.0, child.outbound.spi.0));
                t.esp_suite = status.and_then(|s| s.esp_suite);
                // Start counting inbound from here.
                t.last_rx_packets = rx;
                conn.monitor.child_up(id, now);
                self.failover(now);
                self.publish_status(now);
            }
            Event::ChildDown { .. } => {
                let conn = &mut self.connections[c];
                let t = &mut conn.tunnels[i];
                t.child_spis = None;
                t.child_since = None;
                // After `Failed` (DPD timeout, ...) the IKE SA's teardown also reports ChildDown:
                // keep the more precise reason recorded first.
                if !matches!(
                    conn.monitor.health(id).child,
                    crate::failover::ChildState::Down(_)
                ) {
                    t.last_reason = Some("AWS deleted the Child SA".into());
                    conn.monitor.child_down(id, DownReason::DeleteReceived, now);
                }
                self.failover(now);
                self.publish_status(now);
            }
            Event::ChildInbound(_) | Event::IkeRekeyed { .. } => {}
            Event::PeerMoved { esp_peer } => {
                // ESP follows IKE (RFC 3948 §3.5): the Child SA's datagrams go to the new mapping.
                if self.connections[c].tunnels[i].child_spis.is_some() {
                    self.shared.set_peer(key, Some(esp_peer));
                }
            }
            Event::ChildFailed(f) => {
                let conn = &mut self.connections[c];
                conn.tunnels[i].last_reason = Some(f.message());
                // A refused rekey leaves the current Child SA working.
                let still_up = status.is_some_and(|s| s.child_spis.is_some());
                if !still_up {
                    conn.monitor.child_down(id, DownReason::NegotiationFailed, now);
                }
            }
            Event::Failed(f) => {
                let conn = &mut self.connections[c];
                let was_up = conn.tunnels[i].child_since.is_some();
                conn.tunnels[i].last_reason = Some(f.message());
                conn.monitor.child_down(id, down_reason(&f.reason, was_up), now);
            }
            Event::Closed => {
                let conn = &mut self.connections[c];
                let t = &mut conn.tunnels[i];
                t.child_spis = None;
                t.child_since = None;
                t.ike_suite = None;
                t.esp_suite = None;
                if !matches!(
                    conn.monitor.health(id).child,
                    crate::failover::ChildState::Down(_)
                ) {
                    conn.monitor.child_down(id, DownReason::Closed, now);
                }
                self.failover(now);
                self.publish_status(now);
            }
        }
    }

    /// Health records and SA facts (rekeys, ages) for an IKE event, before the daemon acts on it.
    fn observe_event(&mut self, c: usize, i: usize, ev: &Event, now: Instant) {
        let conn = &mut self.connections[c];
        let t = &conn.tunnels[i];
        let ike_up = t.ike_up(&self.gateway);
        let mut completed = conn.observer.rekey_events(i);
        let closing = conn.observer.closing;
        let already_down = matches!(
            conn.monitor.health(t.id).child,
            crate::failover::ChildState::Down(_)
        );
        let retries = t.cfg.retransmit.retries;
        let child_was_up = t.child_since.is_some();
        let f = &mut conn.observer.facts[i];
        let mut rekey = Vec::new();
        let ev = match ev {
            Event::Established => {
                f.ike_since = Some(now);
                Some(HealthEvent::IkeSaUp)
            }
            Event::ChildUp(child) => {
                if child_was_up {
                    f.child_rekeys += 1;
                    rekey = std::mem::take(&mut completed);
                }
                f.child_since = Some(now);
                Some(HealthEvent::ChildSaUp {
                    spi: child.inbound.spi.0,
                })
            }
            // A rekey's old SA comes as `ChildRekeyed`: this Child SA the tunnel lost.
            Event::ChildDown { outbound, .. } => {
                f.child_since = None;
                // The IKE SA went with it: AWS deleted the IKE SA (a failure such as a DPD timeout
                // was reported before and marked the tunnel down). Otherwise AWS deleted this Child
                // SA, naming its inbound SPI: our outbound.
                (!already_down && !closing).then_some(if ike_up {
                    HealthEvent::DeleteChildSaReceived { spi: outbound.0 }
                } else {
                    HealthEvent::DeleteIkeSaReceived
                })
            }
            // The peer's rekey answered (inbound half installed; `ChildUp` follows when the old SA
            // goes): the CREATE_CHILD_SA records belong to this message.
            Event::ChildInbound(_) => {
                rekey = std::mem::take(&mut completed);
                None
            }
            Event::PeerMoved { .. } => None,
            Event::IkeRekeyed { .. } => {
                f.ike_rekeys += 1;
                f.ike_since = Some(now);
                rekey = std::mem::take(&mut completed);
                None
            }
            Event::ChildFailed(e) => failure_event(&e.reason, true, true, retries),
            Event::Failed(e) => failure_event(&e.reason, f.ike_since.is_some(), false, retries),
            Event::Closed => {
                f.ike_since = None;
                f.child_since = None;
                None
            }
        };
        for ev in rekey.iter().chain(&ev) {
            self.report(c, i, ev, now);
        }
    }

    /// Inbound accounting, sequence exhaustion and liveness probes.
    fn probes(&mut self, now: Instant) {
        let counters = self.shared.sas.counters();
        // A saturated link rekeys before its outbound sequence numbers run out.
        self.gateway.check_sequence_numbers(now, &counters.outbound);
        self.apply_outputs(now);
        for conn in &mut self.connections {
            for t in &mut conn.tunnels {
                let packets = counters.tunnels.get(t.key.slot()).map_or(0, |c| c.packets_in);
                if packets != t.last_rx_packets {
                    t.last_rx_packets = packets;
                    conn.monitor.inbound(t.id, now);
                    // Authenticated ESP from AWS: its DPD can wait (RFC 7296 §2.4 liveness).
                    if let Some(h) = t.handle {
                        self.gateway.note_peer_alive(h, now);
                    }
                }
            }
        }
        let (icmp, icmp6) = (self.icmp.as_ref(), self.icmp6.as_ref());
        let mut buf = [0u8; 1500];
        // Bounded: a flood of echo replies through the tunnel cannot hold the control loop.
        for _ in 0..PROBE_REPLIES_PER_TICK {
            let Some(Ok(Some((pkt, stamp)))) = icmp.map(|s| s.try_recv(&mut buf)) else {
                break;
            };
            // The round trip ends when the reply arrived, not at this tick.
            let arrived = clock::arrival(stamp, now);
            'found: for conn in &mut self.connections {
                for t in &mut conn.tunnels {
                    if let Inbound::Reply { rtt } = t.prober.handle(pkt, arrived) {
                        t.rtt = Some(rtt);
                        conn.monitor.probe_reply(t.id, now);
                        break 'found;
                    }
                }
            }
        }
        for _ in 0..PROBE_REPLIES_PER_TICK {
            let Some(Ok(Some((from, msg, stamp)))) = icmp6.map(|s| s.try_recv(&mut buf)) else {
                break;
            };
            let arrived = clock::arrival(stamp, now);
            'found6: for conn in &mut self.connections {
                for t in &mut conn.tunnels {
                    if let Inbound::Reply { rtt } = t.prober.handle_v6(from, msg, arrived) {
                        t.rtt = Some(rtt);
                        conn.monitor.probe_reply(t.id, now);
                        break 'found6;
                    }
                }
            }
        }
        for conn in &mut self.connections {
            for t in &mut conn.tunnels {
                if t.child_spis.is_none() {
                    continue;
                }
                let h = conn.monitor.health(t.id);
                let heard = h.last_inbound.max(h.last_probe_reply);
                // An IPv6-inside tunnel carries no ICMPv4: ICMPv6 echo to AWS's inside IPv6 address.
                let sent = match (t.prober.remote_v6, icmp, icmp6) {
                    (Some(aws6), _, Some(icmp6)) => {
                        t.prober.poll_v6(now, heard).map(|m| icmp6.send(&m, aws6))
                    }
                    (None, Some(icmp), _) => t.prober.poll(now, heard).map(|p| icmp.send(&p, t.aws_inside)),
                    _ => None,
                };
                if let Some(Err(e)) = sent {
                    tracing::debug!(vpn = %conn.conn.id, tunnel = %t.id, error = %e, "probe send failed");
                }
            }
        }
    }

    /// Each BGP session's I/O, its events logged; the route table follows what was learned.
    fn bgp(&mut self, now: Instant) {
        let mut changed = false;
        for conn in &mut self.connections {
            if let Some(a) = conn.aws_bgp.as_mut() {
                a.poll(now);
            }
            let Some(bgp) = conn.bgp.as_mut() else {
                continue;
            };
            for t in &conn.tunnels {
                let up = t.child_spis.is_some();
                bgp.links[t.id.index()].poll(now, bgp.speaker.session_mut(t.id), up);
                for e in bgp.speaker.poll(t.id) {
                    use crate::bgp::session::SessionEvent;
                    match e {
                        SessionEvent::Established { peer_id, hold_time } => {
                            bgp.since[t.id.index()] = Some(now);
                            tracing::info!(
                                vpn = %conn.conn.id, tunnel = %t.id, %peer_id, hold_time,
                                "BGP session established"
                            );
                        }
                        SessionEvent::Down(why) => {
                            bgp.since[t.id.index()] = None;
                            bgp.last_error[t.id.index()] = Some(why.describe());
                            tracing::warn!(
                                vpn = %conn.conn.id, tunnel = %t.id, "BGP session down: {}", why.describe()
                            );
                        }
                        SessionEvent::Routes { announced, withdrawn } => tracing::info!(
                            vpn = %conn.conn.id, tunnel = %t.id,
                            announced = announced.len(), withdrawn = withdrawn.len(),
                            "BGP routes from AWS"
                        ),
                        SessionEvent::EndOfRib => {}
                    }
                }
            }
            if bgp.speaker.take_changed() {
                // The connection's IP version only: its tunnels carry nothing else.
                let v6 = bgp.speaker.config().inside_v6.is_some();
                bgp.learned = bgp
                    .speaker
                    .routes()
                    .into_iter()
                    .map(|r| r.prefix)
                    .filter(|p| matches!(p, IpNet::V6(_)) == v6)
                    .collect();
                changed = true;
            }
        }
        if changed {
            self.shared
                .set_routes(route_table(&self.connections, self.aws_role));
        }
    }

    /// Cease every BGP session (cgwd stopping, or its connection removed), written best effort.
    fn close_bgp(conn: &mut Connection) {
        if let Some(a) = conn.aws_bgp.as_mut() {
            a.close();
        }
        if let Some(bgp) = conn.bgp.as_mut() {
            for id in TunnelId::BOTH {
                let session = bgp.speaker.session_mut(id);
                session.close(crate::bgp::wire::code::CEASE_ADMIN_SHUTDOWN);
                bgp.links[id.index()].flush_and_close(session);
            }
        }
    }

    /// Every connection's failover decision into the data plane's usable flags, and the kernel
    /// routes of the connections with a tunnel up.
    fn failover(&mut self, now: Instant) {
        let mut changed_any = false;
        let mut ask = false;
        for conn in &mut self.connections {
            let (d, changed) = conn.monitor.tick(now);
            for id in conn.monitor.turned_suspect() {
                let Some(t) = conn.tunnels.iter().find(|t| t.id == id) else {
                    continue;
                };
                if let Some(h) = t.handle {
                    // The path went quiet: DPD now, not at its next interval. Through a NAT that
                    // changed cgwd's mapping this request is what moves AWS to the new one.
                    tracing::info!(vpn = %conn.conn.id, tunnel = %id, "no answer to probes: checking AWS's liveness (DPD)");
                    self.gateway.check_liveness(h, now);
                    ask = true;
                }
            }
            if changed {
                for t in &conn.tunnels {
                    let usable = match d.outbound {
                        Outbound::None => false,
                        Outbound::One(one) => one == t.id,
                        // Active-active: the data plane spreads flows over both tunnels by flow hash.
                        Outbound::Both => true,
                    };
                    self.shared.set_usable(t.key, usable);
                }
                tracing::info!(vpn = %conn.conn.id, outbound = ?d.outbound, verdicts = ?d.verdicts, "outbound tunnel changed");
                changed_any = true;
            }
            conn.any_up = d.verdicts.iter().any(|v| *v != Verdict::Down);
            if let Some(bgp) = conn.bgp.as_mut() {
                // Suspect already: failover moved outbound traffic off it, AWS's return traffic
                // follows through the more-specifics (a second, against BGP's 30 s hold timer).
                for (t, v) in conn.tunnels.iter().zip(d.verdicts) {
                    bgp.speaker
                        .set_dead(t.id, matches!(v, Verdict::Suspect | Verdict::Down));
                }
            }
            if let Some(r) = conn.aws_routes.as_mut() {
                // AWS withdraws a static route as soon as its tunnel is in doubt, so the other
                // endpoint's route (higher metric) carries the traffic.
                let serving =
                    d.verdicts.iter().zip(&conn.tunnels).any(|(v, t)| {
                        t.handle.is_some() && matches!(v, Verdict::Healthy | Verdict::Settling)
                    });
                r.sync(serving);
            }
        }
        if ask {
            self.apply_outputs(now);
        }
        if changed_any {
            self.last_status = None;
        }
        // The union of the VPC prefixes of connections with a tunnel up (none down to a black hole).
        let mut want: Vec<IpNet> = self
            .connections
            .iter()
            .filter(|c| c.any_up && !self.aws_role)
            .flat_map(|c| c.settings.routing.vpc_cidrs.iter().map(IpNet::trunc))
            .collect();
        // What BGP learned (IPv4; only Established sessions' routes).
        want.extend(
            self.connections
                .iter()
                .filter_map(|c| c.bgp.as_ref())
                .flat_map(|b| b.learned.iter().copied()),
        );
        want.sort_unstable();
        want.dedup();
        if self.routed.as_ref() != Some(&want) {
            self.router.set_cidrs(want.clone());
            match self.router.sync(!want.is_empty()) {
                Ok(_) => self.routed = Some(want),
                Err(e) => tracing::warn!(error = %e, "route update failed; retrying"),
            }
        }
    }

    fn publish_status(&mut self, now: Instant) {
        self.last_status = Some(now);
        let counters = self.shared.sas.counters();
        let routes: Vec<RouteStatus> = self
            .router
            .installed()
            .iter()
            .map(|r| RouteStatus {
                destination: r.dst,
                device: self.interface.clone(),
            })
            .collect();
        let mut snaps = Vec::with_capacity(self.connections.len());
        for conn in &self.connections {
            let outbound = conn.monitor.outbound();
            let decision = crate::failover::decide(
                &[
                    *conn.monitor.health(TunnelId::One),
                    *conn.monitor.health(TunnelId::Two),
                ],
                conn.monitor.policy,
                outbound.primary(),
                &conn.monitor.timers,
                now,
            );
            let tunnels = conn
                .tunnels
                .iter()
                .map(|t| {
                    let (p1, p2) = t.phase_states(&self.gateway);
                    let c = counters.tunnels.get(t.key.slot()).copied().unwrap_or_default();
                    let verdict = decision.verdicts[t.id.index()];
                    let liveness = match verdict {
                        Verdict::Down => "down",
                        Verdict::Suspect => "suspect",
                        Verdict::Settling => "settling",
                        Verdict::Healthy => "healthy",
                    };
                    let tc = conn.conn.tunnel(t.id);
                    TunnelStatus {
                        tunnel: t.id.number(),
                        ike_phase1_state: p1,
                        ike_phase2_state: p2,
                        local_outside: self.local,
                        aws_outside: tc.aws_outside,
                        inside: t.inside6.map_or(IpNet::V4(t.inside), IpNet::V6),
                        aws_inside: t.aws_inside6.map_or(IpAddr::V4(t.aws_inside), IpAddr::V6),
                        phase1_algorithms: suite_algorithms(&t.ike_suite),
                        phase2_algorithms: suite_algorithms(&t.esp_suite),
                        spi_in: t.child_spis.map(|(i, _)| format!("{i:08x}")),
                        spi_out: t.child_spis.map(|(_, o)| format!("{o:08x}")),
                        uptime_secs: t.child_since.map(|s| now.saturating_duration_since(s).as_secs()),
                        next_rekey_secs: t.next_rekey(&self.gateway, now),
                        traffic: Traffic {
                            packets_in: c.packets_in,
                            bytes_in: c.bytes_in,
                            packets_out: c.packets_out,
                            bytes_out: c.bytes_out,
                        },
                        drops: c
                            .drops
                            .iter()
                            .filter(|(_, n)| *n > 0)
                            .map(|(r, n)| (r.name().to_string(), n))
                            .collect(),
                        nat_t_detected: t.nat,
                        dpd_enabled: true,
                        liveness: liveness.into(),
                        probe_rtt_ms: t.rtt.map(|r| r.as_secs_f64() * 1000.0),
                        active: outbound.tunnel_for(0) == Some(t.id) || outbound == Outbound::Both,
                        reason: if verdict == Verdict::Suspect {
                            Some("no answer from AWS inside address (probe)".into())
                        } else if p2.is_up() {
                            None
                        } else {
                            t.last_reason.clone()
                        },
                        bgp: conn.bgp.as_ref().map(|b| b.status(t.id, now)),
                    }
                })
                .collect();
            let own: Vec<RouteStatus> = routes
                .iter()
                .filter(|r| {
                    conn.settings
                        .routing
                        .vpc_cidrs
                        .iter()
                        .any(|n| n.trunc() == r.destination)
                })
                .cloned()
                .collect();
            snaps.push(StatusSnapshot {
                cgwd_version: env!("CARGO_PKG_VERSION").into(),
                vpn_connection_id: conn.conn.id.clone(),
                interface: self.interface.clone(),
                failover_policy: conn.settings.failover.policy.name().into(),
                outbound: match outbound {
                    Outbound::None => "none".into(),
                    Outbound::One(t) => format!("tunnel-{}", t.number()),
                    Outbound::Both => "both".into(),
                },
                uptime_secs: now.saturating_duration_since(self.started).as_secs(),
                failovers: conn.monitor.switches,
                // The gateway's counters are the daemon's (one pair of sockets for all).
                ike_input: self.gateway.stats(),
                ike_half_open: self.gateway.half_open() as u64,
                tunnels,
                routes: own,
                bgp_routes: conn.bgp.as_ref().map(ConnectionBgp::routes).unwrap_or_default(),
                connections: Vec::new(),
                reload: None,
            });
        }
        for (conn, snap) in self.connections.iter_mut().zip(&snaps) {
            conn.observer.status(snap, now);
        }
        let mut top = snaps.first().cloned();
        if let Some(t) = top.as_mut() {
            t.routes = routes;
            t.reload = self.reload_status.clone();
            if snaps.len() > 1 {
                t.connections = snaps;
            }
        }
        if let Ok(mut s) = self.status.lock() {
            *s = top;
        }
    }

    /// Reload (SIGHUP, `cgwd reload`): the new configuration applied, or rejected whole with the
    /// running one kept; either way recorded for `cgwd status` / `cgwd reload`.
    fn reload(&mut self, now: Instant) {
        let generation = self.reload_status.as_ref().map_or(0, |r| r.generation) + 1;
        let result = self.try_reload(now);
        match &result {
            Ok(summary) => tracing::info!(%summary, "configuration reloaded"),
            Err(e) => tracing::error!(error = %e, "reload rejected; the running configuration is kept"),
        }
        let (ok, message) = match result {
            Ok(m) => (true, m),
            Err(m) => (false, m),
        };
        self.reload_status = Some(super::status::ReloadStatus {
            generation,
            ok,
            message,
        });
        self.publish_status(now);
    }

    /// The device a tunnel's inside address is on.
    fn inside_ifindex(&self, key: TunnelKey) -> u32 {
        self.device_ifindex
            .get(&key.slot())
            .copied()
            .unwrap_or(self.ifindex)
    }

    fn try_reload(&mut self, now: Instant) -> Result<String, String> {
        if self.aws_role {
            return Err("cgwd emulate-aws does not reload: restart it".into());
        }
        let loaded = crate::config::load_many(&self.config_paths, self.settings_path.as_deref())
            .map_err(|e| e.to_string())?;
        let settings_file = self
            .settings_path
            .as_ref()
            .map_or_else(|| "(no settings file)".to_string(), |p| p.display().to_string());
        if let Some(key) = super::reload::restart_only_change(&self.daemon_settings, &loaded.settings) {
            return Err(format!(
                "{settings_file}: {key} changed; only a restart applies it (restart cgwd, or put the old value back)"
            ));
        }
        let Some((first, _)) = loaded.connections.first() else {
            return Err("no VPN connection given".into());
        };
        // `local.address = "auto"` stays auto (a change is restart-only, above): the address the
        // watch follows is the one, not what resolving it a moment ahead of the watch would say.
        let local = match &self.local_watch {
            Some(_) if loaded.settings.local.address.is_none() => self.local,
            _ => crate::config::resolve_local_address(&loaded.settings, first.tunnel(TunnelId::One))
                .map_err(|e| format!("finding the local address: {e}"))?,
        };
        if local != self.local {
            return Err(format!(
                "the local address would change from {} to {local} (customer gateway address of {}); only a restart applies it",
                self.local, first.id
            ));
        }
        // Every tunnel must map to IKE before anything changes.
        for (conn, s) in &loaded.connections {
            for id in TunnelId::BOTH {
                super::ike_config_for(conn, s, id, local).map_err(|e| format!("{}: {e}", conn.id))?;
            }
        }
        let running: Vec<(&VpnConnection, &Settings)> =
            self.connections.iter().map(|c| (&c.conn, &c.settings)).collect();
        let plan = super::reload::plan(&running, &loaded.connections);
        if !self.device_ifindex.is_empty() && (!plan.added.is_empty() || !plan.removed.is_empty()) {
            return Err(
                "with bgp.speaker = \"external\" every tunnel's device is made at start: adding or removing a VPN connection needs a restart"
                    .into(),
            );
        }
        self.free_drained_slots();
        let mut used: Vec<u16> = self.connections.iter().map(|c| c.slot).collect();
        used.extend(self.draining.iter().map(|(s, _)| *s));
        let free = (crate::sa::MAX_TUNNELS / 2).saturating_sub(used.len() - plan.removed.len());
        if plan.added.len() > free {
            return Err(format!(
                "{} connections to add, room for {free} (one cgwd serves at most {}, counting removed ones still deleting their SAs)",
                plan.added.len(),
                crate::sa::MAX_TUNNELS / 2
            ));
        }
        for id in &plan.removed {
            self.remove_connection(id, now);
        }
        self.daemon_settings = loaded.settings;
        for (conn, s) in loaded.connections {
            if let Some(c) = self.connections.iter_mut().find(|c| c.conn.id == conn.id) {
                if c.conn != conn || c.settings != s {
                    c.monitor.policy = s.failover.policy;
                    if let Some(bgp) = c.bgp.as_mut() {
                        // New on-prem prefixes or preference: announced as differences.
                        let fresh = connection_bgp(&conn, &s).map(|b| b.speaker.config().clone());
                        if let Some(cfg) = fresh {
                            bgp.speaker
                                .reconfigure(cfg.onprem, cfg.preference, cfg.fast_failover);
                        }
                    }
                    let renewed = c.conn.certificate != conn.certificate;
                    c.conn = conn;
                    c.settings = s;
                    if renewed {
                        renew_certificate(c, &mut self.gateway, self.local);
                    }
                }
                continue;
            }
            let slot = self.free_slot();
            // The first IPv6-inside connection, added by a reload: its probes need the ICMPv6 socket.
            if self.icmp6.is_none() && conn.tunnels.iter().any(|t| t.is_inside_ipv6()) {
                let external = !self.device_ifindex.is_empty();
                match RawIcmp6::open().and_then(|s| {
                    if external {
                        Ok(s)
                    } else {
                        s.bind_to_device(&self.interface).map(|()| s)
                    }
                }) {
                    Ok(sock) => {
                        self.icmp6 = Some(sock);
                        self.setup.probes6 = true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "no raw ICMPv6 socket: IPv6-inside tunnels' liveness probes off, failover relies on DPD")
                    }
                }
            }
            let observer = Observer::start_shared(&conn, &s, true, &connections_registry(&self.connections))?;
            let c = new_connection(
                slot,
                conn,
                s,
                observer,
                &self.setup,
                &mut self.gateway,
                &self.shared,
                now,
            )?;
            for t in &c.tunnels {
                for net in t.nets() {
                    if let Err(e) = self.router.add_address(net, self.inside_ifindex(t.key)) {
                        tracing::warn!(error = %e, inside = %net, "adding an inside address");
                    }
                }
            }
            self.connections.push(c);
        }
        self.reconfigure.extend(plan.tunnels_changed.iter().cloned());
        self.rebuild_handles();
        self.shared
            .set_routes(route_table(&self.connections, self.aws_role));
        self.routed = None;
        self.timers(now);
        self.apply_outputs(now);
        Ok(plan.summary())
    }

    /// The lowest tunnel-key slot no connection uses and no removed one still drains.
    fn free_slot(&self) -> u16 {
        (0..u16::MAX)
            .find(|s| {
                !self.connections.iter().any(|c| c.slot == *s) && !self.draining.iter().any(|(d, _)| d == s)
            })
            .unwrap_or(u16::MAX)
    }

    /// Slots of removed connections whose tunnels have no IKE SA left.
    fn free_drained_slots(&mut self) {
        let gw = &self.gateway;
        self.draining
            .retain(|(_, handles)| handles.iter().any(|h| gw.tunnel(*h).sa.is_some()));
    }

    /// Gateway handle → (connection, tunnel) again, after connections were added or removed.
    fn rebuild_handles(&mut self) {
        self.by_handle.clear();
        for (ci, c) in self.connections.iter().enumerate() {
            for (i, t) in c.tunnels.iter().enumerate() {
                if let Some(h) = t.handle {
                    self.by_handle.insert(h, (ci, i));
                }
            }
        }
    }

    /// A reload removed the connection: its IKE SAs deleted (health records say cgwd did it), its
    /// SAs, inside addresses and routes gone, its tunnels out of the data plane.
    fn remove_connection(&mut self, id: &str, now: Instant) {
        let Some(ci) = self.connections.iter().position(|c| c.conn.id == id) else {
            return;
        };
        for i in 0..2 {
            if self.connections[ci].tunnels[i].ike_up(&self.gateway) {
                self.report(ci, i, &HealthEvent::IkeSaDeletedByCgwd, now);
            }
        }
        let mut c = self.connections.remove(ci);
        c.observer.closing = true;
        Self::close_bgp(&mut c);
        let mut handles = Vec::new();
        for t in &c.tunnels {
            if let Some(h) = t.handle {
                self.gateway.remove_tunnel(h, now);
                handles.push(h);
            }
            self.shared.set_usable(t.key, false);
            self.shared.set_peer(t.key, None);
            self.shared.set_aws_inside(t.key, None);
            self.shared.set_aws_inside_v6(t.key, None);
            self.shared.sas.remove_tunnel(t.key);
            for net in t.nets() {
                if let Err(e) = self.router.remove_address(net, self.inside_ifindex(t.key)) {
                    tracing::warn!(error = %e, inside = %net, "removing an inside address");
                }
            }
        }
        self.reconfigure.retain(|(v, _)| v != id);
        tracing::info!(vpn = %id, "VPN connection removed");
        self.draining.push((c.slot, handles));
        self.rebuild_handles();
        self.apply_outputs(now);
    }

    /// Re-establish the next changed tunnel once the previous one is back (or given up on).
    fn reload_step(&mut self, now: Instant) {
        if let Some((id, tunnel, since)) = &self.reconfiguring {
            let back = self
                .connections
                .iter()
                .find(|c| &c.conn.id == id)
                .is_none_or(|c| c.tunnels[tunnel.index()].child_since.is_some_and(|t| t >= *since));
            if !back && now.saturating_duration_since(*since) < RECONFIGURE_WAIT {
                return;
            }
            self.reconfiguring = None;
        }
        while let Some((id, tunnel)) = self.reconfigure.pop_front() {
            let Some(ci) = self.connections.iter().position(|c| c.conn.id == id) else {
                continue;
            };
            let c = &self.connections[ci];
            let mut cfg = match super::ike_config_for(&c.conn, &c.settings, tunnel, self.local) {
                Ok(cfg) => cfg,
                Err(e) => {
                    tracing::error!(vpn = %id, %tunnel, error = %e, "reconfiguring the tunnel");
                    continue;
                }
            };
            let key = c.tunnels[tunnel.index()].key;
            cfg.tunnel = key;
            let cfg = Arc::new(cfg);
            let tc = c.conn.tunnel(tunnel).clone();
            let interval = c.monitor.timers.probe_interval;
            let ifindex = self.inside_ifindex(key);
            let t = &mut self.connections[ci].tunnels[tunnel.index()];
            let inside = Ipv4Net::new(tc.customer_inside(), tc.inside.prefix_len()).unwrap_or(tc.inside);
            let inside6 = inside_v6(&tc, false);
            if inside != t.inside || inside6 != t.inside6 {
                for net in t.nets() {
                    if let Err(e) = self.router.remove_address(net, ifindex) {
                        tracing::warn!(error = %e, inside = %net, "removing an inside address");
                    }
                }
                use crate::crypto::Random;
                t.inside = inside;
                t.aws_inside = tc.aws_inside();
                t.inside6 = inside6;
                t.aws_inside6 = inside6.and(tc.aws_inside_ipv6());
                for net in t.nets() {
                    if let Err(e) = self.router.add_address(net, ifindex) {
                        tracing::warn!(error = %e, inside = %net, "adding an inside address");
                    }
                }
                self.shared.set_aws_inside_v6(key, t.aws_inside6);
                t.prober = Prober::new(
                    tc.customer_inside(),
                    tc.aws_inside(),
                    OsRandom.next_u32() as u16,
                    interval,
                )
                .with_v6(t.aws_inside6);
                self.shared.set_aws_inside(key, Some(tc.aws_inside()));
            }
            t.cfg = cfg.clone();
            if let Some(h) = t.handle {
                self.gateway.reconfigure(
                    h,
                    TunnelSpec {
                        cfg,
                        initiate: true,
                        reinitiate: true,
                    },
                    now,
                );
            }
            self.shared
                .set_routes(route_table(&self.connections, self.aws_role));
            self.reconfiguring = Some((id, tunnel, now));
            self.apply_outputs(now);
            break;
        }
    }

    /// DELETE every IKE SA (sent, not awaited beyond a short grace).
    fn shutdown(&mut self) {
        let now = clock::now();
        for c in &mut self.connections {
            Self::close_bgp(c);
        }
        for c in 0..self.connections.len() {
            self.connections[c].observer.closing = true;
            for i in 0..2 {
                if self.connections[c].tunnels[i].ike_up(&self.gateway) {
                    self.report(c, i, &HealthEvent::IkeSaDeletedByCgwd, now);
                }
            }
        }
        self.gateway.close_all(now);
        self.apply_outputs(now);
        // A DELETE queued behind a request in flight leaves when that request is answered, or after
        // `CLOSE_WAIT` without an answer (the IKE SA's timer): wait for that too, then the grace.
        let (_, queued) = self.gateway.deleting();
        let deadline = now
            + SHUTDOWN_GRACE
            + if queued {
                crate::ike::CLOSE_WAIT
            } else {
                Duration::ZERO
            };
        loop {
            let now = clock::now();
            if now >= deadline || !self.gateway.deleting().0 {
                break;
            }
            self.timers(now);
            let wait = self
                .gateway
                .poll_timeout()
                .map_or(TICK, |t| t.saturating_duration_since(now).min(TICK))
                .min(deadline.saturating_duration_since(now));
            if let Ok(i) = self.input.recv_timeout(wait) {
                self.ike_datagram(clock::now(), i.from, i.to, &i.data);
            }
        }
        for c in &self.connections {
            for t in &c.tunnels {
                self.shared.set_usable(t.key, false);
            }
        }
    }
}

/// `local.address = "auto"`: following the customer gateway's outside address.
impl Daemon {
    /// What the address watch found since the last tick, acted on.
    fn follow_local_address(&mut self, now: Instant) {
        let Some(found) = self.local_watch.as_ref().and_then(|w| w.latest()) else {
            return;
        };
        let old = self.local;
        let lost = self.local_watch.as_ref().is_some_and(|w| w.lost);
        let family = |a: IpAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
        let new = match found {
            // The family of AWS's outside addresses (the one cgwd started with) or none.
            Some(a) if a.is_ipv4() == old.is_ipv4() => a,
            Some(a) => {
                if !lost {
                    tracing::warn!(
                        %a,
                        "the only outside address toward AWS is {}; AWS's outside addresses are {}",
                        family(a),
                        family(old)
                    );
                }
                return self.local_address_lost(old, now);
            }
            None => return self.local_address_lost(old, now),
        };
        if new == self.local && !lost {
            return;
        }
        // The sockets move first, so what the gateway sends next (a one-shot DELETE, the new
        // IKE_SA_INITs) leaves from the new address. Still bound there after a loss: kept.
        if new != self.local {
            let sockets = [(self.udp500.clone(), 500), (self.udp4500.clone(), 4500)];
            for (sock, port) in sockets {
                // One moved already by an attempt whose other half failed.
                if sock.local_addr().is_ok_and(|a| a.ip() == new) {
                    continue;
                }
                if let Err(e) = sock.rebind(SocketAddr::new(new, port)) {
                    tracing::warn!(error = %e, "moving UDP {port} to {new} failed; the tunnels wait, retried within 5 s");
                    return self.local_address_lost(old, now);
                }
            }
        }
        if new == self.local {
            tracing::warn!(
                "customer gateway outside address {new} usable again; re-establishing both tunnels"
            );
        } else {
            tracing::warn!(
                "customer gateway outside address changed from {old} to {new}; re-establishing both tunnels"
            );
        }
        self.local = new;
        self.setup.local_ip = new;
        if let Some(w) = self.local_watch.as_mut() {
            w.lost = false;
        }
        self.local_changed(Some(old), Some(new), now);
    }

    /// No outside address reaches AWS: said once, both tunnels dropped until one appears.
    fn local_address_lost(&mut self, old: IpAddr, now: Instant) {
        let Some(w) = self.local_watch.as_mut().filter(|w| !w.lost) else {
            return;
        };
        w.lost = true;
        tracing::warn!(
            "customer gateway outside address {old} is gone and no other address reaches AWS; both tunnels are down until one appears"
        );
        self.local_changed(Some(old), None, now);
    }

    /// Health records, the data plane's peers forgotten, and the gateway told (it drops every IKE
    /// and Child SA and, with an address, initiates from it at once).
    fn local_changed(&mut self, from: Option<IpAddr>, to: Option<IpAddr>, now: Instant) {
        let ev = HealthEvent::LocalAddressChanged { from, to };
        let reason = match to {
            Some(to) => format!("the customer gateway outside address changed to {to}"),
            None => "no customer gateway outside address reaches AWS".to_string(),
        };
        for c in 0..self.connections.len() {
            for i in 0..2 {
                let t = &mut self.connections[c].tunnels[i];
                if t.handle.is_none() {
                    continue;
                }
                if let Some(a) = to {
                    let mut cfg = (*t.cfg).clone();
                    cfg.local_addr = a;
                    t.cfg = Arc::new(cfg);
                }
                self.shared.set_peer(t.key, None);
            }
        }
        self.gateway.set_local_address(to, now);
        self.apply_outputs(now);
        // After the SAs are gone, so the records show the tunnels down; the new IKE SAs' own
        // records follow.
        for c in 0..self.connections.len() {
            for i in 0..2 {
                if self.connections[c].tunnels[i].handle.is_some() {
                    self.connections[c].tunnels[i].last_reason = Some(reason.clone());
                    self.report(c, i, &ev, now);
                }
            }
        }
        self.publish_status(now);
    }
}
