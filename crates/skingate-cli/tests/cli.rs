//! The operator contract, tested on the real binary: `serve` prints where it listens and stops on
//! SIGTERM; `project ...` works on the same database while the server runs; a restart reuses the demo
//! project.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_skingate");

fn skingate(db: &Path) -> Command {
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env("SKINGATE_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("SKINGATE_LISTEN", "127.0.0.1:0")
        .env("SKINGATE_PROJECT_CACHE_TTL_MS", "0")
        .env("RUST_LOG", "info")
        .env_remove("SKINGATE_CONFIG")
        .current_dir(db.parent().unwrap());
    cmd
}

/// Runs a CLI command to completion and returns its stdout.
fn run(db: &Path, args: &[&str]) -> String {
    let out = skingate(db).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

struct Server {
    child: Child,
    base: String,
    demo: (String, String),
}

/// Starts `skingate serve` and reads its stdout until it says where it listens and who the demo is.
fn serve(db: &Path) -> Server {
    let mut cmd = skingate(db);
    cmd.arg("serve");
    serve_with(cmd)
}

/// [`serve`] with a command of the test's own that ends up running `skingate serve`.
fn serve_with(mut cmd: Command) -> Server {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // Keep draining after the test stops listening, so the server never writes to a closed pipe.
            let _ = tx.send(line);
        }
    });
    let (mut base, mut demo) = (None, None);
    while base.is_none() || demo.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("serve printed its banner");
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = Some(rest.split_whitespace().next().unwrap().to_owned());
        }
        if line.starts_with("Demo project:") {
            let field = |k: &str| line.split(k).nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
            demo = Some((field("client_id="), field("client_secret=")));
        }
    }
    Server { child, base: base.unwrap(), demo: demo.unwrap() }
}

impl Server {
    /// Sends SIGTERM and waits (bounded) for a clean exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().unwrap();
        panic!("serve did not stop within 6 s of SIGTERM");
    }
}

