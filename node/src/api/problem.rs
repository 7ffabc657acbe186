//! Errors of the HTTP API as RFC 9457 problem details (`application/problem+json`), and the
//! extractor configurations that turn malformed input into them.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, ResponseError, error, web};
use serde_json::json;

use crate::actors::site::SiteError;
use crate::replicate::{ProposeFailure, ReplicateError};
use crate::state::ApplyError;

/// An API error; every variant maps to one status code and a problem document.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, unknown field, invalid value or path parameter.
    #[error("{0}")]
    BadRequest(String),
    /// No or unknown bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token's role may not use this endpoint, or the record belongs to someone else.
    #[error("{0}")]
    Forbidden(String),
    /// The record does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The record's state does not allow the change.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the limit.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// The node cannot serve now (shutting down, an actor gone); retry later.
    #[error("{0}")]
    Unavailable(String),
    /// No leader or no quorum answers: nothing was written (or, for a read, this node cannot
    /// prove its state current). Retry later, or read with `?consistency=local`.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The write may or may not have committed (timed out, leader changed). Retry with the
    /// same `Idempotency-Key`: the retry returns the first result if there was one.
    #[error(
        "outcome unknown: {0}; the request may or may not have been applied: retry with the same Idempotency-Key"
    )]
    OutcomeUnknown(String),
    /// The `Idempotency-Key` was used before for a different request.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// Something failed inside the node.
    #[error("{0}")]
    Internal(String),
    /// The site is drained: no new contacts; present the contact at one of `peers`.
    #[error("site `{site}` is draining: present new contacts at a peer site")]
    SiteDraining {
        /// This site.
        site: String,
        /// Live peer sites (not drained, publishing): `{"site", "api_url"}` objects.
        peers: Vec<serde_json::Value>,
    },
}

impl ApiError {
    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "too-large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::NoQuorum(_) => "no-quorum",
            ApiError::OutcomeUnknown(_) => "outcome-unknown",
            ApiError::IdempotencyKeyReused(_) => "idempotency-key-reused",
            ApiError::Internal(_) => "internal",
            ApiError::SiteDraining { .. } => "site-draining",
        }
    }

    /// The problem's `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{PROBLEM_TYPE_BASE}{}", self.slug())
    }
}

