//! skingate's storage: repository traits, and SQLite behind them.
//!
//! # Layout
//! - this file: the [`Store`] (reads and short writes) and [`WriteTx`] (one business transaction) traits,
//!   the rows they return, and [`StoreError`];
//! - [`deposits`] and [`market`]: the repository traits of those flows, supertraits of the two above;
//! - [`sqlite`]: the embedded implementation (WAL, one writer connection, `BEGIN IMMEDIATE`), migrations in
//!   `migrations/sqlite/`. PostgreSQL will be a sibling module with its own `migrations/postgres/`.
//!
//! # Why a transaction object
//! A business change, its ledger entries, its idempotency key and (later) its outbox rows must commit
//! together or not at all. Callers therefore open a [`WriteTx`], do everything through it and
//! [`WriteTx::commit`]; dropping it rolls back. Ledger rows are written in one place only, fed by two paths
//! that both run the domain ledger's checks first: [`WriteTx::transfer`] (one transfer, checked against the
//! stored balances) and [`MarketTx::write_decided_transfers`] (a batch already checked by `ledger::apply`
//! against the batch's in-memory balances).

use async_trait::async_trait;
use skingate_core::Money;
use skingate_core::currency::Currency;
use skingate_core::ledger::{AccountId, AccountKind, Applied, LedgerError, TransferSpec};
use skingate_core::project::{Project, ProjectId, ProjectSettings};

pub mod deposits;
pub mod market;
pub mod sqlite;

pub use deposits::{DepositStore, DepositTx};
pub use market::{MarketStore, MarketTx};

pub use sqlite::SqliteStore;

/// Result alias of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An edit of a project for [`Store::modify_project`]; an `Err` refuses the edit with a reason for the operator.
pub type ProjectChange<'a> = dyn FnMut(&mut Project) -> std::result::Result<(), String> + Send + 'a;

/// Storage failures, classified so callers branch on meaning, never on SQL text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// The ledger refused the transfer; nothing was written.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The database is locked or unavailable; retrying later may work.
    #[error("database busy")]
    Busy,
    /// A stored value does not parse: the database was changed behind our back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Anything else from the driver, with its context.
    #[error("database: {0}")]
    Database(#[source] sqlx::Error),
    /// A [`Store::modify_project`] edit refused the project as it found it; nothing was written.
    #[error("{0}")]
    Refused(String),
    /// Migrations failed at start-up.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database's schema is not the one this binary was built for (older, newer, or none at all), and
    /// the caller asked not to migrate it.
    #[error("{0}")]
    Schema(String),
    /// Another server holds the database ([`sqlite::SqliteStore::lock_for_server`]).
    #[error("{0}")]
    InUse(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut => StoreError::Busy,
            sqlx::Error::Database(db) if db.message().contains("database is locked") => StoreError::Busy,
            _ => StoreError::Database(e),
        }
    }
}

/// A project's balance figures, as `balance` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProjectBalance {
    /// Spendable now (negative only after a clawback).
    pub available: Money,
    /// Held under Trade Protection.
    pub held: Money,
    /// Reserved by unfinished purchases.
    pub in_flight: Money,
    /// Total settled deposits minus clawbacks: a reversed deposit is not a deal the merchant kept.
    pub deals_sum: Money,
    /// Total settled purchases minus refunds.
    pub withdraw_sum: Money,
}

/// Which slice of the balance history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Earliest entry time, Unix seconds, inclusive.
    pub starting: i64,
    /// Latest entry time, Unix seconds, inclusive.
    pub ending: i64,
    /// Only entries with an id above this (the previous page's cursor).
    pub after_id: i64,
    /// Page size.
    pub limit: u32,
}

/// One ledger entry of a project's balance, joined with its transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Entry id, ascending.
    pub id: i64,
    /// Write time, Unix seconds.
    pub created_at: i64,
    /// The transfer's code (`deposit`, `purchase`, …).
    pub code: String,
    /// The transfer's id.
    pub transfer_id: String,
    /// The transfer's reference text.
    pub reference: String,
    /// Spendable balance before.
    pub available_before: Money,
    /// Spendable balance after.
    pub available_after: Money,
    /// Held amount after.
    pub held_after: Money,
    /// In-flight amount after.
    pub in_flight_after: Money,
}

