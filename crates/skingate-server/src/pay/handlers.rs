//! The payment page's routes: parse, call the deposits domain, render. See the module docs of
//! [`crate::pay`] for the flow.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use skingate_steam::TradeUrl;
use skingate_steam::catalogue::Game;

use super::FORM_LIMIT;
use super::adapter::{self, Step};
use super::http::{cross_site, error_page, framed_error_page, not_found, origin_of, page};
use super::view::{AccountPage, ItemsPage};
use crate::deposits::{self, DepositError, DepositView};
use crate::listener::BodyError;
use crate::state::AppState;

/// Most asset ids one submission may carry (Steam inventories are larger, deposits are not).
pub const MAX_ITEMS: usize = 200;

/// The page that replaces the one asked for (an error page); boxed, as it is the rare path.
type Refused = Box<Response>;

/// A page, or the page that replaces it.
type PageResult = Result<Response, Refused>;

fn flatten(r: PageResult) -> Response {
    r.unwrap_or_else(|e| *e)
}

/// Loads the deposit of a page token; the 404 page if there is none.
async fn load(state: &AppState, token: &str) -> Result<DepositView, Refused> {
    match deposits::find_by_page_token(state, token).await {
        Ok(Some(view)) => Ok(view),
        Ok(None) => Err(Box::new(not_found())),
        Err(e) => Err(Box::new(internal(e))),
    }
}

/// An internal failure: logged with its cause, shown as a generic page.
fn internal(e: impl Into<anyhow::Error>) -> Response {
    tracing::error!(error = %e.into(), "payment page failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The payment page hit an error on our side. Nothing was sent to Steam. Please reload in a minute.",
    )
}

/// New offers need an active project and a gateway out of maintenance (a sent offer is still followed).
fn accepting(state: &AppState, view: &DepositView) -> Result<(), Refused> {
    let refused =
        |status, title, message| Box::new(framed_error_page(status, title, message, &adapter::ancestors(view)));
    if state.maintenance() {
        return Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Back in a few minutes",
            "Deposits are paused for maintenance. Your link stays valid: please open it again shortly.",
        ));
    }
    if !view.project.settings.active {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "Deposits are not available",
            "This shop is not accepting deposits right now. Please contact the shop.",
        ));
    }
    Ok(())
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location.to_owned()), (header::CACHE_CONTROL, "no-store".into())])
        .into_response()
}

fn bad_form(why: &str) -> Response {
    error_page(StatusCode::BAD_REQUEST, "This form could not be read", why)
}

/// `GET /pay/{token}`: step 1 (account) before an offer, step 3 (progress) after.
pub async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    flatten(show_inner(&state, &token).await)
}

async fn show_inner(state: &AppState, token: &str) -> PageResult {
    let view = load(state, token).await?;
    let ancestors = adapter::ancestors(&view);
    match adapter::step(&view) {
        Step::Choose => {
            accepting(state, &view)?;
            Ok(account_page(state, &view, token, String::new(), None, StatusCode::OK))
        }
        Step::Track(progress) => {
            Ok(page(StatusCode::OK, &adapter::status_page(state, &view, token, progress), &ancestors))
        }
    }
}

fn account_page(
    state: &AppState,
    view: &DepositView,
    token: &str,
    input: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    // The same figures as the items page: what the payer receives, multiplier applied.
    let (min, max) = adapter::shown_limits(view, &adapter::pricing(state, view));
    let limits = super::view::limits_text(min.as_ref(), max.as_ref());
    let t = AccountPage {
        page: adapter::chrome(view, token, 1),
        known: adapter::known_account(view),
        trade_url: input,
        error,
        limits,
    };
    page(status, &t, &adapter::ancestors(view))
}

/// Reads a urlencoded form body into its pairs; refuses oversized, non-UTF-8 or non-form bodies.
async fn read_form(headers: &HeaderMap, body: Body) -> Result<Vec<(String, String)>, Refused> {
    let body = crate::listener::read_body(body, FORM_LIMIT).await.map_err(|e| match e {
        BodyError::TooLarge => {
            error_page(StatusCode::PAYLOAD_TOO_LARGE, "This form is too large", "Please pick fewer items.")
        }
        BodyError::Unreadable => bad_form("The request body could not be read."),
    })?;
    let form_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(skingate_types::form::is_form);
    if !form_type || std::str::from_utf8(&body).is_err() {
        return Err(Box::new(bad_form("Expected a form submitted from the payment page.")));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    if pairs.len() > MAX_ITEMS + 8 {
        return Err(Box::new(error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "This form is too large",
            "Please pick fewer items.",
        )));
    }
    Ok(pairs)
}

