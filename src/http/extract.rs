//! Extractors whose rejections are problem+json that names what was wrong.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::AppError;
use crate::error::{Error, ErrorCode};

/// `axum::Json` with problem+json rejections, and a body that must be UTF-8 throughout
/// (serde skips the members it ignores without looking inside their strings). A whole number
/// written with a fraction (`3000.0`) is read as the integer it is, as JSON Schema (and the
/// OpenAPI document) say: clients whose numbers are all floats send them so.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned + 'static,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if json_content_type(&req) != Some(true) {
            return Err(unsupported_media_type());
        }
        let body = Bytes::from_request(req, state).await?;
        Ok(Self(json_from(&body)?))
    }
}

/// A JSON body as `T`. Only an object is read into a struct (serde would also take an array
/// of the fields' values, in order: `["my-app", 3000]` must not create a tunnel); a `T` that
/// is any JSON value (fleet ingest takes an array too) takes any.
fn decode<T: DeserializeOwned + 'static>(value: Value) -> Result<T, AppError> {
    let invalid = |detail: String| {
        AppError::rejected(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            detail,
        )
    };
    if !value.is_object() && std::any::TypeId::of::<T>() != std::any::TypeId::of::<Value>() {
        return Err(invalid("the body must be a JSON object".into()));
    }
    serde_path_to_error::deserialize(whole_numbers(value)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        invalid(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })
}

/// Every float of `value` with no fraction that fits an `i64` becomes that integer.
fn whole_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, whole_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `axum::extract::Query` with problem+json rejections. A value holding NUL (`%00`) is a 400
/// naming its parameter: PostgreSQL text can neither store nor compare it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        if let Some(pair) = query.split('&').find(|pair| pair.contains("%00")) {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            return Err(Error::bad_param(
                name,
                format!("query parameter `{name}` must not contain NUL characters"),
            )
            .into());
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Path` with problem+json rejections.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

/// A JSON body that may be absent: an empty body (with or without a content type) is `None`,
/// anything else must be JSON of the right shape. Agents heartbeat with no body at all.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + 'static,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_json_type = json_content_type(&req);
        let body = Bytes::from_request(req, state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if has_json_type == Some(false) {
            return Err(unsupported_media_type());
        }
        Ok(Self(Some(json_from(&body)?)))
    }
}

/// JSON text is UTF-8 (RFC 8259 §8.1): a body that is not is malformed, wherever the bad
/// bytes are.
fn json_from<T: DeserializeOwned + 'static>(body: &[u8]) -> Result<T, AppError> {
    if let Err(err) = std::str::from_utf8(body) {
        return Err(AppError::rejected(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedJson,
            format!(
                "the body is not valid UTF-8 (at byte {})",
                err.valid_up_to()
            ),
        ));
    }
    let axum::Json(value) = axum::Json::<Value>::from_bytes(body)?;
    decode(value)
}

/// Whether the request says its body is JSON; `None` without a readable `Content-Type`.
fn json_content_type(req: &Request) -> Option<bool> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(is_json_content_type)
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn unsupported_media_type() -> AppError {
    AppError::rejected(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        "the body must be JSON, sent with `Content-Type: application/json`",
    )
}

/// axum prefixes serde's message with a sentence of its own; the rest names the field.
fn serde_detail(text: &str) -> String {
    let text = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| text.strip_prefix("Failed to parse the request body as JSON: "))
        .or_else(|| text.strip_prefix("Failed to deserialize query string: "))
        .or_else(|| text.strip_prefix("Failed to deserialize query string. Error: "))
        .unwrap_or(text);
    text.to_owned()
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(err) => AppError::rejected(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
                serde_detail(&err.body_text()),
            ),
            JsonRejection::JsonSyntaxError(err) => AppError::rejected(
                StatusCode::BAD_REQUEST,
                ErrorCode::MalformedJson,
                serde_detail(&err.body_text()),
            ),
            JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
            JsonRejection::BytesRejection(err) => bytes_rejection(err.status(), err.body_text()),
            other => bytes_rejection(other.status(), other.body_text()),
        }
    }
}

impl From<BytesRejection> for AppError {
    fn from(rejection: BytesRejection) -> Self {
        bytes_rejection(rejection.status(), rejection.body_text())
    }
}

fn bytes_rejection(status: StatusCode, text: String) -> AppError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::rejected(
            status,
            ErrorCode::PayloadTooLarge,
            "the request body is larger than this route accepts (1 MiB; 8 MiB for fleet-status ingest)",
        )
    } else {
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        AppError::rejected(status, ErrorCode::BadRequest, text)
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::rejected(
            StatusCode::BAD_REQUEST,
            ErrorCode::ValidationFailed,
            serde_detail(&rejection.body_text()),
        )
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(err) => {
                let detail = match err.kind() {
                    axum::extract::path::ErrorKind::ParseErrorAtKey { key, .. } => {
                        format!("path parameter `{key}` is not a valid identifier")
                    }
                    _ => err.body_text(),
                };
                AppError::rejected(StatusCode::BAD_REQUEST, ErrorCode::ValidationFailed, detail)
            }
            other => Error::internal(anyhow::anyhow!("path extraction failed: {other}")).into(),
        }
    }
}
