//! Deposits storage: the repository side of the deposit flow (deposit rows, their items, Result-URL
//! callbacks). [`DepositStore`] holds reads and short writes, [`DepositTx`] the writes that must commit with
//! ledger transfers and outbox rows. Both are supertraits of [`crate::Store`] and [`crate::WriteTx`].

use async_trait::async_trait;

/// Deposit reads and short writes.
#[async_trait]
pub trait DepositStore: Send + Sync {}

/// Deposit writes inside one business transaction.
#[async_trait]
pub trait DepositTx: Send {}
