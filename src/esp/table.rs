//! The SA table the control plane updates while traffic flows.
//!
//! Readers (the TX and RX threads) never take a lock: the table is an immutable [`Snapshot`]
//! behind an `ArcSwap`; a reader loads the current `Arc<Snapshot>` (or, through [`SaReader`], a
//! cached one revalidated by a single atomic load) and uses the SAs in it. Writers (the control
//! plane: install, switch, remove) serialize on a mutex, copy the snapshot, change the copy and
//! publish it atomically. A packet being processed against the previous snapshot keeps its SA alive
//! through the `Arc`, so removing an SA never pulls it from under a thread.
//!
//! Per-SA mutable state is atomics: the outbound sequence counter (`fetch_add`, touched only by TX)
//! and the inbound replay window and counters (touched only by RX). One TX thread and one RX thread
//! therefore run concurrently with each other and with the control plane without any lock, and they
//! do not share cache lines on the hot path.

use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Cache};

use crate::sa::{ChildSa, EspSpi, TunnelKey};
use crate::wire::esp::EspPacket;

use super::counters::{DropCounters, DropCounts, DropReason, TunnelCounters};
use super::sa::{InboundSa, InstallError, Opened, OutboundSa, SealError, Sealed};

/// One immutable generation of the table.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Inbound SAs of every tunnel, sorted by SPI; during a rekey an old and a new one per tunnel.
    /// Two per tunnel, up to a few hundred tunnels: a binary search stays a handful of compares.
    inbound: Vec<Arc<InboundSa>>,
    /// Current outbound SA per tunnel, indexed by [`TunnelKey::slot`] (grown on install).
    outbound: Vec<Option<Arc<OutboundSa>>>,
}

impl Snapshot {
    pub fn inbound(&self, spi: u32) -> Option<&Arc<InboundSa>> {
        let i = self.inbound.binary_search_by_key(&spi, |sa| sa.spi().0).ok()?;
        self.inbound.get(i)
    }

    pub fn outbound(&self, tunnel: TunnelKey) -> Option<&Arc<OutboundSa>> {
        self.outbound.get(tunnel.slot())?.as_ref()
    }

    /// Adds an inbound SA at its sorted place; a SPI already present is refused.
    fn insert_inbound(&mut self, sa: Arc<InboundSa>) -> Result<(), InstallError> {
        match self.inbound.binary_search_by_key(&sa.spi().0, |s| s.spi().0) {
            Ok(_) => Err(InstallError::DuplicateSpi(sa.spi())),
            Err(at) => {
                self.inbound.insert(at, sa);
                Ok(())
            }
        }
    }

    /// The tunnel's outbound slot, created on first use.
    fn outbound_slot(&mut self, tunnel: TunnelKey) -> &mut Option<Arc<OutboundSa>> {
        let slot = tunnel.slot();
        if self.outbound.len() <= slot {
            self.outbound.resize(slot + 1, None);
        }
        &mut self.outbound[slot]
    }

    fn open(&self, buf: &mut [u8], unattributed: &DropCounters) -> Result<Opened, DropReason> {
        let Ok(packet) = EspPacket::new_checked(&*buf) else {
            unattributed.count(DropReason::Truncated);
            return Err(DropReason::Truncated);
        };
        let Some(sa) = self.inbound(packet.spi()) else {
            unattributed.count(DropReason::UnknownSpi);
            return Err(DropReason::UnknownSpi);
        };
        sa.open(buf)
    }

    fn seal(
        &self,
        tunnel: TunnelKey,
        buf: &mut [u8],
        inner: std::ops::Range<usize>,
    ) -> Result<Sealed, SealError> {
        self.outbound(tunnel).ok_or(SealError::NoSa)?.seal(buf, inner)
    }
}

/// Counters of SAs that left the table, so tunnel totals never go backwards.
#[derive(Debug, Default)]
struct Retired {
    tunnels: Vec<TunnelCounters>,
}

impl Retired {
    fn tunnel(&mut self, tunnel: TunnelKey) -> &mut TunnelCounters {
        counters_of(&mut self.tunnels, tunnel)
    }
}

/// The counters at the tunnel's slot, created on first use (at least both tunnels of the first
/// connection always exist, so `tunnels[0]` and `tunnels[1]` can be read without checking).
fn counters_of(tunnels: &mut Vec<TunnelCounters>, tunnel: TunnelKey) -> &mut TunnelCounters {
    let slot = tunnel.slot();
    if tunnels.len() <= slot {
        tunnels.resize(slot + 1, TunnelCounters::default());
    }
    &mut tunnels[slot]
}

