//! The one place internal failures become public errors.
//!
//! # Policy
//! - Handlers and methods return [`ApiError`].
//! - A client mistake is an [`ApiError::Global`] (codes every method shares) or an [`ApiError::Method`] (the
//!   method's own small positive codes). Both render as the vendor's envelope with HTTP 200.
//! - Anything else is [`ApiError::Internal`]: it keeps its cause and the place it was raised, is logged
//!   once when rendered, and reaches the client only as the opaque `-100 internal_error`.
//! - Storage errors never cross this boundary unclassified: `From<StoreError>` decides which are internal.

use std::panic::Location;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use skingate_types::envelope::{ErrorBody, GlobalError};

/// An error the API answers with.
#[derive(Debug)]
pub enum ApiError {
    /// One of the global codes.
    Global(GlobalError),
    /// `-7`, with how many seconds until a request would be accepted again.
    RateLimited {
        /// Seconds for `Retry-After`.
        retry_after_secs: u64,
    },
    /// A method-specific error.
    Method {
        /// Small positive code, stable per method.
        code: i64,
        /// Stable snake_case message.
        message: &'static str,
    },
    /// A failure inside the gateway.
    Internal {
        /// What failed, with its chain of causes.
        cause: anyhow::Error,
        /// Where it was turned into an API error.
        at: &'static Location<'static>,
    },
}

impl ApiError {
    /// A method-specific error.
    pub const fn method(code: i64, message: &'static str) -> Self {
        Self::Method { code, message }
    }

    /// Wraps an internal failure, recording the caller's location for the log.
    #[track_caller]
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal { cause: cause.into(), at: Location::caller() }
    }

    /// The wire body of this error.
    pub fn body(&self) -> ErrorBody {
        match self {
            Self::Global(g) => g.body(),
            Self::RateLimited { .. } => GlobalError::RequestLimitReached.body(),
            Self::Method { code, message } => ErrorBody::new(*code, *message),
            Self::Internal { .. } => GlobalError::InternalError.body(),
        }
    }
}

impl From<GlobalError> for ApiError {
    fn from(g: GlobalError) -> Self {
        Self::Global(g)
    }
}

impl From<skingate_store::StoreError> for ApiError {
    #[track_caller]
    fn from(e: skingate_store::StoreError) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal { cause, at } = &self {
            tracing::error!(error = format!("{cause:#}"), location = %at, "internal error");
        }
        let body = serde_json::to_vec(&self.body()).expect("error body serializes");
        let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Self::RateLimited { retry_after_secs } = self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_errors_are_opaque() {
        let resp = ApiError::internal(anyhow::anyhow!("disk on fire at /var/lib/secret")).into_response();
        let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert_eq!(text, r#"{"status":"error","error_code":-100,"error_message":"internal_error"}"#);
    }

    #[test]
    fn rate_limit_sets_retry_after() {
        let resp = ApiError::RateLimited { retry_after_secs: 3 }.into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
    }
}
