//! `live --emit-configs DIR`: the site TOMLs of a drill cluster for a scenario (its queues,
//! routing, overflow, callbacks and report rules from [`crate::domain_config`], every agent
//! of its staffing plan with a token, the drill clock), `tokens.json` with the plaintext
//! tokens for the players, and `clock.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use callgrid_domain::Channel;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::clock::DrillClock;
use super::plan::{Plan, login_part, node_topic};
use crate::domain_config;
use crate::engine::SkillMap;
use crate::scenario::Scenario;

/// The tokens file in a configs directory.
pub const TOKENS_FILE: &str = "tokens.json";
/// The clock file in a configs directory.
pub const CLOCK_FILE: &str = "clock.json";
/// Line-2 certificates of drill agents are valid until this day.
const CERTIFICATE_VALID_UNTIL: &str = "2099-12-31";

/// Plaintext tokens of a drill (`tokens.json`; the site TOMLs hold only their SHA-256).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    /// The telephony gateway's token (every site).
    pub gateway: String,
    /// A supervisor's token (every site).
    pub supervisor: String,
    /// An admin token (every site): cluster membership, for the fault schedule's `rejoin`.
    /// Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// Agent login → token (its site only).
    pub agents: BTreeMap<String, String>,
}

/// Why configs cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigsError {
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Malformed tokens file.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The scenario cannot be mapped onto site configs.
    #[error("{0}")]
    Invalid(String),
}

/// Network addresses of the drill's sites, scenario order.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// HTTP listen `host:port` per site.
    pub http: Vec<String>,
    /// QUIC listen `host:port` per site.
    pub cluster: Vec<String>,
    /// Directory with the cluster's certificates (`callgrid certs init/issue`).
    pub certificates: PathBuf,
}

impl Tokens {
    /// Fresh random tokens for a plan's agents.
    pub fn generate(plan: &Plan) -> Tokens {
        Tokens {
            gateway: random_token(),
            supervisor: random_token(),
            admin: Some(random_token()),
            agents: plan
                .agents
                .iter()
                .map(|agent| (agent.login.clone(), random_token()))
                .collect(),
        }
    }

    /// Reads `tokens.json`.
    pub fn load(path: &Path) -> Result<Tokens, ConfigsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigsError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::thread_rng().r#gen();
    hex::encode(bytes)
}

