//! The `Steam` trait the gateway calls, and the simulator behind it.
//!
//! The simulator keeps trade offers in memory and advances them lazily on the shared clock: each
//! observation ([`Steam::offer`]) computes where the offer stands *now* from the partner's profile, so
//! hours and days pass as fast as the clock is moved. It models what a gateway must not be fooled by:
//! offers that stay active and expire, declines, escrow, invalid items and changed trade tokens, CS2 Trade
//! Protection (7 days) with reversals (trade status 12), and state flapping (an accepted offer observed
//! once as active again, 3 → 2 → 3, as Steam does under load).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::catalogue::Game;
use crate::enums::{OfferState, TradeStatus};
use crate::ids::{SteamId, TradeUrl};
use crate::users::{Asset, Simulation};

/// Unix seconds now, from the clock the gateway and the simulator share.
pub type NowFn = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How long an unanswered offer stays active, as on Steam.
pub const OFFER_EXPIRY_SECS: i64 = 14 * 86_400;
/// CS2 Trade Protection: a trade can be reversed for this long.
pub const TRADE_PROTECTION_SECS: i64 = 7 * 86_400;

/// Steam's id of a trade offer.
pub type OfferId = u64;

/// What can go wrong asking Steam.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SteamError {
    /// The partner's trade token is not the current one.
    #[error("invalid trade token")]
    InvalidToken,
    /// The partner cannot trade (ban, restriction).
    #[error("user cannot trade")]
    TradeBanned,
    /// An item is not in the partner's inventory, not tradable, or already in another offer.
    #[error("invalid items")]
    InvalidItems,
    /// No such offer.
    #[error("offer not found")]
    NotFound,
}

/// An offer to send: the bot asks the partner for these items (a deposit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOffer {
    /// The partner's trade URL.
    pub partner: TradeUrl,
    /// The game of the items.
    pub game: Game,
    /// Asset ids the partner gives.
    pub items_to_receive: Vec<u64>,
}

/// An offer as observed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Its id.
    pub id: OfferId,
    /// The partner.
    pub partner: SteamId,
    /// Where it stands.
    pub state: OfferState,
    /// The items asked for.
    pub items: Vec<Asset>,
    /// When it was sent.
    pub created_at: i64,
    /// When escrow ends, for offers in escrow.
    pub escrow_ends_at: Option<i64>,
    /// After acceptance: the trade's status (`TradeProtectionRollback` once reversed).
    pub trade_status: Option<TradeStatus>,
}

/// How a simulated user behaves with offers sent to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Accepts this many seconds after the offer is sent.
    AcceptAfter(i64),
    /// Declines a few seconds after.
    Decline,
    /// Never answers: the offer expires after 14 days.
    NeverAnswer,
    /// Accepts, then reverses the trade under Trade Protection this long after accepting.
    ReverseAfter {
        /// Seconds until acceptance.
        accept_after: i64,
        /// Seconds from acceptance to reversal (within the protection period).
        reverse_after: i64,
    },
    /// Cannot trade at all.
    TradeBanned,
    /// Accepts, but the trade is held in escrow for this many days first.
    Escrow(u32),
    /// Answers nothing by itself: an operator accepts, declines or reverses.
    Manual,
}

/// The default: a payer who accepts 10 seconds after the offer arrives.
pub const DEFAULT_PROFILE: Profile = Profile::AcceptAfter(10);

/// What the gateway needs from Steam. The simulator implements it; a real Steam client would too.
#[async_trait]
pub trait Steam: Send + Sync + std::fmt::Debug {
    /// A user's tradable-or-not items in a game (context 2, and 16 for protected CS2 items).
    async fn inventory(&self, user: SteamId, game: Game) -> Result<Vec<Asset>, SteamError>;
    /// Days a trade with this partner would be held in escrow (checked before sending).
    async fn escrow_days(&self, partner: &TradeUrl) -> Result<u32, SteamError>;
    /// Sends an offer from one of the gateway's bots.
    async fn send_offer(&self, offer: NewOffer) -> Result<OfferId, SteamError>;
    /// The offer as Steam shows it now (may flap; never trust one observation).
    async fn offer(&self, id: OfferId) -> Result<Offer, SteamError>;
    /// Cancels an offer that is still active (the gateway's own timeout).
    async fn cancel_offer(&self, id: OfferId) -> Result<(), SteamError>;
}

