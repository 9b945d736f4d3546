//! The methods of this release through the SDK, the way a merchant calls them.

use serde_json::json;
use skingate_types::Decimal;

use crate::utils::{assert_error, spawn, spawn_with};

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn status_when_open() {
    let app = spawn().await;
    let status = app.sdk().status().await.unwrap();
    assert!(status.available);
    assert_eq!(status.reason, None);
}

#[tokio::test]
async fn balance_reflects_the_ledger_and_converts() {
    let app = spawn().await;
    let empty = app.sdk().balance().await.unwrap();
    assert_eq!(empty.balance, dec("0"));
    app.credit("a", 12_345, 100).await; // 12.345 USD
    let b = app.sdk().balance().await.unwrap();
    assert_eq!(b.balance.to_string(), "12.345");
    assert_eq!(b.balance_in_currencies["usd"].to_string(), "12.345");
    // 12.345 * 92.5 = 1141.9125 RUB -> 1141.91
    assert_eq!(b.balance_in_currencies["rub"].to_string(), "1141.91");
    assert_eq!(b.balance_in_currencies.len(), 10);
    assert_eq!(b.deals_sum, dec("0"));
    assert_eq!(b.withdraw_sum, dec("0"));
    assert_eq!(b.held, Some(dec("0")));
    assert_eq!(b.currency.as_deref(), Some("usd"));
    // The raw wire form: strings, two decimals at least.
    let raw = app.post_json(json!({"method": "balance"})).await;
    assert_eq!(raw["balance"], "12.345");
    assert_eq!(raw["deals_sum"], "0.00");
}

#[tokio::test]
async fn currencies_seeded_and_configurable() {
    let app = spawn().await;
    let items = app.sdk().currencies().await.unwrap().items;
    let rub = items.iter().find(|c| c.code == "rub").unwrap();
    assert_eq!(rub.rate, dec("92.5"));
    assert!(items.iter().any(|c| c.code == "usd" && c.rate == dec("1")));
    let custom = spawn_with(|c| {
        c.with("currencies", [json!({"code": "rub", "name": "Ruble", "scale": 2, "rate": "100"})]).unwrap()
    })
    .await;
    let items = custom.sdk().currencies().await.unwrap().items;
    assert_eq!(items.iter().find(|c| c.code == "rub").unwrap().rate, dec("100"));
    custom.credit("x", 1_000, 1).await;
    assert_eq!(custom.sdk().balance().await.unwrap().balance_in_currencies["rub"], dec("100"));
}

#[tokio::test]
async fn balance_history_pages_with_a_cursor() {
    let app = spawn().await;
    for i in 0..5 {
        app.credit(&format!("c{i}"), 1_000, 1_000 + i).await;
    }
    let sdk = app.sdk();
    let all = sdk.balance_history(0, 2_000, None).await.unwrap();
    assert_eq!(all.total_count, 5);
    assert!(!all.has_more);
    let first = &all.items[0];
    assert_eq!((first.kind.as_str(), first.amount.to_string().as_str()), ("adjustment", "1.00"));
    assert_eq!((first.balance_before.to_string(), first.balance_after.to_string()), ("0.00".into(), "1.00".into()));
    assert_eq!(first.transfer_id, "c0");
    assert_eq!(first.reference, "test credit c0");
    // Time range is inclusive on both ends.
    let mid = sdk.balance_history(1_001, 1_003, None).await.unwrap();
    assert_eq!(mid.items.iter().map(|i| i.date).collect::<Vec<_>>(), [1_001, 1_002, 1_003]);
    // Cursor: continue after the second item.
    let rest = sdk.balance_history(0, 2_000, all.items.get(1).map(|i| i.id.parse().unwrap())).await.unwrap();
    assert_eq!(rest.total_count, 3);
    assert_eq!(rest.items[0].transfer_id, "c2");
    assert_eq!(rest.start_from, Some(all.items[4].id.parse().unwrap()));
    // The alias answers the same.
    let alias = app.post_json(json!({"method": "money_history", "starting": 0, "ending": 2000})).await;
    assert_eq!(alias["total_count"], 5);
}

#[tokio::test]
async fn balance_history_caps_pages_at_1000() {
    let app = spawn().await;
    let mut tx = app.running.state.store.begin().await.unwrap();
    let debit = tx.system_account(skingate_core::ledger::AccountKind::OperatorAdjustments).await.unwrap();
    let credit = tx.project_account(app.project.id).await.unwrap();
    for i in 0..1_001 {
        let spec = skingate_core::ledger::TransferSpec {
            id: skingate_core::ledger::TransferId(format!("bulk{i}")),
            debit,
            credit,
            amount: skingate_core::Money::from_minor(1),
            phase: skingate_core::ledger::Phase::Posted,
            code: skingate_core::ledger::TransferCode::Adjustment,
            allow_overdraft: false,
            reference: String::new(),
        };
        tx.transfer(&spec, 5).await.unwrap();
    }
    tx.commit().await.unwrap();
    let page = app.sdk().balance_history(0, 10, None).await.unwrap();
    assert_eq!((page.total_count, page.has_more), (1_000, true));
    let next = app.sdk().balance_history(0, 10, page.start_from).await.unwrap();
    assert_eq!((next.total_count, next.has_more), (1, false));
    assert_eq!(next.items[0].balance_after.to_string(), "1.001");
}

#[tokio::test]
async fn alias_path_and_form_bodies_answer_like_json() {
    let app = spawn().await;
    app.credit("a", 2_500, 1).await;
    let json_answer = app.post_json(json!({"method": "balance"})).await;
    let form = app.signed(json!({"method": "balance"}));
    let url = format!("{}/api/v1", app.running.base_url());
    let form_answer: serde_json::Value = app.http.post(url).form(&form).send().await.unwrap().json().await.unwrap();
    assert_eq!(json_answer, form_answer);
    assert_error(&app.post_json(json!({"method": "BALANCE"})).await, -5, "invalid_method");
}
