//! The HTTP/1 server loop: accepts connections and serves the router on each, with limits a public endpoint
//! needs and `axum::serve` does not let us set.
//!
//! - **Header deadline.** A client has `http_header_timeout_ms` (30 s) to send a request's headers (the first,
//!   or the next one on a kept-alive connection); one that dawdles is disconnected. Without it a connection
//!   that sent half a request and waited held a descriptor for good: an audit took the gateway off the air
//!   with about 20 000 of them.
//! - **Body deadline.** Every request's body, on every route, must arrive within `http_body_timeout_ms` (30 s)
//!   of the handler starting to read it ([`DeadlineBody`]); a body trickled or declared longer than sent ends
//!   in an error its reader answers (`-10` on the API, 400 on the payment page). Per handler it was missed on
//!   routes that read a body with an extractor (`/noop`, the simulator's operator routes), which a re-audit
//!   used for the same outage.
//! - **Half-close.** A client that shuts down its sending side once its request is out (`shutdown(SHUT_WR)`:
//!   `socat`, `nc -N`, some HTTP/1.0 clients) still gets the answer. Without it the connection was dropped
//!   at the client's EOF while a write it asked for could still commit, unanswered.
//! - **Bounded stop.** When `shutdown` resolves the listener closes and every connection finishes the request
//!   it is serving; connections still open after `http_shutdown_grace_ms` (a client that does not read its
//!   answer, one that sent half a request) are closed, so a stop never waits on a client. WebSocket
//!   connections, upgraded away from HTTP, are closed by the hub itself.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt as _};

/// Pause after an accept error that is not about one connection (out of descriptors, say), so the loop does
/// not spin while the process is at its limit.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The deadlines [`serve`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// To send each request's headers (also how long a kept-alive connection may idle).
    pub header: Duration,
    /// To send a body, from when its reader starts reading.
    pub body: Duration,
    /// For connections to finish once the server stops, before they are closed.
    pub shutdown_grace: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish (for at most
/// `limits.shutdown_grace`).
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header).half_close(true);
    // Dropping `stop_tx` asks every connection to finish; cancelling `force` closes those still open after the
    // grace. Each connection holds a `done_rx`, so `done_tx.closed()` resolves when the last one has ended.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    let force = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accepting a connection failed; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let body_limit = limits.body;
        let service = app.clone().map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(|body| axum::body::Body::new(DeadlineBody::new(body, body_limit)));
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        let force = force.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection.with_upgrades());
            let mut stopping = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.changed(), if !stopping => {
                        stopping = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    () = force.cancelled() => {
                        tracing::warn!(%peer, "closing a connection still open at the end of the shutdown grace");
                        break;
                    }
                }
            }
            drop(done);
        });
    }
    drop(listener);
    drop(stop_rx);
    // Wakes every connection's `changed()` (with an error: the sender is gone), which starts its graceful
    // shutdown.
    drop(stop_tx);
    drop(done_rx);
    if tokio::time::timeout(limits.shutdown_grace, done_tx.closed()).await.is_err() {
        force.cancel();
        done_tx.closed().await;
    }
    Ok(())
}

/// A request body that must arrive within a deadline, counted from its first read (a handler that never reads
/// the body starts no timer). Past it, the next read is an error, which every reader answers as a body that
/// could not be read.
pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> DeadlineBody<B> {
    /// `inner`, to be read within `limit`.
    pub fn new(inner: B, limit: Duration) -> Self {
        Self { inner, limit, timer: None }
    }
}

/// The error a body read past its deadline ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTooSlow;

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = bytes::Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        let limit = this.limit;
        let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTooSlow.into())));
        }
        Pin::new(&mut this.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Errors that concern one connection (it went away before it was accepted): the listener is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than the route's limit.
    TooLarge,
    /// Cut off, malformed chunking, or not complete in time.
    Unreadable,
}

/// How much of a body over its route's limit is still read (and dropped) before the refusal is answered. A
/// client that writes its whole request before reading anything (Python's `http.client`, blocking PHP streams)
/// would otherwise see its write fail with a reset instead of reading the `-11` envelope: the server's close
/// with unread data in its buffer resets the connection. Past this much the connection is closed unread.
pub const DRAIN_MAX: usize = 16 << 20;

/// The whole body of a request, at most `limit` bytes (its deadline is the connection's, [`DeadlineBody`]). A
/// body over the limit is read to its end (up to [`DRAIN_MAX`], dropped) before `TooLarge` is returned, so the
/// client reads the answer.
pub async fn read_body(mut body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, BodyError> {
    use http_body_util::BodyExt as _;
    // Collected through a borrow, so what is left of a body over the limit can still be drained.
    match http_body_util::Limited::new(&mut body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            discard(body, limit).await;
            Err(BodyError::TooLarge)
        }
        Err(_) => Err(BodyError::Unreadable),
    }
}

/// Reads and drops what is left of a refused body, `seen` bytes of which were read already, until its end,
/// an error or [`DRAIN_MAX`] bytes in all (see there for why).
pub async fn discard(mut body: axum::body::Body, mut seen: usize) {
    use http_body_util::BodyExt as _;
    while seen <= DRAIN_MAX {
        match body.frame().await {
            Some(Ok(frame)) => seen = seen.saturating_add(frame.data_ref().map_or(0, bytes::Bytes::len)),
            Some(Err(_)) | None => return,
        }
    }
}
