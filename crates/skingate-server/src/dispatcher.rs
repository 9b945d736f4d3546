//! The durable webhook dispatcher: delivers outbox rows, at least once, on the published schedule.
//!
//! Deliveries are rows written with their event (see `events.rs`). This loop wakes when this process
//! commits an event ([`crate::AppState::events_committed`]) or every `webhook_poll_interval_ms` (events
//! committed by other processes, retries falling due), leases due rows for longer than an attempt can take,
//! sends them with bounded concurrency, logs each attempt and schedules the next. A crash loses nothing:
//! an unfinished lease expires and the row is due again.
//!
//! Only 2xx counts. 410 disables the endpoint. An endpoint that has not succeeded for
//! `webhook_disable_after_secs` is disabled too. Either way the merchant is told with a
//! `webhook_endpoint_disabled` event on its WebSocket channel, and the disabled state shows in the CLI.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use skingate_core::events::{AttemptOutcome, EventType, RetryPolicy};
use skingate_store::{Attempt, Delivery, NextStep};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::events::{emit, public_id};
use crate::state::AppState;
use crate::webhook::WebhookClient;

/// Extra lease time beyond the HTTP timeout, so a slow attempt is never delivered twice concurrently.
const LEASE_MARGIN_SECS: i64 = 30;

/// Runs until `shutdown`; in-flight attempts finish or their leases expire.
pub async fn run(state: AppState, client: WebhookClient, shutdown: CancellationToken) {
    let concurrency = state.config.webhook_concurrency;
    let permits = Arc::new(Semaphore::new(concurrency));
    let policy = Arc::new(state.config.retry_policy());
    let poll = Duration::from_millis(state.config.webhook_poll_interval_ms);
    let lease = i64::try_from(state.config.webhook_timeout_ms / 1000).unwrap_or(60) + LEASE_MARGIN_SECS;
    loop {
        let batch = u32::try_from(permits.available_permits().max(1)).unwrap_or(1);
        let due = match state.store.claim_due_deliveries(state.now(), lease, batch).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "claiming deliveries failed");
                Vec::new()
            }
        };
        let idle = due.is_empty();
        for delivery in due {
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let (state, client, policy) = (state.clone(), client.clone(), policy.clone());
            tokio::spawn(async move {
                deliver(&state, &client, &policy, delivery).await;
                drop(permit);
            });
        }
        if idle || permits.available_permits() == 0 {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = state.dispatch_wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                // A finished attempt frees a permit: look for more work.
                Ok(p) = permits.clone().acquire_owned(), if !idle => drop(p),
            }
        }
    }
}

/// One attempt of one delivery, logged and rescheduled.
async fn deliver(state: &AppState, client: &WebhookClient, policy: &RetryPolicy, d: Delivery) {
    let now = state.now();
    let attempt_no = d.attempts + 1;
    let project = match state.project(d.event.project).await {
        Ok(Some(p)) => p,
        Ok(None) => return record(state, &d, failed_attempt(attempt_no, now, "project deleted"), NextStep::Fail).await,
        Err(e) => {
            tracing::warn!(error = %e, delivery = d.id, "loading project for delivery failed; lease will expire");
            return;
        }
    };
    if project.events_disabled_at.is_some() {
        return record(state, &d, failed_attempt(attempt_no, now, "endpoint disabled"), NextStep::Fail).await;
    }
    let result = client.send(&d.url, &project, &public_id(d.event.id), &d.event.payload, now).await;
    let outcome = AttemptOutcome::from_status(result.status, result.timed_out, result.retry_after_secs);
    let next = match outcome {
        AttemptOutcome::Delivered => NextStep::Delivered,
        AttemptOutcome::Gone => NextStep::Fail,
        _ => match policy.next_delay(attempt_no, outcome, rand::random::<f64>()) {
            Some(delay) => NextStep::RetryAt(now + i64::try_from(delay).unwrap_or(i64::MAX / 2)),
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
    let failing_since = match state.store.record_attempt(&d, &attempt, next).await {
        Ok(since) => since,
        Err(e) => return tracing::error!(error = %e, delivery = d.id, "recording a webhook attempt failed"),
    };
    let disable_reason = match (outcome, failing_since) {
        (AttemptOutcome::Gone, _) => Some("gone"),
        (_, Some(since)) if policy.should_disable(since, now) => Some("failing"),
        _ => None,
    };
    if let Some(reason) = disable_reason {
        disable_endpoint(state, &project, &d.url, reason, failing_since.unwrap_or(now)).await;
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

async fn record(state: &AppState, d: &Delivery, attempt: Attempt, next: NextStep) {
    if let Err(e) = state.store.record_attempt(d, &attempt, next).await {
        tracing::error!(error = %e, delivery = d.id, "recording a webhook attempt failed");
    }
}

/// Disables the endpoint and tells the merchant over its WebSocket channel.
async fn disable_endpoint(state: &AppState, project: &skingate_core::project::Project, url: &str, reason: &str, since: i64) {
    let now = state.now();
    tracing::warn!(project = %project.id, url, reason, "disabling events webhook endpoint");
    let notice = async {
        state.store.disable_events_endpoint(project.id, now).await?;
        let mut tx = state.store.begin().await?;
        let data = json!({"url": url, "reason": reason, "failing_since": since});
        emit(tx.as_mut(), project, EventType::WebhookEndpointDisabled, data, now).await?;
        tx.commit().await
    };
    match notice.await {
        Ok(()) => state.events_committed(),
        Err(e) => tracing::error!(error = %e, project = %project.id, "disabling the events endpoint failed"),
    }
}