/// A merchant key for an idempotent write: `(project, method, key)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// Keys are per project: two merchants may use the same order id.
    pub project: ProjectId,
    /// The method, so an `order_id` and a `custom_id` with the same text never collide.
    pub scope: String,
    /// The merchant's `order_id`, `custom_id` or `Idempotency-Key` header (≤ 255 bytes).
    pub key: String,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: do the work in this transaction, then store its response.
    New,
    /// Seen before with the same request: return this stored response, do nothing.
    Replay(String),
    /// Seen before with a different request: the method's "already exists" error.
    Mismatch,
}

/// An event as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Global id, ascending in commit order; the public id is `evt_<id>`.
    pub id: i64,
    /// The project it belongs to.
    pub project: ProjectId,
    /// Per-project sequence number, from 1 without gaps.
    pub seq: i64,
    /// The `event` name.
    pub event_type: String,
    /// The exact JSON body delivered.
    pub payload: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// Builds an event's body once its id and sequence number are known.
pub type PayloadFn<'a> = &'a (dyn Fn(i64, i64) -> String + Send + Sync);

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up: attempts exhausted, endpoint gone (410) or disabled.
    Failed,
}

impl DeliveryState {
    /// Stable name used in storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Inverse of [`DeliveryState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed].into_iter().find(|d| d.as_str() == s)
    }
}

/// How many due deliveries one claim may lease ([`Store::claim_due_deliveries`]): in all, and per project.
/// Per-project rooms let the dispatcher keep a merchant whose endpoint is slow (or whose backlog is long) to
/// its share of the deliveries in flight, so the others' are still claimed at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimLimit {
    /// Most deliveries in all.
    pub total: u32,
    /// Most deliveries of any project not listed in `rooms`.
    pub per_project: u32,
    /// Most deliveries of these projects (those with deliveries in flight already).
    pub rooms: Vec<(ProjectId, u32)>,
}

impl ClaimLimit {
    /// At most `total` deliveries, whichever projects they belong to.
    pub fn total(total: u32) -> Self {
        Self { total, per_project: total, rooms: Vec::new() }
    }
}

/// A delivery of one event to one URL, with its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Delivery id.
    pub id: i64,
    /// The event delivered.
    pub event: StoredEvent,
    /// `events_webhook` (Result-URL callbacks join later).
    pub kind: String,
    /// Target URL, fixed when the event was written.
    pub url: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<i64>,
    /// HTTP status of the last attempt, if it got one.
    pub last_http_status: Option<u16>,
    /// When it was created.
    pub created_at: i64,
    /// The lease this copy was claimed under (`None` when not claimed): an attempt's result is recorded
    /// only while the row still carries this lease, so a late attempt never overwrites a newer one.
    pub leased_until: Option<i64>,
}

/// One attempt to deliver, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt_no: u32,
    /// When it started, Unix seconds.
    pub started_at: i64,
    /// How long it took.
    pub duration_ms: u64,
    /// The answer's status, when there was one.
    pub http_status: Option<u16>,
    /// Why there was no usable answer (timeout, refused, blocked address …).
    pub error: Option<String>,
    /// The first KBs of the answer body.
    pub response_head: String,
}

/// One attempt to record: the delivery, what happened, and what comes next.
pub type AttemptRow<'a> = (&'a Delivery, &'a Attempt, NextStep);

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Done: delivered.
    Delivered,
    /// Try again at this time.
    RetryAt(i64),
    /// Give up.
    Fail,
}

