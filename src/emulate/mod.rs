//! `cgwd emulate-aws`: the same binary plays AWS's end of an AWS-format configuration.
//!
//! The run loop is the daemon's ([`crate::daemon::run`]) with [`crate::daemon::run::Role::Aws`]; this
//! module only holds what differs when seen from AWS's side:
//!
//! * [`aws_ike_config`]: identities, addresses and selectors mirrored; proposal selection `lowest`
//!   (FACTS §2.2); AWS's own rekey margin and fuzz; DPD after 10 s idle; a certificate customer
//!   gateway taken from any address (AWS checks the address only for a PSK).
//! * [`Behaviour`]: when AWS (re-)initiates (StartupAction, DPDTimeoutAction) — FACTS §2.1, §2.5.
//! * [`RouteHook`]: where routes AWS installs (static: the on-prem prefixes while the tunnel is up)
//!   come from, so BGP as AWS speaks it can later feed the same hook.

pub mod bgp;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{DpdAction, Settings, StartupAction, TunnelConfig, VpnConnection};
use crate::daemon::MappingError;
use crate::ike::config::IkeConfig;
use crate::ike::proposal::Selection;
use crate::sa::TunnelId;

/// AWS sends its DPD probe after this long without hearing from the customer gateway (FACTS §2.5).
pub const AWS_DPD_IDLE: Duration = Duration::from_secs(10);

/// The IKE configuration of AWS's endpoint for `tunnel`.
///
/// * Bound to and identified by the AWS outside address (ID_IPV4_ADDR or ID_IPV6_ADDR); the peer must present the
///   customer gateway address (or `local.id` from settings, as cgwd sends it).
/// * Allowed algorithms: the tunnel's lists; chosen the AWS way, lowest first.
/// * Lifetimes, margin and fuzz: the tunnel's, so AWS rekeys at lifetime − random(margin × fuzz).
/// * Selectors: the tunnel's, swapped (AWS's local is the VPC side).
pub fn aws_ike_config(
    conn: &VpnConnection,
    settings: &Settings,
    tunnel: TunnelId,
) -> Result<IkeConfig, MappingError> {
    let t: &TunnelConfig = conn.tunnel(tunnel);
    let dpd_interval = if t.dpd_action == DpdAction::None {
        // DPDTimeoutAction none: AWS keeps the SA however long the customer gateway is silent
        // (FACTS §2.5), so this endpoint sends no DPD whose timeout would end it.
        Duration::ZERO
    } else if t.dpd_interval_secs == 0 {
        AWS_DPD_IDLE
    } else {
        Duration::from_secs(u64::from(t.dpd_interval_secs))
    };
    // The customer gateway's view of the tunnel from the address AWS has on record, seen from the
    // other end: the same algorithms, lifetimes and selectors, addresses and IDs swapped.
    let customer = crate::daemon::ike_map::ike_config_for(conn, settings, tunnel, t.customer_outside)?;
    // AWS checks the customer gateway's address only for a PSK (FACTS §9.1): a gateway with a
    // certificate may come from anywhere, and move (DHCP, PPPoE, a NAT's new mapping).
    let any_peer_address = customer.certificate.is_some();
    Ok(IkeConfig {
        dpd_interval,
        cookies: None,
        selection: Selection::Lowest,
        any_peer_address,
        ..customer.mirrored()
    })
}

/// When AWS's endpoint initiates by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behaviour {
    /// StartupAction start: initiate at start-up (else wait for the customer gateway).
    pub initiate_at_start: bool,
    /// After the IKE SA closed: StartupAction start or DPDTimeoutAction restart re-initiate; clear and
    /// none wait for the customer gateway.
    pub reinitiate_after_close: bool,
}

impl Behaviour {
    pub fn of(t: &TunnelConfig) -> Self {
        let start = t.startup_action == StartupAction::Start;
        Behaviour {
            initiate_at_start: start,
            reinitiate_after_close: start || t.dpd_action == DpdAction::Restart,
        }
    }
}

/// Routes AWS holds for one tunnel: what it installs towards the customer gateway while the tunnel is
/// up. Static routing: the on-prem prefixes from settings. A BGP speaker would replace the list with
/// what it learnt (and announce `announced` — the VPC prefixes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteHook {
    pub learnt: Vec<IpNet>,
    pub announced: Vec<IpNet>,
}