#[derive(Debug, Clone)]
struct SimOffer {
    id: OfferId,
    partner: SteamId,
    items: Vec<Asset>,
    created_at: i64,
    profile: Profile,
    /// Set by the operator surface or cancellation; overrides the profile.
    decided: Option<(OfferState, i64)>,
    reversed_at: Option<i64>,
    flap_left: bool,
}

#[derive(Debug, Default)]
struct World {
    offers: HashMap<OfferId, SimOffer>,
    profiles: HashMap<SteamId, Profile>,
    tokens: HashMap<SteamId, String>,
    /// Items that left users' inventories for good (accepted and not reversed), or are held by an offer.
    gone: HashSet<(SteamId, u64)>,
    next_id: OfferId,
}

/// The simulated Steam.
pub struct Simulator {
    sim: Simulation,
    now: NowFn,
    world: Mutex<World>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Simulator")
    }
}

impl Simulator {
    /// A simulator for the world of `seed`, on the given clock.
    pub fn new(seed: u64, now: NowFn) -> Self {
        let world = World { next_id: 7_000_000_000, ..World::default() };
        Self { sim: Simulation::new(seed), now, world: Mutex::new(world) }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets how a user behaves with offers sent from now on.
    pub fn set_profile(&self, user: SteamId, profile: Profile) {
        self.world().profiles.insert(user, profile);
    }

    /// The user's current trade token.
    pub fn trade_token(&self, user: SteamId) -> String {
        self.world().tokens.get(&user).cloned().unwrap_or_else(|| self.sim.trade_token(user))
    }

    /// The user regenerates their trade URL: the old token stops working.
    pub fn regenerate_token(&self, user: SteamId) -> String {
        let token: String = self.sim.trade_token(user).chars().rev().collect();
        let token = if token == self.sim.trade_token(user) { format!("{}x", &token[..7]) } else { token };
        self.world().tokens.insert(user, token.clone());
        token
    }

    /// Operator: the payer accepts now.
    pub fn accept(&self, id: OfferId) -> Result<(), SteamError> {
        self.decide(id, OfferState::Accepted)
    }

    /// Operator: the payer declines now.
    pub fn decline(&self, id: OfferId) -> Result<(), SteamError> {
        self.decide(id, OfferState::Declined)
    }

    /// Operator: the payer reverses an accepted trade under Trade Protection.
    pub fn reverse(&self, id: OfferId) -> Result<(), SteamError> {
        let now = (self.now)();
        let mut world = self.world();
        let offer = world.offers.get(&id).cloned().ok_or(SteamError::NotFound)?;
        let (state, _) = observe(&offer, now);
        if state != OfferState::Accepted || offer.reversed_at.is_some() {
            return Err(SteamError::NotFound);
        }
        world.offers.get_mut(&id).expect("exists").reversed_at = Some(now);
        for item in &offer.items {
            world.gone.remove(&(offer.partner, item.asset_id));
        }
        Ok(())
    }

    fn decide(&self, id: OfferId, state: OfferState) -> Result<(), SteamError> {
        let now = (self.now)();
        let mut world = self.world();
        let offer = world.offers.get_mut(&id).ok_or(SteamError::NotFound)?;
        if observe(offer, now).0 != OfferState::Active {
            return Err(SteamError::NotFound);
        }
        offer.decided = Some((state, now));
        let release = state != OfferState::Accepted;
        let (partner, items) = (offer.partner, offer.items.clone());
        if release {
            for item in items {
                world.gone.remove(&(partner, item.asset_id));
            }
        }
        Ok(())
    }
}

/// Where an offer stands at `now`, and when it was accepted (if it was).
fn observe(o: &SimOffer, now: i64) -> (OfferState, Option<i64>) {
    if let Some((state, at)) = o.decided {
        return (state, (state == OfferState::Accepted).then_some(at));
    }
    let expired = now >= o.created_at + OFFER_EXPIRY_SECS;
    let accept_at = match o.profile {
        Profile::AcceptAfter(s) | Profile::ReverseAfter { accept_after: s, .. } => Some(o.created_at + s),
        Profile::Escrow(days) => Some(o.created_at + 5 + i64::from(days) * 86_400),
        Profile::Decline => {
            return if now >= o.created_at + 3 { (OfferState::Declined, None) } else { (OfferState::Active, None) };
        }
        Profile::NeverAnswer | Profile::Manual | Profile::TradeBanned => None,
    };
    match accept_at {
        Some(at) if now >= at => (OfferState::Accepted, Some(at)),
        _ if matches!(o.profile, Profile::Escrow(_)) && now >= o.created_at + 5 => (OfferState::InEscrow, None),
        _ if expired => (OfferState::Expired, None),
        _ => (OfferState::Active, None),
    }
}

#[async_trait]
impl Steam for Simulator {
    async fn inventory(&self, user: SteamId, game: Game) -> Result<Vec<Asset>, SteamError> {
        let world = self.world();
        let mut items = self.sim.inventory(user, game);
        items.retain(|a| !world.gone.contains(&(user, a.asset_id)));
        Ok(items)
    }

