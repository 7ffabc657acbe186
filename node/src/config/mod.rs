//! Site configuration: the TOML file (`--config site.toml`), the embedded single-site default,
//! and their validation. Unknown keys are refused and every error names the key.
//!
//! Routing, overflow, callback and metrics sections are the domain crate's own config types,
//! so a site and a simulator scenario describe queues the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use callgrid_domain::{
    CallbackPolicy, Channel, Line, MetricsConfig, OverflowConfig, RoutingConfig, SkillConfig, Topic,
};
use serde::Deserialize;

use crate::state::model::{DAY_MS, Role, StatePolicy};
use crate::state::quality::QualitySection;

/// Default HTTP listen address of the embedded single-site mode.
pub const HTTP_LISTEN_DEFAULT: &str = "127.0.0.1:8080";
/// Default cluster (QUIC) listen address of the embedded single-site mode.
pub const CLUSTER_LISTEN_DEFAULT: &str = "127.0.0.1:7080";
/// Default data directory.
pub const DATA_DIR_DEFAULT: &str = "./callgrid-data";
/// Largest request body accepted by default.
pub const BODY_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Most agents a site roster may hold.
pub const AGENTS_MAX: usize = 10_000;
/// Most tokens a config may hold.
pub const TOKENS_MAX: usize = 10_000;

/// Why a configuration cannot be used. Every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown or mistyped key (the message names it).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key and position.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("key `{key}`: {reason}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// Why.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The whole site configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Who this site is.
    pub site: SiteSection,
    /// The HTTP API.
    #[serde(default)]
    pub http: HttpSection,
    /// Raft membership and transport.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// Queues (skills) and routing rules, shared with the simulator.
    #[serde(default = "default_routing")]
    pub routing: RoutingConfig,
    /// IVR topic → skill name.
    #[serde(default)]
    pub topics: Vec<TopicRoute>,
    /// Overflow to other sites.
    #[serde(default)]
    pub overflow: OverflowConfig,
    /// The other sites this one may overflow to or take overflow from: their dense numbers
    /// (routing names sites by number, the replicated summaries by id) and API addresses.
    #[serde(default)]
    pub peer_sites: Vec<PeerSite>,
    /// Callbacks for abandoned callers (the domain crate's policy).
    #[serde(default)]
    pub callbacks: CallbackPolicy,
    /// Order reminders and complaint rules.
    #[serde(default)]
    pub orders: OrdersSection,
    /// Report intervals and service-level policy.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The agents who may log in at this site.
    #[serde(default)]
    pub agents: Vec<AgentEntry>,
    /// Bearer tokens and their roles.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// Call quality control: the checklist supervisors score finished contacts on.
    #[serde(default)]
    pub quality: QualitySection,
}

/// `[site]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    /// Site name, e.g. "msk".
    pub id: String,
    /// City.
    #[serde(default)]
    pub city: String,
    /// Dense site number used by routing (0..n across the cluster).
    #[serde(default)]
    pub number: u16,
    /// Where RocksDB and the token file live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The site's fixed offset from UTC in minutes (Moscow: 180): reports roll over at the
    /// site's local midnight and show local times. Within -720..=840, whole quarter hours.
    #[serde(default)]
    pub utc_offset_minutes: i16,
    /// Drills only: routing time runs this many times faster than wall time (1..=10,000;
    /// default 1). Every node of the cluster must use the same clock (see [`crate::clock`]).
    #[serde(default)]
    pub clock_speed: Option<f64>,
    /// Drills only: wall time (ms since the Unix epoch) from which a scaled clock runs;
    /// required with `clock_speed`.
    #[serde(default)]
    pub clock_epoch_ms: Option<u64>,
    /// Drills only: what the scaled clock reads at `clock_epoch_ms` (default: the epoch).
    #[serde(default)]
    pub clock_start_ms: Option<u64>,
}

impl SiteSection {
    /// The routing clock this site asks for (wall time without `clock_speed`).
    pub fn clock(&self) -> crate::clock::ScaledClock {
        let epoch_ms = self.clock_epoch_ms.unwrap_or(0);
        crate::clock::ScaledClock {
            speed: self.clock_speed.unwrap_or(1.0),
            epoch_ms,
            start_ms: self.clock_start_ms.unwrap_or(epoch_ms),
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address of the API.
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted.
    #[serde(default = "default_body_bytes_max")]
    pub body_bytes_max: usize,
    /// Seconds a SIGTERM waits for requests in flight.
    #[serde(default = "default_drain_s")]
    pub drain_s: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            drain_s: default_drain_s(),
        }
    }
}

