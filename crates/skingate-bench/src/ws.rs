//! WebSocket benchmarks: idle connections a node holds (and their memory), and commit-to-client latency.
//!
//! `ws-idle` runs the real `skingate serve` binary as a child process so its memory can be read from
//! `/proc` alone, opens `--connections` authenticated sockets (from several loopback source addresses, as
//! one address has only ~28k ephemeral ports), and reports resident memory per connection: the node's
//! RSS with the connections minus its RSS before, divided by their number. Run it through
//! `scripts/bench-ws.sh`, which raises the file-descriptor limit first.
//!
//! `ws-latency` starts the gateway in-process, connects `--projects` × `--per-project` sockets, then
//! commits `--rate` events per second (in small transactions, 10 ms apart) for `--seconds`; the instant
//! each transaction's commit returned is kept, and clients record receipt minus that instant. The baseline is the same
//! clients' round trip of a WebSocket ping over loopback, measured in the same run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use skingate_core::events::EventType;
use skingate_core::project::ProjectSettings;
use skingate_types::sign::static_sign;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::target::InProcess;

/// Options of `ws-idle`.
#[derive(Debug, clap::Args)]
pub struct IdleOpts {
    /// Connections to open.
    #[arg(long, default_value_t = 100_000)]
    connections: usize,
    /// The gateway binary (default: `skingate` next to this one).
    #[arg(long)]
    skingate: Option<std::path::PathBuf>,
    /// Connections opened at the same time.
    #[arg(long, default_value_t = 256)]
    parallel: usize,
}

/// Options of `ws-latency`.
#[derive(Debug, clap::Args)]
pub struct LatencyOpts {
    /// Projects, each with its own sockets.
    #[arg(long, default_value_t = 1_000)]
    projects: usize,
    /// Sockets per project.
    #[arg(long, default_value_t = 10)]
    per_project: usize,
    /// Events committed per second.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

/// Opens one authenticated socket from `source`; returns it after `auth_success`.
async fn open(
    source: IpAddr,
    server: SocketAddr,
    url: &str,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().contains("auth_success") => Ok(ws),
        other => anyhow::bail!("no auth_success: {other:?}"),
    }
}

/// `ws-idle`.
pub fn idle(opts: IdleOpts) -> anyhow::Result<()> {
    let bin = match opts.skingate {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("skingate"),
    };
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(&bin)
        .arg("serve")
        .env("SKINGATE_LISTEN", "127.0.0.1:0")
        .env("SKINGATE_DATABASE_URL", format!("sqlite://{}", dir.path().join("ws.db").display()))
        .env("RUST_LOG", "warn,skingate::serve=info")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let result = (|| {
        let (addr, id, secret) = read_banner(&mut child)?;
        let pid = child.id();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        rt.block_on(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = rss_kib(pid)?;
            let url = format!("ws://{addr}/ws/?shopid={id}&signature={}", static_sign(&id, &secret));
            let start = Instant::now();
            let sockets = open_many(addr, &url, opts.connections, opts.parallel).await?;
            let opened = start.elapsed();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = rss_kib(pid)?;
            let per = (after.saturating_sub(before)) as f64 * 1024.0 / sockets.len() as f64;
            println!("connections held: {}  (opened in {:.1} s)", sockets.len(), opened.as_secs_f64());
            println!("gateway RSS: {:.1} MiB before, {:.1} MiB after", before as f64 / 1024.0, after as f64 / 1024.0);
            println!("memory per connection: {:.1} KiB", per / 1024.0);
            println!(
                "{}",
                json!({"bench": "ws-idle", "connections": sockets.len(), "rss_before_kib": before,
                "rss_after_kib": after, "bytes_per_connection": per.round(), "open_secs": opened.as_secs_f64()})
            );
            drop(sockets);
            anyhow::Ok(())
        })
    })();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    result
}

fn read_banner(child: &mut std::process::Child) -> anyhow::Result<(SocketAddr, String, String)> {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut addr, mut creds) = (None, None);
    while addr.is_none() || creds.is_none() {
        let line = lines.next().ok_or_else(|| anyhow::anyhow!("serve exited"))??;
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = Some(rest.split_whitespace().next().unwrap_or("").parse()?);
        }
        if line.starts_with("Demo project:") {
            let field =
                |k: &str| line.split(k).nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or("").to_owned();
            creds = Some((field("client_id="), field("client_secret=")));
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let (id, secret) = creds.unwrap_or_default();
    Ok((addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))), id, secret))
}

/// Opens `n` sockets, spreading them over 127.0.0.1…127.0.0.16 as source addresses.
async fn open_many(
    server: SocketAddr,
    url: &str,
    n: usize,
    parallel: usize,
) -> anyhow::Result<Vec<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 16) as u8));
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let ws = open(source, server, &url).await;
            drop(permit);
            ws
        }));
    }
    let mut sockets = Vec::with_capacity(n);
    for t in tasks {
        sockets.push(t.await??);
    }
    Ok(sockets)
}

