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
use serde::{Deserialize, Serialize};

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
    /// Steam failed to create the offer (overloaded, bot session lost); trying again later may work.
    #[error("Steam could not create the offer")]
    Unavailable,
}

/// Why an operator's reversal was refused: each rule has its own answer, so `skingate sim reverse` says which
/// one applied instead of a bare "not found" for a trade that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Irreversible {
    /// No such offer.
    #[error("offer not found")]
    NotFound,
    /// Only an accepted trade can be reversed.
    #[error("the offer is not an accepted trade")]
    NotAccepted,
    /// A trade is reversed at most once.
    #[error("the trade was already reversed")]
    AlreadyReversed,
    /// Trade Protection lasts seven days from acceptance.
    #[error("the trade's Trade Protection period is over")]
    ProtectionOver,
    /// Trade Protection covers CS2 items only.
    #[error("Trade Protection covers CS2 trades only")]
    NotProtected,
}

/// Which side of a trade acted (who reversed it under Trade Protection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The user the gateway traded with.
    Partner,
    /// The gateway's own bot (for purchases: the supplier side).
    Bot,
}

/// One of the gateway's trading accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bot {
    /// Its SteamID64.
    pub steam_id: SteamId,
    /// Its profile name, shown to payers.
    pub name: String,
}

/// An offer to send from one of the gateway's bots: it asks the partner for `items_to_receive` (a deposit)
/// and/or gives `items_to_give` (a market purchase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOffer {
    /// The partner's trade URL.
    pub partner: TradeUrl,
    /// The game of the items.
    pub game: Game,
    /// Asset ids the partner gives.
    pub items_to_receive: Vec<u64>,
    /// Items the bot gives (its own stock: the gateway, not Steam, keeps the bots' inventories).
    pub items_to_give: Vec<Asset>,
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
    /// The items given.
    pub items_to_give: Vec<Asset>,
    /// The bot that sent it.
    pub bot: Bot,
    /// When it was sent.
    pub created_at: i64,
    /// When escrow ends, for offers in escrow.
    pub escrow_ends_at: Option<i64>,
    /// When an unanswered offer expires.
    pub expires_at: i64,
    /// After acceptance: the trade's status (`TradeProtectionRollback` once reversed).
    pub trade_status: Option<TradeStatus>,
    /// Who reversed the trade, once it is reversed.
    pub reversed_by: Option<Party>,
}

/// How a simulated user behaves with offers sent to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Profile {
    /// Accepts this many seconds after the offer is sent.
    AcceptAfter {
        /// Seconds until acceptance.
        secs: i64,
    },
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
    Escrow {
        /// Escrow length.
        days: u32,
    },
    /// Answers nothing by itself: an operator accepts, declines or reverses.
    Manual,
    /// Steam fails to create any offer to this user (`trade_create_error`).
    SendFails,
    /// Counters the offer a few seconds after it arrives (treated as declined).
    Counter,
}

impl Profile {
    /// Whether the profile describes something Steam can do: nothing happens before the offer is sent or
    /// before the trade is accepted, a reversal falls within Trade Protection, an escrow hold lasts 1 to 15
    /// days. The operator surface refuses the rest (they would make impossible histories).
    pub fn check(self) -> Result<(), &'static str> {
        match self {
            Profile::AcceptAfter { secs } if secs < 0 => Err("accept_after must not be negative"),
            Profile::ReverseAfter { accept_after, .. } if accept_after < 0 => Err("accept_after must not be negative"),
            Profile::ReverseAfter { reverse_after, .. } if !(0..TRADE_PROTECTION_SECS).contains(&reverse_after) => {
                Err("reverse_after must be within Trade Protection (0 to 7 days)")
            }
            Profile::Escrow { days } if !(1..=15).contains(&days) => Err("escrow lasts 1 to 15 days"),
            _ => Ok(()),
        }
    }
}

/// The default: a payer who accepts 10 seconds after the offer arrives.
pub const DEFAULT_PROFILE: Profile = Profile::AcceptAfter { secs: 10 };

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
    /// The offers the gateway's bots sent to `partner` at or after `since` (clock seconds), newest first.
    /// How the gateway finds an offer whose id it could not record (a crash or a failed write between
    /// Steam's answer and the commit) instead of sending a second one; a real client reads the bots' sent
    /// offers (`IEconService/GetTradeOffers` with `get_sent_offers` and `time_historical_cutoff`).
    async fn sent_offers(&self, partner: SteamId, since: i64) -> Result<Vec<OfferId>, SteamError>;
}