/// `[cluster]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// This node's Raft id (never 0).
    #[serde(default = "default_node_id")]
    pub node_id: u64,
    /// Listen address of the QUIC transport.
    #[serde(default = "default_cluster_listen")]
    pub listen: SocketAddr,
    /// The other members.
    #[serde(default)]
    pub peers: Vec<PeerEntry>,
    /// Directory with `ca.pem`, `node-N.pem`, `node-N.key`; created with a fresh CA when
    /// absent and the cluster has only this node.
    #[serde(default)]
    pub certificates_dir: Option<PathBuf>,
    /// Ids that join as learners (non-voting replicas) rather than voters.
    #[serde(default)]
    pub learners: Vec<u64>,
    /// What an empty Raft store does: `"new"` bootstraps a new cluster of this node and its
    /// peers (every initial member says so), `"join"` waits to be added by the leader (a
    /// node added later, or one whose disk was replaced). Required when there are peers;
    /// a node alone is always `"new"`.
    #[serde(default)]
    pub bootstrap: Option<callgrid_cluster::Bootstrap>,
    /// Milliseconds a proposal may wait for commit before the API answers 503.
    #[serde(default = "default_proposal_timeout_ms")]
    pub proposal_timeout_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            node_id: default_node_id(),
            listen: default_cluster_listen(),
            peers: Vec::new(),
            certificates_dir: None,
            learners: Vec::new(),
            bootstrap: None,
            proposal_timeout_ms: default_proposal_timeout_ms(),
        }
    }
}

/// `[[cluster.peers]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    /// Raft id.
    pub id: u64,
    /// `host:port` of its QUIC listener.
    pub address: String,
}

/// `[[peer_sites]]`: another site of the cluster, for overflow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSite {
    /// Its `site.id`.
    pub id: String,
    /// Its `site.number`.
    pub number: u16,
    /// Base URL of its API (`http://host:port`), told to the gateway with an overflowed
    /// contact so the telephony side knows where to re-present it.
    #[serde(default)]
    pub api_url: Option<String>,
}

/// `[[topics]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRoute {
    /// IVR topic.
    pub topic: Topic,
    /// Channel the route applies to.
    #[serde(default = "default_channel")]
    pub channel: Channel,
    /// Skill name that serves it.
    pub skill: String,
}

/// `[orders]`: order reminders and complaint rules (abandoned-call callbacks are in
/// `[callbacks]`, the domain crate's policy).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersSection {
    /// Hours between "your order is ready" calls while an order waits at the pickup point.
    #[serde(default = "default_order_ready_repeat_h")]
    pub order_ready_repeat_h: u64,
    /// Hours between delivery and the follow-up call.
    #[serde(default = "default_follow_up_delay_h")]
    pub follow_up_delay_h: u64,
    /// A complaint from a caller who complained within this many days is escalated.
    #[serde(default = "default_complaint_repeat_window_days")]
    pub complaint_repeat_window_days: u32,
}

impl Default for OrdersSection {
    fn default() -> Self {
        Self {
            order_ready_repeat_h: default_order_ready_repeat_h(),
            follow_up_delay_h: default_follow_up_delay_h(),
            complaint_repeat_window_days: default_complaint_repeat_window_days(),
        }
    }
}

/// `[[agents]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntry {
    /// Login, also the name of the agent's token.
    pub login: String,
    /// Numeric id, unique in the cluster.
    pub id: u32,
    /// Skill names.
    pub skills: Vec<String>,
    /// Last day (ISO date, inclusive) of the pharma certificate that line-2 skills need.
    #[serde(default)]
    pub certificate_valid_until: Option<String>,
    /// Chats the agent can hold at once.
    #[serde(default = "default_chat_slots")]
    pub chat_slots: u8,
}

/// `[[tokens]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Principal name (an agent's login for agent tokens).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Hex SHA-256 of the token (preferred: the file holds no secret).
    #[serde(default)]
    pub sha256: Option<String>,
    /// A plaintext token: refused by validation (the file would hold a secret); present so
    /// the refusal names the fix instead of "unknown field".
    #[serde(default)]
    pub token: Option<String>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DATA_DIR_DEFAULT)
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_cluster_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7080))
}
fn default_body_bytes_max() -> usize {
    BODY_BYTES_MAX_DEFAULT
}
fn default_drain_s() -> u64 {
    10
}
fn default_node_id() -> u64 {
    1
}
fn default_proposal_timeout_ms() -> u64 {
    5_000
}
fn default_channel() -> Channel {
    Channel::Voice
}
fn default_order_ready_repeat_h() -> u64 {
    24
}
fn default_follow_up_delay_h() -> u64 {
    24
}
fn default_complaint_repeat_window_days() -> u32 {
    30
}
fn default_chat_slots() -> u8 {
    1
}

