//! The domain error: what went wrong, in the server's own terms. It knows no HTTP; the HTTP edge
//! (`http::error`) turns it into a status and the contract's `{"error", "code"}` body, and the
//! socket (`protocol::ServerFrame::error`) into an `error` frame, each in one place.

/// Every error carries a sentence for people; the code for programs comes from the kind (and,
/// for `Invalid`, `Forbidden` and `Conflict`, from the rule that was broken).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input breaks a rule; `code` is one of the contract's `invalid_*` codes.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The caller is not who they claim: no token, a bad one, or a deleted account.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored (a taken name, an edit of a deleted message).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Too big: a body or a frame.
    #[error("{0}")]
    TooLarge(String),
    /// What the user already stores and this would pass their quota.
    #[error("{0}")]
    Quota(String),
    /// Too many, too fast; try again after `retry_after` seconds if given.
    #[error("{message}")]
    Limit {
        message: String,
        retry_after: Option<u64>,
    },
    /// The client took too long (a request body that does not arrive).
    #[error("{0}")]
    TimedOut(String),
    /// The database cannot take writes (disk full, read-only), is busy, or the server stops.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure: the detail is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Error::Unauthenticated(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden {
            code: "forbidden",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            code: "conflict",
            message: message.into(),
        }
    }

    pub fn limit(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        Error::Limit {
            message: message.into(),
            retry_after,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable(message.into())
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Error::Internal(detail.into())
    }

    /// The contract's machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. }
            | Error::Forbidden { code, .. }
            | Error::Conflict { code, .. } => code,
            Error::Unauthenticated(_) => "unauthorized",
            Error::NotFound(_) => "not_found",
            Error::TooLarge(_) => "payload_too_large",
            Error::Quota(_) => "quota_exceeded",
            Error::Limit { .. } => "rate_limited",
            Error::TimedOut(_) => "request_timeout",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// The sentence a client sees: never SQL text or a stack trace. An internal error's detail
    /// is logged here, where it is hidden, so every edge logs it once.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal server error".to_string()
            }
            other => other.to_string(),
        }
    }

    /// The account a token names is gone.
    pub fn account_gone() -> Self {
        Error::unauthenticated("this account no longer exists")
    }
}
