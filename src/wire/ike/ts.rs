//! Traffic selectors (RFC 7296 §3.13.1).
//!
//! ```text
//! |   TS Type     |IP Protocol ID*|       Selector Length         |
//! |           Start Port*         |           End Port*           |
//! ~                         Starting Address*                     ~
//! ~                         Ending Address*                       ~
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Error, Reader, TsType};
use crate::sa::TrafficSelector;

const V4_LEN: u16 = 16;
const V6_LEN: u16 = 40;

/// The address range of a selector; the enum makes a mixed-family range unrepresentable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsAddresses {
    V4 { start: Ipv4Addr, end: Ipv4Addr },
    V6 { start: Ipv6Addr, end: Ipv6Addr },
}

/// One traffic selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsRepr {
    /// IP protocol, 0 = any.
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub addresses: TsAddresses,
}

impl TsRepr {
    pub fn ts_type(&self) -> TsType {
        match self.addresses {
            TsAddresses::V4 { .. } => TsType::TS_IPV4_ADDR_RANGE,
            TsAddresses::V6 { .. } => TsType::TS_IPV6_ADDR_RANGE,
        }
    }

    /// Reads one selector from `r`. Unknown TS types are malformed: without knowing the layout we
    /// cannot skip safely past the length the peer meant.
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<TsRepr, Error> {
        let ts_type = TsType(r.u8()?);
        let protocol = r.u8()?;
        let length = r.u16()?;
        let expected = match ts_type {
            TsType::TS_IPV4_ADDR_RANGE => V4_LEN,
            TsType::TS_IPV6_ADDR_RANGE => V6_LEN,
            _ => return Err(Error::Malformed("unknown traffic selector type")),
        };
        if length != expected {
            return Err(Error::BadLength);
        }
        let start_port = r.u16()?;
        let end_port = r.u16()?;
        let addresses = if ts_type == TsType::TS_IPV4_ADDR_RANGE {
            TsAddresses::V4 {
                start: Ipv4Addr::from(r.array::<4>()?),
                end: Ipv4Addr::from(r.array::<4>()?),
            }
        } else {
            TsAddresses::V6 {
                start: Ipv6Addr::from(r.array::<16>()?),
                end: Ipv6Addr::from(r.array::<16>()?),
            }
        };
        Ok(TsRepr {
            protocol,
            start_port,
            end_port,
            addresses,
        })
    }

    pub fn buffer_len(&self) -> usize {
        usize::from(match self.addresses {
            TsAddresses::V4 { .. } => V4_LEN,
            TsAddresses::V6 { .. } => V6_LEN,
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.ts_type().0);
        out.push(self.protocol);
        out.extend_from_slice(&(self.buffer_len() as u16).to_be_bytes());
        out.extend_from_slice(&self.start_port.to_be_bytes());
        out.extend_from_slice(&self.end_port.to_be_bytes());
        match self.addresses {
            TsAddresses::V4 { start, end } => {
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TsAddresses::V6 { start, end } => {
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
        }
    }
}

impl From<TrafficSelector> for TsRepr {
    fn from(ts: TrafficSelector) -> TsRepr {
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
}

impl TryFrom<TsRepr> for TrafficSelector {
    /// The selector is IPv6, which [`TrafficSelector`] does not carry yet.
    type Error = TsRepr;

    fn try_from(ts: TsRepr) -> Result<TrafficSelector, TsRepr> {
        match ts.addresses {
            TsAddresses::V4 { start, end } => Ok(TrafficSelector {
                start,
                end,
                protocol: ts.protocol,
                start_port: ts.start_port,
                end_port: ts.end_port,
                v6: None,
            }),
            TsAddresses::V6 { .. } => Err(ts),
        }
    }
}
