//! The hosted payment page, walked as a payer's browser would without JavaScript: plain GETs and form
//! posts, redirects followed by hand, the simulator answering the trade on a ManualClock.

use std::sync::Arc;
use std::time::Duration;

use skingate_core::Money;
use skingate_sdk::deposits::CreateDeposit;
use skingate_server::clock::ManualClock;
use skingate_steam::catalogue::Game;
use skingate_steam::sim::Profile;
use skingate_steam::users::Asset;
use skingate_steam::{SteamId, TradeUrl};

use crate::utils::{TestApp, spawn_with_clock};

const SUCCESS_URL: &str = "https://shop.example/deposit/ok?order=1";
const FAIL_URL: &str = "https://shop.example/deposit/fail";

/// A gateway whose deposit watcher polls fast, a project with a name, return URLs and one embedding origin,
/// and a browser-like client that does not follow redirects.
struct Pay {
    app: TestApp,
    clock: ManualClock,
    browser: reqwest::Client,
}

async fn spawn() -> Pay {
    spawn_tweaked(|c| c).await
}

/// [`spawn`] with settings of the test's on top.
async fn spawn_tweaked(tweak: impl FnOnce(skingate_server::Config) -> skingate_server::Config) -> Pay {
    let clock = ManualClock::new(1_800_000_000);
    let mut app = spawn_with_clock(
        |c| tweak(c.with("trade_poll_interval_ms", 20).unwrap().with("trade_confirm_delay_ms", 1).unwrap()),
        Arc::new(clock.clone()),
    )
    .await;
    app.update(|s| {
        s.name = "Nova Skins".into();
        s.success_url = Some(SUCCESS_URL.into());
        s.fail_url = Some(FAIL_URL.into());
        s.frame_ancestors = vec!["https://shop.example".into()];
    })
    .await;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Pay { app, clock, browser }
}

/// A simulated payer with at least two tradable items and one that cannot be traded, in `game`.
fn payer(pay: &Pay, game: Game) -> (TradeUrl, Vec<Asset>) {
    let sim = pay.app.running.state.sim.clone().unwrap();
    for n in 1_000..2_000 {
        let user = SteamId::from_account_id(n).unwrap();
        let inv = sim.simulation().inventory(user, game);
        let tradable = inv.iter().filter(|a| a.tradable && a.price_cents > 0).count();
        if tradable >= 2 && inv.iter().any(|a| !a.tradable) {
            return (sim.simulation().trade_url(user), inv);
        }
    }
    panic!("no suitable simulated payer");
}

fn tradable(inv: &[Asset]) -> Vec<&Asset> {
    let mut v: Vec<&Asset> = inv.iter().filter(|a| a.tradable && a.price_cents > 0).collect();
    v.sort_by_key(|a| a.price_cents);
    v
}

/// A USD amount as `create` takes it.
fn usd(cents: u64) -> Option<String> {
    Some(format!("{}.{:02}", cents / 100, cents % 100))
}

impl Pay {
    /// Creates a deposit through the SDK's `create`; returns (transaction id, page path).
    async fn create(&self, order: &str, tweak: impl FnOnce(&mut CreateDeposit)) -> (i64, String) {
        let mut opts = CreateDeposit::default();
        tweak(&mut opts);
        let created = self.app.sdk().create_deposit(order, &opts).await.unwrap();
        // The URL names the configured address (port 0 here); the path is what the payer's browser asks for.
        let path = &created.url[created.url.find("/pay/").expect("a /pay/ URL")..];
        assert!(created.url.starts_with("http://127.0.0.1:") && path.len() == "/pay/".len() + 32, "{}", created.url);
        (created.transaction_id, path.to_owned())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.running.base_url())
    }

    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self.browser.get(self.url(path)).send().await.unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, resp.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let resp = self.browser.post(self.url(path)).form(form).send().await.unwrap();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (resp.status().as_u16(), location, resp.text().await.unwrap())
    }

    async fn status_json(&self, page: &str) -> serde_json::Value {
        self.browser.get(self.url(&format!("{page}/status"))).send().await.unwrap().json().await.unwrap()
    }

    /// Polls the status JSON until its stage is `stage` (the watcher runs on real time, every 20 ms).
    async fn wait_stage(&self, page: &str, stage: &str) -> serde_json::Value {
        for _ in 0..250 {
            let s = self.status_json(page).await;
            if s["stage"] == stage {
                return s;
            }
            self.app.running.state.deposits_wake.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("stage {stage} not reached: {}", self.status_json(page).await);
    }

    async fn deposit(&self, id: i64) -> skingate_store::deposits::Deposit {
        self.app.running.state.store.deposit(self.app.project.id, id).await.unwrap().unwrap()
    }

    /// Walks steps 1 and 2 up to the items page; returns its path.
    async fn to_items(&self, page: &str, url: &TradeUrl) -> String {
        let (status, location, _) = self.post(&format!("{page}/account"), &[("trade_url", &url.to_string())]).await;
        assert_eq!(status, 303);
        location.unwrap()
    }
}

fn pick_form<'a>(url: &'a TradeUrl, steam_id: &'a str, game: &'a str, assets: &'a [String]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![("steam_id", steam_id), ("trade_token", url.token.as_str()), ("game", game)];
    form.extend(assets.iter().map(|a| ("asset_id", a.as_str())));
    form
}

