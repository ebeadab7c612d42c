//! `cgwd esp-static --config FILE` (hidden): the data plane with manually keyed SAs, no IKE.
//!
//! For the namespace tests and the throughput benchmark: two gateways with mirrored keys carry
//! traffic exactly as they would after IKE, so the data plane is tested and measured on its own.
//!
//! ```toml
//! tun = "cgwd0"
//! mtu = 1436                       # TUN MTU
//! tunnel_mtu = 1422                # optional: default min(mtu, what fits 1500 B outside)
//! inside_address = "169.254.10.2/30"
//! peer_inside = "169.254.10.1"     # optional: the peer's inside address
//! local = "192.0.2.1:4500"
//! peer = "192.0.2.2:4500"
//! encryption = "AES128-GCM-16"     # AWS names: AES128, AES256, AES128-GCM-16, AES256-GCM-16
//! integrity = "SHA2-256"           # CBC only
//! spi_out = 0x1001
//! spi_in = 0x2002
//! key_out = "hex"                  # AES key (+ 4-octet salt for GCM)
//! key_in = "hex"
//! integrity_key_out = "hex"        # CBC only
//! integrity_key_in = "hex"
//! routes = ["10.2.0.0/24"]
//! inside_address6 = "fd00:10::2/126"  # optional: IPv6 inside too (the SA then carries IPv6)
//! peer_inside6 = "fd00:10::1"      # optional
//! local_ts6 = "fd00:1::/64"        # optional IPv6 selectors (default ::/0 once IPv6 is on);
//! remote_ts6 = "fd00:2::/64"       #   IPv6 routes are the caller's (`ip -6 route ... dev cgwd0`)
//! tcp_mss = 1379                   # optional
//! clear_df_bit = false
//! offload = true
//!
//! [tunnel2]                        # optional second tunnel (same algorithms), as AWS gives two
//! inside_address = "169.254.11.2/30"
//! peer_inside = "169.254.11.1"
//! peer = "192.0.2.3:4500"
//! spi_out = 0x3003
//! spi_in = 0x4004
//! key_out = "hex"
//! key_in = "hex"
//! ```
//!
//! Tunnel 1 starts active; SIGUSR1 switches the active tunnel (what the failover manager will do),
//! so tests can exercise tunnel selection without IKE.
//!
//! # Sequence numbers across runs
//!
//! With AES-GCM the ESP IV is the sequence number, so a run that started at 1 again with the key
//! of an earlier run would repeat nonces under that key, which gives away the authentication key
//! and the XOR of plaintexts. IKE avoids it with new keys per SA; here the keys are the file's, so
//! each run continues where earlier ones stopped: `<config>.seq` (next to the TOML file) records,
//! per outbound key (by a SHA-256 fingerprint), the highest sequence number reserved. Numbers are
//! reserved [`SEQ_BLOCK`] at a time, written (fsync, rename) before any of them is used, so a crash
//! skips at most one block; if the file cannot be written the run refuses to start, and a running
//! one stops sending at its reservation rather than use unrecorded numbers. A key whose 2^32
//! numbers are used up must be replaced. With AES-GCM every key of the file must also differ from
//! the others (a key used both ways would meet the peer's nonces). Deleting the `.seq` file is
//! safe only together with new keys. (Random per-run keys would need an exchange with the peer,
//! which is what IKE is for.)

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use super::{Dataplane, DataplaneConfig, KEEPALIVE_INTERVAL, POLL_INTERVAL, Shared};
use crate::esp::SaTable;
use crate::esp::sa::{OutboundSa, SEQ_HARD_LIMIT};
use crate::io::route;
use crate::io::tun::{Tun, TunConfig};
use crate::io::udp::UdpSocket;
use crate::sa::{ChildSa, EspKeys, EspSpi, Ipv6Range, TrafficSelector, TunnelId, TunnelKey};
use crate::secret::Secret;
use crate::suite::{Encryption, Integrity};

/// Command-line arguments of the hidden subcommand.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The manual-SA TOML file.
    #[arg(long)]
    pub config: PathBuf,
}

