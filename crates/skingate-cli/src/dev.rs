//! Tools for merchants' developers: `listen`, `trigger`, `sign`, `verify`.
//!
//! - `listen --forward-to URL` subscribes to a project's events over WebSocket (resuming after drops) and
//!   POSTs each one to a local URL signed exactly as the gateway's events webhook is, so a merchant can
//!   develop its webhook handler on a laptop no gateway can reach.
//! - `trigger EVENT` writes a sample event to a project's outbox, as a real state change would.
//! - `sign` and `verify` compute and check every signature scheme, for debugging a receiver.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use skingate_core::events::EventType;
use skingate_core::project::ProjectId;
use skingate_sdk::webhooks::Verifier;
use skingate_server::Config;
use skingate_store::Store;
use skingate_types::sign::{self, Canonicalization, standard};

use crate::now;

/// `skingate listen`.
#[derive(Debug, Args)]
pub struct Listen {
    /// Where to POST each event.
    #[arg(long)]
    forward_to: String,
    /// The project's client id.
    #[arg(long, env = "SKINGATE_CLIENT_ID")]
    client_id: String,
    /// The project's client secret.
    #[arg(long, env = "SKINGATE_CLIENT_SECRET", hide_env_values = true)]
    secret: String,
    /// The gateway (default: this configuration's public URL).
    #[arg(long)]
    gateway: Option<String>,
    /// Start after this event id (default: only new events).
    #[arg(long)]
    since: Option<String>,
    /// Stop after forwarding this many events.
    #[arg(long)]
    max_events: Option<u64>,
}

/// Subscribes and forwards until interrupted (or `--max-events`).
pub async fn listen(config: &Config, args: Listen) -> anyhow::Result<()> {
    let base = args.gateway.clone().unwrap_or_else(|| config.base_url());
    let ws_base = base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    let mut stream = skingate_sdk::ws::EventStream::new(&ws_base, &args.client_id, &args.secret);
    if let Some(since) = &args.since {
        stream = stream.resume_from(since);
    }
    let http = reqwest::Client::new();
    eprintln!("listening for events of project {} on {ws_base}, forwarding to {}", args.client_id, args.forward_to);
    let (mut forwarded, mut failed) = (0, 0);
    while args.max_events.is_none_or(|max| forwarded < max) {
        let event = match stream.next().await {
            Ok(event) => event,
            Err(e @ skingate_sdk::ws::StreamError::ResumeFailed { .. }) => {
                // Not fatal: say what may be missing and go on with live events.
                eprintln!("warning: {e}");
                continue;
            }
            Err(e) if failed > 0 => anyhow::bail!("{e} ({failed} of {forwarded} event(s) were not accepted before)"),
            Err(e) => anyhow::bail!("{e}"),
        };
        // Only what the events webhook carries (the socket also streams `deposit_status` and operational
        // notices); a type this CLI does not know (a newer gateway's) is forwarded.
        if EventType::parse(&event.event).is_some_and(|t| !t.to_webhook()) {
            continue;
        }
        let id = event.id.clone().unwrap_or_else(|| format!("local_{forwarded}"));
        let outcome = forward(&http, &args, &id, &event.raw).await;
        outln!("{} {id} -> {outcome}", event.event);
        failed += u64::from(!outcome.starts_with('2'));
        forwarded += 1;
    }
    // A script (or CI) running `listen --max-events N` must see that a handler refused what it was sent.
    anyhow::ensure!(failed == 0, "{failed} of {forwarded} event(s) were not accepted by {}", args.forward_to);
    Ok(())
}

/// Attempts before a forward is reported as failed, and the pause before each retry: a local handler being
/// restarted by its developer's file watcher should not lose the event.
const FORWARD_RETRIES_MS: [u64; 2] = [500, 2_000];

