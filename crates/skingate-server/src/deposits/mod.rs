//! Deposits: the payer gives items through a Steam trade offer sent by one of the gateway's bots, and the
//! merchant's balance is credited with their value.
//!
//! # Layout
//! - this file: the functions the API methods and the hosted page share: [`create_deposit`],
//!   [`find_by_page_token`], [`priced_inventory`], [`start_offer`] (and the pieces
//!   `create_from_user_inventory` composes: [`select_items`], [`send_offer`], [`record_offer`], and
//!   [`spawn_send`], which sends an offer outside any transaction for a deposit already committed as
//!   sending and records it, as a task that outlives the request);
//! - [`transitions`]: the one function that moves a deposit between states, with its ledger transfer,
//!   outbox event, Result-URL callback and `balance_change`, in one transaction;
//! - [`wire`]: the deposit object (spec §3.2) as `orderstatus`, `orders` and the callbacks show it,
//!   `user_risk`, and the callback body encodings and signature;
//! - [`watcher`]: the background task that observes open offers and held deposits and drives
//!   [`transitions`];
//! - [`test_mode`]: magic trade tokens that choose the simulated payer's behaviour.
//!
//! The state machine itself is pure and lives in `skingate_core::deposit`.

use std::sync::Arc;

use skingate_core::Money;
use skingate_core::currency::Currency;
use skingate_core::deposit::{self, DepositStatus};
use skingate_core::project::Project;
use skingate_steam::catalogue::Game;
use skingate_steam::ids::validate_token;
use skingate_steam::sim::{NewOffer, SteamError};
use skingate_steam::{SteamId, TradeUrl};
use skingate_store::deposits::{Deposit, DepositItem, NewDeposit, OfferRecord, OfferTarget};
use skingate_store::{IdempotencyKey, StoreError, WriteTx};
use skingate_types::Decimal;

use crate::state::AppState;

pub mod test_mode;
pub mod transitions;
pub mod watcher;
pub mod wire;

/// Why a deposit step was refused. API methods map these to their own error codes; the hosted page shows
/// them to the payer. Every variant but [`DepositError::Internal`] means nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    /// Not a SteamID64 of an individual account.
    #[error("invalid steam id")]
    InvalidSteamId,
    /// Malformed token, or Steam refused it (changed trade URL).
    #[error("invalid trade token")]
    InvalidTradeToken,
    /// An asset id is not in the payer's inventory, not tradable, priced at zero or repeated.
    #[error("items not available")]
    ItemsNotAvailable,
    /// No items chosen.
    #[error("no items")]
    NoItems,
    /// The items are worth less than the deposit's minimum.
    #[error("deposit amount less than minimum")]
    BelowMinimum,
    /// The items are worth more than the deposit's maximum.
    #[error("deposit amount more than maximum")]
    AboveMaximum,
    /// The payer cannot trade (ban, restriction).
    #[error("user cannot trade")]
    UserNotTradable,
    /// Steam could not create the offer; trying again later may work.
    #[error("steam could not create the offer")]
    SteamUnavailable,
    /// No such deposit.
    #[error("deposit not found")]
    NotFound,
    /// The deposit already has an offer, or is finished.
    #[error("deposit is not waiting for items")]
    NotPending,
    /// A failure inside the gateway.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for DepositError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<SteamError> for DepositError {
    fn from(e: SteamError) -> Self {
        match e {
            SteamError::InvalidToken => Self::InvalidTradeToken,
            SteamError::TradeBanned => Self::UserNotTradable,
            SteamError::InvalidItems => Self::ItemsNotAvailable,
            SteamError::Unavailable | SteamError::NotFound => Self::SteamUnavailable,
        }
    }
}

/// Parses a SteamID64 as the API and the page receive it.
pub fn parse_steam_id(text: &str) -> Result<SteamId, DepositError> {
    text.trim_ascii().parse().map_err(|_| DepositError::InvalidSteamId)
}

