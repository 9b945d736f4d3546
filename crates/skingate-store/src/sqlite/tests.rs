use std::sync::Arc;

use skingate_core::Money;
use skingate_core::ledger::{AccountKind, Applied, LedgerError, Phase, TransferCode, TransferId, TransferSpec};
use skingate_core::project::ProjectSettings;

use super::*;
use crate::{Attempt, Claim, DeliveryState, IdempotencyKey, NextStep};

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sub/gate.db").display());
    let store = SqliteStore::open(&url, 2).await.unwrap();
    (dir, store)
}

async fn credit(store: &SqliteStore, project: ProjectId, id: &str, minor: i64, phase: Phase) -> Result<Applied> {
    let mut tx = store.begin().await?;
    let spec = TransferSpec {
        id: TransferId(id.into()),
        debit: tx.system_account(AccountKind::OperatorAdjustments).await?,
        credit: tx.project_account(project).await?,
        amount: Money::from_minor(minor),
        phase,
        code: TransferCode::Adjustment,
        allow_overdraft: false,
        reference: "test".into(),
    };
    let applied = tx.transfer(&spec, 1_000).await?;
    tx.commit().await?;
    Ok(applied)
}

async fn purchase(store: &SqliteStore, project: ProjectId, id: &str, minor: i64, phase: Phase) -> Result<Applied> {
    let mut tx = store.begin().await?;
    let spec = TransferSpec {
        id: TransferId(id.into()),
        debit: tx.project_account(project).await?,
        credit: tx.system_account(AccountKind::MarketSales).await?,
        amount: Money::from_minor(minor),
        phase,
        code: TransferCode::Purchase,
        allow_overdraft: false,
        reference: "buy".into(),
    };
    let applied = tx.transfer(&spec, 2_000).await?;
    tx.commit().await?;
    Ok(applied)
}

#[tokio::test]
async fn projects_round_trip_and_survive_reopen() {
    let (dir, store) = store().await;
    let mut settings = ProjectSettings::named("Shop");
    settings.ip_allowlist = vec!["10.0.0.0/8".parse().unwrap()];
    settings.result_url = Some("https://shop.example/cb".into());
    let p = store.create_project(&settings, "secret", 5).await.unwrap();
    assert_eq!(store.project(p.id).await.unwrap().unwrap(), p);
    let mut changed = p.clone();
    changed.settings.active = false;
    changed.client_secret = "other".into();
    store.update_project(&changed, 6).await.unwrap();
    store.close().await;
    let url = format!("sqlite://{}", dir.path().join("sub/gate.db").display());
    let again = SqliteStore::open(&url, 1).await.unwrap();
    assert_eq!(again.projects().await.unwrap(), vec![changed]);
    assert!(again.project(ProjectId(99)).await.unwrap().is_none());
}

#[tokio::test]
async fn ledger_moves_money_and_refuses_overdraft() {
    let (_dir, store) = store().await;
    let p = store.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    assert!(matches!(credit(&store, p.id, "c1", 10_000, Phase::Posted).await.unwrap(), Applied::New(_)));
    assert_eq!(credit(&store, p.id, "c1", 10_000, Phase::Posted).await.unwrap(), Applied::AlreadyApplied);
    let err = credit(&store, p.id, "c1", 9_999, Phase::Posted).await.unwrap_err();
    assert!(matches!(err, StoreError::Ledger(LedgerError::ExistsWithDifferentFields(_))));
    purchase(&store, p.id, "b1", 4_000, Phase::Pending).await.unwrap();
    let err = purchase(&store, p.id, "b2", 6_001, Phase::Pending).await.unwrap_err();
    assert!(matches!(err, StoreError::Ledger(LedgerError::InsufficientFunds)));
    purchase(&store, p.id, "b1:post", 4_000, Phase::Post(TransferId("b1".into()))).await.unwrap();
    let bal = store.project_balance(p.id).await.unwrap();
    assert_eq!(bal.available, Money::from_minor(6_000));
    assert_eq!(bal.in_flight, Money::ZERO);
    assert_eq!(bal.withdraw_sum, Money::from_minor(4_000));
    let err = purchase(&store, p.id, "b1:again", 4_000, Phase::Void(TransferId("b1".into()))).await.unwrap_err();
    assert!(matches!(err, StoreError::Ledger(LedgerError::PendingAlreadyResolved(_))));
    // Σ net over all accounts is zero.
    let sum: i64 = sqlx::query_scalar(
        "SELECT SUM(credits_posted + credits_pending - debits_posted - debits_pending) FROM accounts",
    )
    .fetch_one(&store.reader)
    .await
    .unwrap();
    assert_eq!(sum, 0);
}

#[tokio::test]
async fn history_pages_by_cursor() {
    let (_dir, store) = store().await;
    let p = store.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    for i in 0..5 {
        credit(&store, p.id, &format!("c{i}"), 1_000, Phase::Posted).await.unwrap();
    }
    let q = HistoryQuery { starting: 0, ending: 5_000, after_id: 0, limit: 3 };
    let (first, more) = store.balance_history(p.id, q).await.unwrap();
    assert!(more);
    assert_eq!(first.len(), 3);
    assert_eq!(first[2].available_after, Money::from_minor(3_000));
    let q = HistoryQuery { after_id: first[2].id, ..q };
    let (rest, more) = store.balance_history(p.id, q).await.unwrap();
    assert!(!more);
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].available_before, Money::from_minor(3_000));
    let q = HistoryQuery { starting: 1_001, ending: 5_000, after_id: 0, limit: 10 };
    assert!(store.balance_history(p.id, q).await.unwrap().0.is_empty());
}