/// A simulated offer, saved as JSON (see [`Simulator::take_unsaved_offers`]): a field added later needs
/// `#[serde(default)]`, or saved records stop parsing and the gateway refuses to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimOffer {
    id: OfferId,
    partner: SteamId,
    items: Vec<Asset>,
    items_to_give: Vec<Asset>,
    bot: usize,
    created_at: i64,
    profile: Profile,
    /// Set by the operator surface or cancellation; overrides the profile.
    decided: Option<(OfferState, i64)>,
    reversed: Option<(Party, i64)>,
    flap_left: bool,
    /// The partner's items went back to their inventory (the offer failed or was reversed). Once only: a
    /// later look at this offer must not hand back items a newer offer holds by then.
    #[serde(default)]
    released: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct World {
    /// Kept apart from the snapshot, one durable record per offer (see [`Simulator::take_unsaved_offers`]);
    /// still read from snapshots written before that.
    #[serde(with = "as_pairs", default, skip_serializing)]
    offers: HashMap<OfferId, SimOffer>,
    #[serde(with = "as_pairs")]
    profiles: HashMap<SteamId, Profile>,
    #[serde(with = "as_pairs")]
    tokens: HashMap<SteamId, String>,
    /// Items that left users' inventories for good (accepted and not reversed), or are held by an offer:
    /// exactly the items of the offers not released, so it is rebuilt from them on restore, never saved.
    #[serde(skip)]
    gone: HashSet<(SteamId, u64)>,
    next_id: OfferId,
    /// Bumped on every change, so a saver knows when a new snapshot is worth writing.
    #[serde(skip)]
    version: u64,
    /// Offers changed since their records were last taken for saving.
    #[serde(skip)]
    changed: HashSet<OfferId>,
}

impl SimOffer {
    /// Whether the trade is under Trade Protection, which covers CS2 items only: a Dota 2 or Rust trade
    /// cannot be reversed.
    fn protected(&self) -> bool {
        let mut items = self.items.iter().chain(&self.items_to_give).peekable();
        items.peek().is_some() && items.all(|a| a.game == Game::Cs2)
    }
}

impl World {
    /// Marks every offer that has ended without a trade (failed, or reversed) as released, and rebuilds `gone`
    /// from the offers still holding their items (live or accepted). A snapshot from before `released`
    /// existed reads `false` for offers whose items were given back long ago (and perhaps taken by a newer
    /// offer since): settled here, a later look at them cannot release those items again.
    fn settle_releases(&mut self, now: i64) {
        for o in self.offers.values_mut() {
            if !o.released && (o.reversed.is_some() || observe(o, now).0.is_failed()) {
                o.released = true;
                self.changed.insert(o.id);
            }
        }
        self.gone = self
            .offers
            .values()
            .filter(|o| !o.released)
            .flat_map(|o| o.items.iter().map(move |a| (o.partner, a.asset_id)))
            .collect();
    }

    /// Records that an offer changed: for the saver's snapshot and for its own durable record.
    fn touch(&mut self, id: OfferId) {
        self.version += 1;
        self.changed.insert(id);
    }

    /// Gives an offer's items back to its partner, once (see [`SimOffer::released`]).
    fn release(&mut self, id: OfferId) {
        let Some(offer) = self.offers.get_mut(&id) else { return };
        if std::mem::replace(&mut offer.released, true) {
            return;
        }
        self.changed.insert(id);
        let (partner, items) = (offer.partner, offer.items.clone());
        for item in items {
            self.gone.remove(&(partner, item.asset_id));
        }
    }
}

/// JSON object keys must be strings; maps with other keys are stored as lists of pairs.
mod as_pairs {
    use std::collections::HashMap;
    use std::hash::Hash;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, K: Serialize, V: Serialize>(m: &HashMap<K, V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, D, K, V>(d: D) -> Result<HashMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Eq + Hash,
        V: Deserialize<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Called with an offer's id whenever it is sent or an operator action changes it, so watchers need not
/// wait for a poll.
pub type ChangeListener = Arc<dyn Fn(OfferId) + Send + Sync>;

/// The names of the simulated bots.
const BOT_NAMES: [&str; 4] = ["Dragonfly", "Kestrel", "Marten", "Osprey"];

/// The simulated Steam.
pub struct Simulator {
    sim: Simulation,
    now: NowFn,
    world: Mutex<World>,
    bots: Vec<Bot>,
    listeners: Mutex<Vec<ChangeListener>>,
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
        let bots = BOT_NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| Bot {
                steam_id: SteamId::from_account_id(1_430_000_000 + i as u64).expect("valid account id"),
                name: (*name).to_owned(),
            })
            .collect();
        Self { sim: Simulation::new(seed), now, world: Mutex::new(world), bots, listeners: Mutex::new(Vec::new()) }
    }

