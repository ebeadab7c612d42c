//! An authenticated AWS side that misbehaves (issue #17): its messages are made with the crate's own
//! IKE encoder and sealed under the real AWS IKE SA's keys, so cgwd sees exactly what such a peer
//! would send.

use super::*;
use crate::crypto::DhPrivate;
use crate::ike::FailReason;
use crate::ike::proposal::{self, PfsMode, Prefer, Proposal, Selection};
use crate::sa::TrafficSelector;
use crate::wire::ike::{
    DeleteRepr, ExchangeType, Message, NotifyRepr, NotifyType, PayloadRepr, ProtocolId, SaRepr,
};

/// AWS's IKE SA that cgwd's tunnel uses.
fn aws_sa(lab: &mut Lab) -> &mut IkeSa {
    let spis = lab.gw.tunnel(lab.t).sa.expect("an IKE SA").spis();
    lab.aws
        .iter_mut()
        .find(|sa| sa.spis() == spis)
        .expect("AWS's side of the tunnel's IKE SA")
}

/// The payloads of a message cgwd sent, opened with AWS's keys.
fn opened(aws: &mut IkeSa, data: &[u8]) -> Vec<PayloadRepr> {
    let msg = Message::parse(data).expect("an IKE message");
    aws.open(&msg).expect("sealed under the IKE SA's keys")
}

/// cgwd's IKE datagrams sent since output `mark`: (exchange, message).
fn sent_since(lab: &Lab, mark: usize) -> Vec<(u8, Vec<u8>)> {
    lab.outputs[mark..]
        .iter()
        .filter_map(|o| match o {
            Output::Transmit { tx, .. } if tx.data.len() >= 28 => Some((tx.data[18], tx.data.clone())),
            _ => None,
        })
        .collect()
}

