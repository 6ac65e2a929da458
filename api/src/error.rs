//! The contract's error shape.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chronicle_domain::MAX_LEAF_DATA_BYTES;
use chronicle_evidence::EvidenceError;
use chronicle_store::{ErrorKind, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};

/// An error as the API answers it: a status, a snake_case code, a message, and details.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds a field beside `code` and `message`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A query or path parameter that cannot be used.
    pub fn invalid_parameter(parameter: &str, message: impl Into<String>) -> ApiError {
        ApiError::bad_request("invalid_parameter", message).with("parameter", parameter)
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.details.get("field").and_then(Value::as_str) {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match &error {
            StoreError::WrongExpectedVersion {
                index,
                stream,
                expected,
                actual,
            } => ApiError::new(
                StatusCode::CONFLICT,
                "wrong_expected_version",
                error.to_string(),
            )
            .with("index", *index)
            .with("stream", stream.as_str())
            .with(
                "expected",
                serde_json::to_value(expected).unwrap_or(Value::Null),
            )
            .with("actual", *actual),
            StoreError::DuplicateEventId { index, id } => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate_event_id",
                error.to_string(),
            )
            .with("index", *index)
            .with("id", id.to_string()),
            StoreError::EventTooLarge { index, .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "event_too_large",
                error.to_string(),
            )
            .with("index", *index)
            .with("max_bytes", MAX_LEAF_DATA_BYTES),
            _ => match error.kind() {
                ErrorKind::Unavailable => {
                    tracing::warn!(error = %error, "store unavailable");
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        error.to_string(),
                    )
                }
                ErrorKind::InvalidInput => {
                    ApiError::bad_request("invalid_parameter", error.to_string())
                }
                ErrorKind::NotFound => ApiError::not_found(error.to_string()),
                ErrorKind::Conflict => {
                    ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
                }
                ErrorKind::Internal => {
                    tracing::error!(error = ?error, "internal error");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error",
                    )
                }
            },
        }
    }
}

impl From<EvidenceError> for ApiError {
    fn from(error: EvidenceError) -> ApiError {
        match error {
            EvidenceError::Store(error) => ApiError::from(error),
            EvidenceError::InvalidInput(message) => ApiError::bad_request("invalid_body", message),
            error => {
                tracing::error!(error = ?error, "evidence failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

/// The body of every error answer: `{"error": {"code", "message", …details}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a snake_case code, a message, and details such as `index`, `field`,
/// `parameter`, `stream`, `expected`, `actual`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: &'static str,
    pub message: String,
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub details: Map<String, Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
