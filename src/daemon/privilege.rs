//! `daemon.user`: `cgwd run` started as root becomes an unprivileged user that keeps only the
//! network capabilities it uses ([`KEPT`]).
//!
//! **Default: no drop.** `daemon.user = ""` keeps the identity cgwd was started with. The
//! packaged starts are unprivileged already (the systemd unit's `DynamicUser=` with
//! `AmbientCapabilities=`, the container image's `USER` with file capabilities), and a router
//! daemon that quietly becomes `nobody` (shared with other daemons) or whichever account happens
//! to exist would surprise its operator. A root start without `daemon.user` logs a warning that
//! names the key. The decision is written down in docs/configuration.md, "Privileges".
//!
//! **When.** The drop happens right after the configuration is read and before cgwd creates
//! anything: the TUN devices, addresses, routes, UDP 500/4500, the raw ICMP socket, the metrics
//! listener, the control socket and the health log are all made with [`KEPT`] alone, exactly as
//! under the systemd unit. So whatever works at start keeps working later as the same user: the
//! health log reopened on SIGHUP, the files re-read on reload, routes and addresses changed,
//! BGP's TCP port 179 bound once a tunnel is up (also for connections a reload adds). The one
//! thing root does first is create the control socket's directory for the user when it is missing.
//!
//! **Threads.** capset(2), the keep-caps flag and no_new_privs are per thread, and a new thread
//! starts with a copy of its creator's credentials. The drop therefore runs while the process has
//! exactly one thread (checked in /proc/self/task; refused otherwise), and every thread cgwd
//! starts afterwards inherits the reduced set: none is left with root's.
//!
//! **Crates.** `nix` (already in the tree through tun-rs) wraps getpwnam_r/getgrouplist with their
//! buffer handling and the set*id calls; `caps` (pure Rust over capget/capset/prctl, libc its only
//! dependency) reads and sets the capability sets. Both replace hand-written FFI with reviewed safe
//! wrappers, so this module has no `unsafe` of its own.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};

/// What cgwd keeps: CAP_NET_ADMIN (TUN devices, addresses, routes over rtnetlink, also on reload),
/// CAP_NET_BIND_SERVICE (UDP 500; BGP's TCP 179, bound lazily when a tunnel comes up) and
/// CAP_NET_RAW (the ICMP liveness probes).
pub const KEPT: [Capability; 3] = [
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_NET_RAW,
];

/// [`KEPT`] as a bit mask, as /proc/<pid>/status prints `CapEff` (hexadecimal).
pub fn kept_mask() -> u64 {
    KEPT.iter().fold(0, |m, c| m | c.bitmask())
}

/// [`KEPT`]'s names, space-separated (the log line and the errors).
pub fn kept_names() -> String {
    names(&KEPT.into_iter().collect())
}

/// Those of [`KEPT`] in `set`, by name, in [`KEPT`]'s order.
fn names(set: &CapsHashSet) -> String {
    KEPT.iter()
        .filter(|c| set.contains(c))
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The user `daemon.user` names, resolved before anything is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The primary group's name (its number when it has none), for the fixes errors suggest.
    pub group: String,
    /// Supplementary groups (the user's, as `initgroups` gives a login): group-readable settings
    /// work as they do for `sudo -u NAME`.
    groups: Vec<Gid>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error(
        "daemon.user = \"{user}\": no such user on this host. Fix: create it (`useradd --system \
         --no-create-home --shell /usr/sbin/nologin {user}`), name an existing unprivileged user, or \
         leave daemon.user (CGWD_DAEMON_USER) empty to keep the identity cgwd is started with"
    )]
    UnknownUser { user: String },
    #[error(
        "daemon.user = \"{user}\" is root (uid 0), which drops nothing. Fix: name an unprivileged \
         user (e.g. cgwd), or leave daemon.user empty"
    )]
    RootUser { user: String },
    #[error(
        "daemon.user = \"{user}\": becoming another user needs cgwd started as root, but it runs as \
         uid {uid}. Fix: start it as root, or leave daemon.user (CGWD_DAEMON_USER) empty where the \
         service manager starts it as that user already (systemd's User=, a container's USER)"
    )]
    NotRoot { user: String, uid: u32 },
    #[error(
        "daemon.user = \"{user}\": cgwd lacks {missing} to switch users (a container started with \
         --cap-drop=ALL?). Fix: add them (--cap-add=SETUID --cap-add=SETGID), or run the container as \
         that user and leave daemon.user empty"
    )]
    MissingCapability { user: String, missing: String },
    #[error("daemon.user = \"{user}\": looking the user up failed: {source}")]
    Lookup {
        user: String,
        #[source]
        source: nix::Error,
    },
    #[error("changing privileges: {what}: {detail}")]
    Sys { what: &'static str, detail: String },
    #[error(
        "internal error: privileges must change while cgwd has one thread (capabilities are per \
         thread), but it has {0}"
    )]
    Threads(usize),
}