impl RouteHook {
    pub fn static_routes(settings: &Settings) -> Self {
        RouteHook {
            learnt: settings.routing.onprem_cidrs.clone(),
            announced: settings.routing.vpc_cidrs.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::Path;

    use super::*;
    use crate::crypto::OsRandom;
    use crate::ike::{IkeSa, State};

    /// cgwd (initiator) and this emulated AWS endpoint (responder) for tunnel 1, established in
    /// memory; returns AWS's SA and the time it came up.
    fn established_aws_sa(conn: &VpnConnection, settings: &Settings) -> (IkeSa, std::time::Instant) {
        let local: IpAddr = "192.0.2.10".parse().unwrap();
        let cust = crate::daemon::ike_config_for(conn, settings, TunnelId::One, local).unwrap();
        let aws = aws_ike_config(conn, settings, TunnelId::One).unwrap();
        let now = crate::io::clock::now();
        let mut c = IkeSa::initiator(std::sync::Arc::new(cust), now, Box::new(OsRandom));
        let first = c.poll_transmit().expect("IKE_SA_INIT");
        let mut a = IkeSa::responder(
            std::sync::Arc::new(aws),
            now,
            Box::new(OsRandom),
            &first.data,
            first.from,
            first.to,
        )
        .expect("AWS answers");
        for _ in 0..20 {
            while let Some(tx) = a.poll_transmit() {
                c.handle_datagram(now, tx.from, tx.to, &tx.data);
            }
            while let Some(tx) = c.poll_transmit() {
                a.handle_datagram(now, tx.from, tx.to, &tx.data);
            }
        }
        assert_eq!(a.state(), State::Established);
        (a, now)
    }

    /// Runs AWS's SA's timers for `secs` seconds with the customer gateway silent (everything AWS
    /// sends is lost); its state at the end.
    fn silent_for(sa: &mut IkeSa, from: std::time::Instant, secs: u64) -> State {
        let end = from + Duration::from_secs(secs);
        while let Some(at) = sa.poll_timeout().filter(|&t| t <= end) {
            sa.handle_timeout(at.max(from));
            while sa.poll_transmit().is_some() {}
            while sa.poll_event().is_some() {}
        }
        sa.state()
    }

    #[test]
    fn dpd_timeout_action_none_keeps_the_sa_clear_ends_it() {
        let (mut conn, settings) = load("");
        assert_eq!(conn.tunnels[0].dpd_action, DpdAction::Clear);
        let (mut sa, t0) = established_aws_sa(&conn, &settings);
        assert_ne!(
            silent_for(&mut sa, t0, 300),
            State::Established,
            "clear: SA ended"
        );

        conn.tunnels[0].dpd_action = DpdAction::None;
        let cfg = aws_ike_config(&conn, &settings, TunnelId::One).unwrap();
        assert_eq!(cfg.dpd_interval, Duration::ZERO, "none: no DPD to time out");
        let (mut sa, t0) = established_aws_sa(&conn, &settings);
        assert_eq!(silent_for(&mut sa, t0, 300), State::Established, "none: SA kept");
        assert!(!Behaviour::of(&conn.tunnels[0]).reinitiate_after_close);
    }

    fn load(settings: &str) -> (VpnConnection, Settings) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let conn = crate::config::load_connection(&dir.join("lab.describe.json")).expect("sample");
        let settings = Settings::from_toml(settings, Path::new("t.toml"), &|_| None).expect("settings");
        (conn, settings)
    }

    #[test]
    fn aws_side_is_the_customer_side_mirrored_with_lowest_selection() {
        let (conn, settings) = load("");
        let local: IpAddr = "192.0.2.10".parse().unwrap();
        for id in TunnelId::BOTH {
            let cgw = crate::daemon::ike_config_for(&conn, &settings, id, local).unwrap();
            let aws = aws_ike_config(&conn, &settings, id).unwrap();
            assert_eq!(aws.local_addr, cgw.remote_addr);
            assert_eq!(aws.remote_addr, cgw.local_addr);
            assert_eq!(aws.local_id, cgw.remote_id);
            assert_eq!(aws.remote_id, cgw.local_id);
            assert_eq!(aws.local_ts, cgw.remote_ts);
            assert_eq!(aws.remote_ts, cgw.local_ts);
            assert_eq!(aws.psk.expose(), cgw.psk.expose());
            assert_eq!(aws.ike, cgw.ike);
            assert_eq!(aws.esp, cgw.esp);
            assert_eq!(aws.replay_window, 1024);
            assert_eq!(aws.rekey_margin, Duration::from_secs(540));
            assert_eq!(aws.rekey_fuzz_percent, 100);
            assert_eq!(aws.dpd_interval, AWS_DPD_IDLE);
            assert_eq!(aws.selection, Selection::Lowest);
            assert_eq!(cgw.selection, Selection::Strongest);
        }
        let one = aws_ike_config(&conn, &settings, TunnelId::One).unwrap();
        assert_eq!(one.local_addr, Ipv4Addr::new(198, 51, 100, 11));
    }

    #[test]
    fn aws_expects_the_id_cgwd_sends() {
        let (conn, settings) = load("[local]\nid = \"203.0.113.99\"\n");
        let aws = aws_ike_config(&conn, &settings, TunnelId::Two).unwrap();
        assert_eq!(aws.remote_id, Ipv4Addr::new(203, 0, 113, 99));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_maintenance_for("1440m"), Ok(MAX_MAINTENANCE));
        let err = parse_maintenance_for("1441m").unwrap_err();
        assert!(err.contains("at most a day"), "{err}");
        assert!(parse_maintenance_for("18446744073709551615s").is_err());
    }