impl Args {
    pub fn run(self) -> ExitCode {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
            )
            .try_init();
        match run(&self.config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cgwd esp-static: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    pub tun: String,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    pub tunnel_mtu: Option<u16>,
    pub inside_address: String,
    pub peer_inside: Option<Ipv4Addr>,
    /// Outside addresses, IPv4 or IPv6 (both of one family).
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub encryption: String,
    pub integrity: Option<String>,
    pub spi_out: u32,
    pub spi_in: u32,
    pub key_out: String,
    pub key_in: String,
    #[serde(default)]
    pub integrity_key_out: String,
    #[serde(default)]
    pub integrity_key_in: String,
    #[serde(default)]
    pub routes: Vec<String>,
    pub inside_address6: Option<String>,
    pub peer_inside6: Option<Ipv6Addr>,
    pub local_ts6: Option<String>,
    pub remote_ts6: Option<String>,
    pub tcp_mss: Option<u16>,
    #[serde(default)]
    pub clear_df_bit: bool,
    #[serde(default = "default_true")]
    pub offload: bool,
    #[serde(default = "default_replay")]
    pub replay_window: u32,
    /// Longest on-CPU wait for the answer to a lone packet, µs (`dataplane::answer_wait`); 0 = off.
    pub answer_wait_us: Option<u32>,
    pub tunnel2: Option<SecondTunnel>,
}

/// The second tunnel's own endpoint, addresses and keys.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondTunnel {
    pub inside_address: String,
    pub peer_inside: Option<Ipv4Addr>,
    pub peer: SocketAddr,
    pub spi_out: u32,
    pub spi_in: u32,
    pub key_out: String,
    pub key_in: String,
    #[serde(default)]
    pub integrity_key_out: String,
    #[serde(default)]
    pub integrity_key_in: String,
}

fn default_mtu() -> u16 {
    1436
}
fn default_true() -> bool {
    true
}
fn default_replay() -> u32 {
    1024
}

