//! Browser sessions: a token is exchanged once for an HttpOnly session cookie and a CSRF token.
//!
//! ```text
//!   POST /api/v1/session {"token"} ─► Set-Cookie: cg_session=<random>; HttpOnly; SameSite=Strict
//!                                     body: {"name","role","csrf"}
//!   later requests without `Authorization` ─► cookie → the same principal, the same roles
//!   POST/PATCH/PUT/DELETE by cookie        ─► also need `X-CSRF-Token: <csrf>`
//!   WebSocket upgrade by cookie            ─► `Origin` must be this host (no cross-site sockets)
//! ```
//!
//! Browsers cannot put an `Authorization` header on a WebSocket, hence the cookie. Sessions
//! are held in memory (hashed ids only), expire after [`SESSION_TTL`], and a node restart signs
//! everyone out. Gateways are machines and may not sign in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use parking_lot::Mutex;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::{TokenTable, hash_token};
use super::problem::ApiError;
use crate::state::model::{Actor, Role};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "cg_session";
/// Header carrying the CSRF token on state changes made with the cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lives after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at most; the oldest is dropped to make room.
pub const SESSIONS_MAX: usize = 10_000;
/// Longest token accepted at sign-in.
pub const SIGN_IN_TOKEN_CHARS_MAX: usize = 256;
/// Random bytes in a session id and in a CSRF token.
const SECRET_BYTES: usize = 32;

#[derive(Debug, Clone)]
struct Session {
    actor: Actor,
    /// The SHA-256 of the token signed in with: a session ends when the cluster revokes it.
    token_sha256: [u8; 32],
    csrf: String,
    expires: Instant,
}

/// Open sessions by the SHA-256 of their id.
#[derive(Debug, Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

