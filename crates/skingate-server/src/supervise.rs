//! Background loops that outlive a panic.
//!
//! The trade watchers, the webhook dispatcher and the WebSocket hub's event tailer run for the life of the
//! process. A panic in one of them (a
//! bug, a row no code expected) would otherwise end it for good while the API kept answering: deposits no
//! longer credited, purchases no longer moving, webhooks no longer sent, until someone restarted the server.
//! [`supervise`] logs the panic at error level and starts the loop again after a pause, which is what a
//! restart would do: every loop rebuilds what it needs from the database when it starts.
//!
//! For the same reason the server's in-memory locks (caches, the hub's subscriber lists, rate-limit buckets)
//! are taken with `unwrap_or_else(PoisonError::into_inner)`: what they guard stays usable after a panic
//! elsewhere, and one panic must not turn into a failure of every later request.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;

/// First pause before a panicked loop starts again; it doubles at each panic in a row, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// Longest pause between restarts: a loop that panics at once every time is retried once a minute.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Runs the loop `start` builds until it returns (its own shutdown); after a panic, logs it and runs a new
/// one, unless `shutdown` has been cancelled meanwhile.
pub async fn supervise<F, Fut>(name: &'static str, shutdown: CancellationToken, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut pause = FIRST_PAUSE;
    loop {
        let Err(panic) = AssertUnwindSafe(start()).catch_unwind().await else { return };
        tracing::error!(task = name, panic = %panic_text(panic.as_ref()), retry_in = ?pause, "background task panicked");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// A panic's message, when it carries one.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A loop that panics twice is started a third time and its normal end ends the supervision; the pauses
    /// run on Tokio's paused clock.
    #[tokio::test(start_paused = true)]
    async fn a_panicking_loop_is_started_again() {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        supervise("test", CancellationToken::new(), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(n >= 2, "round {n} panics");
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    /// A shutdown during the pause after a panic ends the supervision instead of starting the loop again.
    #[tokio::test(start_paused = true)]
    async fn a_shutdown_during_the_pause_ends_it() {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(FIRST_PAUSE / 2).await;
            stop.cancel();
        });
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        supervise("test", shutdown, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { panic!("always") }
        })
        .await;
        canceller.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "not started again after the shutdown");
    }
}
