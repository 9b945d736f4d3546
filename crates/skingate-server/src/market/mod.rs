//! The market: the gateway's stock, purchases and their lifecycle (see `../shared/design/FLOWS.md`).