/// Parses a trade token, or the token out of a full trade URL (which must then name the same account).
pub fn parse_trade_token(steam_id: SteamId, text: &str) -> Result<TradeUrl, DepositError> {
    let text = text.trim();
    if text.contains("tradeoffer") {
        let url: TradeUrl = text.parse().map_err(|_| DepositError::InvalidTradeToken)?;
        return if url.steam_id == steam_id { Ok(url) } else { Err(DepositError::InvalidTradeToken) };
    }
    validate_token(text).map_err(|_| DepositError::InvalidTradeToken)?;
    TradeUrl::new(steam_id, text).map_err(|_| DepositError::InvalidTradeToken)
}

/// The bare token of a token or full trade URL (whose account must be `steam_id` when given), and the
/// account a full URL names: a merchant that sends only a trade URL has named the payer's account with it.
pub fn normalize_token(steam_id: Option<SteamId>, text: &str) -> Result<(Option<SteamId>, String), DepositError> {
    let text = text.trim();
    if text.contains("tradeoffer") {
        let url: TradeUrl = text.parse().map_err(|_| DepositError::InvalidTradeToken)?;
        return match steam_id {
            Some(id) if id != url.steam_id => Err(DepositError::InvalidTradeToken),
            _ => Ok((Some(url.steam_id), url.token)),
        };
    }
    validate_token(text).map_err(|_| DepositError::InvalidTradeToken)?;
    Ok((steam_id, text.to_owned()))
}

/// How inventory prices are shown: the currency they are converted to and the multiplier for
/// `multiplied_price_local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    /// The currency of `price_local` (a row of the rates table, or the merchant's custom one).
    pub currency: Currency,
    /// Multiplier, parts per million.
    pub multiplier_ppm: i64,
}

impl Pricing {
    /// The project's own pricing in `currency` (a code of the rates table); `None` if the code is unknown.
    pub fn for_project(state: &AppState, project: &Project, currency: &str) -> Option<Pricing> {
        let currency = state.rates().get(currency)?.clone();
        Some(Pricing { currency, multiplier_ppm: project.settings.multiplier_ppm })
    }

    /// `usd` in this pricing's currency.
    pub fn local(&self, usd: Money) -> Decimal {
        self.currency.from_usd(usd)
    }

    /// `usd × multiplier` in this pricing's currency.
    pub fn multiplied(&self, usd: Money) -> Decimal {
        self.currency.from_usd(deposit::apply_ppm(usd, self.multiplier_ppm).unwrap_or(usd))
    }
}

/// One inventory item with its prices, as `user_inventory` and the hosted page show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedItem {
    /// Steam asset id (what the payer picks).
    pub asset_id: String,
    /// Steam class id.
    pub classid: String,
    /// Steam app id of the game.
    pub app_id: u32,
    /// Inventory context (16: CS2 Trade Protection, not tradable).
    pub context_id: u32,
    /// The market name.
    pub market_hash_name: String,
    /// Reference price, USD.
    pub price: Money,
    /// Reference price in the pricing's currency.
    pub price_local: Decimal,
    /// With the multiplier, in the pricing's currency.
    pub multiplied_price_local: Decimal,
    /// Steam lets it be traded now.
    pub tradable: bool,
    /// The gateway will not accept it (not tradable, or no price).
    pub disabled: bool,
    /// Why it is disabled: `not_tradable`, `trade_protected` or `no_price`.
    pub disabled_reason: Option<&'static str>,
}

/// A user's inventory in `game`, priced. Shared by `user_inventory` and the hosted page.
pub async fn priced_inventory(
    state: &AppState,
    project: &Project,
    steam_id: &str,
    trade_token: &str,
    game: Game,
    pricing: &Pricing,
) -> Result<Vec<PricedItem>, DepositError> {
    let user = parse_steam_id(steam_id)?;
    let url = parse_trade_token(user, trade_token)?;
    let url = test_mode::resolve_token(state, project, &url);
    state.steam.escrow_days(&url).await?;
    let items = state.steam.inventory(user, game).await?;
    Ok(items
        .into_iter()
        .map(|a| {
            let price = deposit::cents(a.price_cents).unwrap_or(Money::ZERO);
            let reason = if game.protected_context_id() == Some(a.context_id) {
                Some("trade_protected")
            } else if !a.tradable {
                Some("not_tradable")
            } else if !price.is_positive() {
                Some("no_price")
            } else {
                None
            };
            PricedItem {
                asset_id: a.asset_id.to_string(),
                classid: a.classid.to_string(),
                app_id: game.app_id(),
                context_id: a.context_id,
                market_hash_name: a.market_hash_name,
                price,
                price_local: pricing.local(price),
                multiplied_price_local: pricing.multiplied(price),
                tradable: a.tradable,
                disabled: reason.is_some(),
                disabled_reason: reason,
            }
        })
        .collect())
}