/// Hex to bytes (a dozen lines; not worth a dependency).
fn hex(s: &str) -> anyhow::Result<Secret> {
    let s = s.trim().trim_start_matches("0x");
    if !s.len().is_multiple_of(2) {
        bail!("hex key has an odd number of digits");
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .context("key is not hex")?;
    Ok(Secret::new(bytes))
}

/// `ADDRESS/PREFIX` for IPv4 (`max` 32) or IPv6 (`max` 128).
fn parse_prefix<A: std::str::FromStr>(s: &str, max: u8) -> anyhow::Result<(A, u8)> {
    let (a, n) = s.split_once('/').context("expected ADDRESS/PREFIX")?;
    let n: u8 = n.parse().context("bad prefix length")?;
    if n > max {
        bail!("prefix length {n} > {max}");
    }
    let addr = a.parse().map_err(|_| anyhow::anyhow!("bad address {a:?}"))?;
    Ok((addr, n))
}

/// `x:y::z/n`.
fn prefix6(s: &str) -> anyhow::Result<(Ipv6Addr, u8)> {
    parse_prefix(s, 128)
}

/// `a.b.c.d/n`.
fn prefix(s: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    parse_prefix(s, 32)
}

impl StaticConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Our and the peer's selectors: IPv4 any, plus IPv6 when any IPv6 setting is present.
    fn selectors(&self) -> anyhow::Result<(TrafficSelector, TrafficSelector)> {
        let ipv6 = self.inside_address6.is_some() || self.local_ts6.is_some() || self.remote_ts6.is_some();
        if !ipv6 {
            return Ok((TrafficSelector::ANY, TrafficSelector::ANY));
        }
        let range = |p: &Option<String>| -> anyhow::Result<Ipv6Range> {
            match p {
                Some(p) => prefix6(p).map(|(a, n)| Ipv6Range::prefix(a, n)),
                None => Ok(Ipv6Range::ALL),
            }
        };
        let with = |r| TrafficSelector {
            v6: Some(r),
            ..TrafficSelector::ANY
        };
        Ok((with(range(&self.local_ts6)?), with(range(&self.remote_ts6)?)))
    }

    /// The Child SA of tunnel 1.
    pub fn child_sa(&self) -> anyhow::Result<ChildSa> {
        self.child_sa_with(
            TunnelId::One.into(),
            self.peer,
            (self.spi_out, self.spi_in),
            (&self.key_out, &self.key_in),
            (&self.integrity_key_out, &self.integrity_key_in),
        )
    }

    /// The Child SA of tunnel 2, if configured.
    pub fn child_sa2(&self) -> anyhow::Result<Option<ChildSa>> {
        let Some(t) = &self.tunnel2 else {
            return Ok(None);
        };
        self.child_sa_with(
            TunnelId::Two.into(),
            t.peer,
            (t.spi_out, t.spi_in),
            (&t.key_out, &t.key_in),
            (&t.integrity_key_out, &t.integrity_key_in),
        )
        .map(Some)
    }

    fn child_sa_with(
        &self,
        tunnel: TunnelKey,
        peer: SocketAddr,
        (spi_out, spi_in): (u32, u32),
        (key_out, key_in): (&str, &str),
        (ikey_out, ikey_in): (&str, &str),
    ) -> anyhow::Result<ChildSa> {
        let encryption = Encryption::ALL
            .into_iter()
            .find(|e| e.aws_name().eq_ignore_ascii_case(&self.encryption))
            .with_context(|| format!("unknown encryption {:?}", self.encryption))?;
        let integrity = match &self.integrity {
            Some(name) => Some(
                Integrity::ALL
                    .into_iter()
                    .find(|i| i.aws_name().eq_ignore_ascii_case(name))
                    .with_context(|| format!("unknown integrity {name:?}"))?,
            ),
            None => None,
        };
        let keys = |spi: u32, key: &str, ikey: &str| -> anyhow::Result<EspKeys> {
            Ok(EspKeys {
                spi: EspSpi(spi),
                encryption,
                integrity: if encryption.is_aead() { None } else { integrity },
                encryption_key: hex(key)?,
                integrity_key: hex(ikey)?,
            })
        };
        let (local_ts, remote_ts) = self.selectors()?;
        Ok(ChildSa {
            tunnel,
            inbound: keys(spi_in, key_in, ikey_in)?,
            outbound: keys(spi_out, key_out, ikey_out)?,
            local_ts,
            remote_ts,
            pfs: None,
            local: self.local,
            remote: peer,
            replay_window: self.replay_window,
        })
    }
}

/// Sequence numbers reserved per write of the state file: one fsync per 2^20 packets, and at most
/// that many numbers skipped when a run ends.
pub const SEQ_BLOCK: u64 = 1 << 20;

/// The sequence state file of the configuration `config`: `<config>.seq`.
pub fn seq_state_path(config: &Path) -> PathBuf {
    let mut p = config.as_os_str().to_owned();
    p.push(".seq");
    p.into()
}

/// A short name for an outbound key in the state file (the file sits next to the keys anyway).
fn key_fingerprint(key: &Secret) -> String {
    let mut data = zeroize::Zeroizing::new(b"cgwd esp-static sequence state v1\0".to_vec());
    data.extend_from_slice(key.expose());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &data);
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `<config>.seq`: per outbound key fingerprint, the highest sequence number reserved so far.
#[derive(Debug)]
struct SeqState {
    path: PathBuf,
    reserved: BTreeMap<String, u64>,
}

