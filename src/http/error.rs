//! One error type for every handler: client faults → 4xx with the reason, internal → 5xx.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::error;

use crate::ingest::IngestError;

/// An HTTP error response.
#[derive(Debug)]
pub enum ApiError {
    /// The client sent something unusable (400/413/415), with the reason.
    Client(StatusCode, String),
    /// We could not handle it now; the sender should retry (503).
    Overloaded(String),
    /// Our fault; details only in the log (500).
    Internal(String),
}

/// The HTTP status of a refused ingest request.
pub fn ingest_status(e: &IngestError) -> StatusCode {
    match e {
        IngestError::TooLarge { .. } | IngestError::TooMany { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        IngestError::Unsupported { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        IngestError::Snappy(_)
        | IngestError::Protobuf(_)
        | IngestError::Decode { .. }
        | IngestError::InvalidSeries(_) => StatusCode::BAD_REQUEST,
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        ApiError::Client(ingest_status(&e), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Client(status, reason) => (status, format!("{reason}\n")).into_response(),
            ApiError::Overloaded(why) => {
                (StatusCode::SERVICE_UNAVAILABLE, [("Retry-After", "1")], format!("overloaded: {why}\n"))
                    .into_response()
            }
            ApiError::Internal(detail) => {
                error!(error = %detail, "Internal error while handling a request.");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
            }
        }
    }
}
