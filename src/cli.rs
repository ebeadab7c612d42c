//! Command line: `cgwd check`, and later `run`, `status`, `emulate-aws`, `demo`.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad input from the user (config, settings, arguments).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cgwd", version, about = "AWS Site-to-Site VPN customer gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr as text or JSON (one line per event).
    #[arg(long, global = true, value_enum, default_value_t = crate::observe::logging::LogFormat::Text)]
    pub log_format: crate::observe::logging::LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate an AWS VPN configuration (and settings) and print both tunnels.
    Check {
        /// The file AWS gave you: describe-vpn-connections JSON, CustomerGatewayConfiguration XML, or
        /// the console's Generic text download.
        config: PathBuf,
        /// Optional cgwd settings (TOML).
        #[arg(long)]
        settings: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the customer gateway in the foreground (needs root or CAP_NET_ADMIN).
    Run {
        /// The file AWS gave you (describe JSON, XML or Generic text); several files, or a
        /// directory of them, for several VPN connections from this customer gateway.
        #[arg(required = true, num_args = 1..)]
        configs: Vec<PathBuf>,
        /// cgwd settings (TOML).
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Show both tunnels, the active one and the routes of a running cgwd.
    Status {
        /// Print the raw JSON snapshot.
        #[arg(long)]
        json: bool,
        /// Control socket (default: control.socket from --settings, else /run/cgwd/cgwd.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Settings file to read control.socket from.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Rekey a tunnel's Child SA (or its IKE SA with --ike) now, as `swanctl --rekey` does.
    Rekey {
        /// `[CONNECTION] TUNNEL`: tunnel 1 or 2, of the VPN connection named by its ID or 1-based
        /// position (default: the first).
        #[arg(required = true, num_args = 1..=2, value_name = "[CONNECTION] TUNNEL")]
        target: Vec<String>,
        /// Rekey the IKE SA instead of the Child SA.
        #[arg(long)]
        ike: bool,
        /// Control socket (default: control.socket from --settings, else /run/cgwd/cgwd.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Settings file to read control.socket from.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Re-read the AWS files and settings of a running cgwd (as SIGHUP): unchanged tunnels keep
    /// their SAs, changed ones are re-established one at a time, added and removed connections
    /// come and go; a bad new configuration is rejected whole (exit 2) and the running one kept.
    Reload {
        /// Control socket (default: control.socket from --settings, else /run/cgwd/cgwd.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Settings file to read control.socket from.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Take one tunnel down (its IKE SA deleted, no initiating) or up again, or replace its IKE SA
    /// now: `cgwd tunnel down 2`, `cgwd tunnel up 2`, `cgwd tunnel reset vpn-0abc 1`.
    Tunnel {
        #[arg(value_enum)]
        action: TunnelAction,
        /// `[CONNECTION] TUNNEL`: tunnel 1 or 2, of the VPN connection named by its ID or 1-based
        /// position (default: the first).
        #[arg(required = true, num_args = 1..=2, value_name = "[CONNECTION] TUNNEL")]
        target: Vec<String>,
        /// Control socket (default: control.socket from --settings, else /run/cgwd/cgwd.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Settings file to read control.socket from.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Play AWS's endpoints of the same configuration (lab and tests; needs root).
    EmulateAws(crate::emulate::Args),
    /// Drive a running `cgwd emulate-aws` (maintenance rehearsal).
    EmulateAwsCtl(crate::emulate::CtlArgs),
    /// Build a namespace lab, bring both tunnels up against `emulate-aws`, show failover, clean up (root).
    Demo(crate::demo::Args),
    #[command(hide = true, name = "esp-static")]
    EspStatic(crate::dataplane::static_keys::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to stdout, e.g. `cgwd man > /usr/share/man/man8/cgwd.8`.
    Man,
}

/// What `cgwd tunnel` does.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TunnelAction {
    Down,
    Up,
    Reset,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::observe::logging::init(cli.log_format, tracing::Level::INFO);
    match cli.command {
        Command::Check {
            config,
            settings,
            json,
        } => check(&config, settings.as_deref(), json),
        Command::EspStatic(args) => args.run(),
        Command::EmulateAws(args) => args.run(),
        Command::Demo(args) => args.run(),
        Command::EmulateAwsCtl(args) => args.run(),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "cgwd", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            use clap::CommandFactory;
            let man = clap_mangen::Man::new(Cli::command()).section("8");
            match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cgwd man: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run { configs, settings } => crate::daemon::run::main(&configs, settings.as_deref()),
        Command::Status {
            json,
            socket,
            settings,
        } => crate::daemon::status_command(json, socket.as_deref(), settings.as_deref()),
        Command::Rekey {
            target,
            ike,
            socket,
            settings,
        } => crate::daemon::rekey_command(&target, ike, socket.as_deref(), settings.as_deref()),
        Command::Reload { socket, settings } => {
            crate::daemon::reload_command(socket.as_deref(), settings.as_deref())
        }
        Command::Tunnel {
            action,
            target,
            socket,
            settings,
        } => {
            let what = match action {
                TunnelAction::Down => "down",
                TunnelAction::Up => "up",
                TunnelAction::Reset => "reset",
            };
            crate::daemon::tunnel_command(what, &target, socket.as_deref(), settings.as_deref())
        }
    }
}

/// `cgwd check`: 0 when the configuration and settings are valid, 2 (with the reason) when not.
pub fn check(config: &std::path::Path, settings: Option<&std::path::Path>, json: bool) -> ExitCode {
    match crate::config::load(config, settings) {
        Ok((conn, settings)) => {
            if let Some(problem) = crate::config::nothing_to_announce(&conn, &settings) {
                // `cgwd run` would bring the tunnels and sessions up and AWS would route nothing
                // back: valid to parse, not fit to run.
                if json {
                    let mut v = crate::config::report::json(&conn, &settings);
                    v["valid"] = serde_json::Value::Bool(false);
                    v["error"] = serde_json::Value::String(problem.clone());
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    print!("{}", crate::config::report::text(&conn, &settings));
                }
                eprintln!("cgwd check: error: {}: {problem}", config.display());
                return ExitCode::from(crate::config::ConfigError::EXIT_STATUS);
            }
            if json {
                let v = crate::config::report::json(&conn, &settings);
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", crate::config::report::text(&conn, &settings));
                println!("\nOK: {} is valid.", config.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                let v = serde_json::json!({ "valid": false, "error": e.to_string() });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            eprintln!("cgwd check: error: {e}");
            ExitCode::from(crate::config::ConfigError::EXIT_STATUS)
        }
    }
}
