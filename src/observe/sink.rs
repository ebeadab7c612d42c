//! Where health records go: stdout, stderr, or a file reopened on SIGHUP so logrotate can move it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use crate::config::{HealthFormat, HealthLog};

use super::health::HealthRecord;

/// One destination with one record format. Shared between the daemon's loop (writes) and its
/// SIGHUP handling (reopen), hence `&self` and an inner lock; records are rare, so the lock is cheap.
#[derive(Debug)]
pub struct HealthSink {
    dest: HealthLog,
    format: HealthFormat,
    /// The open file for [`HealthLog::File`]; `None` for the standard streams.
    file: Mutex<Option<File>>,
}

impl HealthSink {
    /// Open `dest` (a file is created if missing and appended to) for records of `format`.
    pub fn open(dest: HealthLog, format: HealthFormat) -> io::Result<HealthSink> {
        let file = match &dest {
            HealthLog::File(path) => Some(open_append(path)?),
            HealthLog::Stdout | HealthLog::Stderr => None,
        };
        Ok(HealthSink {
            dest,
            format,
            file: Mutex::new(file),
        })
    }

    /// The sink `log.health` / `log.health_format` describe.
    pub fn from_settings(log: &crate::config::LogSettings) -> io::Result<HealthSink> {
        HealthSink::open(log.health.clone(), log.health_format)
    }

    pub fn format(&self) -> HealthFormat {
        self.format
    }

    pub fn destination(&self) -> &HealthLog {
        &self.dest
    }

    /// Write the records of this sink's format, one JSON object per line; others are skipped.
    /// All lines go out in one `write` so a reader (or another process appending) never sees half.
    pub fn write(&self, records: &[HealthRecord]) -> io::Result<()> {
        let mut buf = String::new();
        for r in records.iter().filter(|r| r.format() == self.format) {
            buf.push_str(&r.to_json());
            buf.push('\n');
        }
        if buf.is_empty() {
            return Ok(());
        }
        match &self.dest {
            HealthLog::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(buf.as_bytes())?;
                out.flush()
            }
            HealthLog::Stderr => io::stderr().lock().write_all(buf.as_bytes()),
            HealthLog::File(_) => {
                let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
                match guard.as_mut() {
                    Some(f) => f.write_all(buf.as_bytes()),
                    None => Err(io::Error::other("health log file is not open")),
                }
            }
        }
    }

    /// Reopen the file by its path (after logrotate renamed it). A failed reopen keeps writing to
    /// the old file rather than losing records. No-op for stdout/stderr.
    pub fn reopen(&self) -> io::Result<()> {
        if let HealthLog::File(path) = &self.dest {
            let fresh = open_append(path)?;
            *self.file.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
        }
        Ok(())
    }
}

/// The mode a health log is created with (less what the umask removes): records name tunnels,
/// addresses and failures, which are for the operator's group, not every local user.
pub const HEALTH_LOG_MODE: u32 = 0o640;

/// Open for appending, created with [`HEALTH_LOG_MODE`]. A symbolic link at `path` is refused
/// (O_NOFOLLOW): cgwd runs as root, and following a link planted there would append to any file.
/// An existing file keeps its mode (logrotate's `create` or the operator chose it).
fn open_append(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(HEALTH_LOG_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{} is a symbolic link, which the health log does not follow: set log.health \
                         to the file itself",
                        path.display()
                    ),
                )
            } else {
                e
            }
        })
}
