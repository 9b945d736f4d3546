//! Answers as received, and turning them into results.
//!
//! Every SkinsBack-compatible gateway answers HTTP 200 with a JSON body even when it refuses a call (spec §1,
//! §11.7): the body's `status` decides, not the HTTP status. This module holds that rule in one place.

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use skingate_types::ErrorBody;
use skingate_types::envelope::STATUS_ERROR;

use crate::Error;
use crate::error::ApiError;

/// Longest body excerpt kept in [`Error::Decode`]: enough to recognise a proxy's HTML page, small enough
/// for a log line.
pub(crate) const SNIPPET_BYTES: usize = 500;

/// Header a gateway sets on a throttled answer (`-7 request_limit_reached`): seconds to wait.
pub const RETRY_AFTER: &str = "Retry-After";
/// Header skingate sets when an `Idempotency-Key` matched an earlier call and the stored answer was replayed.
pub const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";

/// An answer as received, for callers that need the HTTP status or headers (`Retry-After`,
/// `Idempotent-Replayed`), which [`Client::call`](crate::Client::call) drops.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status. The API answers 200 even for errors; anything else usually comes from a proxy.
    pub status: u16,
    /// Response headers, names case-insensitive.
    pub headers: HeaderMap,
    /// The parsed JSON body, error envelope included.
    pub body: Value,
}

impl RawResponse {
    /// A header's value as text; `None` when absent or not visible ASCII. Lets callers skip `HeaderMap`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After` in seconds, when the gateway sent it as a number (it does with `-7`), so a caller can
    /// back off exactly as long as asked.
    pub fn retry_after(&self) -> Option<u64> {
        self.header(RETRY_AFTER)?.trim().parse().ok()
    }

    /// Whether the gateway replayed a stored answer for a repeated `Idempotency-Key` instead of executing
    /// the call again (`Idempotent-Replayed: true`).
    pub fn replayed(&self) -> bool {
        self.header(IDEMPOTENT_REPLAYED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The body as a result: the error envelope becomes [`Error::Api`] (keeping [`RawResponse::retry_after`]),
    /// anything else is returned as is.
    pub fn into_result(self) -> Result<Value, Error> {
        let retry_after = self.retry_after();
        check_envelope(self.body, retry_after)
    }
}

/// Applies the envelope rule to a parsed body: `status == "error"` is [`Error::Api`], carrying the answer's
/// `Retry-After` seconds.
pub(crate) fn check_envelope(body: Value, retry_after: Option<u64>) -> Result<Value, Error> {
    if body.get("status").and_then(Value::as_str) == Some(STATUS_ERROR) {
        return Err(Error::Api(ApiError { body: decode::<ErrorBody>(body)?, retry_after }));
    }
    Ok(body)
}

/// Parses a JSON value into a response type, keeping an excerpt of the value when it does not fit.
pub(crate) fn decode<T: DeserializeOwned>(body: Value) -> Result<T, Error> {
    T::deserialize(&body).map_err(|source| Error::Decode { body: snippet(&body.to_string()), source })
}

/// Parses response bytes as JSON, keeping an excerpt of them when they are not JSON (an HTML error page).
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bytes)
        .map_err(|source| Error::Decode { body: snippet(&String::from_utf8_lossy(bytes)), source })
}

