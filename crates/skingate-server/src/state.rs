//! Shared state of a running gateway.
//!
//! Hot-path reads (project credentials, the rates table, the maintenance switch) come from memory; the
//! database stays the source of truth. Projects are cached for `project_cache_ttl_ms` and misses always go
//! to the database, so a project created by the CLI is usable at once; rates and the run-time maintenance
//! flag are re-read every `refresh_interval_ms` by [`AppState::refresh`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use skingate_core::currency::Rates;
use skingate_core::project::{Project, ProjectId};
use skingate_steam::ids::SteamId;
use skingate_steam::sim::{Offer, Simulator, Steam, SteamError};
use skingate_store::{Store, StoreError};

use crate::clock::Clock;
use crate::config::Config;
use crate::ratelimit::{PageLimits, RateLimits};

/// The `meta` key of the run-time maintenance switch (`skingate maintenance on|off`).
pub const MAINTENANCE_KEY: &str = "maintenance";

/// How far Steam's clock may lag the gateway's when offers are searched by time (see
/// [`AppState::find_sent_offer`]).
const STEAM_CLOCK_MARGIN_SECS: i64 = 60;

/// Everything a request handler may need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

/// The fields behind [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The configuration the server started with.
    pub config: Config,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Steam, as the gateway's bots see it: the trait every flow calls.
    pub steam: Arc<dyn Steam>,
    /// The embedded simulator behind [`Inner::steam`], for the operator surface and test mode (`None` when a
    /// real Steam client is plugged in).
    pub sim: Option<Arc<Simulator>>,
    /// Per-project request limits.
    pub limits: RateLimits,
    /// Per-deposit limits of the payment page's Steam-calling requests.
    pub page_limits: PageLimits,
    /// WebSocket subscribers of this node.
    pub hub: crate::hub::Hub,
    /// Wakes the webhook dispatcher when this process commits events.
    pub dispatch_wake: tokio::sync::Notify,
    /// Wakes the WebSocket hub's outbox reader when this process commits events.
    pub hub_wake: tokio::sync::Notify,
    /// The market: the purchase watcher's wake-up, the buy writer's queue, the on/off switch.
    pub market: crate::market::Market,
    /// Wakes the deposit trade watcher (a new offer was sent, or Steam told us an offer changed).
    pub deposits_wake: tokio::sync::Notify,
    /// Offers Steam said changed since the watcher last looked (see [`AppState::offer_changed`]).
    changed_offers: std::sync::Mutex<Vec<u64>>,
    /// Work that outlives the request that started it (a bot's deposit offer being sent, then recorded): a
    /// stop waits for it, so an offer Steam has is never left unrecorded by a shutdown.
    pub background: tokio_util::task::TaskTracker,
    projects: RwLock<HashMap<ProjectId, (Instant, Arc<Project>)>>,
    rates: RwLock<Arc<Rates>>,
    maintenance_runtime: AtomicBool,
    /// A full round of the deposit watcher was asked for (see [`AppState::wake_deposits`]).
    deposits_full_round: AtomicBool,
    /// One save of the simulator at a time, its offer records ([`AppState::steam_sync`]) or its snapshot
    /// (`sim_admin`): a save waits for one under way, which may hold its change, and an older snapshot never
    /// lands after a newer one.
    pub(crate) sim_saving: tokio::sync::Mutex<()>,
    /// The gateway clock when this process built its state: work marked as under way before it (a deposit
    /// left in the sending state) was begun by an earlier process, which nothing of this one can finish.
    pub started_at: i64,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The clock second this process starts in, after any send an earlier process left unfinished: the deposit
/// watcher tells an orphaned send (nothing can finish it) from one of this process by comparing its start with
/// this, in whole seconds. If an earlier process began a send in the current second (it crashed and this one
/// started at once), the start waits for the next second, at most about one second (and not at all on a clock
/// that does not move by itself, as in tests).
async fn start_second(store: &dyn Store, clock: &dyn Clock) -> Result<i64, StoreError> {
    let now = clock.now();
    if !store.stuck_sending(now, u32::MAX).await?.iter().any(|d| d.updated_at >= now) {
        return Ok(now);
    }
    let give_up = Instant::now() + Duration::from_millis(1_100);
    while clock.now() <= now && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(clock.now())
}

