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
//! (`market_history`, `orders`); calling it again goes on with live events, whatever their `seq` (a gateway
//! that forgot the id may number its events afresh, so the old high-water mark no longer applies).
//!
//! Only failures that can pass are retried: I/O errors, a refused or reset connection, HTTP 5xx, 408 and 429
//! answers to the upgrade. A stream that can never connect ends at once with an error instead of retrying
//! forever: a URL that is not `ws://`, `wss://`, `http://` or `https://` ([`StreamError::InvalidUrl`]), TLS
//! that cannot be set up or is refused ([`StreamError::Tls`]; `wss://` needs the crate's `tls` feature), and
//! any other HTTP answer to the upgrade, such as a 404 for a wrong path ([`StreamError::Refused`]).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use skingate_types::sign::static_sign;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, UrlError};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Silence after which the stream pings: the protocol's `ping` text and a WebSocket Ping frame, which the
/// gateway's WebSocket layer answers with a Pong whatever its own ping interval (`ws_ping_interval_secs`).
const PING_EVERY: Duration = Duration::from_secs(25);
/// Silent periods of [`PING_EVERY`] after which the connection counts as gone although TCP has not said so
/// (a NAT or proxy dropped it, the host vanished): no frame at all, not even the Pongs answering our pings,
/// for 75 s. The stream then reconnects and resumes instead of waiting, possibly for many minutes, on the
/// kernel.
const SILENT_PERIODS_LIMIT: u32 = 3;
/// Longest wait for a connection, the upgrade and the gateway's first frame before trying again.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
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
    /// The URL can never be connected to (unknown scheme, no host, unparseable); retrying would not help.
    #[error("invalid event stream URL {url}: {reason}")]
    InvalidUrl {
        /// The URL without its query (which carries the signature).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS could not be used: `wss://` in a build without the `tls` feature, a certificate the platform does
    /// not trust, or a peer that does not speak TLS. Final, since retrying meets the same certificate.
    #[error("TLS failed for {url}: {reason}")]
    Tls {
        /// The URL without its query.
        url: String,
        /// The TLS layer's explanation.
        reason: String,
    },
    /// The server answered the WebSocket upgrade with an HTTP status that will not change by retrying (a
    /// 404 for a wrong path or base URL, a 401/403 from a proxy, a redirect). 5xx, 408 and 429 are retried.
    #[error("the server at {url} refused the WebSocket upgrade with HTTP {status}")]
    Refused {
        /// The URL without its query.
        url: String,
        /// The HTTP status it answered.
        status: u16,
    },
}

/// Why a `wss://` stream cannot work in this build.
const TLS_FEATURE_OFF: &str = "wss:// needs the skingate-sdk `tls` feature";

/// How a failed connection attempt is handled.
#[derive(Debug)]
enum Attempt {
    /// Worth another try after the backoff.
    Retry,
    /// Will fail the same way every time: end the stream with this error.
    Fatal(StreamError),
}

/// Sorts a connection error into retry or fatal (see the module docs for the rule). `url` is the query-less
/// URL the errors name.
fn classify(error: WsError, url: &str) -> Attempt {
    let url = url.to_owned();
    match error {
        WsError::Url(UrlError::TlsFeatureNotEnabled) => {
            Attempt::Fatal(StreamError::Tls { url, reason: TLS_FEATURE_OFF.to_owned() })
        }
        // The sync client's name for a refused connection: transient.
        WsError::Url(UrlError::UnableToConnect(_)) => Attempt::Retry,
        WsError::Url(e) => Attempt::Fatal(StreamError::InvalidUrl { url, reason: e.to_string() }),
        WsError::HttpFormat(e) => Attempt::Fatal(StreamError::InvalidUrl { url, reason: e.to_string() }),
        WsError::Tls(e) => Attempt::Fatal(StreamError::Tls { url, reason: e.to_string() }),
        // tokio-rustls reports every TLS failure (untrusted certificate, a peer that is not TLS) as
        // `InvalidData`; no transient network condition does.
        // tokio-tungstenite reports a machine without root certificates as `NotFound`, which a network
        // failure never is.
        WsError::Io(e) if matches!(e.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::NotFound) => {
            Attempt::Fatal(StreamError::Tls { url, reason: e.to_string() })
        }
        WsError::Http(response) => {
            let status = response.status().as_u16();
            if response.status().is_server_error() || matches!(status, 408 | 429) {
                Attempt::Retry
            } else {
                Attempt::Fatal(StreamError::Refused { url, status })
            }
        }
        _ => Attempt::Retry,
    }
}

