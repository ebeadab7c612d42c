//! Building SA offers and selecting from them (RFC 7296 §2.7, §3.3): pure functions over [`crate::suite`].
//!
//! As initiator we offer at most two proposals — AEAD (GCM, PRF only) first, then CBC with integrity —
//! each holding every allowed transform strongest first, the way AWS's own proposals look. As responder we
//! accept anything the configuration allows and pick the strongest combination, whatever the peer's order.

use super::config::AlgorithmSet;
use crate::suite::{DhGroup, Encryption, Integrity, Suite};

/// Transform types (RFC 7296 §3.3.2).
pub mod transform_type {
    pub const ENCR: u8 = 1;
    pub const PRF: u8 = 2;
    pub const INTEG: u8 = 3;
    pub const DH: u8 = 4;
    pub const ESN: u8 = 5;
}

/// Protocol IDs (RFC 7296 §3.3.1).
pub mod protocol {
    pub const IKE: u8 = 1;
    pub const ESP: u8 = 3;
}

/// One transform as carried in a proposal; `key_bits` is the Key Length attribute (type 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transform {
    pub kind: u8,
    pub id: u16,
    pub key_bits: Option<u16>,
    /// The transform carried an attribute we do not understand: it must not be selected (RFC 7296 §3.3.6).
    pub unknown_attribute: bool,
}

impl Transform {
    pub fn new(kind: u8, id: u16) -> Self {
        Transform {
            kind,
            id,
            key_bits: None,
            unknown_attribute: false,
        }
    }

    fn encryption(e: Encryption) -> Self {
        Transform {
            key_bits: Some(e.key_bits()),
            ..Transform::new(transform_type::ENCR, e.transform_id())
        }
    }
}

/// A proposal: protocol, SPI (empty for a new IKE SA, 8 octets for an IKE rekey, 4 for ESP), transforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub number: u8,
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

// One strength order for the whole program (`crate::suite`): offers list transforms strongest first
// and a responder's `Selection::Strongest` follows the same order.
fn encryption_rank(e: Encryption) -> u8 {
    e.strength()
}

fn integrity_rank(i: Integrity) -> u8 {
    i.strength()
}

fn dh_rank(g: DhGroup) -> u8 {
    g.strength()
}

fn sorted<T: Copy>(items: &[T], rank: impl Fn(T) -> u8) -> Vec<T> {
    let mut v = items.to_vec();
    v.sort_by_key(|&x| std::cmp::Reverse(rank(x)));
    v
}

/// The DH group our first KE payload uses as initiator: the strongest allowed.
pub fn preferred_dh(set: &AlgorithmSet) -> Option<DhGroup> {
    sorted(&set.dh, dh_rank).first().copied()
}

/// The KE group an initiator sends before it knows the peer's choice: cgwd the strongest allowed;
/// AWS (and `emulate-aws`, `Selection::Lowest`) the lowest it allows, at every exchange (strongSwan
/// playing AWS guesses its first configured group each time, whatever the SA runs with).
pub fn first_guess(set: &AlgorithmSet, how: Selection) -> Option<DhGroup> {
    match how {
        Selection::Strongest => preferred_dh(set),
        Selection::Lowest => sorted(&set.dh, dh_rank).last().copied(),
    }
}

/// IKE SA proposals to offer (SPI empty for IKE_SA_INIT, the new SPI for an IKE rekey). `prf`, for an
/// IKE SA rekey, offers that PRF alone (the current SA's: see [`crate::crypto::RekeyPrfPlus`] for why a
/// PRF change is best avoided); the integrity transforms of CBC proposals stay the allowed list.
pub fn ike_offer(set: &AlgorithmSet, spi: &[u8], prf: Option<Integrity>) -> Vec<Proposal> {
    let encs = sorted(&set.encryption, encryption_rank);
    let integs = sorted(&set.integrity, integrity_rank);
    let prfs: Vec<Integrity> = match prf {
        Some(p) => vec![p],
        None => integs.clone(),
    };
    let groups = sorted(&set.dh, dh_rank);
    let mut out = Vec::new();
    for aead in [true, false] {
        let family: Vec<_> = encs.iter().copied().filter(|e| e.is_aead() == aead).collect();
        if family.is_empty() {
            continue;
        }
        let mut t: Vec<Transform> = family.into_iter().map(Transform::encryption).collect();
        t.extend(
            prfs.iter()
                .map(|i| Transform::new(transform_type::PRF, i.prf_transform_id())),
        );
        if !aead {
            t.extend(
                integs
                    .iter()
                    .map(|i| Transform::new(transform_type::INTEG, i.transform_id())),
            );
        }
        t.extend(
            groups
                .iter()
                .map(|g| Transform::new(transform_type::DH, g.number())),
        );
        out.push(Proposal {
            number: out.len() as u8 + 1,
            protocol: protocol::IKE,
            spi: spi.to_vec(),
            transforms: t,
        });
    }
    out
}

