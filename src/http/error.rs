//! The one place a domain error becomes an HTTP answer: its status, and the contract's
//! `{"error": "<sentence>", "code": "<snake_case>"}` body.

use serde::Serialize;
use warp::http::{header, StatusCode};
use warp::reply::{Reply, Response};

use crate::error::Error;

/// Every error: a sentence for people and a code for programs.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    pub error: &'a str,
    pub code: &'a str,
}

fn status(err: &Error) -> StatusCode {
    match err {
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden { .. } => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict { .. } => StatusCode::CONFLICT,
        Error::TooLarge(_) | Error::Quota(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Limit { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub(crate) fn response(err: &Error) -> Response {
    let mut res = with_status(status(err), err.code(), &err.public_message());
    if let Error::TimedOut(_) = err {
        // The rest of the body may never come: do not wait for it to reuse the connection.
        res.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    if let Error::Limit {
        retry_after: Some(seconds),
        ..
    } = err
    {
        res.headers_mut()
            .insert(header::RETRY_AFTER, (*seconds).into());
    }
    res
}

/// An error answer the edge makes itself (a method the route does not take).
pub(crate) fn with_status(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: message,
        code,
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}