/// Counters of the whole table at one instant.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableCounters {
    /// Indexed by [`TunnelKey::slot`]; at least two entries.
    pub tunnels: Vec<TunnelCounters>,
    /// Drops no SA could be blamed for (truncated header, unknown SPI).
    pub unattributed: DropCounts,
    pub inbound: Vec<InboundSaCounters>,
    pub outbound: Vec<OutboundSaCounters>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InboundSaCounters {
    pub tunnel: TunnelKey,
    pub spi: EspSpi,
    pub packets: u64,
    pub bytes: u64,
    pub highest_seq: u64,
    pub drops: DropCounts,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboundSaCounters {
    pub tunnel: TunnelKey,
    pub spi: EspSpi,
    pub packets: u64,
    pub bytes: u64,
    pub last_seq: u64,
    pub rekey_needed: bool,
}

/// The data plane's SA table. Share it as `Arc<SaTable>`.
#[derive(Debug, Default)]
pub struct SaTable {
    current: Arc<ArcSwap<Snapshot>>,
    /// Serializes writers; holds the retired counters.
    writer: Mutex<Retired>,
    unattributed: DropCounters,
}

fn retire_inbound(retired: &mut Retired, sa: &InboundSa) {
    let t = retired.tunnel(sa.tunnel());
    t.packets_in += sa.counters().packets();
    t.bytes_in += sa.counters().bytes();
    t.drops.add(&sa.counters().drops.snapshot());
}

fn retire_outbound(retired: &mut Retired, sa: &OutboundSa) {
    let t = retired.tunnel(sa.tunnel());
    t.packets_out += sa.counters().packets();
    t.bytes_out += sa.counters().bytes();
}

impl SaTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies the snapshot, lets `change` edit the copy, publishes it. Writers only.
    fn update<R>(
        &self,
        change: impl FnOnce(&mut Snapshot, &mut Retired) -> Result<R, InstallError>,
    ) -> Result<R, InstallError> {
        let mut retired = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Snapshot::clone(&self.current.load());
        let result = change(&mut next, &mut retired)?;
        self.current.store(Arc::new(next));
        Ok(result)
    }

    /// Installs the inbound half of `child` (make-before-break: the old inbound SA of the tunnel
    /// stays until [`Self::remove_inbound`]).
    pub fn install_inbound(&self, child: &ChildSa) -> Result<(), InstallError> {
        let sa = Arc::new(InboundSa::new(
            child.tunnel,
            &child.inbound,
            child.replay_window,
            child.local_ts,
            child.remote_ts,
        )?);
        self.update(|snap, _| snap.insert_inbound(sa))
    }

    /// Makes the outbound half of `child` the tunnel's outbound SA, atomically replacing the old one.
    pub fn switch_outbound(&self, child: &ChildSa) -> Result<(), InstallError> {
        let sa = Arc::new(OutboundSa::new(child.tunnel, &child.outbound)?);
        self.update(|snap, retired| {
            if let Some(old) = snap.outbound_slot(child.tunnel).replace(sa) {
                retire_outbound(retired, &old);
            }
            Ok(())
        })
    }

    /// Installs both halves in one step: the new inbound SA alongside the old, and the new outbound
    /// SA in place of the old.
    pub fn install(&self, child: &ChildSa) -> Result<(), InstallError> {
        let inbound = Arc::new(InboundSa::new(
            child.tunnel,
            &child.inbound,
            child.replay_window,
            child.local_ts,
            child.remote_ts,
        )?);
        let outbound = Arc::new(OutboundSa::new(child.tunnel, &child.outbound)?);
        self.update(|snap, retired| {
            snap.insert_inbound(inbound)?;
            if let Some(old) = snap.outbound_slot(child.tunnel).replace(outbound) {
                retire_outbound(retired, &old);
            }
            Ok(())
        })
    }

    /// Removes an inbound SA (after its Child SA was deleted). Returns whether it existed.
    pub fn remove_inbound(&self, spi: EspSpi) -> bool {
        self.update(|snap, retired| {
            let Some(pos) = snap.inbound.iter().position(|sa| sa.spi() == spi) else {
                return Ok(false);
            };
            let sa = snap.inbound.remove(pos);
            retire_inbound(retired, &sa);
            Ok(true)
        })
        .unwrap_or(false)
    }

    /// Removes the outbound SA if it is still `spi` (a stale delete must not drop a newer SA).
    pub fn remove_outbound(&self, tunnel: TunnelKey, spi: EspSpi) -> bool {
        self.update(|snap, retired| {
            let slot = snap.outbound_slot(tunnel);
            if slot.as_ref().is_some_and(|sa| sa.spi() == spi) {
                if let Some(old) = slot.take() {
                    retire_outbound(retired, &old);
                }
                return Ok(true);
            }
            Ok(false)
        })
        .unwrap_or(false)
    }

    /// Drops every SA of a tunnel (tunnel down).
    pub fn remove_tunnel(&self, tunnel: TunnelKey) {
        let _ = self.update(|snap, retired| {
            snap.inbound.retain(|sa| {
                let keep = sa.tunnel() != tunnel;
                if !keep {
                    retire_inbound(retired, sa);
                }
                keep
            });
            if let Some(old) = snap.outbound_slot(tunnel).take() {
                retire_outbound(retired, &old);
            }
            Ok(())
        });
    }

    /// The current snapshot (a few nanoseconds; no lock).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Opens an ESP packet against the current snapshot. Every failure is counted.
    pub fn open(&self, buf: &mut [u8]) -> Result<Opened, DropReason> {
        self.current.load().open(buf, &self.unattributed)
    }

    /// Seals an inner packet with the tunnel's current outbound SA.
    pub fn seal(
        &self,
        tunnel: TunnelKey,
        buf: &mut [u8],
        inner: std::ops::Range<usize>,
    ) -> Result<Sealed, SealError> {
        self.current.load().seal(tunnel, buf, inner)
    }

    /// A per-thread handle for the hot path that caches the snapshot.
    pub fn reader(self: &Arc<Self>) -> SaReader {
        SaReader {
            cache: Cache::new(Arc::clone(&self.current)),
            table: Arc::clone(self),
        }
    }

    /// Counters of every tunnel and live SA.
    pub fn counters(&self) -> TableCounters {
        let retired = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let snap = self.current.load();
        let mut tunnels = retired.tunnels.clone();
        if tunnels.len() < 2 {
            tunnels.resize(2, TunnelCounters::default());
        }
        let mut out = TableCounters {
            tunnels,
            unattributed: self.unattributed.snapshot(),
            ..TableCounters::default()
        };
        for sa in &snap.inbound {
            let drops = sa.counters().drops.snapshot();
            let t = counters_of(&mut out.tunnels, sa.tunnel());
            t.packets_in += sa.counters().packets();
            t.bytes_in += sa.counters().bytes();
            t.drops.add(&drops);
            out.inbound.push(InboundSaCounters {
                tunnel: sa.tunnel(),
                spi: sa.spi(),
                packets: sa.counters().packets(),
                bytes: sa.counters().bytes(),
                highest_seq: sa.highest_seq(),
                drops,
            });
        }
        for sa in snap.outbound.iter().flatten() {
            let t = counters_of(&mut out.tunnels, sa.tunnel());
            t.packets_out += sa.counters().packets();
            t.bytes_out += sa.counters().bytes();
            out.outbound.push(OutboundSaCounters {
                tunnel: sa.tunnel(),
                spi: sa.spi(),
                packets: sa.counters().packets(),
                bytes: sa.counters().bytes(),
                last_seq: sa.last_seq(),
                rekey_needed: sa.rekey_needed(),
            });
        }
        out
    }
}

