//! The simulator's operator surface and its persistence.
//!
//! # Why
//! With the embedded simulator standing in for Steam, somebody has to play the payer in a demo: accept or
//! decline an offer, reverse a trade under Trade Protection, choose how a simulated user behaves, and let
//! days pass (an 8-day hold). These routes do that over HTTP, and `skingate sim accept|decline|reverse|
//! profile|advance` calls them. They are on when `sim_admin` is true (the demo default) and must be turned
//! off in production: they answer 404 then. Every call needs `Authorization: Bearer <token>`, a random token
//! kept in the database (`meta.sim_admin_token`), which the CLI reads from there.
//!
//! # Persistence
//! The simulator keeps offers, profiles and moved items in memory. Each offer is saved as a record of its
//! own (table `sim_offers`) by [`AppState::steam_sync`], which every flow calls before it commits what it
//! learnt from Steam (an offer id recorded, an acceptance credited, a cancellation refunded): after a crash
//! the simulator knows every trade the gateway acted on, as Steam would. The rest (profiles, tokens, the
//! offer id sequence) is a small snapshot in `meta.sim_state`, written by [`run_saver`] whenever it changed
//! (checked every `SAVE_EVERY`, never more than [`SAVE_SHARE`] of the time) together with the offers changed
//! by a mere look (a flap spent, a reversal due), and once more at shutdown ([`save_now`]). [`restore`] loads
//! both at start. Items that left inventories are not saved: they follow from the offers.
//!
//! # Routes
//! - `GET  /admin/sim/offers/{id}`: the offer as Steam shows it now (JSON);
//! - `POST /admin/sim/offers/{id}/{accept|decline|reverse|reverse_supplier}`;
//! - `POST /admin/sim/users/{steam_id}/profile` with a JSON profile, e.g. `{"kind":"decline"}`,
//!   `{"kind":"accept_after","secs":5}`, `{"kind":"reverse_after","accept_after":5,"reverse_after":60}`;
//! - `POST /admin/clock/advance` with `{"secs": N}`: moves the gateway's (and simulator's) clock forward
//!   (only when the server runs on an adjustable clock, as `serve` does while `sim_admin` is on).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use skingate_steam::SteamId;
use skingate_steam::sim::{Irreversible, Party, Profile, Simulator, SteamError};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// `meta` key of the saved simulator state.
pub const SIM_STATE_KEY: &str = "sim_state";
/// `meta` key of the admin routes' bearer token.
pub const ADMIN_TOKEN_KEY: &str = "sim_admin_token";
/// How often the saver checks for changes.
const SAVE_EVERY: Duration = Duration::from_millis(500);

/// The admin routes (merged into the main router when `sim_admin` is on).
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/admin/sim/offers/{id}", get(offer))
        .route("/admin/sim/offers/{id}/{action}", post(act))
        .route("/admin/sim/users/{steam_id}/profile", post(set_profile))
        .route("/admin/clock/advance", post(advance))
}

/// The admin token, created on first use.
pub async fn admin_token(store: &dyn skingate_store::Store) -> Result<String, skingate_store::StoreError> {
    if let Some(t) = store.meta(ADMIN_TOKEN_KEY).await? {
        return Ok(t);
    }
    let token = crate::app::new_secret();
    store.set_meta(ADMIN_TOKEN_KEY, &token).await?;
    Ok(token)
}

/// Loads the saved simulator state: the snapshot (profiles, tokens, the offer id sequence) and every saved
/// offer record. A snapshot that does not parse is logged and ignored: the world then starts from its seed
/// with the saved offers, as on a first start. A saved offer record that does not parse refuses the start
/// (`StoreError::Corrupt`). Offers only an old snapshot held are saved as records at once. Either way the
/// simulator then skips every offer id the gateway has recorded (see [`skip_recorded_ids`]).
pub async fn restore(state: &AppState) -> Result<(), skingate_store::StoreError> {
    let Some(sim) = &state.sim else { return Ok(()) };
    let snapshot = state.store.meta(SIM_STATE_KEY).await?;
    let offers = state.store.sim_offers().await?;
    let restored = match sim.restore(snapshot.as_deref(), offers.iter().map(String::as_str)) {
        Err(e) => {
            tracing::error!(error = %e, "saved simulator state does not parse; starting from the seed");
            sim.restore(None, offers.iter().map(String::as_str))
        }
        ok => ok,
    };
    match restored {
        Ok(0) => {}
        // A lost record could be a credited trade: its items would go back to the payer, who could deposit
        // them again. Better not to start than to run on a Steam that forgot trades.
        Ok(skipped) => {
            return Err(skingate_store::StoreError::Corrupt(format!(
                "{skipped} saved simulator offer(s) in sim_offers do not parse"
            )));
        }
        Err(e) => tracing::error!(error = %e, "saved simulator state does not parse"),
    }
    // Offers an old snapshot held get their records now, before anything can drop them.
    state.steam_sync().await?;
    skip_recorded_ids(state).await
}

