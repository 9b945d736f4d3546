//! The HTTP/1 server loop: accepts connections and serves the router on each, with limits a public endpoint
//! needs and `axum::serve` does not let us set.
//!
//! - **Header deadline.** A client has `http_header_timeout_ms` (30 s) to send a request's headers (the first,
//!   or the next one on a kept-alive connection); one that dawdles is disconnected. Without it a connection that sent
//!   half a request and waited held a descriptor for good: an audit took the gateway off the air with about
//!   20 000 of them. A body has its own deadline, `http_body_timeout_ms`, wherever it is read ([`read_body`]:
//!   the API, the payment page's forms).
//! - **Half-close.** A client that shuts down its sending side once its request is out (`shutdown(SHUT_WR)`:
//!   `socat`, `nc -N`, some HTTP/1.0 clients) still gets the answer. Without it the connection was dropped
//!   at the client's EOF while a write it asked for could still commit, unanswered.
//! - **Graceful stop.** When `shutdown` resolves the listener closes, every connection finishes the request it
//!   is serving and closes, and [`serve`] returns once all have (WebSocket connections, upgraded away from
//!   HTTP, are closed by the hub itself).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceExt as _};

/// Pause after an accept error that is not about one connection (out of descriptors, say), so the loop does
/// not spin while the process is at its limit.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish. A client has
/// `header_timeout` to send each request's headers (a kept-alive connection may idle that long).
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout).half_close(true);
    // Dropped to ask every connection to stop; each connection holds a receiver, so `closed()` on the sender
    // below resolves when the last one has ended.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
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
        let service = app.clone().map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
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
    done_tx.closed().await;
    Ok(())
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

/// The whole body of a request, at most `limit` bytes, within `deadline`: a connection that trickles its
/// body, or declares a longer body than it sends, is answered and let go instead of holding its descriptor.
pub async fn read_body(body: axum::body::Body, limit: usize, deadline: Duration) -> Result<bytes::Bytes, BodyError> {
    use http_body_util::BodyExt as _;
    let collect = http_body_util::Limited::new(body, limit).collect();
    match tokio::time::timeout(deadline, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) | Err(_) => Err(BodyError::Unreadable),
    }
}
