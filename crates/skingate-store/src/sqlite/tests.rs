use std::sync::Arc;

use skingate_core::Money;
use skingate_core::ledger::{AccountKind, Applied, LedgerError, Phase, TransferCode, TransferId, TransferSpec};
use skingate_core::project::ProjectSettings;

use super::*;
use crate::{Attempt, Claim, Delivery, DeliveryState, IdempotencyKey, NextStep};

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sub/gate.db").display());
    let store = SqliteStore::open(&url, 2).await.unwrap();
    (dir, store)
}

/// A project with `n` events committed at time 10, each with a pending events-webhook delivery.
async fn project_with_deliveries(s: &SqliteStore, n: usize) -> (skingate_core::project::Project, Vec<StoredEvent>) {
    let mut settings = ProjectSettings::named("Shop");
    settings.events_url = Some("https://shop.example/hook".into());
    let p = s.create_project(&settings, "s", 0).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    let body = |id: i64, seq: i64| format!(r#"{{"id":{id},"seq":{seq}}}"#);
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events
            .push(tx.insert_event(p.id, "balance_change", &body, Some("https://shop.example/hook"), 10).await.unwrap());
    }
    tx.commit().await.unwrap();
    (p, events)
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
async fn the_balance_watcher_drops_what_was_cached_before_its_baseline() {
    // A commit by another process can land after an entry is cached and before the watcher reads its first
    // `data_version`, which then already counts it: that entry must not outlive the watcher's start.
    let dir = tempfile::tempdir().unwrap();
    let options = connect_options(&format!("sqlite://{}", dir.path().join("w.db").display())).unwrap();
    sqlx::query("CREATE TABLE t (x)").execute(&mut options.connect().await.unwrap()).await.unwrap();
    let cache = cache::SharedCache::default();
    let stale = ProjectBalance::default();
    cache.put(ProjectId(1), cache.generation(), stale);
    assert_eq!(cache.get(ProjectId(1)), Some(stale));
    let watcher = tokio::spawn(cache::watch_other_writers(Arc::downgrade(&cache), options));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cache.get(ProjectId(1)).is_some() {
        assert!(std::time::Instant::now() < deadline, "an entry from before the baseline survived");
        tokio::time::sleep(cache::POLL_INTERVAL).await;
    }
    drop(cache);
    watcher.await.unwrap();
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
    project_with_deliveries(&s, 1).await;
    let synchronous =
        || async { sqlx::query_scalar::<_, i64>("PRAGMA synchronous").fetch_one(&s.writer).await.unwrap() };
    assert_eq!(synchronous().await, 2, "FULL before");
    assert_eq!(s.claim_due_deliveries(10, 60, &ClaimLimit::total(10)).await.unwrap().len(), 1);
    assert_eq!(synchronous().await, 2, "FULL again after a claim");
    assert!(
        s.claim_due_deliveries(10, 60, &ClaimLimit::total(10)).await.unwrap().is_empty(),
        "leased: not claimed twice"
    );
    assert_eq!(synchronous().await, 2, "FULL after an empty claim");
    assert_eq!(
        s.claim_due_deliveries(71, 60, &ClaimLimit::total(10)).await.unwrap().len(),
        1,
        "claimable again once the lease ends"
    );
}

/// Claims take projects in turns and keep to each project's room: a project with a long backlog (the first
/// here, its rows all older) does not stand in front of another's deliveries, and one at its room gets none.
#[tokio::test]
async fn claims_take_projects_in_turns_within_their_rooms() {
    let (_dir, s) = store().await;
    let (a, a_events) = project_with_deliveries(&s, 5).await;
    let (b, b_events) = project_with_deliveries(&s, 2).await;
    let event_ids = |claimed: &[Delivery]| claimed.iter().map(|d| d.event.id).collect::<Vec<_>>();
    let (a_ids, b_ids): (Vec<i64>, Vec<i64>) =
        (a_events.iter().map(|e| e.id).collect(), b_events.iter().map(|e| e.id).collect());
    let first = s.claim_due_deliveries(10, 60, &ClaimLimit::total(3)).await.unwrap();
    let mut expected = vec![a_ids[0], b_ids[0], a_ids[1]];
    expected.sort_unstable();
    assert_eq!(event_ids(&first), expected, "every project's oldest first, then the second ones");
    // `a` is at its room: only `b` is claimed, though `a`'s rows are older.
    let limit = ClaimLimit { total: 10, per_project: 10, rooms: vec![(a.id, 0)] };
    assert_eq!(event_ids(&s.claim_due_deliveries(10, 60, &limit).await.unwrap()), [b_ids[1]]);
    let limit = ClaimLimit { total: 10, per_project: 0, rooms: vec![(a.id, 2)] };
    assert_eq!(event_ids(&s.claim_due_deliveries(10, 60, &limit).await.unwrap()), [a_ids[2], a_ids[3]]);
    assert_ne!(a.id, b.id);
}

/// Handing leases back finds each row by its id, not by walking every pending row (see `events::RELEASE`).
#[tokio::test]
async fn handing_leases_back_looks_rows_up_by_id() {
    let (_dir, s) = store().await;
    use sqlx::Row as _;
    let plan = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", events::RELEASE)))
        .bind("[[1, 2]]")
        .fetch_all(&s.writer)
        .await
        .unwrap();
    let plan: Vec<String> = plan.iter().map(|row| row.get("detail")).collect();
    let plan = plan.join("\n");
    assert!(plan.contains("SEARCH deliveries USING INTEGER PRIMARY KEY"), "{plan}");
    assert!(!plan.contains("deliveries_due"), "{plan}");
}

#[tokio::test]
async fn released_leases_are_due_again_at_once_unless_claimed_anew() {
    let (_dir, s) = store().await;
    project_with_deliveries(&s, 3).await;
    let claimed = s.claim_due_deliveries(10, 60, &ClaimLimit::total(10)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    // The leases ran out and another claim took the rows: releasing an old lease must not free its row.
    let retaken = s.claim_due_deliveries(75, 60, &ClaimLimit::total(10)).await.unwrap();
    assert_eq!(retaken.iter().map(|d| d.id).collect::<Vec<_>>(), claimed.iter().map(|d| d.id).collect::<Vec<_>>());
    let fresh = s.claim_due_deliveries(10, 60, &ClaimLimit::total(10)).await.unwrap();
    assert!(fresh.is_empty(), "all leased until 135");
    let (old, new) = (&claimed[2], &retaken[0]);
    let released = s.release_deliveries(&[new, &retaken[1], old]).await.unwrap();
    assert_eq!(released, 2, "the two current leases, not the stale one");
    let again: Vec<i64> =
        s.claim_due_deliveries(76, 60, &ClaimLimit::total(10)).await.unwrap().iter().map(|d| d.id).collect();
    assert_eq!(again, vec![retaken[0].id, retaken[1].id], "released rows are claimable before their lease ends");
    assert_eq!(s.release_deliveries(&[]).await.unwrap(), 0);
}

#[tokio::test]
async fn disabling_an_endpoint_fails_its_pending_deliveries_once_and_rolls_back_with_its_transaction() {
    let (_dir, s) = store().await;
    let (p, events) = project_with_deliveries(&s, 1).await;
    let event = &events[0];
    let delivery = s.deliveries(p.id, None, 0, 10).await.unwrap().remove(0);
    assert_eq!((delivery.event.id, delivery.state), (event.id, DeliveryState::Pending));
    // An attempt to a URL the project no longer has (it was changed meanwhile) disables nothing.
    let mut tx = s.begin().await.unwrap();
    assert!(!tx.disable_events_endpoint(p.id, "https://shop.example/old", 20).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(s.project(p.id).await.unwrap().unwrap().events_disabled_at, None);
    // Rolled back: nothing changed.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.disable_events_endpoint(p.id, "https://shop.example/hook", 20).await.unwrap());
    drop(tx);
    assert_eq!(s.project(p.id).await.unwrap().unwrap().events_disabled_at, None);
    assert_eq!(s.delivery(p.id, delivery.id).await.unwrap().unwrap().state, DeliveryState::Pending);
    // Committed: disabled, the pending delivery failed; a second disable changes nothing.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.disable_events_endpoint(p.id, "https://shop.example/hook", 20).await.unwrap());
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(!tx.disable_events_endpoint(p.id, "https://shop.example/hook", 30).await.unwrap(), "disabled already");
    tx.commit().await.unwrap();
    assert_eq!(s.project(p.id).await.unwrap().unwrap().events_disabled_at, Some(20));
    assert_eq!(s.delivery(p.id, delivery.id).await.unwrap().unwrap().state, DeliveryState::Failed);
}

/// A project saved from a copy read before the dispatcher disabled its endpoint (the CLI changing another
/// setting meanwhile) keeps the endpoint disabled; a new events URL enables it, and its deliveries still to
/// make follow the new URL.
#[tokio::test]
async fn saving_a_stale_project_never_re_enables_a_disabled_endpoint() {
    let (_dir, s) = store().await;
    let p = s.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    let mut stale = p.clone();
    stale.settings.events_url = Some("https://shop.example/hook".into());
    s.update_project(&stale, 5).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    let body = |id: i64, seq: i64| format!(r#"{{"id":{id},"seq":{seq}}}"#);
    tx.insert_event(p.id, "balance_change", &body, Some("https://shop.example/hook"), 10).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(tx.disable_events_endpoint(p.id, "https://shop.example/hook", 50).await.unwrap());
    tx.commit().await.unwrap();
    stale.settings.rate_limit_per_min = 5;
    s.update_project(&stale, 60).await.unwrap();
    let saved = s.project(p.id).await.unwrap().unwrap();
    assert_eq!((saved.events_disabled_at, saved.settings.rate_limit_per_min), (Some(50), 5));
    let mut moved = saved.clone();
    moved.settings.events_url = Some("https://shop.example/new".into());
    moved.events_disabled_at = None;
    s.update_project(&moved, 70).await.unwrap();
    assert_eq!(s.project(p.id).await.unwrap().unwrap().events_disabled_at, None, "a new URL starts enabled");
    let failed = s.deliveries(p.id, None, 0, 10).await.unwrap();
    assert_eq!(failed[0].url, "https://shop.example/new");
}

/// Simulator offer records are added or replaced by id and read back in id order.
#[tokio::test]
async fn sim_offer_records_are_upserted_by_id() {
    let (_dir, s) = store().await;
    assert!(s.sim_offers().await.unwrap().is_empty());
    s.save_sim_offers(&[]).await.unwrap();
    s.save_sim_offers(&[(7_000_000_002, "b1".into()), (7_000_000_001, "a1".into())]).await.unwrap();
    s.save_sim_offers(&[(7_000_000_002, "b2".into())]).await.unwrap();
    assert_eq!(s.sim_offers().await.unwrap(), vec!["a1".to_owned(), "b2".to_owned()]);
    assert!(matches!(s.save_sim_offers(&[(u64::MAX, "x".into())]).await, Err(StoreError::Corrupt(_))));
}

/// Concurrent edits through `modify_project` each see the other's result (no lost update), and a refused edit
/// writes nothing.
#[tokio::test]
async fn modify_project_keeps_concurrent_edits_and_writes_nothing_when_refused() {
    let (_dir, s) = store().await;
    let s = Arc::new(s);
    let p = s.create_project(&ProjectSettings::named("Shop"), "old-secret", 0).await.unwrap();
    let edits = (0..8u32).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            s.modify_project(p.id, 10, &mut |p| {
                if i == 0 {
                    p.rotate_secret("new-secret".into(), 10, 60);
                } else {
                    p.settings.rate_limit_per_min += 1;
                }
                Ok(())
            })
            .await
            .unwrap()
        })
    });
    for edit in edits.collect::<Vec<_>>() {
        edit.await.unwrap();
    }
    let saved = s.project(p.id).await.unwrap().unwrap();
    assert_eq!(saved.client_secret, "new-secret", "the rotation survived the other edits");
    assert_eq!(saved.settings.rate_limit_per_min, p.settings.rate_limit_per_min + 7, "no edit was lost");
    let mut rename = |p: &mut Project| {
        p.settings.name = "Changed".into();
        Err("no".into())
    };
    let refused = s.modify_project(p.id, 20, &mut rename);
    assert!(matches!(refused.await, Err(StoreError::Refused(why)) if why == "no"));
    assert_eq!(s.project(p.id).await.unwrap().unwrap().settings.name, "Shop");
    let missing = s.modify_project(ProjectId(999), 20, &mut |_| Ok(())).await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

/// `recover_deliveries` does at most `limit` per call, failed deliveries first, then the events that never had
/// a delivery, oldest first; repeated calls finish the rest and then find nothing.
#[tokio::test]
async fn recovery_is_bounded_per_call_and_resumes() {
    let (_dir, s) = store().await;
    let (p, _) = project_with_deliveries(&s, 3).await;
    let mut tx = s.begin().await.unwrap();
    assert!(tx.disable_events_endpoint(p.id, "https://shop.example/hook", 20).await.unwrap());
    let body = |id: i64, seq: i64| format!(r#"{{"id":{id},"seq":{seq}}}"#);
    for _ in 0..2 {
        tx.insert_event(p.id, "balance_change", &body, None, 30).await.unwrap();
    }
    tx.commit().await.unwrap();
    let missed = MissedEvents { url: "https://shop.example/new", event_types: &["balance_change"] };
    assert_eq!(s.recover_deliveries(p.id, 0, 40, Some(missed), 2).await.unwrap(), 2);
    assert_eq!(s.recover_deliveries(p.id, 0, 40, Some(missed), 2).await.unwrap(), 2, "the third failed, one missed");
    assert_eq!(s.recover_deliveries(p.id, 0, 40, Some(missed), 2).await.unwrap(), 1);
    assert_eq!(s.recover_deliveries(p.id, 0, 40, Some(missed), 2).await.unwrap(), 0);
    let all = s.deliveries(p.id, None, 0, 10).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|d| d.state == DeliveryState::Pending));
}

