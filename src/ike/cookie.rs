//! Responder COOKIEs by load (RFC 7296 §2.6): while many responder IKE SAs are half-open (IKE_SA_INIT
//! answered, IKE_AUTH not yet), a new IKE_SA_INIT gets a stateless COOKIE demand instead of a DH
//! computation and state; only an initiator that really receives at its address can come back.
//!
//! * Half-open count: an SA counts from its stateful IKE_SA_INIT answer until it authenticates or its
//!   half-open time is over (the responder's establish timeout, 31 s by default), even if its object
//!   was dropped before: the daemon replaces a tunnel's half-open SA on every new IKE_SA_INIT, so an
//!   attacker spoofing source ports must still push the count up. The record is bounded.
//! * Threshold: [`CookieGuard::DEFAULT_THRESHOLD`] (16) half-open SAs per daemon. cgwd has two
//!   tunnels, so a legitimate load never comes near it.
//! * Secret: random, replaced every [`CookieGuard::ROTATE_EVERY`]; the previous one stays valid for one
//!   more period, so a cookie handed out just before a rotation still works. A cookie starts with the
//!   secret's one-octet version, as §2.6 suggests, so checking it takes one PRF.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::crypto::{Random, prf};
use crate::secret::Secret;
use crate::suite::Integrity;

const SECRET_LEN: usize = 32;

/// RFC 7296 §2.6: Cookie = `<VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)`; a keyed PRF
/// does the hash's job.
pub(crate) fn cookie_for(
    secret: &Secret,
    version: Option<u8>,
    ni: &[u8],
    from: SocketAddr,
    spi_i: u64,
) -> Vec<u8> {
    let ip = match from.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mac = prf(
        Integrity::Sha2_256,
        secret.expose(),
        &[ni, &ip, &spi_i.to_be_bytes()],
    );
    let mut out = Vec::with_capacity(1 + mac.expose().len());
    out.extend(version);
    out.extend_from_slice(mac.expose());
    out
}

struct State {
    version: u8,
    secret: Secret,
    previous: Option<Secret>,
    /// When `secret` was made (set at first use: the guard is built before any clock is read).
    since: Option<Instant>,
    /// Half-open SAs: (ticket, end of half-open time), oldest first.
    half_open: VecDeque<(u64, Instant)>,
    next_ticket: u64,
}

/// Shared by every responder of a daemon (through [`super::IkeConfig::cookies`]).
pub struct CookieGuard {
    threshold: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for CookieGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieGuard")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// A half-open SA's place in the count; [`HalfOpen::authenticated`] gives it up early.
pub(crate) struct HalfOpen {
    guard: std::sync::Arc<CookieGuard>,
    ticket: u64,
}

impl HalfOpen {
    pub(crate) fn authenticated(self) {
        let mut s = self.guard.lock();
        s.half_open.retain(|(t, _)| *t != self.ticket);
    }
}

impl CookieGuard {
    /// Half-open responder SAs per daemon before new initiators must return a COOKIE.
    pub const DEFAULT_THRESHOLD: usize = 16;
    /// How long one secret makes cookies (it is then accepted for one more period).
    pub const ROTATE_EVERY: Duration = Duration::from_secs(120);