/// Where the problem `type` URIs live; the slug follows (`.../outcome-unknown`).
pub const PROBLEM_TYPE_BASE: &str = "https://callgrid.invalid/problems/";
/// `Retry-After` (seconds) on 503 answers: about one election timeout.
pub const RETRY_AFTER_S: u64 = 1;

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) | ApiError::NoQuorum(_) | ApiError::OutcomeUnknown(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::IdempotencyKeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::SiteDraining { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut body = json!({
            "type": self.type_uri(),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        if let ApiError::SiteDraining { site, peers } = self {
            body["site"] = json!(site);
            body["peers"] = json!(peers);
        }
        let mut response = HttpResponse::build(status);
        response.insert_header(ContentType(mime_problem()));
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", RETRY_AFTER_S.to_string()));
        }
        response.body(body.to_string())
    }
}

fn mime_problem() -> actix_web::mime::Mime {
    "application/problem+json"
        .parse()
        .unwrap_or(actix_web::mime::APPLICATION_JSON)
}

impl From<SiteError> for ApiError {
    fn from(error: SiteError) -> Self {
        match error {
            SiteError::NotFound(message) => ApiError::NotFound(message),
            SiteError::Conflict(message) => ApiError::Conflict(message),
            SiteError::Forbidden(message) => ApiError::Forbidden(message),
            SiteError::Invalid(message) => ApiError::BadRequest(message),
            error @ SiteError::Finished(_) => ApiError::Conflict(error.to_string()),
            error @ SiteError::Outbox(_) => ApiError::Unavailable(error.to_string()),
            SiteError::Domain(cause) => {
                use callgrid_domain::DomainError;
                match cause {
                    DomainError::UnknownAgent(_)
                    | DomainError::UnknownContact(_)
                    | DomainError::UnknownSkill(_) => ApiError::NotFound(cause.to_string()),
                    DomainError::ChannelMismatch { .. } | DomainError::InvalidAgent { .. } => {
                        ApiError::BadRequest(cause.to_string())
                    }
                    _ => ApiError::Conflict(cause.to_string()),
                }
            }
        }
    }
}

impl From<ProposeFailure> for ApiError {
    fn from(failure: ProposeFailure) -> Self {
        match failure {
            ProposeFailure::Invalid(invalid) => ApiError::BadRequest(invalid.to_string()),
            ProposeFailure::Refused(ApplyError::NotFound { kind, id }) => {
                ApiError::NotFound(format!("{kind} {id} not found"))
            }
            ProposeFailure::Refused(ApplyError::Invalid(invalid)) => {
                ApiError::BadRequest(invalid.to_string())
            }
            ProposeFailure::Refused(error @ ApplyError::IdempotencyKeyReused { .. }) => {
                ApiError::IdempotencyKeyReused(error.to_string())
            }
            ProposeFailure::Refused(other) => ApiError::Conflict(other.to_string()),
            ProposeFailure::Replication(error) => error.into(),
        }
    }
}

impl From<ReplicateError> for ApiError {
    fn from(error: ReplicateError) -> Self {
        match error {
            ReplicateError::Refused(message) => ApiError::BadRequest(message),
            ReplicateError::Unavailable(message) => ApiError::NoQuorum(message),
            ReplicateError::Indeterminate(message) => ApiError::OutcomeUnknown(message),
            error @ ReplicateError::ShuttingDown => ApiError::Unavailable(error.to_string()),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(error: actix::MailboxError) -> Self {
        ApiError::Unavailable(format!("site actor unavailable: {error}"))
    }
}

/// JSON bodies: size limit, and every parse error as a 400 (413 when too large) problem.
pub fn json_config(body_bytes_max: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(body_bytes_max)
        .error_handler(move |error, _request: &HttpRequest| {
            let api_error = match &error {
                error::JsonPayloadError::Overflow { .. }
                | error::JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::TooLarge(body_bytes_max)
                }
                error::JsonPayloadError::ContentType => {
                    ApiError::BadRequest("Content-Type must be application/json".to_string())
                }
                other => ApiError::BadRequest(format!("invalid JSON body: {other}")),
            };
            error::InternalError::from_response(error, api_error.error_response()).into()
        })
}

/// Raw payloads (WebSocket upgrade bodies and the like): size limit.
pub fn payload_config(body_bytes_max: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(body_bytes_max)
}

/// Path parameters that do not parse are a 400 problem, not a 404.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error, _request| {
        let api_error = ApiError::BadRequest(format!("invalid path parameter: {error}"));
        error::InternalError::from_response(error, api_error.error_response()).into()
    })
}

/// Query strings that do not parse are a 400 problem.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _request| {
        let api_error = ApiError::BadRequest(format!("invalid query: {error}"));
        error::InternalError::from_response(error, api_error.error_response()).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use callgrid_domain::{AgentId, ContactId, DomainError};

    /// "No quorum" (nothing written) and "outcome unknown" (maybe written: retry with the
    /// same key) are distinct retryable problems; a reused key is 422.
    #[test]
    fn replication_failures_are_distinct_problem_types() {
        let problem = |failure: ProposeFailure| {
            let error = ApiError::from(failure);
            let response = error.error_response();
            let retry_after = response
                .headers()
                .get("Retry-After")
                .map(|value| value.to_str().unwrap_or_default().to_string());
            (error.status_code(), error.type_uri(), retry_after)
        };
        let (status, type_uri, retry_after) = problem(ProposeFailure::Replication(
            ReplicateError::Indeterminate("timed out".to_string()),
        ));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(type_uri.ends_with("/outcome-unknown"), "{type_uri}");
        assert_eq!(retry_after.as_deref(), Some("1"));
        let (status, type_uri, retry_after) = problem(ProposeFailure::Replication(
            ReplicateError::Unavailable("no leader".to_string()),
        ));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(type_uri.ends_with("/no-quorum"), "{type_uri}");
        assert_eq!(retry_after.as_deref(), Some("1"));
        let (status, type_uri, _) =
            problem(ProposeFailure::Refused(ApplyError::IdempotencyKeyReused {
                key: "k".to_string(),
            }));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(type_uri.ends_with("/idempotency-key-reused"), "{type_uri}");
    }

    /// The domain's cause decides the status: unknown records are 404, refusals 409.
    #[test]
    fn domain_errors_keep_their_cause_in_the_status() {
        let status = |error: DomainError| ApiError::from(SiteError::Domain(error)).status_code();
        assert_eq!(
            status(DomainError::UnknownContact(ContactId(7))),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(DomainError::UnknownAgent(AgentId(7))),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(DomainError::ContactState {
                contact: ContactId(7),
                operation: "accept",
            }),
            StatusCode::CONFLICT
        );
    }
}