/// The one value of a field (`None` if absent or repeated).
fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// Counts a request that calls Steam (an inventory view, an offer submit) against the deposit's budget
/// (`pay_steam_requests_per_min`); past it the payer is asked to wait.
fn steam_budget(state: &AppState, view: &DepositView) -> Result<(), Refused> {
    state.page_limits.check(view.deposit.id).map_err(|wait| {
        let mut page = framed_error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "This payment has asked Steam too often in the last minute. Wait a moment, then try again.",
            &adapter::ancestors(view),
        );
        page.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
        Box::new(page)
    })
}

fn refuse_cross_site(state: &AppState, headers: &HeaderMap) -> Result<(), Refused> {
    let public = origin_of(&state.config.base_url()).unwrap_or_default();
    if cross_site(headers, &public) {
        return Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was sent from another website. Open the payment link from the shop again.",
        )));
    }
    Ok(())
}

/// What every form post does first, in this order: find the deposit, refuse cross-site posts, read the form,
/// send a payer who is past the choosing step back to the page, refuse new offers while the gateway or the
/// project does not take them.
async fn open_form(
    state: &AppState,
    token: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(DepositView, Vec<(String, String)>), Refused> {
    let view = load(state, token).await?;
    refuse_cross_site(state, headers)?;
    let pairs = read_form(headers, body).await?;
    if adapter::step(&view) != Step::Choose {
        return Err(Box::new(see_other(&format!("/pay/{token}"))));
    }
    accepting(state, &view)?;
    Ok((view, pairs))
}

/// `POST /pay/{token}/account`: the payer's trade URL; on to the inventory.
pub async fn account(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    flatten(account_inner(&state, &token, &headers, body).await)
}

async fn account_inner(state: &AppState, token: &str, headers: &HeaderMap, body: Body) -> PageResult {
    let (view, pairs) = open_form(state, token, headers, body).await?;
    let Some(input) = field(&pairs, "trade_url") else { return Err(Box::new(bad_form("The trade URL is missing."))) };
    let input = input.trim();
    let url = match input.parse::<TradeUrl>() {
        Ok(url) => url,
        Err(_) => {
            let why = "That is not a Steam trade URL. It looks like \
                       https://steamcommunity.com/tradeoffer/new/?partner=123456789&token=AbCdEfGh";
            let input = input.chars().take(200).collect();
            return Ok(account_page(state, &view, token, input, Some(why.into()), StatusCode::UNPROCESSABLE_ENTITY));
        }
    };
    let game = adapter::games(&view)[0];
    Ok(see_other(&adapter::items_href(token, &url.steam_id.to_string(), &url.token, game)))
}

/// `GET /pay/{token}/items?steam_id=…&trade_token=…&game=…`: step 2, the priced inventory.
pub async fn items(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    flatten(items_inner(&state, &token, &q).await)
}

async fn items_inner(state: &AppState, token: &str, q: &HashMap<String, String>) -> PageResult {
    let view = load(state, token).await?;
    if adapter::step(&view) != Step::Choose {
        return Ok(see_other(&format!("/pay/{token}")));
    }
    accepting(state, &view)?;
    let pick = Pick::read(&view, |k| q.get(k).map(String::as_str));
    let Some(pick) = pick else { return Ok(see_other(&format!("/pay/{token}"))) };
    steam_budget(state, &view)?;
    Ok(items_page(state, &view, token, &pick, &[], None, StatusCode::OK).await)
}

/// The account and game a step-2 request names.
struct Pick {
    steam_id: String,
    trade_url: TradeUrl,
    game: Game,
}

impl Pick {
    /// Reads `steam_id`, `trade_token` and `game`; `None` if the account is malformed. An unknown or
    /// disallowed game falls back to the first allowed one.
    fn read<'a>(view: &DepositView, get: impl Fn(&str) -> Option<&'a str>) -> Option<Pick> {
        let steam_id = deposits::parse_steam_id(get("steam_id")?).ok()?;
        let trade_url = deposits::parse_trade_token(steam_id, get("trade_token")?).ok()?;
        let allowed = adapter::games(view);
        let game = get("game").and_then(Game::parse).filter(|g| allowed.contains(g)).unwrap_or(allowed[0]);
        Some(Pick { steam_id: steam_id.to_string(), trade_url, game })
    }
}

