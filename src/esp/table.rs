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

use crate::sa::{ChildSa, EspSpi, TunnelId};
use crate::wire::esp::EspPacket;

use super::counters::{DropCounters, DropCounts, DropReason, TunnelCounters};
use super::sa::{InboundSa, InstallError, Opened, OutboundSa, SealError, Sealed};

/// One immutable generation of the table.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Inbound SAs of both tunnels; during a rekey an old and a new one per tunnel. A handful of
    /// entries, so a linear scan beats hashing.
    inbound: Vec<Arc<InboundSa>>,
    /// Current outbound SA per tunnel, indexed by [`TunnelId::index`].
    outbound: [Option<Arc<OutboundSa>>; 2],
}

impl Snapshot {
    pub fn inbound(&self, spi: u32) -> Option<&Arc<InboundSa>> {
        self.inbound.iter().find(|sa| sa.spi().0 == spi)
    }

    pub fn outbound(&self, tunnel: TunnelId) -> Option<&Arc<OutboundSa>> {
        self.outbound[tunnel.index()].as_ref()
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
        tunnel: TunnelId,
        buf: &mut [u8],
        inner: std::ops::Range<usize>,
    ) -> Result<Sealed, SealError> {
        self.outbound(tunnel).ok_or(SealError::NoSa)?.seal(buf, inner)
    }
}

/// Counters of SAs that left the table, so tunnel totals never go backwards.
#[derive(Debug, Default)]
struct Retired {
    tunnels: [TunnelCounters; 2],
}

/// Counters of the whole table at one instant.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableCounters {
    /// Indexed by [`TunnelId::index`].
    pub tunnels: [TunnelCounters; 2],
    /// Drops no SA could be blamed for (truncated header, unknown SPI).
    pub unattributed: DropCounts,
    pub inbound: Vec<InboundSaCounters>,
    pub outbound: Vec<OutboundSaCounters>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InboundSaCounters {
    pub tunnel: TunnelId,
    pub spi: EspSpi,
    pub packets: u64,
    pub bytes: u64,
    pub highest_seq: u64,
    pub drops: DropCounts,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutboundSaCounters {
    pub tunnel: TunnelId,
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
    let t = &mut retired.tunnels[sa.tunnel().index()];
    t.packets_in += sa.counters().packets();
    t.bytes_in += sa.counters().bytes();
    t.drops.add(&sa.counters().drops.snapshot());
}

fn retire_outbound(retired: &mut Retired, sa: &OutboundSa) {
    let t = &mut retired.tunnels[sa.tunnel().index()];
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
        self.update(|snap, _| {
            if snap.inbound(sa.spi().0).is_some() {
                return Err(InstallError::DuplicateSpi(sa.spi()));
            }
            snap.inbound.push(sa);
            Ok(())
        })
    }

    /// Makes the outbound half of `child` the tunnel's outbound SA, atomically replacing the old one.
    pub fn switch_outbound(&self, child: &ChildSa) -> Result<(), InstallError> {
        let sa = Arc::new(OutboundSa::new(child.tunnel, &child.outbound)?);
        self.update(|snap, retired| {
            if let Some(old) = snap.outbound[child.tunnel.index()].replace(sa) {
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
            if snap.inbound(inbound.spi().0).is_some() {
                return Err(InstallError::DuplicateSpi(inbound.spi()));
            }
            snap.inbound.push(inbound);
            if let Some(old) = snap.outbound[child.tunnel.index()].replace(outbound) {
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
            let sa = snap.inbound.swap_remove(pos);
            retire_inbound(retired, &sa);
            Ok(true)
        })
        .unwrap_or(false)
    }

    /// Removes the outbound SA if it is still `spi` (a stale delete must not drop a newer SA).
    pub fn remove_outbound(&self, tunnel: TunnelId, spi: EspSpi) -> bool {
        self.update(|snap, retired| {
            let slot = &mut snap.outbound[tunnel.index()];
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
    pub fn remove_tunnel(&self, tunnel: TunnelId) {
        let _ = self.update(|snap, retired| {
            snap.inbound.retain(|sa| {
                let keep = sa.tunnel() != tunnel;
                if !keep {
                    retire_inbound(retired, sa);
                }
                keep
            });
            if let Some(old) = snap.outbound[tunnel.index()].take() {
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
        tunnel: TunnelId,
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
        let mut out = TableCounters {
            tunnels: retired.tunnels,
            unattributed: self.unattributed.snapshot(),
            ..TableCounters::default()
        };
        for sa in &snap.inbound {
            let drops = sa.counters().drops.snapshot();
            let t = &mut out.tunnels[sa.tunnel().index()];
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
            let t = &mut out.tunnels[sa.tunnel().index()];
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
        tunnel: TunnelId,
        buf: &mut [u8],
        inner: std::ops::Range<usize>,
    ) -> Result<Sealed, SealError> {
        self.cache.load().seal(tunnel, buf, inner)
    }

    pub fn snapshot(&mut self) -> &Arc<Snapshot> {
        self.cache.load()
    }
}