/// The queues of a pharmacy contact center: line 1 voice, line 2 (pharma consultants),
/// complaints, and line 1 chat.
pub fn default_routing() -> RoutingConfig {
    let skill = |name: &str, channel, line| SkillConfig {
        name: name.to_string(),
        channel,
        line,
        handle_time_s_initial: 180,
    };
    RoutingConfig::with_skills(vec![
        skill("line1", Channel::Voice, Line::Line1),
        skill("line2", Channel::Voice, Line::Line2),
        skill("complaints", Channel::Voice, Line::Line1),
        skill("chat", Channel::Chat, Line::Line1),
    ])
}

impl NodeConfig {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: NodeConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The commented single-site sample (`node/site.example.toml`, `callgrid config example`).
    pub const EXAMPLE: &'static str = include_str!("../../site.example.toml");

    /// The embedded single-site default: data in `./callgrid-data`, API on 127.0.0.1:8080,
    /// default queues, no agents or tokens besides the generated admin token.
    pub fn embedded_default() -> Self {
        Self {
            site: SiteSection {
                id: "site-1".to_string(),
                city: "default".to_string(),
                number: 0,
                data_dir: default_data_dir(),
                utc_offset_minutes: 0,
                clock_speed: None,
                clock_epoch_ms: None,
                clock_start_ms: None,
            },
            http: HttpSection::default(),
            cluster: ClusterSection::default(),
            routing: default_routing(),
            topics: Vec::new(),
            overflow: OverflowConfig::default(),
            peer_sites: Vec::new(),
            callbacks: CallbackPolicy::default(),
            orders: OrdersSection::default(),
            metrics: MetricsConfig::default(),
            agents: Vec::new(),
            tokens: Vec::new(),
            quality: QualitySection::default(),
        }
    }

    /// The replicated policy these settings describe.
    pub fn state_policy(&self) -> StatePolicy {
        StatePolicy {
            abandoned_callback_delay_ms: self.callbacks.delay_s.saturating_mul(1_000),
            callback_attempts_max: u32::from(self.callbacks.attempts_max),
            callback_retry_interval_ms: self.callbacks.retry_interval_s.saturating_mul(1_000),
            order_ready_repeat_interval_ms: self
                .orders
                .order_ready_repeat_h
                .saturating_mul(DAY_MS / 24),
            follow_up_delay_ms: self.orders.follow_up_delay_h.saturating_mul(DAY_MS / 24),
            complaint_repeat_window_days: self.orders.complaint_repeat_window_days,
        }
    }

    /// A skill's config by name.
    pub fn skill_by_name(&self, name: &str) -> Option<&SkillConfig> {
        self.routing.skills.iter().find(|skill| skill.name == name)
    }

    /// The peer site with this id.
    pub fn peer_site(&self, id: &str) -> Option<&PeerSite> {
        self.peer_sites.iter().find(|peer| peer.id == id)
    }

    /// The peer site with this routing number.
    pub fn peer_site_by_number(&self, number: u16) -> Option<&PeerSite> {
        self.peer_sites.iter().find(|peer| peer.number == number)
    }

    /// The `[[agents]]` as the cluster-wide roster holds them.
    pub fn agent_definitions(&self) -> Vec<crate::state::command::AgentDefinition> {
        self.agents
            .iter()
            .map(|agent| crate::state::command::AgentDefinition {
                login: agent.login.clone(),
                id: agent.id,
                skills: agent.skills.clone(),
                certificate_valid_until: agent.certificate_valid_until.clone(),
                chat_slots: agent.chat_slots,
            })
            .collect()
    }

    /// A skill's index by name.
    pub fn skill_index(&self, name: &str) -> Option<u16> {
        self.routing
            .skills
            .iter()
            .position(|skill| skill.name == name)
            .and_then(|index| u16::try_from(index).ok())
    }
}

/// Milliseconds since the epoch of the end (exclusive) of an ISO date `YYYY-MM-DD` in UTC.
pub fn parse_date_end_ms(date: &str) -> Option<u64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format).ok()?;
    let next = day.next_day()?;
    let seconds = next.midnight().assume_utc().unix_timestamp();
    u64::try_from(seconds).ok()?.checked_mul(1_000)
}

mod validate;

#[cfg(test)]
mod tests;
