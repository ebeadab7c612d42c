//! Everything one IKE SA needs, independent of where it came from (AWS download, settings TOML, tests).
//!
//! The daemon maps its configuration model onto [`IkeConfig`]; the state machine never sees anything else,
//! so it can be driven in-process by tests and fuzzers with a hand-built config.

use std::net::IpAddr;
use std::time::Duration;

use crate::crypto::RekeyPrfPlus;
use crate::sa::{TrafficSelector, TunnelKey};
use crate::secret::Secret;
use crate::suite::{DhGroup, Encryption, Integrity};

/// The algorithms one phase allows. Order does not matter: proposals are built strongest first and the
/// responder picks the strongest acceptable combination (see [`super::proposal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlgorithmSet {
    pub encryption: Vec<Encryption>,
    /// Integrity algorithms; in phase 1 also the PRFs (AWS ties PRF to the integrity hash).
    pub integrity: Vec<Integrity>,
    /// DH groups: the IKE SA's key exchange in phase 1, PFS groups for CREATE_CHILD_SA in phase 2.
    /// The first Child SA (in IKE_AUTH) never uses PFS (RFC 7296 §1.2).
    pub dh: Vec<DhGroup>,
}

impl AlgorithmSet {
    /// Everything AWS allows (its default when the tunnel options are not set).
    pub fn aws_default() -> Self {
        AlgorithmSet {
            encryption: Encryption::ALL.to_vec(),
            integrity: Integrity::ALL.to_vec(),
            dh: DhGroup::ALL.iter().copied().filter(|g| g.number() != 5).collect(),
        }
    }

    /// One encryption, one integrity, one group: handy for tests and interop cases.
    pub fn single(encryption: Encryption, integrity: Integrity, dh: DhGroup) -> Self {
        AlgorithmSet {
            encryption: vec![encryption],
            integrity: vec![integrity],
            dh: vec![dh],
        }
    }
}

/// Request retransmission (RFC 7296 §2.1): the n-th retransmission waits `initial * 2^n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitConfig {
    /// Wait after the first transmission.
    pub initial: Duration,
    /// Retransmissions after the first transmission; after the last one's wait the peer is declared dead.
    pub retries: u32,
}

impl RetransmitConfig {
    /// The wait after transmission number `sent` (0 = the original), or `None` once we give up.
    pub fn timeout(&self, sent: u32) -> Option<Duration> {
        if sent > self.retries {
            return None;
        }
        Some(
            self.initial
                .saturating_mul(1u32.checked_shl(sent).unwrap_or(u32::MAX)),
        )
    }

    /// Total time from the first transmission until the exchange is given up.
    pub fn give_up_after(&self) -> Duration {
        (0..=self.retries).filter_map(|n| self.timeout(n)).sum()
    }
}

impl Default for RetransmitConfig {
    /// 1, 2, 4, 8, 16 s: five transmissions, 31 s until the peer counts as dead.
    fn default() -> Self {
        RetransmitConfig {
            initial: Duration::from_secs(1),
            retries: 4,
        }
    }
}

/// UDP ports of one side: IKE starts on `ike` (500) and moves to `nat_t` (4500) after IKE_SA_INIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub ike: u16,
    pub nat_t: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            ike: 500,
            nat_t: 4500,
        }
    }
}