/// History pages follow commit order: a transfer committed after a page was read, but stamped with an earlier
/// time (its time is taken before it waits for the writer), still comes after that page's cursor. A
/// time-ordered cursor would skip it for good.
#[tokio::test]
async fn a_history_row_committed_later_with_an_earlier_time_is_not_skipped() {
    let (_dir, store) = store().await;
    let p = store.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    let stamped = async |id: &str, at: i64| {
        let mut tx = store.begin().await.unwrap();
        let spec = TransferSpec {
            id: TransferId(id.into()),
            debit: tx.system_account(AccountKind::OperatorAdjustments).await.unwrap(),
            credit: tx.project_account(p.id).await.unwrap(),
            amount: Money::from_minor(1_000),
            phase: Phase::Posted,
            code: TransferCode::Adjustment,
            allow_overdraft: false,
            reference: "test".into(),
        };
        tx.transfer(&spec, at).await.unwrap();
        tx.commit().await.unwrap();
    };
    stamped("first", 1_001).await;
    let q = HistoryQuery { starting: 0, ending: 5_000, after_id: 0, limit: 10 };
    let (seen, _) = store.balance_history(p.id, q).await.unwrap();
    assert_eq!(seen.len(), 1);
    stamped("late", 1_000).await;
    let (next, _) = store.balance_history(p.id, HistoryQuery { after_id: seen[0].id, ..q }).await.unwrap();
    assert_eq!(next.len(), 1, "the later commit is after the cursor");
    assert_eq!(next[0].available_after, Money::from_minor(2_000));
}

