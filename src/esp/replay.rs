//! Anti-replay window (RFC 4303 §3.4.3), as a ring of 64-bit words that slides a word at a time
//! (RFC 6479 §3) instead of shifting the whole bitmap.
//!
//! State is atomics so [`crate::esp::InboundSa`] can be shared without a lock, but the window has
//! ONE writer: the RX thread that opens packets of this SA. [`ReplayWindow::check`] runs before
//! authentication (cheap rejection of old and duplicate packets), [`ReplayWindow::accept`] after it;
//! `accept` sets the bit with `fetch_or` and re-checks it, so a duplicate is caught exactly even if
//! two threads ever raced on the same sequence number.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Smallest and largest window AWS lets a tunnel configure (ReplayWindowSize).
pub const MIN_WINDOW: u32 = 64;
pub const MAX_WINDOW: u32 = 2048;
pub const DEFAULT_WINDOW: u32 = 1024;

const WORD_BITS: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Sequence number 0 is never sent (the first packet carries 1, RFC 4303 §3.3.3).
    Zero,
    /// Left of the window.
    TooOld,
    /// Already received.
    Duplicate,
}

#[derive(Debug)]
pub struct ReplayWindow {
    /// Highest sequence number accepted so far (0 = none yet).
    top: AtomicU64,
    /// Window size in packets: `top - seq >= size` is too old.
    size: u64,
    /// Ring of words; word `(seq / 64) % words.len()` holds bit `seq % 64`. One spare word beyond
    /// `size` so sliding only ever clears whole words that lie outside the window.
    words: Box<[AtomicU64]>,
}

impl ReplayWindow {
    /// `size` in packets, [`MIN_WINDOW`]..=[`MAX_WINDOW`]; `None` outside that range.
    pub fn new(size: u32) -> Option<Self> {
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&size) {
            return None;
        }
        let words = (u64::from(size).div_ceil(WORD_BITS) + 1).next_power_of_two() as usize;
        Some(ReplayWindow {
            top: AtomicU64::new(0),
            size: u64::from(size),
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    pub fn size(&self) -> u32 {
        self.size as u32
    }

    /// Highest sequence number accepted so far.
    pub fn top(&self) -> u64 {
        self.top.load(Relaxed)
    }

    fn slot(&self, seq: u64) -> (&AtomicU64, u64) {
        let index = (seq / WORD_BITS) as usize & (self.words.len() - 1);
        (&self.words[index], 1 << (seq % WORD_BITS))
    }

    /// Would `seq` be accepted? Does not change the window (call before authentication).
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        let top = self.top.load(Relaxed);
        if seq > top {
            return Ok(());
        }
        if top - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        let (word, bit) = self.slot(seq);
        if word.load(Relaxed) & bit != 0 {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records an authenticated `seq`, sliding the window forward if it is the new highest.
    pub fn accept(&self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        let top = self.top.load(Relaxed);
        if seq > top {
            let (old_block, new_block) = (top / WORD_BITS, seq / WORD_BITS);
            let stale = (new_block - old_block).min(self.words.len() as u64);
            for block in new_block + 1 - stale..=new_block {
                self.words[block as usize & (self.words.len() - 1)].store(0, Relaxed);
            }
            self.top.store(seq, Relaxed);
        }
        let (word, bit) = self.slot(seq);
        if word.fetch_or(bit, Relaxed) & bit != 0 {
            return Err(ReplayError::Duplicate);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The RFC 4303 §3.4.3 rule written the obvious way.
    struct Model {
        size: u64,
        top: u64,
        seen: BTreeSet<u64>,
    }

    impl Model {
        fn check(&self, seq: u64) -> Result<(), ReplayError> {
            if seq == 0 {
                Err(ReplayError::Zero)
            } else if seq > self.top {
                Ok(())
            } else if self.top - seq >= self.size {
                Err(ReplayError::TooOld)
            } else if self.seen.contains(&seq) {
                Err(ReplayError::Duplicate)
            } else {
                Ok(())
            }
        }
        fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
            self.check(seq)?;
            self.seen.insert(seq);
            self.top = self.top.max(seq);
            Ok(())
        }
    }

    #[test]
    fn sizes() {
        assert!(ReplayWindow::new(63).is_none());
        assert!(ReplayWindow::new(2049).is_none());
        assert_eq!(ReplayWindow::new(64).unwrap().words.len(), 2);
        assert_eq!(ReplayWindow::new(1024).unwrap().words.len(), 32);
        assert_eq!(ReplayWindow::new(2048).unwrap().words.len(), 64);
        assert_eq!(ReplayWindow::new(100).unwrap().words.len(), 4);
    }

    #[test]
    fn basic_rules() {
        let w = ReplayWindow::new(64).unwrap();
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        w.accept(1).unwrap();
        assert_eq!(w.accept(1), Err(ReplayError::Duplicate));
        w.accept(3).unwrap();
        w.accept(2).unwrap();
        w.accept(100).unwrap();
        assert_eq!(w.check(36), Err(ReplayError::TooOld));
        w.check(37).unwrap();
        w.accept(37).unwrap();
        assert_eq!(w.check(37), Err(ReplayError::Duplicate));
        // A jump far beyond the ring clears everything.
        w.accept(1_000_000).unwrap();
        w.check(1_000_000 - 63).unwrap();
        assert_eq!(w.check(1_000_000 - 64), Err(ReplayError::TooOld));
        // Sequence numbers up to 2^32 - 1.
        w.accept(u64::from(u32::MAX)).unwrap();
        assert_eq!(w.check(u64::from(u32::MAX)), Err(ReplayError::Duplicate));
    }

    fn seq_strategy() -> impl Strategy<Value = Vec<u64>> {
        // Mostly forward-moving with reordering, some big jumps and some exact repeats.
        proptest::collection::vec(
            prop_oneof![
                8 => 0u64..40,
                2 => 0u64..3000,
                1 => Just(0u64),
            ],
            1..400,
        )
        .prop_map(|steps| {
            let mut base = 0u64;
            steps
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    if i % 3 == 0 {
                        base += s;
                        base
                    } else {
                        base.saturating_sub(s)
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn matches_naive_model(size in MIN_WINDOW..=MAX_WINDOW, seqs in seq_strategy()) {
            let w = ReplayWindow::new(size).unwrap();
            let mut m = Model { size: u64::from(size), top: 0, seen: BTreeSet::new() };
            for seq in seqs {
                prop_assert_eq!(w.check(seq), m.check(seq), "check {}", seq);
                prop_assert_eq!(w.accept(seq), m.accept(seq), "accept {}", seq);
                prop_assert_eq!(w.top(), m.top);
            }
        }
    }
}
