//! The WebSocket hub: `/ws/?shopid=ID&signature=md5(ID+secret)[&last_event_id=evt_N]`.
//!
//! # Protocol (compatible with the vendor's)
//! - The first frame is `{"event":"auth_success"}` or `{"event":"auth_failed"}` (then the socket closes
//!   with code 4001). Every frame is JSON: legacy clients `JSON.parse` each one.
//! - Events arrive as `{"event":…,"data":…,"id":"evt_N","seq":N,"created":T}`, the outbox bytes unchanged.
//! - The client's text `ping` keeps the connection; it gets no answer (a non-JSON `pong` would break
//!   legacy parsers). The server sends WebSocket pings every `ws_ping_interval_secs` and drops a peer
//!   silent for `ws_idle_timeout_secs`. At each ping it also checks the credentials again: after a secret
//!   rotation, a switch-off or an allow-list change the socket is closed with 4001.
//! - Cursor: a client that connects without `last_event_id` and with `cursor=1` gets
//!   `{"event":"auth_success","data":{"last_event_id":"evt_N"}}` instead, N being the project's newest event
//!   (`evt_0` for none): every later event follows on this socket, so a client that drops before its first
//!   event resumes from there without a gap. Without `cursor=1` the frame is the vendor's, byte for byte.
//! - Resume: with `last_event_id`, the client first receives every later event of its project from the
//!   outbox, in order, then live events, with no gap and no duplicate. An unknown id gets
//!   `{"event":"resume_failed","data":{"reason":"unknown_event_id","last_event_id":"evt_N"}}` and live
//!   events after N, the project's newest.
//! - A client that cannot keep up (its queue of `ws_queue_len` events is full) is closed with code 4008:
//!   reconnect and resume from the last id seen. Frames over 64 KiB close the socket with 1009, text that is
//!   not UTF-8 with 1007, other protocol errors with 1002 (`close_for`).
//! - A close the peer starts is answered; after its own close frame a connection reads the peer's leftovers
//!   for up to [`LINGER`] (`linger`), so the close code is not lost to a TCP reset.
//! - Every frame the server sends (welcome, live events, close frames) must be taken by the peer within
//!   [`write_timeout`], a replayed one within [`REPLAY_WRITE_TIMEOUT`]; a peer that does not read (also in
//!   the middle of a replay) is dropped.
//! - When the gateway stops ([`Hub::close`]), every connection sends close 1001 and ends; `Running::stop`
//!   waits for them ([`Hub::closed`]), bounded.
//!
//! # Fan-out
//! Only committed events are ever sent: a single tailer reads the outbox in id order (woken by this
//! process's commits, polling for other processes') and hands each event to its project's subscribers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use skingate_core::project::{Project, ProjectId};
use skingate_store::StoredEvent;
use skingate_types::sign::verify_static_sign;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::events::{parse_public_id, public_id};
use crate::state::AppState;

/// Largest frame or message a client may send.
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// Close code: authentication failed (do not retry with the same credentials).
pub const CLOSE_AUTH_FAILED: u16 = 4001;
/// Close code: too slow to keep up; reconnect and resume.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code: the server is going away (shutdown); reconnect and resume.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: the gateway failed; reconnect and resume.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// Longest wait for a peer to take one frame: one that takes longer is not reading, and holding its socket,
/// task and queue forever would let clients that stop reading exhaust the gateway. A shorter
/// `ws_idle_timeout_secs` replaces it (see [`write_timeout`]).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a peer to take one frame of a resume's replay. Linux lets a connection queue up to 4 MiB
/// and, once that is full, lets the writer go on only after about a third of it has drained: a client that
/// replays a long backlog while reading steadily but slowly (165 KB/s was measured) waits far longer than
/// [`WRITE_TIMEOUT`] for one frame although it is reading. With this limit a replay goes through at some
/// 25 KB/s or more; a shutdown does not wait for it (it cancels the replay). A shorter `ws_idle_timeout_secs`
/// replaces it.
pub const REPLAY_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

type Frame = (i64, Utf8Bytes);

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Frame>,
    slow: Arc<AtomicBool>,
}

/// Live subscribers by project.
#[derive(Default)]
pub struct Hub {
    subscribers: RwLock<HashMap<ProjectId, Vec<Subscriber>>>,
    next_id: AtomicU64,
    connections: AtomicU64,
    /// Cancelled when the gateway stops: every connection closes with 1001.
    closing: CancellationToken,
    /// Every upgraded connection's task (axum's graceful shutdown does not wait for them), for the stop to
    /// wait on.
    tasks: TaskTracker,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hub({} connections)", self.connections.load(Ordering::Relaxed))
    }
}

