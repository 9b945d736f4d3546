//! The buy path, group-committed.
//!
//! A buy is a handful of small writes (reserve the unit, the pending ledger transfer, the purchase row, two
//! outbox events, the idempotency key) and a disk flush at commit. Buys are not committed one by one: each
//! request is queued to a single writer (on a thread of its own, see [`crate::dedicated`]), which takes
//! everything queued (up to `market_batch_max`), decides the buys in ONE transaction and commits once; the
//! commit answers every buy of the batch (TigerBeetle-style batching, like the dispatcher's attempt recording).
//! While a batch commits the next one queues, so the batch size follows the load.
//!
//! A batch costs a fixed number of statements, whatever its size: it reads up front what its buys can touch
//! (balances, the idempotency keys they carry, the units named by id, the cheapest units of each item name),
//! decides every buy in memory in queue order (funds by the domain ledger's own `skingate_core::ledger::apply`
//! against the balances it read), and writes the results with one bulk statement per table, all handed to
//! SQLite's thread at once ([`skingate_store::market::MarketTx::write_buy_batch`]).
//!
//! Correctness is per buy: a refused buy (no funds, unit gone, price above `max_price`, `custom_id` reused for
//! another request) writes nothing and leaves the others alone; buys are decided in queue order against what
//! the earlier ones took, exactly as if they ran one by one (the property test below checks that against the
//! obvious model), so two buyers of the last unit see each other (exactly one wins) and a repeated `custom_id`
//! sees the first request's answer (replay). Nothing is answered before the commit, so no answer ever describes
//! an uncommitted purchase; a failure of the gateway itself fails the whole batch and commits nothing.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;

use skingate_core::Money;
use skingate_core::events::EventType;
use skingate_core::ledger::{self, Account, AccountId, AccountKind, LedgerError};
use skingate_core::market::{Pricing, PurchaseStatus, reserve};
use skingate_core::project::{Project, ProjectId};
use skingate_steam::catalogue::Game;
use skingate_steam::ids::SteamId;
use skingate_store::market::{
    AnsweredKey, BulkEvent, BuyBatchWrites, DecidedTransfer, NewPurchase, Purchase, StoredKey, Unit,
};
use skingate_store::{IdempotencyKey, Store, StoreError, WriteTx};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::error::ApiError;
use crate::events;
use crate::state::AppState;

/// Idempotency scope of `custom_id`, shared by `market_buy` and `market_batch_buy` items.
pub const CUSTOM_ID_SCOPE: &str = "market_buy";
/// Idempotency scope of a `market_buy` without `custom_id` sent with an `Idempotency-Key` header.
pub const HEADER_SCOPE: &str = "market_buy:idempotency-key";
/// Idempotency scope of the items without `custom_id` of a `market_batch_buy` sent with an `Idempotency-Key`
/// header: item `i` is stored under `<header>#<i>`.
pub const BATCH_HEADER_SCOPE: &str = "market_batch_buy:idempotency-key";

/// Which unit to buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// A unit id from the price list or search.
    Id(i64),
    /// The cheapest unit of this name (at or under `max_price`).
    Name {
        /// The game.
        game: Game,
        /// `market_hash_name`.
        name: String,
    },
}

/// One buy, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyRequest {
    /// What to buy.
    pub pick: Pick,
    /// The most the merchant pays.
    pub max_price: Option<Money>,
    /// The recipient.
    pub partner: SteamId,
    /// The recipient's trade-URL token.
    pub token: String,
    /// The merchant's id, recorded on the purchase.
    pub custom_id: Option<String>,
    /// What the buy is idempotent on (scope, key): its `custom_id`, or else the request's `Idempotency-Key`.
    pub key: Option<(&'static str, String)>,
    /// Hash of the request, compared when the key repeats.
    pub fingerprint: String,
}

/// Why a buy was refused (the `market_buy` error codes 4–7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 4: the balance does not cover the price.
    InsufficientFunds,
    /// 5: no such unit for sale.
    Unavailable,
    /// 6: units exist, but none at or under `max_price`.
    NotAtPrice,
    /// 7: the `custom_id` was used for a different request.
    CustomIdExists,
}