/// `base_url` with `http://` and `https://` turned into `ws://` and `wss://`, so the same base URL serves the
/// API client and the event stream. Other schemes are kept, to be refused at connect.
fn ws_base(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let lower = base.to_ascii_lowercase();
    if lower.starts_with("http://") {
        format!("ws://{}", &base["http://".len()..])
    } else if lower.starts_with("https://") {
        format!("wss://{}", &base["https://".len()..])
    } else {
        base.to_owned()
    }
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
    /// Periods of `ping_every` without a frame on the current connection.
    silent_periods: u32,
    /// [`PING_EVERY`], shorter in tests.
    ping_every: Duration,
    /// [`HANDSHAKE_TIMEOUT`], shorter in tests.
    handshake_timeout: Duration,
}

impl EventStream {
    /// A stream for `base_url`: `ws://host:port` or `wss://…`, or the API's `http://…` / `https://…` base,
    /// mapped to the WebSocket scheme, so one base URL configures both. Nothing connects until
    /// [`EventStream::next`], which reports a URL that cannot work.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> Self {
        let sig = static_sign(client_id, client_secret);
        let url = format!("{}/ws/?shopid={client_id}&signature={sig}", ws_base(base_url));
        Self {
            url,
            socket: None,
            last_id: None,
            last_seq: 0,
            resuming: None,
            backoff: BACKOFF_START,
            reconnects: 0,
            silent_periods: 0,
            ping_every: PING_EVERY,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// The stream with shorter ping and handshake times, so tests run on real time.
    #[cfg(test)]
    fn with_timing(mut self, ping_every: Duration, handshake_timeout: Duration) -> Self {
        self.ping_every = ping_every;
        self.handshake_timeout = handshake_timeout;
        self
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

    /// The next event, reconnecting as often as a connection can come back. Errors when the stream can never
    /// connect (refused credentials, a bad URL, TLS, an HTTP refusal of the upgrade: final, calling again
    /// tries again) and, once, when a resume failed (see [`StreamError::ResumeFailed`]; call again to go on).
    pub async fn next(&mut self) -> Result<Event, StreamError> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                self.connect().await?;
                continue;
            };
            let frame = tokio::select! {
                frame = socket.next() => frame,
                () = tokio::time::sleep(self.ping_every) => {
                    self.silent_periods += 1;
                    if self.silent_periods >= SILENT_PERIODS_LIMIT
                        || socket.send(Message::text("ping")).await.is_err()
                        || socket.send(Message::Ping(Vec::new().into())).await.is_err()
                    {
                        self.socket = None;
                    }
                    continue;
                }
            };
            self.silent_periods = 0;
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
                // Live events follow the newest event the gateway names; resume from there next time. The
                // gateway did not know our id, so its numbering may not be ours (a restored or new database):
                // forget the seq high-water mark, or every live event numbered below it would be dropped.
                self.last_id = Self::cursor_of(text);
                self.last_seq = 0;
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

    /// Connects and authenticates, backing off between attempts that may succeed later; returns at once on
    /// a failure that would repeat (see [`classify`]).
    async fn connect(&mut self) -> Result<(), StreamError> {
        let shown = self.url.split('?').next().unwrap_or_default().to_owned();
        // Said before connecting: tungstenite only finds out after the TCP connect, so an unreachable host
        // would otherwise be retried forever by a build that could never talk to it.
        if cfg!(not(feature = "tls")) && shown.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("wss://")) {
            return Err(StreamError::Tls { url: shown, reason: TLS_FEATURE_OFF.to_owned() });
        }
        loop {
            let url = match &self.last_id {
                Some(id) => format!("{}&last_event_id={id}", self.url),
                None => format!("{}&cursor=1", self.url),
            };
            let handshake = async {
                let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
                let first = socket.next().await;
                Ok::<_, WsError>((socket, first))
            };
            // A handshake that hangs (a peer that accepts and never answers) is retried like a refused one.
            let Ok(attempt) = tokio::time::timeout(self.handshake_timeout, handshake).await else {
                self.reconnects += 1;
                tokio::time::sleep(self.backoff).await;
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                continue;
            };
            match attempt {
                Ok((socket, first)) => match first {
                    Some(Ok(Message::Text(t))) if t.as_str().contains("\"auth_success\"") => {
                        if self.last_id.is_none() {
                            self.last_id = Self::cursor_of(t.as_str());
                        }
                        self.resuming.clone_from(&self.last_id);
                        self.socket = Some(socket);
                        self.silent_periods = 0;
                        self.backoff = BACKOFF_START;
                        return Ok(());
                    }
                    Some(Ok(Message::Text(t))) if t.as_str().contains("\"auth_failed\"") => {
                        return Err(StreamError::AuthFailed);
                    }
                    _ => {}
                },
                Err(e) => {
                    if let Attempt::Fatal(fatal) = classify(e, &shown) {
                        return Err(fatal);
                    }
                }
            }
            self.reconnects += 1;
            tokio::time::sleep(self.backoff).await;
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> EventStream {
        EventStream::new("ws://127.0.0.1:1", "1", "s")
    }

    #[test]
    fn http_bases_become_websocket_urls() {
        assert_eq!(ws_base("http://gate.example:8080/"), "ws://gate.example:8080");
        assert_eq!(ws_base("HTTPS://gate.example"), "wss://gate.example");
        assert_eq!(ws_base("ws://gate.example"), "ws://gate.example");
        assert_eq!(ws_base("ftp://gate.example"), "ftp://gate.example");
        assert!(stream().url.starts_with("ws://127.0.0.1:1/ws/?shopid=1&signature="));
    }

    #[test]
    fn only_passing_failures_are_retried() {
        let http = |status: u16| {
            let response = http::Response::builder().status(status).body(None).unwrap();
            classify(WsError::Http(Box::new(response)), "ws://x/ws/")
        };
        assert!(matches!(http(503), Attempt::Retry));
        assert!(matches!(http(429), Attempt::Retry));
        assert!(matches!(http(404), Attempt::Fatal(StreamError::Refused { status: 404, .. })));
        assert!(matches!(http(301), Attempt::Fatal(StreamError::Refused { status: 301, .. })));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(classify(WsError::Io(refused), "u"), Attempt::Retry));
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate: UnknownIssuer");
        assert!(matches!(classify(WsError::Io(tls), "u"), Attempt::Fatal(StreamError::Tls { .. })));
        let no_roots = std::io::Error::new(std::io::ErrorKind::NotFound, "no native root CA certificates found");
        assert!(matches!(classify(WsError::Io(no_roots), "u"), Attempt::Fatal(StreamError::Tls { .. })));
        let scheme = WsError::Url(UrlError::UnsupportedUrlScheme);
        assert!(matches!(classify(scheme, "u"), Attempt::Fatal(StreamError::InvalidUrl { .. })));
    }

    /// Without the `tls` feature a `wss://` stream says why at once instead of retrying forever.
    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn wss_without_the_tls_feature_is_final() {
        let mut stream = EventStream::new("https://127.0.0.1:1", "1", "s");
        let err = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("no retry loop");
        assert!(matches!(&err, Err(StreamError::Tls { url, .. }) if url == "wss://127.0.0.1:1/ws/"), "{err:?}");
        assert_eq!(stream.reconnects(), 0);
    }

    /// With the `tls` feature, `wss://` to a peer that does not speak TLS (a plain HTTP server) is a final TLS
    /// error, not a retry loop.
    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn wss_to_a_plain_server_is_a_final_tls_error() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let mut stream = EventStream::new(&format!("https://localhost:{}", addr.port()), "1", "s");
        let err = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("no retry loop");
        assert!(matches!(&err, Err(StreamError::Tls { .. })), "{err:?}");
        assert_eq!(stream.reconnects(), 0);
    }

