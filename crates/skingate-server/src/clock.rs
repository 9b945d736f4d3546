//! Time as the gateway sees it.
//!
//! Every timestamp the gateway writes comes from a [`Clock`], never from `SystemTime::now()` directly,
//! so tests (and later the Steam simulator) can move time forward without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of Unix time in seconds.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;

    /// Moves time forward by `secs`, where this clock allows it (tests, the demo); false otherwise.
    fn advance(&self, secs: i64) -> bool {
        let _ = secs;
        false
    }

    /// How far this clock runs ahead of the system clock, for a clock that is the system clock moved on
    /// (the demo's [`OffsetClock`]): what must survive a restart so time never runs backwards.
    fn offset(&self) -> Option<i64> {
        None
    }
}

/// The `meta` key that keeps the demo clock's offset across restarts (and tells the CLI the demo's time).
pub const OFFSET_KEY: &str = "clock_offset_secs";

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// Starts at `now`.
    pub fn new(now: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now)))
    }

    /// Moves time forward by `secs` (saturating at the end of time).
    pub fn advance(&self, secs: i64) {
        let _ = self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| Some(t.saturating_add(secs)));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    fn advance(&self, secs: i64) -> bool {
        ManualClock::advance(self, secs);
        true
    }
}

/// The system clock plus an offset that only grows: the demo's clock, so an operator can let the 8 days
/// of a Trade Protection hold pass (`skingate sim advance`) while time otherwise runs normally.
#[derive(Debug, Clone, Default)]
pub struct OffsetClock(Arc<AtomicI64>);

impl Clock for OffsetClock {
    fn now(&self) -> i64 {
        SystemClock.now().saturating_add(self.0.load(Ordering::SeqCst))
    }

    fn advance(&self, secs: i64) -> bool {
        // Saturating: an absurd total pins the clock at the end of time instead of wrapping into the past.
        let _ = self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| Some(o.saturating_add(secs)));
        true
    }

    fn offset(&self) -> Option<i64> {
        Some(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_adjustable_clocks_advance() {
        assert!(!SystemClock.advance(5));
        let manual = ManualClock::new(100);
        assert!(Clock::advance(&manual, 5));
        assert_eq!(manual.now(), 105);
        let offset = OffsetClock::default();
        let before = offset.now();
        assert!(offset.advance(86_400));
        assert!(offset.now() >= before + 86_400);
    }

    /// However far an adjustable clock is moved, it never wraps into the past.
    #[test]
    fn adjustable_clocks_saturate() {
        let manual = ManualClock::new(100);
        manual.advance(i64::MAX);
        manual.advance(i64::MAX);
        assert_eq!(manual.now(), i64::MAX);
        let offset = OffsetClock::default();
        offset.advance(i64::MAX);
        offset.advance(5);
        assert_eq!(offset.now(), i64::MAX);
    }
}
