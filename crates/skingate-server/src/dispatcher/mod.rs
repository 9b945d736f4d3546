//! The durable webhook dispatcher: delivers outbox rows, at least once, on the published schedule.
//!
//! Deliveries are rows written with their event (see `events.rs`). This loop wakes when this process
//! commits an event ([`crate::AppState::events_committed`]) or every `webhook_poll_interval_ms` (events
//! committed by other processes, retries falling due), leases due rows for longer than an attempt can take,
//! sends them with bounded concurrency, logs each attempt and schedules the next. A crash loses nothing:
//! an unfinished lease expires and the row is due again.
//!
//! Projects share the dispatcher fairly (`dispatcher/share.rs`): one merchant's slow endpoint or long backlog does not
//! delay another's deliveries.
//!
//! Only 2xx counts. 410 disables the endpoint. An endpoint that has not succeeded for
//! `webhook_disable_after_secs` is disabled too. Either way the merchant is told with a
//! `webhook_endpoint_disabled` event on its WebSocket channel, and the disabled state shows in the CLI.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use serde_json::json;
use skingate_core::events::{AttemptOutcome, EventType, RetryPolicy};
use skingate_core::project::Project;
use skingate_store::{Attempt, Delivery, NextStep};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::events::{emit, public_id};
use crate::state::AppState;
use crate::webhook::WebhookClient;

mod share;
use share::Share;

/// Delivery kind of deposit Result-URL callbacks (the other kind is the events webhook).
pub const RESULT_URL: &str = "result_url";

/// Extra lease time beyond the queue wait and the HTTP timeout, so a slow attempt is never delivered twice
/// concurrently. (Should a lease still run out, say when an operator moves the clock, the late attempt's
/// result is not recorded over the newer one's: see `Delivery::leased_until`.)
const LEASE_MARGIN_SECS: i64 = 30;

/// Most attempt results written in one transaction.
const RECORD_BATCH: usize = 1024;

/// How many deliveries are leased per concurrent slot: enough that sending never waits for the recorder's
/// disk flush.
const LEASE_AHEAD: usize = 16;

/// How long the recorder waits for more results before writing a batch.
const GATHER: Duration = Duration::from_millis(2);

/// What became of a leased delivery, on its way to the recorder.
enum Finished {
    /// Attempted: the attempt to log and the delivery's next step.
    Attempted(Done),
    /// Never attempted (the dispatcher is stopping): its lease is handed back.
    Unstarted(Delivery),
}

/// A finished attempt on its way to the database.
struct Done {
    delivery: Delivery,
    attempt: Attempt,
    next: NextStep,
    outcome: AttemptOutcome,
    project: Option<Arc<Project>>,
}

