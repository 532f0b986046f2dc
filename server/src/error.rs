//! One error type for everything the relay tells a device or an HTTP
//! client: a stable code and one sentence. The details of the relay's own
//! failures (storage, internals) go to the log, never to the peer; a
//! refusal may say what was wrong with what the device itself sent (such as
//! which rule a membership entry breaks).

use crate::store::{AppendError, PairError, StoreError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cove_shared::wire::{ErrorCode, RelayToClient, RequestId};
use std::borrow::Cow;

/// A refused request, or a connection that must end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// One sentence for people.
    pub message: Cow<'static, str>,
    /// Whether the connection ends after this error.
    pub fatal: bool,
}

impl ApiError {
    /// An error with the code's own sentence.
    pub fn new(code: ErrorCode) -> Self {
        Self { code, message: Cow::Borrowed(code.describe()), fatal: false }
    }

    /// An error with a more specific sentence.
    pub fn with(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { code, message: message.into(), fatal: false }
    }

    /// Marks the error as ending the connection.
    pub fn fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    /// The frame that reports it.
    pub fn frame(&self, request: Option<RequestId>) -> RelayToClient {
        RelayToClient::Error { request, code: self.code, message: self.message.to_string() }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::PlanExists => Self::new(ErrorCode::PlanExists),
            StoreError::NoSuchPlan => Self::new(ErrorCode::NotFound),
            StoreError::Conflict => Self::new(ErrorCode::MembershipConflict),
            // A store that fails is logged once, by `crate::health`.
            StoreError::Unavailable(error) => {
                tracing::debug!(%error, "storage failed");
                Self::new(ErrorCode::Unavailable)
            }
            other => {
                tracing::warn!(error = %other, "storage failed");
                Self::new(ErrorCode::Unavailable)
            }
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(error: AppendError) -> Self {
        Self::new(match error {
            AppendError::Equivocation => ErrorCode::Equivocation,
            AppendError::QuotaExceeded => ErrorCode::QuotaExceeded,
            AppendError::NoSuchPlan => ErrorCode::NotFound,
            _ => ErrorCode::Unavailable,
        })
    }
}

impl From<PairError> for ApiError {
    fn from(error: PairError) -> Self {
        Self::new(match error {
            PairError::Unknown => ErrorCode::PairingUnknown,
            PairError::Burned => ErrorCode::PairingBurned,
            _ => ErrorCode::Unavailable,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.code {
            ErrorCode::Unavailable | ErrorCode::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyConnections | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, format!("{} ({})\n", self.message, self.code.name())).into_response()
    }
}