impl SeqState {
    fn load(path: PathBuf) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut reserved = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = line
                .split_once(' ')
                .and_then(|(fp, seq)| Some((fp.to_string(), seq.trim().parse::<u64>().ok()?)));
            let Some((fp, seq)) = entry else {
                bail!(
                    "{}:{}: expected `<key fingerprint> <sequence number>`; this file records the ESP \
                     sequence numbers earlier runs used: delete it only together with new keys",
                    path.display(),
                    n + 1
                );
            };
            reserved.insert(fp, seq);
        }
        Ok(SeqState { path, reserved })
    }

    /// Record `through` as reserved for the key `fp` (an entry never goes down), durably, before any
    /// of it is used: a new file (never through a link left at its name), fsync, rename over the old
    /// one, fsync of the directory.
    fn reserve(&mut self, fp: &str, through: u64) -> std::io::Result<()> {
        let entry = self.reserved.entry(fp.to_string()).or_insert(0);
        *entry = through.max(*entry);
        let mut text = String::from(
            "# cgwd esp-static: per outbound key (fingerprint), the highest ESP sequence number reserved.\n\
             # Delete only together with new keys: starting at 1 again with an AES-GCM key repeats nonces.\n",
        );
        for (fp, seq) in &self.reserved {
            text.push_str(&format!("{fp} {seq}\n"));
        }
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
    }
}

/// The outbound SAs' sequence numbers, reserved in the state file ahead of use.
#[derive(Debug)]
struct SeqReservations {
    state: SeqState,
    sas: Vec<(String, Arc<OutboundSa>)>,
}

impl SeqReservations {
    /// Each SA resumes after what earlier runs reserved for its key, with its first block recorded.
    fn start(mut state: SeqState, sas: Vec<(String, Arc<OutboundSa>)>) -> anyhow::Result<Self> {
        for (fp, sa) in &sas {
            let last = state.reserved.get(fp).copied().unwrap_or(0);
            if last >= SEQ_HARD_LIMIT {
                bail!(
                    "the key of outbound SPI {:#x} has sent all 2^32 ESP sequence numbers over earlier runs \
                     ({}): configure a new key_out (and the peer's key_in)",
                    sa.spi().0,
                    state.path.display()
                );
            }
            let through = (last + SEQ_BLOCK).min(SEQ_HARD_LIMIT);
            state.reserve(fp, through).with_context(|| {
                format!(
                    "recording ESP sequence numbers in {}: without it a restart would reuse AES-GCM \
                     nonces, so esp-static does not run; make the config file's directory writable",
                    state.path.display()
                )
            })?;
            sa.resume_after(last);
            sa.set_seq_limit(through);
        }
        Ok(SeqReservations { state, sas })
    }

    /// Reserve the next block for every SA past half of its current one. On a write error the SA
    /// keeps its limit: it stops sending there rather than use numbers not recorded.
    fn tick(&mut self) -> std::io::Result<()> {
        for (fp, sa) in &self.sas {
            let limit = sa.seq_limit();
            if limit < SEQ_HARD_LIMIT && sa.last_seq() + SEQ_BLOCK / 2 >= limit {
                let through = (limit + SEQ_BLOCK).min(SEQ_HARD_LIMIT);
                self.state.reserve(fp, through)?;
                sa.set_seq_limit(through);
            }
        }
        Ok(())
    }
}

/// The SA table for `children`, each outbound SA continuing after the sequence numbers earlier
/// runs of `config` reserved (see the module doc), and what keeps reserving them.
fn install_sas(children: &[&ChildSa], config: &Path) -> anyhow::Result<(Arc<SaTable>, SeqReservations)> {
    let aead_keys: Vec<(&Secret, String)> = children
        .iter()
        .filter(|c| c.outbound.encryption.is_aead())
        .flat_map(|c| {
            let n = c.tunnel.id.number();
            [
                (&c.outbound.encryption_key, format!("key_out of tunnel {n}")),
                (&c.inbound.encryption_key, format!("key_in of tunnel {n}")),
            ]
        })
        .collect();
    for (i, (key, name)) in aead_keys.iter().enumerate() {
        if let Some((_, other)) = aead_keys[..i].iter().find(|(k, _)| k == key) {
            bail!(
                "{}: {other} and {name} are the same key; with AES-GCM both would send the same nonces: \
                 give each its own key",
                config.display()
            );
        }
    }
    let sas = Arc::new(SaTable::new());
    for child in children {
        sas.install(child)
            .with_context(|| format!("installing tunnel {}'s manual SA", child.tunnel.id.number()))?;
    }
    let snapshot = sas.snapshot();
    let outbound = children
        .iter()
        .filter_map(|c| {
            Some((
                key_fingerprint(&c.outbound.encryption_key),
                snapshot.outbound(c.tunnel)?.clone(),
            ))
        })
        .collect();
    let reservations = SeqReservations::start(SeqState::load(seq_state_path(config))?, outbound)?;
    Ok((sas, reservations))
}

fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = StaticConfig::load(path)?;
    let child = cfg.child_sa()?;
    let child2 = cfg.child_sa2()?;
    let (inside, inside_prefix) = prefix(&cfg.inside_address)?;
    let mut addresses = vec![(inside, inside_prefix)];
    if let Some(t) = &cfg.tunnel2 {
        addresses.push(prefix(&t.inside_address)?);
    }
    let routes = cfg
        .routes
        .iter()
        .map(|r| prefix(r))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }
    let switch = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&switch))
        .context("installing signal handler")?;

    let children: Vec<&ChildSa> = std::iter::once(&child).chain(child2.as_ref()).collect();
    let (sas, mut reservations) = install_sas(&children, path)?;
    let shared = Arc::new(Shared::new(sas));
    let [one, two] = TunnelKey::both(0);
    // Everything goes to the active tunnel (tunnel 1; SIGUSR1 switches); inside addresses pinned.
    let mut routes_table = super::RouteTable::builder();
    shared.set_peer(one, Some(cfg.peer));
    shared.set_aws_inside(one, cfg.peer_inside);
    routes_table
        .route("0.0.0.0/0".parse()?, one)
        .route("::/0".parse()?, one);
    if let Some(a) = cfg.peer_inside {
        routes_table.pin(a.into(), one);
    }
    if let Some(a) = cfg.peer_inside6 {
        routes_table.pin(a.into(), one);
    }
    if let Some(t) = &cfg.tunnel2 {
        shared.set_peer(two, Some(t.peer));
        shared.set_aws_inside(two, t.peer_inside);
        routes_table
            .route("0.0.0.0/0".parse()?, two)
            .route("::/0".parse()?, two);
        if let Some(a) = t.peer_inside {
            routes_table.pin(a.into(), two);
        }
    }
    shared.set_routes(routes_table.build());
    shared.set_usable(one, true);

    let udp = Arc::new(
        UdpSocket::bind(cfg.local, POLL_INTERVAL).with_context(|| format!("binding {}", cfg.local))?,
    );
    let tun = Arc::new(
        Tun::create(&TunConfig {
            name: cfg.tun.clone(),
            mtu: cfg.mtu,
            addresses,
            offload: cfg.offload,
        })
        .with_context(|| format!("creating TUN {}", cfg.tun))?,
    );
    if let Some(a) = &cfg.inside_address6 {
        let (addr, len) = prefix6(a)?;
        tun.add_address_v6(addr, len)
            .with_context(|| format!("IPv6 address {a} on {}", cfg.tun))?;
    }
    shared.set_aws_inside_v6(one, cfg.peer_inside6);
    let if_index = tun.if_index().context("TUN interface index")?;
    for &(dst, len) in &routes {
        route::add_route(dst, len, if_index).with_context(|| format!("route {dst}/{len}"))?;
    }

    let config = DataplaneConfig {
        // Default: the TUN MTU, but never more than what fits a 1500-byte outside packet (an IPv6
        // outside header is 20 octets longer than IPv4's).
        tunnel_mtu: cfg.tunnel_mtu.unwrap_or(cfg.mtu.min(super::inner_mtu(
            if cfg.peer.is_ipv6() { 1480 } else { 1500 },
            child.outbound.encryption,
            child.outbound.integrity,
        ))),
        tcp_mss: cfg.tcp_mss,
        clear_df_bit: cfg.clear_df_bit,
        answer_wait: super::answer_wait::budget_from_micros(cfg.answer_wait_us),
        // Not our own address: the kernel drops packets arriving with a local source as martians.
        // The ICMP comes "from the tunnel", i.e. from the peer's inside address (the /30's other host).
        icmp_source: cfg
            .peer_inside
            .unwrap_or(Ipv4Addr::from(u32::from(inside) ^ 0b11)),
        keepalive: Some(KEEPALIVE_INTERVAL),
    };
    let dataplane = Dataplane::spawn(config, tun.clone(), udp.clone(), shared.clone(), None)
        .context("starting workers")?;
    tracing::info!(
        tun = %cfg.tun,
        offload = tun.offload(),
        udp_gso = udp.gso_enabled(),
        udp_gro = udp.gro_enabled(),
        "esp-static data plane running"
    );
    println!("ready");

    let mut reserve_log = crate::io::clock::RateLimit::new(Duration::from_secs(10));
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = reservations.tick()
            && reserve_log.check(crate::io::clock::now()).is_some()
        {
            tracing::error!(
                error = %e,
                file = %reservations.state.path.display(),
                "cannot record ESP sequence numbers: sending stops at the last recorded one"
            );
        }
        if switch.swap(false, Ordering::Relaxed) && child2.is_some() {
            let next = if shared.usable(one) { two } else { one };
            shared.set_usable(next, true);
            shared.set_usable(if next == one { two } else { one }, false);
            tracing::warn!(active = %next, "active tunnel switched");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    dataplane.stop();
    let stats: Vec<String> = shared
        .stats
        .snapshot()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!("cgwd esp-static: stopped; {}", stats.join(" "));
    let u = &udp.stats;
    eprintln!(
        "cgwd esp-static: udp datagrams_sent={} send_calls={} datagrams_received={} recv_calls={} gso={}",
        u.sent_datagrams.load(Ordering::Relaxed),
        u.send_calls.load(Ordering::Relaxed),
        u.received_datagrams.load(Ordering::Relaxed),
        u.recv_calls.load(Ordering::Relaxed),
        udp.gso_enabled()
    );
    let counters = shared.sas.counters();
    let drops: Vec<String> = counters.tunnels[0]
        .drops
        .iter()
        .chain(counters.unattributed.iter())
        .filter(|(_, n)| *n != 0)
        .map(|(r, n)| format!("{}={n}", r.name()))
        .collect();
    if !drops.is_empty() {
        eprintln!("cgwd esp-static: ESP drops {}", drops.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
tun = "cgwdt0"
inside_address = "169.254.10.2/30"
local = "192.0.2.1:4500"
peer = "192.0.2.2:4500"
encryption = "AES256"
integrity = "SHA2-256"
spi_out = 0x1001
spi_in = 0x2002
key_out = "000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
key_in = "0f0e0d0c0b0a090807060504030201000f0e0d0c0b0a09080706050403020100"
integrity_key_out = "1111111111111111111111111111111111111111111111111111111111111111"
integrity_key_in = "2222222222222222222222222222222222222222222222222222222222222222"
routes = ["10.2.0.0/24"]
"#;

    #[test]
    fn sample_parses_into_a_child_sa() {
        let cfg: StaticConfig = toml::from_str(SAMPLE).unwrap();
        let child = cfg.child_sa().unwrap();
        assert_eq!(child.outbound.spi, EspSpi(0x1001));
        assert_eq!(child.inbound.encryption, Encryption::Aes256Cbc);
        assert_eq!(child.inbound.integrity, Some(Integrity::Sha2_256));
        assert_eq!(child.outbound.encryption_key.len(), 32);
        assert_eq!(cfg.mtu, 1436);
        assert_eq!(prefix(&cfg.routes[0]).unwrap(), (Ipv4Addr::new(10, 2, 0, 0), 24));
        // The keys are accepted by the SA table.
        SaTable::new().install(&child).unwrap();
        assert!(cfg.child_sa2().unwrap().is_none());
    }

    /// IPv6 outside endpoints (AWS `OutsideIpAddressType` Ipv6) parse and reach the Child SA.
    #[test]
    fn ipv6_endpoints_parse() {
        let text = SAMPLE
            .replace("\"192.0.2.1:4500\"", "\"[2001:db8:100::10]:4500\"")
            .replace("\"192.0.2.2:4500\"", "\"[2001:db8:ffaa:1::21]:4500\"");
        let cfg: StaticConfig = toml::from_str(&text).unwrap();
        let child = cfg.child_sa().unwrap();
        assert_eq!(child.local, "[2001:db8:100::10]:4500".parse().unwrap());
        assert_eq!(child.remote, "[2001:db8:ffaa:1::21]:4500".parse().unwrap());
    }

    #[test]
    fn second_tunnel_parses_into_tunnel_two() {
        let text = format!(
            "{SAMPLE}\n[tunnel2]\ninside_address = \"169.254.11.2/30\"\npeer = \"192.0.2.3:4500\"\n\
             spi_out = 0x3003\nspi_in = 0x4004\nkey_out = \"{k}\"\nkey_in = \"{k}\"\n\
             integrity_key_out = \"{k}\"\nintegrity_key_in = \"{k}\"\n",
            k = "33".repeat(32)
        );
        let cfg: StaticConfig = toml::from_str(&text).unwrap();
        let two = cfg.child_sa2().unwrap().unwrap();
        assert_eq!(two.tunnel, TunnelKey::from(TunnelId::Two));
        assert_eq!(two.inbound.spi, EspSpi(0x4004));
        assert_eq!(two.remote, "192.0.2.3:4500".parse().unwrap());
        let table = SaTable::new();
        table.install(&cfg.child_sa().unwrap()).unwrap();
        table.install(&two).unwrap();
    }

    #[test]
    fn ipv6_settings_add_ipv6_selectors() {
        let cfg: StaticConfig = toml::from_str(SAMPLE).unwrap();
        assert_eq!(cfg.child_sa().unwrap().local_ts, TrafficSelector::ANY);
        let text = format!("{SAMPLE}inside_address6 = \"fd00:10::2/126\"\nremote_ts6 = \"fd00:2::/64\"\n");
        let cfg: StaticConfig = toml::from_str(&text).unwrap();
        let child = cfg.child_sa().unwrap();
        assert_eq!(child.local_ts, TrafficSelector::ANY_DUAL);
        let remote = child.remote_ts.v6.unwrap();
        assert!(remote.contains("fd00:2::9".parse().unwrap()));
        assert!(!remote.contains("fd00:3::9".parse().unwrap()));
        assert!(child.remote_ts.contains("10.9.9.9".parse().unwrap()));
        assert!(prefix6("fd00::/129").is_err());
        assert!(prefix6("10.0.0.0/8").is_err());
    }

    /// A fresh directory for one test's config and state files, removed by the test.
    fn test_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cgwd-static-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn gcm_config() -> StaticConfig {
        let mut cfg: StaticConfig = toml::from_str(SAMPLE).unwrap();
        cfg.encryption = "AES128-GCM-16".into();
        cfg.integrity = None;
        (cfg.integrity_key_out, cfg.integrity_key_in) = (String::new(), String::new());
        // AES-128 key and 4-octet salt.
        (cfg.key_out, cfg.key_in) = ("a1".repeat(20), "b2".repeat(20));
        cfg
    }

    /// A test directory, the config path in it and tunnel 1's AES-GCM Child SA.
    fn setup(tag: &str) -> (PathBuf, PathBuf, ChildSa) {
        let dir = test_dir(tag);
        let config = dir.join("gw.toml");
        (dir, config, gcm_config().child_sa().unwrap())
    }

    /// Seal one small IPv4 packet on tunnel 1: (sequence number, the 8-octet IV on the wire).
    fn seal_one(sas: &SaTable) -> Result<(u32, Vec<u8>), crate::esp::sa::SealError> {
        let sa = sas.snapshot().outbound(TunnelId::One.into()).unwrap().clone();
        let mut buf = vec![0u8; 256];
        let inner = 64..104;
        buf[inner.start] = 0x45;
        let sealed = sa.seal(&mut buf, inner)?;
        Ok((sealed.seq, buf[sealed.range.start + 8..][..8].to_vec()))
    }

    #[test]
    fn a_second_run_with_the_same_keys_never_repeats_a_gcm_nonce() {
        let (dir, config, child) = setup("rerun");
        let (sas, _reservations) = install_sas(&[&child], &config).unwrap();
        let (seq1, iv1) = seal_one(&sas).unwrap();
        assert_eq!(seq1, 1);
        // The process dies without a word (SIGKILL, power loss): only the state file survives.
        drop(sas);
        let (sas, _reservations) = install_sas(&[&child], &config).unwrap();
        let (seq2, iv2) = seal_one(&sas).unwrap();
        assert_eq!(
            u64::from(seq2),
            SEQ_BLOCK + 1,
            "after the block the first run reserved"
        );
        assert_ne!(iv1, iv2);
        let state = std::fs::read_to_string(seq_state_path(&config)).unwrap();
        let fp = key_fingerprint(&child.outbound.encryption_key);
        assert!(state.contains(&format!("{fp} {}\n", 2 * SEQ_BLOCK)), "{state}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_next_block_is_recorded_before_it_is_used() {
        let (dir, config, child) = setup("block");
        let (sas, mut reservations) = install_sas(&[&child], &config).unwrap();
        let sa = sas.snapshot().outbound(TunnelId::One.into()).unwrap().clone();
        reservations.tick().unwrap();
        assert_eq!(sa.seq_limit(), SEQ_BLOCK, "less than half used: nothing to do");
        sa.set_last_seq(SEQ_BLOCK / 2);
        reservations.tick().unwrap();
        assert_eq!(sa.seq_limit(), 2 * SEQ_BLOCK);
        let state = SeqState::load(seq_state_path(&config)).unwrap();
        assert_eq!(
            state.reserved.values().copied().collect::<Vec<_>>(),
            [2 * SEQ_BLOCK]
        );
        // A state file that cannot be written: the SA keeps its limit and stops there.
        std::fs::create_dir(dir.join("gw.toml.seq.tmp")).unwrap();
        sa.set_last_seq(2 * SEQ_BLOCK - 1);
        assert!(reservations.tick().is_err());
        assert_eq!(sa.seq_limit(), 2 * SEQ_BLOCK);
        assert_eq!(u64::from(seal_one(&sas).unwrap().0), 2 * SEQ_BLOCK);
        assert!(seal_one(&sas).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_run_without_a_state_file_a_used_up_key_or_a_key_used_twice() {
        let (dir, config, child) = setup("refuse");
        // The state cannot be recorded.
        std::fs::create_dir(dir.join("gw.toml.seq.tmp")).unwrap();
        let err = format!("{:#}", install_sas(&[&child], &config).unwrap_err());
        assert!(
            err.contains("gw.toml.seq") && err.contains("directory writable"),
            "{err}"
        );
        std::fs::remove_dir(dir.join("gw.toml.seq.tmp")).unwrap();
        // A garbled state file is not silently taken for "start at 1".
        std::fs::write(seq_state_path(&config), "garbage\n").unwrap();
        let err = format!("{:#}", install_sas(&[&child], &config).unwrap_err());
        assert!(err.contains("gw.toml.seq:1") && err.contains("new keys"), "{err}");
        // Every number of the key used by earlier runs.
        let fp = key_fingerprint(&child.outbound.encryption_key);
        std::fs::write(seq_state_path(&config), format!("{fp} {SEQ_HARD_LIMIT}\n")).unwrap();
        let err = format!("{:#}", install_sas(&[&child], &config).unwrap_err());
        assert!(err.contains("configure a new key_out"), "{err}");
        // One AES-GCM key for both directions.
        let mut same = gcm_config();
        same.key_in = same.key_out.clone();
        let err = format!(
            "{:#}",
            install_sas(&[&same.child_sa().unwrap()], &config).unwrap_err()
        );
        assert!(
            err.contains("key_out of tunnel 1 and key_in of tunnel 1 are the same key"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_hex_and_prefix_are_rejected() {
        assert!(hex("abc").is_err());
        assert!(hex("zz").is_err());
        assert!(prefix("10.0.0.0/33").is_err());
        assert!(prefix("10.0.0.0").is_err());
    }
}