    /// The gateway's bots.
    pub fn bots(&self) -> &[Bot] {
        &self.bots
    }

    /// The deterministic world (tokens, starting inventories) behind this simulator.
    pub fn simulation(&self) -> &Simulation {
        &self.sim
    }

    /// Adds a function told about sent offers and operator-driven changes (the deposit and purchase
    /// watchers each register one).
    pub fn add_listener(&self, listener: ChangeListener) {
        self.listeners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(listener);
    }

    fn changed(&self, id: OfferId) {
        let listeners = self.listeners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for l in listeners {
            l(id);
        }
    }

    /// The simulator's mutable state as JSON, with its change counter: saved by the gateway so profiles,
    /// tokens and the offer id sequence survive a restart (the starting world follows from the seed anyway).
    /// Offers are not in it: each is saved as a record of its own (see [`Simulator::take_unsaved_offers`]).
    pub fn snapshot(&self) -> (u64, String) {
        let world = self.world();
        (world.version, serde_json::to_string(&*world).expect("simulator state serializes"))
    }

    /// The offers changed since the last call, each as its whole JSON record, for the gateway to save
    /// before it commits anything it learnt from them: Steam never forgets a trade, so neither may the
    /// simulator after a crash (it had forgotten trades the gateway had credited, and the payer could
    /// deposit the same items again). Saved records are read back by [`Simulator::restore`].
    pub fn take_unsaved_offers(&self) -> Vec<(OfferId, String)> {
        let mut world = self.world();
        let ids: Vec<OfferId> = world.changed.drain().collect();
        let mut records: Vec<(OfferId, String)> = ids
            .into_iter()
            .filter_map(|id| {
                let offer = world.offers.get(&id)?;
                Some((id, serde_json::to_string(offer).expect("simulator offer serializes")))
            })
            .collect();
        records.sort_unstable_by_key(|(id, _)| *id);
        records
    }

    /// Marks offers whose records could not be saved as changed again, so the next save retries them.
    pub fn unsaved(&self, ids: impl IntoIterator<Item = OfferId>) {
        let mut world = self.world();
        for id in ids {
            world.changed.insert(id);
        }
    }

