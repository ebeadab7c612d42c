//! The `/metrics` endpoint on `metrics.listen`.
//!
//! One thread polls the listener and every open connection, so the number of connections, the
//! memory and the time each may take are all bounded, and no client can hold the thread:
//! * at most [`MAX_CONNECTIONS`] are open; a new one then closes the oldest still sending its
//!   request, so idle or trickling clients (slowloris) cannot keep a scraper out;
//! * a connection has [`DEADLINE`] from accept to the last byte of the answer, whatever it sends;
//! * a request head larger than [`MAX_HEAD`] is refused; one request per connection, then close.
//!
//! Why not `tiny_http` (used before): its newest version (0.12) starts a thread for every open
//! connection, without a bound or a timeout, and accepts by itself, so its sockets cannot be given
//! one (a read timeout on the listener, which Linux copies to accepted sockets, also ends its accept
//! loop at the first idle second). What is parsed here is only the request line (method, target,
//! version); the header lines are read to find their end and otherwise ignored.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::metrics::MetricsRegistry;
use crate::io::clock;
use crate::io::notify::Notify;

/// Connections open at once; a scrape needs one.
pub const MAX_CONNECTIONS: usize = 16;
/// From accept to the last byte of the answer: a scrape on a management network takes milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(5);
/// Longest request line plus headers (a Prometheus scrape sends a few hundred bytes).
pub const MAX_HEAD: usize = 8 * 1024;

/// A running metrics server; stopped (and its thread joined) on drop, which closes the listener.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish()
    }
}

impl MetricsServer {
    /// Listen on `addr` (port 0 picks one; see [`Self::local_addr`]) and serve `GET /metrics`
    /// from a thread of its own. Other paths get 404, other methods 405, garbage 400.
    pub fn start(addr: SocketAddr, metrics: Arc<MetricsRegistry>) -> io::Result<MetricsServer> {
        MetricsServer::start_with(addr, metrics, DEADLINE)
    }

