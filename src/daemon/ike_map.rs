//! The AWS model ([`VpnConnection`] + [`Settings`]) mapped onto what one IKE SA needs ([`IkeConfig`]).
//!
//! Kept apart from the run loop so every field's origin can be unit-tested against the sample
//! downloads in `configs/`.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::config::{Settings, TunnelConfig, VpnConnection};
use crate::crypto::Random;
use crate::ike::config::{AlgorithmSet, IkeConfig, Ports, RetransmitConfig};
use crate::ike::cookie::CookieGuard;
use crate::sa::TunnelId;
use crate::secret::Secret;

/// Why a tunnel cannot be mapped onto an IKE SA.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    /// IKE runs over one IP family: AWS's outside address, ours and our identity must share it
    /// (AWS forbids mixing). Loading the configuration refuses a mix already
    /// ([`crate::config::check_runnable`]); this stays the mapping's own guard.
    #[error(
        "{tunnel}: {what} {addr} is IPv{got} but AWS's outside address {aws} is IPv{want}; AWS runs a \
         tunnel over one IP family"
    )]
    MixedFamilies {
        tunnel: TunnelId,
        what: &'static str,
        addr: IpAddr,
        aws: IpAddr,
        got: u8,
        want: u8,
    },
    /// A tunnel without a key and without a loaded certificate (loading refuses such a
    /// configuration; this stays the mapping's own guard).
    #[error(
        "{tunnel}: has no pre-shared key and no customer gateway certificate is loaded; give [auth] \
         certificate, private_key and ca in the settings, or a key in [tunnels.N]"
    )]
    CertificateAuth { tunnel: TunnelId },
}

/// `addr` when it has the family of AWS's outside address `aws`.
pub(crate) fn same_family(
    tunnel: TunnelId,
    what: &'static str,
    addr: IpAddr,
    aws: IpAddr,
) -> Result<IpAddr, MappingError> {
    let family = |a: IpAddr| if a.is_ipv4() { 4 } else { 6 };
    if addr.is_ipv4() == aws.is_ipv4() {
        Ok(addr)
    } else {
        Err(MappingError::MixedFamilies {
            tunnel,
            what,
            addr,
            aws,
            got: family(addr),
            want: family(aws),
        })
    }
}

/// The daemon's one cookie guard (RFC 7296 §2.6), shared by both tunnels' responders: COOKIEs are
/// demanded once [`CookieGuard::DEFAULT_THRESHOLD`] (16) responder SAs are half-open at once, with a
/// random secret from the OS, rotated every two minutes.
pub(crate) fn daemon_cookie_guard() -> Arc<CookieGuard> {
    static GUARD: OnceLock<Arc<CookieGuard>> = OnceLock::new();
    GUARD
        .get_or_init(|| {
            let mut secret = vec![0u8; 32];
            crate::crypto::OsRandom.fill(&mut secret);
            Arc::new(CookieGuard::new(
                CookieGuard::DEFAULT_THRESHOLD,
                Secret::new(secret),
            ))
        })
        .clone()
}

