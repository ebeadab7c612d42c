//! The I/O of one tunnel's BGP session: a non-blocking TCP connection from our inside address to
//! AWS's, port 179, through the tunnel itself (the kernel routes it to the TUN device, the data
//! plane pins AWS's inside address to its tunnel). The control loop polls it every tick; the
//! protocol is the sans-IO [`crate::bgp::session::Session`]'s.
//!
//! cgwd connects (AWS accepts, as its "Customer gateway device" guide expects of a customer
//! gateway) while the tunnel's Child SA is up, and reconnects [`RETRY`] after a failure or a
//! session that went down. It also listens on its inside address, port 179, for AWS's side (and
//! BIRD or FRR playing it) connects too: a connection from AWS's inside address runs a
//! [`Session::candidate`] until AWS's OPEN names its BGP identifier, then RFC 4271 §6.8 keeps one
//! of the two ([`resolve_collision`]); connections from any other address are closed at once.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::bgp::session::{Collision, Session, SessionState, resolve_collision};
use crate::bgp::wire::code;

/// BGP's port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;
/// Wait before connecting again after a failure (RFC 4271's ConnectRetryTimer, shortened: the
/// tunnel is known up, and AWS counts a BGP tunnel down until the session is Established).
pub const RETRY: Duration = Duration::from_secs(3);
/// A connection attempt not completed by then is abandoned.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes not yet accepted by the socket at most (a peer that stops reading is reset).
const MAX_PENDING: usize = 1 << 20;
/// A connection from AWS that has not sent its OPEN by then is closed.
const CANDIDATE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection AWS opened, before the collision is resolved.
struct Incoming {
    stream: TcpStream,
    session: Session,
    pending: Vec<u8>,
    since: Instant,
}

enum Conn {
    None,
    Connecting { socket: Socket, since: Instant },
    Open(TcpStream),
}

/// One tunnel's TCP connection for BGP.
pub struct BgpLink {
    local: IpAddr,
    peer: IpAddr,
    conn: Conn,
    retry_at: Option<Instant>,
    pending: Vec<u8>,
    /// Our inside address, port 179 (bound once the tunnel is up: the address exists then).
    listener: Option<std::net::TcpListener>,
    incoming: Option<Incoming>,
    /// Connections refused: from another address than AWS's, or a second one while one waits.
    pub refused: u64,
}

impl BgpLink {
    /// Our and AWS's inside addresses: the /30's, or the /126's on IPv6-inside tunnels.
    pub fn new(local: IpAddr, peer: IpAddr) -> BgpLink {
        BgpLink {
            local,
            peer,
            conn: Conn::None,
            retry_at: None,
            pending: Vec::new(),
            listener: None,
            incoming: None,
            refused: 0,
        }
    }

