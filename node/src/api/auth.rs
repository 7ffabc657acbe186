//! Bearer tokens → principals with roles, and the admin token of the embedded default.
//!
//! Tokens are kept as SHA-256 hashes only; a request's token is hashed and looked up, so the
//! node never holds the secrets of configured tokens. The generated admin token is printed
//! once and its hash persisted in the data directory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use actix_web::HttpRequest;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::problem::ApiError;
use super::session::{SessionStore, authenticate_cookie};
use crate::config::TokenEntry;
use crate::state::model::{Actor, Role};

/// File in the data directory holding the admin token's hash.
pub const ADMIN_TOKEN_FILE: &str = "admin-token.sha256";
/// Bytes of randomness in a generated token.
pub const TOKEN_BYTES: usize = 24;

/// Why tokens could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The admin token file could not be read or written.
    #[error("admin token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The admin token file does not hold a hex SHA-256.
    #[error("admin token file {0} is corrupted")]
    Corrupted(String),
}

/// Token hash → principal, and the browser sessions signed in with those tokens.
///
/// Two sources: the replicated table every site shares (tokens added or revoked with
/// `callgrid cluster token`, and every node's seed), and this node's own seed (its config's
/// `[[tokens]]` and its generated admin token). Once the replicated table holds any token it
/// alone decides — a token the cluster revoked is refused whatever the local config says;
/// the local seed answers only while this node's replicated table is empty (a new cluster
/// before its first seed committed, a new member before it caught up).
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    by_hash: HashMap<[u8; 32], Actor>,
    sessions: Arc<SessionStore>,
    replicated: Option<crate::state::SharedState>,
}

/// Hashes a token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenTable {
    /// A table from configured entries (already validated).
    pub fn from_config(entries: &[TokenEntry]) -> Self {
        let mut table = Self::default();
        for entry in entries {
            let hash = match (&entry.sha256, &entry.token) {
                (Some(hex_hash), _) => {
                    let mut hash = [0_u8; 32];
                    if hex::decode_to_slice(hex_hash, &mut hash).is_err() {
                        continue;
                    }
                    hash
                }
                (None, Some(token)) => hash_token(token),
                (None, None) => continue,
            };
            table.insert(hash, entry.name.clone(), entry.role);
        }
        table
    }

    /// Adds a principal.
    pub fn insert(&mut self, hash: [u8; 32], name: String, role: Role) {
        self.by_hash.insert(hash, Actor { name, role });
    }

    /// Consults the replicated token table first (see the type's documentation).
    pub fn with_replicated(mut self, shared: crate::state::SharedState) -> Self {
        self.replicated = Some(shared);
        self
    }

    /// This node's seed: its configured tokens and its admin token, as grants to merge into
    /// the cluster's table.
    pub fn seed(&self) -> Vec<crate::state::command::TokenGrant> {
        let mut grants: Vec<_> = self
            .by_hash
            .iter()
            .map(|(hash, actor)| crate::state::command::TokenGrant {
                sha256: *hash,
                name: actor.name.clone(),
                role: actor.role,
            })
            .collect();
        grants.sort_by_key(|grant| grant.sha256);
        grants
    }

    /// The principal a token maps to.
    pub fn principal(&self, token: &str) -> Option<Actor> {
        self.principal_by_hash(&hash_token(token))
    }

    /// The principal a token hash maps to.
    pub fn principal_by_hash(&self, hash: &[u8; 32]) -> Option<Actor> {
        let hash = *hash;
        if let Some(shared) = &self.replicated {
            let known = shared.read(|state| {
                state.tokens().next()?;
                Some(state.token(&hash).and_then(|record| {
                    (!record.revoked).then(|| Actor {
                        name: record.name.clone(),
                        role: record.role,
                    })
                }))
            });
            if let Some(answer) = known {
                return answer;
            }
        }
        self.by_hash.get(&hash).cloned()
    }

    /// The browser sessions.
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// The principal of a request, from `Authorization: Bearer <token>`, or without that
    /// header from the session cookie (see [`super::session`]: CSRF and origin checked).
    pub fn authenticate(&self, request: &HttpRequest) -> Result<Actor, ApiError> {
        let Some(header) = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
        else {
            // Browsers cannot set headers on a WebSocket: they offer the subprotocols `bearer`
            // and the token, or send the session cookie of a sign-in.
            if let Some(token) = websocket_token(request) {
                return self.principal(&token).ok_or(ApiError::Unauthorized);
            }
            return authenticate_cookie(self, request);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|header| header.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?
            .trim();
        self.principal(token).ok_or(ApiError::Unauthorized)
    }
}