fn sha256(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[derive(Serialize)]
struct TopicRoute {
    topic: String,
    channel: Channel,
    skill: String,
}

#[derive(Serialize)]
struct PeerSite {
    id: String,
    number: u16,
    api_url: String,
}

#[derive(Serialize)]
struct AgentEntry {
    login: String,
    id: u32,
    skills: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_valid_until: Option<String>,
    chat_slots: u8,
}

#[derive(Serialize)]
struct TokenEntry {
    name: String,
    role: &'static str,
    sha256: String,
}

/// The routing part of a site TOML (serialized with the domain's own serde names).
#[derive(Serialize)]
struct RoutingSections {
    routing: callgrid_domain::RoutingConfig,
    topics: Vec<TopicRoute>,
    overflow: callgrid_domain::OverflowConfig,
    peer_sites: Vec<PeerSite>,
    callbacks: callgrid_domain::CallbackPolicy,
    metrics: callgrid_domain::MetricsConfig,
    agents: Vec<AgentEntry>,
    tokens: Vec<TokenEntry>,
}

/// The node skill names of a scenario skill: its voice queue and, if chats need it, its chat
/// queue (the offline engine's [`SkillMap`] naming).
pub fn node_skills(skills: &SkillMap, name: &str) -> Vec<String> {
    let Some(index) = skills.names.iter().position(|known| known == name) else {
        return Vec::new();
    };
    let mut names = vec![format!("{name}_voice")];
    if skills.chat.get(index).copied().flatten().is_some() {
        names.push(format!("{name}_chat"));
    }
    names
}

/// Wall time an offer may ring at a drill site before it times out: the players' request
/// latency must fit in it, which at 600× a 15 s routing timeout (25 ms) would not.
pub const OFFER_TIMEOUT_WALL_MS: f64 = 2_000.0;

/// The offer timeout of a drill site (routing ms): the scenario's, or longer at high speed.
pub fn offer_timeout_ms(scenario_timeout_ms: u64, speed: f64) -> u64 {
    scenario_timeout_ms.max((OFFER_TIMEOUT_WALL_MS * speed) as u64)
}

/// The id of site `index` (its scenario name as a login-safe word).
pub fn site_id(scenario: &Scenario, index: usize) -> String {
    login_part(&scenario.sites[index].name)
}

/// Writes every site's TOML, `tokens.json` and `clock.json` into `directory`.
pub fn emit(
    scenario: &Scenario,
    plan: &Plan,
    clock: &DrillClock,
    addresses: &Addresses,
    directory: &Path,
) -> Result<Tokens, ConfigsError> {
    let sites = scenario.sites.len();
    if addresses.http.len() != sites || addresses.cluster.len() != sites {
        return Err(ConfigsError::Invalid(format!(
            "{sites} sites need {sites} HTTP and {sites} cluster addresses"
        )));
    }
    let skills =
        SkillMap::new(scenario).map_err(|error| ConfigsError::Invalid(error.to_string()))?;
    let tokens = Tokens::generate(plan);
    write(directory, TOKENS_FILE, &json_text(&tokens)?)?;
    write(directory, CLOCK_FILE, &json_text(clock)?)?;
    for site in 0..sites {
        let text = site_toml(
            scenario, plan, &skills, &tokens, clock, addresses, directory, site,
        )?;
        write(&directory.join(site_id(scenario, site)), "site.toml", &text)?;
    }
    Ok(tokens)
}

fn json_text<T: Serialize>(value: &T) -> Result<String, ConfigsError> {
    serde_json::to_string_pretty(value).map_err(|source| ConfigsError::Parse {
        path: PathBuf::from(TOKENS_FILE),
        source,
    })
}

fn write(directory: &Path, name: &str, text: &str) -> Result<(), ConfigsError> {
    std::fs::create_dir_all(directory).map_err(|source| ConfigsError::Io {
        path: directory.to_path_buf(),
        source,
    })?;
    let path = directory.join(name);
    std::fs::write(&path, text).map_err(|source| ConfigsError::Io { path, source })
}

#[allow(clippy::too_many_arguments)]
fn site_toml(
    scenario: &Scenario,
    plan: &Plan,
    skills: &SkillMap,
    tokens: &Tokens,
    clock: &DrillClock,
    addresses: &Addresses,
    directory: &Path,
    site: usize,
) -> Result<String, ConfigsError> {
    let id = site_id(scenario, site);
    let data = directory.join(&id).join("data");
    let node_id = site + 1;
    let mut text = format!(
        "# callgrid-sim live --emit-configs: site {site} of scenario \"{}\"\n\
         [site]\nid = \"{id}\"\ncity = \"{}\"\nnumber = {site}\ndata_dir = \"{}\"\n\
         utc_offset_minutes = 0\nclock_speed = {:?}\nclock_epoch_ms = {}\nclock_start_ms = {}\n\n\
         [http]\nlisten = \"{}\"\ndrain_s = 1\n\n\
         [cluster]\nnode_id = {node_id}\nlisten = \"{}\"\ncertificates_dir = \"{}\"\n",
        scenario.name.replace('"', "'"),
        scenario.sites[site].name.replace('"', "'"),
        data.display(),
        clock.speed,
        clock.epoch_ms,
        clock.start_ms,
        addresses.http[site],
        addresses.cluster[site],
        addresses.certificates.display(),
    );
    if scenario.sites.len() > 1 {
        text.push_str("bootstrap = \"new\"\n");
        for (peer, address) in addresses.cluster.iter().enumerate() {
            if peer != site {
                text.push_str(&format!(
                    "[[cluster.peers]]\nid = {}\naddress = \"{address}\"\n",
                    peer + 1
                ));
            }
        }
    }
    let mut sections = routing_sections(scenario, plan, skills, tokens, addresses, site);
    sections.routing.offer_timeout_ms =
        offer_timeout_ms(sections.routing.offer_timeout_ms, clock.speed);
    let body =
        toml::to_string(&sections).map_err(|error| ConfigsError::Invalid(error.to_string()))?;
    text.push('\n');
    text.push_str(&body);
    Ok(text)
}

fn routing_sections(
    scenario: &Scenario,
    plan: &Plan,
    skills: &SkillMap,
    tokens: &Tokens,
    addresses: &Addresses,
    site: usize,
) -> RoutingSections {
    let mut topics: Vec<TopicRoute> = Vec::new();
    for (index, topic) in scenario.topics.iter().enumerate() {
        let name = node_topic(scenario, index);
        for (channel, skill) in [Channel::Voice, Channel::Chat]
            .into_iter()
            .zip(node_skills(skills, &topic.skill))
        {
            if !topics
                .iter()
                .any(|route| route.topic == name && route.channel == channel)
            {
                topics.push(TopicRoute {
                    topic: name.clone(),
                    channel,
                    skill,
                });
            }
        }
    }
    let peer_sites = (0..scenario.sites.len())
        .filter(|peer| *peer != site)
        .map(|peer| PeerSite {
            id: site_id(scenario, peer),
            number: peer as u16,
            api_url: format!("http://{}", addresses.http[peer]),
        })
        .collect();
    let line2 = scenario.transfer_target().map(str::to_string);
    let agents: Vec<AgentEntry> = plan
        .agents
        .iter()
        .filter(|agent| agent.site == site)
        .map(|agent| AgentEntry {
            login: agent.login.clone(),
            id: agent.id,
            skills: agent
                .skills
                .iter()
                .flat_map(|skill| node_skills(skills, skill))
                .collect(),
            certificate_valid_until: agent
                .skills
                .iter()
                .any(|skill| line2.as_deref() == Some(skill))
                .then(|| CERTIFICATE_VALID_UNTIL.to_string()),
            chat_slots: scenario.channels.chat_slots.max(1),
        })
        .collect();
    let mut token_entries = vec![
        TokenEntry {
            name: "gateway".to_string(),
            role: "gateway",
            sha256: sha256(&tokens.gateway),
        },
        TokenEntry {
            name: "supervisor".to_string(),
            role: "supervisor",
            sha256: sha256(&tokens.supervisor),
        },
    ];
    if let Some(admin) = &tokens.admin {
        token_entries.push(TokenEntry {
            name: "drill-admin".to_string(),
            role: "admin",
            sha256: sha256(admin),
        });
    }
    for agent in &agents {
        if let Some(token) = tokens.agents.get(&agent.login) {
            token_entries.push(TokenEntry {
                name: agent.login.clone(),
                role: "agent",
                sha256: sha256(token),
            });
        }
    }
    RoutingSections {
        routing: domain_config::routing(scenario, skills),
        topics,
        overflow: domain_config::overflow(scenario),
        peer_sites,
        callbacks: domain_config::callbacks(scenario),
        metrics: domain_config::metrics(
            scenario,
            callgrid_domain::MetricsConfig::default().intervals_max,
        ),
        agents,
        tokens: token_entries,
    }
}