    /// `secret`: the first cookie secret (random; the daemon draws it from the OS).
    pub fn new(threshold: usize, secret: Secret) -> Self {
        CookieGuard {
            threshold,
            state: Mutex::new(State {
                version: 0,
                secret,
                previous: None,
                since: None,
                half_open: VecDeque::new(),
                next_ticket: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Half-open responder SAs right now.
    pub fn half_open(&self, now: Instant) -> usize {
        let mut s = self.lock();
        s.half_open.retain(|(_, until)| *until > now);
        s.half_open.len()
    }

    /// Too many half-open SAs: new initiators must return a cookie.
    pub(crate) fn busy(&self, now: Instant) -> bool {
        self.half_open(now) >= self.threshold
    }

    fn rotate(&self, s: &mut State, now: Instant, rng: &mut dyn Random) {
        match s.since {
            None => s.since = Some(now),
            Some(t) if now.saturating_duration_since(t) >= Self::ROTATE_EVERY => {
                let mut fresh = vec![0u8; SECRET_LEN];
                rng.fill(&mut fresh);
                s.previous = Some(std::mem::replace(&mut s.secret, Secret::new(fresh)));
                s.version = s.version.wrapping_add(1);
                // A long idle gap ages the previous secret out too.
                if now.saturating_duration_since(t) >= 2 * Self::ROTATE_EVERY {
                    s.previous = None;
                }
                s.since = Some(now);
            }
            Some(_) => {}
        }
    }

    /// The cookie to hand out now.
    pub(crate) fn cookie(
        &self,
        now: Instant,
        rng: &mut dyn Random,
        ni: &[u8],
        from: SocketAddr,
        spi_i: u64,
    ) -> Vec<u8> {
        let mut s = self.lock();
        self.rotate(&mut s, now, rng);
        cookie_for(&s.secret, Some(s.version), ni, from, spi_i)
    }

    /// Whether `cookie` was made by the current or the previous secret for this initiator.
    pub(crate) fn valid(
        &self,
        now: Instant,
        rng: &mut dyn Random,
        cookie: &[u8],
        ni: &[u8],
        from: SocketAddr,
        spi_i: u64,
    ) -> bool {
        let mut s = self.lock();
        self.rotate(&mut s, now, rng);
        let Some(&version) = cookie.first() else {
            return false;
        };
        let secret = if version == s.version {
            &s.secret
        } else if version == s.version.wrapping_sub(1) {
            match &s.previous {
                Some(p) => p,
                None => return false,
            }
        } else {
            return false;
        };
        crate::crypto::auth_eq(cookie, &cookie_for(secret, Some(version), ni, from, spi_i))
    }

    /// Count a new half-open SA until `until` (or until it authenticates).
    pub(crate) fn open(self: &std::sync::Arc<Self>, now: Instant, until: Instant) -> HalfOpen {
        let mut s = self.lock();
        s.half_open.retain(|(_, u)| *u > now);
        // Bounded whatever happens: past a few times the threshold the oldest entries go.
        let cap = self.threshold.saturating_mul(4).max(64);
        while s.half_open.len() >= cap {
            s.half_open.pop_front();
        }
        let ticket = s.next_ticket;
        s.next_ticket = s.next_ticket.wrapping_add(1);
        s.half_open.push_back((ticket, until));
        HalfOpen {
            guard: self.clone(),
            ticket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SeededRandom;
    use std::sync::Arc;

    #[allow(clippy::disallowed_methods)] // tests need some base instant; only differences matter
    fn base() -> Instant {
        Instant::now()
    }

    #[test]
    fn cookies_survive_one_rotation_not_two_and_are_bound_to_the_initiator() {
        let t0 = base();
        let mut rng = SeededRandom::new(1);
        let g = CookieGuard::new(2, Secret::from_slice(&[1; 32]));
        let from: SocketAddr = "198.51.100.11:500".parse().unwrap();
        let other: SocketAddr = "198.51.100.12:500".parse().unwrap();
        let c = g.cookie(t0, &mut rng, b"nonce", from, 42);
        assert!(g.valid(t0, &mut rng, &c, b"nonce", from, 42));
        assert!(!g.valid(t0, &mut rng, &c, b"nonce", other, 42), "another address");
        assert!(!g.valid(t0, &mut rng, &c, b"nonce", from, 43), "another SPIi");
        assert!(!g.valid(t0, &mut rng, &c, b"other", from, 42), "another nonce");
        assert!(!g.valid(t0, &mut rng, &[], b"nonce", from, 42));
        let t1 = t0 + CookieGuard::ROTATE_EVERY;
        assert!(
            g.valid(t1, &mut rng, &c, b"nonce", from, 42),
            "the previous secret still works"
        );
        assert_ne!(
            g.cookie(t1, &mut rng, b"nonce", from, 42),
            c,
            "new cookies use the new secret"
        );
        let t2 = t1 + CookieGuard::ROTATE_EVERY;
        assert!(
            !g.valid(t2, &mut rng, &c, b"nonce", from, 42),
            "two rotations later it is stale"
        );
    }

    #[test]
    fn half_open_count_expires_and_stays_bounded() {
        let t0 = base();
        let g = Arc::new(CookieGuard::new(2, Secret::from_slice(&[1; 32])));
        let a = g.open(t0, t0 + Duration::from_secs(10));
        let _b = g.open(t0, t0 + Duration::from_secs(20));
        assert!(g.busy(t0));
        a.authenticated();
        assert!(!g.busy(t0));
        assert_eq!(g.half_open(t0 + Duration::from_secs(20)), 0);
        for _ in 0..1000 {
            let _ = g.open(t0, t0 + Duration::from_secs(30));
        }
        assert!(g.half_open(t0) <= 64);
    }
}
