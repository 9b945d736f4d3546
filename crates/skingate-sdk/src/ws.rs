//! Real-time events over WebSocket, with reconnection and resume.
//!
//! [`EventStream::next`] hides the connection: it connects, authenticates, answers nothing to the
//! server's pings (the WebSocket layer does), sends the protocol's `ping` text every 30 s, and when the
//! connection drops it reconnects with exponential backoff (100 ms doubling to 10 s) and `last_event_id`
//! set to the last event it returned, so the gateway replays what was missed. Events already returned
//! are never returned twice (they are recognised by their per-project `seq`).
//!
//! A fresh stream asks skingate for its starting point (`cursor=1`): the `auth_success` frame names the
//! project's newest event, so a stream that drops before its first event still resumes without a gap. (A
//! gateway that does not know `cursor` sends the plain frame; the stream then starts live, as before.)
//! When the gateway cannot replay (`resume_failed`: the id is unknown to it), [`EventStream::next`] says so
//! once with [`StreamError::ResumeFailed`]: what happened in between must be reconciled from the API
//! (`market_history`, `orders`); calling it again goes on with live events.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use skingate_types::sign::static_sign;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Interval of the protocol's `ping` text.
const PING_EVERY: Duration = Duration::from_secs(30);
/// Backoff bounds between reconnection attempts.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// One event as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `balance_change`, `buy_item`, `status_change`, … (open set).
    pub event: String,
    /// The event's data object (`Value::Null` when absent).
    pub data: Value,
    /// `evt_N`, when the gateway sends ids (skingate does).
    pub id: Option<String>,
    /// Per-project sequence number, when sent.
    pub seq: Option<i64>,
    /// The frame exactly as received.
    pub raw: String,
}

/// Why [`EventStream::next`] returned no event. Not every variant is final: match on it rather than stopping at
/// the first error (more may come, hence `non_exhaustive`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The gateway refused the credentials; reconnecting would not help.
    #[error("authentication failed")]
    AuthFailed,
    /// The gateway could not resume after `after` (it does not know that id): events committed since may
    /// never arrive on this stream. Not fatal: the next call goes on with live events.
    #[error("the gateway could not resume after {after}; events since then may be missing")]
    ResumeFailed {
        /// The id the stream asked to resume after.
        after: String,
    },
}

/// What one frame means to the stream.
enum Frame {
    Event(Event),
    ResumeFailed,
    /// The gateway revoked the credentials mid-stream (a rotated secret, a switched-off project).
    AuthFailed,
    Nothing,
}

/// A resumable stream of a project's events.
#[derive(Debug)]
pub struct EventStream {
    url: String,
    socket: Option<Socket>,
    last_id: Option<String>,
    last_seq: i64,
    /// The id the current connection resumed after (named by a `resume_failed`).
    resuming: Option<String>,
    backoff: Duration,
    reconnects: u64,
}

impl EventStream {
    /// A stream for `base_url` (`ws://host:port` or `wss://…`); nothing connects until [`EventStream::next`].
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> Self {
        let sig = static_sign(client_id, client_secret);
        let url = format!("{}/ws/?shopid={client_id}&signature={sig}", base_url.trim_end_matches('/'));
        Self { url, socket: None, last_id: None, last_seq: 0, resuming: None, backoff: BACKOFF_START, reconnects: 0 }
    }

    /// Starts after this event id (as if it had been received already).
    pub fn resume_from(mut self, last_event_id: &str) -> Self {
        self.last_id = Some(last_event_id.to_owned());
        self
    }

    /// The id of the last event returned (or, before the first, the starting point skingate announced).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// How many times the stream had to reconnect.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Drops the connection (the next [`EventStream::next`] reconnects and resumes). For tests and for
    /// callers that want to force a fresh connection.
    pub fn disconnect(&mut self) {
        self.socket = None;
    }

    /// The next event, reconnecting as often as needed. Errors when the credentials are refused (final) and,
    /// once, when a resume failed (see [`StreamError::ResumeFailed`]; call again to go on).
    pub async fn next(&mut self) -> Result<Event, StreamError> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                self.connect().await?;
                continue;
            };
            let frame = tokio::select! {
                frame = socket.next() => frame,
                () = tokio::time::sleep(PING_EVERY) => {
                    if socket.send(Message::text("ping")).await.is_err() {
                        self.socket = None;
                    }
                    continue;
                }
            };
            match frame {
                Some(Ok(Message::Text(text))) => match self.accept(text.as_str()) {
                    Frame::Event(event) => return Ok(event),
                    Frame::ResumeFailed => {
                        let after = self.resuming.take().unwrap_or_default();
                        return Err(StreamError::ResumeFailed { after });
                    }
                    Frame::AuthFailed => {
                        self.socket = None;
                        return Err(StreamError::AuthFailed);
                    }
                    Frame::Nothing => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => self.socket = None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Parses a frame: an event to return, a failed resume to report, or nothing (control frames, repeats).
    fn accept(&mut self, text: &str) -> Frame {
        let Ok(v) = serde_json::from_str::<Value>(text) else { return Frame::Nothing };
        let Some(event) = v.get("event").and_then(Value::as_str) else { return Frame::Nothing };
        match event {
            "auth_success" => return Frame::Nothing,
            "auth_failed" => return Frame::AuthFailed,
            "resume_failed" => {
                // Live events follow the newest event the gateway names; resume from there next time.
                self.last_id = Self::cursor_of(text);
                return Frame::ResumeFailed;
            }
            _ => {}
        }
        let seq = v.get("seq").and_then(Value::as_i64);
        if let Some(seq) = seq {
            if seq <= self.last_seq {
                return Frame::Nothing;
            }
            self.last_seq = seq;
        }
        let id = v.get("id").and_then(Value::as_str).map(str::to_owned);
        if id.is_some() {
            self.last_id.clone_from(&id);
        }
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        Frame::Event(Event { event: event.to_owned(), data, id, seq, raw: text.to_owned() })
    }

    /// The starting point a `cursor=1` welcome or a `resume_failed` names, if any.
    fn cursor_of(welcome: &str) -> Option<String> {
        let v: Value = serde_json::from_str(welcome).ok()?;
        Some(v.get("data")?.get("last_event_id")?.as_str()?.to_owned())
    }

    async fn connect(&mut self) -> Result<(), StreamError> {
        loop {
            let url = match &self.last_id {
                Some(id) => format!("{}&last_event_id={id}", self.url),
                None => format!("{}&cursor=1", self.url),
            };
            if let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
                match socket.next().await {
                    Some(Ok(Message::Text(t))) if t.as_str().contains("\"auth_success\"") => {
                        if self.last_id.is_none() {
                            self.last_id = Self::cursor_of(t.as_str());
                        }
                        self.resuming.clone_from(&self.last_id);
                        self.socket = Some(socket);
                        self.backoff = BACKOFF_START;
                        return Ok(());
                    }
                    Some(Ok(Message::Text(t))) if t.as_str().contains("\"auth_failed\"") => {
                        return Err(StreamError::AuthFailed);
                    }
                    _ => {}
                }
            }
            self.reconnects += 1;
            tokio::time::sleep(self.backoff).await;
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
    }
}