/// What `create` asks for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// The merchant's id.
    pub order_id: String,
    /// Prefilled payer.
    pub steam_id: Option<String>,
    /// Prefilled token.
    pub trade_token: Option<String>,
    /// Game, if the merchant fixes it.
    pub game: Option<Game>,
    /// The deposit's currency.
    pub currency: String,
    /// Lower limit in USD and as given.
    pub min: Option<(Money, String)>,
    /// Upper limit in USD and as given.
    pub max: Option<(Money, String)>,
    /// Per-deposit multiplier override, ppm.
    pub multiplier_ppm: Option<i64>,
    /// Result URL override.
    pub result_url: Option<String>,
    /// Success URL override.
    pub success_url: Option<String>,
    /// Fail URL override.
    pub fail_url: Option<String>,
}

/// A created deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Its `transaction_id`.
    pub transaction_id: i64,
    /// The hosted payment page.
    pub url: String,
    /// The page's token (the last part of `url`).
    pub page_token: String,
}

/// A fresh unguessable page token: 32 alphanumeric characters (~190 bits).
fn new_page_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// The hosted page's URL for a token.
pub fn page_url(state: &AppState, token: &str) -> String {
    format!("{}/pay/{token}", state.config.base_url())
}

/// Stores a new pending deposit in `tx` (the caller holds the `order_id` idempotency key in the same
/// transaction and commits). Used by `create` and `create_from_user_inventory`.
pub async fn create_deposit(
    state: &AppState,
    tx: &mut dyn WriteTx,
    project: &Project,
    req: &CreateRequest,
) -> Result<Created, StoreError> {
    let page_token = new_page_token();
    let new = NewDeposit {
        project: project.id,
        order_id: req.order_id.clone(),
        page_token: page_token.clone(),
        steam_id: req.steam_id.clone(),
        trade_token: req.trade_token.clone(),
        game: req.game.map(|g| g.code().to_owned()),
        currency: req.currency.clone(),
        min_usd: req.min.as_ref().map(|m| m.0),
        max_usd: req.max.as_ref().map(|m| m.0),
        min_text: req.min.as_ref().map(|m| m.1.clone()),
        max_text: req.max.as_ref().map(|m| m.1.clone()),
        multiplier_ppm: req.multiplier_ppm.unwrap_or(project.settings.multiplier_ppm),
        fee_ppm: project.settings.deposit_fee_ppm,
        result_url: req.result_url.clone(),
        success_url: req.success_url.clone(),
        fail_url: req.fail_url.clone(),
        created_at: state.now(),
    };
    let id = tx.insert_deposit(&new).await?;
    Ok(Created { transaction_id: id, url: page_url(state, &page_token), page_token })
}

/// Everything the hosted page needs about its deposit.
#[derive(Debug, Clone)]
pub struct DepositView {
    /// The deposit (status, order id, prefilled payer, game, currency, limits, offer, items, amounts).
    pub deposit: Deposit,
    /// Its project (name, `frame_ancestors`, `test_mode`, multiplier).
    pub project: Arc<Project>,
    /// Where to send the payer after success (override or project setting).
    pub success_url: Option<String>,
    /// Where to send the payer after failure.
    pub fail_url: Option<String>,
    /// The trade offer's Steam URL, once sent.
    pub offer_url: Option<String>,
}