/// ESP proposals to offer with our inbound SPI; `pfs` adds the allowed DH groups (CREATE_CHILD_SA).
/// ESN is offered as "no ESN" only.
pub fn esp_offer(set: &AlgorithmSet, spi: u32, pfs: bool) -> Vec<Proposal> {
    let encs = sorted(&set.encryption, encryption_rank);
    let integs = sorted(&set.integrity, integrity_rank);
    let groups = sorted(&set.dh, dh_rank);
    let mut out = Vec::new();
    for aead in [true, false] {
        let family: Vec<_> = encs.iter().copied().filter(|e| e.is_aead() == aead).collect();
        if family.is_empty() {
            continue;
        }
        let mut t: Vec<Transform> = family.into_iter().map(Transform::encryption).collect();
        if !aead {
            t.extend(
                integs
                    .iter()
                    .map(|i| Transform::new(transform_type::INTEG, i.transform_id())),
            );
        }
        if pfs {
            t.extend(
                groups
                    .iter()
                    .map(|g| Transform::new(transform_type::DH, g.number())),
            );
        }
        t.push(Transform::new(transform_type::ESN, 0));
        out.push(Proposal {
            number: out.len() as u8 + 1,
            protocol: protocol::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms: t,
        });
    }
    out
}

/// The lowest ESP SPI a peer may choose: 0 is never sent on the wire and 1–255 are reserved by IANA
/// (RFC 4303 §2.1). The data plane refuses SPI 0, so a Child SA negotiated with one would be up in IKE
/// and blackholed on the wire; refusing it here keeps IKE and the data plane in agreement.
pub const MIN_ESP_SPI: u32 = 256;

/// How DH transforms in an ESP proposal are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfsMode {
    /// IKE_AUTH: the first Child SA is keyed from the IKE SA; DH transforms are ignored.
    Ignore,
    /// CREATE_CHILD_SA with PFS: a group from the allowed list is required.
    Require,
}

/// How a responder chooses among acceptable transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// The strongest acceptable combination (cgwd's own choice).
    #[default]
    Strongest,
    /// The weakest acceptable one, whatever the offer order: what AWS endpoints do (FACTS §2.2), so
    /// `cgwd emulate-aws` picks like AWS.
    Lowest,
}

impl Selection {
    /// A rank as "larger is preferred" under this policy.
    fn key(self, rank: u8) -> u8 {
        match self {
            Selection::Strongest => rank,
            Selection::Lowest => u8::MAX - rank,
        }
    }
}

/// What a responder takes when the offer allows it, before the [`Selection`] policy decides the rest.
///
/// cgwd's policy, written down here because it is the one place that applies it:
/// * `prf`, on an IKE SA rekey: the current SA's PRF. Peers disagree on how a PRF change keys the new
///   SA ([`crate::crypto::RekeyPrfPlus`]), and every peer that negotiated a PRF still allows it.
/// * `ke`: the group of the peer's KE payload, when the tunnel options allow it. Every group in the
///   options is one the operator (AWS's tunnel options) accepted, and AWS picks the lowest anyway
///   whenever cgwd initiates, so insisting on the strongest buys nothing and costs AWS an
///   INVALID_KE_PAYLOAD round trip at every exchange. strongSwan does the same (it takes the
///   initiator's KE group when its selected proposal contains it). A group the options do not allow is
///   answered with INVALID_KE_PAYLOAD naming the strongest allowed group of the offer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefer {
    pub prf: Option<Integrity>,
    pub ke: Option<DhGroup>,
}

fn pick<T: Copy + PartialEq>(
    p: &Proposal,
    kind: u8,
    decode: impl Fn(&Transform) -> Option<T>,
    allowed: &[T],
    rank: impl Fn(T) -> u8,
    how: Selection,
    prefer: Option<T>,
) -> Option<T> {
    let acceptable: Vec<T> = p
        .transforms
        .iter()
        .filter(|t| t.kind == kind && !t.unknown_attribute)
        .filter_map(decode)
        .filter(|x| allowed.contains(x))
        .collect();
    if let Some(x) = prefer.filter(|x| acceptable.contains(x)) {
        return Some(x);
    }
    acceptable.into_iter().max_by_key(|&x| how.key(rank(x)))
}