#[tokio::test]
async fn idempotency_keys_replay_conflict_and_roll_back() {
    let (_dir, store) = store().await;
    let p = store.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    let key = IdempotencyKey { project: p.id, scope: "create".into(), key: "o-1".into() };
    // Rolled back: the key is free again.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.claim_idempotency_key(&key, "h1", 0).await.unwrap(), Claim::New);
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.claim_idempotency_key(&key, "h1", 0).await.unwrap(), Claim::New);
    tx.store_idempotent_response(&key, "{\"ok\":1}").await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.claim_idempotency_key(&key, "h1", 0).await.unwrap(), Claim::Replay("{\"ok\":1}".into()));
    assert_eq!(tx.claim_idempotency_key(&key, "h2", 0).await.unwrap(), Claim::Mismatch);
}

#[tokio::test]
async fn concurrent_claims_run_the_work_once() {
    let (_dir, store) = store().await;
    let store = Arc::new(store);
    let p = store.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = IdempotencyKey { project: p.id, scope: "m".into(), key: "k".into() };
                let mut tx = store.begin().await.unwrap();
                let claim = tx.claim_idempotency_key(&key, "h", 0).await.unwrap();
                if claim == Claim::New {
                    tx.store_idempotent_response(&key, "r").await.unwrap();
                }
                tx.commit().await.unwrap();
                claim
            })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        match t.await.unwrap() {
            Claim::New => new += 1,
            Claim::Replay(r) => assert_eq!(r, "r"),
            Claim::Mismatch => panic!("same request must replay"),
        }
    }
    assert_eq!(new, 1);
}

#[tokio::test]
async fn balance_cache_sees_own_writes_at_once_and_other_processes_soon() {
    let (dir, a) = store().await;
    let url = format!("sqlite://{}", dir.path().join("sub/gate.db").display());
    let b = SqliteStore::open(&url, 1).await.unwrap();
    let p = a.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    assert_eq!(a.project_balance(p.id).await.unwrap().available, Money::ZERO);
    // Own write: visible immediately, no waiting.
    credit(&a, p.id, "own", 100, Phase::Posted).await.unwrap();
    assert_eq!(a.project_balance(p.id).await.unwrap().available, Money::from_minor(100));
    // Another store (another process, as far as SQLite knows) writes: `a` sees it within a few polls.
    credit(&b, p.id, "other", 50, Phase::Posted).await.unwrap();
    let deadline = std::time::Instant::now() + cache::POLL_INTERVAL * 40;
    loop {
        if a.project_balance(p.id).await.unwrap().available == Money::from_minor(150) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "external commit not seen within 40 poll intervals");
        tokio::time::sleep(cache::POLL_INTERVAL / 5).await;
    }
}

#[tokio::test]
async fn claims_lease_without_a_flush_and_leave_the_writer_flushing() {
    let (_dir, s) = store().await;
    let p = s.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    let body = |id: i64, seq: i64| format!(r#"{{"id":{id},"seq":{seq}}}"#);
    tx.insert_event(p.id, "balance_change", &body, Some("https://shop.example/hook"), 10).await.unwrap();
    tx.commit().await.unwrap();
    let synchronous =
        || async { sqlx::query_scalar::<_, i64>("PRAGMA synchronous").fetch_one(&s.writer).await.unwrap() };
    assert_eq!(synchronous().await, 2, "FULL before");
    assert_eq!(s.claim_due_deliveries(10, 60, 10).await.unwrap().len(), 1);
    assert_eq!(synchronous().await, 2, "FULL again after a claim");
    assert!(s.claim_due_deliveries(10, 60, 10).await.unwrap().is_empty(), "leased: not claimed twice");
    assert_eq!(synchronous().await, 2, "FULL after an empty claim");
    assert_eq!(s.claim_due_deliveries(71, 60, 10).await.unwrap().len(), 1, "claimable again once the lease ends");
}

#[tokio::test]
async fn a_late_attempt_never_overwrites_a_newer_lease() {
    let (_dir, s) = store().await;
    let p = s.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    let body = |id: i64, seq: i64| format!(r#"{{"id":{id},"seq":{seq}}}"#);
    tx.insert_event(p.id, "balance_change", &body, Some("https://shop.example/hook"), 10).await.unwrap();
    tx.commit().await.unwrap();
    let first = s.claim_due_deliveries(10, 60, 10).await.unwrap().remove(0);
    assert_eq!(first.leased_until, Some(70));
    // The first attempt hangs past its lease; the row is claimed again and delivered.
    let second = s.claim_due_deliveries(80, 60, 10).await.unwrap().remove(0);
    let attempt = |no, status| Attempt {
        attempt_no: no,
        started_at: 80,
        duration_ms: 5,
        http_status: Some(status),
        error: None,
        response_head: String::new(),
    };
    s.record_attempts(&[(&second, &attempt(1, 200), NextStep::Delivered)]).await.unwrap();
    // The late first attempt fails: it is logged, but the row stays delivered.
    s.record_attempts(&[(&first, &attempt(1, 500), NextStep::RetryAt(400))]).await.unwrap();
    let d = s.delivery(p.id, first.id).await.unwrap().unwrap();
    assert_eq!((d.state, d.last_http_status, d.next_attempt_at), (DeliveryState::Delivered, Some(200), None));
    assert_eq!(s.delivery_attempts(first.id).await.unwrap().len(), 2, "both attempts are logged");
    // Delivered in the batched path with a stale lease: no change either.
    s.record_attempts(&[(&first, &attempt(1, 204), NextStep::Delivered)]).await.unwrap();
    assert_eq!(s.delivery(p.id, first.id).await.unwrap().unwrap().last_http_status, Some(200));
}