impl Refusal {
    /// The method error.
    pub fn error(self) -> ApiError {
        match self {
            Self::InsufficientFunds => ApiError::method(4, "insufficient_funds"),
            Self::Unavailable => ApiError::method(5, "skin_unavailable"),
            Self::NotAtPrice => ApiError::method(6, "skins_not_found_at_specified_price"),
            Self::CustomIdExists => ApiError::method(7, "custom_id_already_exists"),
        }
    }
}

/// A successful buy: the purchase record's JSON (without the envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bought {
    /// Bought now.
    Fresh(Vec<u8>),
    /// The stored answer of an earlier identical request with the same `custom_id`.
    Replayed(Vec<u8>),
}

/// Why a queued buy did not succeed.
#[derive(Debug)]
pub enum BuyFailure {
    /// Refused; nothing changed.
    Refused(Refusal),
    /// The gateway failed; nothing changed.
    Internal(anyhow::Error),
}

impl From<StoreError> for BuyFailure {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<BuyFailure> for ApiError {
    #[track_caller]
    fn from(f: BuyFailure) -> Self {
        match f {
            BuyFailure::Refused(r) => r.error(),
            BuyFailure::Internal(e) => ApiError::internal(e),
        }
    }
}

/// A buy waiting for the writer.
#[derive(Debug)]
pub struct BuyJob {
    project: Arc<Project>,
    request: BuyRequest,
    reply: oneshot::Sender<Result<Bought, BuyFailure>>,
}

/// Buys through the group-committing writer (which wakes event delivery and the watcher after each commit).
pub async fn buy(state: &AppState, project: Arc<Project>, request: BuyRequest) -> Result<Bought, BuyFailure> {
    let (reply, answer) = oneshot::channel();
    let queue = state.market.buy_queue(state);
    queue
        .send(BuyJob { project, request, reply })
        .await
        .map_err(|_| BuyFailure::Internal(anyhow::anyhow!("market buy writer stopped")))?;
    answer.await.map_err(|_| BuyFailure::Internal(anyhow::anyhow!("market buy writer dropped a buy")))?
}

/// Starts the writer on a thread of its own (see [`crate::dedicated`]); it ends when the state (and so the
/// queue's sender) is dropped: it holds the state only weakly.
pub(super) fn spawn_writer(state: &AppState) -> mpsc::Sender<BuyJob> {
    let max = state.config.market_batch_max;
    let (tx, rx) = mpsc::channel(max.saturating_mul(8).max(64));
    let task = writer(state.downgrade(), state.store.clone(), state.clock.clone(), super::pricing(state), max, rx);
    crate::dedicated::spawn("skingate-buy-writer", task);
    tx
}

async fn writer(
    wake: std::sync::Weak<crate::state::Inner>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    pricing: Pricing,
    max: usize,
    mut rx: mpsc::Receiver<BuyJob>,
) {
    let mut jobs = Vec::with_capacity(max);
    let mut accounts = AccountIds::default();
    while rx.recv_many(&mut jobs, max).await > 0 {
        // A panic inside a batch (a bug, a row no code expected) fails that batch (its transaction is dropped,
        // so nothing of it commits), not the writer: the next batch runs as usual.
        let batch = run_batch(store.as_ref(), &jobs, clock.now(), pricing, &mut accounts);
        let ran = AssertUnwindSafe(async { batch.await.map_err(|e| e.to_string()) })
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(format!("panicked: {}", crate::supervise::panic_text(panic.as_ref()))));
        match ran {
            Ok(outcomes) => {
                // The batch's events and purchases are committed: delivery and the watcher start now, also
                // for buys whose callers have gone (a client that disconnected while waiting).
                if outcomes.iter().any(|o| matches!(o, Ok(Bought::Fresh(_))))
                    && let Some(state) = AppState::upgrade(&wake)
                {
                    state.events_committed();
                    state.market.wake.notify_one();
                }
                for (job, outcome) in jobs.drain(..).zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                // An account created by the failed transaction does not exist: look them up again.
                accounts = AccountIds::default();
                tracing::error!(error = %e, buys = jobs.len(), "market buy batch failed; nothing was committed");
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(BuyFailure::Internal(anyhow::anyhow!("buy batch failed: {e}"))));
                }
            }
        }
    }
}

/// Ledger account ids, which never change once created: looked up once, not per batch.
#[derive(Debug, Default)]
struct AccountIds {
    sales: Option<AccountId>,
    projects: HashMap<ProjectId, AccountId>,
}