    async fn escrow_days(&self, partner: &TradeUrl) -> Result<u32, SteamError> {
        match self.world().profiles.get(&partner.steam_id) {
            Some(Profile::Escrow(days)) => Ok(*days),
            Some(Profile::TradeBanned) => Err(SteamError::TradeBanned),
            _ => Ok(0),
        }
    }

    async fn send_offer(&self, offer: NewOffer) -> Result<OfferId, SteamError> {
        let user = offer.partner.steam_id;
        if offer.partner.token != self.trade_token(user) {
            return Err(SteamError::InvalidToken);
        }
        let now = (self.now)();
        let inventory = self.inventory(user, offer.game).await?;
        let mut world = self.world();
        let profile = world.profiles.get(&user).copied().unwrap_or(DEFAULT_PROFILE);
        if profile == Profile::TradeBanned {
            return Err(SteamError::TradeBanned);
        }
        let mut items = Vec::new();
        for id in &offer.items_to_receive {
            let asset = inventory.iter().find(|a| a.asset_id == *id && a.tradable).ok_or(SteamError::InvalidItems)?;
            if items.iter().any(|a: &Asset| a.asset_id == *id) {
                return Err(SteamError::InvalidItems);
            }
            items.push(asset.clone());
        }
        if items.is_empty() {
            return Err(SteamError::InvalidItems);
        }
        for item in &items {
            world.gone.insert((user, item.asset_id));
        }
        world.next_id += 1;
        let id = world.next_id;
        // Every fifth offer flaps once after acceptance, deterministically.
        let flap_left = id.is_multiple_of(5);
        world.offers.insert(
            id,
            SimOffer {
                id,
                partner: user,
                items,
                created_at: now,
                profile,
                decided: None,
                reversed_at: None,
                flap_left,
            },
        );
        Ok(id)
    }

    async fn offer(&self, id: OfferId) -> Result<Offer, SteamError> {
        let now = (self.now)();
        let mut world = self.world();
        let o = world.offers.get_mut(&id).ok_or(SteamError::NotFound)?;
        let (mut state, accepted_at) = observe(o, now);
        if let (Profile::ReverseAfter { reverse_after, .. }, Some(at)) = (o.profile, accepted_at)
            && o.reversed_at.is_none()
            && now >= at + reverse_after
            && reverse_after < TRADE_PROTECTION_SECS
        {
            o.reversed_at = Some(at + reverse_after);
        }
        if state == OfferState::Accepted && o.flap_left {
            o.flap_left = false;
            state = OfferState::Active;
        }
        let trade_status = accepted_at.map(|_| {
            if o.reversed_at.is_some() { TradeStatus::TradeProtectionRollback } else { TradeStatus::Complete }
        });
        let snapshot = Offer {
            id: o.id,
            partner: o.partner,
            state,
            items: o.items.clone(),
            created_at: o.created_at,
            escrow_ends_at: match o.profile {
                Profile::Escrow(days) => Some(o.created_at + 5 + i64::from(days) * 86_400),
                _ => None,
            },
            trade_status,
        };
        let (partner, items, reversed, failed) =
            (o.partner, o.items.clone(), o.reversed_at.is_some(), state.is_failed());
        if reversed || failed {
            for item in items {
                world.gone.remove(&(partner, item.asset_id));
            }
        }
        Ok(snapshot)
    }

    async fn cancel_offer(&self, id: OfferId) -> Result<(), SteamError> {
        self.decide(id, OfferState::Canceled)
    }
}

#[cfg(test)]
mod tests;