/// Makes the simulator skip every offer id the gateway has recorded: were its records ever behind the
/// gateway's (a database restored from an older backup), it would otherwise give their ids to new offers and
/// a watcher would read a stranger's trade under a recorded id.
pub async fn skip_recorded_ids(state: &AppState) -> Result<(), skingate_store::StoreError> {
    let Some(sim) = &state.sim else { return Ok(()) };
    if let Some(max) = state.store.max_recorded_offer_id().await? {
        sim.skip_ids_through(max);
    }
    Ok(())
}

/// Saves the offer records changed since the last save (see [`AppState::steam_sync`]) and the snapshot if the
/// simulator changed since `saved`; returns the snapshot version now on disk.
pub async fn save_now(state: &AppState, saved: u64) -> u64 {
    let Some(sim) = &state.sim else { return saved };
    if let Err(e) = state.steam_sync().await {
        tracing::warn!(error = %e, "saving the simulator's offers failed; retrying");
    }
    if sim.version() == saved {
        return saved;
    }
    match write_snapshot(state, sim).await {
        Ok(version) => version,
        Err(e) => {
            tracing::warn!(error = %e, "saving the simulator state failed; retrying");
            saved
        }
    }
}

/// Writes the snapshot, one save at a time from taking it to storing it (`AppState::sim_saving`), so an older
/// snapshot (the saver's) never lands after a newer one (an operator's profile, saved before the answer);
/// returns its version.
async fn write_snapshot(state: &AppState, sim: &Simulator) -> Result<u64, skingate_store::StoreError> {
    let _one = state.sim_saving.lock().await;
    let (version, json) = sim.snapshot();
    state.store.set_meta(SIM_STATE_KEY, &json).await?;
    Ok(version)
}

/// At most this share of the time goes to saving snapshots: after a save that took `t`, the next waits at
/// least `t / SAVE_SHARE`.
pub const SAVE_SHARE: f64 = 0.05;

/// Saves the simulator's state when it changes, until `shutdown`, then once more.
pub async fn run_saver(state: AppState, shutdown: CancellationToken, mut saved: u64) -> u64 {
    let mut wait = SAVE_EVERY;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return save_now(&state, saved).await,
            () = tokio::time::sleep(wait) => {
                let started = std::time::Instant::now();
                saved = save_now(&state, saved).await;
                wait = SAVE_EVERY.max(started.elapsed().div_f64(SAVE_SHARE));
            }
        }
    }
}

async fn authorized(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let sent = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let token = admin_token(state.store.as_ref()).await.map_err(|e| internal(&e))?;
    let ok = sent.is_some_and(|s| subtle::ConstantTimeEq::ct_eq(s.as_bytes(), token.as_bytes()).into());
    if ok { Ok(()) } else { Err((StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthorized"}))).into_response()) }
}

fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "simulator admin route failed");
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "internal_error"}))).into_response()
}

fn steam_error(e: SteamError) -> Response {
    let code = if e == SteamError::NotFound { StatusCode::NOT_FOUND } else { StatusCode::CONFLICT };
    (code, Json(json!({"error": e.to_string()}))).into_response()
}

/// 404 only for an offer that does not exist; a trade the rules keep from being reversed is a 409 saying which.
fn irreversible(e: Irreversible) -> Response {
    let code = if e == Irreversible::NotFound { StatusCode::NOT_FOUND } else { StatusCode::CONFLICT };
    (code, Json(json!({"error": e.to_string()}))).into_response()
}

fn no_sim() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "no simulator"}))).into_response()
}

async fn offer(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    if let Err(r) = authorized(&state, &headers).await {
        return r;
    }
    match state.steam.offer(id).await {
        Ok(o) => Json(json!({
            "id": o.id.to_string(), "partner": o.partner.to_string(), "state": i32::from(o.state),
            "state_name": format!("{:?}", o.state), "bot": {"steam_id": o.bot.steam_id.to_string(), "name": o.bot.name},
            "items_to_receive": o.items, "items_to_give": o.items_to_give, "created_at": o.created_at,
            "expires_at": o.expires_at, "escrow_ends_at": o.escrow_ends_at,
            "trade_status": o.trade_status.map(i32::from), "reversed_by": o.reversed_by,
        }))
        .into_response(),
        Err(e) => steam_error(e),
    }
}

