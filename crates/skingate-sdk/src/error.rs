//! Errors of the SDK.
//!
//! A refusal by the gateway ([`Error::Api`]) is kept apart from transport failures ([`Error::Http`]) and
//! from answers the SDK cannot read ([`Error::Decode`]), because callers react differently: a refusal is
//! final (or says when to retry), a transport failure may be retried, a decode failure is a bug or a proxy.

use skingate_types::{ErrorBody, GlobalError};

/// Why a call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gateway answered with its error envelope. Match on `error_message` when talking to several
    /// gateways: codes of method-specific errors differ between them (spec §8.6).
    #[error("gateway error {}: {}", .0.error_code, .0.error_message)]
    Api(ErrorBody),
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
            Error::Api(body) => Some(body),
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
