//! Sending one webhook: the HTTP client, the SSRF guard, the signatures.
//!
//! # SSRF
//! Merchants choose webhook URLs, so a URL could point the gateway at its own network (the database, a
//! cloud metadata endpoint). Unless `webhook_allow_private` is set, addresses that are loopback, private,
//! link-local, unique-local, CGNAT, multicast, unspecified or documentation-only are refused, except
//! networks listed in `webhook_allowed_networks`. The check runs on every address DNS returns (a custom
//! resolver, so a name cannot resolve to something else between check and connect) and on IP-literal
//! URLs, which never reach the resolver. Redirects are not followed.
//!
//! # Signatures on every delivery
//! - `Signature`: hex HMAC-SHA256 of the exact body with the client secret (the vendor's scheme);
//! - `X-SIGN`: `md5(client_id + client_secret)` (the vendor's static header);
//! - `webhook-id`, `webhook-timestamp`, `webhook-signature` (Standard Webhooks, replay-safe); during a
//!   secret rotation `webhook-signature` carries one signature per secret.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use skingate_core::project::Project;
use skingate_types::sign::{self, standard};

/// Bytes of an answer kept for the attempt log.
pub const RESPONSE_HEAD_BYTES: usize = 4096;

/// Which destination addresses webhooks may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Everything allowed (development and tests only).
    pub allow_private: bool,
    /// Private networks allowed anyway.
    pub allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// Whether `ip` may be connected to.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip) || self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// Checks a URL before it is stored: scheme, and its host when it is an IP literal.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        self.parse_url(url).map(drop)
    }

    /// Parses a URL and applies [`AddressPolicy::check_url`]'s rules, returning it ready to send to.
    pub fn parse_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("webhook URLs must be http or https".into());
        }
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) if !self.permits(IpAddr::V4(ip)) => Err(format!("address {ip} is not allowed")),
            Some(url::Host::Ipv6(ip)) if !self.permits(IpAddr::V6(ip)) => Err(format!("address {ip} is not allowed")),
            // `localhost.` (the fully qualified form) names the same host.
            Some(url::Host::Domain(d))
                if !self.allow_private && {
                    let d = d.trim_end_matches('.');
                    d == "localhost" || d.ends_with(".localhost")
                } =>
            {
                Err(format!("host {d} is not allowed"))
            }
            None => Err("URL has no host".into()),
            _ => Ok(parsed),
        }
    }
}

/// Globally routable unicast addresses only.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT 100.64/10
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking 198.18/15
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            // Addresses that carry an IPv4 address a translator reaches: NAT64 (64:ff9b::/96, and the local-use
            // 64:ff9b:1::/48) and SIIT's IPv4-translated ::ffff:0:a.b.c.d. Judged by that IPv4 address.
            let [a, b] = [seg[6].to_be_bytes(), seg[7].to_be_bytes()];
            let embedded = std::net::Ipv4Addr::new(a[0], a[1], b[0], b[1]);
            let nat64 = seg[0] == 0x64 && seg[1] == 0xff9b && (seg[2..6] == [0; 4] || seg[2] == 1);
            let translated = seg[..4] == [0; 4] && seg[4] == 0xffff && seg[5] == 0;
            if nat64 || translated {
                return is_public(IpAddr::V4(embedded));
            }
            // The deprecated IPv4-compatible ::a.b.c.d (and :: and ::1): never a public destination, and
            // routed to the embedded IPv4 address where a tunnel still carries ::/96.
            if seg[..6] == [0; 6] {
                return false;
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link local
                || seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        }
    }
}