#[tokio::test]
async fn a_late_attempt_never_overwrites_a_newer_lease() {
    let (_dir, s) = store().await;
    let (p, _) = project_with_deliveries(&s, 1).await;
    let first = s.claim_due_deliveries(10, 60, &ClaimLimit::total(10)).await.unwrap().remove(0);
    assert_eq!(first.leased_until, Some(70));
    // The first attempt hangs past its lease; the row is claimed again and delivered.
    let second = s.claim_due_deliveries(80, 60, &ClaimLimit::total(10)).await.unwrap().remove(0);
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

// ---- MarketTx (SQLite) ----

use skingate_core::market::PurchaseStatus;

use crate::MarketStore;
use crate::market::{AnsweredKey, BulkEvent, NewPurchase, NewUnit, PurchaseUpdate, StoredKey, Unit, UnitState};

fn new_unit(game: &str, name: &str, asset_id: i64, reference: i64) -> NewUnit {
    NewUnit {
        game: game.into(),
        name: name.into(),
        classid: format!("cls-{name}"),
        asset_id,
        bot: "76561198000000001".into(),
        reference: Money::from_minor(reference),
    }
}

/// Answered keys written the way a buy batch writes them.
async fn insert_answered_keys(tx: &mut dyn crate::WriteTx, keys: &[AnsweredKey], now: i64) -> Result<()> {
    tx.write_buy_batch(&crate::market::BuyBatchWrites { answered: keys, ..Default::default() }, now).await
}

/// Adds units in their own committed transaction; returns their ids.
async fn seed_units(store: &SqliteStore, units: &[NewUnit], now: i64) -> Vec<i64> {
    let mut tx = store.begin().await.unwrap();
    let ids = tx.add_units(units, now).await.unwrap();
    tx.commit().await.unwrap();
    ids
}

fn sorted_ids(units: &[Unit]) -> Vec<i64> {
    let mut ids: Vec<i64> = units.iter().map(|u| u.id).collect();
    ids.sort_unstable();
    ids
}

/// `n` purchases of fresh reserved units by `project`, recorded at `now` (status `creating_trade`,
/// `next_check_at = now`); returns their ids.
async fn seed_purchases(store: &SqliteStore, project: ProjectId, n: usize, now: i64) -> Vec<i64> {
    let mut tx = store.begin().await.unwrap();
    let news: Vec<NewUnit> = (0..n).map(|i| new_unit("cs2", "AK-47 | Redline", 100 + i as i64, 1_000)).collect();
    let unit_ids = tx.add_units(&news, now).await.unwrap();
    let first = tx.next_purchase_id().await.unwrap();
    let rows: Vec<(i64, NewPurchase)> = unit_ids
        .iter()
        .zip(news)
        .enumerate()
        .map(|(i, (&id, u))| {
            let unit = Unit {
                id,
                game: u.game,
                name: u.name,
                classid: u.classid,
                asset_id: u.asset_id,
                bot: u.bot,
                reference: u.reference,
                state: UnitState::Reserved,
            };
            let purchase = NewPurchase {
                project,
                unit,
                price: Money::from_minor(1_100 + i as i64),
                partner: "76561198000000042".into(),
                token: "tok".into(),
                custom_id: (i % 2 == 0).then(|| format!("c-{i}")),
            };
            (first + i as i64, purchase)
        })
        .collect();
    // Reserves every unit, or fails.
    tx.write_buy_batch(&crate::market::BuyBatchWrites { purchases: &rows, ..Default::default() }, now).await.unwrap();
    assert_eq!(tx.next_purchase_id().await.unwrap(), first + n as i64, "the tx sees its own purchases");
    tx.commit().await.unwrap();
    rows.into_iter().map(|(id, _)| id).collect()
}

fn update(id: i64, from: PurchaseStatus, to: PurchaseStatus, next_check_at: i64) -> PurchaseUpdate {
    PurchaseUpdate {
        id,
        from,
        to,
        tradeofferid: None,
        error_reason: None,
        sent_at: None,
        accepted_at: None,
        watch_until: None,
        next_check_at,
    }
}

#[tokio::test]
async fn stock_units_returns_only_listed_units_in_stock() {
    let (_dir, s) = store().await;
    let units: Vec<NewUnit> = (0..5).map(|i| new_unit("cs2", "AWP | Asiimov", i, 2_000 + i)).collect();
    let ids = seed_units(&s, &units, 10).await;
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in insertion order: {ids:?}");
    // ids[1] withdrawn by an operator, ids[2] reserved by a buy; ids[4] is in stock but not asked for.
    assert!(s.withdraw_units(&[ids[1]], 20).await.unwrap().is_empty());
    // All or none: one id not for sale (withdrawn now) keeps the others for sale.
    assert_eq!(s.withdraw_units(&[ids[0], ids[1]], 21).await.unwrap(), vec![ids[1]]);
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.move_units(&[ids[2]], &[UnitState::Stock], UnitState::Reserved, 20).await.unwrap(), 1);
    let unknown = ids[4] + 1_000;
    let got = tx.stock_units(&[ids[3], ids[2], unknown, ids[1], ids[0]]).await.unwrap();
    assert_eq!(sorted_ids(&got), vec![ids[0], ids[3]]);
    let first = got.iter().find(|u| u.id == ids[0]).unwrap();
    assert_eq!(
        *first,
        Unit {
            id: ids[0],
            game: "cs2".into(),
            name: "AWP | Asiimov".into(),
            classid: "cls-AWP | Asiimov".into(),
            asset_id: 0,
            bot: "76561198000000001".into(),
            reference: Money::from_minor(2_000),
            state: UnitState::Stock,
        }
    );
    assert!(got.iter().all(|u| u.state == UnitState::Stock));
    assert!(tx.stock_units(&[ids[1], ids[2], unknown]).await.unwrap().is_empty());
    assert!(tx.stock_units(&[]).await.unwrap().is_empty());
    // A unit listed twice comes back once.
    assert_eq!(sorted_ids(&tx.stock_units(&[ids[4], ids[4]]).await.unwrap()), vec![ids[4]]);
}

