//! Market storage: the gateway's stock units, purchases and their lifecycle. [`MarketStore`] holds reads
//! and short writes, [`MarketTx`] the writes that must commit with ledger transfers and outbox rows. Both
//! are supertraits of [`crate::Store`] and [`crate::WriteTx`].

use async_trait::async_trait;

/// Market reads and short writes.
#[async_trait]
pub trait MarketStore: Send + Sync {}

/// Market writes inside one business transaction.
#[async_trait]
pub trait MarketTx: Send {}
