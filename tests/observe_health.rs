//! A tunnel driven through up → rekey → DPD timeout → down → up on a virtual clock: the exact health
//! records, in both formats, as the sinks write them.

mod common;

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cgwd::config::{HealthFormat, HealthLog};
use cgwd::observe::health::IkePhase;
use cgwd::observe::{
    HealthEvent, HealthRecord, HealthSink, HealthTracker, SaState, Side, TunnelHealth, TunnelIdentity,
};
use common::tempdir::TempDir;

const VPN: &str = "vpn-0123456789abcdef0";
const AWS_IP: &str = "203.0.113.10";

/// 2025-11-08 05:40:00.250 UTC.
fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_762_580_400_250 + ms)
}

fn identity() -> TunnelIdentity {
    TunnelIdentity {
        vpn_connection_id: VPN.into(),
        tunnel_outside_ip: AWS_IP.parse().unwrap(),
        customer_gateway_id: "cgw-0123456789abcdef0".into(),
        vpn_gateway_id: Some("vgw-0123456789abcdef0".into()),
        account_id: Some("111122223333".into()),
        region: Some("eu-west-1".into()),
        vpc_id: None,
    }
}

fn state(p1: SaState, p2: SaState) -> TunnelHealth {
    TunnelHealth {
        phase1: p1,
        phase2: p2,
        dpd_enabled: true,
        nat_t_detected: false,
        bgp_established: None,
        bgp_routes: None,
    }
}

fn aws(epoch: u64, ts: &str, details: &str, p1: &str, p2: &str) -> String {
    format!(
        r#"{{"event_timestamp":{epoch},"timestamp":"{ts}","details":"{details}","dpd_enabled":true,"nat_t_detected":false,"ike_phase1_state":"{p1}","ike_phase2_state":"{p2}","vpn_connection_id":"{VPN}","tunnel_outside_ip":"{AWS_IP}"}}"#
    )
}

