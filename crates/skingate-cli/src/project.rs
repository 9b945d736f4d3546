//! `skingate project ...`: create, list, show, rotate-secret, set.
//!
//! Every command prints a human table by default and one JSON object per project with `--json`, for
//! scripts. Secrets are shown by `create`, `show` and `rotate-secret` only: `list` never prints them.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use skingate_core::deposit::{parse_ppm, ppm_text};
use skingate_core::project::{CallbackFormat, HoldPolicy, Project, ProjectId, ProjectSettings, parse_ip_net};
use skingate_server::Config;
use skingate_server::app::new_secret;
use skingate_store::Store;

use crate::now;

/// Project subcommands.
#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    /// Create a project and print its credentials.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Settings to apply at creation.
        #[command(flatten)]
        settings: SettingsArgs,
        /// Print one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// List projects (without secrets).
    List {
        /// Print one JSON line per project.
        #[arg(long)]
        json: bool,
    },
    /// Show one project, secret included.
    Show {
        /// Project id (= client id).
        id: ProjectId,
        /// Print one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Replace a project's client secret; the old one stops working within the cache TTL.
    RotateSecret {
        /// Project id.
        id: ProjectId,
        /// Print one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Credit the project's balance (an operator adjustment; emits balance_change).
    Credit(AdjustArgs),
    /// Debit the project's balance; refused if it would go negative.
    Debit(AdjustArgs),
    /// Change a project's settings.
    Set {
        /// Project id.
        id: ProjectId,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// The settings to change.
        #[command(flatten)]
        settings: SettingsArgs,
        /// Print one JSON line.
        #[arg(long)]
        json: bool,
    },
}

/// What `credit` and `debit` take.
#[derive(Debug, Args)]
pub struct AdjustArgs {
    /// Project id.
    id: ProjectId,
    /// Amount in USD, e.g. 10.50.
    amount: String,
    /// Why: shown to the merchant in balance_history.
    #[arg(long)]
    reason: String,
    /// Transfer id, to make a retried command harmless (default: a new random one); always under `adj:`.
    #[arg(long)]
    transfer_id: Option<String>,
    /// Print one JSON line.
    #[arg(long)]
    json: bool,
}

/// Settings flags shared by `create` and `set`. An empty URL clears it.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Whether the project may use the API.
    #[arg(long)]
    active: Option<bool>,
    /// Deposit result callback URL ("" clears).
    #[arg(long)]
    result_url: Option<String>,
    /// Payer's return URL after a successful deposit ("" clears).
    #[arg(long)]
    success_url: Option<String>,
    /// Payer's return URL after a failed deposit ("" clears).
    #[arg(long)]
    fail_url: Option<String>,
    /// Real-time events webhook URL ("" clears).
    #[arg(long)]
    events_url: Option<String>,
    /// Comma-separated addresses or CIDR networks allowed to call the API ("" allows any).
    #[arg(long)]
    ip_allowlist: Option<String>,
    /// API requests per minute.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Trade Protection policy for deposits: wait or credit_early.
    #[arg(long)]
    hold_policy: Option<String>,
    /// Test mode: magic trade tokens choose deposit outcomes (see docs/DEPOSITS.md).
    #[arg(long)]
    test_mode: Option<bool>,
    /// Deposit multiplier for `user_amount`, e.g. 1.5 (default 1).
    #[arg(long)]
    multiplier: Option<String>,
    /// Deposit fee in percent of the items' value, e.g. 2.5 (default 0).
    #[arg(long)]
    deposit_fee_percent: Option<String>,
    /// Result-URL callback body: form (PHP $_POST, default) or json.
    #[arg(long)]
    callback_format: Option<String>,
    /// Space- or comma-separated origins allowed to embed the payment page in an iframe ("" allows none).
    #[arg(long)]
    frame_ancestors: Option<String>,
}