/// POSTs one event signed as the gateway signs its webhooks (`Authorization` and `Signature` carry the same
/// value), retrying a failure like the webhook would (briefly: this is a development tool). Returns the last
/// HTTP status, or the error.
async fn forward(http: &reqwest::Client, args: &Listen, id: &str, raw: &str) -> String {
    let mut outcome = String::new();
    for pause in std::iter::once(0).chain(FORWARD_RETRIES_MS) {
        if pause > 0 {
            eprintln!("{id}: {outcome}; retrying in {pause} ms");
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        let ts = now();
        let signature = sign::events_signature(&args.secret, raw.as_bytes());
        let resp = http
            .post(&args.forward_to)
            .header("content-type", "application/json")
            .header("Authorization", &signature)
            .header("Signature", signature)
            .header("X-SIGN", sign::static_sign(&args.client_id, &args.secret))
            .header(standard::ID, id)
            .header(standard::TIMESTAMP, ts.to_string())
            .header(standard::SIGNATURE, sign::standard_signature(&args.secret, id, ts, raw.as_bytes()))
            .body(raw.to_owned())
            .send()
            .await;
        outcome = match resp {
            Ok(r) => r.status().as_u16().to_string(),
            Err(e) => format!("error: {e}"),
        };
        if outcome.starts_with('2') {
            break;
        }
    }
    outcome
}

/// `skingate trigger`.
#[derive(Debug, Args)]
pub struct Trigger {
    /// balance_change, buy_item or status_change.
    event: String,
    /// The project.
    #[arg(long)]
    project: ProjectId,
}

/// Writes a sample event; `balance_change` carries the real balance, the others are marked `"test": true`.
pub async fn trigger(config: &Config, args: Trigger) -> anyhow::Result<()> {
    let store = crate::open(config).await?;
    let project = store.project(args.project).await?.ok_or_else(|| anyhow::anyhow!("no project {}", args.project))?;
    let kind = EventType::parse(&args.event).filter(|e| e.to_webhook()).ok_or_else(|| {
        anyhow::anyhow!("unknown event {}; use balance_change, buy_item or status_change", args.event)
    })?;
    let mut tx = store.begin().await?;
    let data = match kind {
        EventType::BalanceChange => json!({"balance_value": tx.project_balance(project.id).await?.available.to_wire()}),
        EventType::BuyItem => json!({"item": {"id": "0", "name": "AK-47 | Safari Mesh (Minimal Wear)", "price": "0.40",
            "classid": "3940562910", "instanceid": "0"}, "buy_id": "0", "offer_status": "creating_trade",
            "balance_debited_sum": "0.40", "custom_id": "test", "test": true}),
        _ => json!({"item": {"id": "0"}, "buy_id": "0", "offer_status": "waiting_accept", "error_reason": null,
            "tradeofferid": "0", "custom_id": "test", "test": true}),
    };
    let event = skingate_server::events::emit(tx.as_mut(), &project, kind, data, now()).await?;
    tx.commit().await?;
    outln!("{}", event.payload);
    Ok(())
}

/// `skingate sign`.
#[derive(Debug, Subcommand)]
pub enum SignCmd {
    /// The API `sign` of `key=value` parameters (HMAC-SHA1 over sorted scalars).
    Api {
        /// Client secret.
        #[arg(long)]
        secret: String,
        /// Parameters, e.g. method=balance shopid=1.
        params: Vec<String>,
    },
    /// The headers of an events webhook for a body read from a file or `-` (stdin).
    Webhook(WebhookArgs),
}

/// Inputs shared by webhook signing and verifying.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Client id.
    #[arg(long)]
    client_id: String,
    /// Client secret.
    #[arg(long)]
    secret: String,
    /// The body file, or `-` for stdin.
    #[arg(long, default_value = "-")]
    body: PathBuf,
    /// Event id for `webhook-id`.
    #[arg(long, default_value = "evt_0")]
    id: String,
    /// sign: the `webhook-timestamp` to sign; verify: the time to check it against (default: now, this machine's).
    #[arg(long)]
    timestamp: Option<i64>,
    /// Headers received, `Name: value` (verify only).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
}

fn read_body(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(path)?;
    }
    Ok(body)
}

/// Prints a signature.
pub fn sign(cmd: SignCmd) -> anyhow::Result<()> {
    match cmd {
        SignCmd::Api { secret, params } => {
            let mut map = Map::new();
            for p in params {
                let (k, v) = p.split_once('=').ok_or_else(|| anyhow::anyhow!("expected key=value, got {p}"))?;
                map.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            outln!("string to sign: {}", sign::string_to_sign(&map, Canonicalization::Js));
            outln!("sign: {}", sign::api_sign(&secret, &map, Canonicalization::Js));
        }
        SignCmd::Webhook(a) => {
            let body = read_body(&a.body)?;
            let ts = a.timestamp.unwrap_or_else(now);
            let signature = sign::events_signature(&a.secret, &body);
            outln!("Authorization: {signature}");
            outln!("Signature: {signature}");
            outln!("X-SIGN: {}", sign::static_sign(&a.client_id, &a.secret));
            outln!("{}: {}", standard::ID, a.id);
            outln!("{}: {ts}", standard::TIMESTAMP);
            outln!("{}: {}", standard::SIGNATURE, sign::standard_signature(&a.secret, &a.id, ts, &body));
        }
    }
    Ok(())
}

/// Checks a received webhook; fails (exit 1) when no scheme verifies.
pub fn verify(a: WebhookArgs) -> anyhow::Result<()> {
    let body = read_body(&a.body)?;
    let mut headers = http::HeaderMap::new();
    for h in &a.headers {
        let (k, v) = h.split_once(':').ok_or_else(|| anyhow::anyhow!("expected 'Name: value', got {h}"))?;
        headers.insert(http::HeaderName::try_from(k.trim())?, http::HeaderValue::try_from(v.trim())?);
    }
    let verifier = Verifier::new(&a.client_id, &a.secret);
    match verifier.verify(&headers, &body, a.timestamp.unwrap_or_else(now)) {
        Ok(scheme) => {
            outln!("ok: verified by {scheme:?}");
            Ok(())
        }
        Err(e) => anyhow::bail!("not verified: {e}"),
    }
}