fn secret() -> String {
    let mut bytes = [0_u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(left: &str, right: &str) -> bool {
    left.len() == right.len()
        && left
            .bytes()
            .zip(right.bytes())
            .fold(0_u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

impl SessionStore {
    /// Opens a session for `actor`, signed in with the token whose hash is `token_sha256`;
    /// returns its id (the cookie value) and its CSRF token.
    pub fn open(&self, actor: Actor, token_sha256: [u8; 32]) -> (String, String) {
        let id = secret();
        let csrf = secret();
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, session| session.expires > now);
        if sessions.len() >= SESSIONS_MAX {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(hash, _)| *hash);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            hash_token(&id),
            Session {
                actor,
                token_sha256,
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        debug_assert!(sessions.len() <= SESSIONS_MAX);
        (id, csrf)
    }

    /// The principal, CSRF token and sign-in token hash of a live session.
    pub fn lookup(&self, id: &str) -> Option<(Actor, String, [u8; 32])> {
        let hash = hash_token(id);
        let mut sessions = self.sessions.lock();
        match sessions.get(&hash) {
            Some(session) if session.expires > Instant::now() => Some((
                session.actor.clone(),
                session.csrf.clone(),
                session.token_sha256,
            )),
            Some(_) => {
                sessions.remove(&hash);
                None
            }
            None => None,
        }
    }

    /// Ends a session; false when there was none.
    pub fn close(&self, id: &str) -> bool {
        self.sessions.lock().remove(&hash_token(id)).is_some()
    }

    /// Sessions open (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// No session open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn safe_method(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD || method == Method::OPTIONS
}

/// A request's `Origin`, when present, must name the host it was sent to.
fn same_origin(request: &HttpRequest) -> bool {
    let Some(origin) = request.headers().get(actix_web::http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = request.connection_info().host().to_string();
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !host.is_empty() && origin_host == host
}

/// The principal of a request carrying the session cookie (no `Authorization` header):
/// state changes need the CSRF header, and every request a same-origin `Origin` if any.
/// A session whose sign-in token the cluster revoked (or gave another role) is refused.
pub fn authenticate_cookie(tokens: &TokenTable, request: &HttpRequest) -> Result<Actor, ApiError> {
    let id = session_id(request).ok_or(ApiError::Unauthorized)?;
    let (actor, csrf, token_sha256) = tokens
        .sessions()
        .lookup(&id)
        .ok_or(ApiError::Unauthorized)?;
    if tokens.principal_by_hash(&token_sha256).as_ref() != Some(&actor) {
        tokens.sessions().close(&id);
        return Err(ApiError::Unauthorized);
    }
    if !same_origin(request) {
        tracing::warn!(principal = %actor.name, "session request from another origin refused");
        return Err(ApiError::Forbidden(
            "cross-origin request with a session cookie".to_string(),
        ));
    }
    if !safe_method(request.method()) {
        let presented = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        if !same_secret(presented, &csrf) {
            tracing::warn!(principal = %actor.name, "session request without a valid CSRF token");
            return Err(ApiError::Forbidden(
                "missing or wrong X-CSRF-Token".to_string(),
            ));
        }
    }
    Ok(actor)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignInBody {
    token: String,
}

/// The `Set-Cookie` value of a session (`Secure` when served over TLS).
fn session_cookie(request: &HttpRequest, value: &str, max_age: Duration) -> String {
    debug_assert!(value.bytes().all(|byte| byte.is_ascii_hexdigit()));
    let secure = if request.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    )
}

/// The session id in the request's `Cookie` header(s).
fn session_id(request: &HttpRequest) -> Option<String> {
    request
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty() && value.len() <= 2 * SECRET_BYTES)
}

fn session_json(actor: &Actor, csrf: &str) -> serde_json::Value {
    json!({"name": actor.name, "role": actor.role, "csrf": csrf})
}

/// `POST /api/v1/session`: exchanges a token for a session cookie.
pub(crate) async fn sign_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<SignInBody>,
) -> Result<HttpResponse, ApiError> {
    let token = body.into_inner().token;
    let token = token.trim();
    if token.is_empty() || token.chars().count() > SIGN_IN_TOKEN_CHARS_MAX {
        return Err(ApiError::BadRequest(format!(
            "`token` must be 1 to {SIGN_IN_TOKEN_CHARS_MAX} characters"
        )));
    }
    let Some(actor) = state.tokens.principal(token) else {
        tracing::warn!("sign-in with an unknown token");
        return Err(ApiError::Unauthorized);
    };
    if actor.role == Role::Gateway {
        return Err(ApiError::Forbidden(
            "gateways use bearer tokens, not sessions".to_string(),
        ));
    }
    let (id, csrf) = state
        .tokens
        .sessions()
        .open(actor.clone(), hash_token(token));
    tracing::info!(principal = %actor.name, role = ?actor.role, "signed in");
    Ok(HttpResponse::Ok()
        .insert_header(("Set-Cookie", session_cookie(&request, &id, SESSION_TTL)))
        .insert_header(("Cache-Control", "no-store"))
        .json(session_json(&actor, &csrf)))
}

/// `GET /api/v1/session`: who the cookie belongs to, and its CSRF token (same origin only).
pub(crate) async fn current(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&request).ok_or(ApiError::Unauthorized)?;
    authenticate_cookie(&state.tokens, &request)?;
    let (actor, csrf, _) = state
        .tokens
        .sessions()
        .lookup(&id)
        .ok_or(ApiError::Unauthorized)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(session_json(&actor, &csrf)))
}

/// `DELETE /api/v1/session`: signs out (needs the CSRF token).
pub(crate) async fn sign_out(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = session_id(&request).ok_or(ApiError::Unauthorized)?;
    let actor = authenticate_cookie(&state.tokens, &request)?;
    state.tokens.sessions().close(&id);
    tracing::info!(principal = %actor.name, "signed out");
    Ok(HttpResponse::NoContent()
        .insert_header(("Set-Cookie", session_cookie(&request, "", Duration::ZERO)))
        .finish())
}

/// Registers `/api/v1/session` (before the API scope, so it wins the match).
pub fn register(service: &mut web::ServiceConfig) {
    service.service(
        web::resource("/api/v1/session")
            .route(web::post().to(sign_in))
            .route(web::get().to(current))
            .route(web::delete().to(sign_out)),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn anna() -> Actor {
        Actor {
            name: "anna".into(),
            role: Role::Agent,
        }
    }

    #[test]
    fn sessions_open_look_up_and_close() {
        let store = SessionStore::default();
        let (id, csrf) = store.open(anna(), [7; 32]);
        assert_ne!(id, csrf);
        let (actor, stored_csrf, token_sha256) = store.lookup(&id).unwrap();
        assert_eq!(actor, anna());
        assert_eq!(token_sha256, [7; 32]);
        assert_eq!(stored_csrf, csrf);
        assert!(
            store.lookup(&csrf).is_none(),
            "the CSRF token is no session id"
        );
        assert!(store.close(&id));
        assert!(store.lookup(&id).is_none());
        assert!(!store.close(&id));
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }
}