/// The deposit behind a hosted page token, with its project; `None` for an unknown token.
pub async fn find_by_page_token(state: &AppState, token: &str) -> anyhow::Result<Option<DepositView>> {
    if token.is_empty() || token.len() > 64 {
        return Ok(None);
    }
    let Some(deposit) = state.store.deposit_by_page_token(token).await? else { return Ok(None) };
    let Some(project) = state.project(deposit.project).await? else { return Ok(None) };
    let success_url = deposit.success_url.clone().or_else(|| project.settings.success_url.clone());
    let fail_url = deposit.fail_url.clone().or_else(|| project.settings.fail_url.clone());
    let offer_url = deposit.offer_id.as_ref().map(|id| format!("https://steamcommunity.com/tradeoffer/{id}/"));
    Ok(Some(DepositView { deposit, project, success_url, fail_url, offer_url }))
}

/// Items chosen for an offer, checked against the payer's inventory and the deposit's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The payer's trade URL (test mode's magic token already applied).
    pub trade_url: TradeUrl,
    /// The game.
    pub game: Game,
    /// The items, priced now.
    pub items: Vec<DepositItem>,
    /// Their value now (net of fee), USD; the credited value is recomputed at acceptance.
    pub value: Money,
}

/// Checks a choice of items: each asset id in the payer's inventory, tradable, priced, not repeated; the
/// value (net of the fee) within `[min_usd, max_usd]`. Sends nothing.
pub async fn select_items(
    state: &AppState,
    project: &Project,
    trade_url: &TradeUrl,
    game: Game,
    asset_ids: &[String],
    limits: (Option<Money>, Option<Money>),
    fee_ppm: i64,
) -> Result<Selection, DepositError> {
    if asset_ids.is_empty() {
        return Err(DepositError::NoItems);
    }
    let trade_url = test_mode::resolve_token(state, project, trade_url);
    let inventory = state.steam.inventory(trade_url.steam_id, game).await?;
    let mut items: Vec<DepositItem> = Vec::with_capacity(asset_ids.len());
    for id in asset_ids {
        let asset = inventory
            .iter()
            .find(|a| a.asset_id.to_string() == id.trim() && a.tradable && a.price_cents > 0)
            .ok_or(DepositError::ItemsNotAvailable)?;
        if items.iter().any(|i| i.asset_id == id.trim()) {
            return Err(DepositError::ItemsNotAvailable);
        }
        items.push(DepositItem {
            asset_id: asset.asset_id.to_string(),
            classid: asset.classid.to_string(),
            context_id: asset.context_id,
            market_hash_name: asset.market_hash_name.clone(),
            price_cents: asset.price_cents,
        });
    }
    let prices: Vec<u64> = items.iter().map(|i| i.price_cents).collect();
    let value = deposit::compute_amounts(&prices, fee_ppm, deposit::PPM)
        .map_err(|e| anyhow::anyhow!("pricing a selection: {e}"))?
        .net;
    if limits.0.is_some_and(|min| value < min) {
        return Err(DepositError::BelowMinimum);
    }
    if limits.1.is_some_and(|max| value > max) {
        return Err(DepositError::AboveMaximum);
    }
    Ok(Selection { trade_url, game, items, value })
}

/// A trade offer sent for a deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferStarted {
    /// The deposit.
    pub transaction_id: i64,
    /// Steam's offer id.
    pub offer_id: String,
    /// The bot's SteamID64.
    pub bot_steam_id: String,
    /// The bot's name.
    pub bot_name: String,
    /// When it was sent.
    pub offer_date: i64,
    /// When it expires if unanswered.
    pub offer_expires_at: i64,
    /// The items asked for.
    pub items: Vec<DepositItem>,
    /// Their value now (net of fee), USD.
    pub value: Money,
}

/// Why [`send_offer`] failed, and whether an offer may still be live at Steam.
#[derive(Debug)]
pub struct SendFailure {
    /// What to answer.
    pub error: DepositError,
    /// An offer was sent and could be neither read nor cancelled: the deposit must stay in the sending state,
    /// so that the watcher adopts (or fails) it after the grace period instead of nobody watching the offer.
    pub offer_live: bool,
}

impl From<SteamError> for SendFailure {
    fn from(e: SteamError) -> Self {
        Self { error: e.into(), offer_live: false }
    }
}

