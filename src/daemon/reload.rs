//! Live reload (`SIGHUP`, `cgwd reload`): what changes between the running configuration and a
//! new one, as a pure plan the daemon then carries out.
//!
//! Connections are matched by VPN connection ID. One whose AWS file and settings are equal keeps
//! everything (its SAs, SPIs, counters: no packet lost). One whose settings changed but not its
//! tunnels keeps its SAs too; only its routes and failover policy change. A tunnel whose own
//! parameters changed is re-established, one tunnel at a time across the whole daemon, so a
//! connection keeps its other tunnel while one is replaced (AWS's advice for tunnel option
//! changes, "Modify Site-to-Site VPN tunnel options"). New connections are added; missing ones
//! are torn down (their IKE SAs deleted, their routes and addresses removed).
//!
//! What only a restart can change (the user cgwd runs as, the TUN device, the local address, the
//! control socket, metrics listener and logs) is refused with the key named: the new configuration
//! is rejected whole and nothing changes.

use crate::config::{Settings, VpnConnection};
use crate::sa::TunnelId;

/// What a reload does to each connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// IDs kept as they are.
    pub unchanged: Vec<String>,
    /// IDs whose settings changed (routes, failover, health metadata) but not their tunnels.
    pub settings_changed: Vec<String>,
    /// (ID, tunnel) to re-establish, in order.
    pub tunnels_changed: Vec<(String, TunnelId)>,
    /// IDs of the new configuration not running yet, in its order.
    pub added: Vec<String>,
    /// IDs running but no longer configured.
    pub removed: Vec<String>,
}

impl Plan {
    /// One line for the log and `cgwd reload`.
    pub fn summary(&self) -> String {
        let changed: std::collections::BTreeSet<&str> = self
            .tunnels_changed
            .iter()
            .map(|(id, _)| id.as_str())
            .chain(self.settings_changed.iter().map(String::as_str))
            .collect();
        format!(
            "{} unchanged, {} changed ({} tunnel{} to re-establish), {} added, {} removed",
            self.unchanged.len(),
            changed.len(),
            self.tunnels_changed.len(),
            if self.tunnels_changed.len() == 1 { "" } else { "s" },
            self.added.len(),
            self.removed.len()
        )
    }
}

/// The settings sections that shape a tunnel's IKE SA (beyond its AWS file).
fn tunnel_settings_differ(old: &Settings, new: &Settings) -> bool {
    old.dpd != new.dpd || old.ike != new.ike || old.lab != new.lab || old.local.id != new.local.id
}

/// Compare the running connections with the new ones (each with its effective settings).
pub fn plan(running: &[(&VpnConnection, &Settings)], new: &[(VpnConnection, Settings)]) -> Plan {
    let mut p = Plan::default();
    for (conn, settings) in new {
        let Some((old, old_settings)) = running.iter().find(|(c, _)| c.id == conn.id) else {
            p.added.push(conn.id.clone());
            continue;
        };
        if *old == conn && *old_settings == settings {
            p.unchanged.push(conn.id.clone());
            continue;
        }
        let ike_settings = tunnel_settings_differ(old_settings, settings);
        let mut tunnels = 0;
        for id in TunnelId::BOTH {
            if ike_settings || old.tunnel(id) != conn.tunnel(id) {
                p.tunnels_changed.push((conn.id.clone(), id));
                tunnels += 1;
            }
        }
        if tunnels == 0 || *old_settings != settings {
            p.settings_changed.push(conn.id.clone());
        }
    }
    for (c, _) in running {
        if !new.iter().any(|(n, _)| n.id == c.id) {
            p.removed.push(c.id.clone());
        }
    }
    p
}