fn events_since(lab: &Lab, mark: usize) -> Vec<&TunnelEvent> {
    lab.outputs[mark..]
        .iter()
        .filter_map(|o| match o {
            Output::Event { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

fn installs_since(lab: &Lab, mark: usize) -> Vec<&ChildSa> {
    lab.outputs[mark..]
        .iter()
        .filter_map(|o| match o {
            Output::Sa(SaCommand::Install(c) | SaCommand::InstallInbound(c)) => Some(c),
            _ => None,
        })
        .collect()
}

fn has_notify(p: &[PayloadRepr], kind: NotifyType) -> bool {
    p.iter()
        .any(|x| matches!(x, PayloadRepr::Notify(n) if n.kind == kind))
}

/// The first IPv4 TSi and TSr of a message.
fn selectors(p: &[PayloadRepr]) -> (Option<TrafficSelector>, Option<TrafficSelector>) {
    let ts = |initiator: bool| {
        p.iter().find_map(|x| match x {
            PayloadRepr::TsI(t) if initiator => t.first().and_then(crate::ike::ts::from_wire),
            PayloadRepr::TsR(t) if !initiator => t.first().and_then(crate::ike::ts::from_wire),
            _ => None,
        })
    };
    (ts(true), ts(false))
}

fn child_failed(ev: &TunnelEvent) -> Option<&FailReason> {
    match ev {
        TunnelEvent::Ike(e) => match &**e {
            Event::ChildFailed(f) => Some(&f.reason),
            _ => None,
        },
        _ => None,
    }
}

fn ke(group: u16, seed: u64) -> PayloadRepr {
    let g = crate::suite::DhGroup::new(group).expect("a known group");
    let d = DhPrivate::generate(g, &mut SeededRandom::new(seed)).expect("a DH key");
    PayloadRepr::Ke {
        group,
        data: d.public_value().to_vec(),
    }
}

/// A CREATE_CHILD_SA request from AWS for an additional Child SA (no REKEY_SA) whose proposal names
/// `spi`, sealed under AWS's keys with AWS's next message ID.
fn create_child_request(aws: &mut IkeSa, spi: u32, seed: u64) -> Vec<u8> {
    let ts = (aws.cfg.local_ts, aws.cfg.remote_ts);
    child_request(aws, spi, seed, None, ts)
}

/// A CREATE_CHILD_SA request from AWS: rekeying the Child SA AWS knows by inbound SPI `rekey` (if
/// any), proposing `spi`, PFS with group 19, selectors `(TSi, TSr)`.
fn child_request(
    aws: &mut IkeSa,
    spi: u32,
    seed: u64,
    rekey: Option<u32>,
    (tsi, tsr): (TrafficSelector, TrafficSelector),
) -> Vec<u8> {
    let cfg = aws.cfg.clone();
    let mut payloads: Vec<PayloadRepr> = rekey
        .map(|old| {
            PayloadRepr::Notify(NotifyRepr {
                protocol: ProtocolId::ESP,
                spi: old.to_be_bytes().to_vec(),
                kind: NotifyType::REKEY_SA,
                data: Vec::new(),
            })
        })
        .into_iter()
        .collect();
    payloads.extend([
        PayloadRepr::Sa(SaRepr {
            proposals: proposal::esp_offer(&cfg.esp, spi, true)
                .iter()
                .map(Proposal::to_repr)
                .collect(),
        }),
        PayloadRepr::Nonce(vec![seed as u8; 32]),
        ke(19, seed),
        PayloadRepr::TsI(crate::ike::ts::to_wire(&tsi)),
        PayloadRepr::TsR(crate::ike::ts::to_wire(&tsr)),
    ]);
    let id = aws.next_request_id;
    aws.next_request_id += 1;
    aws.build(ExchangeType::CREATE_CHILD_SA, id, false, &payloads)
        .expect("sealed")
}

/// How a hostile AWS bends its answer to cgwd's Child SA rekey: its SPI, TSi, TSr.
type Bend = dyn FnOnce(&mut u32, &mut TrafficSelector, &mut TrafficSelector);

/// cgwd rekeys its Child SA; AWS answers it with a well-formed answer (a fresh SA of the offer,
/// PFS with cgwd's group) that `bend` changes. Returns cgwd's new inbound SPI (in its offer).
fn rekey_answered_with(lab: &mut Lab, bend: Box<Bend>) -> u32 {
    let now = lab.now;
    assert!(lab.gw.rekey(lab.t, now, false));
    lab.collect();
    let i = lab
        .wire
        .iter()
        .position(|(_, to_aws, d)| *to_aws && d[18] == 36 && d[19] & 0x20 == 0)
        .expect("cgwd's CREATE_CHILD_SA request");
    let (_, _, request) = lab.wire.remove(i);
    let msg_id = u32::from_be_bytes(request[20..24].try_into().unwrap());
    let aws = aws_sa(lab);
    let p = opened(aws, &request);
    let offered: Vec<Proposal> = p
        .iter()
        .find_map(|x| match x {
            PayloadRepr::Sa(sa) => Some(sa.proposals.iter().map(Proposal::from_repr).collect()),
            _ => None,
        })
        .expect("an SA offer");
    let group = p
        .iter()
        .find_map(|x| match x {
            PayloadRepr::Ke { group, .. } => Some(*group),
            _ => None,
        })
        .expect("PFS");
    let (Some(mut tsi), Some(mut tsr)) = selectors(&p) else {
        panic!("selectors");
    };
    let prefer = Prefer {
        prf: None,
        ke: crate::suite::DhGroup::new(group),
    };
    let mut spi = 0x5eed_0001;
    bend(&mut spi, &mut tsi, &mut tsr);
    let (chosen, _, cgwd_spi) = proposal::select_esp_with(
        &offered,
        &aws.cfg.esp,
        PfsMode::Require,
        0x5eed_0001,
        Selection::Lowest,
        prefer,
    )
    .expect("AWS accepts the offer");
    let mut chosen = chosen.to_repr();
    chosen.spi = spi.to_be_bytes().to_vec();
    let answer = [
        PayloadRepr::Sa(SaRepr {
            proposals: vec![chosen],
        }),
        PayloadRepr::Nonce(vec![0x42; 32]),
        ke(group, 99),
        PayloadRepr::TsI(crate::ike::ts::to_wire(&tsi)),
        PayloadRepr::TsR(crate::ike::ts::to_wire(&tsr)),
    ];
    // AWS has answered this request as far as its message IDs go.
    aws.peer_next_id = msg_id + 1;
    let data = aws
        .build(ExchangeType::CREATE_CHILD_SA, msg_id, true, &answer)
        .expect("sealed");
    lab.spoof_from_aws(&data);
    cgwd_spi
}

/// After AWS answered cgwd's Child SA rekey with an SA cgwd must not use: nothing installed, the
/// old SA kept, a DELETE for the SA AWS made, and a later rekey (with an honest AWS) succeeds.
fn assert_rekey_refused_then_retried(lab: &mut Lab, mark: usize, new_spi: u32, why: &str) {
    let old = lab.gw.tunnel(lab.t).status().unwrap().child_spis;
    assert!(installs_since(lab, mark).is_empty(), "{why}: nothing installed");
    assert!(
        events_since(lab, mark)
            .iter()
            .any(|e| matches!(child_failed(e), Some(FailReason::Protocol { what }) if what.contains(why))),
        "{why}: the rekey failed"
    );
    let deletes: Vec<Vec<PayloadRepr>> = sent_since(lab, mark)
        .into_iter()
        .filter(|(x, _)| *x == 37)
        .map(|(_, d)| opened(aws_sa(lab), &d))
        .collect();
    let wanted = PayloadRepr::Delete(DeleteRepr {
        protocol: ProtocolId::ESP,
        spis: vec![new_spi],
    });
    assert!(
        deletes.iter().any(|p| p.contains(&wanted)),
        "{why}: DELETE of the SA AWS made: {deletes:?}"
    );
    lab.run_for(Duration::from_millis(100));
    assert!(lab.up());
    assert_eq!(
        lab.gw.tunnel(lab.t).status().unwrap().child_spis,
        old,
        "{why}: old SA kept"
    );
    // Tried again 1-5 s later; the honest AWS answers it.
    lab.run_for(Duration::from_secs(6));
    assert!(lab.up());
    assert_ne!(
        lab.gw.tunnel(lab.t).status().unwrap().child_spis,
        old,
        "{why}: rekeyed later"
    );
    assert!(lab.refused.is_empty(), "{:?}", lab.refused);
}

/// RFC 4303 §2.1: AWS answering cgwd's IKE_AUTH with ESP SPI 7 (reserved) fails the Child SA and,
/// a tunnel without its Child SA carrying nothing, the IKE SA; the next attempt comes up.
#[test]
fn a_reserved_spi_in_awss_ike_auth_answer_fails_that_ike_sa() {
    let mut lab = Lab::new(40);
    let mut bent = false;
    for _ in 0..200 {
        lab.run_for(Duration::from_millis(1));
        if let Some(sa) = lab
            .aws
            .iter_mut()
            .find(|sa| sa.state() == crate::ike::State::InitDone)
            && !bent
        {
            sa.hs.as_mut().unwrap().child_spi = 7;
            bent = true;
        }
    }
    assert!(bent);
    lab.run_for(Duration::from_secs(5));
    let installed = installs_since(&lab, 0);
    assert!(installed.iter().all(|c| c.outbound.spi.0 >= 256), "{installed:?}");
    assert!(events_since(&lab, 0).iter().any(|e| {
        matches!(child_failed(e), Some(FailReason::Protocol { what }) if what.contains("reserved SPI"))
    }));
    assert!(lab.up(), "the next IKE SA comes up");
}

/// AWS proposing ESP SPI 0 in its IKE_AUTH (cgwd responding): NO_PROPOSAL_CHOSEN, nothing
/// installed, nothing for the data plane to refuse.
#[test]
fn spi_zero_in_awss_ike_auth_request_is_no_proposal_chosen() {
    let mut lab = Lab::new(41);
    lab.cut = true;
    lab.run_for(Duration::from_secs(5));
    lab.cut = false;
    lab.aws.clear();
    lab.aws_initiates();
    lab.aws[0].hs.as_mut().unwrap().child_spi = 0;
    let mark = lab.outputs.len();
    lab.run_for(Duration::from_millis(100));
    assert!(installs_since(&lab, mark).is_empty());
    assert!(lab.refused.is_empty(), "{:?}", lab.refused);
    assert!(events_since(&lab, mark).iter().any(|e| matches!(
        child_failed(e),
        Some(FailReason::NoProposalChosen { by_peer: false, .. })
    )));
}

/// AWS asking for an additional Child SA with ESP SPI 0 gets NO_PROPOSAL_CHOSEN; nothing installed.
#[test]
fn spi_zero_in_a_create_child_sa_request_is_no_proposal_chosen() {
    let mut lab = Lab::new(42);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let mark = lab.outputs.len();
    let request = create_child_request(aws_sa(&mut lab), 0, 1);
    lab.spoof_from_aws(&request);
    let answers = sent_since(&lab, mark);
    let (_, answer) = answers.iter().find(|(x, _)| *x == 36).expect("answered");
    let p = opened(aws_sa(&mut lab), answer);
    assert!(has_notify(&p, NotifyType::NO_PROPOSAL_CHOSEN), "{p:?}");
    assert!(installs_since(&lab, mark).is_empty());
    assert!(lab.up());
}

/// AWS answering cgwd's Child SA rekey with ESP SPI 255: the rekey fails, AWS's SA is deleted, the
/// old SA carries on until the retry.
#[test]
fn a_reserved_spi_in_awss_rekey_answer_fails_the_rekey_and_keeps_the_old_sa() {
    let mut lab = Lab::new(43);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let mark = lab.outputs.len();
    let new_spi = rekey_answered_with(&mut lab, Box::new(|spi, _, _| *spi = 255));
    assert_rekey_refused_then_retried(&mut lab, mark, new_spi, "reserved SPI");
}

/// The daemon's table refusing a Child SA (here: a second tunnel's SA under the same inbound SPI)
/// reaches IKE: the IKE SA holding it is deleted and the tunnel starts over, instead of reporting
/// a Child SA up that carries nothing.
#[test]
fn a_child_sa_the_data_plane_refuses_is_not_left_up() {
    let mut lab = Lab::new(44);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let child = installs_since(&lab, 0)[0].clone();
    let mut other = child.clone();
    other.tunnel = TunnelId::Two.into();
    let refused = SaCommand::Install(other).apply(&lab.table).unwrap_err();
    assert_eq!(
        refused.error,
        crate::esp::InstallError::DuplicateSpi(child.inbound.spi)
    );
    // As if cgwd's own SA had been the one refused.
    let refused = Refused {
        tunnel: child.tunnel,
        ..refused
    };
    let first = lab.gw.tunnel(lab.t).sa.unwrap().spis();
    let mark = lab.outputs.len();
    let now = lab.now;
    lab.gw.child_sa_refused(now, refused);
    lab.collect();
    assert!(!lab.up());
    assert!(
        sent_since(&lab, mark).iter().any(|(x, _)| *x == 37),
        "DELETE sent"
    );
    lab.run_for(Duration::from_millis(100));
    // The tunnel's SAs go by tunnel; nothing is removed by the refused SPI, which may be another
    // tunnel's SA in the table.
    let cmds: Vec<&SaCommand> = lab.outputs[mark..]
        .iter()
        .filter_map(|o| match o {
            Output::Sa(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(
        cmds.iter()
            .any(|c| matches!(c, SaCommand::RemoveTunnel(k) if *k == child.tunnel)),
        "{cmds:?}"
    );
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, SaCommand::RemoveInbound(spi) if *spi == child.inbound.spi)),
        "{cmds:?}"
    );
    lab.run_for(Duration::from_secs(3));
    assert!(lab.up());
    assert_ne!(lab.gw.tunnel(lab.t).sa.unwrap().spis(), first);
}

/// CREATE_CHILD_SA without REKEY_SA, 100 times: at most `MAX_CHILD_SAS` Child SAs (and so inbound
/// SAs to search) ever exist, the rest are answered NO_ADDITIONAL_SAS, and the tunnel stays up.
#[test]
fn a_hundred_additional_child_sa_requests_are_capped() {
    use crate::ike::child::MAX_CHILD_SAS;
    let mut lab = Lab::new(45);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let mark = lab.outputs.len();
    let mut refused = 0;
    for n in 0..100u32 {
        let at = lab.outputs.len();
        let request = create_child_request(aws_sa(&mut lab), 0x1000 + n, u64::from(n));
        lab.spoof_from_aws(&request);
        let answers = sent_since(&lab, at);
        let (_, answer) = answers.iter().find(|(x, _)| *x == 36).expect("answered");
        if has_notify(&opened(aws_sa(&mut lab), answer), NotifyType::NO_ADDITIONAL_SAS) {
            refused += 1;
        }
    }
    let children = lab.gw.tunnel(lab.t).sa.unwrap().child_spi_pairs().len();
    assert!(children <= MAX_CHILD_SAS, "{children} Child SAs");
    let installed = installs_since(&lab, mark).len();
    assert_eq!(installed, MAX_CHILD_SAS - 1);
    assert_eq!(refused + installed, 100);
    assert!(lab.table.counters().inbound.len() <= MAX_CHILD_SAS);
    lab.run_for(Duration::from_secs(1));
    assert!(lab.up());
}

/// Run until cgwd's IKE_AUTH request is on its way (AWS has the IKE SA's keys, nobody is
/// authenticated yet); returns the IKE SA's SPIs.
fn until_auth_sent(lab: &mut Lab) -> (u64, u64) {
    for _ in 0..500 {
        lab.run_for(Duration::from_millis(1));
        if let Some(sa) = lab.gw.tunnel(lab.t).sa
            && sa.state() == crate::ike::State::AuthSent
        {
            return sa.spis();
        }
    }
    panic!("cgwd never sent IKE_AUTH");
}

/// Whoever holds a half-authenticated IKE SA's keys (here AWS's side, as any party that did the DH
/// with cgwd could) sends an encrypted INFORMATIONAL DELETE, or an INFORMATIONAL "response" with
/// AUTHENTICATION_FAILED, before the IKE_AUTH response: both are dropped and counted, and IKE_AUTH
/// completes on the same IKE SA.
#[test]
fn informational_before_ike_auth_completes_is_ignored_by_the_initiator() {
    let delete = [PayloadRepr::Delete(DeleteRepr::ike())];
    let auth_failed = [PayloadRepr::Notify(NotifyRepr {
        protocol: ProtocolId::NONE,
        spi: Vec::new(),
        kind: NotifyType::AUTHENTICATION_FAILED,
        data: Vec::new(),
    })];
    // (AWS's message ID, response?, payloads)
    for (id, response, payloads) in [(0, false, &delete[..]), (1, true, &auth_failed[..])] {
        let mut lab = Lab::new(46);
        let spis = until_auth_sent(&mut lab);
        let aws = lab.aws.iter_mut().find(|sa| sa.spis() == spis).unwrap();
        let forged = aws
            .build(ExchangeType::INFORMATIONAL, id, response, payloads)
            .unwrap();
        let dropped = lab.gw.tunnel(lab.t).sa.unwrap().dropped;
        lab.spoof_from_aws(&forged);
        assert_eq!(lab.gw.tunnel(lab.t).sa.unwrap().dropped, dropped + 1, "counted");
        lab.run_for(Duration::from_millis(100));
        assert!(lab.up(), "response {response}");
        assert_eq!(lab.gw.tunnel(lab.t).sa.unwrap().spis(), spis, "the same IKE SA");
    }
}

/// The same as responder: AWS's INFORMATIONAL DELETE under message ID 1, ahead of its IKE_AUTH
/// request, neither ends the half-open SA nor takes the message ID IKE_AUTH needs.
#[test]
fn informational_before_ike_auth_completes_is_ignored_by_the_responder() {
    let mut lab = Lab::new(47);
    lab.cut = true;
    lab.run_for(Duration::from_secs(5));
    lab.cut = false;
    lab.aws.clear();
    lab.aws_initiates();
    for _ in 0..100 {
        if lab.aws[0].state() == crate::ike::State::AuthSent {
            break;
        }
        lab.run_for(Duration::from_millis(1));
    }
    assert_eq!(lab.aws[0].state(), crate::ike::State::AuthSent);
    let spis = lab.aws[0].spis();
    let forged = lab.aws[0]
        .build(
            ExchangeType::INFORMATIONAL,
            1,
            false,
            &[PayloadRepr::Delete(DeleteRepr::ike())],
        )
        .unwrap();
    lab.spoof_from_aws(&forged);
    lab.run_for(Duration::from_millis(100));
    assert!(lab.up());
    let sa = lab.gw.tunnel(lab.t).sa.unwrap();
    assert_eq!(sa.spis(), spis);
    assert_eq!(sa.status().role, Role::Responder);
}

/// The data plane's outbound SA passing its sequence soft limit (a saturated link) makes the
/// gateway rekey that tunnel's Child SA, once; the new SA starts from sequence number 0.
#[test]
fn nearly_exhausted_sequence_numbers_start_one_child_sa_rekey() {
    let mut lab = Lab::new(48);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let key = cgwd_cfg().tunnel;
    let old = lab.gw.tunnel(lab.t).status().unwrap().child_spis.unwrap();
    let check = |lab: &mut Lab| {
        let counters = lab.table.counters();
        let now = lab.now;
        lab.gw.check_sequence_numbers(now, &counters.outbound);
        lab.collect();
    };
    let rekeys = |lab: &Lab, mark: usize| {
        events_since(lab, mark)
            .iter()
            .filter(|e| matches!(e, TunnelEvent::RekeyStarted { ike: false }))
            .count()
    };
    let mark = lab.outputs.len();
    check(&mut lab);
    assert_eq!(rekeys(&lab, mark), 0, "not before the limit");
    lab.table
        .snapshot()
        .outbound(key)
        .unwrap()
        .set_last_seq(crate::esp::SEQ_SOFT_LIMIT);
    check(&mut lab);
    check(&mut lab);
    assert_eq!(rekeys(&lab, mark), 1, "one rekey");
    lab.run_for(Duration::from_secs(1));
    check(&mut lab);
    assert_eq!(rekeys(&lab, mark), 1, "still one");
    assert!(lab.up());
    let new = lab.gw.tunnel(lab.t).status().unwrap().child_spis.unwrap();
    assert_ne!(new, old);
    let out = lab.table.snapshot().outbound(key).unwrap().clone();
    assert_eq!(out.spi().0, new.1);
    assert!(!out.rekey_needed());
}

/// cgwd's side (192.0.2.0/24) and AWS's (10.100.0.0/16), as AWS narrows cgwd's 0.0.0.0/0 to them.
fn narrow_aws(lab: &mut Lab) -> (TrafficSelector, TrafficSelector) {
    let range = |a: [u8; 4], b: [u8; 4]| TrafficSelector {
        start: a.into(),
        end: b.into(),
        ..TrafficSelector::ANY
    };
    let onprem = range([192, 0, 2, 0], [192, 0, 2, 255]);
    let vpc = range([10, 100, 0, 0], [10, 100, 255, 255]);
    let mut cfg = aws_cfg();
    cfg.local_ts = vpc;
    cfg.remote_ts = onprem;
    lab.aws_cfg = Arc::new(cfg);
    (onprem, vpc)
}

/// AWS narrowed the selectors at IKE_AUTH and answers cgwd's first Child SA rekey with 0.0.0.0/0:
/// the rekey fails (AWS's SA deleted), the old, narrowed SA is kept, and the retry stays narrowed.
#[test]
fn a_rekey_answer_widening_the_selectors_fails_the_rekey_and_keeps_the_old_sa() {
    let mut lab = Lab::new(49);
    let (onprem, vpc) = narrow_aws(&mut lab);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let first = installs_since(&lab, 0)[0].clone();
    assert_eq!(
        (first.local_ts, first.remote_ts),
        (onprem, vpc),
        "narrowed at IKE_AUTH"
    );
    let mark = lab.outputs.len();
    let new_spi = rekey_answered_with(
        &mut lab,
        Box::new(|_, tsi, tsr| {
            *tsi = TrafficSelector::ANY;
            *tsr = TrafficSelector::ANY;
        }),
    );
    assert_rekey_refused_then_retried(&mut lab, mark, new_spi, "widened the traffic selectors");
    for c in installs_since(&lab, mark) {
        assert_eq!((c.local_ts, c.remote_ts), (onprem, vpc), "still narrowed");
    }
}

/// AWS rekeying the narrowed Child SA with 0.0.0.0/0 (cgwd responding): the new SA is narrowed to
/// the old one's selectors, not to cgwd's wider configuration.
#[test]
fn a_rekey_request_widening_the_selectors_is_narrowed_to_the_old_sa() {
    let mut lab = Lab::new(50);
    let (onprem, vpc) = narrow_aws(&mut lab);
    lab.run_for(Duration::from_secs(2));
    assert!(lab.up());
    let (_, aws_inbound) = lab.gw.tunnel(lab.t).status().unwrap().child_spis.unwrap();
    let mark = lab.outputs.len();
    let any = (TrafficSelector::ANY, TrafficSelector::ANY);
    let request = child_request(aws_sa(&mut lab), 0x5eed_0002, 3, Some(aws_inbound), any);
    lab.spoof_from_aws(&request);
    let answers = sent_since(&lab, mark);
    let (_, answer) = answers.iter().find(|(x, _)| *x == 36).expect("answered");
    let p = opened(aws_sa(&mut lab), answer);
    // AWS initiated this exchange: TSi is AWS's side.
    assert_eq!(selectors(&p), (Some(vpc), Some(onprem)), "{p:?}");
    let installed = installs_since(&lab, mark);
    assert_eq!(installed.len(), 1);
    assert_eq!((installed[0].local_ts, installed[0].remote_ts), (onprem, vpc));
}

/// The table refusing the Child SA of a newer IKE SA AWS opened: that IKE SA is deleted and never
/// takes the tunnel over; the tunnel stays on its own.
#[test]
fn a_refused_child_sa_of_awss_newer_ike_sa_never_takes_the_tunnel() {
    let mut lab = Lab::new(51);
    lab.run_for(Duration::from_secs(2));
    let ours = lab.gw.tunnel(lab.t).sa.unwrap().spis();
    let mark = lab.outputs.len();
    lab.aws_initiates();
    lab.run_for(Duration::from_millis(100));
    let theirs = installs_since(&lab, mark)
        .first()
        .map(|c| (c.tunnel, c.inbound.spi))
        .expect("the newer IKE SA's Child SA, inbound");
    let now = lab.now;
    lab.gw.child_sa_refused(
        now,
        Refused {
            tunnel: theirs.0,
            inbound: theirs.1,
            error: crate::esp::InstallError::DuplicateSpi(theirs.1),
        },
    );
    // AWS slow to answer the DELETE: the handover's grace passes while it is still deleting.
    lab.cut = true;
    lab.run_for(tunnel::HANDOVER_GRACE * 2);
    lab.cut = false;
    assert_eq!(lab.gw.tunnel(lab.t).sa.unwrap().spis(), ours);
    lab.run_for(Duration::from_secs(5));
    assert!(lab.up());
    assert_eq!(lab.gw.tunnel(lab.t).sa.unwrap().spis(), ours);
    assert!(
        !events_since(&lab, mark)
            .iter()
            .any(|e| matches!(e, TunnelEvent::MovedToPeersIkeSa))
    );
}
