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
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { .. } => {
            eprintln!("cgwd check: not implemented yet");
            ExitCode::from(1)
        }
    }
}