#[tokio::test]
async fn a_payer_walks_the_page_to_the_success_url() {
    let pay = spawn().await;
    let (url, inv) = payer(&pay, Game::Cs2);
    let (id, page) = pay.create("order-1", |_| {}).await;

    // Step 1: the page introduces the merchant and asks for a trade URL; headers allow the shop's frame.
    let (status, headers, html) = pay.get(&page).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.contains("Deposit skins to Nova Skins") && html.contains("Your Steam trade URL"));
    assert!(html.contains("Steam Guard codes"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'self' https://shop.example"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(pay.status_json(&page).await["stage"], "choose");

    // Step 2: the inventory, priced, sorted, with untradable items disabled.
    let items = pay.to_items(&page, &url).await;
    assert!(items.starts_with(&format!("{page}/items?steam_id={}&trade_token=", url.steam_id)), "{items}");
    let (status, _, html) = pay.get(&items).await;
    assert_eq!(status, 200);
    let chosen = tradable(&inv);
    for a in &chosen {
        let tag = input_tag(&html, &a.asset_id.to_string());
        assert!(!tag.contains("disabled"), "{tag}");
    }
    let locked = inv.iter().find(|a| !a.tradable).unwrap();
    assert!(input_tag(&html, &locked.asset_id.to_string()).contains("disabled"));
    let dearest = chosen.last().unwrap();
    let cheapest = chosen.first().unwrap();
    assert!(
        html.find(&dearest.asset_id.to_string()).unwrap() < html.find(&cheapest.asset_id.to_string()).unwrap(),
        "most valuable first"
    );
    assert!(html.contains(&format!("{}.{:02} USD", dearest.price_cents / 100, dearest.price_cents % 100)));

    // Submit two items: the bot sends the offer and the page tracks it.
    let assets: Vec<String> = chosen[..2].iter().map(|a| a.asset_id.to_string()).collect();
    let steam_id = url.steam_id.to_string();
    let (status, location, _) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "cs2", &assets)).await;
    assert_eq!((status, location.as_deref()), (303, Some(page.as_str())));
    let dep = pay.deposit(id).await;
    let offer_id = dep.offer_id.clone().expect("offer recorded");
    let bot = dep.bot_name.clone().unwrap();
    let (status, _, html) = pay.get(&page).await;
    assert_eq!(status, 200);
    assert!(html.contains("Accept the trade offer in Steam") && html.contains(&bot) && html.contains(&offer_id));
    assert!(html.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#));
    assert!(html.contains("Offer expires") && html.contains(" UTC"));
    let s = pay.status_json(&page).await;
    assert_eq!((s["stage"].as_str(), s["offer_id"].as_str()), (Some("waiting"), Some(offer_id.as_str())));

    // The payer accepts after 10 s (the simulator's default): CS2 goes to in_hold, the page ends on success.
    pay.clock.advance(11);
    let s = pay.wait_stage(&page, "success").await;
    assert_eq!(s["status"], "in_hold");
    assert_eq!(s["next_url"], SUCCESS_URL);
    let (_, _, html) = pay.get(&page).await;
    assert!(html.contains("Deposit received") && html.contains("Trade Protection"));
    // Held, not credited yet: the last step says when it comes instead of showing it done.
    assert!(html.contains(r#"<li class="current">Credited by"#) && html.contains("once Steam's Trade Protection ends"));
    assert!(html.contains(&format!(r#"href="{}""#, SUCCESS_URL.replace('&', "&#38;"))), "{html}");
    assert!(html.contains(&format!("content=\"6;url={SUCCESS_URL}\"")));

    // Nothing more can be posted on a finished deposit: a replayed submit just lands on the status page.
    let (status, location, _) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "cs2", &assets)).await;
    assert_eq!((status, location.as_deref()), (303, Some(page.as_str())));
    assert_eq!(pay.deposit(id).await.offer_id, Some(offer_id));
}

/// The `<input …>` tag carrying `value="asset"`.
fn input_tag<'a>(html: &'a str, asset: &str) -> &'a str {
    let at = html.find(&format!(r#"value="{asset}""#)).unwrap_or_else(|| panic!("asset {asset} not shown"));
    let start = html[..at].rfind('<').unwrap();
    &html[start..at + html[at..].find('>').unwrap()]
}

#[tokio::test]
async fn a_prefilled_account_and_a_fixed_game_skip_the_choices_and_a_decline_ends_on_the_fail_url() {
    let mut pay = spawn().await;
    pay.app.update(|s| s.multiplier_ppm = 1_500_000).await;
    let (url, inv) = payer(&pay, Game::Dota2);
    let steam_id = url.steam_id.to_string();
    let (id, page) = pay
        .create("order-2", |r| {
            r.steam_id = Some(steam_id.clone());
            r.trade_token = Some(url.token.clone());
            r.game = Some("dota2".into());
            r.fail_url = Some("https://shop.example/order-2/failed".into());
            r.currency = Some("rub".into());
        })
        .await;
    let (_, _, html) = pay.get(&page).await;
    assert!(html.contains("Continue with this account") && html.contains(&steam_id));
    let items = pay.to_items(&page, &url).await;
    assert!(items.ends_with("game=dota2"));
    let (_, _, html) = pay.get(&items).await;
    assert!(!html.contains("Counter-Strike 2"), "no game tabs when the merchant fixed the game");
    // Prices in the deposit's currency with its multiplier: cents → ×1.5 → RUB at the table's rate, 2 decimals.
    let first = tradable(&inv)[0];
    let rub = pay.app.running.state.rates().get("rub").cloned().unwrap();
    let credited = Money::from_minor(first.price_cents as i64 * 15); // × 10 (cents → thousandths) × 1.5
    let exact = rub.from_usd(credited);
    let shown = skingate_server::pay::view::Amount::rounded(&exact, 2, "rub").to_string();
    assert!(shown.ends_with(" RUB") && html.contains(&shown), "{shown}");
    assert!(html.contains("×1.5 (included)"));
    // Asking for another game still shows the fixed one.
    let (_, _, other) = pay.get(&items.replace("game=dota2", "game=rust")).await;
    assert!(other.contains(r#"name="game" value="dota2""#));

    pay.app.running.state.sim.clone().unwrap().set_profile(url.steam_id, Profile::Decline);
    let assets = vec![tradable(&inv)[0].asset_id.to_string()];
    let (status, _, _) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "dota2", &assets)).await;
    assert_eq!(status, 303);
    pay.clock.advance(4);
    let s = pay.wait_stage(&page, "fail").await;
    assert_eq!(
        (s["status"].as_str(), s["next_url"].as_str()),
        (Some("fail"), Some("https://shop.example/order-2/failed"))
    );
    let (_, _, html) = pay.get(&page).await;
    assert!(html.contains("Deposit not completed") && html.contains("You declined the trade offer."));
    assert!(html.contains(r#"data-next="https://shop.example/order-2/failed""#));
    assert_eq!(pay.deposit(id).await.status.as_str(), "fail");
}

#[tokio::test]
async fn refused_inputs_change_nothing() {
    let pay = spawn().await;
    let (url, inv) = payer(&pay, Game::Cs2);
    let steam_id = url.steam_id.to_string();
    let chosen = tradable(&inv);
    let value: u64 = chosen.iter().map(|a| a.price_cents).sum();
    let (id, page) = pay
        .create("order-3", |r| {
            r.currency = Some("usd".into());
            r.min_amount = usd(chosen[0].price_cents + 1);
        })
        .await;
    let submit = format!("{page}/items");
    let one = vec![chosen[0].asset_id.to_string()];

    // Unknown page token: the 404 page.
    let (status, headers, html) = pay.get("/pay/nosuchtokennosuchtokennosuchtok").await;
    assert_eq!(status, 404);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.contains("Payment link not found"));
    let (status, _, _) = pay.post("/pay/nosuchtoken/items", &pick_form(&url, &steam_id, "cs2", &one)).await;
    assert_eq!(status, 404);

    // Not a trade URL: the account step again, with the error and the input kept (escaped).
    let (status, _, html) = pay.post(&format!("{page}/account"), &[("trade_url", "<b>not a url</b>")]).await;
    assert_eq!(status, 422);
    assert!(html.contains("That is not a Steam trade URL") && html.contains("&#60;b&#62;not a url"));

    // A token Steam refuses is refused before the payer picks anything (Steam's trade-hold query, made when
    // the inventory is shown, checks it), and again when the bot sends the offer: back to the account step.
    let stale = TradeUrl::new(url.steam_id, "ZZZZ_ZZZ").unwrap();
    let items_page = pay.to_items(&page, &stale).await;
    let (status, _, html) = pay.get(&items_page).await;
    assert_eq!(status, 422);
    assert!(html.contains("Steam did not accept this trade URL"), "{html}");
    let all: Vec<String> = chosen.iter().map(|a| a.asset_id.to_string()).collect();
    let (status, _, html) = pay.post(&submit, &pick_form(&stale, &steam_id, "cs2", &all)).await;
    assert_eq!(status, 422);
    assert!(html.contains("Steam did not accept this trade URL"), "{html}");

    // Below the minimum; above a maximum; nothing picked; an untradable item; an item not owned.
    let (status, _, html) = pay.post(&submit, &pick_form(&url, &steam_id, "cs2", &one)).await;
    assert_eq!(status, 422);
    assert!(html.contains("worth less than the minimum deposit of"), "{html}");
    assert!(input_tag(&html, &one[0]).contains("checked"), "the pick is kept");
    let (status, _, html) = pay.post(&submit, &pick_form(&url, &steam_id, "cs2", &[])).await;
    assert_eq!(status, 422);
    assert!(html.contains("Pick at least one item."));
    let locked = vec![inv.iter().find(|a| !a.tradable).unwrap().asset_id.to_string()];
    let (status, _, html) = pay.post(&submit, &pick_form(&url, &steam_id, "cs2", &locked)).await;
    assert_eq!(status, 422);
    assert!(html.contains("can no longer be traded"));
    let (status, _, _) = pay.post(&submit, &pick_form(&url, &steam_id, "cs2", &["12345".into()])).await;
    assert_eq!(status, 422);
    let (_, capped) = pay
        .create("order-4", |r| {
            r.currency = Some("usd".into());
            r.max_amount = usd(chosen[0].price_cents);
        })
        .await;
    let both: Vec<String> = chosen[..2].iter().map(|a| a.asset_id.to_string()).collect();
    let (status, _, html) = pay.post(&format!("{capped}/items"), &pick_form(&url, &steam_id, "cs2", &both)).await;
    assert_eq!(status, 422);
    assert!(html.contains("worth more than the maximum deposit of"));

    // Malformed or hostile requests: not a form, a bad asset id, a bad account, another site, too large.
    let resp = pay
        .browser
        .post(pay.url(&submit))
        .body("steam_id=1")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (status, _, _) = pay.post(&submit, &pick_form(&url, &steam_id, "cs2", &["12x".into()])).await;
    assert_eq!(status, 400);
    let (status, _, _) = pay.post(&submit, &pick_form(&url, "123", "cs2", &one)).await;
    assert_eq!(status, 400);
    let form = pick_form(&url, &steam_id, "cs2", &one);
    let resp =
        pay.browser.post(pay.url(&submit)).form(&form).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let resp =
        pay.browser.post(pay.url(&submit)).form(&form).header("sec-fetch-site", "cross-site").send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let huge = "1".repeat(20_000);
    let (status, _, html) = pay.post(&submit, &[("steam_id", &steam_id), ("asset_id", &huge)]).await;
    assert_eq!(status, 413);
    assert!(html.contains("too large"));

    // None of it sent an offer or moved the deposit; the same page still works.
    let dep = pay.deposit(id).await;
    assert_eq!((dep.status.as_str(), dep.offer_id.as_deref()), ("pending", None));
    assert_eq!(pay.status_json(&page).await["stage"], "choose");
    assert!(value > chosen[0].price_cents);
    let (status, location, _) = pay.post(&submit, &pick_form(&url, &steam_id, "cs2", &all)).await;
    assert_eq!((status, location.as_deref()), (303, Some(page.as_str())));
    assert!(pay.deposit(id).await.offer_id.is_some());
}

#[tokio::test]
async fn assets_are_served_and_the_frame_defaults_to_self() {
    let pay = spawn().await;
    let (status, headers, css) = pay.get("/pay/assets/pay.css").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/css"));
    assert!(css.contains(".item"));
    let (status, headers, js) = pay.get("/pay/assets/pay.js").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(js.contains("fetch("));

    let mut pay = pay;
    pay.app.update(|s| s.frame_ancestors.clear()).await;
    let (_, page) = pay.create("order-5", |_| {}).await;
    let (_, headers, _) = pay.get(&page).await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.ends_with("frame-ancestors 'self'"), "{csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'"));
}

#[tokio::test]
async fn an_inactive_project_or_maintenance_takes_no_new_offers_but_sent_ones_are_still_followed() {
    let mut pay = spawn().await;
    let (url, inv) = payer(&pay, Game::Rust);
    let steam_id = url.steam_id.to_string();
    let (id, page) = pay.create("order-6", |r| r.game = Some("rust".into())).await;
    let (_, sent) = pay.create("order-7", |r| r.game = Some("rust".into())).await;
    let assets = vec![tradable(&inv)[0].asset_id.to_string()];
    let (status, _, _) = pay.post(&format!("{sent}/items"), &pick_form(&url, &steam_id, "rust", &assets)).await;
    assert_eq!(status, 303);

    pay.app.update(|s| s.active = false).await;
    let (status, _, html) = pay.get(&page).await;
    assert_eq!(status, 403);
    assert!(html.contains("not accepting deposits"));
    let (status, _, _) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "rust", &assets)).await;
    assert_eq!(status, 403);
    let (status, _, html) = pay.get(&sent).await;
    assert_eq!(status, 200, "the payer can still follow the offer already sent");
    assert!(html.contains("Accept the trade offer in Steam"));

    pay.app.update(|s| s.active = true).await;
    let state = pay.app.running.state.clone();
    state.store.set_meta(skingate_server::state::MAINTENANCE_KEY, "on").await.unwrap();
    state.refresh().await.unwrap();
    let (status, headers, html) = pay.get(&page).await;
    assert_eq!(status, 503);
    assert!(html.contains("maintenance"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'self' https://shop.example"), "framable like the deposit: {csp}");
    let (status, _, _) = pay.post(&format!("{page}/account"), &[("trade_url", &url.to_string())]).await;
    assert_eq!(status, 503);
    assert_eq!(pay.deposit(id).await.offer_id, None);

    // Rust has no Trade Protection: the accepted deposit is a plain success.
    pay.clock.advance(11);
    let s = pay.wait_stage(&sent, "success").await;
    assert_eq!(s["status"], "success");
}

/// Behind a reverse proxy the `Host` header may name the upstream (`127.0.0.1:8080`) while the browser's
/// `Origin` is the public address: a post from the gateway's own public origin is the payer's, not cross-site.
#[tokio::test]
async fn a_same_origin_post_behind_a_reverse_proxy_is_accepted() {
    let pay = spawn_tweaked(|c| c.with("public_url", "https://pay.example").unwrap()).await;
    let (url, _) = payer(&pay, Game::Cs2);
    let created = pay.app.sdk().create_deposit("proxy-1", &CreateDeposit::default()).await.unwrap();
    let page = created.url.strip_prefix("https://pay.example").expect("the public URL").to_owned();
    let post = |origin: &'static str| {
        pay.browser
            .post(pay.url(&format!("{page}/account")))
            .form(&[("trade_url", url.to_string())])
            .header("origin", origin)
            .header("sec-fetch-site", "same-origin")
            .send()
    };
    assert_eq!(post("https://pay.example").await.unwrap().status(), 303);
    assert_eq!(post("https://evil.example").await.unwrap().status(), 403);
}

/// The limits are checked with the fee frozen on the deposit at `create` (the one the page shows and the credit
/// uses), not the project's current one: raising the fee afterwards cannot let a deposit above its maximum in.
#[tokio::test]
async fn limits_are_checked_with_the_deposits_own_fee() {
    let mut pay = spawn().await;
    let (url, inv) = payer(&pay, Game::Cs2);
    let item = (*tradable(&inv).last().unwrap()).clone();
    let (id, page) = pay
        .create("fee-1", |r| {
            r.currency = Some("usd".into());
            r.max_amount = usd(item.price_cents - 1);
        })
        .await;
    pay.app.update(|s| s.deposit_fee_ppm = 100_000).await;
    let items = pay.to_items(&page, &url).await;
    let (status, _, _) = pay.get(&items).await;
    assert_eq!(status, 200);
    let steam_id = url.steam_id.to_string();
    let assets = [item.asset_id.to_string()];
    let (status, _, html) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "cs2", &assets)).await;
    assert_eq!(status, 422, "refused: above the maximum at the deposit's fee");
    assert!(html.contains("worth more than the maximum deposit of"), "{html}");
    assert_eq!(pay.deposit(id).await.offer_id, None);
}