fn has_kind(p: &Proposal, kind: u8) -> bool {
    p.transforms.iter().any(|t| t.kind == kind)
}

fn decode_encr(t: &Transform) -> Option<Encryption> {
    Encryption::from_transform(t.id, t.key_bits?)
}

/// How much a responder wants `s` (larger is better): the preferences met first (the PRF kept, then
/// the rest of the suite by the policy with the KE group's match just before the DH group's rank).
fn suite_key(s: &Suite, how: Selection, prefer: Prefer) -> (bool, u8, u8, u8, bool, u8) {
    (
        prefer.prf.is_none_or(|p| s.prf == Some(p)),
        how.key(encryption_rank(s.encryption)),
        how.key(s.integrity.map_or(5, integrity_rank)), // AEAD needs no separate MAC: best
        how.key(s.prf.map_or(0, integrity_rank)),
        prefer.ke.is_some_and(|g| s.dh == Some(g)),
        how.key(s.dh.map_or(0, dh_rank)),
    )
}

/// Responder: choose the strongest acceptable IKE proposal. Returns the single-transform-per-type proposal
/// to send back (with the peer's proposal number) and the suite.
pub fn select_ike(offered: &[Proposal], allowed: &AlgorithmSet) -> Option<(Proposal, Suite)> {
    select_ike_with(offered, allowed, Selection::Strongest, Prefer::default())
}

/// [`select_ike`] with an explicit [`Selection`] policy.
/// The integrity transform of a proposal for `encryption`: `Some(None)` for AEAD (which may carry no
/// integrity transform, or only NONE = 0), `Some(Some(i))` for an acceptable one, `None` when the
/// proposal is unusable.
fn pick_integrity(
    p: &Proposal,
    encryption: Encryption,
    allowed: &AlgorithmSet,
    how: Selection,
) -> Option<Option<Integrity>> {
    if encryption.is_aead() {
        let has_integrity = p
            .transforms
            .iter()
            .any(|t| t.kind == transform_type::INTEG && t.id != 0);
        return (!has_integrity).then_some(None);
    }
    pick(
        p,
        transform_type::INTEG,
        |t| Integrity::from_transform(t.id),
        &allowed.integrity,
        integrity_rank,
        how,
        None,
    )
    .map(Some)
}

pub fn select_ike_with(
    offered: &[Proposal],
    allowed: &AlgorithmSet,
    how: Selection,
    prefer: Prefer,
) -> Option<(Proposal, Suite)> {
    let mut best: Option<(Proposal, Suite)> = None;
    for p in offered.iter().filter(|p| p.protocol == protocol::IKE) {
        let Some(encryption) = pick(
            p,
            transform_type::ENCR,
            decode_encr,
            &allowed.encryption,
            encryption_rank,
            how,
            None,
        ) else {
            continue;
        };
        let Some(prf) = pick(
            p,
            transform_type::PRF,
            |t| Integrity::from_prf_transform(t.id),
            &allowed.integrity,
            integrity_rank,
            how,
            prefer.prf,
        ) else {
            continue;
        };
        let Some(integrity) = pick_integrity(p, encryption, allowed, how) else {
            continue;
        };
        let Some(dh) = pick(
            p,
            transform_type::DH,
            |t| DhGroup::new(t.id),
            &allowed.dh,
            dh_rank,
            how,
            prefer.ke,
        ) else {
            continue;
        };
        let suite = Suite {
            encryption,
            integrity,
            prf: Some(prf),
            dh: Some(dh),
        };
        if best
            .as_ref()
            .is_none_or(|(_, b)| suite_key(&suite, how, prefer) > suite_key(b, how, prefer))
        {
            best = Some((
                chosen_proposal(p.number, protocol::IKE, Vec::new(), &suite, false),
                suite,
            ));
        }
    }
    best
}

/// Responder: choose the strongest acceptable ESP proposal. Returns the proposal to send back (with
/// `our_spi`), the suite, and the peer's SPI from its proposal.
pub fn select_esp(
    offered: &[Proposal],
    allowed: &AlgorithmSet,
    pfs: PfsMode,
    our_spi: u32,
) -> Option<(Proposal, Suite, u32)> {
    select_esp_with(
        offered,
        allowed,
        pfs,
        our_spi,
        Selection::Strongest,
        Prefer::default(),
    )
}

