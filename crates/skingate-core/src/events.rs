//! Real-time events: their names and the delivery retry policy.
//!
//! Events are written to the outbox in the transaction that caused them and delivered from there (see
//! `skingate-store`'s `events` table). What is decided here is pure policy: which events exist, and when
//! a failed webhook delivery is tried again or its endpoint given up on.

use serde::{Deserialize, Serialize};

/// The events the gateway emits. The wire name is [`EventType::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// The project's spendable balance changed; carries `balance_value`.
    BalanceChange,
    /// A market purchase was made.
    BuyItem,
    /// A market purchase changed status.
    StatusChange,
    /// skingate: the events webhook endpoint was disabled after failing for too long (WebSocket only).
    WebhookEndpointDisabled,
    /// skingate: a deposit changed status; carries the deposit object. Goes to WebSockets, and to the
    /// deposit's Result URL as a callback, never to the events webhook.
    DepositStatus,
}

impl EventType {
    /// The `event` field on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BalanceChange => "balance_change",
            Self::BuyItem => "buy_item",
            Self::StatusChange => "status_change",
            Self::WebhookEndpointDisabled => "webhook_endpoint_disabled",
            Self::DepositStatus => "deposit_status",
        }
    }

    /// Every event type.
    pub const ALL: [Self; 5] =
        [Self::BalanceChange, Self::BuyItem, Self::StatusChange, Self::WebhookEndpointDisabled, Self::DepositStatus];

    /// Inverse of [`EventType::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether the event goes to the events webhook too (operational notices go to WebSockets and logs).
    pub fn to_webhook(self) -> bool {
        !matches!(self, Self::WebhookEndpointDisabled | Self::DepositStatus)
    }
}

/// When to try a failed delivery again, and when to stop.
///
/// The default schedule is the Standard Webhooks one stretched to about three days, like Stripe's:
/// immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 14 h and 24 h after the previous attempt
/// (ten attempts over 2 days 17.6 hours). Each delay gets ±20 % jitter so that a recovering receiver is not
/// hit by every retry at the same second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay before attempt *n+1* after attempt *n* failed, in seconds; its length bounds the attempts.
    pub delays_secs: Vec<u64>,
    /// Jitter in percent of the delay, applied both ways.
    pub jitter_percent: u8,
    /// Least wait after a 429 or a timeout, in seconds.
    pub throttled_floor_secs: u64,
    /// An endpoint failing without a single success for this long is disabled.
    pub disable_after_secs: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            delays_secs: vec![5, 300, 1_800, 7_200, 18_000, 36_000, 36_000, 50_400, 86_400],
            jitter_percent: 20,
            throttled_floor_secs: 60,
            disable_after_secs: 5 * 86_400,
        }
    }
}

/// How an attempt ended, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer: done.
    Delivered,
    /// 410 Gone: the receiver asks us to stop; the endpoint is disabled.
    Gone,
    /// 429 or a timeout: back off at least `throttled_floor_secs`, honouring `Retry-After` if sent.
    Throttled {
        /// The answer's `Retry-After`, in seconds.
        retry_after_secs: Option<u64>,
    },
    /// Any other failure (other status, connection refused, …).
    Failed {
        /// The answer's `Retry-After`, in seconds.
        retry_after_secs: Option<u64>,
    },
}

impl AttemptOutcome {
    /// Classifies an HTTP status (`None` = no answer, e.g. a timeout).
    pub fn from_status(status: Option<u16>, timed_out: bool, retry_after_secs: Option<u64>) -> Self {
        match status {
            Some(s) if (200..300).contains(&s) => Self::Delivered,
            Some(410) => Self::Gone,
            Some(429) => Self::Throttled { retry_after_secs },
            None if timed_out => Self::Throttled { retry_after_secs: None },
            _ => Self::Failed { retry_after_secs },
        }
    }
}