async fn act(State(state): State<AppState>, headers: HeaderMap, Path((id, action)): Path<(u64, String)>) -> Response {
    if let Err(r) = authorized(&state, &headers).await {
        return r;
    }
    let Some(sim) = &state.sim else { return no_sim() };
    let result = match action.as_str() {
        "accept" => sim.accept(id).map_err(steam_error),
        "decline" => sim.decline(id).map_err(steam_error),
        "reverse" => sim.reverse_by(id, Party::Partner).map_err(irreversible),
        "reverse_supplier" => sim.reverse_by(id, Party::Bot).map_err(irreversible),
        _ => return (StatusCode::NOT_FOUND, Json(json!({"error": "unknown action"}))).into_response(),
    };
    // Saved before answering: an operator's action survives a crash like anything else Steam did.
    if result.is_ok()
        && let Err(e) = state.steam_sync().await
    {
        return internal(&e);
    }
    match result {
        Ok(()) => Json(json!({"ok": true, "offer": id.to_string(), "action": action})).into_response(),
        // Only an active offer can be accepted or declined: one that exists says where it stands instead.
        Err(r) if r.status() == StatusCode::NOT_FOUND && matches!(action.as_str(), "accept" | "decline") => {
            match state.steam.offer(id).await {
                Ok(o) => {
                    let why = format!("the offer is no longer active (state {:?})", o.state);
                    (StatusCode::CONFLICT, Json(json!({"error": why}))).into_response()
                }
                Err(_) => r,
            }
        }
        Err(r) => r,
    }
}

async fn set_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(steam_id): Path<String>,
    Json(profile): Json<Profile>,
) -> Response {
    if let Err(r) = authorized(&state, &headers).await {
        return r;
    }
    let Some(sim) = &state.sim else { return no_sim() };
    let Ok(user) = steam_id.parse::<SteamId>() else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "not an individual SteamID64"}))).into_response();
    };
    if let Err(why) = profile.check() {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": why}))).into_response();
    }
    sim.set_profile(user, profile);
    // Saved before answering, like the offer actions: a crash must not undo what the operator was told is done
    // (the saver's next tick would come up to half a second later).
    if let Err(e) = write_snapshot(&state, sim).await {
        return internal(&e);
    }
    Json(json!({"ok": true, "steam_id": user.to_string(), "profile": profile})).into_response()
}

/// The most one `clock/advance` may move the clock: far beyond any hold, offer expiry or retry schedule, and
/// nowhere near overflowing a Unix timestamp.
pub const MAX_ADVANCE_SECS: i64 = 10 * 365 * 86_400;

#[derive(serde::Deserialize)]
struct Advance {
    secs: i64,
}

async fn advance(State(state): State<AppState>, headers: HeaderMap, Json(body): Json<Advance>) -> Response {
    if let Err(r) = authorized(&state, &headers).await {
        return r;
    }
    if body.secs <= 0 || body.secs > MAX_ADVANCE_SECS {
        let error = format!("secs must be between 1 and {MAX_ADVANCE_SECS} (ten years)");
        return (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response();
    }
    // One advance at a time, so the offset kept is always the latest (two at once could save them in the
    // wrong order, and a restart would then send the clock back).
    static ADVANCING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ADVANCING.lock().await;
    // The new offset is kept before the clock moves, so a restart never sends the demo back in time: saved
    // after, a watcher could act on the new time (fail an expired offer) and a crash before the save would
    // bring that offer back to life. A crash between the two only moves the clock at the next start.
    if let Some(offset) = state.clock.offset()
        && let Err(e) =
            state.store.set_meta(crate::clock::OFFSET_KEY, &offset.saturating_add(body.secs).to_string()).await
    {
        tracing::error!(error = %e, "could not keep the demo clock's offset");
        let error = "the clock did not move: its offset could not be saved";
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": error}))).into_response();
    }
    if !state.clock.advance(body.secs) {
        return (StatusCode::CONFLICT, Json(json!({"error": "this server runs on the system clock"}))).into_response();
    }
    state.wake_watchers();
    Json(json!({"ok": true, "now": state.now()})).into_response()
}