    fn start_with(
        addr: SocketAddr,
        metrics: Arc<MetricsRegistry>,
        deadline: Duration,
    ) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new()?);
        let thread = {
            let (stop, wake) = (stop.clone(), wake.clone());
            std::thread::Builder::new()
                .name("cgwd-metrics".into())
                .spawn(move || serve(&listener, &metrics, &wake, &stop, deadline))?
        };
        Ok(MetricsServer {
            addr,
            stop,
            wake,
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One client: its request head while it is being read, then the answer while it is being written.
struct Conn {
    stream: TcpStream,
    until: Instant,
    state: State,
}

enum State {
    Reading(Vec<u8>),
    Writing { out: Vec<u8>, sent: usize },
}

fn serve(
    listener: &TcpListener,
    metrics: &MetricsRegistry,
    wake: &Notify,
    stop: &AtomicBool,
    deadline: Duration,
) {
    let pollfd = |fd, events| libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let mut conns: Vec<Conn> = Vec::new();
    let mut pfds = Vec::with_capacity(MAX_CONNECTIONS + 2);
    while !stop.load(Ordering::SeqCst) {
        let now = clock::now();
        // Dropping a connection closes it.
        conns.retain(|c| now < c.until);
        pfds.clear();
        pfds.push(pollfd(wake.raw_fd(), libc::POLLIN));
        pfds.push(pollfd(listener.as_raw_fd(), libc::POLLIN));
        pfds.extend(conns.iter().map(|c| {
            let events = match c.state {
                State::Reading(_) => libc::POLLIN,
                State::Writing { .. } => libc::POLLOUT,
            };
            pollfd(c.stream.as_raw_fd(), events)
        }));
        let timeout = conns.iter().map(|c| c.until - now).min();
        if let Err(e) = crate::io::poll(&mut pfds, timeout) {
            tracing::warn!(error = %e, "metrics: poll failed");
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if pfds[0].revents != 0 {
            wake.drain();
        }
        let ready = pfds[2..].iter().map(|p| p.revents != 0);
        let mut open = Vec::with_capacity(conns.len());
        for (mut c, ready) in conns.drain(..).zip(ready) {
            if !ready || c.advance(metrics) {
                open.push(c);
            }
        }
        conns = open;
        if pfds[1].revents != 0 {
            // From now, not from before the poll, which may have waited a long while.
            accept_all(listener, &mut conns, clock::now() + deadline);
        }
    }
}

/// Take every pending connection; beyond [`MAX_CONNECTIONS`] the oldest one still sending its
/// request goes (a scraper sends its request at once, a client that does not is the one to drop).
fn accept_all(listener: &TcpListener, conns: &mut Vec<Conn>, until: Instant) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                if conns.len() >= MAX_CONNECTIONS {
                    let oldest = conns
                        .iter()
                        .position(|c| matches!(c.state, State::Reading(_)))
                        .unwrap_or(0);
                    conns.remove(oldest);
                }
                conns.push(Conn {
                    stream,
                    until,
                    state: State::Reading(Vec::new()),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors, most likely: the listener stays readable, so pause rather than spin.
                tracing::warn!(error = %e, "metrics: accept failed");
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
        }
    }
}

impl Conn {
    /// Read or write what the socket takes now; false once the connection is done with.
    fn advance(&mut self, metrics: &MetricsRegistry) -> bool {
        if let State::Reading(head) = &mut self.state {
            let mut chunk = [0u8; 1024];
            loop {
                match self.stream.read(&mut chunk) {
                    Ok(0) => return false,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
                let complete =
                    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n");
                if complete || head.len() > MAX_HEAD {
                    let out = answer(head, metrics);
                    self.state = State::Writing { out, sent: 0 };
                    break;
                }
            }
        }
        let State::Writing { out, sent } = &mut self.state else {
            return true;
        };
        while *sent < out.len() {
            match self.stream.write(&out[*sent..]) {
                Ok(0) => return false,
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        false
    }
}

/// The whole answer to a request head (`Connection: close`, one request per connection). Public
/// for the `local_requests` fuzz target: the head is whatever a local client sent.
pub fn answer(head: &[u8], metrics: &MetricsRegistry) -> Vec<u8> {
    if head.len() > MAX_HEAD {
        return response(
            "431 Request Header Fields Too Large",
            &[],
            b"request head too large\n",
        );
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or("").trim_end_matches('\r');
    let words: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = words[..] else {
        return response("400 Bad Request", &[], b"bad request\n");
    };
    if !version.starts_with("HTTP/1.") {
        return response("400 Bad Request", &[], b"bad request\n");
    }
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => response(
            "200 OK",
            &[("Content-Type", MetricsRegistry::CONTENT_TYPE)],
            metrics.encode().as_bytes(),
        ),
        ("GET", _) => response("404 Not Found", &[], b"not found: try /metrics\n"),
        _ => response("405 Method Not Allowed", &[("Allow", "GET")], b"only GET\n"),
    }
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Arc<MetricsRegistry> {
        Arc::new(MetricsRegistry::new())
    }

    #[test]
    fn answers_by_method_and_path() {
        let m = registry();
        let text = |head: &[u8]| String::from_utf8(answer(head, &m)).unwrap();
        assert!(text(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text(b"GET / HTTP/1.0\n\n").starts_with("HTTP/1.1 404"));
        let post = text(b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(
            post.starts_with("HTTP/1.1 405") && post.contains("Allow: GET\r\n"),
            "{post}"
        );
        assert!(text(b"\x00\xff\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(text(b"GET /metrics SPDY/3\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(text(&vec![b'a'; MAX_HEAD + 1]).starts_with("HTTP/1.1 431"));
        let ok = text(b"GET /nothing HTTP/1.1\r\n\r\n");
        assert!(ok.ends_with("\r\n\r\nnot found: try /metrics\n"), "{ok}");
        assert!(ok.contains("Content-Length: 24\r\nConnection: close\r\n"), "{ok}");
    }

    #[test]
    fn a_silent_client_is_closed_at_its_deadline() {
        let deadline = Duration::from_millis(300);
        let server = MetricsServer::start_with("127.0.0.1:0".parse().unwrap(), registry(), deadline).unwrap();
        let mut idle = TcpStream::connect(server.local_addr()).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t0 = clock::now();
        // EOF (or a reset) once the server gives up on it, long before the read timeout.
        let mut buf = [0u8; 16];
        assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
        let waited = t0.elapsed();
        assert!(waited >= deadline - Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }

    #[test]
    fn a_client_after_a_long_quiet_time_gets_its_full_deadline() {
        let deadline = Duration::from_millis(300);
        let server = MetricsServer::start_with("127.0.0.1:0".parse().unwrap(), registry(), deadline).unwrap();
        // The server waits in poll without a timeout meanwhile.
        std::thread::sleep(deadline * 2);
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::thread::sleep(deadline / 3);
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp:?}");
    }

    #[test]
    fn beyond_the_limit_the_oldest_idle_connection_goes() {
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), registry()).unwrap();
        let addr = server.local_addr();
        let mut first = TcpStream::connect(addr).unwrap();
        first.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _rest: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let mut buf = [0u8; 16];
        let t0 = clock::now();
        assert!(matches!(first.read(&mut buf), Ok(0) | Err(_)));
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "closed for the newcomer, not at its deadline"
        );
    }
}