impl AppState {
    /// Builds the state and loads the rates table and the maintenance switch once.
    pub async fn new(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let now = clock.clone();
        let sim = Arc::new(Simulator::new(config.sim_seed, Arc::new(move || now.now())));
        let page_limits = PageLimits::new(config.pay_steam_requests_per_min);
        let started_at = start_second(store.as_ref(), clock.as_ref()).await?;
        let state = AppState(Arc::new(Inner {
            config,
            store,
            clock,
            steam: sim.clone(),
            sim: Some(sim),
            limits: RateLimits::default(),
            page_limits,
            hub: crate::hub::Hub::default(),
            dispatch_wake: tokio::sync::Notify::new(),
            hub_wake: tokio::sync::Notify::new(),
            market: crate::market::Market::default(),
            deposits_wake: tokio::sync::Notify::new(),
            background: tokio_util::task::TaskTracker::new(),
            changed_offers: std::sync::Mutex::default(),
            projects: RwLock::default(),
            rates: RwLock::new(Arc::new(Rates::new([]))),
            maintenance_runtime: AtomicBool::new(false),
            deposits_full_round: AtomicBool::new(false),
            sim_saving: tokio::sync::Mutex::new(()),
            started_at,
        }));
        state.refresh().await?;
        Ok(state)
    }

    /// Makes what Steam has done so far durable at Steam, before the gateway commits what it learnt from it.
    /// Real Steam keeps every offer it sent, so there is nothing to do; the embedded simulator keeps its
    /// offers in memory, and a crash after the gateway recorded an offer or credited a trade, but before the
    /// simulator saved it, made the simulator forget the trade: the payer kept the items and could deposit
    /// them again (a crash audit credited one item twice). Every offer record changed since the last call is
    /// saved here, in one write; callers wait for a save already under way, since it may hold their change.
    pub async fn steam_sync(&self) -> Result<(), StoreError> {
        let Some(sim) = &self.sim else { return Ok(()) };
        let _one_at_a_time = self.sim_saving.lock().await;
        let records = sim.take_unsaved_offers();
        if let Err(e) = self.store.save_sim_offers(&records).await {
            sim.unsaved(records.iter().map(|(id, _)| *id));
            return Err(e);
        }
        Ok(())
    }

    /// Unix seconds now, from the gateway's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Whether the gateway is in maintenance (configured or switched on at run time).
    pub fn maintenance(&self) -> bool {
        self.config.maintenance || self.maintenance_runtime.load(Ordering::Relaxed)
    }