/// `ws-latency`.
pub fn latency(opts: LatencyOpts) -> anyhow::Result<()> {
    let server = InProcess::start(|c| c)?;
    let state = server.state.clone();
    let projects = opts.projects;
    let list = server.handle.block_on(async move {
        let mut list = Vec::new();
        for i in 0..projects {
            let mut s = ProjectSettings::named(&format!("ws{i}"));
            s.rate_limit_per_min = 1_000_000;
            list.push(state.store.create_project(&s, &format!("secret{i}"), 0).await?);
        }
        anyhow::Ok(list)
    })?;
    let base = Instant::now();
    let client_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let addr = server.addr;
    let receipts = Arc::new(std::sync::Mutex::new(Vec::<(u64, u64)>::new()));
    let received = Arc::new(AtomicU64::new(0));
    let (pings, readers) = client_rt.block_on(async {
        let mut readers = Vec::new();
        let mut pings = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let url =
                format!("ws://{addr}/ws/?shopid={}&signature={}", p.id, static_sign(&p.client_id(), &p.client_secret));
            for k in 0..opts.per_project {
                let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + ((i * opts.per_project + k) % 8) as u8));
                let mut ws = open(source, addr, &url).await?;
                if readers.len() < 100 {
                    // The baseline: loopback WebSocket round trip of the same client stack.
                    let t = Instant::now();
                    ws.send(Message::Ping(Default::default())).await?;
                    while let Some(Ok(m)) = ws.next().await {
                        if matches!(m, Message::Pong(_)) {
                            break;
                        }
                    }
                    pings.push(t.elapsed().as_micros() as u32);
                }
                let (receipts, count) = (receipts.clone(), received.clone());
                readers.push(tokio::spawn(async move {
                    while let Some(Ok(m)) = ws.next().await {
                        if let Message::Text(t) = m {
                            let now = base.elapsed().as_micros() as u64;
                            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                            if let Some(n) = v["data"]["n"].as_u64() {
                                receipts.lock().expect("lock").push((n, now));
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }));
            }
        }
        anyhow::Ok((pings, readers))
    })?;
    let state = server.state.clone();
    let (rate, seconds) = (opts.rate, opts.seconds);
    let capacity = usize::try_from(rate * seconds + rate).unwrap_or(0);
    let committed_at: Arc<Vec<AtomicU64>> = Arc::new((0..capacity).map(|_| AtomicU64::new(0)).collect());
    let stamps = committed_at.clone();
    let sent = server.handle.block_on(async move {
        // `rate` events per second in ten transactions per second... one every 10 ms.
        let per_tick = rate.div_ceil(100).max(1);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0u64;
        let end = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < end && (sent + per_tick) as usize <= stamps.len() {
            tick.tick().await;
            let mut tx = state.store.begin().await?;
            for n in sent..sent + per_tick {
                let p = &list[(n % list.len() as u64) as usize];
                skingate_server::events::emit(tx.as_mut(), p, EventType::StatusChange, json!({"n": n}), 0).await?;
            }
            tx.commit().await?;
            // Commit done: this is where "commit → client" starts.
            let t = base.elapsed().as_micros() as u64;
            for n in sent..sent + per_tick {
                stamps[n as usize].store(t, Ordering::Release);
            }
            sent += per_tick;
            state.events_committed();
        }
        anyhow::Ok(sent)
    })?;
    client_rt.block_on(async { tokio::time::sleep(Duration::from_secs(1)).await });
    let expected = sent * opts.per_project as u64;
    let mut lat: Vec<u32> = receipts
        .lock()
        .expect("lock")
        .iter()
        .map(|&(n, t)| t.saturating_sub(committed_at[n as usize].load(Ordering::Acquire)) as u32)
        .collect();
    lat.sort_unstable();
    let mut pings = pings;
    pings.sort_unstable();
    let pct =
        |v: &[u32], p: f64| if v.is_empty() { 0.0 } else { f64::from(v[((v.len() - 1) as f64 * p) as usize]) / 1000.0 };
    println!(
        "connections: {}  events committed: {sent}  frames received: {} of {expected}",
        projects * opts.per_project,
        lat.len()
    );
    println!(
        "commit -> client   p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    println!("ws ping round trip p50 {:.3} ms  p99 {:.3} ms (baseline)", pct(&pings, 0.5), pct(&pings, 0.99));
    println!(
        "{}",
        json!({"bench": "ws-latency", "connections": projects * opts.per_project, "events": sent,
        "frames": lat.len(), "expected_frames": expected, "p50_ms": pct(&lat, 0.5), "p99_ms": pct(&lat, 0.99),
        "ping_p50_ms": pct(&pings, 0.5), "ping_p99_ms": pct(&pings, 0.99)})
    );
    for r in readers {
        r.abort();
    }
    server.stop();
    Ok(())
}