/// Requests that call Steam (inventory views, submits) are limited per deposit; past the limit the payer gets
/// 429 with `Retry-After`, and nothing reaches Steam.
#[tokio::test]
async fn steam_calling_requests_are_limited_per_deposit() {
    let pay = spawn_tweaked(|c| c.with("pay_steam_requests_per_min", 2).unwrap()).await;
    let (url, _) = payer(&pay, Game::Cs2);
    let (_, page) = pay.create("limit-1", |_| {}).await;
    let items = pay.to_items(&page, &url).await;
    assert_eq!(pay.get(&items).await.0, 200);
    assert_eq!(pay.get(&items).await.0, 200);
    let (status, headers, _) = pay.get(&items).await;
    assert_eq!(status, 429);
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let (_, other) = pay.create("limit-2", |_| {}).await;
    let other_items = pay.to_items(&other, &url).await;
    assert_eq!(pay.get(&other_items).await.0, 200, "another deposit has its own budget");
}

/// Media types are case-insensitive: a form posted as `Application/X-WWW-Form-Urlencoded` is read like any other,
/// while a type that only starts like a form's is still refused.
#[tokio::test]
async fn the_form_content_type_is_matched_case_insensitively() {
    let pay = spawn().await;
    let (url, _) = payer(&pay, Game::Cs2);
    let (_, page) = pay.create("ctype-1", |_| {}).await;
    let body = url::form_urlencoded::Serializer::new(String::new()).append_pair("trade_url", &url.to_string()).finish();
    let post = |ctype: &'static str| {
        pay.browser.post(pay.url(&format!("{page}/account"))).header("content-type", ctype).body(body.clone()).send()
    };
    assert_eq!(post("Application/X-WWW-Form-Urlencoded").await.unwrap().status(), 303);
    assert_eq!(post("APPLICATION/X-WWW-FORM-URLENCODED; Charset=UTF-8").await.unwrap().status(), 303);
    assert_eq!(post("application/x-www-form-urlencodedish").await.unwrap().status(), 400);
    assert_eq!(post("multipart/form-data; boundary=x").await.unwrap().status(), 400);
}

