//! Errors of the SDK.
//!
//! A refusal by the gateway ([`Error::Api`]) is kept apart from transport failures ([`Error::Http`]) and
//! from answers the SDK cannot read ([`Error::Decode`]), because callers react differently: a refusal is
//! final (or says when to retry), a transport failure may be retried, a decode failure is a bug or a proxy.

use std::ops::Deref;

use skingate_types::{ErrorBody, GlobalError};

/// A refusal as the gateway sent it: the envelope, plus the `Retry-After` header that came with it, because a
/// throttled caller (`-7 request_limit_reached`) needs to know how long to wait and typed calls return no
/// headers. Dereferences to the [`ErrorBody`], so `e.error_code` reads as it did when the variant held
/// only the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The error envelope.
    pub body: ErrorBody,
    /// `Retry-After` in seconds, when the answer carried it as a number (skingate sends it with `-7`).
    pub retry_after: Option<u64>,
}

/// Lets existing code keep reading `error_code` / `error_message` straight off the variant's value.
impl Deref for ApiError {
    type Target = ErrorBody;

    fn deref(&self) -> &ErrorBody {
        &self.body
    }
}

/// Why a call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gateway answered with its error envelope. Match on `error_message` when talking to several
    /// gateways: codes of method-specific errors differ between them (spec §8.6).
    #[error("gateway error {}: {}", .0.body.error_code, .0.body.error_message)]
    Api(ApiError),
    /// The request could not be sent or the answer not read (connection refused, timeout, bad header).
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The answer was not the JSON this call expects; `body` holds its first bytes for debugging.
    #[error("unexpected answer ({source}): {body}")]
    Decode {
        /// Start of the body received (at most 500 bytes).
        body: String,
        /// What did not parse.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The envelope, when the gateway refused the call: the one place both code and message are kept.
    pub fn api(&self) -> Option<&ErrorBody> {
        match self {
            Error::Api(e) => Some(&e.body),
            _ => None,
        }
    }

    /// How many seconds the gateway asked to wait before calling again (`Retry-After`, sent with
    /// `-7 request_limit_reached`), so typed calls can back off exactly as long as asked; `None` when the
    /// gateway said nothing or the call failed otherwise.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::Api(e) => e.retry_after,
            _ => None,
        }
    }

    /// The gateway's `error_code`, when the gateway refused the call; `None` for every other failure.
    pub fn code(&self) -> Option<i64> {
        self.api().map(|b| b.error_code)
    }

    /// The gateway's `error_message` (stable `snake_case`), when the gateway refused the call.
    pub fn message(&self) -> Option<&str> {
        self.api().map(|b| b.error_message.as_str())
    }

    /// The refusal as one of the errors every method shares (`-7 request_limit_reached`, …), so callers
    /// can match on a named variant instead of a number; `None` for method-specific codes.
    pub fn global(&self) -> Option<GlobalError> {
        let code = self.code()?;
        GlobalError::ALL.into_iter().find(|g| g.code() == code)
    }

    /// Same as [`Error::code`]; kept for callers written against the first version of the SDK.
    pub fn api_code(&self) -> Option<i64> {
        self.code()
    }

    /// Same as [`Error::message`]; kept for callers written against the first version of the SDK.
    pub fn api_message(&self) -> Option<&str> {
        self.message()
    }

    /// Whether the request ran out of time (the client's timeout), as opposed to being refused.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Http(e) if e.is_timeout())
    }
}