/// A TX or RX thread's handle: the snapshot is cached and revalidated with one atomic load per
/// call, instead of `ArcSwap::load`'s thread-local debt bookkeeping.
pub struct SaReader {
    cache: Cache<Arc<ArcSwap<Snapshot>>, Arc<Snapshot>>,
    table: Arc<SaTable>,
}

impl SaReader {
    pub fn open(&mut self, buf: &mut [u8]) -> Result<Opened, DropReason> {
        self.cache.load().open(buf, &self.table.unattributed)
    }

    pub fn seal(
        &mut self,
        tunnel: TunnelKey,
        buf: &mut [u8],
        inner: std::ops::Range<usize>,
    ) -> Result<Sealed, SealError> {
        self.cache.load().seal(tunnel, buf, inner)
    }

    pub fn snapshot(&mut self) -> &Arc<Snapshot> {
        self.cache.load()
    }

    /// Counts a drop decided after [`Self::open`] on the inbound SA `spi` (or unattributed if it
    /// is gone), so it shows among its tunnel's drops.
    pub fn count_drop(&mut self, spi: EspSpi, reason: DropReason) {
        match self.cache.load().inbound(spi.0) {
            Some(sa) => sa.counters().drops.count(reason),
            None => self.table.unattributed.count(reason),
        }
    }
}