/// Reads and short writes. Cheap to clone behind an `Arc`; safe to share between tasks.
#[async_trait]
pub trait Store: DepositStore + MarketStore + Send + Sync + std::fmt::Debug + 'static {
    /// Creates a project with its ledger account.
    async fn create_project(&self, settings: &ProjectSettings, secret: &str, now: i64) -> Result<Project>;
    /// One project, if it exists.
    async fn project(&self, id: ProjectId) -> Result<Option<Project>>;
    /// All projects, by id.
    async fn projects(&self) -> Result<Vec<Project>>;
    /// Saves a project's settings and secret. `events_disabled_at` is taken from `project` only with a new
    /// events URL: the dispatcher disables endpoints on its own, and a copy read before that must not undo it.
    async fn update_project(&self, project: &Project, now: i64) -> Result<()>;
    /// Changes a project in one write transaction: `change` sees the row as it is under the write lock, and
    /// what it leaves is written before anyone else can write. Two operators' edits at once (a `project set`
    /// beside a `rotate-secret`) then both land, where a read followed by [`Store::update_project`] lets the
    /// later one silently undo the earlier. If `change` refuses, nothing is written and its reason comes back
    /// as [`StoreError::Refused`].
    async fn modify_project(&self, id: ProjectId, now: i64, change: &mut ProjectChange<'_>) -> Result<Project>;
    /// The rates table.
    async fn currencies(&self) -> Result<Vec<Currency>>;
    /// Adds or replaces a currency.
    async fn upsert_currency(&self, currency: &Currency, now: i64) -> Result<()>;
    /// The project's balance figures.
    async fn project_balance(&self, id: ProjectId) -> Result<ProjectBalance>;
    /// A page of the project's balance history plus whether more follows.
    async fn balance_history(&self, id: ProjectId, q: HistoryQuery) -> Result<(Vec<HistoryEntry>, bool)>;
    /// A small installation-wide setting (demo project id, maintenance switch).
    async fn meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets an installation-wide setting.
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// The highest Steam trade offer id recorded on a deposit or a purchase (`None` when there is none): ids a
    /// restarted simulator must never hand out again.
    async fn max_recorded_offer_id(&self) -> Result<Option<u64>>;
    /// Saves (adds or replaces) the embedded simulator's offer records, `(offer id, JSON)`, in one
    /// transaction.
    async fn save_sim_offers(&self, records: &[(u64, String)]) -> Result<()>;
    /// Every saved simulator offer record, by id.
    async fn sim_offers(&self) -> Result<Vec<String>>;
    /// Opens a write transaction.
    async fn begin(&self) -> Result<Box<dyn WriteTx>>;

    /// Events of a project after sequence number `after_seq`, oldest first (WebSocket resume).
    async fn project_events_after(&self, project: ProjectId, after_seq: i64, limit: u32) -> Result<Vec<StoredEvent>>;
    /// One event of a project by its global id.
    async fn project_event(&self, project: ProjectId, id: i64) -> Result<Option<StoredEvent>>;
    /// A project's newest event: the cursor a fresh WebSocket subscriber resumes from if it drops before its
    /// first event.
    async fn project_last_event(&self, project: ProjectId) -> Result<Option<StoredEvent>>;
    /// Events of every project after global id `after_id`, oldest first (the fan-out tailer).
    async fn events_after(&self, after_id: i64, limit: u32) -> Result<Vec<StoredEvent>>;
    /// The highest event id (0 when there is none).
    async fn last_event_id(&self) -> Result<i64>;
    /// Whether a deposit or a purchase records trade offer `offer_id`: an offer found at Steam is adopted
    /// only if it is nobody's yet (one trade never settles two deposits or purchases).
    async fn offer_recorded(&self, offer_id: &str) -> Result<bool>;
    /// Leases due pending deliveries until `now + lease_secs` and returns them: at most `limit.total`, and of
    /// each project at most its room in `limit`, taken in turns (every project's oldest due row, then every
    /// project's second, …), so one project's backlog never stands in front of another's deliveries.
    async fn claim_due_deliveries(&self, now: i64, lease_secs: i64, limit: &ClaimLimit) -> Result<Vec<Delivery>>;
    /// Logs attempts and moves their deliveries on, in one transaction (group commit: one disk flush for
    /// the whole batch). Also tracks each endpoint's failing streak: the result, in the batch's order, is
    /// when the current streak started (`None` after a success).
    async fn record_attempts(&self, batch: &[AttemptRow<'_>]) -> Result<Vec<Option<i64>>>;
    /// Hands back leases taken by [`Store::claim_due_deliveries`] whose attempts never started (a graceful
    /// stop): those rows are due again at once, for the next process, instead of when their lease runs out.
    /// A row whose lease changed meanwhile (claimed again) is left alone. Returns how many were released.
    async fn release_deliveries(&self, leased: &[&Delivery]) -> Result<u64>;
    /// A project's deliveries, newest first, after the cursor `before_id` (0 = from the newest).
    async fn deliveries(
        &self,
        project: ProjectId,
        state: Option<DeliveryState>,
        before_id: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>>;
    /// One delivery of a project.
    async fn delivery(&self, project: ProjectId, id: i64) -> Result<Option<Delivery>>;
    /// The attempts of a delivery, oldest first.
    async fn delivery_attempts(&self, delivery_id: i64) -> Result<Vec<Attempt>>;
    /// Schedules a delivery again now, whatever its state, unless an attempt at it is under way (its lease
    /// runs past `now`: a second, concurrent POST of the same event would follow); false if it is not the
    /// project's or is being attempted.
    async fn resend_delivery(&self, project: ProjectId, id: i64, now: i64) -> Result<bool>;
    /// Schedules again the failed deliveries created at or after `since` and, with `missed`, queues to it
    /// the project's events of those types created since then that never had an events-webhook delivery
    /// (emitted while the endpoint was disabled or unset), oldest first, at most `limit` in all (one short
    /// transaction on the shared writer); returns how many.
    async fn recover_deliveries(
        &self,
        project: ProjectId,
        since: i64,
        now: i64,
        missed: Option<MissedEvents<'_>>,
        limit: u32,
    ) -> Result<u64>;
}

/// What [`Store::recover_deliveries`] queues besides the failed deliveries.
#[derive(Debug, Clone, Copy)]
pub struct MissedEvents<'a> {
    /// The project's events webhook URL now.
    pub url: &'a str,
    /// The event types the events webhook receives.
    pub event_types: &'a [&'a str],
}

/// One business transaction. Everything done through it commits together; drop it to roll back.
#[async_trait]
pub trait WriteTx: DepositTx + MarketTx + Send {
    /// Records the key with the request's hash, or reports what an earlier use of it stored.
    async fn claim_idempotency_key(&mut self, key: &IdempotencyKey, request_hash: &str, now: i64) -> Result<Claim>;
    /// Stores the response to replay for a key claimed in this transaction.
    async fn store_idempotent_response(&mut self, key: &IdempotencyKey, response: &str) -> Result<()>;
    /// The project's balance account.
    async fn project_account(&mut self, project: ProjectId) -> Result<AccountId>;
    /// The installation's account of this kind (created on first use).
    async fn system_account(&mut self, kind: AccountKind) -> Result<AccountId>;
    /// Runs a transfer through the domain ledger and writes its rows. A refused transfer writes nothing.
    async fn transfer(&mut self, spec: &TransferSpec, now: i64) -> Result<Applied>;
    /// Writes an event to the outbox, with a delivery to `webhook_url` when given.
    async fn insert_event(
        &mut self,
        project: ProjectId,
        event_type: &str,
        payload: PayloadFn<'_>,
        webhook_url: Option<&str>,
        now: i64,
    ) -> Result<StoredEvent>;
    /// The project's current balance figures, inside this transaction.
    async fn project_balance(&mut self, project: ProjectId) -> Result<ProjectBalance>;
    /// Disables the project's events endpoint if it is still `url`, and fails its pending events-webhook
    /// deliveries; false if it was disabled already or has another URL now (then nothing changes). In a transaction so the merchant's notice commits with it.
    async fn disable_events_endpoint(&mut self, project: ProjectId, url: &str, now: i64) -> Result<bool>;
    /// Makes everything durable.
    async fn commit(self: Box<Self>) -> Result<()>;
}