async fn items_page(
    state: &AppState,
    view: &DepositView,
    token: &str,
    pick: &Pick,
    checked: &[String],
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let pricing = adapter::pricing(state, view);
    let inventory =
        deposits::priced_inventory(state, &view.project, &pick.steam_id, &pick.trade_url.token, pick.game, &pricing)
            .await;
    let inventory = match inventory {
        Ok(items) => items,
        Err(DepositError::Internal(e)) => return internal(e),
        Err(e) => {
            let text = adapter::error_text(&e, view, &pricing);
            let input = pick.trade_url.to_string();
            return account_page(state, view, token, input, Some(text), StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let (min, max) = adapter::limits(view, &pricing);
    let multiplier = (view.deposit.multiplier_ppm != skingate_core::deposit::PPM)
        .then(|| format!("×{}", skingate_core::deposit::ppm_text(view.deposit.multiplier_ppm)));
    let t = ItemsPage {
        page: adapter::chrome(view, token, 2),
        steam_id: pick.steam_id.clone(),
        trade_token: pick.trade_url.token.clone(),
        game: pick.game.code(),
        tabs: adapter::tabs(view, token, &pick.steam_id, &pick.trade_url.token, pick.game),
        items: adapter::item_views(view, &pricing, inventory, checked),
        credit: adapter::credit(view, &pricing),
        min,
        max,
        multiplier,
        error,
    };
    page(status, &t, &adapter::ancestors(view))
}

/// `POST /pay/{token}/items`: the payer's pick; a bot sends the offer, then the progress page.
pub async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    flatten(submit_inner(&state, &token, &headers, body).await)
}

async fn submit_inner(state: &AppState, token: &str, headers: &HeaderMap, body: Body) -> PageResult {
    let (view, pairs) = open_form(state, token, headers, body).await?;
    let Some(pick) = Pick::read(&view, |k| field(&pairs, k)) else {
        return Err(Box::new(bad_form("The Steam account in this form is not valid.")));
    };
    let assets: Vec<String> = pairs.iter().filter(|(k, _)| k == "asset_id").map(|(_, v)| v.trim().to_owned()).collect();
    if assets.len() > MAX_ITEMS || assets.iter().any(|a| a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit())) {
        return Err(Box::new(bad_form("The chosen items are not valid.")));
    }
    steam_budget(state, &view)?;
    let started =
        deposits::start_offer(state, &view.project, view.deposit.id, &pick.trade_url, pick.game, &assets).await;
    match started {
        Ok(_) | Err(DepositError::NotPending) => Ok(see_other(&format!("/pay/{token}"))),
        Err(DepositError::Internal(e)) => Err(Box::new(internal(e))),
        Err(e) => {
            let text = adapter::error_text(&e, &view, &adapter::pricing(state, &view));
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(items_page(state, &view, token, &pick, &assets, Some(text), status).await)
        }
    }
}

/// The status JSON the page polls: `{"stage": "waiting"|"success"|"fail"|"choose", "status", "next_url"}`.
#[derive(Debug, serde::Serialize)]
pub struct StatusJson {
    /// Where the page is: `choose` (no offer yet), `waiting`, `success`, `fail`.
    pub stage: &'static str,
    /// The deposit's status (spec §3.1).
    pub status: &'static str,
    /// Steam's offer id, once sent.
    pub offer_id: Option<String>,
    /// Where the payer goes once final.
    pub next_url: Option<String>,
}

/// `GET /pay/{token}/status`.
pub async fn status(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let view = match deposits::find_by_page_token(&state, &token).await {
        Ok(Some(view)) => view,
        Ok(None) => {
            return (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error": "not_found"}))).into_response();
        }
        Err(e) => return internal(e),
    };
    let (stage, next_url) = match adapter::step(&view) {
        Step::Choose => ("choose", None),
        Step::Track(p) => (p.code(), adapter::status_page(&state, &view, &token, p).next_url),
    };
    let body =
        StatusJson { stage, status: view.deposit.status.as_str(), offer_id: view.deposit.offer_id.clone(), next_url };
    let mut resp = axum::Json(body).into_response();
    super::http::secure_headers(resp.headers_mut(), "'none'");
    resp
}