/// [`select_esp`] with an explicit [`Selection`] policy.
pub fn select_esp_with(
    offered: &[Proposal],
    allowed: &AlgorithmSet,
    pfs: PfsMode,
    our_spi: u32,
    how: Selection,
    prefer: Prefer,
) -> Option<(Proposal, Suite, u32)> {
    let mut best: Option<(Proposal, Suite, u32)> = None;
    for p in offered.iter().filter(|p| p.protocol == protocol::ESP) {
        let Ok(spi_bytes) = <[u8; 4]>::try_from(p.spi.as_slice()) else {
            continue;
        };
        let peer_spi = u32::from_be_bytes(spi_bytes);
        if peer_spi < MIN_ESP_SPI {
            continue;
        }
        let Some(encryption) = pick(
            p,
            transform_type::ENCR,
            decode_encr,
            &allowed.encryption,
            encryption_rank,
            how,
            None,
        ) else {
            continue;
        };
        let Some(integrity) = pick_integrity(p, encryption, allowed, how) else {
            continue;
        };
        // ESN: absent means "no ESN"; if present, "no ESN" (0) must be among the choices.
        if has_kind(p, transform_type::ESN)
            && !p
                .transforms
                .iter()
                .any(|t| t.kind == transform_type::ESN && t.id == 0)
        {
            continue;
        }
        let dh = match pfs {
            PfsMode::Ignore => None,
            PfsMode::Require => match pick(
                p,
                transform_type::DH,
                |t| DhGroup::new(t.id),
                &allowed.dh,
                dh_rank,
                how,
                prefer.ke,
            ) {
                Some(g) => Some(g),
                None => continue,
            },
        };
        let suite = Suite {
            encryption,
            integrity,
            prf: None,
            dh,
        };
        if best
            .as_ref()
            .is_none_or(|(_, b, _)| suite_key(&suite, how, prefer) > suite_key(b, how, prefer))
        {
            let prop = chosen_proposal(
                p.number,
                protocol::ESP,
                our_spi.to_be_bytes().to_vec(),
                &suite,
                true,
            );
            best = Some((prop, suite, peer_spi));
        }
    }
    best
}

/// The one-transform-per-type proposal a responder sends back.
fn chosen_proposal(number: u8, proto: u8, spi: Vec<u8>, s: &Suite, esp: bool) -> Proposal {
    let mut t = vec![Transform::encryption(s.encryption)];
    if let Some(prf) = s.prf {
        t.push(Transform::new(transform_type::PRF, prf.prf_transform_id()));
    }
    if let Some(i) = s.integrity {
        t.push(Transform::new(transform_type::INTEG, i.transform_id()));
    }
    if let Some(g) = s.dh {
        t.push(Transform::new(transform_type::DH, g.number()));
    }
    if esp {
        t.push(Transform::new(transform_type::ESN, 0));
    }
    Proposal {
        number,
        protocol: proto,
        spi,
        transforms: t,
    }
}

/// Why a responder's chosen proposal is not acceptable to the initiator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("the peer returned {0} proposals instead of one")]
    ProposalCount(usize),
    #[error("the peer chose a transform we did not offer")]
    NotOffered,
    #[error("the peer's choice has a missing or repeated transform")]
    Incomplete,
    #[error("the peer's choice has a malformed or reserved SPI")]
    BadSpi,
}

/// Exactly one transform of `kind` in `p`, decoded.
fn exactly_one<T>(
    p: &Proposal,
    kind: u8,
    decode: impl Fn(&Transform) -> Option<T>,
) -> Result<Option<T>, ChoiceError> {
    let mut it = p.transforms.iter().filter(|t| t.kind == kind);
    match (it.next(), it.next()) {
        (None, _) => Ok(None),
        (Some(t), None) => decode(t).map(Some).ok_or(ChoiceError::NotOffered),
        (Some(_), Some(_)) => Err(ChoiceError::Incomplete),
    }
}

