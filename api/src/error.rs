//! The one place that maps failures to the public error code and HTTP status.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chat_nats::model::ErrorCode;
use schemars::JsonSchema;
use serde::Serialize;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Public code.
    pub code: ErrorCode,
    /// Safe-to-show reason.
    pub message: String,
    /// For `rate_limited` and `unavailable`: when to retry.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with a code and reason.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), retry_after_s: None }
    }

    /// 400.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Invalid, message)
    }

    /// 404: also what a non-member gets, so chat ids do not leak.
    pub fn not_found() -> Self {
        ApiError::new(ErrorCode::NotFound, "not found")
    }

    /// 500, logged with the cause; the client sees no detail.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error")
    }

    /// 503 with a retry hint.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { code: ErrorCode::Unavailable, message: message.into(), retry_after_s: Some(1) }
    }
}

impl From<chat_core::write_budget::OverBudget> for ApiError {
    /// 429 with `Retry-After` in whole seconds, rounded up.
    fn from(over: chat_core::write_budget::OverBudget) -> Self {
        ApiError {
            code: ErrorCode::RateLimited,
            message: over.kind.refusal().into(),
            retry_after_s: Some(over.retry_after_ms.div_ceil(1000).max(1)),
        }
    }
}

/// The HTTP status of each public code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Invalid => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and reason of an error answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// The public code; it decides the status.
    pub code: ErrorCode,
    /// A reason safe to show.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A refusal that asks to come back says when, even one the persister decided
        // (its rejections carry no hint): the document promises the header.
        let retry_after_s = self.retry_after_s.or(match self.code {
            ErrorCode::RateLimited | ErrorCode::Unavailable => Some(1),
            _ => None,
        });
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let mut response = (status_of(self.code), Json(body)).into_response();
        if let Some(seconds) = retry_after_s
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<chat_store::StoreError> for ApiError {
    fn from(error: chat_store::StoreError) -> Self {
        tracing::warn!(%error, "MongoDB request failed");
        ApiError::unavailable("storage is unavailable; retry later")
    }
}

#[cfg(test)]
mod tests {
    use axum::{
        http::{StatusCode, header},
        response::IntoResponse,
    };
    use chat_nats::model::ErrorCode;

    use super::ApiError;

    #[test]
    fn a_refusal_that_asks_to_come_back_says_when() {
        // A persister rejection carries no hint; the answer still has the header the
        // document promises.
        for code in [ErrorCode::RateLimited, ErrorCode::Unavailable] {
            let response = ApiError::new(code, "later").into_response();
            assert_eq!(response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"1"[..]), "{code:?}");
        }
        let hinted = ApiError { retry_after_s: Some(42), ..ApiError::new(ErrorCode::RateLimited, "later") };
        assert_eq!(hinted.into_response().headers()[header::RETRY_AFTER], "42");
        let refused = ApiError::invalid("no").into_response();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(refused.headers().get(header::RETRY_AFTER).is_none());
    }
}
