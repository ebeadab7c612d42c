//! Traffic selectors (RFC 7296 §2.9): conversion to the wire and narrowing as responder.
//!
//! A [`TrafficSelector`] holds an IPv4 range (empty when `start > end`) and optionally an IPv6
//! range, so on the wire it is one TS_IPV4_ADDR_RANGE, one TS_IPV6_ADDR_RANGE, or both. An IPv4-only
//! selector is exactly the one IPv4 entry it always was.

use std::net::Ipv4Addr;

use crate::sa::{Ipv6Range, TrafficSelector};
use crate::wire::ike::{TsAddresses, TsRepr};

/// The empty IPv4 range, one spelling so that equal selectors compare equal.
const NO_V4: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::BROADCAST, Ipv4Addr::UNSPECIFIED);

fn has_v4(ts: &TrafficSelector) -> bool {
    ts.start <= ts.end
}

/// The selector's entries for a TSi/TSr payload: IPv4 first, then IPv6.
pub fn to_wire(ts: &TrafficSelector) -> Vec<TsRepr> {
    let entry = |addresses| TsRepr {
        protocol: ts.protocol,
        start_port: ts.start_port,
        end_port: ts.end_port,
        addresses,
    };
    let v4 = has_v4(ts).then(|| {
        entry(TsAddresses::V4 {
            start: ts.start,
            end: ts.end,
        })
    });
    let v6 = ts.v6.map(|r| {
        entry(TsAddresses::V6 {
            start: r.start,
            end: r.end,
        })
    });
    v4.into_iter().chain(v6).collect()
}

/// One wire entry as a selector of its family; `None` for an empty range.
pub fn from_wire(ts: &TsRepr) -> Option<TrafficSelector> {
    if ts.start_port > ts.end_port {
        return None;
    }
    let base = TrafficSelector {
        protocol: ts.protocol,
        start_port: ts.start_port,
        end_port: ts.end_port,
        ..TrafficSelector::ANY
    };
    match ts.addresses {
        TsAddresses::V4 { start, end } if start <= end => Some(TrafficSelector { start, end, ..base }),
        TsAddresses::V6 { start, end } if start <= end => Some(TrafficSelector {
            start: NO_V4.0,
            end: NO_V4.1,
            v6: Some(Ipv6Range { start, end }),
            ..base
        }),
        _ => None,
    }
}