/// Initiator: validate the responder's IKE choice against what we offered (allowed set; `prf` when the
/// offer named that PRF alone, as an IKE SA rekey's does).
pub fn accept_ike_choice(
    chosen: &[Proposal],
    allowed: &AlgorithmSet,
    prf_offered: Option<Integrity>,
) -> Result<Suite, ChoiceError> {
    let [p] = chosen else {
        return Err(ChoiceError::ProposalCount(chosen.len()));
    };
    if p.protocol != protocol::IKE {
        return Err(ChoiceError::NotOffered);
    }
    let encryption = exactly_one(p, transform_type::ENCR, decode_encr)?.ok_or(ChoiceError::Incomplete)?;
    let prf = exactly_one(p, transform_type::PRF, |t| Integrity::from_prf_transform(t.id))?
        .ok_or(ChoiceError::Incomplete)?;
    let integrity = exactly_one(p, transform_type::INTEG, |t| {
        if t.id == 0 {
            Some(None)
        } else {
            Integrity::from_transform(t.id).map(Some)
        }
    })?
    .flatten();
    let dh = exactly_one(p, transform_type::DH, |t| DhGroup::new(t.id))?.ok_or(ChoiceError::Incomplete)?;
    if !allowed.encryption.contains(&encryption)
        || !allowed.integrity.contains(&prf)
        || prf_offered.is_some_and(|p| p != prf)
        || !allowed.dh.contains(&dh)
    {
        return Err(ChoiceError::NotOffered);
    }
    match integrity {
        None if !encryption.is_aead() => return Err(ChoiceError::Incomplete),
        Some(_) if encryption.is_aead() => return Err(ChoiceError::NotOffered),
        Some(i) if !allowed.integrity.contains(&i) => return Err(ChoiceError::NotOffered),
        _ => {}
    }
    Ok(Suite {
        encryption,
        integrity,
        prf: Some(prf),
        dh: Some(dh),
    })
}

/// Initiator: validate the responder's ESP choice; returns the suite and the peer's (outbound) SPI.
pub fn accept_esp_choice(
    chosen: &[Proposal],
    allowed: &AlgorithmSet,
    pfs: PfsMode,
) -> Result<(Suite, u32), ChoiceError> {
    let [p] = chosen else {
        return Err(ChoiceError::ProposalCount(chosen.len()));
    };
    if p.protocol != protocol::ESP {
        return Err(ChoiceError::NotOffered);
    }
    let spi = <[u8; 4]>::try_from(p.spi.as_slice()).map_err(|_| ChoiceError::BadSpi)?;
    let spi = u32::from_be_bytes(spi);
    if spi < MIN_ESP_SPI {
        return Err(ChoiceError::BadSpi);
    }
    let encryption = exactly_one(p, transform_type::ENCR, decode_encr)?.ok_or(ChoiceError::Incomplete)?;
    let integrity = exactly_one(p, transform_type::INTEG, |t| {
        if t.id == 0 {
            Some(None)
        } else {
            Integrity::from_transform(t.id).map(Some)
        }
    })?
    .flatten();
    if exactly_one(p, transform_type::ESN, |t| (t.id == 0).then_some(()))?.is_none()
        && has_kind(p, transform_type::ESN)
    {
        return Err(ChoiceError::NotOffered);
    }
    let dh = exactly_one(p, transform_type::DH, |t| DhGroup::new(t.id))?;
    if !allowed.encryption.contains(&encryption) {
        return Err(ChoiceError::NotOffered);
    }
    match integrity {
        None if !encryption.is_aead() => return Err(ChoiceError::Incomplete),
        Some(_) if encryption.is_aead() => return Err(ChoiceError::NotOffered),
        Some(i) if !allowed.integrity.contains(&i) => return Err(ChoiceError::NotOffered),
        _ => {}
    }
    let dh = match (pfs, dh) {
        (PfsMode::Ignore, _) => None,
        (PfsMode::Require, Some(g)) if allowed.dh.contains(&g) => Some(g),
        (PfsMode::Require, _) => return Err(ChoiceError::NotOffered),
    };
    Ok((
        Suite {
            encryption,
            integrity,
            prf: None,
            dh,
        },
        spi,
    ))
}

/// Conversions to and from the wire codec's representation.
impl Proposal {
    pub fn from_repr(p: &crate::wire::ike::ProposalRepr) -> Proposal {
        Proposal {
            number: p.number,
            protocol: p.protocol.0,
            spi: p.spi.clone(),
            transforms: p
                .transforms
                .iter()
                .map(|t| Transform {
                    kind: t.kind.0,
                    id: t.id,
                    key_bits: t.key_length,
                    unknown_attribute: !t.other_attributes.is_empty(),
                })
                .collect(),
        }
    }

