//! Errors of the SDK.

use skingate_types::ErrorBody;

/// Why a call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gateway answered with its error envelope; match on `error_message` (codes differ between
    /// gateways for some methods, spec §8.6).
    #[error("gateway error {}: {}", .0.error_code, .0.error_message)]
    Api(ErrorBody),
    /// The request could not be sent or the answer not read (connection, timeout).
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The answer was not the JSON this call expects; `body` holds its first bytes for debugging.
    #[error("unexpected answer ({source}): {body}")]
    Decode {
        /// Start of the body received.
        body: String,
        /// What did not parse.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The gateway's `error_code`, when the gateway refused the call.
    pub fn api_code(&self) -> Option<i64> {
        match self {
            Error::Api(body) => Some(body.error_code),
            _ => None,
        }
    }

    /// The gateway's `error_message`, when the gateway refused the call.
    pub fn api_message(&self) -> Option<&str> {
        match self {
            Error::Api(body) => Some(&body.error_message),
            _ => None,
        }
    }
}