/// Sends the offer for a selection (test mode sets the simulated payer's behaviour first). Writes no deposit
/// state (only the simulator's offer record, see [`AppState::steam_sync`]).
pub async fn send_offer(
    state: &AppState,
    project: &Project,
    transaction_id: i64,
    sel: &Selection,
    magic_token: &str,
) -> Result<OfferStarted, SendFailure> {
    test_mode::prepare_payer(state, project, sel.trade_url.steam_id, magic_token);
    let asset_ids = sel.items.iter().filter_map(|i| i.asset_id.parse().ok()).collect();
    let offer =
        NewOffer { partner: sel.trade_url.clone(), game: sel.game, items_to_receive: asset_ids, items_to_give: vec![] };
    let id = state.steam.send_offer(offer).await?;
    let seen = match state.steam.offer(id).await {
        Ok(seen) => seen,
        Err(e) => {
            // Sent, but unreadable: nothing will record it, so it must not stay live.
            let offer_live = !cancel_quietly(state, id).await;
            return Err(SendFailure { error: e.into(), offer_live });
        }
    };
    // Saved at Steam (the simulator's record) before the deposit records it: see `AppState::steam_sync`.
    if let Err(e) = state.steam_sync().await {
        tracing::error!(error = %e, offer = id, "could not save the simulator's offer; cancelling it");
        let offer_live = !cancel_quietly(state, id).await;
        return Err(SendFailure { error: DepositError::SteamUnavailable, offer_live });
    }
    Ok(OfferStarted {
        transaction_id,
        offer_id: id.to_string(),
        bot_steam_id: seen.bot.steam_id.to_string(),
        bot_name: seen.bot.name,
        offer_date: seen.created_at,
        offer_expires_at: seen.expires_at,
        items: sel.items.clone(),
        value: sel.value,
    })
}

/// Records a sent offer on its pending deposit in `tx`; false if the deposit already had one.
pub async fn record_offer(
    tx: &mut dyn WriteTx,
    sel: &Selection,
    offer: &OfferStarted,
    now: i64,
) -> Result<bool, StoreError> {
    let record = OfferRecord {
        steam_id: sel.trade_url.steam_id.to_string(),
        trade_token: sel.trade_url.token.clone(),
        game: sel.game.code().to_owned(),
        offer_id: offer.offer_id.clone(),
        bot_steam_id: offer.bot_steam_id.clone(),
        bot_name: offer.bot_name.clone(),
        offer_date: offer.offer_date,
        offer_expires_at: offer.offer_expires_at,
        items: offer.items.clone(),
    };
    tx.record_offer(offer.transaction_id, &record, now).await
}

/// The idempotency scope of `order_id`, shared by `create` and `create_from_user_inventory`: one `order_id`
/// names one deposit (the table's `UNIQUE(project_id, order_id)`), whichever method created it. It is
/// `create`'s original scope, so keys stored before the two methods shared it stay valid.
pub const ORDER_SCOPE: &str = skingate_types::deposits::method::CREATE;

/// How long a deposit may stay in the sending state (gateway clock) before the trade watcher decides the
/// send was interrupted (a crash between Steam's answer and the record) and settles it (adopts the offer Steam
/// made, puts a page deposit of an earlier process back, or fails it). Far longer than any Steam call; a send
/// that still finishes after it finds the deposit failed and cancels its offer.
pub const SEND_GRACE_SECS: i64 = 300;

/// What becomes of a deposit whose offer could not be sent or recorded.
#[derive(Debug, Clone)]
pub enum OnSendFailure {
    /// It stays pending without an offer (the hosted page: the payer may submit again).
    Release,
    /// It is deleted with its idempotency key (`create_from_user_inventory`: the call failed and created
    /// nothing, so the merchant may retry the same `order_id`).
    Abandon(IdempotencyKey),
}

/// The answer to store with the deposit's idempotency key once the offer is recorded, built from the offer.
pub type ReplyFn = Box<dyn FnOnce(&OfferStarted) -> anyhow::Result<String> + Send>;

/// The selection as recorded before the send.
pub fn offer_target(sel: &Selection) -> OfferTarget {
    OfferTarget {
        steam_id: sel.trade_url.steam_id.to_string(),
        trade_token: sel.trade_url.token.clone(),
        game: sel.game.code().to_owned(),
        items: sel.items.clone(),
    }
}

