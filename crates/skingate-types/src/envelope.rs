//! The response envelope and the error codes every method shares.
//!
//! Errors travel as HTTP 200 with `{"status":"error","error_code":N,"error_message":"snake_case"}`: existing
//! clients branch on the body, not on the HTTP status (spec §1, §11.7). Codes -1…-9 are the vendor's; codes
//! -10 and below are skingate's own, for failures the vendor never documented (malformed bodies and the
//! like). They are part of the public contract: never renumber one.

use serde::{Deserialize, Serialize};

/// The value of `status` in every error body.
pub const STATUS_ERROR: &str = "error";
/// The value of `status` in every success body (but `orderstatus`, which puts the deposit status there).
pub const STATUS_SUCCESS: &str = "success";

/// An error as it appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Always `"error"`.
    pub status: String,
    /// Negative for errors any method can raise, small positive numbers for method-specific ones.
    #[serde(deserialize_with = "crate::lenient::i64")]
    pub error_code: i64,
    /// Stable `snake_case` text; clients that disagree about numbers match on this.
    pub error_message: String,
}

impl ErrorBody {
    /// Builds an error body from its code and message.
    pub fn new(error_code: i64, error_message: impl Into<String>) -> Self {
        Self { status: STATUS_ERROR.to_owned(), error_code, error_message: error_message.into() }
    }
}

/// Errors that are not tied to one method. The discriminant is the wire `error_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlobalError {
    /// The request was not a POST.
    NotPost = -1,
    /// `shopid` (or `X-CLIENT-ID`) is missing or names no project.
    InvalidShopid = -2,
    /// `sign` (or `X-CLIENT-SECRET`) does not match.
    InvalidSignature = -3,
    /// The project exists but is switched off.
    ShopNotActive = -4,
    /// `method` is missing or unknown.
    InvalidMethod = -5,
    /// The skins market is switched off.
    MarketDisabled = -6,
    /// The project exceeded its requests per minute; the response carries `Retry-After`.
    RequestLimitReached = -7,
    /// The caller's address is not on the project's allow-list.
    InvalidIpAddress = -8,
    /// The operator put the gateway into maintenance.
    UnderMaintenance = -9,
    /// skingate: the body is not valid JSON or form data, or a parameter has the wrong type.
    InvalidRequestBody = -10,
    /// skingate: the body exceeds the configured limit.
    RequestBodyTooLarge = -11,
    /// skingate: the `Content-Type` is neither JSON nor form-encoded.
    UnsupportedContentType = -12,
    /// skingate: the `Idempotency-Key` header is longer than 255 bytes or not printable ASCII.
    InvalidIdempotencyKey = -13,
    /// skingate: nothing is served at the request's path (a base URL set wrong): answered in the envelope,
    /// with HTTP 404, so a client that parses every answer as JSON reads what went wrong.
    UnknownPath = -14,
    /// skingate: something failed inside the gateway; details are in its log, never in the answer.
    InternalError = -100,
}

impl GlobalError {
    /// Every variant, for documentation and exhaustive tests.
    pub const ALL: [GlobalError; 15] = [
        Self::NotPost,
        Self::InvalidShopid,
        Self::InvalidSignature,
        Self::ShopNotActive,
        Self::InvalidMethod,
        Self::MarketDisabled,
        Self::RequestLimitReached,
        Self::InvalidIpAddress,
        Self::UnderMaintenance,
        Self::InvalidRequestBody,
        Self::RequestBodyTooLarge,
        Self::UnsupportedContentType,
        Self::InvalidIdempotencyKey,
        Self::UnknownPath,
        Self::InternalError,
    ];

    /// The wire `error_code`.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The wire `error_message`, exactly as the vendor spells it.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotPost => "please_use_post_method",
            Self::InvalidShopid => "invalid_shopid",
            Self::InvalidSignature => "invalid_signature",
            Self::ShopNotActive => "shop_not_active",
            Self::InvalidMethod => "invalid_method",
            Self::MarketDisabled => "market_disabled",
            Self::RequestLimitReached => "request_limit_reached",
            Self::InvalidIpAddress => "invalid_ip_address",
            Self::UnderMaintenance => "under_maintenance",
            Self::InvalidRequestBody => "invalid_request_body",
            Self::RequestBodyTooLarge => "request_body_too_large",
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::UnknownPath => "unknown_path",
            Self::InternalError => "internal_error",
        }
    }

    /// The error as a wire body.
    pub fn body(self) -> ErrorBody {
        ErrorBody::new(self.code(), self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_codes_are_fixed() {
        let vendor: Vec<(i64, &str)> = GlobalError::ALL.iter().take(9).map(|e| (e.code(), e.message())).collect();
        assert_eq!(
            vendor,
            [
                (-1, "please_use_post_method"),
                (-2, "invalid_shopid"),
                (-3, "invalid_signature"),
                (-4, "shop_not_active"),
                (-5, "invalid_method"),
                (-6, "market_disabled"),
                (-7, "request_limit_reached"),
                (-8, "invalid_ip_address"),
                (-9, "under_maintenance"),
            ]
        );
        let json = serde_json::to_string(&GlobalError::InvalidSignature.body()).unwrap();
        assert_eq!(json, r#"{"status":"error","error_code":-3,"error_message":"invalid_signature"}"#);
    }
}
