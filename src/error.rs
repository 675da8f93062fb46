//! The one error type, and the only place that turns errors into the contract's
//! `{"error": "<sentence>", "code": "<snake_case>"}` body with its status.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: `code` is one of the contract's `invalid_*` codes.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        /// Seconds, sent as `Retry-After`.
        retry_after: Option<u64>,
    },
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 503: the database cannot take writes (disk full, read-only) or is gone.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the detail is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every error: a sentence for people and a code for programs.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub code: &'a str,
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::Unauthorized(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict(message.into())
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::Internal(detail.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The sentence a client sees: never SQL text or a stack trace.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "internal server error".to_string(),
            other => other.to_string(),
        }
    }

    pub fn to_response(&self) -> warp::reply::Response {
        if let ApiError::Internal(detail) = self {
            tracing::error!(%detail, "internal error");
        }
        let message = self.public_message();
        let body = ErrorBody {
            error: &message,
            code: self.code(),
        };
        let mut res =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        if let ApiError::RateLimited {
            retry_after: Some(seconds),
            ..
        } = self
        {
            res.headers_mut()
                .insert(warp::http::header::RETRY_AFTER, (*seconds).into());
        }
        res
    }

    pub fn rate_limited(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        ApiError::RateLimited {
            message: message.into(),
            retry_after,
        }
    }
}

impl warp::reject::Reject for ApiError {}

impl From<rusqlite::Error> for ApiError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match err.sqlite_error_code() {
            Some(
                ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::OperationAborted,
            ) => {
                tracing::warn!(error = %err, "database cannot take writes");
                ApiError::Unavailable("the database cannot take writes right now".into())
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                ApiError::Unavailable("the database is busy; try again".into())
            }
            _ => ApiError::Internal(format!("sqlite: {err}")),
        }
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(err: r2d2::Error) -> Self {
        tracing::warn!(error = %err, "database pool");
        ApiError::Unavailable("the database is unavailable".into())
    }
}

/// Turns every rejection (ours and warp's own) into the contract's error body.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    use warp::reject;
    let err = if let Some(api) = rejection.find::<ApiError>() {
        return Ok(api.to_response());
    } else if rejection.is_not_found() {
        ApiError::not_found("no such route")
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed("method not allowed on this route".into())
    } else if rejection.find::<reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge("request body too large".into())
    } else if rejection.find::<reject::InvalidQuery>().is_some() {
        ApiError::invalid("invalid_query", "invalid query string")
    } else if let Some(missing) = rejection.find::<reject::MissingHeader>() {
        ApiError::invalid(
            "invalid_header",
            format!("missing header {}", missing.name()),
        )
    } else if let Some(invalid) = rejection.find::<reject::InvalidHeader>() {
        ApiError::invalid(
            "invalid_header",
            format!("invalid header {}", invalid.name()),
        )
    } else {
        ApiError::internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(err.to_response())
}