/// Calls the API in header mode with a form body.
fn api(base: &str, id: &str, secret: &str, form: &[(&str, &str)]) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{base}/api.php"))
            .header("X-CLIENT-ID", id)
            .header("X-CLIENT-SECRET", secret)
            .form(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

fn balance(base: &str, id: &str, secret: &str) -> Value {
    api(base, id, secret, &[("method", "balance")])
}

#[test]
fn serve_manage_projects_while_running_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/gate.db");
    let server = serve(&db);
    let (demo_id, demo_secret) = server.demo.clone();
    assert_eq!(balance(&server.base, &demo_id, &demo_secret)["status"], "success");

    // A project created by the CLI while the server runs is usable at once.
    let created: Value =
        serde_json::from_str(run(&db, &["project", "create", "--name", "Shop A", "--json"]).trim()).unwrap();
    let (id, secret) = (created["client_id"].as_str().unwrap(), created["client_secret"].as_str().unwrap());
    assert_eq!(secret.len(), 32);
    assert_eq!(balance(&server.base, id, secret)["status"], "success");

    // Settings: deactivate, then reactivate with a rate limit and URLs.
    run(&db, &["project", "set", id, "--active", "false"]);
    assert_eq!(balance(&server.base, id, secret)["error_code"], -4);
    let set: Value = serde_json::from_str(
        run(
            &db,
            &[
                "project",
                "set",
                id,
                "--active",
                "true",
                "--rate-limit",
                "100",
                "--result-url",
                "https://shop.example/cb",
                "--ip-allowlist",
                "127.0.0.1,10.0.0.0/8",
                "--hold-policy",
                "credit_early",
                "--json",
            ],
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(set["rate_limit_per_min"], 100);
    assert_eq!(set["ip_allowlist"], serde_json::json!(["127.0.0.1/32", "10.0.0.0/8"]));
    assert!(set.get("client_secret").is_none(), "set does not print the secret: {set}");
    assert_eq!(balance(&server.base, id, secret)["status"], "success");

    // Rotation: the old secret is refused, the new one works.
    let rotated: Value = serde_json::from_str(run(&db, &["project", "rotate-secret", id, "--json"]).trim()).unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(balance(&server.base, id, secret)["error_code"], -3);
    assert_eq!(balance(&server.base, id, new_secret)["status"], "success");

    // Listing never shows secrets; show does.
    let list = run(&db, &["project", "list", "--json"]);
    assert_eq!(list.lines().count(), 2);
    assert!(!list.contains("client_secret"));
    assert!(run(&db, &["project", "show", id]).contains(new_secret));
    server.terminate();

    // A second start reuses the database and the demo project.
    let again = serve(&db);
    assert_eq!(again.demo, (demo_id, demo_secret));
    again.terminate();
}

#[test]
fn bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    for args in [
        &["project", "create", "--name", "X", "--result-url", "ftp://nope"][..],
        &["project", "create", "--name", "X", "--ip-allowlist", "not-an-ip"],
        &["project", "create", "--name", "X", "--rate-limit", "0"],
        &["project", "show", "999"],
    ] {
        let out = skingate(&db).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
    }
    assert!(!db.exists(), "refused commands leave no database behind");
    // Webhook URLs to private addresses: refused unless development mode allows them.
    let created: Value =
        serde_json::from_str(run(&db, &["project", "create", "--name", "S", "--json"]).trim()).unwrap();
    let id = created["client_id"].as_str().unwrap();
    let set = ["project", "set", id, "--events-url", "http://127.0.0.1:9/hook"];
    let refused = skingate(&db).args(set).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not allowed"));
    let allowed = skingate(&db).args(set).env("SKINGATE_WEBHOOK_ALLOW_PRIVATE", "1").output().unwrap();
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
}

#[test]
fn currencies_and_maintenance_switch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    // Pointed at a database that does not exist (the server runs elsewhere), a command says so and creates
    // nothing; `migrate` creates it.
    let missing = skingate(&db).args(["currency", "list"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no database at"));
    assert!(!db.exists(), "nothing created");
    assert!(run(&db, &["migrate"]).contains("created"));
    assert!(run(&db, &["migrate"]).contains("is up to date"));
    assert!(run(&db, &["currency", "list"]).contains("rub"));
    assert!(run(&db, &["currency", "set", "rub", "95.25"]).contains("rub = 95.25"));
    assert!(run(&db, &["currency", "list"]).contains("95.25"));
    assert!(!skingate(&db).args(["currency", "set", "rub", "-1"]).output().unwrap().status.success());
    // A rate the configuration pins is applied by `migrate` (and `serve`), not by every command: a `currency
    // set` lasts until then, and says so.
    let pinned = dir.path().join("pinned.toml");
    std::fs::write(&pinned, r#"currencies = [{ code = "rub", name = "Russian Ruble", scale = 2, rate = "90" }]"#)
        .unwrap();
    let with = |args: &[&str]| {
        let out = skingate(&db).arg("--config").arg(&pinned).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    with(&["migrate"]);
    assert!(with(&["currency", "list"]).0.contains(" 90 "), "migrate applies the pinned rate");
    let (_, note) = with(&["currency", "set", "rub", "95"]);
    assert!(note.contains("the configuration sets rub to 90"), "{note}");
    assert!(with(&["currency", "list"]).0.contains(" 95 "), "a read-only command keeps the rate set");
    assert!(run(&db, &["maintenance", "on"]).contains("maintenance: on"));
    assert!(run(&db, &["maintenance", "status"]).contains("maintenance: on"));
    assert!(run(&db, &["maintenance", "off"]).contains("maintenance: off"));
    let forced = skingate(&db).env("SKINGATE_MAINTENANCE", "true").args(["maintenance", "status"]).output().unwrap();
    let forced = String::from_utf8_lossy(&forced.stdout);
    assert!(forced.contains("maintenance: on (forced by the configuration"), "{forced}");
    assert!(forced.contains("the run-time switch is off"), "{forced}");
    let odd = skingate(&db).args(["receive", "--port", "0", "--status", "999"]).output().unwrap();
    assert!(!odd.status.success(), "an impossible HTTP status is refused");
}

#[test]
fn sign_and_verify_tools() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    let out = run(&db, &["sign", "api", "--secret", "123", "method=orderstatus", "order_id=1", "shopid=123"]);
    assert!(out.contains("string to sign: method:orderstatus;order_id:1;shopid:123;"), "{out}");
    assert!(out.contains("sign: abee99d476c736102c3d6062807761b6e4d31dd8"), "{out}");
    let body = dir.path().join("body.json");
    std::fs::write(&body, r#"{"event":"balance_change","data":{"balance_value":"11.945"}}"#).unwrap();
    let body_arg = body.to_str().unwrap();
    let signed =
        run(&db, &["sign", "webhook", "--client-id", "1", "--secret", "123", "--body", body_arg, "--id", "evt_9"]);
    assert!(signed.contains("Signature: 5e19c9dc867d542ac1f17426ec56d0ecb94f968230853e993ad5dba7536bfd3f"), "{signed}");
    let mut args = vec!["verify", "--client-id", "1", "--secret", "123", "--body", body_arg];
    let headers: Vec<String> = signed.lines().filter(|l| l.starts_with("webhook-")).map(|l| l.to_owned()).collect();
    for h in &headers {
        args.push("-H");
        args.push(h);
    }
    assert!(run(&db, &args).contains("StandardWebhooks"));
    std::fs::write(&body, "{}").unwrap();
    assert!(!skingate(&db).args(&args).output().unwrap().status.success(), "tampered body must fail");
}

/// Accepts `n` HTTP requests on a loopback port and returns them (headers and body as text).
fn capture_requests(n: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut got = Vec::new();
        for stream in listener.incoming().take(n) {
            let mut stream = stream.unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let read = stream.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..read]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
                if read == 0 {
                    break;
                }
            }
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            got.push(String::from_utf8_lossy(&buf).into_owned());
        }
        got
    });
    (url, handle)
}

