//! A strongSwan charon (5.9.x) in a network namespace, configured and queried with swanctl, stopped on
//! drop. Same recipe as the project's lab (see the notes in each step): STRONGSWAN_CONF for the config
//! path, a private mount namespace with a tmpfs /run for the pid file, a vici socket in our temp dir,
//! kernel-libipsec (userspace ESP, so it works on kernels without XFRM; it needs ESP-in-UDP: encap=yes).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::run;

/// `aws-lab env`'s T1_IKE / T1_ESP: every algorithm AWS allows by default for a tunnel (AWS's full
/// lists), as charon's proposals when it plays AWS.
pub const AWS_IKE: &str = "aes128-aes256-sha1-sha256-sha384-sha512-modp1024-modp2048-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384-ecp521-modp1024s160-modp2048s224-modp2048s256,\
aes128gcm16-aes256gcm16-prfsha1-prfsha256-prfsha384-prfsha512-modp1024-modp2048-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384-ecp521-modp1024s160-modp2048s224-modp2048s256";
pub const AWS_ESP: &str = "aes128-aes256-sha1-sha256-sha384-sha512-modp1024-modp1536-modp2048-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384-ecp521-modp1024s160-modp2048s224-modp2048s256,\
aes128gcm16-aes256gcm16-modp1024-modp1536-modp2048-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384-ecp521-modp1024s160-modp2048s224-modp2048s256";

pub struct Charon {
    child: Child,
    pub dir: PathBuf,
    pub ns: String,
}

/// One connection charon knows (playing AWS, or an initiator facing cgwd).
pub struct Conn {
    pub local: String,
    pub remote: String,
    pub psk: String,
    /// strongSwan proposal keywords, e.g. `aes256gcm16-prfsha384-ecp384`.
    pub ike: String,
    pub esp: String,
    /// `none` (wait for cgwd) or `trap`/`start`.
    pub start_action: &'static str,
    pub dpd_delay_s: u32,
    pub local_ts: String,
    pub remote_ts: String,
    /// RFC 7383 fragmentation (`yes`, charon's default, or `no`).
    pub fragmentation: &'static str,
    /// Certificate authentication instead of the PSK: (our certificate file, the CA certificate
    /// file the peer's must chain to, our ID, the peer's ID); the key in `private/` of the
    /// charon's directory ([`Charon::load_with_credentials`]).
    pub pubkey: Option<(PathBuf, PathBuf, String, String)>,
    /// With [`Self::pubkey`]: the remote `auth` round, `pubkey` or with signature constraints,
    /// e.g. `ike:pubkey-sha384-sha512` (as initiator, charon then announces only those hashes).
    pub remote_pubkey_auth: &'static str,
}

impl Conn {
    pub fn new(local: &str, remote: &str, psk: &str, ike: &str, esp: &str) -> Self {
        Conn {
            local: local.into(),
            remote: remote.into(),
            psk: psk.into(),
            ike: ike.into(),
            esp: esp.into(),
            start_action: "none",
            dpd_delay_s: 10,
            local_ts: "0.0.0.0/0".into(),
            remote_ts: "0.0.0.0/0".into(),
            fragmentation: "yes",
            pubkey: None,
            remote_pubkey_auth: "pubkey",
        }
    }

    /// swanctl.conf with AWS's settings (encap forced, no MOBIKE, unique=replace, PSK with IP IDs, or
    /// pubkey with the certificates' DNs as IDs).
    pub fn swanctl_conf(&self) -> String {
        let text = self.psk_conf();
        match &self.pubkey {
            None => text,
            Some((cert, ca, local_id, remote_id)) => {
                let local = format!("auth = psk\n            id = {}\n", self.local);
                let remote = format!("auth = psk\n            id = {}\n", self.remote);
                let text = text
                    .replacen(
                        &local,
                        &format!(
                            "auth = pubkey\n            certs = {}\n            id = \"{local_id}\"\n",
                            cert.display()
                        ),
                        1,
                    )
                    .replacen(
                        &remote,
                        &format!(
                            "auth = {}\n            cacerts = {}\n            id = \"{remote_id}\"\n",
                            self.remote_pubkey_auth,
                            ca.display()
                        ),
                        1,
                    );
                // No shared secret: the key comes from the credentials directory.
                text.split("secrets {").next().unwrap_or_default().to_string()
            }
        }
    }