impl SettingsArgs {
    fn apply(&self, s: &mut ProjectSettings) -> anyhow::Result<()> {
        let url = |v: &Option<String>, field: &mut Option<String>| {
            if let Some(v) = v {
                *field = (!v.is_empty()).then(|| v.clone());
            }
        };
        url(&self.result_url, &mut s.result_url);
        url(&self.success_url, &mut s.success_url);
        url(&self.fail_url, &mut s.fail_url);
        url(&self.events_url, &mut s.events_url);
        if let Some(active) = self.active {
            s.active = active;
        }
        if let Some(list) = &self.ip_allowlist {
            let nets = list.split(',').filter(|x| !x.trim().is_empty()).map(parse_ip_net);
            s.ip_allowlist = nets.collect::<Result<_, _>>()?;
        }
        if let Some(rate) = self.rate_limit {
            s.rate_limit_per_min = rate;
        }
        if let Some(policy) = &self.hold_policy {
            s.hold_policy = policy.parse::<HoldPolicy>()?;
        }
        if let Some(on) = self.test_mode {
            s.test_mode = on;
        }
        if let Some(m) = &self.multiplier {
            s.multiplier_ppm = parse_ppm(m).ok_or_else(|| anyhow::anyhow!("multiplier: not a number: {m}"))?;
        }
        if let Some(fee) = &self.deposit_fee_percent {
            // Percent → parts per million: 1 % = 10 000 ppm, i.e. the percentage with four decimals.
            let percent: skingate_types::Decimal = fee.parse().map_err(|e| anyhow::anyhow!("deposit fee: {e}"))?;
            let ppm = percent.to_scale_exact(4).and_then(|p| i64::try_from(p).ok());
            s.deposit_fee_ppm = ppm.ok_or_else(|| anyhow::anyhow!("deposit fee: at most 4 decimals: {fee}"))?;
        }
        if let Some(format) = &self.callback_format {
            s.callback_format = format.parse::<CallbackFormat>()?;
        }
        if let Some(origins) = &self.frame_ancestors {
            s.frame_ancestors =
                origins.split([' ', ',']).filter(|o| !o.trim().is_empty()).map(|o| o.trim().to_owned()).collect();
        }
        s.validate()?;
        Ok(())
    }
}

/// Runs a project subcommand.
pub async fn run(config: &Config, cmd: ProjectCmd) -> anyhow::Result<()> {
    if let ProjectCmd::Create { name, settings, json } = cmd {
        // Checked before the database is opened (and perhaps created): a refused command leaves nothing behind.
        let mut s = ProjectSettings::named(&name);
        settings.apply(&mut s)?;
        check_webhook_url(config, &s, None)?;
        let store = crate::open_or_create(config).await?;
        let p = store.create_project(&s, &new_secret(), now()).await?;
        print(&p, true, json, config);
        return Ok(());
    }
    let store = crate::open(config).await?;
    match cmd {
        ProjectCmd::Create { .. } => unreachable!("handled above"),
        ProjectCmd::List { json } => {
            for p in store.projects().await? {
                print(&p, false, json, config);
            }
        }
        ProjectCmd::Show { id, json } => print(&load(store.as_ref(), id).await?, true, json, config),
        ProjectCmd::Credit(args) => adjust(store.as_ref(), true, args).await?,
        ProjectCmd::Debit(args) => adjust(store.as_ref(), false, args).await?,
        ProjectCmd::RotateSecret { id, json } => {
            // Read and written under the write lock, like `set`: a concurrent edit is kept, not overwritten.
            let p = modify(store.as_ref(), id, &mut |p| {
                p.rotate_secret(new_secret(), now(), config.secret_rotation_grace_secs);
                Ok(())
            })
            .await?;
            print(&p, true, json, config);
        }
        ProjectCmd::Set { id, name, settings, json } => {
            let p = modify(store.as_ref(), id, &mut |p| {
                if let Some(name) = &name {
                    p.settings.name = name.clone();
                }
                let before = p.settings.clone();
                settings.apply(&mut p.settings).map_err(|e| e.to_string())?;
                check_webhook_url(config, &p.settings, Some(&before)).map_err(|e| e.to_string())?;
                if p.settings.events_url != before.events_url {
                    // A new endpoint gets a fresh start.
                    p.events_disabled_at = None;
                }
                Ok(())
            })
            .await?;
            // Secrets are shown by `create`, `show` and `rotate-secret` only (module docs).
            print(&p, false, json, config);
        }
    }
    Ok(())
}