#[tokio::test]
async fn cheapest_units_orders_by_price_then_id_within_one_item_in_stock() {
    let (_dir, s) = store().await;
    let mut tx = s.begin().await.unwrap();
    let ids = tx
        .add_units(
            &[
                new_unit("cs2", "AK", 1, 500),  // 0
                new_unit("cs2", "AK", 2, 300),  // 1
                new_unit("cs2", "AK", 3, 300),  // 2 (tie with 1: higher id)
                new_unit("cs2", "AK", 4, 100),  // 3 cheapest, but reserved below
                new_unit("cs2", "AK", 5, 700),  // 4
                new_unit("cs2", "M4A1", 6, 50), // 5 other name
                new_unit("dota2", "AK", 7, 10), // 6 other game
                new_unit("cs2", "AK", 8, 300),  // 7 (tie with 1 and 2: highest id)
                new_unit("cs2", "AK", 9, 200),  // 8 withdrawn below
            ],
            10,
        )
        .await
        .unwrap();
    assert_eq!(tx.move_units(&[ids[3]], &[UnitState::Stock], UnitState::Reserved, 11).await.unwrap(), 1);
    assert_eq!(tx.move_units(&[ids[8]], &[UnitState::Stock], UnitState::Withdrawn, 11).await.unwrap(), 1);
    let cheapest = |units: Vec<Unit>| units.into_iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(cheapest(tx.cheapest_units("cs2", "AK", 3).await.unwrap()), vec![ids[1], ids[2], ids[7]]);
    assert_eq!(
        cheapest(tx.cheapest_units("cs2", "AK", 10).await.unwrap()),
        vec![ids[1], ids[2], ids[7], ids[0], ids[4]]
    );
    assert_eq!(cheapest(tx.cheapest_units("cs2", "AK", 1).await.unwrap()), vec![ids[1]]);
    assert!(tx.cheapest_units("cs2", "AK", 0).await.unwrap().is_empty());
    assert_eq!(cheapest(tx.cheapest_units("dota2", "AK", 10).await.unwrap()), vec![ids[6]]);
    assert_eq!(cheapest(tx.cheapest_units("cs2", "M4A1", 10).await.unwrap()), vec![ids[5]]);
    assert!(tx.cheapest_units("cs2", "Nope", 10).await.unwrap().is_empty());
    assert!(tx.cheapest_units("rust", "AK", 10).await.unwrap().is_empty());
    let first = tx.cheapest_units("cs2", "AK", 1).await.unwrap().remove(0);
    assert_eq!((first.reference, first.asset_id, first.state), (Money::from_minor(300), 2, UnitState::Stock));
    // Putting the reserved unit back makes it the cheapest again.
    assert_eq!(tx.move_units(&[ids[3]], &[UnitState::Reserved], UnitState::Stock, 12).await.unwrap(), 1);
    assert_eq!(cheapest(tx.cheapest_units("cs2", "AK", 2).await.unwrap()), vec![ids[3], ids[1]]);
}