fn sys(what: &'static str) -> impl FnOnce(String) -> PrivilegeError {
    move |detail| PrivilegeError::Sys { what, detail }
}

/// The user cgwd must become: `None` when `daemon.user` is empty or names who cgwd already runs
/// as. Every mistake (unknown user, root, not started as root, no CAP_SETUID/CAP_SETGID) is found
/// here, before anything on the system changes.
pub fn resolve(user: &str) -> Result<Option<Identity>, PrivilegeError> {
    if user.is_empty() {
        return Ok(None);
    }
    let lookup = |r: nix::Result<Option<User>>| {
        r.map_err(|source| PrivilegeError::Lookup {
            user: user.to_string(),
            source,
        })
    };
    let mut found = lookup(User::from_name(user))?;
    if found.is_none()
        && let Ok(uid) = user.parse::<u32>()
    {
        found = lookup(User::from_uid(Uid::from_raw(uid)))?;
    }
    let Some(u) = found else {
        return Err(PrivilegeError::UnknownUser { user: user.into() });
    };
    if u.uid.is_root() {
        return Err(PrivilegeError::RootUser { user: user.into() });
    }
    let me = nix::unistd::geteuid();
    if me == u.uid {
        return Ok(None);
    }
    if !me.is_root() {
        return Err(PrivilegeError::NotRoot {
            user: user.into(),
            uid: me.as_raw(),
        });
    }
    let effective = caps::read(None, CapSet::Effective).map_err(|e| sys("capget")(e.to_string()))?;
    let missing: Vec<String> = [Capability::CAP_SETUID, Capability::CAP_SETGID]
        .into_iter()
        .filter(|c| !effective.contains(c))
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(PrivilegeError::MissingCapability {
            user: user.into(),
            missing: missing.join(" and "),
        });
    }
    let name = std::ffi::CString::new(u.name.clone()).map_err(|e| sys("user name")(e.to_string()))?;
    let groups = nix::unistd::getgrouplist(&name, u.gid).map_err(|source| PrivilegeError::Lookup {
        user: user.to_string(),
        source,
    })?;
    let group = match nix::unistd::Group::from_gid(u.gid) {
        Ok(Some(g)) => g.name,
        _ => u.gid.to_string(),
    };
    Ok(Some(Identity {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        group,
        groups,
    }))
}

/// Threads of this process (entries of /proc/self/task).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn one_thread() -> Result<(), PrivilegeError> {
    match thread_count() {
        1 => Ok(()),
        n => Err(PrivilegeError::Threads(n)),
    }
}