/// Cancels an offer no deposit records; false if Steam refused (accepted already, or unreachable).
async fn cancel_quietly(state: &AppState, offer: u64) -> bool {
    if let Err(e) = state.steam.cancel_offer(offer).await {
        tracing::error!(offer, error = %e, "cancelling an offer no deposit records failed");
        return false;
    }
    // The caller then lets the deposit go: the cancellation must be durable at Steam first, or a crash
    // would bring the offer back to life with nobody watching it.
    match state.steam_sync().await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(offer, error = %e, "a cancelled offer could not be saved; treated as live");
            false
        }
    }
}

async fn give_up(state: &AppState, id: i64, on_failure: &OnSendFailure) {
    let done = async {
        let mut tx = state.store.begin().await?;
        match on_failure {
            OnSendFailure::Release => tx.end_sending(id, state.now()).await?,
            OnSendFailure::Abandon(key) => tx.abandon_deposit(id, key).await?,
        };
        tx.commit().await
    };
    if let Err(e) = done.await {
        // The watcher fails it after the grace period.
        tracing::warn!(deposit = id, error = %e, "could not end a deposit's failed send");
    }
}

/// Sends the offer of a deposit already marked as sending ([`skingate_store::deposits::DepositTx::begin_sending`], committed) and
/// records it in a second short transaction, with `reply` stored for `key` in the same one. Steam is called
/// outside every transaction. If the send fails, the deposit is released or abandoned (`on_failure`); if the
/// record fails after the send (commit error, or the watcher gave up on the deposit meanwhile), the offer
/// is cancelled, so no live offer is ever unknown to the gateway. An offer that cannot be cancelled (the payer
/// accepted at once, or Steam is unreachable) keeps the deposit in the sending state: the watcher adopts it
/// after the grace period.
///
/// Run it as a task ([`spawn_send`]): it must finish even when the HTTP client that asked goes away.
pub async fn send_and_record(
    state: AppState,
    project: Arc<Project>,
    id: i64,
    sel: Selection,
    magic_token: String,
    on_failure: OnSendFailure,
    reply: Option<(IdempotencyKey, ReplyFn)>,
) -> Result<(OfferStarted, Option<String>), DepositError> {
    let offer = match send_offer(&state, &project, id, &sel, &magic_token).await {
        Ok(offer) => offer,
        Err(SendFailure { error, offer_live }) => {
            if !offer_live {
                give_up(&state, id, &on_failure).await;
            }
            return Err(error);
        }
    };
    let recorded = async {
        let mut tx = state.store.begin().await?;
        if !record_offer(tx.as_mut(), &sel, &offer, state.now()).await? {
            return Ok(None);
        }
        let mut body = None;
        if let Some((key, build)) = reply {
            let text = build(&offer)?;
            tx.store_idempotent_response(&key, &text).await?;
            body = Some(text);
        }
        tx.commit().await?;
        anyhow::Ok(Some(body))
    };
    match recorded.await {
        Ok(Some(body)) => {
            state.wake_deposits();
            Ok((offer, body))
        }
        Ok(None) => {
            let cancelled = match offer.offer_id.parse::<u64>() {
                Ok(offer) => cancel_quietly(&state, offer).await,
                Err(_) => false,
            };
            if !cancelled {
                // No deposit waits for this offer any more: an operator must cancel it at Steam, or a payer
                // who accepts it gives items nothing credits.
                let offer = offer.offer_id.as_str();
                tracing::error!(
                    deposit = id,
                    offer,
                    "an offer sent for a deposit that has ended could not be cancelled"
                );
            }
            Err(DepositError::NotPending)
        }
        Err(e) => {
            let cancelled = match offer.offer_id.parse() {
                Ok(offer) => cancel_quietly(&state, offer).await,
                Err(_) => true,
            };
            if cancelled {
                give_up(&state, id, &on_failure).await;
            } else {
                tracing::warn!(
                    deposit = id,
                    "a sent offer could be neither recorded nor cancelled; the watcher adopts it"
                );
            }
            Err(DepositError::Internal(e.context("recording a sent offer")))
        }
    }
}