/// A subscription; unsubscribes when dropped.
struct Subscription<'a> {
    hub: &'a Hub,
    project: ProjectId,
    id: u64,
    rx: mpsc::Receiver<Frame>,
    slow: Arc<AtomicBool>,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut subs = self.hub.subscribers.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(list) = subs.get_mut(&self.project) {
            list.retain(|s| s.id != self.id);
            if list.is_empty() {
                subs.remove(&self.project);
            }
        }
        self.hub.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    /// Authenticated connections on this node.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Whether any connection is subscribed (the tailer reads the outbox only for someone).
    fn has_subscribers(&self) -> bool {
        !self.subscribers.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty()
    }

    /// Has every connection, open or opening, send close 1001 ("server shutting down": reconnect and resume)
    /// and end. Called by `Running::stop`: without it upgraded sockets outlive the server, and the process's
    /// exit cuts them without a close frame.
    pub fn close(&self) {
        self.closing.cancel();
        self.tasks.close();
    }

    /// Resolves when every connection has ended after [`Hub::close`]; a peer that does not take its close
    /// frame holds it up to [`write_timeout`].
    pub async fn closed(&self) {
        self.tasks.wait().await;
    }

    fn subscribe(&self, project: ProjectId, queue: usize) -> Subscription<'_> {
        let (tx, rx) = mpsc::channel(queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slow = Arc::new(AtomicBool::new(false));
        let sub = Subscriber { id, tx, slow: slow.clone() };
        self.subscribers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(project)
            .or_default()
            .push(sub);
        self.connections.fetch_add(1, Ordering::Relaxed);
        Subscription { hub: self, project, id, rx, slow }
    }

    /// Hands a committed event to every subscriber of its project; full queues mark their client slow.
    pub fn publish(&self, event: &StoredEvent) {
        let frame: Frame = (event.seq, Utf8Bytes::from(event.payload.as_str()));
        let mut overflowed = Vec::new();
        if let Some(list) =
            self.subscribers.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&event.project)
        {
            for s in list {
                if s.tx.try_send(frame.clone()).is_err() {
                    overflowed.push(s.id);
                }
            }
        }
        if overflowed.is_empty() {
            return;
        }
        // Dropping the sender ends the client's stream once it has drained; the flag picks the close code.
        let mut subs = self.subscribers.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(list) = subs.get_mut(&event.project) {
            list.retain(|s| {
                let keep = !overflowed.contains(&s.id);
                if !keep {
                    s.slow.store(true, Ordering::Relaxed);
                }
                keep
            });
        }
    }
}