    fn psk_conf(&self) -> String {
        format!(
            r#"connections {{
    t {{
        version = 2
        local_addrs = {local}
        remote_addrs = {remote}
        encap = yes
        mobike = no
        fragmentation = {frag}
        unique = replace
        reauth_time = 0
        dpd_delay = {dpd}s
        proposals = {ike}
        local {{
            auth = psk
            id = {local}
        }}
        remote {{
            auth = psk
            id = {remote}
        }}
        children {{
            t {{
                mode = tunnel
                local_ts = {lts}
                remote_ts = {rts}
                esp_proposals = {esp}
                start_action = {start}
            }}
        }}
    }}
}}
secrets {{
    ike-t {{
        id-a = {local}
        id-b = {remote}
        secret = "{psk}"
    }}
}}
"#,
            local = self.local,
            remote = self.remote,
            dpd = self.dpd_delay_s,
            ike = self.ike,
            esp = self.esp,
            lts = self.local_ts,
            rts = self.remote_ts,
            start = self.start_action,
            psk = self.psk,
            frag = self.fragmentation,
        )
    }
}

const CHARON: &str = "/usr/lib/ipsec/charon";

impl Charon {
    pub fn start(ns: &str, dir: &Path) -> io::Result<Self> {
        Self::start_with(ns, dir, "")
    }