/// Configuration of one IKE SA (one AWS tunnel).
#[derive(Debug, Clone)]
pub struct IkeConfig {
    pub tunnel: TunnelKey,
    /// Our outside address (AWS: customer gateway IP), IPv4 or IPv6 (the same family as the peer's).
    pub local_addr: IpAddr,
    /// The peer's outside address (AWS: tunnel outside IP).
    pub remote_addr: IpAddr,
    /// IDi/IDr we send, as ID_IPV4_ADDR or ID_IPV6_ADDR (AWS accepts only the customer gateway IP).
    pub local_id: IpAddr,
    /// The ID the peer must present (AWS: its outside IP), of the same ID type.
    pub remote_id: IpAddr,
    pub psk: Secret,
    pub ike: AlgorithmSet,
    pub esp: AlgorithmSet,
    pub ike_lifetime: Duration,
    pub child_lifetime: Duration,
    /// Rekey this long before the lifetime ends (AWS `RekeyMarginTimeSeconds`).
    pub rekey_margin: Duration,
    /// Random extra margin in percent of `rekey_margin` (AWS `RekeyFuzzPercentage`).
    pub rekey_fuzz_percent: u32,
    /// Send an empty INFORMATIONAL after this long without hearing from the peer.
    pub dpd_interval: Duration,
    /// A peer silent this long while our DPD is unanswered is dead (AWS `DpdTimeoutSeconds`), even if
    /// the retransmission schedule would still go on; zero: the schedule alone decides.
    pub dpd_timeout: Duration,
    pub replay_window: u32,
    /// Our side's traffic selector (AWS: on-premises CIDR, default 0.0.0.0/0).
    pub local_ts: TrafficSelector,
    /// The peer's side (AWS: VPC CIDR, default 0.0.0.0/0).
    pub remote_ts: TrafficSelector,
    pub local_ports: Ports,
    pub remote_ports: Ports,
    pub retransmit: RetransmitConfig,
    /// As responder, demand a COOKIE (RFC 7296 §2.6) signed with this secret before keeping any state.
    /// `None`: never demand one. Shared by all responders of the daemon so cookies survive.
    pub cookie_secret: Option<Secret>,
    /// As responder (when `cookie_secret` is `None`), demand a COOKIE only while this guard, shared
    /// by all responders of the daemon, counts too many half-open SAs (see [`super::cookie`]).
    pub cookies: Option<std::sync::Arc<super::cookie::CookieGuard>>,
    /// Send INITIAL_CONTACT in IKE_AUTH as initiator, so the peer drops SAs of a previous run of ours.
    pub initial_contact: bool,
    /// As responder, pick the strongest acceptable proposal (cgwd) or the lowest (AWS, emulate-aws).
    pub selection: super::proposal::Selection,
    /// RFC 7383 IKE fragmentation: offered by default, split above 1280-octet datagrams (settings key
    /// `ike.fragment_size`), so a path that drops IP fragments cannot stall IKE_AUTH or a rekey.
    pub fragmentation: super::frag::FragmentConfig,
    /// How IKE SA rekeys key the new SA when the PRF changes. The default is cgwd's policy; tests set
    /// others to play peers of each kind.
    pub rekey_keys: RekeyKeyPolicy,
    /// Authenticate by certificate instead of [`Self::psk`] (issue #16): `None` is PSK.
    pub certificate: Option<CertAuth>,
}

/// Certificate authentication (RFC 7296 §2.15 signatures, RFC 7427): our certificate and key, the
/// CA chain the peer's certificate must chain to. Our identity is the certificate's subject DN
/// (ID_DER_ASN1_DN); the peer's must be its certificate's subject or one of its SANs.
#[derive(Clone)]
pub struct CertAuth {
    /// Our certificate (DER), sent in CERT.
    pub certificate: Vec<u8>,
    pub key: std::sync::Arc<crate::config::cert::SigningKey>,
    /// Our subject DN (DER): IDi / IDr.
    pub subject_dn: Vec<u8>,
    /// Trust anchors (DER) for the peer's certificate, named in CERTREQ.
    pub ca: Vec<Vec<u8>>,
    /// Wall-clock seconds since the epoch, for certificate validity: the I/O shell's clock
    /// ([`crate::io::clock::unix_now`]); tests fix it.
    pub wall_clock: fn() -> i64,
    /// Send SIGNATURE_HASH_ALGORITHMS in IKE_SA_INIT (RFC 7427 §4). Always on in cgwd; tests turn
    /// it off to play a peer without RFC 7427, which cgwd must answer with a classic AUTH method.
    pub announce_signature_hashes: bool,
}

impl std::fmt::Debug for CertAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuth")
            .field("certificate", &format_args!("{} octets", self.certificate.len()))
            .field("key", &self.key)
            .field("ca", &format_args!("{} certificate(s)", self.ca.len()))
            .finish_non_exhaustive()
    }
}

