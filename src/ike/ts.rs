//! Traffic selectors (RFC 7296 §2.9): conversion to the wire and narrowing as responder.

use std::net::Ipv4Addr;

use crate::sa::TrafficSelector;
use crate::wire::ike::{TsAddresses, TsRepr};

pub fn to_wire(ts: &TrafficSelector) -> TsRepr {
    TsRepr {
        protocol: ts.protocol,
        start_port: ts.start_port,
        end_port: ts.end_port,
        addresses: TsAddresses::V4 {
            start: ts.start,
            end: ts.end,
        },
    }
}

/// IPv4 selectors only (cgwd's tunnels are IPv4 inside); `None` for IPv6 or an empty range.
pub fn from_wire(ts: &TsRepr) -> Option<TrafficSelector> {
    match ts.addresses {
        TsAddresses::V4 { start, end } if start <= end && ts.start_port <= ts.end_port => {
            Some(TrafficSelector {
                start,
                end,
                protocol: ts.protocol,
                start_port: ts.start_port,
                end_port: ts.end_port,
                v6: None,
            })
        }
        _ => None,
    }
}

/// The intersection of two selectors, if not empty.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let protocol = match (a.protocol, b.protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let start: Ipv4Addr = a.start.max(b.start);
    let end: Ipv4Addr = a.end.min(b.end);
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    (start <= end && start_port <= end_port).then_some(TrafficSelector {
        start,
        end,
        protocol,
        start_port,
        end_port,
        v6: None,
    })
}

/// `inner` lies within `outer` (the initiator checks the responder did not widen its proposal).
pub fn contains(outer: &TrafficSelector, inner: &TrafficSelector) -> bool {
    intersect(outer, inner).as_ref() == Some(inner)
}

/// Responder narrowing: the first offered selector that overlaps ours, cut down to the overlap.
/// (RFC 7296 §2.9: the first selector may be the packet that triggered the request; any overlap will do.)
pub fn narrow(offered: &[TsRepr], ours: &TrafficSelector) -> Option<TrafficSelector> {
    offered
        .iter()
        .filter_map(from_wire)
        .find_map(|t| intersect(&t, ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(a: [u8; 4], b: [u8; 4]) -> TrafficSelector {
        TrafficSelector {
            start: a.into(),
            end: b.into(),
            ..TrafficSelector::ANY
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
        assert_eq!(narrow(&[to_wire(&other), to_wire(&any)], &vpc), Some(vpc));
    }
}
