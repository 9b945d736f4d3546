//! A one-request HTTP server for the client's tests: it records what the client sent and answers a fixed
//! response. Everything is bounded by [`LIMIT`], so a broken client fails the test instead of hanging it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest any test exchange may take.
pub const LIMIT: Duration = Duration::from_secs(5);

/// One request as received.
#[derive(Debug)]
pub struct Received {
    /// Request line and headers, lowercased (header names are case-insensitive).
    pub head: String,
    /// The body, as sent.
    pub body: String,
}

impl Received {
    /// The value of a header (name in any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(str::trim)
    }
}

/// Starts the server; returns the base URL and the task that yields the request it read.
pub async fn serve_once(status: &str, extra_headers: &[&str], body: &str) -> (String, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut response = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    for h in extra_headers {
        response.push_str(h);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    response.push_str(body);
    let task = tokio::spawn(async move {
        tokio::time::timeout(LIMIT, async {
            let (mut sock, _) = listener.accept().await.unwrap();
            let received = read_request(&mut sock).await;
            sock.write_all(response.as_bytes()).await.unwrap();
            received
        })
        .await
        .expect("the client sent a complete request in time")
    });
    (base, task)
}

/// Reads the head, then exactly `content-length` bytes of body (or until the client closes).
async fn read_request(sock: &mut TcpStream) -> Received {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = content_length(&head);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return Received { head, body };
            }
        }
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed mid-request: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> usize {
    head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap())
}
