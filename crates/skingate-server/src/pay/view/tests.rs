use super::*;

fn usd(minor: i128) -> Amount {
    Amount { minor, scale: 2, code: "USD".into() }
}

fn chrome(step: u8) -> Chrome {
    Chrome {
        merchant: "Shop <b>&\"Co\"".into(),
        order_id: "order-1".into(),
        transaction_id: "42".into(),
        base: "/pay/tok".into(),
        step,
    }
}

/// USD, no fee, no multiplier.
fn plain() -> Credit {
    let pricing =
        crate::deposits::Pricing { currency: skingate_core::currency::ledger_usd(), multiplier_ppm: 1_000_000 };
    Credit { pricing, fee_ppm: 0 }
}

/// An item worth `cents` (its value in ledger thousandths is ten times that).
fn item(id: &str, name: &str, cents: i128, disabled: Option<&str>) -> ItemView {
    let (name, exterior) = ItemView::split_name(name);
    let value = i64::try_from(cents * 10).unwrap();
    ItemView {
        asset_id: id.into(),
        name,
        exterior,
        price: plain().credited(Money::from_minor(value)),
        value,
        disabled: disabled.map(Into::into),
        checked: false,
    }
}

/// A limit of `cents`, for a deposit without fee or multiplier.
fn limit(cents: i128) -> Limit {
    let v = Money::from_minor(i64::try_from(cents * 10).unwrap());
    Limit { shown: plain().user(v), value: v.minor() }
}

fn items_page(items: Vec<ItemView>, min: Option<i128>, max: Option<i128>) -> ItemsPage {
    ItemsPage {
        page: chrome(2),
        steam_id: "76561198000000000".into(),
        trade_token: "AbCdEfGh".into(),
        game: "cs2",
        tabs: vec![],
        items,
        credit: plain(),
        min: min.map(limit),
        max: max.map(limit),
        multiplier: None,
        error: None,
    }
}

#[test]
fn merchant_and_item_names_are_escaped() {
    let mut page = items_page(vec![item("1", "<script>alert(1)</script>", 150, None)], None, None);
    page.error = Some("<img src=x onerror=alert(1)>".into());
    let html = page.render().unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;") || html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("Shop <b>"));
    assert!(html.contains("Shop &#60;b&#62;&#38;&#34;Co&#34;") || html.contains("Shop &lt;b&gt;"), "{html}");
}