    /// Like [`Charon::start`], with `extra` lines added to the `charon { }` section of strongswan.conf
    /// (e.g. `fragment_size = 200`).
    pub fn start_with(ns: &str, dir: &Path, extra: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let vici = dir.join("charon.vici");
        let log = dir.join("charon.log");
        // Plugin order: openssl first (ECP groups, fast AES); kernel-libipsec does ESP in userspace;
        // routing_table_prio puts charon's table-220 rule after main so it cannot steal traffic;
        // flush_line makes the log readable while charon runs.
        let conf = format!(
            r#"charon {{
    load = random nonce openssl aes sha1 sha2 hmac gcm gmp kdf pem pkcs1 pkcs8 x509 kernel-libipsec kernel-netlink socket-default vici
    install_routes = no
    install_virtual_ip = no
    routing_table = 220
    routing_table_prio = 32768
    retransmit_timeout = 1
    retransmit_base = 1.4
    retransmit_tries = 3
    {extra}
    plugins {{
        vici {{
            socket = unix://{vici}
        }}
    }}
    filelog {{
        charon {{
            path = {log}
            time_format = %T
            time_add_ms = yes
            append = yes
            flush_line = yes
            default = 1
            ike = 2
            cfg = 2
            chd = 4
            enc = 1
        }}
    }}
}}
"#,
            vici = vici.display(),
            log = log.display(),
        );
        let conf_path = dir.join("strongswan.conf");
        std::fs::write(&conf_path, conf)?;
        let stdout = std::fs::File::create(dir.join("charon.stdout"))?;
        // ip netns exec, env, unshare (no --fork) and `sh -c exec` all exec in place: the child IS charon.
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "env"])
            .arg(format!("STRONGSWAN_CONF={}", conf_path.display()))
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size=4m,mode=755 cgwdtest-run /run && exec {CHARON}"
            ))
            .stdin(Stdio::null())
            .stdout(stdout.try_clone()?)
            .stderr(stdout)
            .spawn()?;
        let charon = Charon {
            child,
            dir: dir.to_path_buf(),
            ns: ns.to_string(),
        };
        #[allow(clippy::disallowed_methods)] // test harness: real time
        let deadline = Instant::now() + Duration::from_secs(15);
        #[allow(clippy::disallowed_methods)]
        while !vici.exists() {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "charon did not come up: {}",
                    charon.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(charon)
    }

    pub fn uri(&self) -> String {
        format!("unix://{}", self.dir.join("charon.vici").display())
    }

    /// `swanctl <command> --uri ... <args>`: swanctl wants the command first.
    pub fn swanctl(&self, command: &str, args: &[&str]) -> io::Result<String> {
        let uri = self.uri();
        let mut all = vec![command, "--uri", &uri];
        all.extend_from_slice(args);
        run("swanctl", &all)
    }

    /// [`Self::load`] for a pubkey connection: swanctl reads the credentials in `x509/`,
    /// `x509ca/` and `private/` next to the swanctl.conf it is given (this charon's directory; it
    /// does not use SWANCTL_DIR then), and its output is kept in `swanctl.load.out`.
    pub fn load_with_credentials(&self, conn: &Conn) -> io::Result<()> {
        let file = self.dir.join("swanctl.conf");
        std::fs::write(&file, conn.swanctl_conf())?;
        let out = Command::new("swanctl")
            .args(["--load-all", "--uri", &self.uri(), "--noprompt", "--file"])
            .arg(&file)
            .output()?;
        std::fs::write(self.dir.join("swanctl.load.out"), &out.stdout)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "swanctl --load-all: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    pub fn load(&self, conn: &Conn) -> io::Result<()> {
        let file = self.dir.join("swanctl.conf");
        std::fs::write(&file, conn.swanctl_conf())?;
        let file = file.display().to_string();
        self.swanctl("--load-all", &["--noprompt", "--file", &file])
            .map(|_| ())
    }

    pub fn list_sas(&self) -> String {
        self.swanctl("--list-sas", &[]).unwrap_or_else(|e| e.to_string())
    }

    /// `--list-sas`, polled for up to 3 s until the IKE SA is established and the Child SA with
    /// `want_spis` (charon's inbound, outbound) installed (charon installs it right after the last
    /// message): the last status and raw output.
    pub fn wait_for_child(&self, want_spis: (u32, u32)) -> (SaStatus, String) {
        #[allow(clippy::disallowed_methods)] // test harness: real time
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let out = self.list_sas();
            let s = parse_list_sas(&out);
            #[allow(clippy::disallowed_methods)]
            let late = Instant::now() > deadline;
            if (s.ike_established && s.child_installed && s.child_spis == Some(want_spis)) || late {
                return (s, out);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `swanctl <args[0]> --uri ... <args[1..]>` in the background, output discarded.
    pub fn swanctl_spawn(&self, args: &[&str]) -> io::Result<Child> {
        let uri = self.uri();
        let (command, rest) = args.split_first().ok_or_else(|| io::Error::other("no command"))?;
        Command::new("swanctl")
            .args([command, "--uri", &uri])
            .args(rest)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// Starts `swanctl --initiate --child t` in the background (it blocks until the exchange ends).
    pub fn initiate(&self) -> io::Result<Child> {
        Command::new("swanctl")
            .args([
                "--initiate",
                "--uri",
                &self.uri(),
                "--child",
                "t",
                "--timeout",
                "10",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = run("kill", &["-TERM", &pid]);
        let mut exited = false;
        for _ in 0..30 {
            if let Ok(Some(_)) = self.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Keep the config and log of a failed test for a post-mortem; otherwise leave nothing behind.
        if !std::thread::panicking() && std::env::var_os("CGWD_KEEP_TEST_FILES").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("charon files kept in {}", self.dir.display());
        }
    }
}

/// What `swanctl --list-sas` says about the one IKE SA and its Child SA.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SaStatus {
    pub ike_established: bool,
    pub child_installed: bool,
    /// Child SA SPIs as charon sees them: (inbound, outbound).
    pub child_spis: Option<(u32, u32)>,
    /// The IKE SA's proposal line, e.g. `AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384`.
    pub ike_suite: String,
    /// The Child SA's proposal, e.g. `ESP:AES_GCM_16-256`.
    pub esp_suite: String,
}

pub fn parse_list_sas(out: &str) -> SaStatus {
    let mut s = SaStatus::default();
    let (mut inb, mut outb) = (None, None);
    for line in out.lines() {
        let l = line.trim();
        if l.contains("ESTABLISHED") {
            s.ike_established = true;
        }
        if l.contains("INSTALLED") {
            s.child_installed = true;
            if let Some(p) = l.split(", ").find(|p| p.starts_with("ESP:")) {
                s.esp_suite = p.to_string();
            }
        }
        if let Some(rest) = l.strip_prefix("in ") {
            inb = rest
                .split_whitespace()
                .next()
                .and_then(|h| u32::from_str_radix(h.trim_end_matches(','), 16).ok());
        }
        if let Some(rest) = l.strip_prefix("out ") {
            outb = rest
                .split_whitespace()
                .next()
                .and_then(|h| u32::from_str_radix(h.trim_end_matches(','), 16).ok());
        }
        if (l.starts_with("AES") || l.starts_with("3DES")) && s.ike_suite.is_empty() {
            s.ike_suite = l.to_string();
        }
    }
    if let (Some(i), Some(o)) = (inb, outb) {
        s.child_spis = Some((i, o));
    }
    s
}

/// Child SA keys charon derived, as its log shows them at `chd = 4` (the most recent Child SA):
/// encryption and integrity keys, initiator→responder and responder→initiator ("initiator" being the
/// side that started the exchange that created the Child SA).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoggedChildKeys {
    pub encr_i: Vec<u8>,
    pub encr_r: Vec<u8>,
    pub integ_i: Vec<u8>,
    pub integ_r: Vec<u8>,
}

/// Every Child SA key set in charon's log, oldest first (charon may have rekeyed since the one a test
/// checks, so tests look for theirs among all of them).
pub fn logged_child_key_sets(log: &str) -> Vec<LoggedChildKeys> {
    let marker = "encryption initiator key => ";
    let starts: Vec<usize> = log.match_indices(marker).map(|(i, _)| i).collect();
    let mut sets = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let line_start = log[..start].rfind('\n').map_or(0, |i| i + 1);
        let end = starts
            .get(n + 1)
            .map_or(log.len(), |&e| log[..e].rfind('\n').map_or(e, |i| i + 1));
        if let Some(k) = logged_child_keys(&log[line_start..end]) {
            sets.push(k);
        }
    }
    sets
}

pub fn logged_child_keys(log: &str) -> Option<LoggedChildKeys> {
    let mut keys = LoggedChildKeys::default();
    let mut seen_any = false;
    let mut current: Option<(usize, usize)> = None; // (which key, expected length)
    for line in log.lines() {
        let Some(rest) = line.split("[CHD] ").nth(1) else {
            continue;
        };
        let header = [
            "encryption initiator key => ",
            "encryption responder key => ",
            "integrity initiator key => ",
            "integrity responder key => ",
        ]
        .iter()
        .position(|h| rest.starts_with(h));
        if let Some(which) = header {
            let len: usize = rest
                .split("=> ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            if which == 0 {
                keys = LoggedChildKeys::default();
            }
            seen_any = true;
            current = Some((which, len));
            continue;
        }
        let Some((which, len)) = current else {
            continue;
        };
        let t = rest.trim_start();
        let Some((offset, bytes)) = t.split_once(": ") else {
            current = None;
            continue;
        };
        if offset.parse::<usize>().is_err() {
            current = None;
            continue;
        }
        let target = match which {
            0 => &mut keys.encr_i,
            1 => &mut keys.encr_r,
            2 => &mut keys.integ_i,
            _ => &mut keys.integ_r,
        };
        for tok in bytes.split_whitespace() {
            if target.len() >= len {
                break;
            }
            match u8::from_str_radix(tok, 16) {
                Ok(b) if tok.len() == 2 => target.push(b),
                _ => break,
            }
        }
    }
    seen_any.then_some(keys)
}