/// Runs a batch in one transaction with a fixed number of statements, however many buys it holds: the
/// batch's idempotency keys and candidate units are read up front (one query per project and per item name),
/// every buy is then decided in memory, in queue order (funds by the domain ledger's own `apply` against the
/// balances read in this transaction), and the results are written with a few multi-row statements sent
/// together. A refused buy leaves nothing behind. An error here (not a refusal) means the transaction is
/// unusable and nothing of the batch commits.
async fn run_batch(
    store: &dyn Store,
    jobs: &[BuyJob],
    now: i64,
    pricing: Pricing,
    ids: &mut AccountIds,
) -> Result<Vec<Result<Bought, BuyFailure>>, StoreError> {
    let mut tx = store.begin().await?;
    let sales_id = match ids.sales {
        Some(id) => id,
        None => *ids.sales.insert(tx.system_account(AccountKind::MarketSales).await?),
    };
    let (sales, sales_owner) = tx.ledger_account(sales_id).await?;
    let next_id = tx.next_purchase_id().await?;
    let mut books = HashMap::new();
    for job in jobs {
        let project = job.project.id;
        if books.contains_key(&project) {
            continue;
        }
        let id = match ids.projects.get(&project) {
            Some(id) => *id,
            None => *ids.projects.entry(project).or_insert(tx.project_account(project).await?),
        };
        books.insert(project, tx.ledger_account(id).await?);
    }
    let mut batch = Batch {
        sales,
        sales_owner,
        books,
        keys: Keys::load(tx.as_mut(), jobs).await?,
        stock: Stock::load(tx.as_mut(), jobs).await?,
        next_id,
        purchases: Vec::new(),
        transfers: Vec::new(),
        events: Vec::new(),
        answered: Vec::new(),
        now,
        pricing,
    };
    let outcomes: Vec<_> = jobs.iter().map(|job| buy_one(&job.project, &job.request, &mut batch)).collect();
    if !batch.purchases.is_empty() || !batch.answered.is_empty() {
        let mut accounts: Vec<Account> = batch.books.into_values().map(|(a, _)| a).collect();
        accounts.push(batch.sales);
        let writes = BuyBatchWrites {
            purchases: &batch.purchases,
            accounts: &accounts,
            transfers: &batch.transfers,
            events: &batch.events,
            answered: &batch.answered,
        };
        tx.write_buy_batch(&writes, now).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// The batch's idempotency keys: what is stored, plus what earlier buys of the batch answered.
struct Keys(HashMap<(ProjectId, &'static str, String), StoredKey>);

impl Keys {
    /// Reads the stored keys the batch's buys carry, one query per project and scope.
    async fn load(tx: &mut dyn WriteTx, jobs: &[BuyJob]) -> Result<Self, StoreError> {
        let mut wanted: HashMap<(ProjectId, &'static str), Vec<&str>> = HashMap::new();
        for job in jobs {
            if let Some((scope, k)) = &job.request.key {
                wanted.entry((job.project.id, scope)).or_default().push(k);
            }
        }
        let mut found = HashMap::new();
        for ((project, scope), keys) in wanted {
            for stored in tx.idempotency_keys(project, scope, &keys).await? {
                found.insert((project, scope, stored.key.clone()), stored);
            }
        }
        Ok(Self(found))
    }
}

/// The units the batch may sell: those its buys by id name (if in stock) and, per item name, as many of the
/// cheapest as could be taken, handed out cheapest first in queue order, exactly as if the buys ran one by one.
struct Stock {
    by_id: HashMap<i64, Unit>,
    by_name: HashMap<(Game, String), std::collections::VecDeque<Unit>>,
    taken: std::collections::HashSet<i64>,
}

impl Stock {
    async fn load(tx: &mut dyn WriteTx, jobs: &[BuyJob]) -> Result<Self, StoreError> {
        let mut ids = Vec::new();
        let mut names: HashMap<(Game, String), u32> = HashMap::new();
        for job in jobs {
            match &job.request.pick {
                Pick::Id(id) => ids.push(*id),
                Pick::Name { game, name } => *names.entry((*game, name.clone())).or_default() += 1,
            }
        }
        let by_id = tx.stock_units(&ids).await?.into_iter().map(|u| (u.id, u)).collect();
        // A buy by id may take one of a name's cheapest units: fetch that many more.
        let extra = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        let mut by_name = HashMap::new();
        for ((game, name), wanted) in names {
            let units = tx.cheapest_units(game.code(), &name, wanted.saturating_add(extra)).await?;
            by_name.insert((game, name), units.into());
        }
        Ok(Self { by_id, by_name, taken: Default::default() })
    }

    /// The unit a buy would get now, if any is left.
    fn peek(&mut self, pick: &Pick) -> Option<&Unit> {
        match pick {
            Pick::Id(id) => self.by_id.get(id).filter(|u| !self.taken.contains(&u.id)),
            Pick::Name { game, name } => {
                let queue = self.by_name.get_mut(&(*game, name.clone()))?;
                while queue.front().is_some_and(|u| self.taken.contains(&u.id)) {
                    queue.pop_front();
                }
                queue.front()
            }
        }
    }
}

/// The batch's in-memory state: balances as the batch left them, and the rows it will write in bulk.
struct Batch {
    sales: Account,
    sales_owner: i64,
    books: HashMap<ProjectId, (Account, i64)>,
    keys: Keys,
    stock: Stock,
    next_id: i64,
    purchases: Vec<(i64, NewPurchase)>,
    transfers: Vec<DecidedTransfer>,
    events: Vec<BulkEvent>,
    answered: Vec<AnsweredKey>,
    now: i64,
    pricing: Pricing,
}

/// One buy of the batch, decided in memory.
fn buy_one(project: &Project, r: &BuyRequest, batch: &mut Batch) -> Result<Bought, BuyFailure> {
    if let Some((scope, k)) = &r.key {
        match batch.keys.0.get(&(project.id, *scope, k.clone())) {
            Some(StoredKey { request_hash, response: Some(body), .. }) if *request_hash == r.fingerprint => {
                return Ok(Bought::Replayed(body.clone().into_bytes()));
            }
            // Another request, or one whose work committed without an answer: never run twice.
            Some(_) => return Err(BuyFailure::Refused(Refusal::CustomIdExists)),
            None => {}
        }
    }
    let body = decide(project, r, batch)?;
    if let Some((scope, k)) = &r.key {
        let stored = StoredKey { key: k.clone(), request_hash: r.fingerprint.clone(), response: Some(body.clone()) };
        batch.keys.0.insert((project.id, *scope, k.clone()), stored);
        batch.answered.push(AnsweredKey {
            key: IdempotencyKey { project: project.id, scope: (*scope).into(), key: k.clone() },
            request_hash: r.fingerprint.clone(),
            response: body.clone(),
        });
    }
    Ok(Bought::Fresh(body.into_bytes()))
}

/// Picks the unit, checks the price and the funds, reserves both; returns the purchase record's JSON.
fn decide(project: &Project, r: &BuyRequest, batch: &mut Batch) -> Result<String, BuyFailure> {
    let now = batch.now;
    let Some(unit) = batch.stock.peek(&r.pick).cloned() else {
        return Err(BuyFailure::Refused(Refusal::Unavailable));
    };
    let price = batch.pricing.price(unit.reference).filter(|p| p.is_positive());
    let price = match price {
        None => return Err(BuyFailure::Refused(Refusal::Unavailable)),
        // By name this is the cheapest unit left, so none is at the price.
        Some(p) if r.max_price.is_some_and(|max| p > max) => return Err(BuyFailure::Refused(Refusal::NotAtPrice)),
        Some(p) => p,
    };
    let (account, owner) =
        batch.books.get(&project.id).cloned().ok_or_else(|| {
            BuyFailure::Internal(anyhow::anyhow!("project {} has no ledger account loaded", project.id))
        })?;
    let buy_id = batch.next_id;
    let spec = reserve(buy_id, account.id, batch.sales.id, price);
    let (mut debit, mut credit) = (account, batch.sales.clone());
    let entries = match ledger::apply(&spec, &mut debit, &mut credit, None) {
        Ok(entries) => entries,
        Err(LedgerError::InsufficientFunds) => return Err(BuyFailure::Refused(Refusal::InsufficientFunds)),
        Err(e) => return Err(BuyFailure::Internal(e.into())),
    };
    // From here on nothing can refuse: the batch's view moves on.
    batch.stock.taken.insert(unit.id);
    let partner = r.partner.to_string();
    let new = NewPurchase {
        project: project.id,
        unit: unit.clone(),
        price,
        partner: partner.clone(),
        token: r.token.clone(),
        custom_id: r.custom_id.clone(),
    };
    batch.purchases.push((buy_id, new));
    let balance = debit.balances.available();
    batch.books.insert(project.id, (debit, owner));
    batch.sales = credit;
    batch.next_id += 1;
    batch.transfers.push(DecidedTransfer { spec, entries, owners: [owner, batch.sales_owner] });
    let purchase = Purchase {
        id: buy_id,
        project: project.id,
        unit_id: unit.id,
        game: unit.game,
        name: unit.name,
        classid: unit.classid,
        price,
        partner,
        token: r.token.clone(),
        custom_id: r.custom_id.clone(),
        status: PurchaseStatus::CreatingTrade,
        tradeofferid: None,
        error_reason: None,
        sent_at: None,
        accepted_at: None,
        watch_until: None,
        created_at: now,
    };
    let body = serde_json::to_string(&super::record(&purchase)).map_err(|e| BuyFailure::Internal(e.into()))?;
    batch.events.push(events::bulk(project, EventType::BuyItem, super::buy_item_data(&purchase), now));
    batch.events.push(events::bulk(project, EventType::BalanceChange, events::balance_change_data(balance), now));
    Ok(body)
}

#[cfg(test)]
mod tests {
    //! The batch decides buys in memory from what it read up front; these check it against the obvious
    //! model: the same requests run one by one, in order, against a plain stock, balance and key table.

    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use skingate_core::project::ProjectSettings;
    use skingate_store::market::{MarketStore, NewUnit, UnitState};
    use skingate_store::sqlite::SqliteStore;

    use super::*;

    const PRICING: Pricing = Pricing { markup_bps: 500 };
    const ITEMS: [(Game, &str); 3] = [(Game::Dota2, "Key A"), (Game::Dota2, "Key B"), (Game::Rust, "Key A")];

    #[derive(Debug, Clone)]
    struct Req {
        pick: Pick,
        max_price: Option<i64>,
        custom_id: Option<u8>,
    }

    fn req() -> impl Strategy<Value = Req> {
        let pick = prop_oneof![
            (1_i64..14).prop_map(Pick::Id),
            (0..ITEMS.len()).prop_map(|i| Pick::Name { game: ITEMS[i].0, name: ITEMS[i].1.to_owned() }),
        ];
        (pick, proptest::option::of(1_000_i64..6_000), proptest::option::of(0_u8..4))
            .prop_map(|(pick, max_price, custom_id)| Req { pick, max_price, custom_id })
    }

    /// What a buy answered, reduced to what the model can predict.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Fresh { unit: i64, price: i64 },
        Replayed { unit: i64, price: i64 },
        Refused(Refusal),
    }

    fn fingerprint(r: &Req) -> String {
        format!("{:?}|{:?}", r.pick, r.max_price)
    }

    fn request(r: &Req) -> BuyRequest {
        BuyRequest {
            pick: r.pick.clone(),
            max_price: r.max_price.map(Money::from_minor),
            partner: SteamId::from_account_id(77).unwrap(),
            token: "tok".into(),
            custom_id: r.custom_id.map(|k| format!("k{k}")),
            key: r.custom_id.map(|k| (CUSTOM_ID_SCOPE, format!("k{k}"))),
            fingerprint: fingerprint(r),
        }
    }

    fn seen(outcome: &Result<Bought, BuyFailure>) -> Seen {
        let parse = |body: &[u8]| {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            let unit = v["item"]["id"].as_str().unwrap().parse().unwrap();
            let price = Money::from_wire(&v["item"]["price"].to_string().trim_matches('"').parse().unwrap()).unwrap();
            (unit, price.minor())
        };
        match outcome {
            Ok(Bought::Fresh(b)) => {
                let (unit, price) = parse(b);
                Seen::Fresh { unit, price }
            }
            Ok(Bought::Replayed(b)) => {
                let (unit, price) = parse(b);
                Seen::Replayed { unit, price }
            }
            Err(BuyFailure::Refused(r)) => Seen::Refused(*r),
            Err(BuyFailure::Internal(e)) => panic!("internal failure: {e:#}"),
        }
    }

    /// The model: buys one after another.
    struct Model {
        stock: BTreeMap<i64, (usize, i64)>,
        balance: i64,
        keys: HashMap<u8, (String, Option<(i64, i64)>)>,
    }

    impl Model {
        fn buy(&mut self, r: &Req) -> Seen {
            if let Some(k) = r.custom_id
                && let Some((fp, first)) = self.keys.get(&k)
            {
                return match first {
                    Some((unit, price)) if *fp == fingerprint(r) => Seen::Replayed { unit: *unit, price: *price },
                    _ => Seen::Refused(Refusal::CustomIdExists),
                };
            }
            let unit = match &r.pick {
                Pick::Id(id) => self.stock.get(id).map(|(_, reference)| (*id, *reference)),
                Pick::Name { game, name } => self
                    .stock
                    .iter()
                    .filter(|(_, (item, _))| ITEMS[*item].0 == *game && ITEMS[*item].1 == name)
                    .map(|(id, (_, reference))| (*id, *reference))
                    .min_by_key(|(id, reference)| (*reference, *id)),
            };
            let Some((unit, reference)) = unit else { return Seen::Refused(Refusal::Unavailable) };
            let price = PRICING.price(Money::from_minor(reference)).unwrap().minor();
            if price <= 0 {
                // A unit without a price is not for sale (and, being the cheapest, blocks buys by name).
                return Seen::Refused(Refusal::Unavailable);
            }
            if r.max_price.is_some_and(|max| price > max) {
                return Seen::Refused(Refusal::NotAtPrice);
            }
            if price > self.balance {
                return Seen::Refused(Refusal::InsufficientFunds);
            }
            self.stock.remove(&unit);
            self.balance -= price;
            if let Some(k) = r.custom_id {
                self.keys.insert(k, (fingerprint(r), Some((unit, price))));
            }
            Seen::Fresh { unit, price }
        }
    }

    async fn check(units: Vec<(usize, i64)>, balance: i64, batches: Vec<Vec<Req>>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display()), 1).await.unwrap();
        let project = Arc::new(store.create_project(&ProjectSettings::named("p"), "s", 0).await.unwrap());
        let new: Vec<NewUnit> = units
            .iter()
            .enumerate()
            .map(|(i, (item, reference))| NewUnit {
                game: ITEMS[*item].0.code().into(),
                name: ITEMS[*item].1.into(),
                classid: "1".into(),
                asset_id: i as i64,
                bot: "76561198000000001".into(),
                reference: Money::from_minor(*reference),
            })
            .collect();
        let mut tx = store.begin().await.unwrap();
        let ids = tx.add_units(&new, 0).await.unwrap();
        tx.commit().await.unwrap();
        crate::adjustments::adjust(&store, &project, true, Money::from_minor(balance), "t", "top", 0).await.unwrap();
        let mut model = Model {
            stock: ids.iter().zip(&units).map(|(id, (item, reference))| (*id, (*item, *reference))).collect(),
            balance,
            keys: HashMap::new(),
        };
        let mut accounts = AccountIds::default();
        let mut spent = 0;
        for batch in batches {
            let jobs: Vec<BuyJob> = batch
                .iter()
                .map(|r| BuyJob { project: project.clone(), request: request(r), reply: oneshot::channel().0 })
                .collect();
            let outcomes = run_batch(&store, &jobs, 10, PRICING, &mut accounts).await.unwrap();
            for (r, outcome) in batch.iter().zip(&outcomes) {
                let expected = model.buy(r);
                assert_eq!(seen(outcome), expected, "request {r:?}");
                if let Seen::Fresh { price, .. } = expected {
                    spent += price;
                }
            }
        }
        // What the database holds agrees with the model: units still for sale, balance, money in flight.
        let mut left: Vec<i64> =
            store.units_page(None, UnitState::Stock, 0, 1_000).await.unwrap().iter().map(|u| u.id).collect();
        left.sort_unstable();
        assert_eq!(left, model.stock.keys().copied().collect::<Vec<_>>());
        let b = store.project_balance(project.id).await.unwrap();
        assert_eq!((b.available.minor(), b.in_flight.minor()), (model.balance, spent));
        assert!(b.available.minor() >= 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn a_batch_decides_like_buys_one_by_one(
            units in proptest::collection::vec((0..ITEMS.len(), prop_oneof![Just(0_i64), 1_000_i64..5_000]), 1..14),
            balance in 0_i64..20_000,
            batches in proptest::collection::vec(proptest::collection::vec(req(), 1..12), 1..5),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(check(units, balance, batches));
        }
    }
}
