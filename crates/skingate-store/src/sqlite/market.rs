//! SQLite implementation of the market repository (tables in `migrations/sqlite/0004_market.sql`).

use async_trait::async_trait;

use super::{SqliteStore, SqliteTx};
use crate::market::{MarketStore, MarketTx};

#[async_trait]
impl MarketStore for SqliteStore {}

#[async_trait]
impl MarketTx for SqliteTx {}
