//! Both tunnels' health trackers and the sink, for a daemon that wants one call per status tick
//! and one per event.

use std::io;
use std::time::{Duration, SystemTime};

use crate::config::{Settings, VpnConnection};
use crate::daemon::status::StatusSnapshot;
use crate::sa::TunnelId;

use super::health::{HealthEvent, HealthRecord, HealthTracker, TunnelHealth, TunnelIdentity};
use super::sink::HealthSink;

/// Health records of one VPN connection (two tunnels) to one sink.
#[derive(Debug)]
pub struct HealthReporter {
    sink: HealthSink,
    trackers: [HealthTracker; 2],
}

impl HealthReporter {
    /// Trackers for both tunnels of `conn` and the sink `settings.log` names (opened now, so a bad
    /// path fails at start rather than at the first record).
    pub fn new(conn: &VpnConnection, settings: &Settings) -> io::Result<Self> {
        let interval = Some(Duration::from_secs(settings.log.health_interval.into()));
        let tracker = |i: usize| {
            HealthTracker::new(
                TunnelIdentity::from_config(conn, &conn.tunnels[i], &settings.aws),
                interval,
            )
        };
        Ok(HealthReporter {
            sink: HealthSink::from_settings(&settings.log)?,
            trackers: [tracker(0), tracker(1)],
        })
    }

    pub fn from_parts(sink: HealthSink, trackers: [HealthTracker; 2]) -> Self {
        HealthReporter { sink, trackers }
    }

    /// Per status tick: record state changes seen in the snapshot, then periodic records if due.
    /// `bgp` gives (established, routes) per tunnel for BGP connections.
    pub fn status_tick(
        &mut self,
        now: SystemTime,
        snap: &StatusSnapshot,
        bgp: Option<[(bool, u32); 2]>,
    ) -> io::Result<()> {
        let mut out = Vec::new();
        for t in &snap.tunnels {
            let Some(i) = (t.tunnel as usize).checked_sub(1).filter(|i| *i < 2) else {
                continue;
            };
            let mut h = TunnelHealth::from_status(t);
            if let Some(b) = bgp {
                h.bgp_established = Some(b[i].0);
                h.bgp_routes = Some(b[i].1);
            }
            out.extend(self.trackers[i].report(now, h, None));
        }
        for tr in &mut self.trackers {
            out.extend(tr.tick(now));
        }
        self.write(&out)
    }

    /// An event on `tunnel`, with the state it left the tunnel in (`None`: unchanged).
    pub fn event(
        &mut self,
        now: SystemTime,
        tunnel: TunnelId,
        state: Option<TunnelHealth>,
        event: &HealthEvent,
    ) -> io::Result<()> {
        let tr = &mut self.trackers[tunnel.index()];
        let state = state.unwrap_or_else(|| tr.current());
        let out = tr.report(now, state, Some(event));
        self.write(&out)
    }

    /// When periodic records are next due (for the run loop's timer).
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.trackers
            .iter()
            .filter_map(HealthTracker::next_deadline)
            .min()
    }

    /// Periodic records only (when the timer from [`Self::next_deadline`] fires).
    pub fn tick(&mut self, now: SystemTime) -> io::Result<()> {
        let out: Vec<HealthRecord> = self.trackers.iter_mut().flat_map(|t| t.tick(now)).collect();
        self.write(&out)
    }

    /// On SIGHUP.
    pub fn reopen(&self) -> io::Result<()> {
        self.sink.reopen()
    }

    pub fn tracker(&self, tunnel: TunnelId) -> &HealthTracker {
        &self.trackers[tunnel.index()]
    }

    fn write(&self, records: &[HealthRecord]) -> io::Result<()> {
        self.sink.write(records)
    }
}
