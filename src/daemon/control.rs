//! The control socket: a Unix stream socket (mode 0600 in a 0700 directory, so only root — or
//! whoever runs cgwd — can read tunnel state) answering one request line per connection.
//!
//! Protocol: the client writes one request line; the server answers one line of JSON and closes.
//! * `status`: the [`StatusSnapshot`].
//! * `rekey <1|2> <ike|child>`: start a rekey of that tunnel's IKE SA or Child SA now (`swanctl
//!   --rekey`); answered `{"ok": ...}` once queued for the control loop, which starts it within a tick.
//! * `tunnel <down|up|reset> <1|2>`: take one tunnel down (its IKE SA deleted, no initiating) or up
//!   again, or replace its IKE SA now; queued the same way.
//!
//! Unknown requests get `{"error": "..."}`. A dedicated thread serves it from a shared snapshot and a
//! bounded command queue, so a slow client never stalls the control loop.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::status::StatusSnapshot;
use crate::crypto::random::{OsRandom, Random};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 256;
/// Largest answer a client reads (a snapshot is a few KiB).
const MAX_ANSWER: u64 = 1 << 20;
/// How long either side waits for the other.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cgwd is not running (no control socket at {0})")]
    NotRunning(PathBuf),
    #[error("permission denied on {0}: the control socket is root-only, run as root")]
    PermissionDenied(PathBuf),
    #[error("another cgwd is already serving {0}")]
    AlreadyRunning(PathBuf),
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgwd answered {0}")]
    Remote(String),
    #[error("unreadable answer from cgwd: {0}")]
    BadAnswer(String),
}

/// The shared snapshot the run loop updates and the server reads.
pub type SharedStatus = Arc<Mutex<Option<StatusSnapshot>>>;

/// A request for the control loop. `connection` names a VPN connection by ID or 1-based position;
/// `None` is the first (the only one, usually).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Rekey a tunnel's IKE SA (`ike`) or its Child SA now.
    Rekey {
        connection: Option<String>,
        tunnel: crate::sa::TunnelId,
        ike: bool,
    },
    /// `cgwd reload` (as SIGHUP): re-read every file.
    Reload,
    /// `cgwd tunnel down|up|reset`.
    Tunnel {
        connection: Option<String>,
        tunnel: crate::sa::TunnelId,
        op: crate::gateway::TunnelOp,
    },
}

/// Commands waiting for the control loop before new ones are refused ("busy").
pub const COMMAND_QUEUE: usize = 16;

impl Command {
    /// Parse a request line (`rekey 1 ike`, `tunnel down 2`, `tunnel down vpn-0abc 2`); `None` for
    /// anything else.
    pub fn parse(line: &str) -> Option<Command> {
        use crate::gateway::TunnelOp;
        let tunnel = |t: &str| match t {
            "1" => Some(crate::sa::TunnelId::One),
            "2" => Some(crate::sa::TunnelId::Two),
            _ => None,
        };
        // A connection name is a VPN ID or a position: printable, no spaces, bounded.
        let name =
            |n: &str| (n.len() <= 64 && n.chars().all(|c| c.is_ascii_graphic())).then(|| n.to_string());
        let w: Vec<&str> = line.split_whitespace().collect();
        if w == ["reload"] {
            return Some(Command::Reload);
        }
        let (connection, w) = match w.as_slice() {
            ["rekey", c, t, what] => (Some(name(c)?), vec!["rekey", *t, *what]),
            ["tunnel", op, c, t] => (Some(name(c)?), vec!["tunnel", *op, *t]),
            _ => (None, w),
        };
        match w.as_slice() {
            ["rekey", t, what] => Some(Command::Rekey {
                connection,
                tunnel: tunnel(t)?,
                ike: match *what {
                    "ike" => true,
                    "child" => false,
                    _ => return None,
                },
            }),
            ["tunnel", op, t] => Some(Command::Tunnel {
                connection,
                tunnel: tunnel(t)?,
                op: match *op {
                    "down" => TunnelOp::Down,
                    "up" => TunnelOp::Up,
                    "reset" => TunnelOp::Reset,
                    _ => return None,
                },
            }),
            _ => None,
        }
    }
}

/// A running control socket; dropping it stops the thread and removes the socket file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Create the directory (0700) if needed, refuse one others may write, replace a stale socket,
    /// bind (0600, see [`bind_private`]) and serve.
    pub fn start(
        path: &Path,
        status: SharedStatus,
        commands: std::sync::mpsc::SyncSender<Command>,
    ) -> Result<Self, ControlError> {
        let io_err = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(ControlError::AlreadyRunning(path.to_path_buf()));
                }
                std::fs::remove_file(path).map_err(io_err)?;
            }
            Ok(_) => {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a socket; remove it or choose control.socket",
                )));
            }
            Err(_) => {}
        }
        let listener = bind_private(path).map_err(io_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cgwd-control".into())
                .spawn(move || serve(listener, status, commands, stop))
                .map_err(io_err)?
        };
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Before a privilege drop ([`super::privilege`]): the control socket's directory, created by
/// root for the user cgwd becomes (mode 0700, owned by it) when it does not exist yet, so the
/// daemon can bind its sockets there and remove them when it stops. An existing directory is left
/// as it is (it may be /run itself); [`ControlServer::start`] then judges it. A directory that
/// cannot be given to the user (a root without CAP_CHOWN) is removed again: a root-owned one
/// would stop every later start.
pub fn create_directory_for(socket: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).inspect_err(|_| {
        let _ = std::fs::remove_dir(dir);
    })
}