#[test]
fn untradable_items_render_disabled_with_the_reason() {
    let page = items_page(
        vec![
            item("11", "AK-47 | Redline (Field-Tested)", 1234, None),
            item("12", "AWP | Asiimov (Battle-Scarred)", 9900, Some("Trade protected until 2026-12-07")),
        ],
        None,
        None,
    );
    let html = page.render().unwrap();
    let tradable = html.find(r#"value="11""#).unwrap();
    let protected = html.find(r#"value="12""#).unwrap();
    let tag = |at: usize| &html[at..at + html[at..].find('>').unwrap()];
    assert!(!tag(tradable).contains("disabled"), "{}", tag(tradable));
    assert!(tag(protected).contains("disabled"), "{}", tag(protected));
    assert!(html.contains("Trade protected until 2026-12-07"));
    assert!(html.contains("12.34 USD") && html.contains("99.00 USD"));
    assert!(html.contains(">FT<") && html.contains("Field-Tested"), "exterior split into badge and label");
    assert_eq!(page.selectable(), 1);
}

#[test]
fn limits_are_stated_and_handed_to_the_script() {
    let html = items_page(vec![item("1", "Box", 100, None)], Some(500), Some(10_000)).render().unwrap();
    assert!(html.contains("Limit: Between 5.00 and 100.00 USD"), "{html}");
    // Bounds on the items' values in ledger units, and the limits as shown in the currency's units.
    assert!(html.contains(r#"data-min="5000""#) && html.contains(r#"data-max="100000""#), "{html}");
    assert!(html.contains(r#"data-min-shown="5000""#) && html.contains(r#"data-max-shown="100000""#));
    assert!(html.contains(r#"data-fee="0" data-multiplier="1000000" data-rate="1000000""#), "{html}");
    assert!(html.contains(r#"data-divisor="1000000" data-scale="3" data-code="USD""#), "{html}");
    assert!(html.contains(r#"data-value="1000""#));
    let html = items_page(vec![item("1", "Box", 100, None)], Some(500), None).render().unwrap();
    assert!(html.contains("Limit: At least 5.00 USD") && html.contains(r#"data-max="""#));
    let html = items_page(vec![item("1", "Box", 100, None)], None, None).render().unwrap();
    assert!(!html.contains("Limit:"));
}

#[test]
fn no_selectable_items_disables_submit() {
    let page = items_page(vec![item("1", "Box", 100, Some("Not tradable"))], None, None);
    let html = page.render().unwrap();
    assert!(html.contains(r#"id="send" disabled"#), "{html}");
}

#[test]
fn ticked_items_are_summed_after_a_refusal() {
    let mut page = items_page(vec![item("1", "A", 150, None), item("2", "B", 275, None)], None, None);
    page.items[0].checked = true;
    page.items[1].checked = true;
    assert_eq!(page.checked_total().to_string(), "4.25 USD");
    let html = page.render().unwrap();
    assert!(html.contains(r#"class="js-total">4.25 USD"#), "{html}");
}

#[test]
fn account_page_offers_the_known_account_and_escapes_input() {
    let page = AccountPage {
        page: chrome(1),
        known: Some(KnownAccount {
            steam_id: "76561198000000000".into(),
            trade_url: "https://steamcommunity.com/tradeoffer/new/?partner=39734272&token=AbCdEfGh".into(),
        }),
        trade_url: "\"><script>x</script>".into(),
        error: Some("That is not a Steam trade URL.".into()),
        limits: None,
    };
    let html = page.render().unwrap();
    assert!(html.contains("Continue with this account"));
    assert!(html.contains("partner=39734272&#38;token=AbCdEfGh") || html.contains("partner=39734272&amp;token"));
    assert!(!html.contains("\"><script>"), "{html}");
    assert!(html.contains(r#"aria-invalid="true""#));
    assert!(html.contains(r#"class="current" aria-current="step""#));
}

fn status(progress: Progress, next: Option<&str>) -> StatusPage {
    StatusPage {
        page: chrome(3),
        progress,
        offer: Some(OfferView {
            id: "7000000001".into(),
            bot_name: "Dragonfly".into(),
            bot_steam_id: "76561199390042107".into(),
            expires: format_utc(1_796_000_000),
            item_count: 2,
        }),
        amount: Some(usd(1_250)),
        held: false,
        reversed: false,
        reason: None,
        next_url: next.map(Into::into),
    }
}

#[test]
fn waiting_page_names_the_bot_and_refreshes_without_script() {
    let html = status(Progress::Waiting, None).render().unwrap();
    assert!(html.contains("Dragonfly") && html.contains("#7000000001"));
    assert!(html.contains("https://steamcommunity.com/tradeoffer/7000000001/"));
    assert!(html.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#), "{html}");
    assert!(html.contains(r#"data-stage="waiting""#) && html.contains(r#"data-poll="/pay/tok/status""#));
    assert!(html.contains("Steam Guard codes"));
    assert!(!html.contains("data-next"));
}

#[test]
fn final_pages_lead_to_the_merchant() {
    let html = status(Progress::Succeeded, Some("https://shop.example/ok?a=1&b=2")).render().unwrap();
    assert!(html.contains("Deposit received") && html.contains("12.50 USD"));
    assert!(html.contains(r#"content="6;url=https://shop.example/ok?a=1&#38;b=2""#), "{html}");
    assert!(html.contains(r#"target="_top""#));
    let mut fail = status(Progress::Failed, Some("https://shop.example/fail"));
    fail.reason = Some("You declined the trade offer.".into());
    let html = fail.render().unwrap();
    assert!(html.contains("Deposit not completed") && html.contains("You declined the trade offer."));
    assert!(html.contains(r#"data-next="https://shop.example/fail""#));
}

#[test]
fn error_page_escapes() {
    let html =
        ErrorPage { status: 404, title: "Payment link not found".into(), message: "<b>x</b>".into() }.render().unwrap();
    assert!(html.contains("Payment link not found") && !html.contains("<b>x</b>"));
}

#[test]
fn utc_dates() {
    assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
    assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
    assert_eq!(format_utc(1_796_000_000), "2026-11-30 00:53 UTC");
    assert_eq!(format_utc(-1), "1969-12-31 23:59 UTC");
}

#[test]
fn only_web_urls_are_linked() {
    assert_eq!(safe_url("https://shop.example/ok").as_deref(), Some("https://shop.example/ok"));
    assert_eq!(safe_url("http://127.0.0.1:8080/x?y=1").as_deref(), Some("http://127.0.0.1:8080/x?y=1"));
    for bad in ["javascript:alert(1)", "data:text/html,x", "/relative", "", "ftp://x/"] {
        assert_eq!(safe_url(bad), None, "{bad}");
    }
}

#[test]
fn amounts_and_names() {
    let a = Amount::new(&"12.5".parse().unwrap(), 2, "rub").unwrap();
    assert_eq!(a.to_string(), "12.50 RUB");
    assert_eq!(Amount::new(&"0.001".parse().unwrap(), 2, "usd"), None);
    assert_eq!(ItemView::split_name("Glove Case"), ("Glove Case".into(), None));
    assert_eq!(ItemView::split_name("Sticker | Foo (Holo)"), ("Sticker | Foo (Holo)".into(), None));
    assert_eq!(chrome(1).initial(), "S");
    assert_eq!(limits_text(None, None), None);
    let r = |s: &str| Amount::rounded(&s.parse().unwrap(), 2, "usd").to_string();
    assert_eq!(
        (r("0.155"), r("0.154"), r("-0.155"), r("3"), r("1.5")),
        ("0.16 USD".into(), "0.15 USD".into(), "-0.16 USD".into(), "3.00 USD".into(), "1.50 USD".into())
    );
    assert_eq!(limits_text(None, Some(&usd(100))).as_deref(), Some("At most 1.00 USD"));
}

/// Accepted, then reversed under Trade Protection: the acceptance is shown done and the reversal as what failed.
#[test]
fn a_reversed_trade_shows_its_acceptance_then_the_reversal() {
    let mut page = status(Progress::Failed, None);
    page.reason = Some("The trade was reversed in Steam.".into());
    page.amount = None;
    let plain_fail = page.render().unwrap();
    assert!(plain_fail.contains(r#"<li class="failed">Accepted in Steam</li>"#), "{plain_fail}");
    page.reversed = true;
    let html = page.render().unwrap();
    assert!(html.contains(r#"<li class="done">Accepted in Steam</li>"#), "{html}");
    assert!(html.contains(r#"<li class="failed">Reversed in Steam during Trade Protection</li>"#), "{html}");
    assert!(!html.contains("Credited by"), "{html}");
}

/// The waiting page carries a hidden "connection lost" note the script shows while polls fail.
#[test]
fn the_waiting_page_has_a_hidden_connection_note() {
    let html = status(Progress::Waiting, None).render().unwrap();
    assert!(
        html.contains(r#"class="note small js-offline" id="offline" role="status" hidden>Connection lost"#),
        "{html}"
    );
    assert!(html.contains(r#"class="muted small js-live""#));
}
