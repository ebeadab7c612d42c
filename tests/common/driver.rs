//! Runs an `IkeSa` over real UDP sockets (ports 500 and 4500) inside a network namespace: the smallest
//! possible I/O shell, doing what the daemon will do — non-ESP marker on 4500, timers, events.

#![allow(clippy::disallowed_methods)] // an I/O shell: it reads the real clock

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgwd::crypto::OsRandom;
use cgwd::ike::{Event, IkeConfig, IkeSa};

pub struct Sockets {
    pub ike: UdpSocket,
    pub nat_t: UdpSocket,
    pub ip: Ipv4Addr,
}

/// Binds UDP 500 and 4500 on `ip` inside namespace `ns` (from a helper thread that enters it, so the test
/// thread itself stays where it was; sockets keep the namespace they were created in).
pub fn bind_in(ns: &str, ip: Ipv4Addr) -> io::Result<Sockets> {
    let ns = ns.to_string();
    std::thread::spawn(move || -> io::Result<Sockets> {
        super::netns::enter(&ns)?;
        let ike = UdpSocket::bind((ip, 500))?;
        let nat_t = UdpSocket::bind((ip, 4500))?;
        ike.set_nonblocking(true)?;
        nat_t.set_nonblocking(true)?;
        Ok(Sockets { ike, nat_t, ip })
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?
}

const NON_ESP_MARKER: [u8; 4] = [0; 4];

impl Sockets {
    fn send(&self, from_port: u16, to: SocketAddr, data: &[u8]) -> io::Result<()> {
        if from_port == 4500 {
            let mut buf = NON_ESP_MARKER.to_vec();
            buf.extend_from_slice(data);
            self.nat_t.send_to(&buf, to)?;
        } else {
            self.ike.send_to(data, to)?;
        }
        Ok(())
    }

    /// One IKE message if any is waiting: (from, to, message without marker).
    fn recv(&self) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        let mut buf = vec![0u8; 65536];
        for (sock, port) in [(&self.ike, 500u16), (&self.nat_t, 4500u16)] {
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let to = SocketAddr::new(IpAddr::V4(self.ip), port);
                let data = &buf[..n];
                if port == 4500 {
                    // ESP (non-zero SPI) and NAT-T keepalives are the data plane's business.
                    if n >= 4 && data[..4] == NON_ESP_MARKER {
                        return Some((from, to, data[4..].to_vec()));
                    }
                    continue;
                }
                return Some((from, to, data.to_vec()));
            }
        }
        None
    }

    /// Wait for the peer's first IKE_SA_INIT and build a responder from it.
    pub fn accept(&self, cfg: Arc<IkeConfig>, timeout: Duration) -> io::Result<IkeSa> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some((from, to, data)) = self.recv() {
                match IkeSa::responder(cfg.clone(), Instant::now(), Box::new(OsRandom), &data, from, to) {
                    // A stateless reply (COOKIE, INVALID_KE_PAYLOAD): send it and wait for the retry.
                    Ok(mut sa) if sa.state() == cgwd::ike::State::Closed => {
                        while let Some(t) = sa.poll_transmit() {
                            let _ = self.send(t.from.port(), t.to, &t.data);
                        }
                    }
                    Ok(sa) => return Ok(sa),
                    Err(e) => eprintln!("ignored first datagram: {e}"),
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(io::Error::other("no IKE_SA_INIT arrived"))
    }

    /// Drive `sa` until `done` says so (on an event) or `timeout` passes; returns all events.
    pub fn drive(
        &self,
        sa: &mut IkeSa,
        timeout: Duration,
        mut done: impl FnMut(&Event) -> bool,
    ) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            while let Some(t) = sa.poll_transmit() {
                if let Err(e) = self.send(t.from.port(), t.to, &t.data) {
                    eprintln!("send to {} failed: {e}", t.to);
                }
            }
            let mut finished = false;
            while let Some(e) = sa.poll_event() {
                finished |= done(&e);
                events.push(e);
            }
            if finished || Instant::now() >= deadline {
                return events;
            }
            let now = Instant::now();
            if let Some((from, to, data)) = self.recv() {
                sa.handle_datagram(now, from, to, &data);
                continue;
            }
            if sa.poll_timeout().is_some_and(|t| t <= now) {
                sa.handle_timeout(now);
                continue;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
