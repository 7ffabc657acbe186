//! `callgrid cluster ...`: the SRE commands over a node's admin API.
//!
//! Membership changes are made on the leader (a follower answers 409 naming the leader);
//! drain, undrain and tokens go through Raft from any node. Output is an aligned table, or
//! the node's JSON with `--json`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{AdminClient, CliError, print_table};
use callgrid_node::api::auth::{TOKEN_BYTES, hash_token};
use callgrid_node::state::model::Role;

/// `callgrid cluster`.
#[derive(Debug, Args)]
pub struct ClusterArguments {
    /// A node's API base URL; repeat it (or separate with commas) to name several nodes:
    /// status and membership changes then go to the leader among them, the rest to the first
    /// that answers.
    #[arg(
        long,
        env = "CALLGRID_URL",
        default_value = "http://127.0.0.1:8080",
        value_delimiter = ',',
        global = true
    )]
    pub url: Vec<String>,
    /// An admin token (better: the CALLGRID_TOKEN environment variable; it is never printed).
    #[arg(long, env = "CALLGRID_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Members (voter/learner), leader, term, commit/applied, each member's lag (ask the
    /// leader), each site's load (waiting, agents available, summary age) and drain state.
    Status,
    /// Add a node as a learner (it receives the log but does not vote); on the leader.
    Add {
        /// Its Raft node id.
        id: u64,
        /// `host:port` of its cluster (QUIC) listener.
        address: String,
    },
    /// Promote a caught-up learner to voter; on the leader.
    Promote {
        /// The learner's id.
        id: u64,
    },
    /// Remove a voter or learner; on the leader.
    Remove {
        /// Its id.
        id: u64,
    },
    /// Hand leadership to a voter; on the leader.
    TransferLeader {
        /// The voter's id.
        id: u64,
    },
    /// Drain a site: no new contacts, no callback claims, its waiting callbacks go to peers.
    Drain {
        /// The site id.
        site: String,
    },
    /// Undrain a site: it takes contacts and callbacks again.
    Undrain {
        /// The site id.
        site: String,
    },
    /// Tokens valid at every site.
    Token {
        /// What to do.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// A three-city cluster on this machine (msk, ekb, nsk) to try things on.
    Local(super::local::LocalArguments),
    /// Disaster recovery when a majority of voters is lost for good (RUNBOOK §13): on the
    /// surviving node, stopped, make its store the only voter. Every entry in its log becomes
    /// committed and every other member is removed; started again, it leads alone and the
    /// other cities join back as new members. Runs on this machine, not over the API.
    ForceNewCluster {
        /// The node's data directory (`site.data_dir`).
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// The node's Raft id (`cluster.node_id`).
        #[arg(long)]
        node_id: u64,
        /// Confirms that the majority is gone for good and this node holds the longest log
        /// of the survivors (`callgrid cluster status` on each, before they went).
        #[arg(long)]
        majority_lost: bool,
    },
}

/// `callgrid cluster token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List the cluster's tokens (hashes, names, roles, revoked).
    List,
    /// Add a token: a new one is generated and printed once, unless `--sha256` gives the hash
    /// of one the holder generated (`callgrid token new`).
    Add {
        /// Principal name (an agent's login for an agent token).
        #[arg(long)]
        name: String,
        /// gateway, agent, supervisor or admin.
        #[arg(long)]
        role: String,
        /// The hex SHA-256 of an existing token.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Revoke a token at every site, by hash or by name (an active token with that name).
    Revoke {
        /// The token's hex SHA-256.
        sha256: Option<String>,
        /// The token's name instead.
        #[arg(long, conflicts_with = "sha256")]
        name: Option<String>,
    },
}

/// Runs a `cluster` subcommand; returns the exit code.
pub fn run(arguments: ClusterArguments) -> i32 {
    let result = match arguments.command {
        ClusterCommand::Local(local) => super::local::run(local, arguments.json),
        ClusterCommand::ForceNewCluster {
            data_dir,
            node_id,
            majority_lost,
        } => force_new_cluster(&data_dir, node_id, majority_lost, arguments.json),
        ref command => {
            let token = arguments.token.as_deref().unwrap_or("");
            arguments
                .url
                .iter()
                .map(|url| AdminClient::new(url, token))
                .collect::<Result<Vec<_>, _>>()
                .and_then(|clients| {
                    let leader_wanted = !matches!(
                        command,
                        ClusterCommand::Drain { .. }
                            | ClusterCommand::Undrain { .. }
                            | ClusterCommand::Token { .. }
                    );
                    let client = choose(&clients, leader_wanted)?;
                    remote(client, command, arguments.json)
                })
        }
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("callgrid cluster: {error}");
            error.exit_code()
        }
    }
}

