//! The daemon: the I/O shell that joins config, IKE, the data plane, failover and routing.
//!
//! * [`ike_map`] maps the AWS model onto one [`crate::ike::config::IkeConfig`] per tunnel.
//! * [`status`] is the snapshot `cgwd status` shows, and its human rendering.
//! * [`control`] serves that snapshot as JSON on a Unix socket (root-only).
//! * [`signals`] turns SIGTERM/SIGINT into a flag the run loop polls.
//! * [`run`] is `cgwd run`: start-up checks, the control loop, the shutdown sequence.
//! * [`local_address`] follows the customer gateway's outside address (`local.address = "auto"`).
//! * [`icmp`] sends the failover liveness probes through the kernel (raw socket).
//! * [`privilege`] is `daemon.user`: root becomes an unprivileged user with only the network
//!   capabilities before anything is created.

pub mod ike_map;

pub use ike_map::{MappingError, ike_config_for};
pub mod bgp_io;
pub mod control;
pub mod icmp;
pub mod local_address;
pub mod observer;
pub mod privilege;
pub mod reload;
pub mod run;
pub mod signals;
pub mod status;

pub use status::{StatusSnapshot, TunnelStatus};

/// `[CONNECTION] TUNNEL` of `cgwd rekey` and `cgwd tunnel`: the request's target words, or the
/// usage error (exit 2).
fn target(command: &str, words: &[String]) -> Result<(String, u8), std::process::ExitCode> {
    let bad = |why: String| {
        eprintln!("cgwd {command}: {why}");
        Err(std::process::ExitCode::from(2))
    };
    let (conn, tunnel) = match words {
        [t] => (None, t),
        [c, t] => (Some(c), t),
        _ => return bad("give [CONNECTION] TUNNEL".into()),
    };
    let Ok(n @ 1..=2) = tunnel.parse::<u8>() else {
        return bad(format!("tunnel `{tunnel}` is not 1 or 2"));
    };
    match conn {
        None => Ok((n.to_string(), n)),
        Some(c) if !c.is_empty() && c.len() <= 64 && c.chars().all(|x| x.is_ascii_graphic()) => {
            Ok((format!("{c} {n}"), n))
        }
        Some(c) => bad(format!(
            "connection `{}` is neither a VPN connection ID nor a number",
            c.escape_debug()
        )),
    }
}

/// `cgwd rekey [CONNECTION] TUNNEL [--ike]`: ask the running daemon to rekey now. Exit 0 once
/// queued, 3 when no daemon answers.
pub fn rekey_command(
    words: &[String],
    ike: bool,
    socket: Option<&std::path::Path>,
    settings: Option<&std::path::Path>,
) -> std::process::ExitCode {
    let (what, sa) = if ike {
        ("ike", "IKE SA")
    } else {
        ("child", "Child SA")
    };
    let (t, n) = match target("rekey", words) {
        Ok(t) => t,
        Err(code) => return code,
    };
    send_command(
        "rekey",
        &format!("rekey {t} {what}"),
        &format!("tunnel {n}: {sa} rekey started"),
        socket,
        settings,
    )
}

/// `cgwd tunnel down|up|reset [CONNECTION] TUNNEL`: exit 0 once queued, 3 when no daemon answers.
pub fn tunnel_command(
    what: &str,
    words: &[String],
    socket: Option<&std::path::Path>,
    settings: Option<&std::path::Path>,
) -> std::process::ExitCode {
    let (t, n) = match target("tunnel", words) {
        Ok(t) => t,
        Err(code) => return code,
    };
    send_command(
        "tunnel",
        &format!("tunnel {what} {t}"),
        &format!("tunnel {n}: {what}"),
        socket,
        settings,
    )
}

/// `cgwd reload`: ask the running daemon to re-read its files and wait (up to 30 s) for the
/// outcome: 0 applied, 2 rejected (the running configuration kept), 3 no daemon or no answer.
pub fn reload_command(
    socket: Option<&std::path::Path>,
    settings: Option<&std::path::Path>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let path = match control_socket("reload", socket, settings) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let generation = |p: &std::path::Path| {
        control::query_status(p)
            .ok()
            .and_then(|s| s.reload)
            .map_or(0, |r| r.generation)
    };
    let before = generation(&path);
    if let Err(e) = control::request(&path, "reload") {
        eprintln!("cgwd reload: {e}");
        return ExitCode::from(3);
    }
    for _ in 0..300 {
        if let Some(r) = control::query_status(&path).ok().and_then(|s| s.reload)
            && r.generation > before
        {
            return if r.ok {
                println!("reloaded: {}", r.message);
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "cgwd reload: rejected, the running configuration is kept: {}",
                    r.message
                );
                ExitCode::from(crate::config::ConfigError::EXIT_STATUS)
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("cgwd reload: requested, but no outcome within 30 s (see cgwd's log)");
    ExitCode::from(3)
}

/// One request line to the running daemon for `cgwd <command>`: `done` printed once it is queued
/// (exit 0), the error otherwise (exit 3, or 2 for bad settings).
fn send_command(
    command: &str,
    line: &str,
    done: &str,
    socket: Option<&std::path::Path>,
    settings: Option<&std::path::Path>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let path = match control_socket(command, socket, settings) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match control::request(&path, line) {
        Ok(_) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cgwd {command}: {e}");
            ExitCode::from(3)
        }
    }
}

/// The control socket: `--socket`, else `control.socket` of the settings (file or `CGWD_*`); a bad
/// settings file is reported for `cgwd <command>` and becomes the exit status.
fn control_socket(
    command: &str,
    socket: Option<&std::path::Path>,
    settings: Option<&std::path::Path>,
) -> Result<std::path::PathBuf, std::process::ExitCode> {
    match socket {
        Some(p) => Ok(p.to_path_buf()),
        None => crate::config::Settings::load(settings, &|k| std::env::var(k).ok())
            .map(|s| s.control.socket)
            .map_err(|e| {
                eprintln!("cgwd {command}: {e}");
                std::process::ExitCode::from(crate::config::ConfigError::EXIT_STATUS)
            }),
    }
}

/// `cgwd status`: 0 both tunnels up, 1 one down, 2 both down, 3 cgwd not reachable.
pub fn status_command(
    json: bool,
    socket: Option<&std::path::Path>,
    settings: Option<&std::path::Path>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let path = match control_socket("status", socket, settings) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match control::query_status(&path) {
        Ok(snap) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&snap).unwrap_or_default());
            } else {
                print!("{}", status::render(&snap));
            }
            ExitCode::from(snap.exit_code())
        }
        Err(e) => {
            eprintln!("cgwd status: {e}");
            ExitCode::from(3)
        }
    }
}