/// The first [`SNIPPET_BYTES`] of `text`, cut on a character boundary.
pub(crate) fn snippet(text: &str) -> String {
    let mut end = text.len().min(SNIPPET_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skingate_types::api::{BalanceHistoryItem, BalanceResponse, CurrenciesResponse, Page, StatusResponse};

    fn raw(body: Value, headers: &[(&'static str, &'static str)]) -> RawResponse {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        RawResponse { status: 200, headers: map, body }
    }

    #[test]
    fn balance_with_numbers_or_strings() {
        let numbers = json!({"status":"success","balance":10.5,"deals_sum":0,"withdraw_sum":12,
            "balance_in_currencies":{"rub":971.25},"future_field":{"x":1}});
        let strings = json!({"status":"success","balance":"10.50","deals_sum":"0","withdraw_sum":"12.000",
            "balance_in_currencies":{"rub":"971.25"},"held":"0.5","currency":"usd"});
        for body in [numbers, strings] {
            let b: BalanceResponse = decode(body).unwrap();
            assert_eq!(b.balance, "10.5".parse().unwrap());
            assert_eq!(b.withdraw_sum, "12".parse().unwrap());
            assert_eq!(b.balance_in_currencies["rub"], "971.25".parse().unwrap());
        }
    }

    #[test]
    fn other_bodies_are_lenient() {
        let page: Page<BalanceHistoryItem> = decode(json!({"status":"success","total_count":"1","has_more":0,
            "start_from":"9","items":[{"id":9,"date":"5","type":"something_new","amount":"-1",
            "balance_before":"1","balance_after":0,"held_after":0,"in_flight_after":0,"transfer_id":7,"new":1}]}))
        .unwrap();
        assert_eq!((page.total_count, page.has_more, page.start_from), (1, false, Some(9)));
        assert_eq!((page.items[0].id.as_str(), page.items[0].transfer_id.as_str()), ("9", "7"));
        assert_eq!(page.items[0].kind, "something_new");
        let status: StatusResponse = decode(json!({"status":"success","available":"1","extra":null})).unwrap();
        assert!(status.available);
        let rates: CurrenciesResponse =
            decode(json!({"items":[{"code":"rub","name":"Ruble","rate":92.5,"symbol":"₽"}]})).unwrap();
        assert_eq!(rates.items[0].rate, "92.5".parse().unwrap());
    }

    #[test]
    fn error_envelope() {
        let e = raw(json!({"status":"error","error_code":"-3","error_message":"invalid_signature"}), &[])
            .into_result()
            .unwrap_err();
        assert_eq!((e.code(), e.message()), (Some(-3), Some("invalid_signature")));
        assert_eq!(e.global(), Some(skingate_types::GlobalError::InvalidSignature));
        assert_eq!(e.retry_after(), None);
        let e =
            check_envelope(json!({"status":"error","error_code":2,"error_message":"x","more":1}), None).unwrap_err();
        assert_eq!((e.code(), e.global()), (Some(2), None));
        let ok = json!({"status":"success","available":true});
        assert_eq!(check_envelope(ok.clone(), Some(3)).unwrap(), ok);
        let deposit = json!({"status":"pending","transaction_id":"1"});
        assert_eq!(check_envelope(deposit.clone(), None).unwrap(), deposit, "orderstatus puts its state in `status`");
        let broken = check_envelope(json!({"status":"error","error_message":"no code"}), None).unwrap_err();
        assert!(matches!(broken, Error::Decode { .. }), "{broken}");
    }

    #[test]
    fn headers_and_snippets() {
        let r = raw(json!({}), &[("retry-after", " 42"), ("idempotent-replayed", "True")]);
        assert_eq!((r.retry_after(), r.replayed()), (Some(42), true));
        let throttled = json!({"status":"error","error_code":-7,"error_message":"request_limit_reached"});
        let e = raw(throttled, &[("retry-after", "42")]).into_result().unwrap_err();
        assert_eq!((e.retry_after(), e.code()), (Some(42), Some(-7)), "the header survives into the error");
        assert!(matches!(&e, Error::Api(api) if api.error_code == -7), "the variant still reads like the body");
        let r = raw(json!({}), &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!((r.retry_after(), r.replayed()), (None, false));
        let long = "é".repeat(SNIPPET_BYTES);
        assert_eq!(snippet(&long).len(), SNIPPET_BYTES);
        let e = parse_body(b"<html>502 Bad Gateway</html>").unwrap_err();
        assert!(matches!(&e, Error::Decode { body, .. } if body.starts_with("<html>")), "{e}");
    }
}