/// `callgrid cluster force-new-cluster`: the store surgery of
/// `callgrid_cluster::storage::rocks::force_new_cluster` on a stopped node's store.
fn force_new_cluster(
    data_dir: &std::path::Path,
    node_id: u64,
    majority_lost: bool,
    json: bool,
) -> Result<(), CliError> {
    if !majority_lost {
        return Err(CliError::Usage(
            "force-new-cluster makes every entry of this node's log committed and removes every \
             other member; only when a majority of voters is lost for good. Add \
             --majority-lost to confirm (RUNBOOK §13)"
                .to_string(),
        ));
    }
    let store = data_dir.join(callgrid_node::cluster::RAFT_DIRECTORY);
    let forced =
        callgrid_cluster::storage::rocks::force_new_cluster(&store, node_id).map_err(|error| {
            CliError::Local(format!(
                "{}: {error} (is the node stopped?)",
                store.display()
            ))
        })?;
    if json {
        println!(
            "{}",
            json!({
                "node_id": node_id,
                "commit_before": forced.commit_before,
                "last_before": forced.last_before,
                "last_after": forced.last_after,
                "removed": forced.removed,
            })
        );
    } else {
        let forced_entries = if forced.last_before > forced.commit_before {
            format!(
                "entries {}..={} (not known to be committed before) are now committed",
                forced.commit_before + 1,
                forced.last_before
            )
        } else {
            "every entry of its log was already committed".to_string()
        };
        println!(
            "node {node_id} is now the only voter: {forced_entries}; members {:?} removed. \
             Start the node, then add the other cities back as new members (RUNBOOK §13).",
            forced.removed
        );
    }
    Ok(())
}

/// The node to ask: with one URL, that one; with several, the leader among them when
/// `leader_wanted` (else, or when none of them leads, the first that answers).
fn choose(clients: &[AdminClient], leader_wanted: bool) -> Result<&AdminClient, CliError> {
    let [first, ..] = clients else {
        return Err(CliError::Usage("--url is required".to_string()));
    };
    if clients.len() == 1 {
        return Ok(first);
    }
    let mut answering = None;
    let mut last_error = None;
    for client in clients {
        match client.call("GET", "/api/v1/cluster/overview", None) {
            Ok(overview) => {
                let leads = overview["node_id"].as_u64().is_some()
                    && overview["node_id"] == overview["leader"];
                if leads && leader_wanted {
                    return Ok(client);
                }
                answering.get_or_insert(client);
                if !leader_wanted {
                    break;
                }
            }
            Err(error) => last_error = Some(error),
        }
    }
    match (answering, last_error) {
        (Some(client), _) => Ok(client),
        (None, Some(error)) => Err(error),
        (None, None) => Ok(first),
    }
}

fn remote(client: &AdminClient, command: &ClusterCommand, json: bool) -> Result<(), CliError> {
    let done = |value: Value, text: String| {
        if json {
            println!("{value}");
        } else {
            println!("{text}");
        }
        Ok(())
    };
    match command {
        ClusterCommand::Status => {
            let overview = client.call("GET", "/api/v1/cluster/overview", None)?;
            if json {
                println!("{overview}");
            } else {
                print_status(&overview);
            }
            Ok(())
        }
        ClusterCommand::Add { id, address } => {
            let body = json!({"id": id, "address": address});
            let value = client.call("POST", "/api/v1/cluster/learners", Some(&body))?;
            done(value, format!("node {id} added as a learner ({address})"))
        }
        ClusterCommand::Promote { id } => {
            let value = client.call("POST", &format!("/api/v1/cluster/voters/{id}"), None)?;
            done(value, format!("node {id} is a voter"))
        }
        ClusterCommand::Remove { id } => {
            let value = client.call("DELETE", &format!("/api/v1/cluster/members/{id}"), None)?;
            done(value, format!("node {id} removed"))
        }
        ClusterCommand::TransferLeader { id } => {
            let body = json!({"id": id});
            let value = client.call("POST", "/api/v1/cluster/leader", Some(&body))?;
            done(value, format!("node {id} leads"))
        }
        ClusterCommand::Drain { site } => {
            let path = format!("/api/v1/cluster/sites/{}/drain", path_segment(site)?);
            let value = client.call("POST", &path, None)?;
            done(
                value,
                format!("site {site} drained: no new contacts, callbacks move to peers"),
            )
        }
        ClusterCommand::Undrain { site } => {
            let path = format!("/api/v1/cluster/sites/{}/undrain", path_segment(site)?);
            let value = client.call("POST", &path, None)?;
            done(value, format!("site {site} serves again"))
        }
        ClusterCommand::Token { command } => token(client, command, json),
        ClusterCommand::Local(_) | ClusterCommand::ForceNewCluster { .. } => Err(CliError::Usage(
            "this command runs on this machine".to_string(),
        )),
    }
}

/// A site id as a URL path segment: letters, digits, `-`, `_`, `.` only.
fn path_segment(site: &str) -> Result<&str, CliError> {
    let valid = !site.is_empty()
        && site.len() <= 64
        && site
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(site)
    } else {
        Err(CliError::Usage(format!(
            "site id `{site}`: letters, digits, - _ . only"
        )))
    }
}