/// A resolver that drops refused addresses, failing when none is left. A name that does not resolve fails
/// with the same words as one that resolves only to refused addresses: the attempt log is the merchant's to
/// read, and telling the two apart would let it map the gateway's internal names.
#[derive(Debug)]
struct GuardedResolver(AddressPolicy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(host).await {
                Ok(found) => found.filter(|a| policy.permits(a.ip())).collect(),
                Err(_) => Vec::new(),
            };
            if addrs.is_empty() {
                return Err(format!("{} does not resolve to an allowed address", name.as_str()).into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// What one attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// HTTP status, if an answer came.
    pub status: Option<u16>,
    /// `Retry-After` in seconds, if sent as a number.
    pub retry_after_secs: Option<u64>,
    /// The first [`RESPONSE_HEAD_BYTES`] of the answer.
    pub head: String,
    /// Why there was no answer.
    pub error: Option<String>,
    /// Whether the attempt ran out of time.
    pub timed_out: bool,
    /// How long it took.
    pub duration: Duration,
}

impl AttemptResult {
    fn failed(error: String, timed_out: bool, started: Instant) -> Self {
        Self {
            status: None,
            retry_after_secs: None,
            head: String::new(),
            error: Some(error),
            timed_out,
            duration: started.elapsed(),
        }
    }
}

/// The webhook HTTP client, shared by all deliveries of a node.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    policy: AddressPolicy,
}

impl WebhookClient {
    /// Builds the client: one connection pool, no redirects, no proxies, guarded DNS.
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("skingate/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
            .build()
            .expect("webhook HTTP client builds");
        Self { http, policy }
    }

    /// The address policy in force.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// POSTs `body` signed for `project` with the secrets valid at `now`.
    pub async fn send(&self, url: &str, project: &Project, event_id: &str, body: &str, now: i64) -> AttemptResult {
        let started = Instant::now();
        let failed = |error: String, timed_out: bool| AttemptResult {
            status: None,
            retry_after_secs: None,
            head: String::new(),
            error: Some(error),
            timed_out,
            duration: started.elapsed(),
        };
        let url = match self.policy.parse_url(url) {
            Ok(url) => url,
            Err(e) => return failed(e, false),
        };
        let secrets = project.signing_secrets(now);
        let standard_sigs: Vec<String> =
            secrets.iter().map(|s| sign::standard_signature(s, event_id, now, body.as_bytes())).collect();
        // The vendor's prose puts this signature "in the Authorization header" while its PHP example reads
        // `Signature`: both carry it, so a receiver written to either verifies.
        let signature = sign::events_signature(&project.client_secret, body.as_bytes());
        let req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("Authorization", &signature)
            .header("Signature", signature)
            .header("X-SIGN", sign::static_sign(&project.client_id(), &project.client_secret))
            .header(standard::ID, event_id)
            .header(standard::TIMESTAMP, now.to_string())
            .header(standard::SIGNATURE, standard_sigs.join(" "))
            .body(body.to_owned());
        Self::finish(req, started).await
    }

    /// POSTs a deposit's Result-URL callback: `body` is already encoded (`content_type`) and carries its
    /// `sign`; the header `X-SIGN` = md5(client_id + secret) is added, and `webhook-id` for deduplication.
    pub async fn send_callback(
        &self,
        url: &str,
        project: &Project,
        event_id: &str,
        content_type: &str,
        body: String,
    ) -> AttemptResult {
        let started = Instant::now();
        let url = match self.policy.parse_url(url) {
            Ok(url) => url,
            Err(e) => return AttemptResult::failed(e, false, started),
        };
        let req = self
            .http
            .post(url)
            .header("content-type", content_type)
            .header("X-SIGN", sign::static_sign(&project.client_id(), &project.client_secret))
            .header(standard::ID, event_id)
            .body(body);
        Self::finish(req, started).await
    }

    async fn finish(req: reqwest::RequestBuilder, started: Instant) -> AttemptResult {
        let failed = |error: String, timed_out: bool| AttemptResult::failed(error, timed_out, started);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return failed(error_text(&e), e.is_timeout()),
        };
        let status = resp.status().as_u16();
        let retry_after_secs =
            resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        let (head, read_error) = read_head(resp).await;
        AttemptResult {
            status: Some(status),
            retry_after_secs,
            head,
            error: read_error,
            timed_out: false,
            duration: started.elapsed(),
        }
    }
}

fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Reads at most [`RESPONSE_HEAD_BYTES`] of the answer, then stops (the rest is never downloaded).
async fn read_head(mut resp: reqwest::Response) -> (String, Option<String>) {
    let mut head = Vec::new();
    while head.len() < RESPONSE_HEAD_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_HEAD_BYTES - head.len())]),
            Ok(None) => break,
            Err(e) => return (String::from_utf8_lossy(&head).into_owned(), Some(error_text(&e))),
        }
    }
    (String::from_utf8_lossy(&head).into_owned(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused_by_default() {
        let strict = AddressPolicy::default();
        for bad in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "http://192.168.0.1",
            "http://100.64.0.1",
            "http://localhost:8080/",
            "http://localhost./",
            "http://app.localhost../",
            "ftp://example.com/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1::7f00:1]/",
            "http://[::ffff:0:a00:1]/",
            "http://[::127.0.0.1]/",
            "http://[::169.254.169.254]/latest",
            "http://[::8.8.8.8]/",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad}");
        }
        assert!(strict.check_url("https://shop.example.com/hook").is_ok());
        assert!(strict.check_url("http://93.184.216.34/hook").is_ok());
        assert!(strict.check_url("http://[64:ff9b::5db8:d822]/hook").is_ok(), "NAT64 of a public address");
        let dev = AddressPolicy { allow_private: true, allowed: vec![] };
        assert!(dev.check_url("http://127.0.0.1:9000/hook").is_ok());
        let listed = AddressPolicy { allow_private: false, allowed: vec!["10.20.0.0/16".parse().unwrap()] };
        assert!(listed.check_url("http://10.20.1.1/").is_ok());
        assert!(listed.check_url("http://10.21.1.1/").is_err());
    }

    /// A name that does not exist and one that resolves only to refused addresses fail alike, so the attempt
    /// log tells a merchant nothing about the gateway's own network.
    #[tokio::test]
    async fn refused_and_unknown_names_read_alike() {
        let resolver = GuardedResolver(AddressPolicy::default());
        let mut said = Vec::new();
        for name in ["localhost", "no-such-host.invalid"] {
            let Err(e) = resolver.resolve(name.parse().unwrap()).await else { panic!("{name} resolved") };
            said.push(e.to_string().replace(name, "NAME"));
        }
        assert_eq!(said[0], said[1]);
        assert_eq!(said[0], "NAME does not resolve to an allowed address");
    }
}