    pub fn to_repr(&self) -> crate::wire::ike::ProposalRepr {
        use crate::wire::ike::{ProposalRepr, ProtocolId, TransformRepr, TransformType};
        ProposalRepr {
            number: self.number,
            protocol: ProtocolId(self.protocol),
            spi: self.spi.clone(),
            transforms: self
                .transforms
                .iter()
                .map(|t| match t.key_bits {
                    Some(bits) => TransformRepr::with_key_length(TransformType(t.kind), t.id, bits),
                    None => TransformRepr::new(TransformType(t.kind), t.id),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(e: &[Encryption], i: &[Integrity], d: &[u16]) -> AlgorithmSet {
        AlgorithmSet {
            encryption: e.to_vec(),
            integrity: i.to_vec(),
            dh: d.iter().map(|&n| DhGroup::new(n).unwrap()).collect(),
        }
    }

    #[test]
    fn offer_has_aead_first_then_cbc_each_strongest_first() {
        let s = AlgorithmSet::aws_default();
        let o = ike_offer(&s, &[], None);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].number, 1);
        assert_eq!(o[0].transforms[0].key_bits, Some(256));
        assert_eq!(o[0].transforms[0].id, 20);
        assert!(!has_kind(&o[0], transform_type::INTEG));
        assert!(has_kind(&o[1], transform_type::INTEG));
        let first_dh = o[0]
            .transforms
            .iter()
            .find(|t| t.kind == transform_type::DH)
            .unwrap();
        assert_eq!(first_dh.id, 21);
        let esp = esp_offer(&s, 0x1234_5678, false);
        assert!(esp.iter().all(|p| !has_kind(p, transform_type::DH)));
        assert!(
            esp.iter()
                .all(|p| p.transforms.last().unwrap().kind == transform_type::ESN)
        );
    }

    #[test]
    fn responder_picks_strongest_regardless_of_peer_order() {
        let mine = AlgorithmSet::aws_default();
        let peer = set(
            &[Encryption::Aes128Cbc, Encryption::Aes256Cbc],
            &[Integrity::Sha1, Integrity::Sha2_256],
            &[2, 14],
        );
        let (_, s) = select_ike(&ike_offer(&peer, &[], None), &mine).unwrap();
        assert_eq!(s.encryption, Encryption::Aes256Cbc);
        assert_eq!(s.integrity, Some(Integrity::Sha2_256));
        assert_eq!(s.dh, DhGroup::new(14));
    }

    #[test]
    fn lowest_policy_picks_the_weakest_allowed_like_aws() {
        // AWS's "Tunnel options" page: endpoints start "with the lowest configured value … regardless
        // of the proposal order"; lowest by the program's one strength order (group 22 is the weakest).
        let mine = AlgorithmSet::aws_default();
        let peer = AlgorithmSet::aws_default();
        let (chosen, s) = select_ike_with(
            &ike_offer(&peer, &[], None),
            &mine,
            Selection::Lowest,
            Prefer::default(),
        )
        .unwrap();
        assert_eq!(s.encryption, Encryption::Aes128Cbc);
        assert_eq!(s.integrity, Some(Integrity::Sha1));
        assert_eq!(s.dh, DhGroup::new(22));
        assert_eq!(accept_ike_choice(&[chosen], &peer, None).unwrap(), s);
        let (_, esp, _) = select_esp_with(
            &esp_offer(&peer, 0x700, true),
            &mine,
            PfsMode::Require,
            0x900,
            Selection::Lowest,
            Prefer::default(),
        )
        .unwrap();
        assert_eq!(esp.encryption, Encryption::Aes128Cbc);
        assert_eq!(esp.dh, DhGroup::new(22));
    }

    #[test]
    fn lowest_policy_stays_inside_what_both_allow() {
        let aws = set(
            &[Encryption::Aes128Gcm16, Encryption::Aes256Gcm16],
            &[Integrity::Sha2_256, Integrity::Sha2_512],
            &[19, 20, 21],
        );
        let cgw = set(&[Encryption::Aes256Gcm16], &[Integrity::Sha2_512], &[20, 21]);
        let (_, s) = select_ike_with(
            &ike_offer(&cgw, &[], None),
            &aws,
            Selection::Lowest,
            Prefer::default(),
        )
        .unwrap();
        assert_eq!(s.encryption, Encryption::Aes256Gcm16);
        assert_eq!(s.prf, Some(Integrity::Sha2_512));
        assert_eq!(s.dh, DhGroup::new(20));
        let (_, strongest) = select_ike_with(
            &ike_offer(&cgw, &[], None),
            &aws,
            Selection::Strongest,
            Prefer::default(),
        )
        .unwrap();
        assert_eq!(strongest.dh, DhGroup::new(21));
    }

    #[test]
    fn offer_and_select_round_trip_through_initiator_check() {
        let mine = set(&[Encryption::Aes128Gcm16], &[Integrity::Sha2_512], &[21]);
        let (chosen, suite) = select_ike(&ike_offer(&mine, &[], None), &mine).unwrap();
        assert_eq!(accept_ike_choice(&[chosen], &mine, None).unwrap(), suite);
        let (chosen, esp, peer_spi) =
            select_esp(&esp_offer(&mine, 0x700, false), &mine, PfsMode::Ignore, 0x900).unwrap();
        assert_eq!(peer_spi, 0x700);
        assert_eq!(
            accept_esp_choice(&[chosen], &mine, PfsMode::Ignore).unwrap(),
            (esp, 0x900)
        );
    }

    #[test]
    fn responder_keeps_the_prf_and_takes_the_peers_ke_group_when_allowed() {
        let mine = AlgorithmSet::aws_default();
        let peer = AlgorithmSet::aws_default();
        let offer = ike_offer(&peer, &[1; 8], None);
        // No preference: the strongest of everything.
        let (_, s) = select_ike_with(&offer, &mine, Selection::Strongest, Prefer::default()).unwrap();
        assert_eq!((s.prf, s.dh), (Some(Integrity::Sha2_512), DhGroup::new(21)));
        // An IKE SA rekey of an SA running SHA2-256, the peer's KE in MODP-2048: both kept, the rest
        // still the strongest.
        let prefer = Prefer {
            prf: Some(Integrity::Sha2_256),
            ke: DhGroup::new(14),
        };
        let (chosen, s) = select_ike_with(&offer, &mine, Selection::Strongest, prefer).unwrap();
        assert_eq!(s.encryption, Encryption::Aes256Gcm16);
        assert_eq!((s.prf, s.dh), (Some(Integrity::Sha2_256), DhGroup::new(14)));
        assert_eq!(
            accept_ike_choice(&[chosen], &peer, Some(Integrity::Sha2_256)),
            Ok(s)
        );
        // A KE group our options do not allow is no preference: the strongest allowed is asked for.
        let narrow = set(&[Encryption::Aes256Gcm16], &[Integrity::Sha2_256], &[19, 20]);
        let prefer = Prefer {
            prf: None,
            ke: DhGroup::new(14),
        };
        let (_, s) = select_ike_with(&offer, &narrow, Selection::Strongest, prefer).unwrap();
        assert_eq!(s.dh, DhGroup::new(20));
        // A proposal keeping the PRF beats a stronger one that changes it.
        let p1 = ike_offer(
            &set(&[Encryption::Aes256Gcm16], &[Integrity::Sha2_512], &[21]),
            &[1; 8],
            None,
        );
        let mut p2 = ike_offer(
            &set(&[Encryption::Aes128Cbc], &[Integrity::Sha1], &[14]),
            &[1; 8],
            None,
        );
        p2[0].number = 2;
        let both = [p1, p2].concat();
        let prefer = Prefer {
            prf: Some(Integrity::Sha1),
            ke: None,
        };
        let (_, s) = select_ike_with(&both, &mine, Selection::Strongest, prefer).unwrap();
        assert_eq!(s.prf, Some(Integrity::Sha1));
    }

    #[test]
    fn a_rekey_offer_names_the_current_prf_alone() {
        let mine = AlgorithmSet::aws_default();
        let offer = ike_offer(&mine, &[7; 8], Some(Integrity::Sha2_384));
        for p in &offer {
            let prfs: Vec<u16> = p
                .transforms
                .iter()
                .filter(|t| t.kind == transform_type::PRF)
                .map(|t| t.id)
                .collect();
            assert_eq!(prfs, [Integrity::Sha2_384.prf_transform_id()]);
        }
        // The CBC proposal keeps every integrity algorithm.
        assert!(
            offer[1]
                .transforms
                .iter()
                .filter(|t| t.kind == transform_type::INTEG)
                .count()
                == 4
        );
        // A responder that changes the PRF anyway is refused.
        let (chosen, _) = select_ike(&ike_offer(&mine, &[7; 8], None), &mine).unwrap();
        assert_eq!(
            accept_ike_choice(&[chosen], &mine, Some(Integrity::Sha2_384)),
            Err(ChoiceError::NotOffered)
        );
    }

    #[test]
    fn no_overlap_selects_nothing() {
        let a = set(&[Encryption::Aes128Cbc], &[Integrity::Sha1], &[2]);
        let b = set(&[Encryption::Aes256Gcm16], &[Integrity::Sha2_256], &[19]);
        assert!(select_ike(&ike_offer(&a, &[], None), &b).is_none());
        assert!(select_esp(&esp_offer(&a, 0x100, false), &b, PfsMode::Ignore, 0x200).is_none());
    }

    #[test]
    fn initiator_rejects_a_choice_it_did_not_offer() {
        let mine = set(&[Encryption::Aes128Cbc], &[Integrity::Sha1], &[2]);
        let other = set(&[Encryption::Aes256Cbc], &[Integrity::Sha1], &[2]);
        let (chosen, _) = select_ike(&ike_offer(&other, &[], None), &other).unwrap();
        assert_eq!(
            accept_ike_choice(std::slice::from_ref(&chosen), &mine, None),
            Err(ChoiceError::NotOffered)
        );
        assert_eq!(
            accept_ike_choice(&[chosen.clone(), chosen], &mine, None),
            Err(ChoiceError::ProposalCount(2))
        );
    }

    /// SPI 0 and the reserved 1–255 (RFC 4303 §2.1) are refused both ways: a responder selects no
    /// proposal carrying one (NO_PROPOSAL_CHOSEN), an initiator rejects a choice naming one.
    #[test]
    fn reserved_esp_spis_are_refused_both_ways() {
        let mine = set(&[Encryption::Aes128Gcm16], &[Integrity::Sha2_256], &[19]);
        for spi in [0, 1, 7, 255] {
            assert!(select_esp(&esp_offer(&mine, spi, false), &mine, PfsMode::Ignore, 0x900).is_none());
            let (chosen, _, _) =
                select_esp(&esp_offer(&mine, 0x700, false), &mine, PfsMode::Ignore, spi).unwrap();
            assert_eq!(
                accept_esp_choice(&[chosen], &mine, PfsMode::Ignore),
                Err(ChoiceError::BadSpi)
            );
        }
        assert!(select_esp(&esp_offer(&mine, 256, false), &mine, PfsMode::Ignore, 0x900).is_some());
    }

    #[test]
    fn unknown_attribute_disqualifies_a_transform() {
        let mine = set(&[Encryption::Aes128Cbc], &[Integrity::Sha1], &[2]);
        let mut offer = ike_offer(&mine, &[], None);
        offer[0].transforms[0].unknown_attribute = true;
        assert!(select_ike(&offer, &mine).is_none());
    }

    fn subset<T: Copy>(all: &[T], mask: u16) -> Vec<T> {
        all.iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, x)| *x)
            .collect()
    }