impl RetryPolicy {
    /// Most attempts a delivery gets (the first one plus one per delay).
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays_secs.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// Seconds to wait before the next attempt after `attempts_made` failed ones, or `None` when the
    /// delivery is exhausted. `unit` in [0, 1) draws the jitter (pass a random number; tests pass fixed ones).
    ///
    /// `Retry-After` is honoured within [base, 2 × base]: a receiver may slow us down, but can neither make
    /// us hammer it nor park a message for days.
    pub fn next_delay(&self, attempts_made: u32, outcome: AttemptOutcome, unit: f64) -> Option<u64> {
        let base = *self.delays_secs.get(usize::try_from(attempts_made.checked_sub(1)?).ok()?)?;
        let (retry_after, floor) = match outcome {
            AttemptOutcome::Delivered | AttemptOutcome::Gone => return None,
            AttemptOutcome::Throttled { retry_after_secs } => (retry_after_secs, self.throttled_floor_secs),
            AttemptOutcome::Failed { retry_after_secs } => (retry_after_secs, 0),
        };
        let jitter = (base as f64) * f64::from(self.jitter_percent) / 100.0 * (unit.clamp(0.0, 1.0) * 2.0 - 1.0);
        let jittered = ((base as f64) + jitter).round().max(0.0) as u64;
        let wanted = retry_after.map_or(jittered, |ra| ra.clamp(base, base.saturating_mul(2)));
        Some(wanted.max(floor))
    }

    /// Whether an endpoint failing since `failing_since` should be disabled at `now`.
    pub fn should_disable(&self, failing_since: i64, now: i64) -> bool {
        now.saturating_sub(failing_since) >= i64::try_from(self.disable_after_secs).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_spans_about_three_days() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 10);
        let total: u64 = (1..p.max_attempts())
            .map(|n| p.next_delay(n, AttemptOutcome::Failed { retry_after_secs: None }, 0.5).unwrap())
            .sum();
        assert_eq!(total, 236_105);
        assert!((2 * 86_400..4 * 86_400).contains(&total));
        assert_eq!(p.next_delay(p.max_attempts(), AttemptOutcome::Failed { retry_after_secs: None }, 0.5), None);
    }

    #[test]
    fn jitter_and_bounds() {
        let p = RetryPolicy::default();
        let fail = AttemptOutcome::Failed { retry_after_secs: None };
        assert_eq!(p.next_delay(2, fail, 0.0), Some(240));
        assert_eq!(p.next_delay(2, fail, 0.999_999), Some(360));
        // Retry-After is clamped to [base, 2 base].
        assert_eq!(p.next_delay(2, AttemptOutcome::Failed { retry_after_secs: Some(1) }, 0.5), Some(300));
        assert_eq!(p.next_delay(2, AttemptOutcome::Failed { retry_after_secs: Some(99_999) }, 0.5), Some(600));
        // 429 / timeouts wait at least a minute even early in the schedule.
        assert_eq!(p.next_delay(1, AttemptOutcome::Throttled { retry_after_secs: None }, 0.5), Some(60));
        assert_eq!(p.next_delay(1, AttemptOutcome::Delivered, 0.5), None);
        assert_eq!(p.next_delay(1, AttemptOutcome::Gone, 0.5), None);
        assert_eq!(p.next_delay(0, fail, 0.5), None);
    }

    #[test]
    fn classification_and_disabling() {
        assert_eq!(AttemptOutcome::from_status(Some(204), false, None), AttemptOutcome::Delivered);
        assert_eq!(AttemptOutcome::from_status(Some(410), false, None), AttemptOutcome::Gone);
        assert_eq!(AttemptOutcome::from_status(None, true, None), AttemptOutcome::Throttled { retry_after_secs: None });
        assert_eq!(
            AttemptOutcome::from_status(Some(301), false, None),
            AttemptOutcome::Failed { retry_after_secs: None }
        );
        let p = RetryPolicy::default();
        assert!(!p.should_disable(0, 5 * 86_400 - 1));
        assert!(p.should_disable(0, 5 * 86_400));
    }
}