/// [`send_and_record`] as a task the caller awaits: dropping the caller (a client that disconnects) does
/// not stop it, and a stop of the gateway waits for it ([`AppState`]'s `background`).
pub async fn spawn_send(
    state: &AppState,
    project: Arc<Project>,
    id: i64,
    sel: Selection,
    magic_token: String,
    on_failure: OnSendFailure,
    reply: Option<(IdempotencyKey, ReplyFn)>,
) -> Result<(OfferStarted, Option<String>), DepositError> {
    let task = send_and_record(state.clone(), project, id, sel, magic_token, on_failure, reply);
    state.background.spawn(task).await.map_err(|e| DepositError::Internal(anyhow::anyhow!("offer task: {e}")))?
}

/// The hosted page's submit: checks the payer's choice against the deposit's limits, marks the deposit as
/// sending (committed), has a bot send the offer outside any transaction and records it
/// ([`send_and_record`]). A second submit for the same deposit gets [`DepositError::NotPending`] and sends
/// nothing.
pub async fn start_offer(
    state: &AppState,
    project: &Project,
    deposit_id: i64,
    trade_url: &TradeUrl,
    game: Game,
    asset_ids: &[String],
) -> Result<OfferStarted, DepositError> {
    let dep = state.store.deposit(project.id, deposit_id).await?.ok_or(DepositError::NotFound)?;
    if dep.status != DepositStatus::Pending || dep.offer_id.is_some() {
        return Err(DepositError::NotPending);
    }
    // The fee frozen on the deposit at `create`: the one the page shows and the credit uses.
    let sel = select_items(state, project, trade_url, game, asset_ids, (dep.min_usd, dep.max_usd), dep.fee_ppm).await?;
    let mut tx = state.store.begin().await?;
    if !tx.begin_sending(dep.id, &offer_target(&sel), state.now()).await? {
        return Err(DepositError::NotPending);
    }
    tx.commit().await?;
    let project = Arc::new(project.clone());
    let token = trade_url.token.clone();
    let (offer, _) = spawn_send(state, project, dep.id, sel, token, OnSendFailure::Release, None).await?;
    Ok(offer)
}

/// How a merchant names a deposit: by the gateway's `transaction_id` or its own `order_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `transaction_id`.
    Transaction(i64),
    /// `order_id`.
    Order(String),
}

/// The project's deposit named by `lookup`.
pub async fn find(state: &AppState, project: &Project, lookup: &Lookup) -> Result<Option<Deposit>, StoreError> {
    match lookup {
        Lookup::Transaction(id) => state.store.deposit(project.id, *id).await,
        Lookup::Order(order) => state.store.deposit_by_order(project.id, order).await,
    }
}

/// Longest `order_id` accepted (the idempotency key limit).
pub const MAX_ORDER_ID_LEN: usize = crate::idempotency::MAX_KEY_LEN;

/// Whether an `order_id` is acceptable: 1–255 bytes of printable text.
pub fn valid_order_id(id: &str) -> bool {
    !id.trim().is_empty() && id.len() <= MAX_ORDER_ID_LEN && !id.chars().any(char::is_control)
}

/// Whether a merchant-supplied URL (result/success/fail override) is an absolute http(s) URL with a host,
/// parsed as the payment page and the dispatcher will parse it (a URL accepted here but not there would be
/// stored, then silently never followed).
pub fn valid_url(url: &str) -> bool {
    url.len() <= 2048
        && !url.chars().any(char::is_whitespace)
        && reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Unix seconds as ISO-8601 with microseconds (`2024-03-12T10:00:34.000000Z`), as `trade_offer_expiry_at`.
pub fn iso_micros(secs: i64) -> String {
    format!("{}.000000Z", wire::datetime(secs).replace(' ', "T"))
}

#[cfg(test)]
mod tests {
    use super::valid_url;

    #[test]
    fn override_urls_must_parse_with_a_host() {
        assert!(valid_url("https://shop.example/cb?order=1"));
        assert!(valid_url("http://127.0.0.1:9000/cb"));
        for bad in ["ftp://shop.example/cb", "http://", "https://shop example/cb", "http://[::1/cb", "javascript:x", ""]
        {
            assert!(!valid_url(bad), "{bad}");
        }
    }
}