#[tokio::test]
async fn move_units_moves_only_units_in_a_from_state() {
    let (_dir, s) = store().await;
    let units: Vec<NewUnit> = (0..5).map(|i| new_unit("cs2", "Glock", i, 100)).collect();
    let ids = seed_units(&s, &units, 10).await;
    let unknown = ids[4] + 1_000;
    let states = |s: SqliteStore, ids: Vec<i64>| async move {
        s.units_by_ids(&ids).await.unwrap().into_iter().map(|u| (u.id, u.state)).collect::<Vec<_>>()
    };
    let updated_at = |s: SqliteStore, id: i64| async move {
        sqlx::query_scalar::<_, i64>("SELECT updated_at FROM market_units WHERE id = ?")
            .bind(id)
            .fetch_one(&s.reader)
            .await
            .unwrap()
    };

    let mut tx = s.begin().await.unwrap();
    let reserve = [ids[0], ids[1], ids[2], unknown];
    assert_eq!(tx.move_units(&reserve, &[UnitState::Stock], UnitState::Reserved, 20).await.unwrap(), 3);
    assert_eq!(tx.move_units(&reserve, &[UnitState::Stock], UnitState::Reserved, 21).await.unwrap(), 0, "again: 0");
    assert_eq!(
        tx.move_units(&[ids[1], ids[3], unknown], &[UnitState::Reserved], UnitState::Gone, 30).await.unwrap(),
        1
    );
    assert_eq!(tx.move_units(&[], &[UnitState::Stock], UnitState::Gone, 30).await.unwrap(), 0);
    tx.commit().await.unwrap();
    use UnitState::*;
    assert_eq!(
        states(s.clone(), ids.clone()).await,
        vec![(ids[0], Reserved), (ids[1], Gone), (ids[2], Reserved), (ids[3], Stock), (ids[4], Stock)]
    );
    assert_eq!(updated_at(s.clone(), ids[0]).await, 20, "the repeated call wrote nothing");
    assert_eq!(updated_at(s.clone(), ids[1]).await, 30);
    assert_eq!(updated_at(s.clone(), ids[3]).await, 10, "a unit not in a from state is untouched");

    // Two from states: reserved and gone units return to stock; the one already in stock is not counted.
    let mut tx = s.begin().await.unwrap();
    let back = [ids[0], ids[1], ids[2], ids[3]];
    assert_eq!(tx.move_units(&back, &[Reserved, Gone], Stock, 40).await.unwrap(), 3);
    assert_eq!(tx.move_units(&back, &[Reserved, Gone], Stock, 41).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert!(states(s.clone(), ids.clone()).await.iter().all(|&(_, st)| st == Stock));
    assert_eq!(updated_at(s.clone(), ids[1]).await, 40);
    assert_eq!(updated_at(s.clone(), ids[3]).await, 10);
    assert_eq!(updated_at(s.clone(), ids[4]).await, 10);
}

/// Applies `updates` in a transaction of their own; the ids changed, sorted (their order is not promised).
async fn commit_updates(s: &SqliteStore, updates: &[PurchaseUpdate], now: i64) -> Vec<i64> {
    let mut tx = s.begin().await.unwrap();
    let mut changed = tx.update_purchases(updates, now).await.unwrap();
    tx.commit().await.unwrap();
    changed.sort_unstable();
    changed
}

#[tokio::test]
async fn update_purchases_applies_only_matching_from_and_coalesces_optional_fields() {
    let (_dir, s) = store().await;
    let p = s.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    let ids = seed_purchases(&s, p.id, 3, 100).await;
    assert_eq!(ids, vec![1, 2, 3], "purchase ids start at 1 and are handed out in order");
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let read = |s: SqliteStore, id: i64| async move { s.purchases_by_ids(p.id, &[id]).await.unwrap().remove(0) };

    let fresh = s.purchases_by_ids(p.id, &[c, a, 99, b]).await.unwrap();
    assert_eq!(fresh.iter().map(|x| x.id).collect::<Vec<_>>(), ids);
    assert!(fresh.iter().all(|x| x.status == PurchaseStatus::CreatingTrade && x.created_at == 100));
    assert!(fresh.iter().all(|x| x.tradeofferid.is_none() && x.error_reason.is_none() && x.sent_at.is_none()));
    assert_eq!(fresh[0].price, Money::from_minor(1_100));
    assert_eq!((fresh[0].custom_id.as_deref(), fresh[1].custom_id.as_deref()), (Some("c-0"), None));
    assert_eq!((fresh[1].game.as_str(), fresh[1].name.as_str()), ("cs2", "AK-47 | Redline"));

    let changed = commit_updates(
        &s,
        &[
            PurchaseUpdate {
                tradeofferid: Some("T1".into()),
                sent_at: Some(110),
                ..update(a, PurchaseStatus::CreatingTrade, PurchaseStatus::WaitingAccept, 200)
            },
            // Wrong `from`: b is still creating_trade.
            PurchaseUpdate {
                tradeofferid: Some("X".into()),
                error_reason: Some("nope".into()),
                ..update(b, PurchaseStatus::WaitingAccept, PurchaseStatus::Accepted, 200)
            },
            PurchaseUpdate {
                error_reason: Some("steam down".into()),
                ..update(c, PurchaseStatus::CreatingTrade, PurchaseStatus::TradeCreateError, 200)
            },
        ],
        110,
    )
    .await;
    assert_eq!(changed, vec![a, c]);

    let pa = read(s.clone(), a).await;
    assert_eq!(
        (pa.status, pa.tradeofferid.as_deref(), pa.error_reason.as_deref(), pa.sent_at),
        (PurchaseStatus::WaitingAccept, Some("T1"), None, Some(110))
    );
    let pb = read(s.clone(), b).await;
    assert_eq!(pb, fresh[1], "a mismatched update writes nothing");
    let pc = read(s.clone(), c).await;
    assert_eq!(
        (pc.status, pc.tradeofferid.as_deref(), pc.error_reason.as_deref()),
        (PurchaseStatus::TradeCreateError, None, Some("steam down"))
    );

    // None keeps the stored value; a stale `from` (a already left creating_trade) is skipped.
    let mut tx = s.begin().await.unwrap();
    let changed = tx
        .update_purchases(
            &[
                PurchaseUpdate {
                    accepted_at: Some(150),
                    watch_until: Some(1_000),
                    ..update(a, PurchaseStatus::WaitingAccept, PurchaseStatus::Accepted, 300)
                },
                update(b, PurchaseStatus::Accepted, PurchaseStatus::Canceled, 300),
            ],
            150,
        )
        .await
        .unwrap();
    assert_eq!(changed, vec![a]);
    assert!(
        tx.update_purchases(&[update(a, PurchaseStatus::CreatingTrade, PurchaseStatus::Canceled, 0)], 151)
            .await
            .unwrap()
            .is_empty(),
        "stale from"
    );
    assert!(tx.update_purchases(&[], 151).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    let pa = read(s.clone(), a).await;
    assert_eq!(
        (pa.status, pa.tradeofferid.as_deref(), pa.error_reason.as_deref()),
        (PurchaseStatus::Accepted, Some("T1"), None)
    );
    assert_eq!((pa.sent_at, pa.accepted_at, pa.watch_until), (Some(110), Some(150), Some(1_000)));

    // Some overwrites a stored value.
    let changed = commit_updates(
        &s,
        &[
            PurchaseUpdate {
                tradeofferid: Some("T2".into()),
                error_reason: Some("rolled back".into()),
                ..update(a, PurchaseStatus::Accepted, PurchaseStatus::RollbackUser, 400)
            },
            PurchaseUpdate {
                error_reason: Some("retry failed".into()),
                ..update(c, PurchaseStatus::TradeCreateError, PurchaseStatus::TradeCreateError, 400)
            },
        ],
        400,
    )
    .await;
    assert_eq!(changed, vec![a, c]);
    let pa = read(s.clone(), a).await;
    assert_eq!(
        (pa.status, pa.tradeofferid.as_deref(), pa.error_reason.as_deref(), pa.accepted_at),
        (PurchaseStatus::RollbackUser, Some("T2"), Some("rolled back"), Some(150))
    );
    assert_eq!(read(s.clone(), c).await.error_reason.as_deref(), Some("retry failed"));
    assert_eq!(read(s.clone(), b).await, fresh[1]);
}

#[tokio::test]
async fn set_next_checks_decides_which_purchases_are_due() {
    let (_dir, s) = store().await;
    let p = s.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    let ids = seed_purchases(&s, p.id, 4, 100).await;
    let due = |s: SqliteStore, now: i64, limit: u32| async move {
        s.purchases_due(now, limit).await.unwrap().into_iter().map(|x| x.id).collect::<Vec<_>>()
    };
    assert_eq!(due(s.clone(), 100, 10).await, ids, "new purchases are due at once");
    assert!(due(s.clone(), 99, 10).await.is_empty());

    let mut tx = s.begin().await.unwrap();
    tx.set_next_checks(&[(ids[0], 500), (ids[1], 50), (ids[2], 300), (9_999, 0)]).await.unwrap();
    tx.set_next_checks(&[]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(due(s.clone(), 49, 10).await.is_empty());
    assert_eq!(due(s.clone(), 50, 10).await, vec![ids[1]]);
    assert_eq!(due(s.clone(), 100, 10).await, vec![ids[1], ids[3]]);
    assert_eq!(due(s.clone(), 300, 10).await, vec![ids[1], ids[3], ids[2]]);
    assert_eq!(due(s.clone(), 1_000, 10).await, vec![ids[1], ids[3], ids[2], ids[0]]);
    assert_eq!(due(s.clone(), 1_000, 2).await, vec![ids[1], ids[3]]);

    // A finished purchase is never due, whatever its next_check_at.
    let mut tx = s.begin().await.unwrap();
    let cancel = [update(ids[3], PurchaseStatus::CreatingTrade, PurchaseStatus::Canceled, 0)];
    assert_eq!(tx.update_purchases(&cancel, 120).await.unwrap(), vec![ids[3]]);
    tx.set_next_checks(&[(ids[0], 60)]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(due(s.clone(), 1_000, 10).await, vec![ids[1], ids[0], ids[2]]);
    assert_eq!(due(s.clone(), 59, 10).await, vec![ids[1]]);
}

#[tokio::test]
async fn idempotency_keys_read_inserted_answers_per_project_and_scope() {
    let (_dir, s) = store().await;
    let p = s.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap().id;
    let q = s.create_project(&ProjectSettings::named("Other"), "s", 0).await.unwrap().id;
    let answered = |project: ProjectId, scope: &str, key: &str, hash: &str, response: &str| AnsweredKey {
        key: IdempotencyKey { project, scope: scope.into(), key: key.into() },
        request_hash: hash.into(),
        response: response.into(),
    };
    let stored = |key: &str, hash: &str, response: Option<&str>| StoredKey {
        key: key.into(),
        request_hash: hash.into(),
        response: response.map(Into::into),
    };
    let read = |mut v: Vec<StoredKey>| {
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    };

    let mut tx = s.begin().await.unwrap();
    insert_answered_keys(
        tx.as_mut(),
        &[
            answered(p, "buy", "k1", "h1", r#"{"buy_id":1}"#),
            answered(p, "buy", "k2", "h2", "r2"),
            answered(p, "other", "k1", "h3", "r3"),
            answered(q, "buy", "k1", "h4", "r4"),
            answered(p, "buy", "42", "h5", "r5"),
        ],
        10,
    )
    .await
    .unwrap();
    insert_answered_keys(tx.as_mut(), &[], 10).await.unwrap();
    // Seen inside the same transaction.
    assert_eq!(
        read(tx.idempotency_keys(p, "buy", &["k2", "k1", "k3"]).await.unwrap()),
        vec![stored("k1", "h1", Some(r#"{"buy_id":1}"#)), stored("k2", "h2", Some("r2"))]
    );
    tx.commit().await.unwrap();

    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        read(tx.idempotency_keys(p, "buy", &["k1", "k2", "k3", "42"]).await.unwrap()),
        vec![
            stored("42", "h5", Some("r5")),
            stored("k1", "h1", Some(r#"{"buy_id":1}"#)),
            stored("k2", "h2", Some("r2"))
        ]
    );
    assert_eq!(tx.idempotency_keys(p, "other", &["k1", "k2"]).await.unwrap(), vec![stored("k1", "h3", Some("r3"))]);
    assert_eq!(tx.idempotency_keys(q, "buy", &["k1", "k2"]).await.unwrap(), vec![stored("k1", "h4", Some("r4"))]);
    assert!(tx.idempotency_keys(q, "other", &["k1"]).await.unwrap().is_empty());
    assert!(tx.idempotency_keys(p, "buy", &["k3", "K1"]).await.unwrap().is_empty());
    assert!(tx.idempotency_keys(p, "buy", &[]).await.unwrap().is_empty());
    // A key claimed without an answer reads back with none.
    let claimed = IdempotencyKey { project: p, scope: "buy".into(), key: "k6".into() };
    assert_eq!(tx.claim_idempotency_key(&claimed, "h6", 11).await.unwrap(), Claim::New);
    assert_eq!(tx.idempotency_keys(p, "buy", &["k6"]).await.unwrap(), vec![stored("k6", "h6", None)]);

    // The primary key refuses a key that exists: committed before, inserted earlier in this
    // transaction, or twice in one call (which then writes nothing).
    let is_unique_violation = |e: StoreError| {
        matches!(e, StoreError::Database(_)) && e.to_string().contains("UNIQUE constraint failed: idempotency_keys")
    };
    let err = insert_answered_keys(tx.as_mut(), &[answered(p, "buy", "k1", "h1", "again")], 12).await.unwrap_err();
    assert!(is_unique_violation(err));
    insert_answered_keys(tx.as_mut(), &[answered(p, "buy", "k7", "h7", "r7")], 12).await.unwrap();
    let err = insert_answered_keys(tx.as_mut(), &[answered(p, "buy", "k7", "h7", "r7")], 12).await.unwrap_err();
    assert!(is_unique_violation(err));
    let twice = [answered(p, "buy", "k8", "h8", "r8"), answered(p, "buy", "k8", "h8", "r8")];
    let err = insert_answered_keys(tx.as_mut(), &twice, 12).await.unwrap_err();
    assert!(is_unique_violation(err));
    assert!(tx.idempotency_keys(p, "buy", &["k8"]).await.unwrap().is_empty());
    assert_eq!(tx.idempotency_keys(p, "buy", &["k7"]).await.unwrap(), vec![stored("k7", "h7", Some("r7"))]);
    assert_eq!(
        tx.idempotency_keys(p, "buy", &["k1"]).await.unwrap(),
        vec![stored("k1", "h1", Some(r#"{"buy_id":1}"#))]
    );
}

#[tokio::test]
async fn insert_events_bulk_numbers_per_project_and_delivers_only_with_a_url() {
    let (_dir, s) = store().await;
    let a = s.create_project(&ProjectSettings::named("A"), "s", 0).await.unwrap().id;
    let b = s.create_project(&ProjectSettings::named("B"), "s", 0).await.unwrap().id;
    let body = |project: ProjectId, id: i64, seq: i64| format!(r#"{{"p":{},"id":{id},"seq":{seq}}}"#, project.0);
    let bulk = |project: ProjectId, event_type: &'static str, url: Option<&str>| BulkEvent {
        project,
        event_type,
        payload: Box::new(move |id, seq| body(project, id, seq)),
        webhook_url: url.map(Into::into),
    };
    let (hook_a, hook_b) = ("https://a.example/hook", "https://b.example/hook");

    // One existing event of A, written the single-row way.
    let mut tx = s.begin().await.unwrap();
    let single = |id: i64, seq: i64| body(a, id, seq);
    let first = tx.insert_event(a, "balance_change", &single, None, 5).await.unwrap();
    assert_eq!((first.id, first.seq), (1, 1));
    tx.commit().await.unwrap();

    let mut tx = s.begin().await.unwrap();
    tx.insert_events_bulk(
        &[
            bulk(a, "purchase", Some(hook_a)),
            bulk(b, "purchase", None),
            bulk(a, "purchase", None),
            bulk(b, "balance_change", Some(hook_b)),
            bulk(a, "balance_change", Some(hook_a)),
        ],
        20,
    )
    .await
    .unwrap();
    tx.insert_events_bulk(&[], 20).await.unwrap();
    // A second batch in the same transaction continues after the first.
    tx.insert_events_bulk(&[bulk(b, "purchase", None), bulk(a, "purchase", None)], 30).await.unwrap();
    tx.commit().await.unwrap();

    let events = s.events_after(0, 100).await.unwrap();
    let got: Vec<_> = events.iter().map(|e| (e.id, e.project, e.seq, e.event_type.as_str(), e.created_at)).collect();
    assert_eq!(
        got,
        vec![
            (1, a, 1, "balance_change", 5),
            (2, a, 2, "purchase", 20),
            (3, b, 1, "purchase", 20),
            (4, a, 3, "purchase", 20),
            (5, b, 2, "balance_change", 20),
            (6, a, 4, "balance_change", 20),
            (7, b, 3, "purchase", 30),
            (8, a, 5, "purchase", 30),
        ]
    );
    assert!(events.iter().all(|e| e.payload == body(e.project, e.id, e.seq)), "payload built from id and seq");
    let seqs = |events: Vec<StoredEvent>| events.into_iter().map(|e| (e.seq, e.id)).collect::<Vec<_>>();
    assert_eq!(seqs(s.project_events_after(b, 0, 10).await.unwrap()), vec![(1, 3), (2, 5), (3, 7)]);
    assert_eq!(seqs(s.project_events_after(a, 2, 10).await.unwrap()), vec![(3, 4), (4, 6), (5, 8)]);
    assert_eq!(s.last_event_id().await.unwrap(), 8);

    let deliveries = |s: SqliteStore, project: ProjectId| async move {
        s.deliveries(project, None, 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.event.id, d.kind, d.url, d.state, d.attempts, d.next_attempt_at, d.created_at))
            .collect::<Vec<_>>()
    };
    let pending = |event: i64, url: &str| {
        (event, "events_webhook".to_owned(), url.to_owned(), DeliveryState::Pending, 0, Some(20), 20)
    };
    assert_eq!(deliveries(s.clone(), a).await, vec![pending(6, hook_a), pending(2, hook_a)]);
    assert_eq!(deliveries(s.clone(), b).await, vec![pending(5, hook_b)]);
    let claimed = s.claim_due_deliveries(20, 60, &ClaimLimit::total(10)).await.unwrap();
    let mut claimed: Vec<_> = claimed.iter().map(|d| (d.event.id, d.event.project)).collect();
    claimed.sort_unstable();
    assert_eq!(claimed, vec![(2, a), (5, b), (6, a)]);
}

#[tokio::test]
async fn the_wal_is_checkpointed_off_the_writer() {
    let (dir, s) = store().await;
    let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&s.writer).await.unwrap();
    assert_eq!(auto, 0, "commits on the writer never checkpoint");
    // The log's header counts its restarts (checkpoint sequence, big-endian at byte 12); SQLite starts the
    // log over only after a checkpoint has copied all of it back, and nothing but the checkpointer does here.
    let wal = dir.path().join("sub/gate.db-wal");
    let restarts = || {
        let header = std::fs::read(&wal).unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    };
    // About a thousand pages into the log, more than SQLite's own checkpoint threshold.
    s.set_meta("big", &"x".repeat(4_000_000)).await.unwrap();
    let before = restarts();
    for round in 0..50 {
        // Real time: sqlx's pool timeouts do not mix with a paused clock.
        tokio::time::sleep(checkpoint::CHECKPOINT_EVERY).await;
        s.set_meta("small", &round.to_string()).await.unwrap();
        if restarts() != before {
            return;
        }
    }
    panic!("the log was never checkpointed and started over");
}

#[tokio::test]
async fn write_buy_batch_writes_everything_or_nothing_when_a_unit_left_stock() {
    let (_dir, s) = store().await;
    let p = s.create_project(&ProjectSettings::named("P"), "s", 0).await.unwrap().id;
    let ids =
        seed_units(&s, &[new_unit("cs2", "P250 | Sand Dune", 1, 50), new_unit("cs2", "P250 | Sand Dune", 2, 50)], 1)
            .await;
    let units = s.units_by_ids(&ids).await.unwrap();
    let purchase = |id: i64, unit: &Unit| {
        let purchase = NewPurchase {
            project: p,
            unit: unit.clone(),
            price: Money::from_minor(60),
            partner: "76561198000000042".into(),
            token: "tok".into(),
            custom_id: Some(format!("c-{id}")),
        };
        (id, purchase)
    };
    let event = |n: i64| BulkEvent {
        project: p,
        event_type: "buy_item",
        payload: Box::new(move |id, seq| format!(r#"{{"n":{n},"id":{id},"seq":{seq}}}"#)),
        webhook_url: Some("https://p.example/hook".into()),
    };
    let key = |k: &str| AnsweredKey {
        key: IdempotencyKey { project: p, scope: "market_buy".into(), key: k.into() },
        request_hash: "h".into(),
        response: "r".into(),
    };

    // Unit 1 leaves stock first: a batch selling both must write nothing.
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.move_units(&[ids[1]], &[UnitState::Stock], UnitState::Withdrawn, 2).await.unwrap(), 1);
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    let first = tx.next_purchase_id().await.unwrap();
    let (purchases, events, keys) =
        (vec![purchase(first, &units[0]), purchase(first + 1, &units[1])], vec![event(1), event(2)], vec![key("c-1")]);
    let writes = crate::market::BuyBatchWrites {
        purchases: &purchases,
        accounts: &[],
        transfers: &[],
        events: &events,
        answered: &keys,
    };
    let err = tx.write_buy_batch(&writes, 3).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(ref m) if m.contains("reserved 1 of 2")), "{err}");
    drop(tx);
    assert!(s.purchases_by_ids(p, &[first, first + 1]).await.unwrap().is_empty());
    assert_eq!(s.units_by_ids(&ids[..1]).await.unwrap()[0].state, UnitState::Stock);

    // The unit still in stock alone: everything lands in one go.
    let mut tx = s.begin().await.unwrap();
    let purchases = vec![purchase(first, &units[0])];
    let writes = crate::market::BuyBatchWrites { purchases: &purchases, ..writes };
    tx.write_buy_batch(&writes, 4).await.unwrap();
    assert_eq!(tx.idempotency_keys(p, "market_buy", &["c-1"]).await.unwrap().len(), 1);
    tx.commit().await.unwrap();
    let bought = s.purchases_by_ids(p, &[first]).await.unwrap();
    assert_eq!((bought.len(), bought[0].unit_id, bought[0].status), (1, ids[0], PurchaseStatus::CreatingTrade));
    assert_eq!(s.units_by_ids(&ids[..1]).await.unwrap()[0].state, UnitState::Reserved);
    let stored: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT id, seq, payload FROM events WHERE project_id = ? ORDER BY seq")
            .bind(p.0)
            .fetch_all(&s.reader)
            .await
            .unwrap();
    assert_eq!(stored.iter().map(|e| e.1).collect::<Vec<_>>(), [1, 2], "numbered in order");
    for (n, (id, seq, payload)) in (1..).zip(&stored) {
        assert_eq!(payload, &format!(r#"{{"n":{n},"id":{id},"seq":{seq}}}"#), "built from its own numbers");
    }
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries").fetch_one(&s.reader).await.unwrap();
    assert_eq!(deliveries, 2, "both events have a webhook URL");
}

/// A resend while an attempt holds the delivery's lease is refused (a second, concurrent POST of the same
/// event would follow); once the lease is over it is scheduled again.
#[tokio::test]
async fn a_delivery_under_way_is_not_resent() {
    let (_dir, s) = store().await;
    let (p, _) = project_with_deliveries(&s, 1).await;
    let leased = s.claim_due_deliveries(10, 60, &ClaimLimit::total(10)).await.unwrap().remove(0);
    assert!(!s.resend_delivery(p.id, leased.id, 20).await.unwrap(), "under way until 70");
    assert!(s.resend_delivery(p.id, leased.id, 70).await.unwrap());
    assert_eq!(s.claim_due_deliveries(70, 60, &ClaimLimit::total(10)).await.unwrap().len(), 1);
}

/// A `usd` row written before such rows were refused opens as the ledger's own USD, and a row the
/// conversions cannot take costs its own currency only: the server still starts and lists the rest.
#[tokio::test]
async fn odd_currency_rows_do_not_take_the_table_down() {
    let (_dir, s) = store().await;
    sqlx::query(
        "INSERT OR REPLACE INTO currencies (code, name, scale, rate_micro, updated_at) VALUES
                 ('usd', 'Old', 2, 2000000, 0), ('bad', 'Bad', 99, 1000000, 0), ('eur', 'Euro', 2, 920000, 0)",
    )
    .execute(&s.writer)
    .await
    .unwrap();
    let all = s.currencies().await.unwrap();
    let codes: Vec<&str> = all.iter().map(|c| c.code.as_str()).collect();
    assert!(codes.contains(&"eur") && !codes.contains(&"bad"), "{codes:?}");
    let usd = all.iter().find(|c| c.code == "usd").unwrap();
    assert_eq!((usd.scale, usd.rate_micro), (3, 1_000_000));
}

/// A send that is given up (the send failed, or the watcher fails the deposit after a crash) puts back what the
/// deposit held before it: the merchant's own account and game from `create`, no items. A second send cannot
/// begin while one is under way, and a recorded offer keeps its target.
#[tokio::test]
async fn a_released_send_restores_what_the_deposit_held_before_it() {
    use crate::deposits::{DepositItem, DepositStore, NewDeposit, OfferRecord, OfferTarget, StatusChange};
    use skingate_core::deposit::DepositStatus;

    let (_dir, s) = store().await;
    let p = s.create_project(&ProjectSettings::named("Shop"), "s", 0).await.unwrap();
    let new = |order: &str, steam_id: Option<&str>, game: Option<&str>| NewDeposit {
        project: p.id,
        order_id: order.into(),
        page_token: format!("tok-{order}"),
        steam_id: steam_id.map(Into::into),
        trade_token: steam_id.map(|_| "Merchant".into()),
        game: game.map(Into::into),
        currency: "usd".into(),
        min_usd: None,
        max_usd: None,
        min_text: None,
        max_text: None,
        multiplier_ppm: 1_000_000,
        fee_ppm: 0,
        result_url: None,
        success_url: None,
        fail_url: None,
        created_at: 1,
    };
    let target = OfferTarget {
        steam_id: "76561198000000042".into(),
        trade_token: "PayerTok".into(),
        game: "rust".into(),
        items: vec![DepositItem {
            asset_id: "9".into(),
            classid: "8".into(),
            context_id: 2,
            market_hash_name: "Hoodie".into(),
            price_cents: 150,
        }],
    };
    let mut tx = s.begin().await.unwrap();
    let bare = tx.insert_deposit(&new("bare", None, None)).await.unwrap();
    let named = tx.insert_deposit(&new("named", Some("76561198000000001"), Some("cs2"))).await.unwrap();
    let crashed = tx.insert_deposit(&new("crashed", None, None)).await.unwrap();
    let sent = tx.insert_deposit(&new("sent", None, None)).await.unwrap();
    for id in [bare, named, crashed, sent] {
        assert!(tx.begin_sending(id, &target, 5).await.unwrap());
        assert!(!tx.begin_sending(id, &target, 5).await.unwrap(), "one send at a time");
    }
    tx.commit().await.unwrap();
    let read = |id| {
        let s = &s;
        async move { s.deposit(p.id, id).await.unwrap().unwrap() }
    };
    let d = read(bare).await;
    assert_eq!((d.steam_id.as_deref(), d.game.as_deref(), d.items.len()), (Some("76561198000000042"), Some("rust"), 1));

    let mut tx = s.begin().await.unwrap();
    assert!(tx.end_sending(bare, 6).await.unwrap());
    assert!(!tx.end_sending(bare, 6).await.unwrap(), "not sending any more");
    assert!(tx.end_sending(named, 6).await.unwrap());
    let fail =
        StatusChange { fail_reason: Some("trade_create_error".into()), release_send: true, ..Default::default() };
    assert!(tx.change_status(crashed, DepositStatus::Pending, DepositStatus::Fail, &fail, 7).await.unwrap());
    let record = OfferRecord {
        steam_id: target.steam_id.clone(),
        trade_token: target.trade_token.clone(),
        game: target.game.clone(),
        offer_id: "7000000001".into(),
        bot_steam_id: "76561199000000001".into(),
        bot_name: "Bot".into(),
        offer_date: 6,
        offer_expires_at: 100,
        items: target.items.clone(),
    };
    assert!(tx.record_offer(sent, &record, 6).await.unwrap());
    assert!(!tx.end_sending(sent, 6).await.unwrap(), "a recorded offer is not given up");
    tx.commit().await.unwrap();

    for (id, steam_id, token, game) in [
        (bare, None, None, None),
        (named, Some("76561198000000001"), Some("Merchant"), Some("cs2")),
        (crashed, None, None, None),
    ] {
        let d = read(id).await;
        let got = (d.steam_id.as_deref(), d.trade_token.as_deref(), d.game.as_deref(), d.items.is_empty());
        assert_eq!(got, (steam_id, token, game, true), "deposit {id}");
    }
    assert_eq!(read(crashed).await.status, DepositStatus::Fail);
    let d = read(sent).await;
    assert_eq!((d.steam_id.as_deref(), d.game.as_deref(), d.items.len()), (Some("76561198000000042"), Some("rust"), 1));
    // A released deposit can be sent again, and restores again.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.begin_sending(named, &target, 8).await.unwrap());
    assert!(tx.end_sending(named, 9).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(read(named).await.game.as_deref(), Some("cs2"));
}

/// A purchase's events and a deposit's callbacks go out one at a time, in event order (migration 0011): a
/// later one is claimed only once every earlier one of its subject is finished for good (delivered, or
/// failed for good), whichever way it was written; events of no subject keep no order.
#[tokio::test]
async fn a_subjects_deliveries_are_claimed_one_at_a_time_in_order() {
    let (_dir, s) = store().await;
    let hook = "https://shop.example/hook";
    let mut settings = ProjectSettings::named("Shop");
    settings.events_url = Some(hook.into());
    settings.result_url = Some("https://shop.example/result".into());
    let p = s.create_project(&settings, "s", 0).await.unwrap().id;
    let buy = |buy_id: &'static str| {
        move |id: i64, seq: i64| format!(r#"{{"data":{{"buy_id":"{buy_id}"}},"id":"evt_{id}","seq":{seq}}}"#)
    };
    let mut tx = s.begin().await.unwrap();
    let bought7 = tx.insert_event(p, "buy_item", &buy("7"), Some(hook), 10).await.unwrap().id;
    let status7 = tx.insert_event(p, "status_change", &buy("7"), Some(hook), 10).await.unwrap().id;
    let balance = tx.insert_event(p, "balance_change", &buy("7"), Some(hook), 10).await.unwrap().id;
    let status8 = tx.insert_event(p, "status_change", &buy("8"), Some(hook), 10).await.unwrap().id;
    // `skingate trigger`'s samples: no purchase behind them, so no order to keep.
    let sample = |id: i64, seq: i64| format!(r#"{{"data":{{"buy_id":"0","test":true}},"id":"evt_{id}","seq":{seq}}}"#);
    let samples = [
        tx.insert_event(p, "buy_item", &sample, Some(hook), 10).await.unwrap().id,
        tx.insert_event(p, "status_change", &sample, Some(hook), 10).await.unwrap().id,
    ];
    // A buy batch's way of writing them.
    let bulk = |event_type: &'static str| BulkEvent {
        project: p,
        event_type,
        payload: Box::new(buy("9")),
        webhook_url: Some(hook.into()),
    };
    tx.insert_events_bulk(&[bulk("buy_item"), bulk("status_change")], 10).await.unwrap();
    let (bought9, status9) = (samples[1] + 1, samples[1] + 2);
    // Two callbacks of one deposit.
    let callback = |id: i64, seq: i64| format!(r#"{{"id":{id},"seq":{seq}}}"#);
    let first_callback = tx.insert_event(p, "deposit_status", &callback, None, 10).await.unwrap().id;
    assert!(tx.insert_result_delivery(first_callback, p, 42, 10).await.unwrap());
    let second_callback = tx.insert_event(p, "deposit_status", &callback, None, 10).await.unwrap().id;
    assert!(tx.insert_result_delivery(second_callback, p, 42, 10).await.unwrap());
    tx.commit().await.unwrap();

    let claim = |now: i64| {
        let s = s.clone();
        async move {
            let mut claimed = s.claim_due_deliveries(now, 1_000, &ClaimLimit::total(100)).await.unwrap();
            claimed.sort_by_key(|d| d.event.id);
            claimed
        }
    };
    let events = |claimed: &[Delivery]| claimed.iter().map(|d| d.event.id).collect::<Vec<_>>();
    let first = claim(10).await;
    assert_eq!(
        events(&first),
        [bought7, balance, status8, samples[0], samples[1], bought9, first_callback],
        "the first of each subject, and events of none"
    );
    let attempt = |status| Attempt {
        attempt_no: 1,
        started_at: 11,
        duration_ms: 5,
        http_status: Some(status),
        error: None,
        response_head: String::new(),
    };
    let leased = |event: i64| first.iter().find(|d| d.event.id == event).unwrap();
    // Leased and then waiting for a retry, an earlier delivery still holds its subject's next one back.
    assert!(claim(10).await.is_empty(), "the followers wait while the first ones are under way");
    s.record_attempts(&[
        (leased(bought7), &attempt(500), NextStep::RetryAt(100)),
        (leased(bought9), &attempt(500), NextStep::Fail),
        (leased(first_callback), &attempt(200), NextStep::Delivered),
    ])
    .await
    .unwrap();
    assert_eq!(
        events(&claim(20).await),
        [status9, second_callback],
        "after the earlier one failed for good or was delivered; not while it waits for its retry"
    );
    let retried = claim(100).await;
    assert_eq!(events(&retried), [bought7]);
    s.record_attempts(&[(&retried[0], &attempt(204), NextStep::Delivered)]).await.unwrap();
    assert_eq!(events(&claim(101).await), [status7]);
}