fn status(up: bool, message: &str, ts: &str) -> String {
    let s = if up { "UP" } else { "DOWN" };
    format!(
        r#"{{"accountId":"111122223333","region":"eu-west-1","vpcId":null,"vpnConnectionId":"{VPN}","customerGatewayId":"cgw-0123456789abcdef0","vpnGatewayId":"vgw-0123456789abcdef0","tunnelIp":"{AWS_IP}","status":"{s}","statusMessage":"{message}","timestamp":"{ts}"}}"#
    )
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn up_rekey_dpd_timeout_down_up() {
    use SaState::{Down, Established, Negotiating, Rekeying};
    let dir = TempDir::new("observe-seq");
    let aws_path = dir.0.join("aws.jsonl");
    let status_path = dir.0.join("status.jsonl");
    let aws_sink = HealthSink::open(HealthLog::File(aws_path.clone()), HealthFormat::Aws).unwrap();
    let status_sink = HealthSink::open(HealthLog::File(status_path.clone()), HealthFormat::Status).unwrap();
    let mut t = HealthTracker::new(identity(), Some(Duration::from_secs(60)));
    let emit = |records: Vec<HealthRecord>| {
        aws_sink.write(&records).unwrap();
        status_sink.write(&records).unwrap();
        records.len()
    };
    let spi = 0xc1a2_b3c4;

    // Start: IKE_SA_INIT in flight.
    assert_eq!(emit(t.report(at(0), state(Negotiating, Down), None)), 2);
    assert_eq!(t.next_deadline(), Some(at(60_000)));
    emit(t.report(
        at(1_000),
        state(Established, Negotiating),
        Some(&HealthEvent::IkeSaUp),
    ));
    emit(t.report(
        at(1_200),
        state(Established, Established),
        Some(&HealthEvent::ChildSaUp { spi }),
    ));
    // Same state again, no event: nothing.
    assert_eq!(
        emit(t.report(at(2_000), state(Established, Established), None)),
        0
    );
    assert_eq!(emit(t.tick(at(59_999))), 0);
    assert_eq!(emit(t.tick(at(60_000))), 2);
    // Child SA rekey (we initiate).
    emit(t.report(
        at(100_000),
        state(Established, Rekeying),
        Some(&HealthEvent::CreateChildSaRequestSent { id: 5 }),
    ));
    emit(t.report(
        at(100_050),
        state(Established, Established),
        Some(&HealthEvent::CreateChildSaResponseProcessed { id: 5 }),
    ));
    assert_eq!(emit(t.tick(at(119_000))), 0);
    assert_eq!(emit(t.tick(at(120_000))), 2);
    // AWS stops answering.
    emit(t.report(
        at(150_000),
        state(Down, Down),
        Some(&HealthEvent::DpdTimeout { retransmits: 3 }),
    ));
    emit(t.report(at(151_000), state(Negotiating, Down), None));
    emit(t.report(
        at(152_000),
        state(Established, Negotiating),
        Some(&HealthEvent::IkeSaUp),
    ));
    emit(t.report(
        at(152_100),
        state(Established, Established),
        Some(&HealthEvent::ChildSaUp { spi }),
    ));

    let expected_aws = vec![
        aws(
            1762580400,
            "2025-11-08 05:40:00.250Z",
            "cgwd tunnel state changed: Phase 1 down -> negotiating, DPD enabled",
            "negotiating",
            "down",
        ),
        aws(
            1762580401,
            "2025-11-08 05:40:01.250Z",
            "cgwd tunnel established IKE_SA with AWS: 203.0.113.10",
            "established",
            "negotiating",
        ),
        aws(
            1762580401,
            "2025-11-08 05:40:01.450Z",
            "cgwd tunnel established Phase 2 SA with SPI: c1a2b3c4",
            "established",
            "established",
        ),
        aws(
            1762580460,
            "2025-11-08 05:41:00.250Z",
            "cgwd tunnel periodic status: Phase 1 established, Phase 2 established",
            "established",
            "established",
        ),
        aws(
            1762580500,
            "2025-11-08 05:41:40.250Z",
            "cgwd tunnel is sending request (id=5) for CREATE_CHILD_SA",
            "established",
            "rekeying",
        ),
        aws(
            1762580500,
            "2025-11-08 05:41:40.300Z",
            "cgwd tunnel processed response (id=5) for CREATE_CHILD_SA",
            "established",
            "established",
        ),
        aws(
            1762580520,
            "2025-11-08 05:42:00.250Z",
            "cgwd tunnel periodic status: Phase 1 established, Phase 2 established",
            "established",
            "established",
        ),
        aws(
            1762580550,
            "2025-11-08 05:42:30.250Z",
            "cgwd tunnel DPD timed out after 3 retransmits",
            "down",
            "down",
        ),
        aws(
            1762580551,
            "2025-11-08 05:42:31.250Z",
            "cgwd tunnel state changed: Phase 1 down -> negotiating",
            "negotiating",
            "down",
        ),
        aws(
            1762580552,
            "2025-11-08 05:42:32.250Z",
            "cgwd tunnel established IKE_SA with AWS: 203.0.113.10",
            "established",
            "negotiating",
        ),
        aws(
            1762580552,
            "2025-11-08 05:42:32.350Z",
            "cgwd tunnel established Phase 2 SA with SPI: c1a2b3c4",
            "established",
            "established",
        ),
    ];
    let expected_status = vec![
        status(false, "IPSEC IS DOWN", "2025-11-08T05:40:00.250Z"),
        status(true, "IPSEC IS UP", "2025-11-08T05:40:01.450Z"),
        status(true, "IPSEC IS UP", "2025-11-08T05:41:00.250Z"),
        status(true, "IPSEC IS UP", "2025-11-08T05:42:00.250Z"),
        status(
            false,
            "IPSEC IS DOWN: cgwd tunnel DPD timed out after 3 retransmits",
            "2025-11-08T05:42:30.250Z",
        ),
        status(true, "IPSEC IS UP", "2025-11-08T05:42:32.350Z"),
    ];
    assert_eq!(lines(&aws_path), expected_aws);
    assert_eq!(lines(&status_path), expected_status);
}

#[test]
fn bgp_connection_is_up_only_with_bgp_established() {
    let mut t = HealthTracker::new(identity(), None);
    let mut s = state(SaState::Established, SaState::Established);
    s.bgp_established = Some(false);
    let r = t.report(at(0), s, Some(&HealthEvent::ChildSaUp { spi: 1 }));
    let HealthRecord::Status(st) = &r[1] else {
        panic!("{r:?}")
    };
    assert_eq!(
        st.status_message,
        "BGP IS DOWN: cgwd tunnel established Phase 2 SA with SPI: 00000001"
    );
    s.bgp_established = Some(true);
    s.bgp_routes = Some(3);
    let r = t.report(at(1_000), s, None);
    assert_eq!(r.len(), 2, "{r:?}");
    let HealthRecord::Aws(a) = &r[0] else { panic!() };
    assert_eq!(a.details, "cgwd tunnel state changed: BGP established, 3 routes");
    let HealthRecord::Status(st) = &r[1] else { panic!() };
    assert_eq!(st.status_message, "3 BGP ROUTES");
    // No interval: never periodic.
    assert_eq!(t.next_deadline(), None);
    assert!(t.tick(at(10_000_000)).is_empty());
}

#[test]
fn clock_stepped_back_restarts_the_period() {
    let mut t = HealthTracker::new(identity(), Some(Duration::from_secs(60)));
    t.report(at(3_600_000), state(SaState::Negotiating, SaState::Down), None);
    assert_eq!(t.next_deadline(), Some(at(3_660_000)));
    // The wall clock jumps back an hour: the next record comes a period later, not in an hour.
    assert!(t.tick(at(0)).is_empty());
    assert_eq!(t.next_deadline(), Some(at(60_000)));
    assert_eq!(t.tick(at(60_000)).len(), 2);
}

#[test]
fn every_event_has_aws_style_details_and_lowercase_states() {
    let ip: IpAddr = AWS_IP.parse().unwrap();
    let events = [
        HealthEvent::DeleteIkeSaReceived,
        HealthEvent::DeleteChildSaReceived { spi: 0xdead_beef },
        HealthEvent::RekeyCollisionRedundantDeleted,
        HealthEvent::RekeyCollisionAsDelete,
        HealthEvent::PskMismatch,
        HealthEvent::AuthenticationFailedSent,
        HealthEvent::NoProposalChosen {
            phase: IkePhase::One,
            by: Side::Aws,
        },
        HealthEvent::NoProposalChosen {
            phase: IkePhase::Two,
            by: Side::Cgwd,
        },
        HealthEvent::TsUnacceptable { by: Side::Aws },
        HealthEvent::Phase2FailedKeepingPhase1,
        HealthEvent::UnestablishedTimeout,
        HealthEvent::CreateChildSaRequestProcessed { id: 2 },
        HealthEvent::CreateChildSaResponseSent { id: 2 },
    ];
    let mut t = HealthTracker::new(identity(), None);
    for (i, e) in events.iter().enumerate() {
        let r = t.report(at(i as u64 * 1000), state(SaState::Down, SaState::Down), Some(e));
        let HealthRecord::Aws(a) = &r[0] else { panic!() };
        assert_eq!(a.details, e.details(ip));
        let v: serde_json::Value = serde_json::from_str(&r[0].to_json()).unwrap();
        // What AWS's own subscription filter matches on (FACTS §3.1).
        assert_eq!(v["ike_phase1_state"], "down");
        assert_eq!(v["dpd_enabled"], true);
        assert_eq!(v["tunnel_outside_ip"], AWS_IP);
        assert!(
            !a.details.contains("AWS tunnel"),
            "ours is the cgwd tunnel: {}",
            a.details
        );
    }
}

#[test]
fn file_sink_reopens_after_logrotate_moves_the_file() {
    let dir = TempDir::new("observe-rotate");
    let path = dir.0.join("health.jsonl");
    let sink = HealthSink::open(HealthLog::File(path.clone()), HealthFormat::Aws).unwrap();
    let mut t = HealthTracker::new(identity(), None);
    sink.write(&t.report(at(0), state(SaState::Negotiating, SaState::Down), None))
        .unwrap();
    let rotated = dir.0.join("health.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    // Until SIGHUP, records still go to the renamed file (as with any daemon under logrotate).
    sink.write(&t.report(at(1_000), state(SaState::Established, SaState::Down), None))
        .unwrap();
    sink.reopen().unwrap();
    sink.write(&t.report(at(2_000), state(SaState::Established, SaState::Established), None))
        .unwrap();
    assert_eq!(lines(&rotated).len(), 2);
    let fresh = lines(&path);
    assert_eq!(fresh.len(), 1);
    assert!(
        fresh[0].contains(r#""ike_phase2_state":"established""#),
        "{fresh:?}"
    );
    // A status sink ignores aws records and vice versa.
    let status = HealthSink::open(HealthLog::File(dir.0.join("s.jsonl")), HealthFormat::Status).unwrap();
    status
        .write(&t.report(
            at(3_000),
            state(SaState::Down, SaState::Down),
            Some(&HealthEvent::DeleteIkeSaReceived),
        ))
        .unwrap();
    let s = lines(&dir.0.join("s.jsonl"));
    assert_eq!(s.len(), 1);
    assert!(s[0].contains(r#""status":"DOWN""#), "{s:?}");
    assert!(s[0].contains("received DELETE for IKE_SA from AWS"), "{s:?}");
}

/// This process's umask, from /proc (reading it with umask(2) would change it for every thread).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap();
    u32::from_str_radix(line.trim(), 8).unwrap()
}

#[test]
fn health_log_is_created_0640_and_never_through_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("observe-mode");
    let path = dir.0.join("health.jsonl");
    drop(HealthSink::open(HealthLog::File(path.clone()), HealthFormat::Aws).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640 & !umask(), "umask {:03o}", umask());

    // A link planted at the path (to a file root would otherwise append to) is refused, not followed.
    let victim = dir.0.join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    let link = dir.0.join("link.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let err = HealthSink::open(HealthLog::File(link.clone()), HealthFormat::Aws).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&link.display().to_string()) && text.contains("symbolic link"),
        "{text}"
    );
    // Also on SIGHUP's reopen, when the link appears after the start.
    let sink = HealthSink::open(HealthLog::File(path.clone()), HealthFormat::Aws).unwrap();
    std::fs::rename(&path, dir.0.join("health.jsonl.1")).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    assert!(sink.reopen().is_err());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
}

#[test]
fn settings_choose_format_and_interval() {
    let s = cgwd::config::Settings::from_toml(
        "[log]\nhealth = \"stdout\"\nhealth_format = \"status\"\nhealth_interval = 0\n",
        std::path::Path::new("t.toml"),
        &|_| None,
    )
    .unwrap();
    assert_eq!(s.log.health, HealthLog::Stdout);
    assert_eq!(s.log.health_format, HealthFormat::Status);
    assert_eq!(s.log.health_interval, 0);
    // Old settings files (only `health`) keep working: aws format, 60 s.
    let old = cgwd::config::Settings::from_toml(
        "[log]\nhealth = \"stderr\"\n",
        std::path::Path::new("t.toml"),
        &|_| None,
    )
    .unwrap();
    assert_eq!(old.log.health_format, HealthFormat::Aws);
    assert_eq!(old.log.health_interval, cgwd::config::DEFAULT_HEALTH_INTERVAL);
    let env = cgwd::config::Settings::from_toml("", std::path::Path::new("t.toml"), &|k| {
        (k == "CGWD_LOG_HEALTH_FORMAT").then(|| "status".to_string())
    })
    .unwrap();
    assert_eq!(env.log.health_format, HealthFormat::Status);
    assert!(
        cgwd::config::Settings::from_toml(
            "[log]\nhealth_format = \"text\"\n",
            std::path::Path::new("t.toml"),
            &|_| None
        )
        .is_err()
    );
    let sink = HealthSink::from_settings(&s.log).unwrap();
    assert_eq!(sink.format(), HealthFormat::Status);
}

fn status_tunnel(n: u8, aws: IpAddr, phase: SaState) -> cgwd::daemon::status::TunnelStatus {
    use cgwd::daemon::status::{PhaseState, Traffic, TunnelStatus};
    let p = match phase {
        SaState::Established => PhaseState::Established,
        SaState::Rekeying => PhaseState::Rekeying,
        SaState::Negotiating => PhaseState::Negotiating,
        SaState::Down => PhaseState::Down,
    };
    TunnelStatus {
        tunnel: n,
        ike_phase1_state: p,
        ike_phase2_state: p,
        local_outside: "192.0.2.1".parse().unwrap(),
        aws_outside: aws,
        inside: "169.254.10.2/30".parse().unwrap(),
        aws_inside: "169.254.10.1".parse().unwrap(),
        phase1_algorithms: None,
        phase2_algorithms: None,
        spi_in: None,
        spi_out: None,
        uptime_secs: None,
        next_rekey_secs: None,
        traffic: Traffic::default(),
        drops: Default::default(),
        nat_t_detected: true,
        dpd_enabled: true,
        liveness: "healthy".into(),
        probe_rtt_ms: None,
        active: false,
        reason: None,
        bgp: None,
    }
}

#[test]
fn reporter_follows_status_snapshots_and_events_of_both_tunnels() {
    use cgwd::observe::HealthReporter;
    use cgwd::sa::TunnelId;
    let dir = TempDir::new("observe-reporter");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/aws-static.xml");
    let (conn, mut settings) = cgwd::config::load(std::path::Path::new(config), None).unwrap();
    let path = dir.0.join("status.jsonl");
    settings.log.health = HealthLog::File(path.clone());
    settings.log.health_format = HealthFormat::Status;
    settings.aws.vpc_id = Some("vpc-0123456789abcdef0".into());
    let mut rep = HealthReporter::new(&conn, &settings).unwrap();
    let ips = [conn.tunnels[0].aws_outside, conn.tunnels[1].aws_outside];
    let mut snap = cgwd::daemon::status::StatusSnapshot {
        cgwd_version: "test".into(),
        vpn_connection_id: conn.id.clone(),
        interface: "cgwd0".into(),
        failover_policy: "prefer-tunnel-1".into(),
        outbound: "none".into(),
        uptime_secs: 0,
        failovers: 0,
        ike_input: Default::default(),
        ike_half_open: 0,
        tunnels: vec![
            status_tunnel(1, ips[0], SaState::Negotiating),
            status_tunnel(2, ips[1], SaState::Negotiating),
        ],
        routes: Vec::new(),
        connections: Vec::new(),
        reload: None,
        bgp_routes: Vec::new(),
    };
    rep.status_tick(at(0), &snap, None).unwrap();
    snap.tunnels[0] = status_tunnel(1, ips[0], SaState::Established);
    rep.status_tick(at(1_000), &snap, None).unwrap();
    rep.status_tick(at(2_000), &snap, None).unwrap(); // nothing new
    let down = TunnelHealth {
        dpd_enabled: true,
        nat_t_detected: true,
        ..TunnelHealth::default()
    };
    rep.event(
        at(3_000),
        TunnelId::One,
        Some(down),
        &HealthEvent::DpdTimeout { retransmits: 5 },
    )
    .unwrap();
    assert_eq!(rep.next_deadline(), Some(at(60_000)));
    rep.tick(at(60_000)).unwrap();
    let got: Vec<serde_json::Value> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(String, String, String)> = got
        .iter()
        .map(|v| {
            (
                v["tunnelIp"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
                v["statusMessage"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let (t1, t2) = (ips[0].to_string(), ips[1].to_string());
    let dpd = "IPSEC IS DOWN: cgwd tunnel DPD timed out after 5 retransmits".to_string();
    assert_eq!(
        summary,
        vec![
            (t1.clone(), "DOWN".into(), "IPSEC IS DOWN".into()),
            (t2.clone(), "DOWN".into(), "IPSEC IS DOWN".into()),
            (t1.clone(), "UP".into(), "IPSEC IS UP".into()),
            (t1.clone(), "DOWN".into(), dpd.clone()),
            (t1.clone(), "DOWN".into(), dpd),
            (t2.clone(), "DOWN".into(), "IPSEC IS DOWN".into()),
        ]
    );
    assert_eq!(got[0]["vpcId"], "vpc-0123456789abcdef0");
    assert_eq!(got[0]["vpnConnectionId"], conn.id.as_str());
    assert_eq!(got[0]["customerGatewayId"], conn.customer_gateway_id.as_str());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn sa() -> impl Strategy<Value = SaState> {
        prop_oneof![
            Just(SaState::Established),
            Just(SaState::Rekeying),
            Just(SaState::Negotiating),
            Just(SaState::Down),
        ]
    }

    fn health() -> impl Strategy<Value = TunnelHealth> {
        (
            sa(),
            sa(),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(phase1, phase2, dpd_enabled, nat_t_detected, bgp_established)| {
                TunnelHealth {
                    phase1,
                    phase2,
                    dpd_enabled,
                    nat_t_detected,
                    bgp_established,
                    bgp_routes: bgp_established.map(|_| 2),
                }
            })
    }

    fn event() -> impl Strategy<Value = Option<HealthEvent>> {
        proptest::option::of(prop_oneof![
            Just(HealthEvent::IkeSaUp),
            any::<u32>().prop_map(|spi| HealthEvent::ChildSaUp { spi }),
            any::<u32>().prop_map(|id| HealthEvent::CreateChildSaRequestSent { id }),
            any::<u32>().prop_map(|retransmits| HealthEvent::DpdTimeout { retransmits }),
            Just(HealthEvent::DeleteIkeSaReceived),
            Just(HealthEvent::PskMismatch),
        ])
    }

    proptest! {
        /// Whatever the daemon reports, in whatever order: an event always gives exactly one `aws`
        /// record, a changed state always gives one, status records only on UP/DOWN flips, and
        /// periodic records never closer than the interval.
        #[test]
        fn records_follow_the_rules(
            steps in proptest::collection::vec((health(), event(), 0u64..90_000, any::<bool>()), 1..40)
        ) {
            let mut t = HealthTracker::new(identity(), Some(Duration::from_secs(60)));
            let mut now = 0u64;
            let mut prev: Option<TunnelHealth> = None;
            let mut last_status: Option<String> = None;
            let mut last_periodic: Option<u64> = None;
            for (h, e, dt, tick) in steps {
                now += dt;
                let recs = if tick {
                    let r = t.tick(at(now));
                    if !r.is_empty() {
                        if let Some(p) = last_periodic {
                            prop_assert!(now - p >= 60_000);
                        }
                        last_periodic = Some(now);
                        prop_assert_eq!(r.len(), 2);
                    }
                    r
                } else {
                    let r = t.report(at(now), h, e.as_ref());
                    let aws = r.iter().filter(|x| matches!(x, HealthRecord::Aws(_))).count();
                    let expect_aws = usize::from(e.is_some() || prev != Some(h));
                    prop_assert_eq!(aws, expect_aws);
                    for x in &r {
                        if let HealthRecord::Status(s) = x {
                            let st = serde_json::to_value(s.status).unwrap().as_str().unwrap().to_string();
                            prop_assert_ne!(Some(&st), last_status.as_ref());
                            prop_assert_eq!(st == "UP", h.is_up());
                        }
                    }
                    prev = Some(h);
                    r
                };
                for x in &recs {
                    let v: serde_json::Value = serde_json::from_str(&x.to_json()).unwrap();
                    if let HealthRecord::Aws(_) = x {
                        for k in ["ike_phase1_state", "ike_phase2_state"] {
                            let s = v[k].as_str().unwrap();
                            prop_assert!(["established", "rekeying", "negotiating", "down"].contains(&s));
                        }
                        prop_assert_eq!(v["event_timestamp"].as_u64().unwrap(), 1_762_580_400 + (250 + now) / 1000);
                    } else {
                        last_status = Some(v["status"].as_str().unwrap().to_string());
                    }
                }
            }
        }
    }
}