/// Runs until `shutdown`, then stops gracefully: it returns once the attempts already under way have
/// finished and been logged, and the leases of the rows leased ahead but not yet attempted have been handed
/// back, so the next process delivers those at once rather than when their leases run out (minutes with the
/// default timeout). A crash instead loses nothing either: the leases expire and the rows are due again.
///
/// Three stages: this loop leases due rows (up to `LEASE_AHEAD` times `webhook_concurrency` ahead), one task per
/// delivery sends it (at most `webhook_concurrency` at once), and a recorder writes finished attempts in
/// batches (group commit: one disk flush per batch instead of one per delivery).
pub async fn run(state: AppState, client: WebhookClient, shutdown: CancellationToken) {
    let concurrency = state.config.webhook_concurrency;
    let policy = Arc::new(state.config.retry_policy());
    let poll = Duration::from_millis(state.config.webhook_poll_interval_ms);
    // A project may lease `LEASE_AHEAD` rounds of attempts ahead (`max_ahead`), all projects together twice
    // that. A leased row may so wait behind up to `LEASE_AHEAD` rounds of its project's attempts (each at most
    // one timeout), at half the slots when another project contends: the lease covers twice that wait and the
    // attempt, so it does not run out while the row is still on its way (which would let another claim send it
    // a second time). (With three or more projects contending with slow endpoints a row can wait longer; it
    // is then sent again, which at least once allows.)
    let timeout_secs = i64::try_from(state.config.webhook_timeout_ms.div_ceil(1000)).unwrap_or(60);
    let lease = timeout_secs * (2 * LEASE_AHEAD as i64 + 1) + LEASE_MARGIN_SECS;
    let max_ahead = concurrency * LEASE_AHEAD;
    let share = Share::new(concurrency, max_ahead);
    let progress = Arc::new(Notify::new());
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(recorder(state.clone(), policy.clone(), done_rx, share.clone(), progress.clone()));
    loop {
        if recorder.is_finished() {
            // Attempts would go unrecorded and be sent again at every lease's end: start the whole stage
            // again (under `supervise`), as a restart would.
            panic!("the webhook attempt recorder stopped");
        }
        let busy = share.leased_total();
        // Leases are taken in batches (a claim is a write transaction: one row at a time would cost a disk
        // flush per delivery): `claim_limit` claims a project again only once it is down to half its room.
        // (When the whole window is leased, `claim_limit` still lets projects with nothing leased in: two
        // merchants' backlogs to black holes must not keep a third merchant's deliveries from being claimed.)
        let room = 2 * max_ahead - busy.min(2 * max_ahead);
        let due = {
            let limit = share.claim_limit(u32::try_from(room).unwrap_or(u32::MAX));
            state.store.claim_due_deliveries(state.now(), lease, &limit).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "claiming deliveries failed");
                Vec::new()
            })
        };
        let idle = due.is_empty();
        share.leased(due.iter().map(|d| d.event.project));
        for delivery in due {
            let (state, client, policy, share, done_tx, shutdown) =
                (state.clone(), client.clone(), policy.clone(), share.clone(), done_tx.clone(), shutdown.clone());
            tokio::spawn(async move {
                // A stop while waiting for a slot leaves the row to the next process; an attempt under way
                // runs to its end (at most the webhook timeout) so its result is logged, not sent again.
                let permit = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => None,
                    slot = share.slot(delivery.event.project) => Some(slot),
                };
                let finished = match permit {
                    Some(permit) if !shutdown.is_cancelled() => {
                        // A panic inside one attempt is that attempt's failure, retried like any other: the
                        // task must report (the dispatcher counts what is in flight by these reports).
                        let copy = delivery.clone();
                        let done = AssertUnwindSafe(deliver(&state, &client, &policy, delivery))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|panic| {
                                let why = crate::supervise::panic_text(panic.as_ref());
                                tracing::error!(delivery = copy.id, panic = %why, "a webhook attempt panicked");
                                let now = state.now();
                                Done {
                                    attempt: failed_attempt(copy.attempts + 1, now, "gateway error during the attempt"),
                                    delivery: copy,
                                    next: NextStep::RetryAt(now + PANIC_RETRY_SECS),
                                    outcome: AttemptOutcome::Failed { retry_after_secs: None },
                                    project: None,
                                }
                            });
                        drop(permit);
                        Finished::Attempted(done)
                    }
                    _ => Finished::Unstarted(delivery),
                };
                let _ = done_tx.send(finished);
            });
        }
        if idle {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = state.dispatch_wake.notified() => {}
                () = progress.notified(), if room == 0 => {}
                // A project had no room (its rows due all along, so no wake-up marks them): it has again.
                () = share.reopened.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }
    }
    // The recorder ends once every delivery task has reported (each holds a sender) and its batch is written.
    drop(done_tx);
    if let Err(e) = recorder.await {
        tracing::error!(error = %e, "the webhook attempt recorder failed");
    }
}

/// When an attempt that panicked is tried again.
const PANIC_RETRY_SECS: i64 = 60;