/// Refuses webhook URLs the dispatcher would refuse (private addresses unless allowed). Only the URLs this
/// command sets are checked (all of them when there is no `before`): a URL stored earlier under another
/// policy must not block an unrelated change, such as switching the project off in an emergency.
fn check_webhook_url(config: &Config, s: &ProjectSettings, before: Option<&ProjectSettings>) -> anyhow::Result<()> {
    let policy = config.address_policy();
    let events = s.events_url.as_ref().filter(|u| before.is_none_or(|b| b.events_url.as_ref() != Some(*u)));
    let result = s.result_url.as_ref().filter(|u| before.is_none_or(|b| b.result_url.as_ref() != Some(*u)));
    for url in [events, result].into_iter().flatten() {
        policy
            .check_url(url)
            .map_err(|e| anyhow::anyhow!("{url}: {e} (set webhook_allow_private for local development)"))?;
    }
    Ok(())
}

async fn adjust(store: &dyn skingate_store::Store, credit: bool, args: AdjustArgs) -> anyhow::Result<()> {
    let AdjustArgs { id, amount, reason, transfer_id, json } = args;
    let project = load(store, id).await?;
    let decimal = amount.parse().map_err(|e| anyhow::anyhow!("amount: {e}"))?;
    let money = skingate_core::Money::from_wire(&decimal).map_err(|e| anyhow::anyhow!("amount: {e}"))?;
    let transfer_id = transfer_id.unwrap_or_else(|| format!("adj:{}", new_secret()));
    let done = skingate_server::adjustments::adjust(store, &project, credit, money, &reason, &transfer_id, now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = json!({"project": id.0, "transfer_id": done.transfer_id, "applied": done.applied,
        "balance": done.balance.to_wire().to_string()});
    if json {
        outln!("{out}");
    } else if done.applied {
        outln!(
            "{} {} USD: balance now {} USD (transfer {})",
            if credit { "credited" } else { "debited" },
            amount,
            done.balance.to_wire(),
            done.transfer_id
        );
    } else {
        outln!("transfer {} was already applied; balance {} USD", done.transfer_id, done.balance.to_wire());
    }
    Ok(())
}

/// Applies an edit to a project under the database's write lock ([`skingate_store::Store::modify_project`]).
async fn modify(
    store: &dyn skingate_store::Store,
    id: ProjectId,
    change: &mut skingate_store::ProjectChange<'_>,
) -> anyhow::Result<Project> {
    match store.modify_project(id, now(), change).await {
        Err(skingate_store::StoreError::NotFound) => anyhow::bail!("no project with id {id}"),
        Err(skingate_store::StoreError::Refused(why)) => anyhow::bail!("{why}"),
        other => Ok(other?),
    }
}

async fn load(store: &dyn skingate_store::Store, id: ProjectId) -> anyhow::Result<Project> {
    store.project(id).await?.ok_or_else(|| anyhow::anyhow!("no project with id {id}"))
}

fn to_json(p: &Project, secret: bool, config: &Config) -> Value {
    let s = &p.settings;
    let mut v = json!({
        "id": p.id.0,
        "client_id": p.client_id(),
        "name": s.name,
        "active": s.active,
        "result_url": s.result_url,
        "success_url": s.success_url,
        "fail_url": s.fail_url,
        "events_url": s.events_url,
        "ip_allowlist": s.ip_allowlist.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "rate_limit_per_min": s.rate_limit_per_min,
        "hold_policy": s.hold_policy.as_str(),
        "test_mode": s.test_mode,
        "multiplier": ppm_text(s.multiplier_ppm),
        "deposit_fee_percent": ppm_text(s.deposit_fee_ppm * 100),
        "callback_format": s.callback_format.as_str(),
        "frame_ancestors": s.frame_ancestors,
        "created_at": p.created_at,
        "events_disabled_at": p.events_disabled_at,
        "api_url": format!("{}/api.php", config.base_url()),
    });
    if secret {
        v["client_secret"] = Value::String(p.client_secret.clone());
    }
    v
}

fn print(p: &Project, secret: bool, json: bool, config: &Config) {
    let v = to_json(p, secret, config);
    if json {
        outln!("{v}");
        return;
    }
    let obj = v.as_object().expect("object");
    outln!("project {}", p.id);
    for (k, val) in obj {
        let shown = match val {
            Value::String(s) => s.clone(),
            Value::Null => "-".to_owned(),
            other => other.to_string(),
        };
        outln!("  {k:<20} {shown}");
    }
}