    /// A fake gateway for the tests below: connection `n` (from 1) is served by `serve(n, socket)`, or, when
    /// `hang` is `n`, accepted and never answered. Returns its address and the URLs the client asked for.
    async fn fake_gateway<F, Fut>(
        hang: usize,
        serve: F,
    ) -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>)
    where
        F: Fn(usize, WebSocketStream<TcpStream>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen) = tokio::sync::mpsc::unbounded_channel::<String>();
        let serve = std::sync::Arc::new(serve);
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((tcp, _)) = listener.accept().await {
                n += 1;
                let (seen, serve) = (seen_tx.clone(), serve.clone());
                tokio::spawn(async move {
                    if n == hang {
                        let _held = tcp;
                        std::future::pending::<()>().await;
                        return;
                    }
                    let uri = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
                    let record = uri.clone();
                    // tungstenite's callback type returns its large error response by value.
                    #[allow(clippy::result_large_err)]
                    let callback = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        *record.lock().unwrap() = req.uri().to_string();
                        Ok(resp)
                    };
                    let ws = tokio_tungstenite::accept_hdr_async(tcp, callback).await.unwrap();
                    seen.send(uri.lock().unwrap().clone()).unwrap();
                    serve(n, ws).await;
                });
            }
        });
        (addr, seen)
    }

    const WELCOME: &str = r#"{"event":"auth_success","data":{"last_event_id":"evt_0"}}"#;

    fn event(n: u32) -> Message {
        Message::text(format!(r#"{{"event":"balance_change","id":"evt_{n}","seq":{n}}}"#))
    }

    /// A connection that goes silent (no frame, not even a Pong to the stream's pings) is given up after three
    /// ping periods and the stream reconnects and resumes; one that hangs in the handshake is retried too.
    #[tokio::test]
    async fn a_silent_connection_or_a_hanging_handshake_is_replaced() {
        use futures::SinkExt as _;
        let (addr, mut seen) = fake_gateway(2, |n, mut ws| async move {
            ws.send(Message::text(WELCOME)).await.unwrap();
            ws.send(event(n as u32)).await.unwrap();
            // Then silence, reading nothing: the client's pings get no answer.
            std::future::pending::<()>().await;
        })
        .await;
        let (ping, handshake) = (Duration::from_millis(100), Duration::from_millis(300));
        let mut stream = EventStream::new(&format!("ws://{addr}"), "1", "s").with_timing(ping, handshake);
        assert_eq!(stream.next().await.unwrap().id.as_deref(), Some("evt_1"));
        let started = tokio::time::Instant::now();
        assert_eq!(stream.next().await.unwrap().id.as_deref(), Some("evt_3"), "the third connection's event");
        let waited = started.elapsed();
        assert!(waited >= ping * SILENT_PERIODS_LIMIT + handshake, "gave up after {waited:?}");
        assert_eq!(stream.reconnects(), 1, "the hanging handshake was retried");
        assert!(seen.recv().await.unwrap().contains("cursor=1"));
        assert!(seen.recv().await.unwrap().contains("last_event_id=evt_1"), "the new connection resumes");
    }

    /// A quiet gateway that sends nothing of its own (a long `ws_ping_interval_secs`) but answers the
    /// stream's Ping frames keeps its connection: the Pongs count as frames.
    #[tokio::test]
    async fn a_quiet_gateway_that_answers_pings_keeps_its_connection() {
        use futures::SinkExt as _;
        let (addr, mut seen) = fake_gateway(0, |_, mut ws| async move {
            ws.send(Message::text(WELCOME)).await.unwrap();
            // Reading answers the client's Pings with Pongs; after ten ping periods, an event.
            let deadline = tokio::time::Instant::now() + Duration::from_millis(1_000);
            while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, ws.next()).await {}
            ws.send(event(1)).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        let ping = Duration::from_millis(100);
        let mut stream = EventStream::new(&format!("ws://{addr}"), "1", "s").with_timing(ping, ping * 3);
        // Dropping the connection every three periods, the stream would never see the event.
        let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("connection kept");
        assert_eq!(first.unwrap().id.as_deref(), Some("evt_1"));
        assert_eq!(stream.reconnects(), 0);
        assert!(seen.recv().await.is_some());
        assert!(seen.try_recv().is_err(), "one connection only");
    }

    /// After a failed resume, live events numbered below the old high-water mark still come through (the
    /// gateway that forgot our id may number afresh).
    #[test]
    fn a_failed_resume_resets_the_seq_high_water_mark() {
        let mut s = stream();
        assert!(matches!(s.accept(r#"{"event":"balance_change","id":"evt_9","seq":5}"#), Frame::Event(_)));
        assert!(matches!(s.accept(r#"{"event":"balance_change","id":"evt_9","seq":5}"#), Frame::Nothing), "repeat");
        let failed = r#"{"event":"resume_failed","data":{"reason":"unknown_event_id","last_event_id":"evt_2"}}"#;
        assert!(matches!(s.accept(failed), Frame::ResumeFailed));
        assert_eq!(s.last_event_id(), Some("evt_2"));
        match s.accept(r#"{"event":"balance_change","id":"evt_3","seq":1}"#) {
            Frame::Event(e) => assert_eq!((e.id.as_deref(), e.seq), (Some("evt_3"), Some(1))),
            _ => panic!("the live event after a failed resume was dropped"),
        }
        assert!(matches!(s.accept(r#"{"event":"balance_change","id":"evt_3","seq":1}"#), Frame::Nothing));
    }
}