/// The IKE configuration of `tunnel`, sending from `local_addr` (see
/// [`crate::config::resolve_local_address`]).
///
/// * IDs: ours is `local.id` or the customer gateway address AWS has on record (also behind NAT);
///   AWS's is its outside address.
/// * Offers: the tunnel's phase-1/phase-2 lists as `check` prints them (already filtered to what
///   AWS allows and strongest first); phase-2 DH groups are the PFS groups.
/// * Lifetimes, rekey margin and fuzz: AWS's values, so the state machine rekeys before AWS does.
/// * DPD interval: `dpd.interval` from settings when set, else the tunnel's (AWS: 10 s).
/// * Selectors and replay window: the tunnel's.
/// * COOKIEs: demanded by load, through the daemon's shared [`daemon_cookie_guard`].
pub fn ike_config_for(
    conn: &VpnConnection,
    settings: &Settings,
    tunnel: TunnelId,
    local_addr: IpAddr,
) -> Result<IkeConfig, MappingError> {
    let t: &TunnelConfig = conn.tunnel(tunnel);
    let dpd_interval = settings
        .dpd
        .interval
        .map(|s| Duration::from_secs(u64::from(s)))
        .unwrap_or_else(|| t.dpd_interval());
    Ok(IkeConfig {
        // Connection 0's key: the daemon sets the connection's own (`TunnelKey::new`).
        tunnel: tunnel.into(),
        local_addr: same_family(tunnel, "local address", local_addr, t.aws_outside)?,
        remote_addr: t.aws_outside,
        local_id: same_family(tunnel, "local IKE ID", settings.local_id(t), t.aws_outside)?,
        remote_id: t.aws_outside,
        // A tunnel without a key authenticates with the certificate of `[auth]` (loading refuses
        // one without either); the PSK field is then unused.
        psk: t
            .psk
            .clone()
            .unwrap_or_else(|| crate::secret::Secret::new(Vec::new())),
        ike: AlgorithmSet {
            encryption: t.phase1.encryption.clone(),
            integrity: t.phase1.integrity.clone(),
            dh: t.phase1.dh_groups.clone(),
        },
        esp: AlgorithmSet {
            encryption: t.phase2.encryption.clone(),
            integrity: t.phase2.integrity.clone(),
            dh: t.phase2.pfs_groups.clone(),
        },
        ike_lifetime: t.lifetime(crate::config::Phase::One),
        child_lifetime: t.lifetime(crate::config::Phase::Two),
        rekey_margin: Duration::from_secs(u64::from(t.rekey_margin_secs)),
        rekey_fuzz_percent: u32::from(t.rekey_fuzz_percent),
        dpd_interval,
        dpd_timeout: t.dpd_timeout(),
        replay_window: t.replay_window,
        local_ts: t.local_traffic_selector(),
        remote_ts: t.remote_traffic_selector(),
        local_ports: Ports::default(),
        remote_ports: Ports::default(),
        retransmit: RetransmitConfig::default(),
        cookie_secret: None,
        cookies: Some(daemon_cookie_guard()),
        initial_contact: true,
        selection: crate::ike::proposal::Selection::Strongest,
        fragmentation: settings.ike_fragmentation(),
        rekey_keys: crate::ike::RekeyKeyPolicy::default(),
        certificate: match (&t.psk, &conn.certificate) {
            (Some(_), _) => None,
            (None, Some(id)) => Some(crate::ike::config::CertAuth::from_identity(id)),
            (None, None) => return Err(MappingError::CertificateAuth { tunnel }),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::sa::TrafficSelector;
    use crate::suite::{DhGroup, Encryption, Integrity};
    use std::net::Ipv4Addr;

    fn load(config: &str, settings: &str) -> (VpnConnection, Settings) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let conn = crate::config::load_connection(&dir.join(config)).expect("sample config");
        let settings = Settings::from_toml(settings, Path::new("test.toml"), &|_| None).expect("settings");
        (conn, settings)
    }

    #[test]
    fn lab_describe_json_maps_each_tunnel() {
        let (conn, settings) = load("lab.describe.json", "");
        let local: IpAddr = "192.0.2.10".parse().unwrap();
        let one = ike_config_for(&conn, &settings, TunnelId::One, local).unwrap();
        let two = ike_config_for(&conn, &settings, TunnelId::Two, local).unwrap();
        assert_eq!(one.tunnel.id, TunnelId::One);
        assert_eq!(one.remote_addr, Ipv4Addr::new(198, 51, 100, 11));
        assert_eq!(one.remote_id, Ipv4Addr::new(198, 51, 100, 11));
        assert_eq!(two.remote_addr, Ipv4Addr::new(203, 0, 113, 12));
        assert_eq!(one.local_addr, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(one.local_id, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(one.psk.expose(), b"lab_tunnel1_psk.AWS1");
        assert_eq!(two.psk.expose(), b"lab_tunnel2_psk.AWS2");
        assert_eq!(one.ike_lifetime, Duration::from_secs(28800));
        assert_eq!(one.child_lifetime, Duration::from_secs(3600));
        assert_eq!(one.rekey_margin, Duration::from_secs(540));
        assert_eq!(one.rekey_fuzz_percent, 100);
        assert_eq!(one.replay_window, 1024);
        assert_eq!(one.dpd_interval, Duration::from_secs(10));
        assert_eq!(one.local_ts, TrafficSelector::ANY);
        assert_eq!(one.remote_ts, TrafficSelector::ANY);
        assert_eq!(
            one.local_ports,
            Ports {
                ike: 500,
                nat_t: 4500
            }
        );
        assert!(one.initial_contact);
    }

    #[test]
    fn offers_are_the_tunnels_lists_in_check_order() {
        let (conn, settings) = load("lab.describe.json", "");
        let t = conn.tunnel(TunnelId::One);
        let c = ike_config_for(&conn, &settings, TunnelId::One, "192.0.2.10".parse().unwrap()).unwrap();
        assert_eq!(c.ike.encryption, t.phase1.encryption);
        assert_eq!(c.ike.integrity, t.phase1.integrity);
        assert_eq!(c.ike.dh, t.phase1.dh_groups);
        assert_eq!(c.esp.encryption, t.phase2.encryption);
        assert_eq!(c.esp.integrity, t.phase2.integrity);
        assert_eq!(c.esp.dh, t.phase2.pfs_groups);
        assert!(c.esp.encryption.contains(&Encryption::Aes256Gcm16));
        assert!(c.ike.integrity.contains(&Integrity::Sha2_256));
        assert!(!c.esp.dh.is_empty(), "AWS requires PFS");
    }

    #[test]
    fn xml_without_lists_gets_cgwd_strong_defaults() {
        let (conn, settings) = load("aws-static.xml", "");
        let c = ike_config_for(&conn, &settings, TunnelId::Two, "192.0.2.10".parse().unwrap()).unwrap();
        assert_eq!(c.esp.encryption, vec![Encryption::Aes256Gcm16]);
        assert_eq!(c.ike.dh, crate::config::defaults::dh_groups());
        assert!(!c.ike.dh.contains(&DhGroup::MODP_1024));
    }

    #[test]
    fn settings_override_dpd_interval_and_local_id() {
        let (conn, settings) = load(
            "lab.describe.json",
            "[dpd]\ninterval = 2\n[local]\nid = \"203.0.113.99\"\n",
        );
        let c = ike_config_for(&conn, &settings, TunnelId::One, "192.0.2.10".parse().unwrap()).unwrap();
        assert_eq!(c.dpd_interval, Duration::from_secs(2));
        assert_eq!(c.local_id, Ipv4Addr::new(203, 0, 113, 99));
        // The address we send from is independent of the ID (cgwd behind NAT).
        assert_eq!(c.local_addr, Ipv4Addr::new(192, 0, 2, 10));
    }

    #[test]
    fn both_tunnels_share_one_load_driven_cookie_guard() {
        let (conn, settings) = load("lab.describe.json", "");
        let local: IpAddr = "192.0.2.10".parse().unwrap();
        let one = ike_config_for(&conn, &settings, TunnelId::One, local).unwrap();
        let two = ike_config_for(&conn, &settings, TunnelId::Two, local).unwrap();
        // No fixed secret (that would demand a cookie from every initiator), one shared guard.
        assert!(one.cookie_secret.is_none());
        let (a, b) = (one.cookies.unwrap(), two.cookies.unwrap());
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn ipv6_local_address_to_an_ipv4_aws_endpoint_is_refused_with_the_tunnel_named() {
        let (conn, settings) = load("lab.describe.json", "");
        let err =
            ike_config_for(&conn, &settings, TunnelId::Two, "2001:db8::1".parse().unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("tunnel 2") && msg.contains("2001:db8::1 is IPv6"),
            "{msg}"
        );
    }
}