/// One attempt of one delivery.
async fn deliver(state: &AppState, client: &WebhookClient, policy: &RetryPolicy, mut d: Delivery) -> Done {
    let now = state.now();
    let attempt_no = d.attempts + 1;
    let give_up = |d: Delivery, why: &str, project| Done {
        attempt: failed_attempt(attempt_no, now, why),
        delivery: d,
        next: NextStep::Fail,
        outcome: AttemptOutcome::Failed { retry_after_secs: None },
        project,
    };
    let project = match state.project(d.event.project).await {
        Ok(Some(p)) => p,
        Ok(None) => return give_up(d, "project deleted", None),
        Err(e) => {
            tracing::warn!(error = %e, delivery = d.id, "loading project for delivery failed; retrying");
            let retry = Done {
                attempt: failed_attempt(attempt_no, now, "gateway storage unavailable"),
                delivery: d,
                next: NextStep::RetryAt(now + 5),
                outcome: AttemptOutcome::Failed { retry_after_secs: None },
                project: None,
            };
            return retry;
        }
    };
    let result = if d.kind == RESULT_URL {
        // A deposit callback: the deposit object from the event, signed and encoded per the project.
        let data = serde_json::from_str::<serde_json::Value>(&d.event.payload)
            .ok()
            .and_then(|mut v| v.get_mut("data").map(std::mem::take));
        let Some(data) = data else { return give_up(d, "corrupt event payload", Some(project)) };
        let (content_type, body) = crate::deposits::wire::callback_body(&project, &data);
        client.send_callback(&d.url, &project, &public_id(d.event.id), content_type, body).await
    } else {
        // The endpoint as it is now: a delivery queued before the URL changed (retried, resent or recovered)
        // goes to the new one.
        let Some(url) = project.active_events_url() else {
            return give_up(d, "endpoint disabled or unset", Some(project));
        };
        if url != d.url {
            d.url = url.to_owned();
        }
        client.send(&d.url, &project, &public_id(d.event.id), &d.event.payload, now).await
    };
    let outcome = match AttemptOutcome::from_status(result.status, result.timed_out, result.retry_after_secs) {
        // 410 switches the events endpoint off; a Result URL is retried like any other failure (only a 2xx
        // counts, DEPOSITS.md), since the deposit's outcome must reach the merchant.
        AttemptOutcome::Gone if d.kind == RESULT_URL => AttemptOutcome::Failed { retry_after_secs: None },
        outcome => outcome,
    };
    // A retry's delay runs from the answer (or the timeout), not from the start of the attempt: an audit saw
    // an endpoint that answers 500 after 8 s tried again at once, 5 s being over by then. The attempt's own
    // duration (whole seconds) is added rather than the clock read again, so time moved while it ran (a
    // test's clock) does not count twice. (The clock reads whole seconds: a delay may come out up to a
    // second short or long, documented.)
    let ended = now.saturating_add(i64::try_from(result.duration.as_secs()).unwrap_or(i64::MAX / 2));
    let next = match outcome {
        AttemptOutcome::Delivered => NextStep::Delivered,
        AttemptOutcome::Gone => NextStep::Fail,
        _ => match policy.next_delay(attempt_no, outcome, rand::random::<f64>()) {
            Some(delay) => NextStep::RetryAt(ended.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX / 2))),
            None => NextStep::Fail,
        },
    };
    let attempt = Attempt {
        attempt_no,
        started_at: now,
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
        http_status: result.status,
        error: result.error,
        response_head: result.head,
    };
    tracing::debug!(delivery = d.id, attempt = attempt_no, status = ?attempt.http_status, ?next, "webhook attempt");
    Done { delivery: d, attempt, next, outcome, project: Some(project) }
}

/// Writes finished attempts in batches, disables endpoints that asked for it or failed too long, and hands
/// back the leases of deliveries a stop left unattempted.
async fn recorder(
    state: AppState,
    policy: Arc<RetryPolicy>,
    mut rx: mpsc::UnboundedReceiver<Finished>,
    share: Arc<Share>,
    progress: Arc<Notify>,
) {
    while let Some(first) = rx.recv().await {
        let mut finished = vec![first];
        // Group commit: gather what finishes within a couple of milliseconds into one transaction.
        let gather_until = tokio::time::Instant::now() + GATHER;
        while finished.len() < RECORD_BATCH {
            match tokio::time::timeout_at(gather_until, rx.recv()).await {
                Ok(Some(f)) => finished.push(f),
                Ok(None) | Err(_) => break,
            }
        }
        let mut projects = Vec::with_capacity(finished.len());
        let (mut batch, mut unstarted) = (Vec::new(), Vec::new());
        for f in finished {
            match f {
                Finished::Attempted(done) => {
                    projects.push(done.delivery.event.project);
                    batch.push(done);
                }
                Finished::Unstarted(delivery) => {
                    projects.push(delivery.event.project);
                    unstarted.push(delivery);
                }
            }
        }
        if !unstarted.is_empty() {
            release(&state, &unstarted).await;
        }
        if !batch.is_empty() {
            record(&state, &policy, &batch).await;
        }
        share.settled(projects);
        progress.notify_one();
        // A delivery finished for good may have held up a later one of its subject (a purchase's next status,
        // a deposit's next callback): due all along, nothing else would mark it.
        state.dispatch_wake.notify_one();
    }
}