/// The result page shows the amounts recorded at acceptance, as the callback and `orderstatus` do: a rate changed
/// afterwards (`skingate currency set rub 100`) changes nothing the payer reads.
#[tokio::test]
async fn the_result_page_shows_the_recorded_amount_not_todays_rate() {
    let mut pay = spawn().await;
    pay.app.update(|s| s.multiplier_ppm = 1_500_000).await;
    let (url, inv) = payer(&pay, Game::Dota2);
    let steam_id = url.steam_id.to_string();
    let (id, page) = pay
        .create("rate-1", |r| {
            r.game = Some("dota2".into());
            r.currency = Some("rub".into());
        })
        .await;
    let assets: Vec<String> = tradable(&inv)[..2].iter().map(|a| a.asset_id.to_string()).collect();
    let (status, _, _) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "dota2", &assets)).await;
    assert_eq!(status, 303);
    pay.clock.advance(11);
    pay.wait_stage(&page, "success").await;
    let order = pay.app.post_json(serde_json::json!({"method": "orderstatus", "transaction_id": id})).await;
    let user_amount = format!("{} RUB", order["user_amount"].as_str().unwrap());
    let (_, _, before) = pay.get(&page).await;
    assert!(before.contains(&format!("<strong>{user_amount}</strong>")), "{user_amount}: {before}");

    // The rate moves: orderstatus keeps its figures, and so does the page.
    let state = pay.app.running.state.clone();
    let rub = state.rates().get("rub").cloned().unwrap();
    let moved = skingate_core::currency::Currency::new("rub", &rub.name, rub.scale, &"100".parse().unwrap()).unwrap();
    assert_ne!(moved.rate_micro, rub.rate_micro, "the test needs another rate");
    state.store.upsert_currency(&moved, state.now()).await.unwrap();
    state.refresh().await.unwrap();
    let again = pay.app.post_json(serde_json::json!({"method": "orderstatus", "transaction_id": id})).await;
    assert_eq!(again["user_amount"], order["user_amount"]);
    let (_, _, after) = pay.get(&page).await;
    assert!(after.contains(&format!("<strong>{user_amount}</strong>")), "credited: {after}");
    assert!(after.contains(&format!("<dt>Deposit value</dt><dd>{user_amount}</dd>")), "deposit value: {after}");
}