    /// Replaces the mutable state with a saved [`Simulator::snapshot`] (if any) and the saved offer records
    /// (newer than any offer an old snapshot holds). Records that do not parse are skipped and counted.
    pub fn restore<'a>(
        &self,
        snapshot: Option<&str>,
        offers: impl IntoIterator<Item = &'a str>,
    ) -> Result<usize, serde_json::Error> {
        let mut restored: World = match snapshot {
            Some(json) => serde_json::from_str(json)?,
            None => World { next_id: self.world().next_id, ..World::default() },
        };
        // Offers only an old snapshot holds have no record yet: they are saved as changed, or the next
        // snapshot (which holds no offers) would drop them.
        restored.changed = restored.offers.keys().copied().collect();
        let mut skipped = 0;
        for json in offers {
            match serde_json::from_str::<SimOffer>(json) {
                Ok(offer) => {
                    restored.next_id = restored.next_id.max(offer.id);
                    restored.changed.remove(&offer.id);
                    restored.offers.insert(offer.id, offer);
                }
                Err(_) => skipped += 1,
            }
        }
        restored.settle_releases((self.now)());
        let mut world = self.world();
        restored.version = world.version + 1;
        *world = restored;
        Ok(skipped)
    }

    /// Never hands out offer ids up to `id` again. A snapshot saved shortly before a crash can predate offers
    /// the gateway went on to record; without this, the restarted simulator would give their ids to new
    /// offers and a watcher would read a stranger's trade under a recorded id.
    pub fn skip_ids_through(&self, id: OfferId) {
        let mut world = self.world_mut();
        world.next_id = world.next_id.max(id);
    }

    /// How many changes the state has seen (compare with the one returned by [`Simulator::snapshot`]).
    pub fn version(&self) -> u64 {
        self.world().version
    }

    /// How a user behaves with offers sent from now on.
    pub fn profile(&self, user: SteamId) -> Profile {
        self.world().profiles.get(&user).copied().unwrap_or(DEFAULT_PROFILE)
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state for a change other than an offer's (profiles, tokens, the id sequence): marks it changed for
    /// the saver. An offer's change is marked by `World::touch`, which also records it for saving.
    fn world_mut(&self) -> std::sync::MutexGuard<'_, World> {
        let mut world = self.world();
        world.version += 1;
        world
    }

    /// Sets how a user behaves with offers sent from now on.
    pub fn set_profile(&self, user: SteamId, profile: Profile) {
        self.world_mut().profiles.insert(user, profile);
    }

    /// The user's current trade token.
    pub fn trade_token(&self, user: SteamId) -> String {
        self.world().tokens.get(&user).cloned().unwrap_or_else(|| self.sim.trade_token(user))
    }

    /// The user regenerates their trade URL: the old token stops working.
    pub fn regenerate_token(&self, user: SteamId) -> String {
        let token: String = self.sim.trade_token(user).chars().rev().collect();
        let token = if token == self.sim.trade_token(user) { format!("{}x", &token[..7]) } else { token };
        self.world_mut().tokens.insert(user, token.clone());
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
    pub fn reverse(&self, id: OfferId) -> Result<(), Irreversible> {
        self.reverse_by(id, Party::Partner)
    }

    /// Operator: one side reverses an accepted trade within the protection period (for a purchase, the
    /// supplier side is [`Party::Bot`]).
    pub fn reverse_by(&self, id: OfferId, party: Party) -> Result<(), Irreversible> {
        let now = (self.now)();
        {
            let mut world = self.world();
            let offer = world.offers.get(&id).ok_or(Irreversible::NotFound)?;
            let (state, accepted_at) = observe(offer, now);
            match accepted_at {
                _ if state != OfferState::Accepted => return Err(Irreversible::NotAccepted),
                _ if offer.reversed.is_some() => return Err(Irreversible::AlreadyReversed),
                _ if !offer.protected() => return Err(Irreversible::NotProtected),
                Some(at) if now < at + TRADE_PROTECTION_SECS => {}
                _ => return Err(Irreversible::ProtectionOver),
            }
            world.offers.get_mut(&id).expect("exists").reversed = Some((party, now));
            world.touch(id);
            world.release(id);
        }
        self.changed(id);
        Ok(())
    }

    fn decide(&self, id: OfferId, state: OfferState) -> Result<(), SteamError> {
        let now = (self.now)();
        {
            let mut world = self.world();
            let offer = world.offers.get_mut(&id).ok_or(SteamError::NotFound)?;
            if observe(offer, now).0 != OfferState::Active {
                return Err(SteamError::NotFound);
            }
            offer.decided = Some((state, now));
            world.touch(id);
            if state != OfferState::Accepted {
                world.release(id);
            }
        }
        self.changed(id);
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
        Profile::AcceptAfter { secs: s } | Profile::ReverseAfter { accept_after: s, .. } => Some(o.created_at + s),
        Profile::Escrow { days } => Some(o.created_at + 5 + i64::from(days) * 86_400),
        Profile::Decline | Profile::Counter => {
            let end = if o.profile == Profile::Decline { OfferState::Declined } else { OfferState::Countered };
            return if now >= o.created_at + 3 { (end, None) } else { (OfferState::Active, None) };
        }
        Profile::NeverAnswer | Profile::Manual | Profile::TradeBanned | Profile::SendFails => None,
    };
    match accept_at {
        Some(at) if now >= at => (OfferState::Accepted, Some(at)),
        _ if matches!(o.profile, Profile::Escrow { .. }) && now >= o.created_at + 5 => (OfferState::InEscrow, None),
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
        // Steam answers a trade-hold query only for the partner's current token, as it does an offer: a stale
        // or wrong one is refused here already, before the payer picks items.
        if partner.token != self.trade_token(partner.steam_id) {
            return Err(SteamError::InvalidToken);
        }
        match self.world().profiles.get(&partner.steam_id) {
            Some(Profile::Escrow { days }) => Ok(*days),
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
        // The partner's inventory is generated on demand: only an offer that takes items from it needs it.
        let inventory =
            if offer.items_to_receive.is_empty() { Vec::new() } else { self.inventory(user, offer.game).await? };
        let mut world = self.world();
        let profile = world.profiles.get(&user).copied().unwrap_or(DEFAULT_PROFILE);
        match profile {
            Profile::TradeBanned => return Err(SteamError::TradeBanned),
            Profile::SendFails => return Err(SteamError::Unavailable),
            _ => {}
        }
        let mut items = Vec::new();
        for id in &offer.items_to_receive {
            let asset = inventory.iter().find(|a| a.asset_id == *id && a.tradable).ok_or(SteamError::InvalidItems)?;
            if items.iter().any(|a: &Asset| a.asset_id == *id) {
                return Err(SteamError::InvalidItems);
            }
            items.push(asset.clone());
        }
        if items.is_empty() && offer.items_to_give.is_empty() {
            return Err(SteamError::InvalidItems);
        }
        // Checked again under the lock that marks them: two sends at once must not both take an item.
        if items.iter().any(|item| world.gone.contains(&(user, item.asset_id))) {
            return Err(SteamError::InvalidItems);
        }
        for item in &items {
            world.gone.insert((user, item.asset_id));
        }
        world.next_id += 1;
        let id = world.next_id;
        // Every fifth offer flaps once after acceptance, deterministically.
        let flap_left = id.is_multiple_of(5);
        let bot = usize::try_from(id % self.bots.len() as u64).unwrap_or(0);
        world.offers.insert(
            id,
            SimOffer {
                id,
                partner: user,
                items,
                items_to_give: offer.items_to_give,
                bot,
                created_at: now,
                profile,
                decided: None,
                reversed: None,
                flap_left,
                released: false,
            },
        );
        world.touch(id);
        drop(world);
        self.changed(id);
        Ok(id)
    }

    async fn offer(&self, id: OfferId) -> Result<Offer, SteamError> {
        let now = (self.now)();
        // A read: the saver is told only when the look changed something (a flap spent, a reversal or a
        // release recorded), or every poll of every open offer would make it rewrite the whole snapshot.
        let mut world = self.world();
        let o = world.offers.get_mut(&id).ok_or(SteamError::NotFound)?;
        let mut changed = false;
        let (mut state, accepted_at) = observe(o, now);
        if let (Profile::ReverseAfter { reverse_after, .. }, Some(at)) = (o.profile, accepted_at)
            && o.protected()
            && o.reversed.is_none()
            && now >= at + reverse_after
            && reverse_after < TRADE_PROTECTION_SECS
        {
            o.reversed = Some((Party::Partner, at + reverse_after));
            changed = true;
        }
        if state == OfferState::Accepted && o.flap_left {
            o.flap_left = false;
            state = OfferState::Active;
            changed = true;
        }
        let trade_status = match accepted_at {
            Some(_) if o.reversed.is_some() => Some(TradeStatus::TradeProtectionRollback),
            Some(_) => Some(TradeStatus::Complete),
            // Steam shows the trade's hold on the trade itself as well as on the offer.
            None if state == OfferState::InEscrow => Some(TradeStatus::InEscrow),
            None => None,
        };
        let snapshot = Offer {
            id: o.id,
            partner: o.partner,
            state,
            items: o.items.clone(),
            items_to_give: o.items_to_give.clone(),
            bot: self.bots[o.bot].clone(),
            created_at: o.created_at,
            expires_at: o.created_at + OFFER_EXPIRY_SECS,
            escrow_ends_at: match o.profile {
                Profile::Escrow { days } => Some(o.created_at + 5 + i64::from(days) * 86_400),
                _ => None,
            },
            trade_status,
            reversed_by: o.reversed.map(|(party, _)| party),
        };
        if (o.reversed.is_some() || state.is_failed()) && !o.released {
            world.release(id);
            changed = true;
        }
        if changed {
            world.touch(id);
        }
        Ok(snapshot)
    }

    async fn cancel_offer(&self, id: OfferId) -> Result<(), SteamError> {
        self.decide(id, OfferState::Canceled)
    }

    async fn sent_offers(&self, partner: SteamId, since: i64) -> Result<Vec<OfferId>, SteamError> {
        let world = self.world();
        let mut ids: Vec<OfferId> =
            world.offers.values().filter(|o| o.partner == partner && o.created_at >= since).map(|o| o.id).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }
}

#[cfg(test)]
mod tests;