/// Reads committed events in id order after `cursor` and publishes them, until `shutdown`, moving `cursor`
/// on as it goes.
///
/// `cursor` starts at the outbox's last id read by the caller before the gateway serves anything (see
/// `app::start`): read here instead, in a task that may first run after requests have committed events, it
/// would skip those events for every connected client. It lives outside the task so that a tailer started
/// again after a panic ([`crate::supervise`]) goes on where the last one stopped.
pub async fn run_tailer(state: AppState, shutdown: CancellationToken, cursor: Arc<AtomicI64>) {
    let poll = Duration::from_millis(state.config.events_poll_interval_ms);
    let mut last = cursor.load(Ordering::Relaxed);
    loop {
        // Nobody to hand events to: move the cursor to the newest id instead of reading every event. The id is
        // read *before* looking again for subscribers, so one that subscribed meanwhile asked for (and got)
        // only events after it: a welcome's cursor or a resume reads the outbox after subscribing.
        if !state.hub.has_subscribers()
            && let Ok(newest) = state.store.last_event_id().await
            && !state.hub.has_subscribers()
        {
            last = last.max(newest);
            cursor.store(last, Ordering::Relaxed);
        }
        loop {
            match state.store.events_after(last, 1000).await {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    for e in &events {
                        state.hub.publish(e);
                        last = e.id;
                    }
                    cursor.store(last, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the outbox failed");
                    break;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = state.hub_wake.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// The upgrade handler for `/ws` and `/ws/`.
pub async fn handler(
    ws: WebSocketUpgrade,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    // The project's IP allow-list binds its event stream as it binds its API.
    let client_ip = crate::api::auth::client_ip(peer.ip(), &headers, &state.config.trusted_proxies);
    // Tracked from before the upgrade, so that a stop also waits for a connection whose task has not started.
    let tracked = state.hub.tasks.token();
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024)
        .max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .on_upgrade(move |socket| async move {
            connection(state, socket, params, client_ip).await;
            drop(tracked);
        })
}

/// How long a peer may take to take one frame: [`WRITE_TIMEOUT`], or the idle limit if shorter (a peer that
/// takes no frame for that long is as gone as one silent for that long).
pub fn write_timeout(config: &Config) -> Duration {
    WRITE_TIMEOUT.min(Duration::from_secs(config.ws_idle_timeout_secs))
}

/// Sends `msg` unless the peer does not take it within `limit`; whether it was sent. A `false` ends the
/// connection: the peer is not reading (a close frame would not get through either) or the socket failed.
async fn send_within<S: futures::Sink<Message> + Unpin>(sink: &mut S, msg: Message, limit: Duration) -> bool {
    matches!(tokio::time::timeout(limit, sink.send(msg)).await, Ok(Ok(())))
}

async fn authenticate(state: &AppState, params: &HashMap<String, String>, ip: IpAddr) -> Option<Arc<Project>> {
    let id: ProjectId = params.get("shopid")?.parse().ok()?;
    let project = state.project(id).await.ok()??;
    authorized(&project, params, ip).then_some(project)
}

/// Whether the connection's credentials still open the project's stream: the signature of its current secret,
/// the project active, the peer inside its IP allow-list.
fn authorized(project: &Project, params: &HashMap<String, String>, ip: IpAddr) -> bool {
    let Some(signature) = params.get("signature") else { return false };
    verify_static_sign(&project.client_id(), &project.client_secret, signature)
        && project.settings.active
        && project.settings.allows_ip(ip)
}

/// Checked at every ping: a connection whose credentials no longer hold (the secret was rotated, the project
/// switched off, its allow-list changed) is closed with 4001. A store that cannot answer keeps it open.
async fn revoked(state: &AppState, project: ProjectId, params: &HashMap<String, String>, ip: IpAddr) -> bool {
    match state.project(project).await {
        Ok(Some(p)) => !authorized(&p, params, ip),
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Ends a connection whose credentials do not (or no longer) hold, at connect or later alike: the
/// `auth_failed` frame legacy clients watch for, then close 4001. Whether the close frame went out (the caller
/// then lingers, see [`linger`]).
async fn refuse<S: futures::Sink<Message> + Unpin>(sink: &mut S, reason: &'static str, limit: Duration) -> bool {
    send_within(sink, text(r#"{"event":"auth_failed"}"#), limit).await
        && send_within(sink, close(CLOSE_AUTH_FAILED, reason), limit).await
}

/// How long a connection waits, after its close frame, for the peer's: long enough for a peer on a slow link,
/// short enough not to hold a stop up.
pub const LINGER: Duration = Duration::from_secs(1);

/// After the gateway's close frame: reads (and drops) what the peer still sends, until its close frame, the
/// end of the stream or [`LINGER`]. Dropping a socket with the peer's data unread makes the kernel reset the
/// connection, and the reset can overtake the close frame: the peer would see an abnormal end instead of the
/// documented close code.
async fn linger<St: futures::Stream<Item = Result<Message, axum::Error>> + Unpin>(stream: &mut St) {
    let drain = async {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Sends a close frame on a connection not split yet and lingers for the peer's.
async fn close_socket(socket: &mut WebSocket, msg: Message, limit: Duration) {
    if send_within(socket, msg, limit).await {
        linger(socket).await;
    }
}

/// [`close_socket`] for a connection split into its two halves.
async fn close_split<S, St>(sink: &mut S, stream: &mut St, msg: Message, limit: Duration)
where
    S: futures::Sink<Message> + Unpin,
    St: futures::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    if send_within(sink, msg, limit).await {
        linger(stream).await;
    }
}

/// The close frame for a frame the peer should not have sent: 1009 for one over the size limit, 1007 for text
/// that is not UTF-8, 1002 for anything else that breaks the protocol (RFC 6455 §7.4.1).
fn close_for(e: axum::Error) -> Message {
    use tungstenite::Error as WsError;
    match e.into_inner().downcast_ref::<WsError>() {
        Some(WsError::Capacity(_)) => close(1009, "message too big"),
        Some(WsError::Utf8(_)) => close(1007, "invalid UTF-8"),
        _ => close(1002, "protocol error"),
    }
}

fn text(s: &'static str) -> Message {
    Message::Text(Utf8Bytes::from_static(s))
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))
}

async fn connection(state: AppState, mut socket: WebSocket, params: HashMap<String, String>, ip: IpAddr) {
    let limit = write_timeout(&state.config);
    let opened = tokio::select! {
        biased;
        () = state.hub.closing.cancelled() => None,
        opened = open(&state, &mut socket, &params, ip, limit) => Some(opened),
    };
    match opened {
        Some(Some((mut sub, last_sent))) => {
            let credentials = Credentials { params: &params, ip };
            serve(&state, socket, &mut sub, last_sent, limit, credentials).await;
        }
        Some(None) => {}
        // Stopping while authenticating or replaying: the client resumes from the last event it got.
        None => close_socket(&mut socket, close(CLOSE_GOING_AWAY, SHUTTING_DOWN), limit).await,
    }
}

/// The reason of the close frame (1001) every connection gets when the gateway stops.
const SHUTTING_DOWN: &str = "server shutting down";

/// Authenticates, subscribes, sends the welcome and replays what a resuming client missed; the subscription
/// and the last sequence number sent, or `None` if the connection is over (close frame sent where one is owed).
async fn open<'s>(
    state: &'s AppState,
    socket: &mut WebSocket,
    params: &HashMap<String, String>,
    ip: IpAddr,
    limit: Duration,
) -> Option<(Subscription<'s>, i64)> {
    let Some(project) = authenticate(state, params, ip).await else {
        if refuse(socket, "auth failed", limit).await {
            linger(socket).await;
        }
        return None;
    };
    let sub = state.hub.subscribe(project.id, state.config.ws_queue_len);
    let resume = params.get("last_event_id");
    let mut last_sent = 0;
    let welcome = if resume.is_none() && params.get("cursor").is_some_and(|v| v == "1") {
        let (id, seq) = newest(state, socket, project.id, limit).await?;
        last_sent = seq;
        Message::text(format!(r#"{{"event":"auth_success","data":{{"last_event_id":"{}"}}}}"#, public_id(id)))
    } else {
        text(r#"{"event":"auth_success"}"#)
    };
    if !send_within(socket, welcome, limit).await {
        return None;
    }
    if let Some(resume) = resume {
        match replay(state, socket, project.id, resume, limit).await {
            Ok(Some(seq)) => last_sent = seq,
            Ok(None) => {
                // Nothing from before is owed: live events from the project's newest on, named so that the
                // client can resume from there.
                let (id, seq) = newest(state, socket, project.id, limit).await?;
                last_sent = seq;
                let msg = format!(
                    r#"{{"event":"resume_failed","data":{{"reason":"unknown_event_id","last_event_id":"{}"}}}}"#,
                    public_id(id)
                );
                if !send_within(socket, Message::text(msg), limit).await {
                    return None;
                }
            }
            Err(()) => return None,
        }
    }
    Some((sub, last_sent))
}

/// The project's newest event as (id, seq), `(0, 0)` for none; read after subscribing, so every later event
/// reaches the socket live. `None` (the socket closed with 1011) if the store failed.
async fn newest(state: &AppState, socket: &mut WebSocket, project: ProjectId, limit: Duration) -> Option<(i64, i64)> {
    match state.store.project_last_event(project).await {
        Ok(latest) => Some(latest.map_or((0, 0), |e| (e.id, e.seq))),
        Err(e) => {
            tracing::warn!(error = %e, "reading the project's newest event failed");
            close_socket(socket, close(CLOSE_INTERNAL_ERROR, "internal error"), limit).await;
            None
        }
    }
}

/// Sends every event after the named one; returns the last sequence number sent, `Ok(None)` for an unknown id.
/// A peer that does not take an event within `limit` ends the replay and the connection (`Err`).
async fn replay(
    state: &AppState,
    socket: &mut WebSocket,
    project: ProjectId,
    resume: &str,
    limit: Duration,
) -> Result<Option<i64>, ()> {
    let Some(id) = parse_public_id(resume) else { return Ok(None) };
    let mut seq = match state.store.project_event(project, id).await {
        Ok(Some(e)) => e.seq,
        Ok(None) if id == 0 => 0,
        Ok(None) => return Ok(None),
        Err(_) => return Err(()),
    };
    loop {
        let events = state.store.project_events_after(project, seq, 500).await.map_err(|_| ())?;
        let Some(last) = events.last() else { return Ok(Some(seq)) };
        seq = last.seq;
        for e in events {
            // Never past the idle limit: a peer that takes nothing for that long is as gone as a silent one.
            let within = limit.max(REPLAY_WRITE_TIMEOUT.min(Duration::from_secs(state.config.ws_idle_timeout_secs)));
            if !send_within(socket, Message::Text(Utf8Bytes::from(e.payload)), within).await {
                return Err(());
            }
        }
    }
}

/// What a connection authenticated with, checked again at every ping.
struct Credentials<'a> {
    params: &'a HashMap<String, String>,
    ip: IpAddr,
}

async fn serve(
    state: &AppState,
    socket: WebSocket,
    sub: &mut Subscription<'_>,
    mut last_sent: i64,
    limit: Duration,
    credentials: Credentials<'_>,
) {
    let (mut sink, mut stream) = socket.split();
    let ping_every = Duration::from_secs(state.config.ws_ping_interval_secs);
    let idle_limit = Duration::from_secs(state.config.ws_idle_timeout_secs);
    let closing = &state.hub.closing;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    loop {
        if closing.is_cancelled() {
            close_split(&mut sink, &mut stream, close(CLOSE_GOING_AWAY, SHUTTING_DOWN), limit).await;
            return;
        }
        let outgoing = tokio::select! {
            () = closing.cancelled() => continue,
            frame = sub.rx.recv() => match frame {
                Some((seq, _)) if seq <= last_sent => continue,
                Some((seq, payload)) => {
                    last_sent = seq;
                    Message::Text(payload)
                }
                None if sub.slow.load(Ordering::Relaxed) => {
                    let msg = close(CLOSE_SLOW_CONSUMER, "slow consumer: reconnect with last_event_id");
                    close_split(&mut sink, &mut stream, msg, limit).await;
                    return;
                }
                // The hub dropped this subscriber without marking it slow (it does not today).
                None => {
                    close_split(&mut sink, &mut stream, close(CLOSE_GOING_AWAY, SHUTTING_DOWN), limit).await;
                    return;
                }
            },
            incoming = stream.next() => match incoming {
                // The peer closes: its close frame is answered (the WebSocket layer queued the reply; closing
                // the sink writes it), so the peer sees a clean close, not an abnormal end.
                Some(Ok(Message::Close(_))) => {
                    let _ = tokio::time::timeout(limit, sink.close()).await;
                    return;
                }
                None => return,
                Some(Ok(_)) => {
                    // `ping` texts, pongs and anything else: the peer is alive. Protocol pings are answered
                    // by the WebSocket layer itself.
                    last_heard = Instant::now();
                    continue;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "websocket read error");
                    // The stream is broken: nothing more to read, so no lingering.
                    send_within(&mut sink, close_for(e), limit).await;
                    return;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > idle_limit {
                    close_split(&mut sink, &mut stream, close(CLOSE_GOING_AWAY, "idle"), limit).await;
                    return;
                }
                // Bounded, and never in the way of a stop: a slow store keeps the connection as it is.
                let check = tokio::time::timeout(limit, revoked(state, sub.project, credentials.params, credentials.ip));
                let gone = tokio::select! {
                    biased;
                    () = closing.cancelled() => false,
                    checked = check => checked.unwrap_or(false),
                };
                if gone {
                    if refuse(&mut sink, "credentials no longer valid", limit).await {
                        linger(&mut stream).await;
                    }
                    return;
                }
                Message::Ping(Default::default())
            }
        };
        // A stop does not wait for a frame the peer is slow to take: the next round sends the close frame
        // (after whatever part of this frame was already written).
        tokio::select! {
            biased;
            () = closing.cancelled() => {}
            sent = send_within(&mut sink, outgoing, limit) => if !sent { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event committed after the cursor was read and before the tailer first runs still reaches a client
    /// subscribed by then.
    #[tokio::test]
    async fn the_tailer_publishes_what_was_committed_before_it_first_ran() {
        let (_dir, state, project) = crate::state::testing::state_with_project().await;
        let last = state.store.last_event_id().await.unwrap();
        let mut sub = state.hub.subscribe(project.id, 8);
        let money = skingate_core::Money::from_minor(2_500);
        crate::adjustments::adjust(state.store.as_ref(), &project, true, money, "t", "early", 0).await.unwrap();
        let shutdown = CancellationToken::new();
        let tailer = tokio::spawn(run_tailer(state.clone(), shutdown.clone(), Arc::new(AtomicI64::new(last))));
        let (seq, frame) = tokio::time::timeout(Duration::from_secs(10), sub.rx.recv()).await.unwrap().unwrap();
        assert_eq!(seq, 1);
        assert!(frame.as_str().contains(r#""balance_value":"2.50""#), "{}", frame.as_str());
        shutdown.cancel();
        tailer.await.unwrap();
    }
}