/// Bind a Unix stream socket at `path` that is never reachable with more than mode 0600: it is bound
/// in a fresh 0700 directory next to `path`, made 0600 there and then renamed into place. (Binding at
/// `path` and chmod-ing after leaves a window with the umask's mode; changing the umask instead would
/// change it for every thread of the process.) `path`'s directory must pass [`check_directory`].
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    check_directory(dir)?;
    let staging = dir.join(format!(".cgwd-bind-{:016x}", OsRandom.next_u64()));
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    // A short name: a socket path has at most 107 bytes.
    let inner = staging.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inner, path)?;
        Ok(listener)
    })();
    // Only left behind when a step failed.
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&staging);
    bound
}

/// Refuse a directory that someone other than root or us may write to (who could then replace the
/// socket we bind there): owned by another user, or writable by group or others without the sticky
/// bit. The error names the directory and the fix.
pub fn check_directory(dir: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.mode() & 0o7777;
    let problem = if meta.uid() != 0 && meta.uid() != me {
        format!("owned by uid {}, neither root nor us (uid {me})", meta.uid())
    } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        let who = if mode & 0o002 != 0 {
            "everyone"
        } else {
            "its group"
        };
        format!("writable by {who} (mode {mode:04o}) without the sticky bit")
    } else {
        return Ok(());
    };
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "directory {d} is {problem}: run `chmod go-w {d}` and `chown root {d}`, or choose a path \
             in a directory only root can write (e.g. /run/cgwd)",
            d = dir.display()
        ),
    ))
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(
    listener: UnixListener,
    status: SharedStatus,
    commands: std::sync::mpsc::SyncSender<Command>,
    stop: Arc<AtomicBool>,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        if let Err(e) = answer(conn, &status, &commands) {
            tracing::debug!(error = %e, "control client");
        }
    }
}

fn answer(
    conn: UnixStream,
    status: &SharedStatus,
    commands: &std::sync::mpsc::SyncSender<Command>,
) -> io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&conn).take(MAX_REQUEST)).read_line(&mut line)?;
    let reply = match line.trim() {
        "status" => {
            let snap = status.lock().map(|s| s.clone()).unwrap_or(None);
            match snap {
                Some(s) => serde_json::to_string(&s).map_err(io::Error::other)?,
                None => serde_json::json!({ "error": "cgwd is starting" }).to_string(),
            }
        }
        other => match Command::parse(other) {
            Some(c) => match commands.try_send(c.clone()) {
                Ok(()) => serde_json::json!({ "ok": format!("{c:?} queued") }).to_string(),
                Err(_) => serde_json::json!({ "error": "busy: too many requests queued" }).to_string(),
            },
            None => serde_json::json!({ "error": format!("unknown request `{}`", other.escape_debug()) })
                .to_string(),
        },
    };
    let mut w = &conn;
    w.write_all(reply.as_bytes())?;
    w.write_all(b"\n")
}

/// Send one request line to the daemon at `path`: its answer, or its `error` as [`ControlError::Remote`].
pub fn request(path: &Path, line: &str) -> Result<serde_json::Value, ControlError> {
    let conn = connect(path)?;
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    (&conn)
        .write_all(format!("{line}\n").as_bytes())
        .map_err(io_err)?;
    let mut text = String::new();
    BufReader::new((&conn).take(MAX_ANSWER))
        .read_line(&mut text)
        .map_err(io_err)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ControlError::BadAnswer(e.to_string()))?;
    if let Some(err) = value.get("error").and_then(|e| e.as_str()) {
        return Err(ControlError::Remote(err.to_string()));
    }
    Ok(value)
}

fn connect(path: &Path) -> Result<UnixStream, ControlError> {
    let conn = UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning(path.to_path_buf())
        }
        io::ErrorKind::PermissionDenied => ControlError::PermissionDenied(path.to_path_buf()),
        _ => ControlError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    conn.set_read_timeout(Some(IO_TIMEOUT)).map_err(io_err)?;
    conn.set_write_timeout(Some(IO_TIMEOUT)).map_err(io_err)?;
    Ok(conn)
}

/// Ask the daemon at `path` for its status.
pub fn query_status(path: &Path) -> Result<StatusSnapshot, ControlError> {
    let value = request(path, "status")?;
    serde_json::from_value(value).map_err(|e| ControlError::BadAnswer(e.to_string()))
}