fn token(client: &AdminClient, command: &TokenCommand, json: bool) -> Result<(), CliError> {
    match command {
        TokenCommand::List => {
            let value = client.call("GET", "/api/v1/cluster/tokens", None)?;
            if json {
                println!("{value}");
                return Ok(());
            }
            let mut rows = vec![
                ["SHA256", "NAME", "ROLE", "STATE", "CHANGED BY"]
                    .map(String::from)
                    .to_vec(),
            ];
            for token in value["tokens"].as_array().into_iter().flatten() {
                let hash = token["sha256"].as_str().unwrap_or_default();
                rows.push(vec![
                    format!("{}…", hash.get(..16).unwrap_or(hash)),
                    text(&token["name"]),
                    text(&token["role"]),
                    if token["revoked"] == true {
                        "revoked"
                    } else {
                        "active"
                    }
                    .to_string(),
                    text(&token["changed_by_site"]),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        TokenCommand::Add { name, role, sha256 } => {
            let role: Role = serde_json::from_value(Value::String(role.clone())).map_err(|_| {
                CliError::Usage("--role must be gateway, agent, supervisor or admin".to_string())
            })?;
            let (hash, secret) = match sha256 {
                Some(hash) => (hash.trim().to_lowercase(), None),
                None => {
                    let mut bytes = [0_u8; TOKEN_BYTES];
                    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
                    let secret = format!("cg_{}", hex::encode(bytes));
                    (hex::encode(hash_token(&secret)), Some(secret))
                }
            };
            let body = json!({"name": name, "role": role, "sha256": hash});
            client.call("POST", "/api/v1/cluster/tokens", Some(&body))?;
            if json {
                println!(
                    "{}",
                    json!({"name": name, "role": role, "sha256": hash, "token": secret})
                );
            } else {
                println!("token `{name}` ({role:?}) added at every site; sha256 {hash}");
                if let Some(secret) = secret {
                    println!("token (shown once, give it to its holder): {secret}");
                }
            }
            Ok(())
        }
        TokenCommand::Revoke { sha256, name } => {
            let hash = match (sha256, name) {
                (Some(hash), _) => hash.trim().to_lowercase(),
                (None, Some(name)) => hash_by_name(client, name)?,
                (None, None) => {
                    return Err(CliError::Usage(
                        "give the token's sha256 or --name".to_string(),
                    ));
                }
            };
            let value = client.call("DELETE", &format!("/api/v1/cluster/tokens/{hash}"), None)?;
            if json {
                println!("{value}");
            } else {
                println!("token {hash} revoked at every site");
            }
            Ok(())
        }
    }
}

/// The hash of the one active token called `name`.
fn hash_by_name(client: &AdminClient, name: &str) -> Result<String, CliError> {
    let value = client.call("GET", "/api/v1/cluster/tokens", None)?;
    let matching: Vec<String> = value["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|token| token["name"] == name && token["revoked"] != true)
        .filter_map(|token| token["sha256"].as_str().map(str::to_string))
        .collect();
    match matching.as_slice() {
        [hash] => Ok(hash.clone()),
        [] => Err(CliError::Usage(format!(
            "no active token is called `{name}`"
        ))),
        _ => Err(CliError::Usage(format!(
            "{} active tokens are called `{name}`: give the sha256",
            matching.len()
        ))),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn print_status(overview: &Value) {
    let node = text(&overview["node_id"]);
    let leader = text(&overview["leader"]);
    println!(
        "node {node} (site {}) is {}; leader {leader}, term {}, commit {}, applied {}",
        text(&overview["site"]),
        text(&overview["role"]),
        text(&overview["term"]),
        text(&overview["commit_index"]),
        text(&overview["applied_index"]),
    );
    println!();
    let mut rows = vec![
        ["MEMBER", "ROLE", "ADDRESS", "MATCH", "LAG"]
            .map(String::from)
            .to_vec(),
    ];
    for member in overview["members"].as_array().into_iter().flatten() {
        let mut role = text(&member["role"]);
        if member["leader"] == true {
            role.push_str(" (leader)");
        }
        if member["store_lost"] == true {
            role.push_str(" (store lost)");
        }
        rows.push(vec![
            text(&member["id"]),
            role,
            text(&member["address"]),
            text(&member["match_index"]),
            text(&member["lag"]),
        ]);
    }
    print_table(&rows);
    if node != leader {
        println!("(lag is tracked by the leader: ask node {leader} for it)");
    }
    for member in overview["members"].as_array().into_iter().flatten() {
        if member["store_lost"] == true {
            println!(
                "member {} held the log and came back with an empty store (a lost disk): it is \
                 not sent the log and cannot vote. Replace it: remove it, add it back as a \
                 learner, promote it once caught up (RUNBOOK §7)",
                text(&member["id"])
            );
        }
    }
    println!();
    let mut rows = vec![
        [
            "SITE",
            "STATE",
            "WAITING",
            "AGENTS AVAILABLE",
            "SUMMARY AGE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for site in overview["sites"].as_array().into_iter().flatten() {
        let age = site["summary_age_ms"].as_u64().map_or_else(
            || "-".to_string(),
            |ms| format!("{:.1} s", ms as f64 / 1000.0),
        );
        rows.push(vec![
            text(&site["site"]),
            if site["drained"] == true {
                "drained"
            } else {
                "serving"
            }
            .to_string(),
            text(&site["waiting"]),
            text(&site["agents_available"]),
            age,
        ]);
    }
    print_table(&rows);
}