/// A send that fails (Steam creates no offer) leaves the deposit as it was: no account, game or items of the
/// attempt in `orderstatus`, no "selected by the merchant" account on the page, no game lock for the next payer;
/// a merchant's own account and game from `create` stay. The payer can then send again.
#[tokio::test]
async fn a_failed_send_leaves_the_deposit_as_it_was() {
    let pay = spawn().await;
    let (url, inv) = payer(&pay, Game::Rust);
    let steam_id = url.steam_id.to_string();
    let sim = pay.app.running.state.sim.clone().unwrap();
    sim.set_profile(url.steam_id, Profile::SendFails);
    let orderstatus = |id: i64| pay.app.post_json(serde_json::json!({"method": "orderstatus", "transaction_id": id}));
    let assets = vec![tradable(&inv)[0].asset_id.to_string()];

    // A deposit that named nobody and no game.
    let (id, page) = pay.create("fails-1", |_| {}).await;
    let (status, _, html) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "rust", &assets)).await;
    assert_eq!(status, 422);
    assert!(html.contains("Steam is not answering"), "{html}");
    let o = orderstatus(id).await;
    assert_eq!((o["steam_id"].as_str(), o.get("game")), (Some(""), None), "{o}");
    let dep = pay.deposit(id).await;
    assert_eq!((dep.trade_token.as_deref(), dep.items.len()), (None, 0));
    let (_, _, html) = pay.get(&page).await;
    assert!(!html.contains("Selected by") && !html.contains("Continue with this account"), "{html}");
    // Another payer may pick another game.
    let (other, _) = payer(&pay, Game::Cs2);
    let items = pay.to_items(&page, &other).await;
    let (_, _, html) = pay.get(&items.replace("game=cs2", "game=dota2")).await;
    assert!(html.contains(r#"name="game" value="dota2""#) && html.contains("Counter-Strike 2"), "not locked to rust");

    // A deposit whose merchant named the payer and the game keeps them.
    let (named, named_page) = pay
        .create("fails-2", |r| {
            r.steam_id = Some(steam_id.clone());
            r.trade_token = Some(url.token.clone());
            r.game = Some("rust".into());
        })
        .await;
    let (status, _, _) = pay.post(&format!("{named_page}/items"), &pick_form(&url, &steam_id, "rust", &assets)).await;
    assert_eq!(status, 422);
    let o = orderstatus(named).await;
    assert_eq!((o["steam_id"].as_str(), o["game"].as_str()), (Some(steam_id.as_str()), Some("rust")));
    let (_, _, html) = pay.get(&named_page).await;
    assert!(html.contains("Selected by Nova Skins") && html.contains(&steam_id));

    // Steam answers again: the same payer sends, and the deposit records the attempt that worked.
    sim.set_profile(url.steam_id, Profile::AcceptAfter { secs: 10 });
    let (status, location, _) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "rust", &assets)).await;
    assert_eq!((status, location.as_deref()), (303, Some(page.as_str())));
    let dep = pay.deposit(id).await;
    assert_eq!(
        (dep.steam_id.as_deref(), dep.game.as_deref(), dep.items.len()),
        (Some(steam_id.as_str()), Some("rust"), 1)
    );
    assert!(dep.offer_id.is_some());
}

