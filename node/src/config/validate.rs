//! Validation of a site configuration: ranges and cross-references, one check per section;
//! every error names the key.

use std::collections::BTreeSet;

use super::{AGENTS_MAX, ConfigError, NodeConfig, TOKENS_MAX, invalid, parse_date_end_ms};
use crate::actors::site::NODE_ID_MAX;

impl NodeConfig {
    /// Checks ranges and cross-references; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_site()?;
        self.validate_clock()?;
        self.validate_http()?;
        self.validate_cluster()?;
        self.routing
            .validate()
            .map_err(|error| invalid("routing", error.to_string()))?;
        self.overflow
            .validate()
            .map_err(|error| invalid("overflow", error.to_string()))?;
        self.validate_peer_sites()?;
        self.callbacks
            .validate()
            .map_err(|error| invalid("callbacks", error.to_string()))?;
        if self.orders.order_ready_repeat_h == 0 {
            return Err(invalid("orders.order_ready_repeat_h", "must be positive"));
        }
        if self.callbacks.attempts_max == 0 {
            return Err(invalid("callbacks.attempts_max", "must be positive"));
        }
        self.metrics
            .validate()
            .map_err(|error| invalid("metrics", error.to_string()))?;
        self.validate_topics()?;
        self.validate_agents()?;
        crate::state::quality::validate_checklist(&self.quality.checklist)
            .map_err(|error| invalid(format!("quality.{}", error.field), error.reason))?;
        self.validate_tokens()
    }

    /// `[site]`: id and UTC offset.
    fn validate_site(&self) -> Result<(), ConfigError> {
        if self.site.id.trim().is_empty() || self.site.id.len() > 64 {
            return Err(invalid("site.id", "must be 1 to 64 characters"));
        }
        if !(-720..=840).contains(&self.site.utc_offset_minutes)
            || self.site.utc_offset_minutes % 15 != 0
        {
            return Err(invalid(
                "site.utc_offset_minutes",
                "must be within -720..=840 and a whole number of quarter hours",
            ));
        }
        Ok(())
    }

    /// `[site]` drill clock keys.
    fn validate_clock(&self) -> Result<(), ConfigError> {
        let site = &self.site;
        if let Some(speed) = site.clock_speed
            && !(1.0..=crate::clock::CLOCK_SPEED_MAX).contains(&speed)
        {
            return Err(invalid(
                "site.clock_speed",
                format!("must be between 1 and {}", crate::clock::CLOCK_SPEED_MAX),
            ));
        }
        let scaled =
            site.clock_speed.is_some_and(|speed| speed != 1.0) || site.clock_start_ms.is_some();
        if scaled && site.clock_epoch_ms.is_none() {
            return Err(invalid(
                "site.clock_epoch_ms",
                "required with clock_speed or clock_start_ms (every node must agree on it)",
            ));
        }
        if site.clock_epoch_ms.is_some()
            && site.clock_speed.is_none()
            && site.clock_start_ms.is_none()
        {
            return Err(invalid(
                "site.clock_epoch_ms",
                "only with clock_speed or clock_start_ms",
            ));
        }
        Ok(())
    }

    /// `[http]`: the body limit.
    fn validate_http(&self) -> Result<(), ConfigError> {
        if self.http.body_bytes_max == 0 || self.http.body_bytes_max > 16 * 1024 * 1024 {
            return Err(invalid(
                "http.body_bytes_max",
                "must be between 1 and 16 MiB",
            ));
        }
        Ok(())
    }

    /// `[cluster]`: node ids, peers, learners, bootstrap, timeouts.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        if self.cluster.node_id == 0 || self.cluster.node_id > NODE_ID_MAX {
            return Err(invalid(
                "cluster.node_id",
                "must be between 1 and 8191 (contact ids carry it below 2^53)",
            ));
        }
        let mut ids = BTreeSet::from([self.cluster.node_id]);
        for (position, peer) in self.cluster.peers.iter().enumerate() {
            if peer.id == 0 || peer.id > NODE_ID_MAX || !ids.insert(peer.id) {
                return Err(invalid(
                    format!("cluster.peers[{position}].id"),
                    "must be unique and between 1 and 8191",
                ));
            }
            if peer
                .address
                .rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            {
                return Err(invalid(
                    format!("cluster.peers[{position}].address"),
                    "must be host:port",
                ));
            }
        }
        for (position, learner) in self.cluster.learners.iter().enumerate() {
            if !ids.contains(learner) {
                return Err(invalid(
                    format!("cluster.learners[{position}]"),
                    "is not a member",
                ));
            }
        }
        if self.cluster.bootstrap.is_none() && !self.cluster.peers.is_empty() {
            return Err(invalid(
                "cluster.bootstrap",
                "is required with peers: \"new\" on the initial members of a new cluster, \
                 \"join\" on a node the leader adds later",
            ));
        }
        if self.cluster.proposal_timeout_ms == 0 {
            return Err(invalid("cluster.proposal_timeout_ms", "must be positive"));
        }
        Ok(())
    }

    /// `[[peer_sites]]`: unique ids and numbers, http(s) URLs.
    fn validate_peer_sites(&self) -> Result<(), ConfigError> {
        let mut peer_ids = BTreeSet::from([self.site.id.clone()]);
        let mut peer_numbers = BTreeSet::from([self.site.number]);
        for (position, peer) in self.peer_sites.iter().enumerate() {
            if peer.id.trim().is_empty() || peer.id.len() > 64 || !peer_ids.insert(peer.id.clone())
            {
                return Err(invalid(
                    format!("peer_sites[{position}].id"),
                    "must be 1 to 64 characters, unique and not this site's",
                ));
            }
            if !peer_numbers.insert(peer.number) {
                return Err(invalid(
                    format!("peer_sites[{position}].number"),
                    "must be unique and not this site's",
                ));
            }
            if peer.api_url.as_ref().is_some_and(|url| {
                !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 256
            }) {
                return Err(invalid(
                    format!("peer_sites[{position}].api_url"),
                    "must be an http(s) URL of at most 256 characters",
                ));
            }
        }
        Ok(())
    }

    /// `[[topics]]`: known skills of the same channel.
    fn validate_topics(&self) -> Result<(), ConfigError> {
        for (position, route) in self.topics.iter().enumerate() {
            let Some(skill) = self.skill_by_name(&route.skill) else {
                return Err(invalid(
                    format!("topics[{position}].skill"),
                    format!("unknown skill `{}`", route.skill),
                ));
            };
            if skill.channel != route.channel {
                return Err(invalid(
                    format!("topics[{position}].channel"),
                    "differs from the skill's channel",
                ));
            }
        }
        Ok(())
    }

    /// `[[agents]]`: unique logins and ids, known skills, dates, chat slots.
    fn validate_agents(&self) -> Result<(), ConfigError> {
        if self.agents.len() > AGENTS_MAX {
            return Err(invalid("agents", format!("more than {AGENTS_MAX}")));
        }
        let mut logins = BTreeSet::new();
        let mut agent_ids = BTreeSet::new();
        for (position, agent) in self.agents.iter().enumerate() {
            if !crate::state::machine::login_is_valid(&agent.login)
                || !logins.insert(agent.login.clone())
            {
                return Err(invalid(
                    format!("agents[{position}].login"),
                    "must be unique, 1 to 64 characters of A-Z a-z 0-9 . _ - @",
                ));
            }
            if !agent_ids.insert(agent.id) {
                return Err(invalid(format!("agents[{position}].id"), "must be unique"));
            }
            for skill in &agent.skills {
                if self.skill_by_name(skill).is_none() {
                    return Err(invalid(
                        format!("agents[{position}].skills"),
                        format!("unknown skill `{skill}`"),
                    ));
                }
            }
            if let Some(date) = &agent.certificate_valid_until {
                parse_date_end_ms(date).ok_or_else(|| {
                    invalid(
                        format!("agents[{position}].certificate_valid_until"),
                        "must be YYYY-MM-DD",
                    )
                })?;
            }
            if agent.chat_slots == 0 || agent.chat_slots > callgrid_domain::CHAT_SLOTS_MAX {
                return Err(invalid(
                    format!("agents[{position}].chat_slots"),
                    "must be between 1 and 8",
                ));
            }
        }
        Ok(())
    }

    /// `[[tokens]]`: hashes only, never a plaintext token.
    fn validate_tokens(&self) -> Result<(), ConfigError> {
        if self.tokens.len() > TOKENS_MAX {
            return Err(invalid("tokens", format!("more than {TOKENS_MAX}")));
        }
        for (position, token) in self.tokens.iter().enumerate() {
            match (&token.sha256, &token.token) {
                (Some(hash), None) if hash.len() == 64 && hex::decode(hash).is_ok() => {}
                (Some(_), None) => {
                    return Err(invalid(
                        format!("tokens[{position}].sha256"),
                        "must be 64 hex digits",
                    ));
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        format!("tokens[{position}].token"),
                        "plaintext tokens are not accepted: store its hash as `sha256` \
                         (`callgrid token hash` prints it)",
                    ));
                }
                _ => {
                    return Err(invalid(
                        format!("tokens[{position}]"),
                        "needs exactly one of `sha256` and `token`",
                    ));
                }
            }
        }
        Ok(())
    }
}