    fn arb_set() -> impl proptest::strategy::Strategy<Value = AlgorithmSet> {
        use proptest::prelude::*;
        (1u16..16, 1u16..16, 1u16..(1 << 13)).prop_map(|(e, i, d)| AlgorithmSet {
            encryption: subset(&Encryption::ALL, e),
            integrity: subset(&Integrity::ALL, i),
            dh: subset(&DhGroup::ALL, d),
        })
    }

    proptest::proptest! {
        /// Whatever two configurations allow, the responder's choice lies in both, is accepted by the
        /// initiator, and nothing allowed by both is stronger.
        #[test]
        fn selection_is_common_accepted_and_strongest(ours in arb_set(), theirs in arb_set()) {
            let offer = ike_offer(&ours, &[], None);
            match select_ike(&offer, &theirs) {
                Some((chosen, suite)) => {
                    proptest::prop_assert_eq!(accept_ike_choice(std::slice::from_ref(&chosen), &ours, None), Ok(suite));
                    proptest::prop_assert!(theirs.encryption.contains(&suite.encryption));
                    let best_enc = ours.encryption.iter().filter(|e| theirs.encryption.contains(e))
                        .map(|&e| encryption_rank(e)).max();
                    // The best encryption wins unless its family lacks a usable integrity (never: PRFs
                    // and integrities come from the same list).
                    proptest::prop_assert_eq!(Some(encryption_rank(suite.encryption)), best_enc);
                    let best_dh = ours.dh.iter().filter(|g| theirs.dh.contains(g)).map(|&g| dh_rank(g)).max();
                    proptest::prop_assert_eq!(suite.dh.map(dh_rank), best_dh);
                }
                None => {
                    fn common<T: PartialEq>(a: &[T], b: &[T]) -> bool {
                        a.iter().any(|x| b.contains(x))
                    }
                    proptest::prop_assert!(
                        !common(&ours.encryption, &theirs.encryption)
                            || !common(&ours.integrity, &theirs.integrity)
                            || !common(&ours.dh, &theirs.dh)
                    );
                }
            }
            let esp = esp_offer(&ours, 0x1000, false);
            if let Some((chosen, suite, spi)) = select_esp(&esp, &theirs, PfsMode::Ignore, 0x2000) {
                proptest::prop_assert_eq!(spi, 0x1000);
                proptest::prop_assert_eq!(accept_esp_choice(&[chosen], &ours, PfsMode::Ignore), Ok((suite, 0x2000)));
            }
        }
    }
}