/// A crash between the start of a send and its end leaves the deposit sending with no offer: the watcher fails it
/// after the grace period and puts back what it held, so the failed deposit names no payer or game it never had.
#[tokio::test]
async fn a_send_interrupted_by_a_crash_fails_without_the_attempts_account() {
    let pay = spawn().await;
    let (url, inv) = payer(&pay, Game::Rust);
    let (id, page) = pay.create("crash-pay-1", |_| {}).await;
    let item = tradable(&inv)[0];
    let target = send_target(&url, item);
    let state = pay.app.running.state.clone();
    let mut tx = state.store.begin().await.unwrap();
    assert!(tx.begin_sending(id, &target, state.now()).await.unwrap());
    tx.commit().await.unwrap();
    pay.clock.advance(skingate_server::deposits::SEND_GRACE_SECS);
    pay.wait_stage(&page, "fail").await;
    let o = pay.app.post_json(serde_json::json!({"method": "orderstatus", "transaction_id": id})).await;
    assert_eq!((o["status"].as_str(), o["fail_reason"].as_str()), (Some("fail"), Some("trade_create_error")));
    assert_eq!((o["steam_id"].as_str(), o.get("game")), (Some(""), None), "{o}");
    assert!(pay.deposit(id).await.items.is_empty());
}