    #[test]
    fn maintenance_request_over_the_socket_opens_a_silent_window_of_at_most_a_day() {
        use std::io::{Read, Write};
        let dir = std::env::temp_dir().join(format!("cgwd-maint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let control = dir.join("aws.sock");
        let mut m = Maintenance::listen(&control).unwrap();
        let ask = |line: &str| {
            let mut s = std::os::unix::net::UnixStream::connect(maintenance_socket(&control)).unwrap();
            s.write_all(line.as_bytes()).unwrap();
            let mut a = String::new();
            s.read_to_string(&mut a).unwrap();
            a
        };
        assert!(ask("bogus\n").starts_with("error"));
        let t0 = crate::io::clock::now();
        assert_eq!(m.take_request(t0), None);
        assert_eq!(ask("maintenance 4000\n"), "ok\n");
        assert_eq!(m.take_request(t0), Some(Duration::from_secs(4)));
        assert!(m.silent(t0 + Duration::from_secs(3)));
        assert!(!m.silent(t0 + Duration::from_secs(4)));
        assert!(!m.silent(t0 + Duration::from_secs(5)));
        // What `--for 18446744073709551s` used to send, beyond any Instant: refused, not a panic.
        let answer = ask(&format!("maintenance {}\n", u64::MAX));
        assert!(answer.contains("at most 1 day"), "{answer}");
        assert_eq!(m.take_request(t0), None);
        // Even a request past that check cannot overflow the clock.
        *m.request.lock().unwrap() = Some(Duration::MAX);
        assert_eq!(m.take_request(t0), None);
        assert!(!m.silent(t0));
        drop(m);
        assert!(!maintenance_socket(&control).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn behaviour_follows_startup_and_dpd_actions() {
        let (conn, _) = load("");
        let mut t = conn.tunnel(TunnelId::One).clone();
        t.startup_action = StartupAction::Add;
        t.dpd_action = DpdAction::Clear;
        assert_eq!(
            Behaviour::of(&t),
            Behaviour {
                initiate_at_start: false,
                reinitiate_after_close: false
            }
        );
        t.dpd_action = DpdAction::Restart;
        assert!(Behaviour::of(&t).reinitiate_after_close);
        t.startup_action = StartupAction::Start;
        t.dpd_action = DpdAction::None;
        assert_eq!(
            Behaviour::of(&t),
            Behaviour {
                initiate_at_start: true,
                reinitiate_after_close: true
            }
        );
    }
}

/// `cgwd emulate-aws` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The AWS-format configuration (the same file the customer gateway uses); several files, or
    /// a directory, to play the AWS side of several VPN connections (one process per endpoint).
    #[arg(required = true, num_args = 1..)]
    pub config: Vec<std::path::PathBuf>,
    /// Settings (TOML): routing.onprem_cidrs are the routes AWS installs while a tunnel is up.
    #[arg(long)]
    pub settings: Option<std::path::PathBuf>,
    /// Which endpoint to play: 1, 2 or both (both = one child process per tunnel, since each endpoint
    /// has its own outside address).
    #[arg(long, default_value = "both")]
    pub tunnel: String,
    /// Control socket for `cgwd status --socket` (with `--tunnel both`: PATH.1 and PATH.2; with
    /// several connections PATH.C.N for connection C's tunnel N).
    #[arg(long)]
    pub control_socket: Option<std::path::PathBuf>,
    /// TUN device name (default cgwd-aws1 / cgwd-aws2; cgwd-awsC-N with several connections).
    #[arg(long)]
    pub interface: Option<String>,
}

fn parse_tunnel(s: &str) -> Option<Vec<TunnelId>> {
    match s {
        "1" => Some(vec![TunnelId::One]),
        "2" => Some(vec![TunnelId::Two]),
        "both" => Some(TunnelId::BOTH.to_vec()),
        _ => None,
    }
}

impl Args {
    pub fn run(self) -> std::process::ExitCode {
        use std::process::ExitCode;
        let Some(tunnels) = parse_tunnel(&self.tunnel) else {
            eprintln!("cgwd emulate-aws: --tunnel must be 1, 2 or both");
            return ExitCode::from(2);
        };
        let files = match crate::config::expand_config_paths(&self.config) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("cgwd emulate-aws: error: {e}");
                return ExitCode::from(crate::config::ConfigError::EXIT_STATUS);
            }
        };
        if let ([file], [id]) = (&files[..], &tunnels[..]) {
            let role = crate::daemon::run::Role::Aws(crate::daemon::run::AwsRole {
                tunnel: *id,
                control_socket: self.control_socket.clone(),
                interface: Some(
                    self.interface
                        .clone()
                        .unwrap_or_else(|| format!("cgwd-aws{}", id.number())),
                ),
            });
            return crate::daemon::run::main_as(std::slice::from_ref(file), self.settings.as_deref(), &role);
        }
        // Several endpoints: one child per tunnel of each connection (each has its own outside
        // address); stop all when one ends or on SIGTERM/SIGINT.
        let signals = match crate::daemon::signals::Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cgwd emulate-aws: {e}");
                return ExitCode::FAILURE;
            }
        };
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                eprintln!("cgwd emulate-aws: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Each endpoint process needs its own control socket: PATH.N, or PATH.C.N.
        let socket = match &self.control_socket {
            Some(p) => p.clone(),
            None => match crate::config::load(&files[0], self.settings.as_deref()) {
                Ok((_, s)) => s.control.socket,
                Err(e) => {
                    eprintln!("cgwd emulate-aws: error: {e}");
                    return ExitCode::from(crate::config::ConfigError::EXIT_STATUS);
                }
            },
        };
        let several = files.len() > 1;
        let mut children = Vec::new();
        let mut wanted = 0;
        for (c, file) in files.iter().enumerate() {
            for &id in &tunnels {
                wanted += 1;
                let mut cmd = std::process::Command::new(&exe);
                cmd.arg("emulate-aws")
                    .arg(file)
                    .arg("--tunnel")
                    .arg(id.number().to_string());
                if let Some(s) = &self.settings {
                    cmd.arg("--settings").arg(s);
                }
                let mut p = socket.clone().into_os_string();
                if several {
                    p.push(format!(".{}.{}", c + 1, id.number()));
                    cmd.arg("--interface")
                        .arg(format!("cgwd-aws{}-{}", c + 1, id.number()));
                } else {
                    p.push(format!(".{}", id.number()));
                    if let Some(i) = &self.interface {
                        cmd.arg("--interface").arg(format!("{i}{}", id.number()));
                    }
                }
                cmd.arg("--control-socket").arg(p);
                die_with_parent(&mut cmd);
                match cmd.spawn() {
                    Ok(c) => children.push(c),
                    Err(e) => eprintln!(
                        "cgwd emulate-aws: starting {} tunnel {}: {e}",
                        file.display(),
                        id.number()
                    ),
                }
            }
        }
        let mut failed = children.len() < wanted;
        while !failed && !signals.stop_requested() {
            for c in &mut children {
                if let Ok(Some(status)) = c.try_wait() {
                    eprintln!("cgwd emulate-aws: one endpoint exited ({status}); stopping the others");
                    failed = true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for c in &mut children {
            terminate(c.id());
        }
        for c in &mut children {
            let _ = c.wait();
        }
        if failed && !signals.stop_requested() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// The endpoint children get SIGTERM if `emulate-aws` itself dies (even by SIGKILL), so no endpoint
/// outlives it holding the outside addresses' ports.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// SIGTERM to a child we spawned (its run loop then sends DELETE and removes its routes).
#[allow(unsafe_code)]
pub fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; pid is our own child's.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Maintenance rehearsal (FACTS §2.8): AWS replaces one endpoint — its SAs are deleted, it goes silent
/// for a while, then it answers again as responder (or initiates, with StartupAction start).
///
/// Requests arrive on a Unix socket next to the control socket (`<control socket>.maint`), one line
/// `maintenance <milliseconds>` per connection, answered `ok`.
pub struct Maintenance {
    request: std::sync::Arc<std::sync::Mutex<Option<Duration>>>,
    silent_until: Option<std::time::Instant>,
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The maintenance socket of an endpoint whose control socket is `control`.
pub fn maintenance_socket(control: &std::path::Path) -> std::path::PathBuf {
    let mut p = control.as_os_str().to_owned();
    p.push(".maint");
    p.into()
}

impl Maintenance {
    pub fn listen(control: &std::path::Path) -> std::io::Result<Self> {
        use std::io::{BufRead, Write};
        let path = maintenance_socket(control);
        // Never wider than 0600, in a directory only root (or we) can write; replaces a stale socket.
        let listener = crate::daemon::control::bind_private(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let request = std::sync::Arc::new(std::sync::Mutex::new(None));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (req, stop2) = (request.clone(), stop.clone());
        std::thread::Builder::new()
            .name("cgwd-maint".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut line = String::new();
                    let mut reader = std::io::BufReader::new(std::io::Read::take(&mut conn, 128));
                    let _ = reader.read_line(&mut line);
                    let answer = match line.trim().strip_prefix("maintenance ").map(str::parse::<u64>) {
                        Some(Ok(ms)) if Duration::from_millis(ms) <= MAX_MAINTENANCE => {
                            if let Ok(mut r) = req.lock() {
                                *r = Some(Duration::from_millis(ms));
                            }
                            "ok\n"
                        }
                        Some(Ok(_)) => "error: a maintenance window lasts at most 1 day (86400000 ms)\n",
                        _ => "error: expected `maintenance <milliseconds>`\n",
                    };
                    let _ = conn.write_all(answer.as_bytes());
                }
            })?;
        Ok(Maintenance {
            request,
            silent_until: None,
            path,
            stop,
        })
    }

    /// A new maintenance window starting `now`, if one was requested (and its end is a time the
    /// monotonic clock can hold; requests are at most [`MAX_MAINTENANCE`] anyway).
    pub fn take_request(&mut self, now: std::time::Instant) -> Option<Duration> {
        let d = self.request.lock().ok()?.take()?;
        self.silent_until = Some(now.checked_add(d)?);
        Some(d)
    }

    /// Inside the window: drop every datagram, start nothing.
    pub fn silent(&mut self, now: std::time::Instant) -> bool {
        match self.silent_until {
            Some(t) if now < t => true,
            Some(_) => {
                self.silent_until = None;
                tracing::info!("maintenance over: answering again");
                false
            }
            None => false,
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::os::unix::net::UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `cgwd emulate-aws-ctl` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct CtlArgs {
    /// The control socket given to `cgwd emulate-aws --control-socket` (or its settings' socket).
    #[arg(long)]
    pub control_socket: std::path::PathBuf,
    #[command(subcommand)]
    pub action: CtlAction,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum CtlAction {
    /// Take one endpoint down: DELETE its SAs, drop everything for a while, then answer again.
    Maintenance {
        /// 1 or 2.
        #[arg(long)]
        tunnel: u8,
        /// How long the endpoint stays silent: 20s, 1500ms, 2m; at most a day (1440m).
        #[arg(long = "for", value_parser = parse_maintenance_for)]
        duration: Duration,
    },
}

/// Longest maintenance window: AWS's last minutes, and a larger value is a typo (and would not fit
/// the monotonic clock beyond some point).
pub const MAX_MAINTENANCE: Duration = Duration::from_secs(24 * 60 * 60);

/// `--for`: a [`parse_duration`] of at most [`MAX_MAINTENANCE`].
pub fn parse_maintenance_for(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > MAX_MAINTENANCE {
        return Err(format!(
            "{s:?} is longer than a maintenance window may last (at most a day: 1440m)"
        ));
    }
    Ok(d)
}

/// "20s", "1500ms", "2m" or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("bad duration unit in {s:?} (use ms, s or m)")),
    }
}

impl CtlArgs {
    pub fn run(self) -> std::process::ExitCode {
        use std::io::{Read, Write};
        use std::process::ExitCode;
        let CtlAction::Maintenance { tunnel, duration } = self.action;
        // `--tunnel both` endpoints have PATH.1 / PATH.2; a single endpoint has PATH itself.
        let mut per_tunnel = self.control_socket.clone().into_os_string();
        per_tunnel.push(format!(".{tunnel}"));
        let candidates = [
            maintenance_socket(std::path::Path::new(&per_tunnel)),
            maintenance_socket(&self.control_socket),
        ];
        let Some(path) = candidates.iter().find(|p| p.exists()) else {
            eprintln!(
                "cgwd emulate-aws-ctl: no maintenance socket for tunnel {tunnel} (looked for {} and {})",
                candidates[0].display(),
                candidates[1].display()
            );
            return ExitCode::FAILURE;
        };
        let result = (|| -> std::io::Result<String> {
            let mut s = std::os::unix::net::UnixStream::connect(path)?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(format!("maintenance {}\n", duration.as_millis()).as_bytes())?;
            let mut answer = String::new();
            s.take(256).read_to_string(&mut answer)?;
            Ok(answer)
        })();
        match result {
            Ok(a) if a.trim() == "ok" => {
                println!("tunnel {tunnel}: maintenance for {duration:?} started");
                ExitCode::SUCCESS
            }
            Ok(a) => {
                eprintln!("cgwd emulate-aws-ctl: {}", a.trim());
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("cgwd emulate-aws-ctl: {}: {e}", path.display());
                ExitCode::FAILURE
            }
        }
    }
}

/// The routes AWS's endpoint installs towards the customer gateway while its tunnel is up ([`RouteHook`]
/// `learnt`). Each endpoint process uses its own metric (tunnel 1 preferred), so two endpoints in one
/// namespace coexist and the other tunnel's route takes over when one is withdrawn — the way a VGW
/// prefers one tunnel of a static VPN. Lab tooling: driven through `ip route`.
#[derive(Debug)]
pub struct AwsRoutes {
    interface: String,
    metric: u32,
    hook: RouteHook,
    up: Option<bool>,
}

impl AwsRoutes {
    pub fn new(interface: &str, tunnel: TunnelId, hook: RouteHook) -> Self {
        AwsRoutes {
            interface: interface.to_string(),
            metric: 100 + u32::from(tunnel.number()),
            hook,
            up: None,
        }
    }

    /// Install (tunnel up) or withdraw (down) the learnt routes; retried on the next call if `ip` fails.
    pub fn sync(&mut self, up: bool) {
        if self.up == Some(up) {
            return;
        }
        let mut ok = true;
        for net in &self.hook.learnt {
            let (net, metric) = (net.to_string(), self.metric.to_string());
            let verb = if up { "replace" } else { "del" };
            let args = ["route", verb, &net, "dev", &self.interface, "metric", &metric];
            match std::process::Command::new("ip").args(args).output() {
                Ok(o) if o.status.success() => {
                    tracing::info!(dst = %net, dev = %self.interface, up, "AWS route updated");
                }
                // Withdrawing a route the kernel already dropped (interface down) is done.
                Ok(_) if !up => {}
                Ok(o) => {
                    ok = false;
                    tracing::warn!(dst = %net, error = %String::from_utf8_lossy(&o.stderr).trim(), "ip route failed");
                }
                Err(e) => {
                    ok = false;
                    tracing::warn!(error = %e, "running ip route");
                }
            }
        }
        if ok {
            self.up = Some(up);
        }
    }
}