    /// The current rates table.
    pub fn rates(&self) -> Arc<Rates> {
        self.rates.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A project by id, from the cache when fresh.
    pub async fn project(&self, id: ProjectId) -> Result<Option<Arc<Project>>, StoreError> {
        let ttl = Duration::from_millis(self.config.project_cache_ttl_ms);
        if let Some((at, p)) = self.projects.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id)
            && at.elapsed() < ttl
        {
            return Ok(Some(p.clone()));
        }
        let Some(project) = self.store.project(id).await? else {
            self.projects.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
            return Ok(None);
        };
        let project = Arc::new(project);
        if !ttl.is_zero() {
            self.projects
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id, (Instant::now(), project.clone()));
        }
        Ok(Some(project))
    }

    /// A handle that does not keep the state alive, for tasks the state itself owns (the buy writer).
    pub fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    /// The state behind a [`AppState::downgrade`] handle, while it lives.
    pub fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(Self)
    }

    /// Call after committing events: delivery and fan-out start at once instead of at the next poll.
    pub fn events_committed(&self) {
        self.dispatch_wake.notify_one();
        self.hub_wake.notify_one();
    }

    /// Call after moving the clock: whatever waits for a time (holds ending, offers timing out, retries
    /// falling due) looks again now.
    pub fn wake_watchers(&self) {
        self.wake_deposits();
        self.market.wake.notify_one();
        self.dispatch_wake.notify_one();
    }

    /// Has the simulator wake the trade watchers whenever an offer is sent or an operator acts on one, so
    /// an accepted trade is seen at once rather than at the next poll. The listener holds the state weakly:
    /// it never keeps a stopped gateway alive.
    pub fn listen_to_steam(&self) {
        let Some(sim) = &self.sim else { return };
        let weak = self.downgrade();
        sim.add_listener(Arc::new(move |offer| {
            if let Some(inner) = weak.upgrade() {
                inner.market.wake.notify_one();
                AppState(inner).offer_changed(offer);
            }
        }));
    }

    /// Whether Steam's answer about an offer proves the offer is gone for good. Only the simulator's "not
    /// found" does (it lost the offer in a crash); from a real Steam client it may be a passing error, and the
    /// offer is looked at again. The watchers end a trade on it only past the trade's own deadline.
    pub fn offer_gone<T>(&self, observed: &Result<T, SteamError>) -> bool {
        self.sim.is_some() && matches!(observed, Err(SteamError::NotFound))
    }

    /// The newest live or accepted offer the gateway's bots sent to `partner` since `since` (less a minute for
    /// Steam's clock) that gives exactly `give` and asks for exactly `receive` (asset ids) and that no deposit
    /// or purchase records: an offer that was sent but whose id was never recorded (a crash, or a failed
    /// write, between Steam's answer and the commit). Whoever finds one adopts it rather than sending a
    /// second offer for the same items. Never taken: an offer another deposit or purchase recorded (the payer
    /// deposited the same items again), or one that ended without a trade (cancelled by the gateway when it
    /// could not record it, declined, expired): nothing came of it, so a new offer may be sent. An error
    /// means "unknown": send nothing meanwhile.
    pub async fn find_sent_offer(
        &self,
        partner: SteamId,
        since: i64,
        give: &[u64],
        receive: &[u64],
    ) -> anyhow::Result<Option<Offer>> {
        fn sorted(mut ids: Vec<u64>) -> Vec<u64> {
            ids.sort_unstable();
            ids
        }
        let (give, receive) = (sorted(give.to_vec()), sorted(receive.to_vec()));
        for id in self.steam.sent_offers(partner, since.saturating_sub(STEAM_CLOCK_MARGIN_SECS)).await? {
            let offer = self.steam.offer(id).await?;
            if offer.state.is_failed() {
                continue;
            }
            let gives = sorted(offer.items_to_give.iter().map(|a| a.asset_id).collect());
            let asks = sorted(offer.items.iter().map(|a| a.asset_id).collect());
            if gives == give && asks == receive && !self.store.offer_recorded(&id.to_string()).await? {
                return Ok(Some(offer));
            }
        }
        Ok(None)
    }

    /// Steam (or the simulator's operator surface) says trade offer `id` changed: the deposit trade watcher
    /// looks at that offer at once instead of at its next poll ([`AppState::listen_to_steam`] calls it).
    pub fn offer_changed(&self, id: u64) {
        self.changed_offers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id);
        self.deposits_wake.notify_one();
    }

    /// Asks the deposit trade watcher for a full round now: a new offer was recorded, a hold ended, the clock
    /// moved. Kept apart from [`AppState::offer_changed`]'s named offers, with which its wake-up may merge.
    pub fn wake_deposits(&self) {
        self.deposits_full_round.store(true, Ordering::Release);
        self.deposits_wake.notify_one();
    }

    /// Whether a full round was asked for since the last call (the watcher's side).
    pub fn take_full_round(&self) -> bool {
        self.deposits_full_round.swap(false, Ordering::AcqRel)
    }

    /// The offers named by [`AppState::offer_changed`] since the last call (the watcher's side).
    pub fn take_changed_offers(&self) -> Vec<u64> {
        std::mem::take(&mut *self.changed_offers.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Forgets a cached project so the next read sees the database (after this process changed it).
    pub fn forget_project(&self, id: ProjectId) {
        self.projects.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    }

    /// Re-reads the rates table and the run-time maintenance switch.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let rates = Rates::new(self.store.currencies().await?);
        *self.rates.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(rates);
        let on = self.store.meta(MAINTENANCE_KEY).await?.is_some_and(|v| v == "on");
        self.maintenance_runtime.store(on, Ordering::Relaxed);
        Ok(())
    }
}

/// What the unit tests of this crate start from.
#[cfg(test)]
pub(crate) mod testing {
    use skingate_core::project::ProjectSettings;
    use skingate_store::SqliteStore;

    use super::*;
    use crate::clock::SystemClock;

    /// A state with default settings on a fresh SQLite file (kept while the returned directory lives), and a
    /// project in it.
    pub(crate) async fn state_with_project() -> (tempfile::TempDir, AppState, Project) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}/g.db", dir.path().display()), 1).await.unwrap();
        let project = store.create_project(&ProjectSettings::named("P"), "s", 0).await.unwrap();
        let state = AppState::new(Config::defaults(), Arc::new(store), Arc::new(SystemClock)).await.unwrap();
        (dir, state, project)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full round asked for survives a named offer's wake-up arriving before the watcher looks: the two
    /// wake-ups merge into one (one stored permit), the request for a full round does not.
    #[tokio::test]
    async fn a_full_round_request_is_not_lost_in_a_merged_wake_up() {
        let (_dir, state, _) = testing::state_with_project().await;
        state.wake_deposits();
        state.offer_changed(7);
        tokio::time::timeout(Duration::from_secs(5), state.deposits_wake.notified()).await.unwrap();
        assert_eq!(state.take_changed_offers(), vec![7]);
        assert!(state.take_full_round(), "the full round is still asked for");
        assert!(!state.take_full_round(), "and only once");
    }
}