/// A page send begun by an earlier process (it crashed between the start of the send and its record) whose
/// offer Steam never made is put back once the grace has passed: the deposit stays pending, names nobody, gets
/// no callback, and a payer can send again. (A send of the running process is failed instead, as above: it
/// may yet finish late.)
#[tokio::test]
async fn a_page_send_interrupted_by_a_restart_is_released_for_the_payer() {
    let pay = spawn().await;
    let (url, inv) = payer(&pay, Game::Rust);
    let steam_id = url.steam_id.to_string();
    let (id, page) = pay.create("crash-pay-2", |_| {}).await;
    let item = tradable(&inv)[0];
    let target = send_target(&url, item);
    let state = pay.app.running.state.clone();
    let mut tx = state.store.begin().await.unwrap();
    assert!(tx.begin_sending(id, &target, state.started_at - 1).await.unwrap());
    tx.commit().await.unwrap();
    pay.clock.advance(skingate_server::deposits::SEND_GRACE_SECS);
    let mut released = false;
    for _ in 0..250 {
        if pay.deposit(id).await.items.is_empty() {
            released = true;
            break;
        }
        state.deposits_wake.notify_one();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(released, "still sending: {:?}", pay.deposit(id).await);
    let o = pay.app.post_json(serde_json::json!({"method": "orderstatus", "transaction_id": id})).await;
    assert_eq!((o["status"].as_str(), o["steam_id"].as_str(), o.get("game")), (Some("pending"), Some(""), None), "{o}");
    // The payer sends again, and this time the offer is made and recorded.
    let assets = vec![item.asset_id.to_string()];
    let (status, location, _) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "rust", &assets)).await;
    assert_eq!((status, location.as_deref()), (303, Some(page.as_str())));
    assert!(pay.deposit(id).await.offer_id.is_some());
}

/// What a send of `item` to the payer of `url` writes on a deposit as it begins (Rust).
fn send_target(url: &TradeUrl, item: &Asset) -> skingate_store::deposits::OfferTarget {
    skingate_store::deposits::OfferTarget {
        steam_id: url.steam_id.to_string(),
        trade_token: url.token.clone(),
        game: "rust".into(),
        items: vec![skingate_store::deposits::DepositItem {
            asset_id: item.asset_id.to_string(),
            classid: item.classid.to_string(),
            context_id: item.context_id,
            market_hash_name: item.market_hash_name.clone(),
            price_cents: item.price_cents,
        }],
    }
}