/// Logs a batch of attempts and disables the endpoints that asked for it or failed too long.
async fn record(state: &AppState, policy: &RetryPolicy, batch: &[Done]) {
    let rows: Vec<_> = batch.iter().map(|d| (&d.delivery, &d.attempt, d.next)).collect();
    match state.store.record_attempts(&rows).await {
        Ok(streaks) => {
            for (done, failing_since) in batch.iter().zip(streaks) {
                let now = done.attempt.started_at;
                let reason = match (done.outcome, failing_since) {
                    (AttemptOutcome::Gone, _) => Some("gone"),
                    (_, Some(since)) if policy.should_disable(since, now) => Some("failing"),
                    _ => None,
                };
                // Only the events endpoint is ever disabled: a failing Result URL keeps being retried.
                let reason = reason.filter(|_| done.delivery.kind != RESULT_URL);
                if let (Some(reason), Some(project)) = (reason, &done.project) {
                    let since = failing_since.unwrap_or(now);
                    disable_endpoint(state, project, &done.delivery.url, reason, since).await;
                }
            }
        }
        // The leases expire and the deliveries are attempted again: at least once, never lost.
        Err(e) => tracing::error!(error = %e, count = batch.len(), "recording webhook attempts failed"),
    }
}

/// Hands back the leases of deliveries a stop left unattempted.
async fn release(state: &AppState, unstarted: &[Delivery]) {
    let leased: Vec<&Delivery> = unstarted.iter().collect();
    match state.store.release_deliveries(&leased).await {
        Ok(n) => tracing::info!(released = n, "stopping: handed back the leases of unattempted deliveries"),
        // They are delivered when their leases run out instead.
        Err(e) => tracing::warn!(error = %e, count = leased.len(), "handing back delivery leases failed"),
    }
}

fn failed_attempt(attempt_no: u32, now: i64, why: &str) -> Attempt {
    Attempt {
        attempt_no,
        started_at: now,
        duration_ms: 0,
        http_status: None,
        error: Some(why.to_owned()),
        response_head: String::new(),
    }
}

/// Disables the endpoint and tells the merchant over its WebSocket channel, in one transaction: the endpoint
/// is never disabled without the notice, and an endpoint disabled already gets no second one.
async fn disable_endpoint(state: &AppState, project: &Project, url: &str, reason: &str, since: i64) {
    let now = state.now();
    let notice = async {
        let mut tx = state.store.begin().await?;
        // Only the URL that failed: an attempt to an old URL ending after the merchant set a new one must not
        // switch the new endpoint off.
        if !tx.disable_events_endpoint(project.id, url, now).await? {
            return Ok(false);
        }
        let data = json!({"url": url, "reason": reason, "failing_since": since});
        emit(tx.as_mut(), project, EventType::WebhookEndpointDisabled, data, now).await?;
        tx.commit().await?;
        Ok::<_, skingate_store::StoreError>(true)
    };
    match notice.await {
        Ok(true) => {
            tracing::warn!(project = %project.id, url, reason, "disabled the events webhook endpoint");
            // Attempts already under way read the cached project: let them see the switch.
            state.forget_project(project.id);
            state.events_committed();
        }
        Ok(false) => {}
        // Nothing changed: the endpoint's next failing attempt decides again.
        Err(e) => tracing::error!(error = %e, project = %project.id, "disabling the events endpoint failed"),
    }
}
