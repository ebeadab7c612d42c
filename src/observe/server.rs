//! The `/metrics` endpoint on `metrics.listen`.
//!
//! `tiny_http` (a small, synchronous HTTP/1.1 server) rather than a hand-rolled parser: requests
//! come from the network, and HTTP parsing is what that crate is for; rather than hyper/axum,
//! because the daemon is thread-based and one scrape every few seconds needs no async runtime.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Response, Server};

use super::metrics::MetricsRegistry;

/// A running metrics server; stopped (and its thread joined) on drop.
pub struct MetricsServer {
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish()
    }
}

impl MetricsServer {
    /// Listen on `addr` (port 0 picks one; see [`Self::local_addr`]) and serve `GET /metrics`
    /// from a thread of its own. Anything else gets 404 or 405.
    pub fn start(addr: SocketAddr, metrics: Arc<MetricsRegistry>) -> io::Result<MetricsServer> {
        let server = Arc::new(Server::http(addr).map_err(io::Error::other)?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("metrics listener has no IP address"))?;
        let srv = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("cgwd-metrics".into())
            .spawn(move || serve(&srv, &metrics))?;
        Ok(MetricsServer {
            server,
            addr,
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
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &Server, metrics: &MetricsRegistry) {
    // `recv` fails only once `unblock` was called (shutdown).
    while let Ok(request) = server.recv() {
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (Method::Get, "/metrics") => Response::from_string(metrics.encode())
                .with_header(header("Content-Type", MetricsRegistry::CONTENT_TYPE)),
            (Method::Get, _) => Response::from_string("not found: try /metrics\n").with_status_code(404),
            _ => Response::from_string("only GET\n")
                .with_status_code(405)
                .with_header(header("Allow", "GET")),
        };
        if let Err(e) = request.respond(response) {
            tracing::debug!(error = %e, "metrics: client went away");
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants, which `from_bytes` accepts.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}