/// The value of an attribute in an HTML fragment (the first one of that name).
fn attr(html: &str, name: &str) -> String {
    let at = html.find(&format!(r#" {name}=""#)).unwrap_or_else(|| panic!("no {name} in {html}")) + name.len() + 3;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// pay.js's arithmetic, step for step (integers only): the items' values summed, credited once, written as the
/// server writes amounts. Kept beside the script's so a change to either shows here.
fn script_total(form: &str, values: &[i64]) -> String {
    let n = |name: &str| attr(form, name).parse::<i128>().unwrap();
    let div = |a: i128, d: i128| if 2 * (a % d) >= d { a / d + 1 } else { a / d };
    let gross = i128::from(values.iter().sum::<i64>());
    let net = gross - div(gross * n("data-fee"), 1_000_000);
    let user = div(net * n("data-multiplier"), 1_000_000);
    let local = div(user * n("data-rate"), n("data-divisor"));
    let scale = n("data-scale") as usize;
    let digits = format!("{local:0>width$}", width = scale + 1);
    let (whole, frac) = digits.split_at(digits.len() - scale);
    let frac = frac.trim_end_matches('0');
    let frac = format!("{frac:0<width$}", width = scale.min(2));
    let number = if frac.is_empty() { whole.to_owned() } else { format!("{whole}.{frac}") };
    format!("{number} {}", attr(form, "data-code"))
}

/// The page decides the limits on exactly what the server decides (the items' exact values, the fee taken from
/// their sum), and its total is the `user_amount` the deposit records, not a sum of rounded item prices.
#[tokio::test]
async fn the_page_decides_limits_and_totals_as_the_server_does() {
    let mut pay = spawn().await;
    pay.app
        .update(|s| {
            s.deposit_fee_ppm = 25_000;
            s.multiplier_ppm = 1_500_000;
        })
        .await;
    let (url, inv) = payer(&pay, Game::Dota2);
    let steam_id = url.steam_id.to_string();
    let two: Vec<&Asset> = tradable(&inv).into_iter().rev().take(2).collect();
    let assets: Vec<String> = two.iter().map(|a| a.asset_id.to_string()).collect();
    let gross: i64 = two.iter().map(|a| a.price_cents as i64 * 10).sum();
    let net = gross - skingate_core::deposit::apply_ppm(Money::from_minor(gross), 25_000).unwrap().minor();
    let thousandths = |v: i64| Some(Money::from_minor(v).to_wire().to_string());

    // The items page hands the script each item's exact value and bounds in the same units.
    let check = |min: Option<i64>, max: Option<i64>, order: &'static str| {
        let pay = &pay;
        let (url, assets, steam_id) = (&url, &assets, &steam_id);
        async move {
            let (id, page) = pay
                .create(order, |r| {
                    r.game = Some("dota2".into());
                    r.currency = Some("usd".into());
                    r.min_amount = min.and_then(thousandths);
                    r.max_amount = max.and_then(thousandths);
                })
                .await;
            let (_, _, html) = pay.get(&pay.to_items(&page, url).await).await;
            let form = &html[html.find(r#"id="items-form""#).unwrap()..];
            let form = &form[..form.find('>').unwrap()];
            let sum: i64 = assets.iter().map(|a| attr(input_tag(&html, a), "data-value").parse::<i64>().unwrap()).sum();
            let bound = |name| attr(form, name).parse::<i64>().ok();
            let script_allows =
                bound("data-min").is_none_or(|m| sum >= m) && bound("data-max").is_none_or(|m| sum <= m);
            let (status, _, _) = pay.post(&format!("{page}/items"), &pick_form(url, steam_id, "dota2", assets)).await;
            (sum, script_allows, status, id)
        }
    };
    // One unit of net value either side of each limit; the accepted pick last (its items are then in an offer).
    for (min, max, order, accepted) in [
        (Some(net + 1), None, "edge-1", false),
        (None, Some(net - 1), "edge-2", false),
        (Some(net), Some(net), "edge-3", true),
    ] {
        let (sum, script_allows, status, _) = check(min, max, order).await;
        assert_eq!(sum, gross, "each item's exact value");
        assert_eq!((script_allows, status), (accepted, if accepted { 303 } else { 422 }), "{order}: net {net}");
    }

    // In roubles (Rust items: the Dota 2 offers above stay open): the total of a refused pick (ticks kept) is
    // what the script shows for those ticks, and the user_amount the same pick records once accepted.
    let (url, inv) = payer(&pay, Game::Rust);
    let steam_id = url.steam_id.to_string();
    let two: Vec<&Asset> = tradable(&inv).into_iter().rev().take(2).collect();
    let assets: Vec<String> = two.iter().map(|a| a.asset_id.to_string()).collect();
    let rub = |order: &'static str, min: Option<String>| {
        let pay = &pay;
        async move {
            pay.create(order, |r| {
                r.game = Some("rust".into());
                r.currency = Some("rub".into());
                r.min_amount = min;
            })
            .await
        }
    };
    let (_, refused) = rub("total-1", Some("1000000".into())).await;
    let (status, _, html) = pay.post(&format!("{refused}/items"), &pick_form(&url, &steam_id, "rust", &assets)).await;
    assert_eq!(status, 422);
    let form = &html[html.find(r#"id="items-form""#).unwrap()..];
    let form = &form[..form.find('>').unwrap()];
    let at = html.find(r#"class="js-total">"#).unwrap() + r#"class="js-total">"#.len();
    let total = &html[at..at + html[at..].find('<').unwrap()];
    let values: Vec<i64> = two.iter().map(|a| a.price_cents as i64 * 10).collect();
    assert_eq!(script_total(form, &values), total, "the script's total is the page's");
    let (id, page) = rub("total-2", None).await;
    let (status, _, _) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "rust", &assets)).await;
    assert_eq!(status, 303);
    pay.clock.advance(11);
    pay.wait_stage(&page, "success").await;
    let o = pay.app.post_json(serde_json::json!({"method": "orderstatus", "transaction_id": id})).await;
    assert_eq!(format!("{} RUB", o["user_amount"].as_str().unwrap()), total, "the page's total is user_amount");
}

/// A CS2 deposit the payer reverses during its Trade Protection hold: the page says it was accepted, then
/// reversed, instead of marking the acceptance as failed.
#[tokio::test]
async fn a_trade_reversed_during_its_hold_shows_as_accepted_then_reversed() {
    let pay = spawn().await;
    let (url, inv) = payer(&pay, Game::Cs2);
    let steam_id = url.steam_id.to_string();
    let sim = pay.app.running.state.sim.clone().unwrap();
    sim.set_profile(url.steam_id, Profile::ReverseAfter { accept_after: 10, reverse_after: 3_600 });
    let (_, page) = pay.create("reverse-1", |_| {}).await;
    let assets = vec![tradable(&inv)[0].asset_id.to_string()];
    let (status, _, _) = pay.post(&format!("{page}/items"), &pick_form(&url, &steam_id, "cs2", &assets)).await;
    assert_eq!(status, 303);
    pay.clock.advance(11);
    assert_eq!(pay.wait_stage(&page, "success").await["status"], "in_hold");
    pay.clock.advance(3_601);
    let s = pay.wait_stage(&page, "fail").await;
    assert_eq!(s["status"], "fail");
    let (_, _, html) = pay.get(&page).await;
    assert!(html.contains(r#"<li class="done">Accepted in Steam</li>"#), "{html}");
    assert!(html.contains(r#"<li class="failed">Reversed in Steam during Trade Protection</li>"#), "{html}");
    assert!(html.contains("The trade was reversed in Steam."));
}