#[test]
fn credit_debit_trigger_and_listen() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    let server = serve(&db);
    let created: Value =
        serde_json::from_str(run(&db, &["project", "create", "--name", "Dev", "--json"]).trim()).unwrap();
    let (id, secret) =
        (created["client_id"].as_str().unwrap().to_owned(), created["client_secret"].as_str().unwrap().to_owned());
    let (forward_to, captured) = capture_requests(3);
    let listen = skingate(&db)
        .args([
            "listen",
            "--forward-to",
            &forward_to,
            "--client-id",
            &id,
            "--secret",
            &secret,
            "--gateway",
            &server.base,
        ])
        .args(["--since", "evt_0", "--max-events", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let credit: Value = serde_json::from_str(
        run(&db, &["project", "credit", &id, "10.50", "--reason", "welcome bonus", "--json"]).trim(),
    )
    .unwrap();
    assert_eq!(credit["balance"], "10.50");
    let refused = skingate(&db).args(["project", "debit", &id, "11", "--reason", "too much"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("insufficient funds"));
    // The same transfer id twice moves money once.
    for _ in 0..2 {
        run(&db, &["project", "debit", &id, "0.50", "--reason", "fee", "--transfer-id", "fee-1"]);
    }
    assert_eq!(balance(&server.base, &id, &secret)["balance"], "10.00");
    run(&db, &["trigger", "status_change", "--project", &id]);

    let out = listen.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(lines.lines().all(|l| l.ends_with("-> 200")), "{lines}");
    let requests = captured.join().unwrap();
    let first = &requests[0];
    let body = first.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.contains(r#""balance_value":"10.50""#), "{body}");
    let signature = skingate_types::sign::events_signature(&secret, body.as_bytes());
    assert!(first.to_ascii_lowercase().contains(&format!("signature: {signature}")), "{first}");
    assert!(requests[2].contains("\"status_change\""));
    // A handler that never accepts: retried briefly, then the run fails and says so.
    let dead = skingate(&db)
        .args(["listen", "--forward-to", "http://127.0.0.1:9/hook", "--client-id", &id, "--secret", &secret])
        .args(["--gateway", &server.base, "--since", "evt_0", "--max-events", "1"])
        .output()
        .unwrap();
    assert!(!dead.status.success());
    let why = String::from_utf8_lossy(&dead.stderr);
    assert!(why.contains("retrying") && why.contains("1 of 1 event(s) were not accepted"), "{why}");
    // The history shows both adjustments with their reasons.
    let history = balance_history(&server.base, &id, &secret);
    let reasons: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|i| i["reference"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["welcome bonus", "fee"]);
    server.terminate();
}

fn balance_history(base: &str, id: &str, secret: &str) -> Value {
    api(base, id, secret, &[("method", "balance_history"), ("starting", "0"), ("ending", "99999999999")])
}

#[test]
fn simulated_steam_users() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    let out: Value = serde_json::from_str(run(&db, &["sim", "user", "76561198000000000", "--json"]).trim()).unwrap();
    assert_eq!(out["account_id"], 39_734_272);
    let token = out["trade_token"].as_str().unwrap();
    assert_eq!(token.len(), 8);
    assert!(out["trade_url"].as_str().unwrap().ends_with(&format!("partner=39734272&token={token}")));
    assert!(!out["inventories"]["cs2"].as_array().unwrap().is_empty());
    // Same seed, same world; another seed, another token.
    let again: Value = serde_json::from_str(run(&db, &["sim", "user", "76561198000000000", "--json"]).trim()).unwrap();
    assert_eq!(again, out);
    let other = skingate(&db)
        .args(["sim", "user", "76561198000000000", "--json"])
        .env("SKINGATE_SIM_SEED", "2")
        .output()
        .unwrap();
    let other: Value = serde_json::from_slice(&other.stdout).unwrap();
    assert_ne!(other["trade_token"], out["trade_token"]);
    assert!(!skingate(&db).args(["sim", "user", "123"]).output().unwrap().status.success());
}

#[test]
fn operator_acts_in_the_running_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    let server = serve(&db);
    let sim =
        |args: &[&str]| skingate(&db).env("SKINGATE_PUBLIC_URL", &server.base).arg("sim").args(args).output().unwrap();
    let out = sim(&["profile", "76561198000000000", "decline"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["profile"]["kind"], "decline");
    let out = sim(&["advance", "8d"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(answer["now"].as_i64().unwrap() > 8 * 86_400);
    let advanced = answer["now"].as_i64().unwrap();
    let missing = sim(&["accept", "12345"]);
    assert!(!missing.status.success(), "no such offer");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    server.terminate();
    // A restart keeps the demo clock where it was moved to: time never runs backwards.
    let server = serve(&db);
    let out = skingate(&db).env("SKINGATE_PUBLIC_URL", &server.base).args(["sim", "advance", "1s"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(answer["now"].as_i64().unwrap() > advanced, "{answer} after {advanced}");
    server.terminate();
}

#[test]
fn market_stock_and_switch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    run(&db, &["migrate"]);
    let added = run(&db, &["stock", "add", "--game", "rust", "--name", "Tempered AK47", "--count", "3"]);
    assert!(added.contains("added 3 unit(s)"), "{added}");
    let listed = run(&db, &["stock", "list", "--game", "rust", "--json"]);
    let units: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(units.len(), 3);
    assert_eq!(units[0]["price"], "85.00");
    let id = units[0]["id"].to_string();
    let partly = skingate(&db).args(["stock", "withdraw", &id, "999999"]).output().unwrap();
    assert!(!partly.status.success(), "a unit not for sale fails the command");
    let why = String::from_utf8_lossy(&partly.stderr);
    assert!(why.contains("nothing was withdrawn; not for sale: 999999 (unknown)"), "{why}");
    assert_eq!(run(&db, &["stock", "list", "--game", "rust"]).lines().count(), 3, "all or none");
    assert!(run(&db, &["stock", "withdraw", &id]).contains("withdrew 1 unit(s)"));
    // Its output cut short by its reader (`| head -1`), a command ends quietly with success.
    let mut listing = skingate(&db)
        .args(["stock", "list", "--limit", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(listing.stdout.take());
    let cut = listing.wait_with_output().unwrap();
    assert!(cut.status.success(), "{}", String::from_utf8_lossy(&cut.stderr));
    assert!(cut.stderr.is_empty(), "{}", String::from_utf8_lossy(&cut.stderr));
    for count in ["0", "100001"] {
        let refused =
            skingate(&db).args(["stock", "add", "--name", "Tempered AK47", "--count", count]).output().unwrap();
        assert!(!refused.status.success(), "--count {count}");
    }
    assert_eq!(run(&db, &["stock", "list", "--game", "rust"]).lines().count(), 2);
    let second = units[1]["id"].to_string();
    assert!(run(&db, &["stock", "withdraw", &second, &second]).contains("withdrew 1 unit(s)"), "an id named twice");
    assert_eq!(run(&db, &["stock", "list", "--game", "rust"]).lines().count(), 1);
    assert!(!skingate(&db).args(["stock", "add", "--name", "No Such Skin"]).output().unwrap().status.success());
    // A second run (most likely in the same second) makes units of its own: no asset id twice.
    run(&db, &["stock", "add", "--game", "rust", "--name", "Tempered AK47", "--count", "3"]);
    let listed = run(&db, &["stock", "list", "--game", "rust", "--json"]);
    let assets: std::collections::HashSet<(String, i64)> = listed
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|u| (u["bot"].as_str().unwrap().to_owned(), u["asset_id"].as_i64().unwrap()))
        .collect();
    assert_eq!(assets.len(), 4, "{listed}");
    assert!(run(&db, &["market", "status"]).contains("market: on"));
    assert!(run(&db, &["market", "off"]).contains("market: off"));
    assert!(run(&db, &["market", "on"]).contains("market: on"));
}

#[test]
fn deposit_settings() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    let created: Value =
        serde_json::from_str(run(&db, &["project", "create", "--name", "D", "--json"]).trim()).unwrap();
    let id = created["client_id"].as_str().unwrap();
    assert_eq!((created["test_mode"].as_bool(), created["multiplier"].as_str()), (Some(false), Some("1")));
    assert_eq!(created["callback_format"], "form");
    let args = [
        "project",
        "set",
        id,
        "--test-mode",
        "true",
        "--multiplier",
        "1.5",
        "--deposit-fee-percent",
        "2.5",
        "--callback-format",
        "json",
        "--frame-ancestors",
        "https://shop.example, https://other.example:8443",
        "--json",
    ];
    let set: Value = serde_json::from_str(run(&db, &args).trim()).unwrap();
    assert_eq!(set["test_mode"], true);
    assert_eq!(set["multiplier"], "1.5");
    assert_eq!(set["deposit_fee_percent"], "2.5");
    assert_eq!(set["callback_format"], "json");
    assert_eq!(set["frame_ancestors"], serde_json::json!(["https://shop.example", "https://other.example:8443"]));
    // Persisted.
    let shown: Value = serde_json::from_str(run(&db, &["project", "show", id, "--json"]).trim()).unwrap();
    assert_eq!(shown["multiplier"], "1.5");
    for bad in [
        &["project", "set", id, "--multiplier", "0"][..],
        &["project", "set", id, "--deposit-fee-percent", "100"],
        &["project", "set", id, "--callback-format", "xml"],
        &["project", "set", id, "--frame-ancestors", "https://shop.example/path"],
    ] {
        assert!(!skingate(&db).args(bad).output().unwrap().status.success(), "{bad:?} should fail");
    }
}

/// Only `serve` and `migrate` change a database's schema: another command refuses a database that is not
/// exactly this binary's (older: it would be upgraded under a running older server; none at all: an empty
/// file), and a refused `project create` leaves no database behind.
#[test]
fn commands_leave_the_schema_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    let refused = skingate(&db).args(["project", "create", "--name", "x", "--rate-limit", "0"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(!db.exists(), "a refused project create created a database");
    std::fs::write(&db, b"").unwrap();
    let empty = skingate(&db).args(["project", "list"]).output().unwrap();
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("not a skingate database"));
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "the refused file was left untouched");
    std::fs::remove_file(&db).unwrap();
    run(&db, &["migrate"]);
    // Make the database look one migration behind this binary.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = format!("sqlite://{}", db.display());
    let newest = rt.block_on(async {
        use sqlx::ConnectOptions as _;
        let mut conn = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().connect().await.unwrap();
        let v: i64 =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&mut conn).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?").bind(v).execute(&mut conn).await.unwrap();
        // Undo what the newest migration (0011_deliveries_in_order) did, so `migrate` can apply it again.
        assert_eq!(v, 11, "undo the newest migration here");
        sqlx::query("DROP INDEX deliveries_in_order").execute(&mut conn).await.unwrap();
        sqlx::query("ALTER TABLE deliveries DROP COLUMN order_key").execute(&mut conn).await.unwrap();
        v
    });
    let older = skingate(&db).args(["market", "status"]).output().unwrap();
    assert!(!older.status.success());
    assert!(String::from_utf8_lossy(&older.stderr).contains("schema is older than this binary"));
    assert!(run(&db, &["migrate"]).contains("upgraded (1 migration applied)"));
    assert!(run(&db, &["migrate"]).contains("is up to date"));
    let count = rt.block_on(async {
        use sqlx::ConnectOptions as _;
        let mut conn = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().connect().await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = ?")
            .bind(newest)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    });
    assert_eq!(count, 1, "migrate upgrades it");
    assert!(run(&db, &["market", "status"]).contains("market: on"));
    // A newer binary's migration (a rollback to this binary): every command, `migrate` included, says so.
    rt.block_on(async {
        use sqlx::ConnectOptions as _;
        let mut conn = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().connect().await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (99, 'from a newer binary', 1, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    });
    for command in [&["migrate"][..], &["project", "list"]] {
        let newer = skingate(&db).args(command).output().unwrap();
        assert!(!newer.status.success());
        let said = String::from_utf8_lossy(&newer.stderr);
        assert!(said.contains("schema is newer than this binary"), "{command:?}: {said}");
    }
}

/// One server per database; a setting changed by `project set` is checked, a URL stored earlier under
/// another address policy is not (it must not block switching the project off); SIGHUP stops the server
/// cleanly.
#[test]
fn one_server_per_database_and_unrelated_settings_pass() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    let server = serve(&db);
    let second = skingate(&db).arg("serve").output().unwrap();
    assert!(!second.status.success(), "a second server on the same database");
    assert!(String::from_utf8_lossy(&second.stderr).contains("another skingate server is running"));
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    let through_link = skingate(&link).arg("serve").output().unwrap();
    assert!(!through_link.status.success(), "a second server through a symlink to the same database");
    let migrate = skingate(&db).arg("migrate").output().unwrap();
    assert!(!migrate.status.success(), "migrate under a running server");
    assert!(String::from_utf8_lossy(&migrate.stderr).contains("another skingate server is running"));
    let private = skingate(&db)
        .env("SKINGATE_WEBHOOK_ALLOW_PRIVATE", "1")
        .args(["project", "set", "1", "--result-url", "http://127.0.0.1:9/cb"])
        .output()
        .unwrap();
    assert!(private.status.success(), "{}", String::from_utf8_lossy(&private.stderr));
    let refused =
        skingate(&db).args(["project", "set", "1", "--events-url", "http://127.0.0.1:9/ev"]).output().unwrap();
    assert!(!refused.status.success(), "a private URL set now is checked");
    run(&db, &["project", "set", "1", "--active", "false"]);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let mut child = server.child;
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status} on SIGHUP");
            let restarted = serve(&db);
            restarted.terminate();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    panic!("serve did not stop within 6 s of SIGHUP");
}

/// Started under `nohup` (SIGHUP ignored), a closed terminal does not stop the server; SIGTERM still does.
#[test]
fn under_nohup_a_hangup_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gate.db");
    let plain = skingate(&db);
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("trap '' HUP; exec {BIN} serve")]).current_dir(dir.path());
    for (key, value) in plain.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let mut server = serve_with(cmd);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    // A handled hang-up stops the server within milliseconds (see the SIGHUP test above); give it time to.
    std::thread::sleep(Duration::from_millis(300));
    // Still serving after the hang-up: an API call answers.
    let (id, secret) = server.demo.clone();
    assert_eq!(balance(&server.base, &id, &secret)["status"], "success");
    assert!(server.child.try_wait().unwrap().is_none(), "the hang-up stopped a server started under nohup");
    server.terminate();
}