    fn listen(&mut self) {
        if self.listener.is_some() {
            return;
        }
        let bound = (|| -> std::io::Result<std::net::TcpListener> {
            let at = SocketAddr::new(self.local, BGP_PORT);
            let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&SockAddr::from(at))?;
            socket.listen(4)?;
            Ok(socket.into())
        })();
        match bound {
            Ok(l) => self.listener = Some(l),
            Err(e) => tracing::debug!(local = %self.local, error = %e, "BGP listener not bound yet"),
        }
    }

    /// Takes connections AWS opened: one at a time, from AWS's inside address only.
    fn accept(&mut self, now: Instant, session: &Session) {
        let Some(listener) = &self.listener else {
            return;
        };
        for _ in 0..4 {
            let (stream, from) = match listener.accept() {
                Ok(x) => x,
                Err(_) => return,
            };
            let from_aws = from.ip() == self.peer;
            if !from_aws || self.incoming.is_some() || stream.set_nonblocking(true).is_err() {
                tracing::debug!(%from, "BGP connection refused");
                self.refused += 1;
                let _ = stream.shutdown(std::net::Shutdown::Both);
                continue;
            }
            let _ = stream.set_nodelay(true);
            tracing::info!(%from, "BGP connection from AWS accepted");
            let mut candidate = session.candidate();
            candidate.connected(now);
            self.incoming = Some(Incoming {
                stream,
                session: candidate,
                pending: Vec::new(),
                since: now,
            });
        }
    }

    /// Runs AWS's connection until its OPEN arrived, then keeps one connection (RFC 4271 §6.8).
    fn resolve(&mut self, now: Instant, session: &mut Session) {
        let Some(inc) = self.incoming.as_mut() else {
            return;
        };
        let closed = pump(now, &mut inc.stream, &mut inc.session, &mut inc.pending);
        let timed_out = now.saturating_duration_since(inc.since) >= CANDIDATE_TIMEOUT;
        if closed || timed_out || inc.session.state() == SessionState::Idle {
            let _ = inc.stream.shutdown(std::net::Shutdown::Both);
            self.incoming = None;
            return;
        }
        let Some(remote_id) = inc.session.peer_id() else {
            return;
        };
        // Our connection counts only once it carries a session (a SYN in flight does not).
        let ours = match self.conn {
            Conn::Open(_) => session.state(),
            _ => SessionState::Idle,
        };
        let Some(mut inc) = self.incoming.take() else {
            return;
        };
        match resolve_collision(ours, session.config().router_id, remote_id) {
            Collision::CloseIncoming => {
                tracing::info!(peer = %self.peer, "BGP connection collision: AWS's connection closed");
                inc.session.close(code::CEASE_COLLISION);
                flush_and_shut(&mut inc.stream, &mut inc.session, &mut inc.pending);
            }
            Collision::KeepIncoming => {
                if let Conn::Open(stream) = &mut self.conn {
                    tracing::info!(peer = %self.peer, "BGP connection collision: ours closed, AWS's kept");
                    session.close(code::CEASE_COLLISION);
                    flush_and_shut(stream, session, &mut self.pending);
                }
                self.pending = inc.pending;
                session.adopt(inc.session);
                self.conn = Conn::Open(inc.stream);
                self.retry_at = None;
            }
        }
    }

    fn start(&mut self, now: Instant) -> std::io::Result<()> {
        let peer = SocketAddr::new(self.peer, BGP_PORT);
        let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&SockAddr::from(SocketAddr::new(self.local, 0)))?;
        match socket.connect(&SockAddr::from(peer)) {
            Ok(()) => self.conn = Conn::Open(socket.into()),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                self.conn = Conn::Connecting { socket, since: now };
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Drop the connection; connect again after [`RETRY`].
    fn reset(&mut self, now: Instant) {
        if let Conn::Open(s) = &self.conn {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.conn = Conn::None;
        self.pending.clear();
        self.retry_at = Some(now + RETRY);
    }

    /// The tunnel went down: no session through it.
    pub fn tunnel_down(&mut self, now: Instant, session: &mut Session) {
        if !matches!(self.conn, Conn::None) {
            session.disconnected();
            self.reset(now);
        }
        self.retry_at = None;
        if let Some(inc) = self.incoming.take() {
            let _ = inc.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Connect, read, run timers, write: one tick of the session's I/O. `tunnel_up`: its Child SA
    /// is up (no point in a SYN before).
    pub fn poll(&mut self, now: Instant, session: &mut Session, tunnel_up: bool) {
        if !tunnel_up {
            return self.tunnel_down(now, session);
        }
        self.listen();
        self.accept(now, session);
        self.resolve(now, session);
        if matches!(self.conn, Conn::None)
            && self.incoming.is_none()
            && self.retry_at.is_none_or(|t| now >= t)
        {
            if let Err(e) = self.start(now) {
                tracing::debug!(peer = %self.peer, error = %e, "BGP connect failed");
                self.reset(now);
                return;
            }
            if let Conn::Open(_) = self.conn {
                session.connected(now);
            }
        }
        if let Conn::Connecting { socket, since } = &self.conn {
            match socket.take_error() {
                Ok(Some(e)) | Err(e) => {
                    tracing::debug!(peer = %self.peer, error = %e, "BGP connection refused or failed");
                    return self.reset(now);
                }
                Ok(None) => {}
            }
            match socket.peer_addr() {
                Ok(_) => {
                    if let Conn::Connecting { socket, .. } = std::mem::replace(&mut self.conn, Conn::None) {
                        self.conn = Conn::Open(socket.into());
                        tracing::info!(peer = %self.peer, "BGP TCP connection up");
                        session.connected(now);
                    }
                }
                Err(_) if now.saturating_duration_since(*since) >= CONNECT_TIMEOUT => {
                    tracing::debug!(peer = %self.peer, "BGP connection timed out");
                    return self.reset(now);
                }
                Err(_) => return,
            }
        }
        let Conn::Open(stream) = &mut self.conn else {
            return;
        };
        let closed = pump(now, stream, session, &mut self.pending);
        if closed {
            session.disconnected();
            self.reset(now);
        } else if session.state() == SessionState::Idle {
            // The session ended (a NOTIFICATION went out above, best effort): close and retry.
            self.reset(now);
        }
    }

    /// Shutdown: the Cease the session queued, written best effort, then closed.
    pub fn flush_and_close(&mut self, session: &mut Session) {
        if let Conn::Open(stream) = &mut self.conn {
            flush_and_shut(stream, session, &mut self.pending);
        }
        self.conn = Conn::None;
        self.pending.clear();
        if let Some(mut inc) = self.incoming.take() {
            inc.session.close(code::CEASE_ADMIN_SHUTDOWN);
            flush_and_shut(&mut inc.stream, &mut inc.session, &mut inc.pending);
        }
        self.listener = None;
    }
}

/// The session's last bytes (its Cease) written, blocking at most 200 ms, then the connection
/// shut: the end of a session on shutdown, either side.
pub fn flush_and_shut(stream: &mut TcpStream, session: &mut Session, pending: &mut Vec<u8>) {
    while let Some(bytes) = session.poll_transmit() {
        pending.extend_from_slice(&bytes);
    }
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(pending);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// One tick of an open connection: read what arrived (bounded), run the session's timers, write
/// what it has to say (what the socket refuses waits in `pending`). True when the connection is
/// gone (closed by the peer, an error, or a peer that stopped reading).
pub fn pump(now: Instant, stream: &mut TcpStream, session: &mut Session, pending: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    let mut closed = false;
    // Bounded: a fast peer cannot hold the control loop.
    for _ in 0..16 {
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => session.handle_bytes(now, &buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    if session.poll_timeout().is_some_and(|t| now >= t) {
        session.handle_timeout(now);
    }
    while let Some(bytes) = session.poll_transmit() {
        pending.extend_from_slice(&bytes);
    }
    while !pending.is_empty() {
        match stream.write(pending) {
            Ok(0) => break,
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    closed || pending.len() > MAX_PENDING
}
