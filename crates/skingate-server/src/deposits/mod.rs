//! Deposits: the flow from `create` to a credited balance (see `../shared/design/FLOWS.md`).