impl CertAuth {
    /// What the loaded `[auth]` identity gives a tunnel.
    pub fn from_identity(id: &crate::config::cert::CertIdentity) -> CertAuth {
        CertAuth {
            certificate: id.certificate.clone(),
            key: id.key.clone(),
            subject_dn: id.subject_dn.clone(),
            ca: id.ca.clone(),
            wall_clock: crate::io::clock::unix_now,
            announce_signature_hashes: true,
        }
    }
}

/// What an IKE SA rekey does about the two readings of RFC 7296 §2.18 ([`RekeyPrfPlus`]), which
/// give different keys only when the new SA's PRF differs from the old one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyKeyPolicy {
    /// Keep the current SA's PRF: offer it alone in our rekeys and prefer it in the peer's, so the two
    /// readings agree (every peer that negotiated a PRF still allows it).
    pub keep_prf: bool,
    /// When the PRF changes anyway (a peer whose offer lacks the current PRF), the reading we key the
    /// new SA with: strongSwan's, the reading of the most widely deployed peer.
    pub first: RekeyPrfPlus,
    /// Derive the other reading too: the peer's first authenticated message on the new SA shows which
    /// one it used, and a request of ours unanswered meanwhile goes out under both in turn.
    pub try_other: bool,
}

impl Default for RekeyKeyPolicy {
    fn default() -> Self {
        RekeyKeyPolicy {
            keep_prf: true,
            first: RekeyPrfPlus::OldPrf,
            try_other: true,
        }
    }
}

impl IkeConfig {
    /// AWS's defaults for one tunnel: all algorithms, 28800/3600 s lifetimes, 540 s margin, 100 % fuzz,
    /// DPD after 10 s, 1024-packet replay window, 0.0.0.0/0 selectors.
    pub fn aws_defaults(
        tunnel: impl Into<TunnelKey>,
        local_addr: impl Into<IpAddr>,
        remote_addr: impl Into<IpAddr>,
        psk: Secret,
    ) -> Self {
        let (local_addr, remote_addr) = (local_addr.into(), remote_addr.into());
        IkeConfig {
            tunnel: tunnel.into(),
            local_addr,
            remote_addr,
            local_id: local_addr,
            remote_id: remote_addr,
            psk,
            ike: AlgorithmSet::aws_default(),
            esp: AlgorithmSet::aws_default(),
            ike_lifetime: Duration::from_secs(28800),
            child_lifetime: Duration::from_secs(3600),
            rekey_margin: Duration::from_secs(540),
            rekey_fuzz_percent: 100,
            dpd_interval: Duration::from_secs(10),
            dpd_timeout: Duration::from_secs(30),
            replay_window: 1024,
            local_ts: TrafficSelector::ANY,
            remote_ts: TrafficSelector::ANY,
            local_ports: Ports::default(),
            remote_ports: Ports::default(),
            retransmit: RetransmitConfig::default(),
            cookie_secret: None,
            cookies: None,
            initial_contact: true,
            selection: super::proposal::Selection::Strongest,
            fragmentation: super::frag::FragmentConfig::default(),
            rekey_keys: RekeyKeyPolicy::default(),
            certificate: None,
        }
    }

    /// The same tunnel seen from the other end (for in-process tests: cgwd playing AWS).
    pub fn mirrored(&self) -> Self {
        let mut m = self.clone();
        std::mem::swap(&mut m.local_addr, &mut m.remote_addr);
        std::mem::swap(&mut m.local_id, &mut m.remote_id);
        std::mem::swap(&mut m.local_ts, &mut m.remote_ts);
        std::mem::swap(&mut m.local_ports, &mut m.remote_ports);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_retransmits_are_1_2_4_8_16_then_give_up() {
        let r = RetransmitConfig::default();
        let waits: Vec<u64> = (0..6).filter_map(|n| r.timeout(n)).map(|d| d.as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16]);
        assert_eq!(r.give_up_after(), Duration::from_secs(31));
    }

    #[test]
    fn huge_retry_counts_saturate_instead_of_overflowing() {
        let r = RetransmitConfig {
            initial: Duration::from_secs(1),
            retries: 100,
        };
        assert!(r.timeout(99).is_some());
    }
}