/// The daemon-wide settings only a restart can change: the first that differs, as its key.
pub fn restart_only_change(old: &Settings, new: &Settings) -> Option<&'static str> {
    [
        ("daemon.user", old.daemon != new.daemon),
        ("interface.name", old.interface.name != new.interface.name),
        ("interface.mtu", old.interface.mtu != new.interface.mtu),
        (
            "interface.answer_wait_us",
            old.interface.answer_wait_us != new.interface.answer_wait_us,
        ),
        ("local.address", old.local.address != new.local.address),
        ("metrics.listen", old.metrics.listen != new.metrics.listen),
        ("control.socket", old.control.socket != new.control.socket),
        ("log", old.log != new.log),
        ("bgp", old.bgp != new.bgp),
    ]
    .into_iter()
    .find_map(|(key, changed)| changed.then_some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> (VpnConnection, Settings) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/lab.describe.json");
        crate::config::load(&path, None).unwrap()
    }

    fn with_id(id: &str) -> (VpnConnection, Settings) {
        let (mut c, s) = lab();
        c.id = id.into();
        (c, s)
    }

    fn plan_of(running: &[(VpnConnection, Settings)], new: &[(VpnConnection, Settings)]) -> Plan {
        let r: Vec<(&VpnConnection, &Settings)> = running.iter().map(|(c, s)| (c, s)).collect();
        plan(&r, new)
    }

    #[test]
    fn identical_configuration_changes_nothing() {
        let running = vec![with_id("vpn-a"), with_id("vpn-b")];
        let p = plan_of(&running, &running.clone());
        assert_eq!(p.unchanged, ["vpn-a", "vpn-b"]);
        assert!(p.tunnels_changed.is_empty() && p.added.is_empty() && p.removed.is_empty());
        assert_eq!(
            p.summary(),
            "2 unchanged, 0 changed (0 tunnels to re-establish), 0 added, 0 removed"
        );
    }

    #[test]
    fn adds_changes_and_removes_are_told_apart() {
        let running = vec![with_id("vpn-a"), with_id("vpn-b"), with_id("vpn-c")];
        let mut new = vec![with_id("vpn-a"), with_id("vpn-b"), with_id("vpn-d")];
        // vpn-b: tunnel 2's PSK and tunnel 1's lifetime changed.
        new[1].0.tunnels[1].psk = Some(crate::secret::Secret::new(b"new_tunnel2_psk.AWS".to_vec()));
        new[1].0.tunnels[0].phase2_lifetime_secs = 1800;
        let p = plan_of(&running, &new);
        assert_eq!(p.unchanged, ["vpn-a"]);
        assert_eq!(
            p.tunnels_changed,
            [
                ("vpn-b".to_string(), TunnelId::One),
                ("vpn-b".to_string(), TunnelId::Two)
            ]
        );
        assert!(p.settings_changed.is_empty());
        assert_eq!(p.added, ["vpn-d"]);
        assert_eq!(p.removed, ["vpn-c"]);
    }

    #[test]
    fn a_settings_change_keeps_the_tunnels_unless_it_shapes_ike() {
        let running = vec![with_id("vpn-a")];
        let mut new = running.clone();
        new[0].1.routing.vpc_cidrs = vec!["10.9.0.0/16".parse().unwrap()];
        new[0].1.failover.policy = crate::config::FailoverPolicy::ActiveActive;
        let p = plan_of(&running, &new);
        assert_eq!(p.settings_changed, ["vpn-a"]);
        assert!(p.tunnels_changed.is_empty());
        new[0].1.dpd.interval = Some(5);
        let p = plan_of(&running, &new);
        assert_eq!(p.tunnels_changed.len(), 2);
        assert_eq!(p.settings_changed, ["vpn-a"]);
    }

    #[test]
    fn restart_only_keys_are_named() {
        let (_, s) = lab();
        let mut n = s.clone();
        assert_eq!(restart_only_change(&s, &n), None);
        n.routing.vpc_cidrs.push("10.1.0.0/16".parse().unwrap());
        assert_eq!(restart_only_change(&s, &n), None);
        n.interface.name = "cgwd9".into();
        assert_eq!(restart_only_change(&s, &n), Some("interface.name"));
        let mut n = s.clone();
        n.control.socket = "/tmp/other.sock".into();
        assert_eq!(restart_only_change(&s, &n), Some("control.socket"));
    }
}
