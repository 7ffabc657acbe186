//! What operators set for the whole cluster: which sites are drained, the tokens valid at
//! every site (hashes and roles only), and each site's own policy.
//!
//! - Drain: a drained site takes no new contacts and claims no callbacks (the node enforces
//!   it from this set); peers treat its summary as unavailable and dial its callbacks.
//! - Tokens: a config's `[[tokens]]` (and a node's generated admin token) are a **seed**: each
//!   node merges it once it has caught up; a hash the cluster already knows — active or
//!   revoked — is left alone, so a restart never brings back a revoked token nor changes a
//!   role an operator set. An operator's add replaces; a revoke keeps the hash as revoked.
//!   The last active admin token cannot be revoked (the cluster would lock its operators out).
//! - Policy: kept per site; a command of site S uses S's policy (the cluster default when S
//!   never proposed one), so restart order no longer decides another site's rules.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::super::command::{ApplyError, Outcome, Response, TokenGrant};
use super::super::model::{Role, StatePolicy, TimestampMs};
use super::{ReplicatedState, callbacks};

/// Tokens the cluster holds at most (active and revoked).
pub const TOKENS_MAX: usize = 10_000;
/// Sites whose policy the cluster keeps at most.
pub const SITE_POLICIES_MAX: usize = 1_000;
/// Sites that may be drained at once, at most.
pub const DRAINED_SITES_MAX: usize = 1_000;

/// A token the whole cluster accepts (or has revoked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Principal name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Revoked tokens are refused everywhere and never re-seeded.
    pub revoked: bool,
    /// Site whose node proposed the last change.
    pub changed_by_site: String,
    /// When it last changed (proposer's clock).
    pub changed_at_ms: TimestampMs,
}

/// Drained sites, cluster-wide tokens and per-site policies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteControl {
    drained: BTreeSet<String>,
    tokens: BTreeMap<[u8; 32], TokenRecord>,
    site_policies: BTreeMap<String, StatePolicy>,
}

impl ReplicatedState {
    /// Whether `site` is drained.
    pub fn is_drained(&self, site: &str) -> bool {
        self.control.drained.contains(site)
    }

    /// The drained sites.
    pub fn drained_sites(&self) -> impl Iterator<Item = &str> {
        self.control.drained.iter().map(String::as_str)
    }

    /// The cluster's record of a token hash (active or revoked).
    pub fn token(&self, sha256: &[u8; 32]) -> Option<&TokenRecord> {
        self.control.tokens.get(sha256)
    }

    /// Every token record, by hash.
    pub fn tokens(&self) -> impl Iterator<Item = (&[u8; 32], &TokenRecord)> {
        self.control.tokens.iter()
    }

    /// The policy `site` replicated, if it did.
    pub fn site_policy(&self, site: &str) -> Option<&StatePolicy> {
        self.control.site_policies.get(site)
    }

    /// The policy commands of `site` follow: its own, else the cluster default.
    pub fn policy_for(&self, site: &str) -> &StatePolicy {
        self.control.site_policies.get(site).unwrap_or(&self.policy)
    }

    /// The longest complaint repeat window of any site's policy (retention keeps records at
    /// least that long, so a repeat is detectable at every site).
    pub(super) fn complaint_window_days_max(&self) -> u32 {
        self.control
            .site_policies
            .values()
            .map(|policy| policy.complaint_repeat_window_days)
            .fold(self.policy.complaint_repeat_window_days, u32::max)
    }

    /// Runs `change` with the callback machine under `site`'s rules, then puts the cluster
    /// default rules back (the claim-expiry sweep runs under those).
    pub(super) fn with_site_rules<T>(
        &mut self,
        site: &str,
        change: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let rules = callbacks::rules(self.policy_for(site));
        self.callback_machine.set_rules(rules);
        let result = change(self);
        self.callback_machine
            .set_rules(callbacks::rules(&self.policy));
        result
    }

    pub(super) fn set_site_drained(&mut self, site: &str, drained: bool) -> Response {
        if drained {
            if !self.control.drained.contains(site)
                && self.control.drained.len() >= DRAINED_SITES_MAX
            {
                return Err(ApplyError::Conflict("too many drained sites".to_string()));
            }
            self.control.drained.insert(site.to_string());
        } else {
            self.control.drained.remove(site);
        }
        Ok(Outcome::Done)
    }

    pub(super) fn grant_tokens(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        tokens: &[TokenGrant],
        seed: bool,
    ) -> Response {
        let new = tokens
            .iter()
            .filter(|grant| !self.control.tokens.contains_key(&grant.sha256))
            .map(|grant| grant.sha256)
            .collect::<BTreeSet<_>>();
        if self.control.tokens.len() + new.len() > TOKENS_MAX {
            return Err(ApplyError::Conflict(format!(
                "the cluster holds at most {TOKENS_MAX} tokens"
            )));
        }
        for grant in tokens {
            if seed && !new.contains(&grant.sha256) {
                continue;
            }
            self.control.tokens.insert(
                grant.sha256,
                TokenRecord {
                    name: grant.name.clone(),
                    role: grant.role,
                    revoked: false,
                    changed_by_site: site.to_string(),
                    changed_at_ms: at_ms,
                },
            );
        }
        Ok(Outcome::Done)
    }

    pub(super) fn revoke_token(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        sha256: &[u8; 32],
    ) -> Response {
        let Some(record) = self.control.tokens.get(sha256) else {
            return Err(ApplyError::Conflict(
                "the cluster knows no such token".to_string(),
            ));
        };
        if record.revoked {
            return Ok(Outcome::Done);
        }
        let other_admins = self
            .control
            .tokens
            .iter()
            .filter(|(hash, token)| *hash != sha256 && token.role == Role::Admin && !token.revoked)
            .count();
        if record.role == Role::Admin && other_admins == 0 {
            return Err(ApplyError::Conflict(
                "the last active admin token cannot be revoked: add another first".to_string(),
            ));
        }
        if let Some(record) = self.control.tokens.get_mut(sha256) {
            record.revoked = true;
            record.changed_by_site = site.to_string();
            record.changed_at_ms = at_ms;
        }
        Ok(Outcome::Done)
    }

    pub(super) fn set_site_policy(&mut self, site: &str, policy: &StatePolicy) -> Response {
        if !self.control.site_policies.contains_key(site)
            && self.control.site_policies.len() >= SITE_POLICIES_MAX
        {
            return Err(ApplyError::Conflict("too many site policies".to_string()));
        }
        self.control
            .site_policies
            .insert(site.to_string(), policy.clone());
        Ok(Outcome::Done)
    }
}