/// Joins a selector of each family into one; `None` if neither, and the IPv4 one alone if their
/// protocols or ports differ (one [`TrafficSelector`] has one protocol and port range).
fn join(v4: Option<TrafficSelector>, v6: Option<TrafficSelector>) -> Option<TrafficSelector> {
    match (v4, v6) {
        (Some(a), Some(b))
            if a.protocol == b.protocol && a.start_port == b.start_port && a.end_port == b.end_port =>
        {
            Some(TrafficSelector { v6: b.v6, ..a })
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}

/// A TSi/TSr payload read in the families of `families` (ours): the first valid entry of each.
/// Entries of a family we do not use are ignored, as IPv6 entries always were for IPv4 tunnels.
pub fn from_wire_list(list: &[TsRepr], families: &TrafficSelector) -> Option<TrafficSelector> {
    let parsed = || list.iter().filter_map(from_wire);
    let v4 = has_v4(families).then(|| parsed().find(has_v4)).flatten();
    let v6 = families.v6.and_then(|_| parsed().find(|t| t.v6.is_some()));
    join(v4, v6)
}

/// The intersection of two selectors, if not empty (in either family).
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let protocol = match (a.protocol, b.protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    if start_port > end_port {
        return None;
    }
    let (mut start, mut end) = (a.start.max(b.start), a.end.min(b.end));
    if start > end {
        (start, end) = NO_V4;
    }
    let v6 = match (a.v6, b.v6) {
        (Some(x), Some(y)) => {
            let r = Ipv6Range {
                start: x.start.max(y.start),
                end: x.end.min(y.end),
            };
            (r.start <= r.end).then_some(r)
        }
        _ => None,
    };
    let out = TrafficSelector {
        start,
        end,
        protocol,
        start_port,
        end_port,
        v6,
    };
    (has_v4(&out) || out.v6.is_some()).then_some(out)
}

/// `inner` lies within `outer` (the initiator checks the responder did not widen its proposal).
pub fn contains(outer: &TrafficSelector, inner: &TrafficSelector) -> bool {
    intersect(outer, inner).as_ref() == Some(inner)
}

/// Responder narrowing, per family: the first offered entry that overlaps ours, cut down to the
/// overlap. (RFC 7296 §2.9: the first selector may be the packet that triggered the request; any
/// overlap will do.)
pub fn narrow(offered: &[TsRepr], ours: &TrafficSelector) -> Option<TrafficSelector> {
    let overlaps = || {
        offered
            .iter()
            .filter_map(from_wire)
            .filter_map(|t| intersect(&t, ours))
    };
    let v4 = overlaps().find(has_v4);
    let v6 = overlaps().find(|t| t.v6.is_some());
    join(v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(a: [u8; 4], b: [u8; 4]) -> TrafficSelector {
        TrafficSelector {
            start: a.into(),
            end: b.into(),
            ..TrafficSelector::ANY
        }
    }

    fn v6(prefix: &str, len: u8) -> TrafficSelector {
        TrafficSelector {
            v6: Some(Ipv6Range::prefix(prefix.parse().unwrap(), len)),
            ..TrafficSelector::ANY_V6
        }
    }

    #[test]
    fn narrowing_keeps_the_overlap() {
        let any = TrafficSelector::ANY;
        let vpc = ts([10, 100, 0, 0], [10, 100, 255, 255]);
        assert_eq!(intersect(&any, &vpc), Some(vpc));
        assert!(contains(&any, &vpc));
        assert!(!contains(&vpc, &any));
        let other = ts([10, 200, 0, 0], [10, 200, 0, 255]);
        assert_eq!(intersect(&vpc, &other), None);
        let offered: Vec<_> = [other, any].iter().flat_map(to_wire).collect();
        assert_eq!(narrow(&offered, &vpc), Some(vpc));
    }

    #[test]
    fn ipv4_selectors_are_one_entry_as_before() {
        let w = to_wire(&TrafficSelector::ANY);
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0].addresses,
            TsAddresses::V4 {
                start: Ipv4Addr::UNSPECIFIED,
                end: Ipv4Addr::BROADCAST
            }
        );
        // An IPv4 tunnel ignores IPv6 entries in a reply and an offer.
        let mixed: Vec<_> = to_wire(&TrafficSelector::ANY_DUAL);
        assert_eq!(mixed.len(), 2);
        assert_eq!(
            from_wire_list(&mixed, &TrafficSelector::ANY),
            Some(TrafficSelector::ANY)
        );
        assert_eq!(narrow(&mixed, &TrafficSelector::ANY), Some(TrafficSelector::ANY));
        assert_eq!(
            narrow(&to_wire(&TrafficSelector::ANY_V6), &TrafficSelector::ANY),
            None
        );
    }

    #[test]
    fn ipv6_selectors_round_trip_and_narrow() {
        let any6 = TrafficSelector::ANY_V6;
        let w = to_wire(&any6);
        assert_eq!(w.len(), 1);
        assert!(matches!(w[0].addresses, TsAddresses::V6 { .. }));
        assert_eq!(from_wire_list(&w, &any6), Some(any6));
        // An IPv4 reply to an IPv6 tunnel is no selector at all.
        assert_eq!(from_wire_list(&to_wire(&TrafficSelector::ANY), &any6), None);
        let vpc = v6("2001:db8:100::", 48);
        assert_eq!(narrow(&w, &vpc), Some(vpc));
        assert!(contains(&any6, &vpc) && !contains(&vpc, &any6));
        let other = v6("2001:db8:200::", 48);
        assert_eq!(narrow(&to_wire(&other), &vpc), None);
        // Offered IPv4 first and IPv6 second: the IPv6 tunnel takes the IPv6 overlap.
        let offered: Vec<_> = [TrafficSelector::ANY, other, any6]
            .iter()
            .flat_map(to_wire)
            .collect();
        assert_eq!(narrow(&offered, &vpc), Some(vpc));
        // Dual selectors keep both families.
        let dual = TrafficSelector::ANY_DUAL;
        assert_eq!(narrow(&to_wire(&dual), &dual), Some(dual));
        assert_eq!(from_wire_list(&to_wire(&dual), &dual), Some(dual));
    }

    #[test]
    fn empty_and_reversed_ranges_are_no_selector() {
        let reversed = TsRepr {
            protocol: 0,
            start_port: 0,
            end_port: 65535,
            addresses: TsAddresses::V6 {
                start: "fd00::2".parse().unwrap(),
                end: "fd00::1".parse().unwrap(),
            },
        };
        assert_eq!(from_wire(&reversed), None);
        assert_eq!(narrow(&[reversed], &TrafficSelector::ANY_V6), None);
        let ports = TsRepr {
            start_port: 10,
            end_port: 9,
            ..to_wire(&TrafficSelector::ANY_V6)[0]
        };
        assert_eq!(from_wire(&ports), None);
    }

    fn any_entry() -> impl Strategy<Value = TsRepr> {
        let addrs = prop_oneof![
            (any::<u32>(), any::<u32>()).prop_map(|(s, e)| TsAddresses::V4 {
                start: s.into(),
                end: e.into()
            }),
            (any::<u128>(), any::<u128>()).prop_map(|(s, e)| TsAddresses::V6 {
                start: s.into(),
                end: e.into()
            }),
        ];
        (any::<u8>(), any::<u16>(), any::<u16>(), addrs).prop_map(
            |(protocol, start_port, end_port, addresses)| TsRepr {
                protocol,
                start_port,
                end_port,
                addresses,
            },
        )
    }

    proptest! {
        /// Whatever a peer offers, the narrowed selector lies within ours and within what was offered.
        #[test]
        fn narrowing_stays_within_both(offered in proptest::collection::vec(any_entry(), 0..6), family in 0u8..3) {
            let ours = [TrafficSelector::ANY, TrafficSelector::ANY_V6, TrafficSelector::ANY_DUAL][usize::from(family)];
            if let Some(n) = narrow(&offered, &ours) {
                prop_assert!(contains(&ours, &n));
                let back = from_wire_list(&to_wire(&n), &ours);
                prop_assert_eq!(back, Some(n));
                for e in to_wire(&n) {
                    let e = from_wire(&e).unwrap();
                    prop_assert!(offered.iter().filter_map(from_wire).any(|o| contains(&o, &e)));
                }
            }
            let _ = from_wire_list(&offered, &ours);
        }
    }
}