/// The WebSocket subprotocol that announces a token in `Sec-WebSocket-Protocol`.
pub const WEBSOCKET_TOKEN_PROTOCOL: &str = "bearer";

/// The token a WebSocket client offered as a subprotocol next to [`WEBSOCKET_TOKEN_PROTOCOL`]
/// (`Sec-WebSocket-Protocol: bearer, <token>`), if any.
pub fn websocket_token(request: &HttpRequest) -> Option<String> {
    let offered: Vec<&str> = request
        .headers()
        .get_all(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    if !offered.contains(&WEBSOCKET_TOKEN_PROTOCOL) {
        return None;
    }
    offered
        .into_iter()
        .find(|protocol| *protocol != WEBSOCKET_TOKEN_PROTOCOL)
        .map(str::to_string)
}

/// Requires one of `roles` (admin always passes).
pub fn require(actor: &Actor, roles: &[Role]) -> Result<(), ApiError> {
    if actor.role == Role::Admin || roles.contains(&actor.role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "role {:?} may not use this endpoint",
            actor.role
        )))
    }
}

/// Requires that `actor` may act for agent `login`: the agent itself, or a supervisor/admin.
pub fn require_agent(actor: &Actor, login: &str) -> Result<(), ApiError> {
    match actor.role {
        Role::Admin | Role::Supervisor => Ok(()),
        Role::Agent if actor.name == login => Ok(()),
        Role::Agent => Err(ApiError::Forbidden(
            "an agent sees only its own desktop".to_string(),
        )),
        Role::Gateway => Err(ApiError::Forbidden(
            "gateways may not use agent endpoints".to_string(),
        )),
    }
}

/// Reads the admin token's hash from the data directory, or generates a new token (hash and
/// the token itself, to print once) **without writing it**: call [`persist_admin_token`]
/// once the node has started, so a start that fails (bad config, port in use) does not use up
/// the one-time token.
pub fn ensure_admin_token(data_dir: &Path) -> Result<([u8; 32], Option<String>), AuthError> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let display = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut hash = [0_u8; 32];
            hex::decode_to_slice(text.trim(), &mut hash)
                .map_err(|_| AuthError::Corrupted(display))?;
            Ok((hash, None))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0_u8; TOKEN_BYTES];
            rand::thread_rng().fill_bytes(&mut bytes);
            let token = format!("cg_{}", hex::encode(bytes));
            Ok((hash_token(&token), Some(token)))
        }
        Err(source) => Err(AuthError::Io {
            path: display,
            source,
        }),
    }
}

/// Stores a newly generated admin token's hash (never the token) in the data directory.
pub fn persist_admin_token(data_dir: &Path, hash: &[u8; 32]) -> Result<(), AuthError> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let display = path.display().to_string();
    std::fs::create_dir_all(data_dir).map_err(|source| AuthError::Io {
        path: display.clone(),
        source,
    })?;
    std::fs::write(&path, hex::encode(hash)).map_err(|source| AuthError::Io {
        path: display,
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn admin_token_is_generated_once_and_persisted_hashed() {
        let directory = tempfile::tempdir().unwrap();
        let (hash, token) = ensure_admin_token(directory.path()).unwrap();
        let token = token.unwrap();
        assert_eq!(hash, hash_token(&token));
        assert!(
            !directory.path().join(ADMIN_TOKEN_FILE).exists(),
            "nothing written before the node started"
        );
        persist_admin_token(directory.path(), &hash).unwrap();
        let stored = std::fs::read_to_string(directory.path().join(ADMIN_TOKEN_FILE)).unwrap();
        assert!(!stored.contains(&token));
        let (again, printed) = ensure_admin_token(directory.path()).unwrap();
        assert_eq!(again, hash);
        assert!(printed.is_none());
    }

    #[test]
    fn roles_are_checked() {
        let agent = Actor {
            name: "anna".into(),
            role: Role::Agent,
        };
        assert!(require(&agent, &[Role::Agent]).is_ok());
        assert!(require(&agent, &[Role::Supervisor]).is_err());
        assert!(require_agent(&agent, "anna").is_ok());
        assert!(require_agent(&agent, "boris").is_err());
        let admin = Actor {
            name: "root".into(),
            role: Role::Admin,
        };
        assert!(require(&admin, &[Role::Gateway]).is_ok());
    }
}