/// Become `id` with only [`KEPT`] (those of them root had): the bounding set cut to them, the
/// user's groups, gid and uid, permitted = effective = kept, nothing inheritable or ambient, and
/// no_new_privs, so no exec can gain anything back. Checked afterwards: uid 0 is out of reach.
pub fn drop_to(id: &Identity) -> Result<(), PrivilegeError> {
    one_thread()?;
    let read = |set| caps::read(None, set).map_err(|e| sys("capget")(e.to_string()));
    let kept: CapsHashSet = {
        let permitted = read(CapSet::Permitted)?;
        KEPT.into_iter().filter(|c| permitted.contains(c)).collect()
    };
    // The bounding set needs CAP_SETPCAP to shrink (a container's root may lack it; no_new_privs
    // below closes the same door for exec).
    if read(CapSet::Effective)?.contains(&Capability::CAP_SETPCAP) {
        for c in caps::runtime::thread_all_supported() {
            if !kept.contains(&c) && caps::has_cap(None, CapSet::Bounding, c).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, c).map_err(|e| sys("PR_CAPBSET_DROP")(e.to_string()))?;
            }
        }
    }
    // Without keep-caps, setresuid away from uid 0 clears the permitted set along with the rest.
    caps::securebits::set_keepcaps(true).map_err(|e| sys("PR_SET_KEEPCAPS")(e.to_string()))?;
    let (uid, gid) = (Uid::from_raw(id.uid), Gid::from_raw(id.gid));
    nix::unistd::setgroups(&id.groups).map_err(|e| sys("setgroups")(e.to_string()))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| sys("setresgid")(e.to_string()))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| sys("setresuid")(e.to_string()))?;
    let set =
        |set, value: &CapsHashSet| caps::set(None, set, value).map_err(|e| sys("capset")(e.to_string()));
    // Permitted first: the effective set must stay within it (the uid change emptied it already).
    set(CapSet::Permitted, &kept)?;
    set(CapSet::Effective, &kept)?;
    // Nothing inheritable; the ambient set went with the uid change (keep-caps keeps only the
    // permitted set).
    set(CapSet::Inheritable, &CapsHashSet::new())?;
    caps::securebits::set_keepcaps(false).map_err(|e| sys("PR_SET_KEEPCAPS")(e.to_string()))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| sys("PR_SET_NO_NEW_PRIVS")(e.to_string()))?;
    if nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        return Err(sys("setresuid")("uid 0 could still be regained".into()));
    }
    tracing::info!(
        user = %id.name,
        uid = id.uid,
        gid = id.gid,
        capabilities = %names(&kept),
        "dropped root privileges"
    );
    Ok(())
}

/// A start that is not root: raise into the effective set the kept capabilities that are only
/// permitted (the container image's file capabilities are permitted-only, so an exec on a runtime
/// that grants fewer of them still succeeds). What the service manager granted is otherwise left
/// as it is.
pub fn raise_kept() -> Result<(), PrivilegeError> {
    let read = |set| caps::read(None, set).map_err(|e| sys("capget")(e.to_string()));
    let permitted = read(CapSet::Permitted)?;
    let mut effective = read(CapSet::Effective)?;
    let missing: Vec<Capability> = KEPT
        .into_iter()
        .filter(|c| permitted.contains(c) && !effective.contains(c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    one_thread()?;
    effective.extend(missing);
    caps::set(None, CapSet::Effective, &effective).map_err(|e| sys("capset")(e.to_string()))
}

/// Running as uid 0 (no drop asked for): the start-up warning is due.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_set_is_the_three_network_capabilities() {
        // CAP_NET_BIND_SERVICE = 10, CAP_NET_ADMIN = 12, CAP_NET_RAW = 13.
        assert_eq!(kept_mask(), 0x3400);
        assert_eq!(kept_names(), "CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW");
    }

    #[test]
    fn empty_user_keeps_the_identity() {
        assert_eq!(resolve("").unwrap(), None);
    }

    #[test]
    fn unknown_user_names_the_setting_and_the_fix() {
        let e = resolve("cgwd-no-such-user-7f3a").unwrap_err().to_string();
        assert!(e.starts_with("daemon.user = \"cgwd-no-such-user-7f3a\""), "{e}");
        assert!(e.contains("useradd --system"), "{e}");
        assert!(e.contains("CGWD_DAEMON_USER"), "{e}");
    }

    #[test]
    fn root_is_refused_by_name_and_number() {
        for user in ["root", "0"] {
            let e = resolve(user).unwrap_err();
            assert!(matches!(e, PrivilegeError::RootUser { .. }), "{user}: {e}");
        }
    }

    #[test]
    fn nobody_resolves_or_needs_root() {
        // As root (CI), `nobody` is a drop target; as anyone else, a drop is refused up front.
        match resolve("nobody") {
            Ok(Some(id)) => {
                assert!(is_root());
                assert_eq!(id.name, "nobody");
                assert_ne!(id.uid, 0);
            }
            Ok(None) => assert_eq!(nix::unistd::geteuid().as_raw(), 65534),
            Err(PrivilegeError::NotRoot { uid, .. }) => assert_ne!(uid, 0),
            Err(PrivilegeError::UnknownUser { .. }) => println!("SKIPPED: no user `nobody` here"),
            Err(e) => panic!("{e}"),
        }
    }
}
