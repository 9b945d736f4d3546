//! SQLite implementation of the deposits repository (tables in `migrations/sqlite/0003_deposits.sql`).

use async_trait::async_trait;

use super::{SqliteStore, SqliteTx};
use crate::deposits::{DepositStore, DepositTx};

#[async_trait]
impl DepositStore for SqliteStore {}

#[async_trait]
impl DepositTx for SqliteTx {}
