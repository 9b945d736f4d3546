//! Idempotent writes: a retried request does its work once and gets the first answer again.
//!
//! The merchant's key (`order_id` for `create`, `custom_id` for `market_buy`, or an `Idempotency-Key`
//! header for writes without a natural key) is claimed inside the write transaction together with a hash
//! of the request ([`fingerprint`]). Then:
//! - first use: the work runs in that transaction, its response is stored with the key, all commit together;
//! - same key, same request: the stored response is returned ([`Outcome::Replayed`]) and nothing runs;
//! - same key, different request: [`Outcome::Conflict`], which each method turns into its "already exists"
//!   error (`order_id_already_exists`, `custom_id_already_exists`).
//!
//! Only successes are stored: when the work fails, the transaction rolls back and takes the key with it,
//! so a merchant can retry after fixing the cause (say, topping up the balance). Concurrent duplicates
//! queue on the database's write lock; the second sees the first's committed key.

use futures::future::BoxFuture;
use serde_json::Value;
use sha2::{Digest, Sha256};
use skingate_store::{Claim, IdempotencyKey, WriteTx};
use skingate_types::sign::SIGN_PARAM;

use crate::api::Params;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// Parameters that identify the caller rather than the request; a retry may change how it authenticates.
const AUTH_PARAMS: [&str; 2] = ["shopid", SIGN_PARAM];

/// What an idempotent write produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The work ran now; this is its response.
    Fresh(Vec<u8>),
    /// An identical request ran before; this is its stored response.
    Replayed(Vec<u8>),
    /// The key was used before for a different request.
    Conflict,
}

/// A stable hash of what the request asks for: the method and every parameter except authentication,
/// with scalars compared as text so `1` and `"1"` (JSON vs form) are the same request.
pub fn fingerprint(method: &str, params: &Params) -> String {
    let mut canonical = serde_json::Map::new();
    for (k, v) in &params.0 {
        if !AUTH_PARAMS.contains(&k.as_str())
            && let Some(v) = canonical_value(v)
        {
            canonical.insert(k.clone(), v);
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(Value::Object(canonical).to_string().as_bytes());
    hex::encode(hasher.finalize())
}

fn canonical_value(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(_) => Some(v.clone()),
        Value::Number(n) => Some(Value::String(n.to_string())),
        Value::Bool(b) => Some(Value::String(b.to_string())),
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(canonical_value).collect())),
        Value::Object(map) => {
            Some(Value::Object(map.iter().filter_map(|(k, v)| canonical_value(v).map(|v| (k.clone(), v))).collect()))
        }
    }
}

/// Runs `work` at most once per key, in the same transaction as the key.
pub async fn run<W>(state: &AppState, key: IdempotencyKey, request_hash: &str, work: W) -> Result<Outcome, ApiError>
where
    W: for<'t> FnOnce(&'t mut dyn WriteTx) -> BoxFuture<'t, Result<Vec<u8>, ApiError>>,
{
    let mut tx = state.store.begin().await?;
    match tx.claim_idempotency_key(&key, request_hash, state.now()).await? {
        Claim::Replay(body) => return Ok(Outcome::Replayed(body.into_bytes())),
        Claim::Mismatch => return Ok(Outcome::Conflict),
        Claim::New => {}
    }
    let body = work(tx.as_mut()).await?;
    let text = String::from_utf8(body).map_err(ApiError::internal)?;
    tx.store_idempotent_response(&key, &text).await?;
    tx.commit().await?;
    Ok(Outcome::Fresh(text.into_bytes()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;
    use skingate_core::Money;
    use skingate_core::ledger::{AccountKind, Phase, TransferCode, TransferId, TransferSpec};
    use skingate_core::project::ProjectId;

    use super::*;

    fn params(v: Value) -> Params {
        Params(v.as_object().unwrap().clone())
    }

    #[test]
    fn fingerprint_ignores_auth_and_encoding() {
        let a = fingerprint("create", &params(json!({"order_id": 1, "shopid": "5", "sign": "x", "n": null})));
        let b = fingerprint("create", &params(json!({"order_id": "1"})));
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("create", &params(json!({"order_id": "2"}))));
        assert_ne!(a, fingerprint("market_buy", &params(json!({"order_id": "1"}))));
    }

    type Work = Box<dyn for<'t> FnOnce(&'t mut dyn WriteTx) -> BoxFuture<'t, Result<Vec<u8>, ApiError>> + Send>;

    fn credit_work(runs: Arc<AtomicUsize>, project: ProjectId, id: &'static str, minor: i64) -> Work {
        Box::new(move |tx: &mut dyn WriteTx| {
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let spec = TransferSpec {
                    id: TransferId(id.into()),
                    debit: tx.system_account(AccountKind::OperatorAdjustments).await?,
                    credit: tx.project_account(project).await?,
                    amount: Money::from_minor(minor),
                    phase: Phase::Posted,
                    code: TransferCode::Adjustment,
                    allow_overdraft: false,
                    reference: String::new(),
                };
                tx.transfer(&spec, 0).await.map_err(|_| ApiError::method(4, "insufficient_funds"))?;
                Ok(format!("{{\"credited\":{minor}}}").into_bytes())
            })
        })
    }

    /// The mechanism end to end on the real store: a credit guarded by a key moves money once, replays,
    /// conflicts on different parameters, and leaves no key behind when the work fails.
    #[tokio::test]
    async fn work_runs_once_and_replays() {
        let (_dir, state, project) = crate::state::testing::state_with_project().await;
        let runs = Arc::new(AtomicUsize::new(0));
        let key = |k: &str| IdempotencyKey { project: project.id, scope: "test_credit".into(), key: k.into() };
        let credit = |id: &'static str, minor: i64| credit_work(runs.clone(), project.id, id, minor);
        let first = run(&state, key("k1"), "h1", credit("t1", 500)).await.unwrap();
        assert_eq!(first, Outcome::Fresh(b"{\"credited\":500}".to_vec()));
        let again = run(&state, key("k1"), "h1", credit("t1", 500)).await.unwrap();
        assert_eq!(again, Outcome::Replayed(b"{\"credited\":500}".to_vec()));
        assert_eq!(run(&state, key("k1"), "h2", credit("t2", 700)).await.unwrap(), Outcome::Conflict);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // A failing work (zero amount is refused by the ledger) rolls its key back: the retry runs.
        assert!(run(&state, key("k2"), "h", credit("t3", 0)).await.is_err());
        assert!(matches!(run(&state, key("k2"), "h", credit("t3", 1)).await.unwrap(), Outcome::Fresh(_)));
        assert_eq!(state.store.project_balance(project.id).await.unwrap().available, Money::from_minor(501));
    }
}
