//! Test mode: a project flag under which magic trade tokens choose what the simulated payer does, so a
//! merchant can drive every outcome of its integration without a Steam account.
//!
//! | trade token | the simulated payer… | deposit ends |
//! |---|---|---|
//! | `accept__` | accepts 5 s after the offer | CS2: `in_hold` (then `success` when the hold ends); Dota 2, Rust: `success` |
//! | `hold_ok_` | same as `accept__` (named for readability of CS2 tests) | `in_hold` → `success` |
//! | `decline_` | declines 3 s after the offer | `fail` |
//! | `timeout_` | never answers; the offer expires after 14 days | `fail` |
//! | `reverse_` | accepts after 5 s, reverses the trade an hour later (CS2 only: Trade Protection) | `in_hold` → `fail` (or `hold_approved` → `hold_returned`) |
//! | `badtoken` | (Steam refuses the token) | the call fails with `invalid_trade_token` |
//!
//! Any SteamID64 works with them. Other tokens behave as in normal mode (the simulated user's real token is
//! required). In test mode the hold can be ended at once with the `test_complete_hold` method. Outside test
//! mode the magic tokens mean nothing.

use skingate_core::project::Project;
use skingate_steam::sim::Profile;
use skingate_steam::{SteamId, TradeUrl};

use crate::state::AppState;

/// The magic tokens and the behaviour each stands for; `None`: Steam refuses the token.
pub const MAGIC_TOKENS: [(&str, Option<Profile>); 6] = [
    ("accept__", Some(Profile::AcceptAfter { secs: 5 })),
    ("hold_ok_", Some(Profile::AcceptAfter { secs: 5 })),
    ("decline_", Some(Profile::Decline)),
    ("timeout_", Some(Profile::NeverAnswer)),
    ("reverse_", Some(Profile::ReverseAfter { accept_after: 5, reverse_after: 3_600 })),
    ("badtoken", None),
];

/// The behaviour a token stands for, when the project is in test mode and the token is magic.
fn magic(project: &Project, token: &str) -> Option<Option<Profile>> {
    if !project.settings.test_mode {
        return None;
    }
    MAGIC_TOKENS.iter().find(|(t, _)| *t == token).map(|(_, p)| *p)
}

/// The trade URL to use with Steam: in test mode a magic token (other than `badtoken`) stands for the
/// simulated user's real one.
pub fn resolve_token(state: &AppState, project: &Project, url: &TradeUrl) -> TradeUrl {
    match (magic(project, &url.token), &state.sim) {
        (Some(Some(_)), Some(sim)) => TradeUrl { steam_id: url.steam_id, token: sim.trade_token(url.steam_id) },
        _ => url.clone(),
    }
}

/// Before an offer is sent: in test mode with a magic token, the simulated payer gets that behaviour.
pub fn prepare_payer(state: &AppState, project: &Project, user: SteamId, token: &str) {
    if let (Some(Some(profile)), Some(sim)) = (magic(project, token), &state.sim) {
        sim.set_profile(user, profile);
    }
}
