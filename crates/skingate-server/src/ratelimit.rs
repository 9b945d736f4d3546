//! Request limits: per project for the API (`-7 request_limit_reached`), per deposit for the payment page's
//! requests that call Steam.
//!
//! The project is known only after the body is parsed and authenticated, so this is not a tower layer but
//! a call the dispatcher makes. Each project gets a GCRA limiter (governor) with its own quota: a burst of
//! `rate_limit_per_min` requests, refilled evenly over a minute. Limits are per node.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use skingate_core::project::ProjectId;

/// The limiters of all projects seen by this node.
#[derive(Debug, Default)]
pub struct RateLimits {
    by_project: RwLock<HashMap<ProjectId, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl RateLimits {
    /// Counts one request; `Err(seconds)` when the project must wait that long.
    pub fn check(&self, project: ProjectId, per_minute: u32) -> Result<(), u64> {
        self.limiter(project, per_minute).check().map_err(|not_until| wait_secs(&not_until))
    }

    fn limiter(&self, project: ProjectId, per_minute: u32) -> Arc<DefaultDirectRateLimiter> {
        if let Some((limit, l)) =
            self.by_project.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&project)
            && *limit == per_minute
        {
            return l.clone();
        }
        // New project or its limit changed: start a fresh limiter with the new quota.
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        let limiter = Arc::new(RateLimiter::direct(quota));
        self.by_project
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(project, (per_minute, limiter.clone()));
        limiter
    }
}

/// Per-deposit limits of the payment page's requests that call Steam (inventory views, offer submits): the
/// page token is held by an anonymous payer, and each such request spends the bots' Steam API budget. Keyed by
/// deposit id; idle keys are dropped once many accumulate.
#[derive(Debug)]
pub struct PageLimits {
    limiter: governor::DefaultKeyedRateLimiter<i64>,
    /// Keys above which the next check sweeps idle ones (doubles with what a sweep leaves, so a busy period
    /// does not sweep on every request).
    sweep_at: AtomicUsize,
}

impl PageLimits {
    /// Keys kept before idle ones are swept.
    const SWEEP_ABOVE: usize = 10_000;

    /// A burst of `per_minute` requests per deposit, refilled evenly over a minute.
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self { limiter: RateLimiter::keyed(quota), sweep_at: AtomicUsize::new(Self::SWEEP_ABOVE) }
    }

    /// Counts one request for `deposit`; `Err(seconds)` when it must wait that long.
    pub fn check(&self, deposit: i64) -> Result<(), u64> {
        if self.limiter.len() > self.sweep_at.load(Ordering::Relaxed) {
            self.limiter.retain_recent();
            let left = self.limiter.len();
            self.sweep_at.store(Self::SWEEP_ABOVE.max(left.saturating_mul(2)), Ordering::Relaxed);
        }
        self.limiter.check_key(&deposit).map_err(|not_until| wait_secs(&not_until))
    }
}

/// Whole seconds until a refused request may be made, rounded up (the `Retry-After` value).
fn wait_secs(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limits_are_per_deposit() {
        let limits = PageLimits::new(3);
        for _ in 0..3 {
            assert!(limits.check(7).is_ok());
        }
        assert!(limits.check(7).is_err());
        assert!(limits.check(8).is_ok(), "another deposit is unaffected");
    }

    #[test]
    fn burst_then_refuse_with_wait() {
        let limits = RateLimits::default();
        let p = ProjectId(1);
        for _ in 0..5 {
            assert!(limits.check(p, 5).is_ok());
        }
        let wait = limits.check(p, 5).unwrap_err();
        assert!((1..=12).contains(&wait), "{wait}");
        // Other projects are unaffected, and raising the limit takes effect at once.
        assert!(limits.check(ProjectId(2), 5).is_ok());
        assert!(limits.check(p, 500).is_ok());
    }
}
