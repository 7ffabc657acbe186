//! `callgrid-sim live --local BINARY`: the run starts the sites itself from the configs it
//! emits (certificates, free ports on 127.0.0.1, the drill clock) and owns their processes,
//! so the fault schedule can kill, stop, restart, partition, wipe and rejoin them. Every
//! process is killed (a stopped one continued first) and every partition healed when the
//! [`LocalCluster`] is dropped, also while a thread panics.
//!
//! Each node's standard output and error go to `<dir>/<site>/node.log` (kept for reports).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::clock::DrillClock;
use super::configs::{self, Addresses, Tokens};
use super::partition::{self, Partition};
use super::plan::Plan;
use crate::scenario::Scenario;

/// How long a node may take to become ready, a leader to be known, a learner to catch up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests of the fault machinery time out after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the local cluster could not be started or a fault applied.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A `callgrid` command failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its standard error (or output).
        output: String,
    },
    /// The configs could not be written.
    #[error(transparent)]
    Configs(#[from] configs::ConfigsError),
    /// A partition could not be made or healed.
    #[error(transparent)]
    Partition(#[from] partition::PartitionError),
    /// A site or the cluster is not in the state a step needs.
    #[error("{0}")]
    State(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalError {
    let what = what.into();
    move |source| LocalError::Io { what, source }
}

/// One site the run started.
#[derive(Debug)]
pub struct LocalSite {
    /// `site.id`.
    pub id: String,
    /// Its Raft node id now (a rejoined site has a new one).
    pub node_id: u64,
    /// The site TOML.
    pub config: PathBuf,
    /// The data directory.
    pub data: PathBuf,
    /// HTTP `127.0.0.1:port`.
    pub http: String,
    /// Cluster (QUIC) `127.0.0.1:port`.
    pub cluster: String,
    child: Option<Child>,
    stopped: bool,
}

impl LocalSite {
    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Whether its process runs (it may be stopped).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    fn cluster_port(&self) -> Result<u16, LocalError> {
        self.cluster
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| LocalError::State(format!("bad cluster address {}", self.cluster)))
    }
}

/// The sites of a `--local` run.
#[derive(Debug)]
pub struct LocalCluster {
    binary: PathBuf,
    /// The configs directory (`<history>/cluster`).
    pub directory: PathBuf,
    /// The certificates directory (CA key included: rejoin issues certificates).
    pub certificates: PathBuf,
    /// The sites, scenario order.
    pub sites: Vec<LocalSite>,
    /// The drill's tokens.
    pub tokens: Tokens,
    /// The drill clock.
    pub clock: DrillClock,
    partitions: HashMap<usize, Partition>,
    http: ureq::Agent,
}

impl LocalCluster {
    /// Writes certificates and configs for `scenario` into `directory`, starts every site
    /// with `binary` and waits until each is ready. The simulated day starts `lead` from now.
    pub fn start(
        binary: &Path,
        scenario: &Scenario,
        plan: &Plan,
        speed: f64,
        lead: Duration,
        directory: &Path,
    ) -> Result<LocalCluster, LocalError> {
        match partition::remove_orphans(partition::LIVE_PREFIX) {
            Ok(removed) if !removed.is_empty() => {
                tracing::warn!(?removed, "removed partitions left by runs that were killed");
            }
            _ => {}
        }
        let count = scenario.sites.len();
        let certificates = directory.join("certs");
        run(binary, &["certs", "init", "--dir", &text(&certificates)])?;
        for node in 1..=count {
            run(
                binary,
                &[
                    "certs",
                    "issue",
                    "--dir",
                    &text(&certificates),
                    "--node",
                    &node.to_string(),
                ],
            )?;
        }
        let addresses = Addresses {
            http: (0..count)
                .map(|_| free_port(false).map(|port| format!("127.0.0.1:{port}")))
                .collect::<Result<_, _>>()?,
            cluster: (0..count)
                .map(|_| free_port(true).map(|port| format!("127.0.0.1:{port}")))
                .collect::<Result<_, _>>()?,
            certificates: certificates.clone(),
        };
        let clock =
            DrillClock::starting_in(speed, lead, plan.day_span_ms.0.saturating_sub(5 * 60_000));
        let tokens = configs::emit(scenario, plan, &clock, &addresses, directory)?;
        let sites = (0..count)
            .map(|index| {
                let id = configs::site_id(scenario, index);
                LocalSite {
                    config: directory.join(&id).join("site.toml"),
                    data: directory.join(&id).join("data"),
                    id,
                    node_id: index as u64 + 1,
                    http: addresses.http[index].clone(),
                    cluster: addresses.cluster[index].clone(),
                    child: None,
                    stopped: false,
                }
            })
            .collect();
        let mut cluster = LocalCluster {
            binary: binary.to_path_buf(),
            directory: directory.to_path_buf(),
            certificates,
            sites,
            tokens,
            clock,
            partitions: HashMap::new(),
            http: ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build(),
        };
        for index in 0..count {
            cluster.spawn(index)?;
        }
        for index in 0..count {
            cluster.wait_ready(index)?;
        }
        for index in 0..count {
            cluster.wait_tokens(index)?;
        }
        Ok(cluster)
    }

    /// Waits until site `index`'s replicated token table holds every token of the drill: a
    /// site is ready before its configured tokens are replicated (the node merges its token
    /// seed after start), and once the cluster's table holds any token a site no longer
    /// accepts its configured ones that are not in it yet.
    fn wait_tokens(&self, index: usize) -> Result<(), LocalError> {
        use sha2::Digest as _;
        let site = self.site(index)?;
        let admin = self
            .tokens
            .admin
            .as_deref()
            .ok_or_else(|| LocalError::State("the tokens have no admin token".to_string()))?;
        let expected: std::collections::BTreeSet<String> =
            [&self.tokens.gateway, &self.tokens.supervisor]
                .into_iter()
                .chain(self.tokens.admin.iter())
                .chain(self.tokens.agents.values())
                .map(|token| hex::encode(sha2::Sha256::digest(token.as_bytes())))
                .collect();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let known: std::collections::BTreeSet<String> = self
                .http
                .get(&format!("{}/api/v1/cluster/tokens", site.url()))
                .set("Authorization", &format!("Bearer {admin}"))
                .call()
                .ok()
                .and_then(|response| response.into_json::<Value>().ok())
                .and_then(|body| {
                    body["tokens"].as_array().map(|tokens| {
                        tokens
                            .iter()
                            .filter_map(|token| token["sha256"].as_str().map(str::to_string))
                            .collect()
                    })
                })
                .unwrap_or_default();
            if expected.is_subset(&known) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LocalError::State(format!(
                    "{} holds {} of the drill's {} tokens after {} s",
                    site.id,
                    expected.intersection(&known).count(),
                    expected.len(),
                    READY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The sites' base URLs, scenario order.
    pub fn urls(&self) -> Vec<String> {
        self.sites.iter().map(LocalSite::url).collect()
    }

    fn site(&self, index: usize) -> Result<&LocalSite, LocalError> {
        self.sites
            .get(index)
            .ok_or_else(|| LocalError::State(format!("no site {index}")))
    }

    fn spawn(&mut self, index: usize) -> Result<(), LocalError> {
        let binary = self.binary.clone();
        let site = self
            .sites
            .get_mut(index)
            .ok_or_else(|| LocalError::State(format!("no site {index}")))?;
        if site.child.is_some() {
            return Err(LocalError::State(format!("{} is already running", site.id)));
        }
        let log_path = site
            .config
            .parent()
            .map_or_else(|| PathBuf::from("node.log"), |dir| dir.join("node.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("opening {}", log_path.display())))?;
        let error_log = log.try_clone().map_err(io("node log"))?;
        let child = Command::new(&binary)
            .arg("node")
            .arg("--config")
            .arg(&site.config)
            .env(
                "RUST_LOG",
                std::env::var("CALLGRID_LIVE_NODE_LOG").unwrap_or_else(|_| "warn".to_string()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(error_log)
            .spawn()
            .map_err(io(format!("starting {} node", binary.display())))?;
        tracing::info!(site = %site.id, pid = child.id(), "site started");
        site.child = Some(child);
        site.stopped = false;
        Ok(())
    }

    /// Waits until site `index` answers `/readyz` with 200 (it has a leader).
    pub fn wait_ready(&mut self, index: usize) -> Result<(), LocalError> {
        let url = format!("{}/readyz", self.site(index)?.url());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.http.get(&url).call().is_ok() {
                return Ok(());
            }
            let site = self
                .sites
                .get_mut(index)
                .ok_or_else(|| LocalError::State(format!("no site {index}")))?;
            if let Some(child) = site.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                site.child = None;
                return Err(LocalError::State(format!(
                    "{} exited ({status}) before it was ready: see {}",
                    site.id,
                    site.config.with_file_name("node.log").display()
                )));
            }
            if Instant::now() > deadline {
                return Err(LocalError::State(format!(
                    "{} was not ready within {} s",
                    site.id,
                    READY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL site `index`.
    pub fn kill(&mut self, index: usize) -> Result<(), LocalError> {
        let site = self
            .sites
            .get_mut(index)
            .ok_or_else(|| LocalError::State(format!("no site {index}")))?;
        let mut child = site
            .child
            .take()
            .ok_or_else(|| LocalError::State(format!("{} is not running", site.id)))?;
        child.kill().map_err(io(format!("killing {}", site.id)))?;
        child.wait().map_err(io(format!("reaping {}", site.id)))?;
        site.stopped = false;
        Ok(())
    }

    /// Starts a killed site again from its disk (does not wait for it to be ready).
    pub fn restart(&mut self, index: usize) -> Result<(), LocalError> {
        self.spawn(index)
    }

    /// SIGSTOP (`stop = true`) or SIGCONT site `index`.
    pub fn signal_stop(&mut self, index: usize, stop: bool) -> Result<(), LocalError> {
        let site = self
            .sites
            .get_mut(index)
            .ok_or_else(|| LocalError::State(format!("no site {index}")))?;
        let pid = site
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| LocalError::State(format!("{} is not running", site.id)))?;
        let signal = if stop { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .map_err(io(format!("kill {signal} {pid}")))?;
        if !status.success() {
            return Err(LocalError::State(format!("kill {signal} {pid}: {status}")));
        }
        site.stopped = stop;
        Ok(())
    }

    /// Cuts site `index`'s cluster port off from every other site's.
    pub fn partition(&mut self, index: usize) -> Result<(), LocalError> {
        if self.partitions.contains_key(&index) {
            return Err(LocalError::State(format!(
                "{} is already partitioned",
                self.site(index)?.id
            )));
        }
        let port = self.site(index)?.cluster_port()?;
        let peers: Vec<u16> = (0..self.sites.len())
            .filter(|other| *other != index)
            .map(|other| self.sites[other].cluster_port())
            .collect::<Result<_, _>>()?;
        let cut = Partition::cut_off_named(partition::LIVE_PREFIX, port, &peers)?;
        tracing::info!(site = %self.site(index)?.id, table = cut.table(), "partitioned");
        self.partitions.insert(index, cut);
        Ok(())
    }

    /// Heals site `index`'s partition.
    pub fn heal(&mut self, index: usize) -> Result<(), LocalError> {
        let mut cut = self
            .partitions
            .remove(&index)
            .ok_or_else(|| LocalError::State(format!("site {index} is not partitioned")))?;
        cut.heal()?;
        Ok(())
    }

    /// SIGKILL site `index` and delete its data directory.
    pub fn wipe(&mut self, index: usize) -> Result<(), LocalError> {
        self.kill(index)?;
        let data = self.site(index)?.data.clone();
        std::fs::remove_dir_all(&data).map_err(io(format!("deleting {}", data.display())))
    }

    /// The Raft leader's site index as the first answering running site sees it.
    pub fn leader(&self) -> Option<usize> {
        self.sites
            .iter()
            .filter(|site| site.running() && !site.stopped)
            .find_map(|site| {
                let status = self.get(site, "/api/v1/cluster/status").ok()?;
                let leader = status["leader"].as_u64()?;
                self.sites.iter().position(|site| site.node_id == leader)
            })
    }

    /// Waits until a running site names a leader that is running; its index.
    pub fn wait_leader(&self) -> Result<usize, LocalError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(leader) = self.leader()
                && self.sites[leader].running()
            {
                return Ok(leader);
            }
            if Instant::now() > deadline {
                return Err(LocalError::State(format!(
                    "no leader within {} s",
                    READY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Brings a wiped site back by the runbook (deploy/RUNBOOK.md §7): remove its old member
    /// on the leader, take a live backup of a running peer, issue a certificate for a new
    /// node id, restore the backup under it, start the site as a learner, add it on the
    /// leader, wait until it caught up and promote it.
    pub fn rejoin(&mut self, index: usize) -> Result<(), LocalError> {
        let old_id = self.site(index)?.node_id;
        if self.site(index)?.running() {
            return Err(LocalError::State(format!(
                "{} is running: rejoin follows a wipe",
                self.site(index)?.id
            )));
        }
        let leader = self.wait_leader()?;
        self.admin(
            leader,
            "DELETE",
            &format!("/api/v1/cluster/members/{old_id}"),
            None,
        )?;
        let new_id = self
            .sites
            .iter()
            .map(|site| site.node_id)
            .max()
            .unwrap_or(0)
            + 1;
        let peer = (0..self.sites.len())
            .find(|other| *other != index && self.sites[*other].running())
            .ok_or_else(|| LocalError::State("no running peer to back up".to_string()))?;
        let backup = self
            .directory
            .join("backups")
            .join(format!("node-{new_id}"));
        let _ = std::fs::remove_dir_all(&backup);
        let peer_config = text(&self.sites[peer].config);
        run(
            &self.binary,
            &["backup", "--config", &peer_config, "--to", &text(&backup)],
        )?;
        run(
            &self.binary,
            &[
                "certs",
                "issue",
                "--dir",
                &text(&self.certificates),
                "--node",
                &new_id.to_string(),
            ],
        )?;
        let data = text(&self.site(index)?.data);
        run(
            &self.binary,
            &[
                "restore",
                "--from",
                &text(&backup),
                "--data",
                &data,
                "--node-id",
                &new_id.to_string(),
            ],
        )?;
        self.sites[index].node_id = new_id;
        self.rewrite_config(index)?;
        self.spawn(index)?;
        let address = self.sites[index].cluster.clone();
        let leader = self.wait_leader()?;
        self.admin(
            leader,
            "POST",
            "/api/v1/cluster/learners",
            Some(json!({"id": new_id, "address": address})),
        )?;
        let commit = self.get(&self.sites[leader], "/api/v1/cluster/status")?["commit_index"]
            .as_u64()
            .unwrap_or(0);
        let deadline = Instant::now() + READY_TIMEOUT;
        while self
            .get(&self.sites[index], "/api/v1/cluster/status")
            .ok()
            .and_then(|status| status["applied_index"].as_u64())
            .is_none_or(|applied| applied < commit)
        {
            if Instant::now() > deadline {
                return Err(LocalError::State(format!(
                    "{} (node {new_id}) did not catch up to {commit} within {} s",
                    self.sites[index].id,
                    READY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let leader = self.wait_leader()?;
        self.admin(
            leader,
            "POST",
            &format!("/api/v1/cluster/voters/{new_id}"),
            None,
        )?;
        tracing::info!(site = %self.sites[index].id, old_id, new_id, "rejoined as a voter");
        Ok(())
    }

    /// Rewrites site `index`'s TOML for its current node id: `node_id`, `learners = [id]`
    /// (it must not campaign before it is promoted), `bootstrap = "join"`, and every peer's
    /// current node id.
    fn rewrite_config(&self, index: usize) -> Result<(), LocalError> {
        let site = &self.sites[index];
        let original = std::fs::read_to_string(&site.config)
            .map_err(io(format!("reading {}", site.config.display())))?;
        let current: HashMap<String, u64> = self
            .sites
            .iter()
            .map(|other| (other.cluster.clone(), other.node_id))
            .collect();
        let lines: Vec<&str> = original.lines().collect();
        let mut out = String::with_capacity(original.len() + 64);
        let mut in_cluster = false;
        for (position, line) in lines.iter().enumerate() {
            if line.starts_with('[') {
                in_cluster = *line == "[cluster]" || *line == "[[cluster.peers]]";
            }
            if in_cluster && line.starts_with("node_id = ") {
                out.push_str(&format!(
                    "node_id = {}\nlearners = [{}]\n",
                    site.node_id, site.node_id
                ));
                continue;
            }
            if in_cluster && line.starts_with("learners = ") {
                continue;
            }
            if in_cluster && line.starts_with("bootstrap = ") {
                out.push_str("bootstrap = \"join\"\n");
                continue;
            }
            // A peer's `id = N` is followed by its `address = "host:port"`.
            if in_cluster && line.starts_with("id = ") {
                let address = lines
                    .get(position + 1)
                    .and_then(|next| next.strip_prefix("address = "))
                    .map(|quoted| quoted.trim_matches('"').to_string());
                if let Some(id) = address.and_then(|address| current.get(&address)) {
                    out.push_str(&format!("id = {id}\n"));
                    continue;
                }
            }
            out.push_str(line);
            out.push('\n');
        }
        std::fs::write(&site.config, out).map_err(io(format!("writing {}", site.config.display())))
    }

    fn get(&self, site: &LocalSite, path: &str) -> Result<Value, LocalError> {
        let answer = self
            .http
            .get(&format!("{}{path}", site.url()))
            .set(
                "Authorization",
                &format!("Bearer {}", self.tokens.supervisor),
            )
            .call()
            .map_err(|error| LocalError::State(format!("GET {path} at {}: {error}", site.id)))?;
        answer
            .into_json()
            .map_err(io(format!("GET {path} at {}", site.id)))
    }

    /// An admin call at site `index` (retried while the cluster has no leader).
    fn admin(
        &self,
        index: usize,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, LocalError> {
        let token = self
            .tokens
            .admin
            .as_deref()
            .ok_or_else(|| LocalError::State("the tokens have no admin token".to_string()))?;
        let site = self.site(index)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let request = self
                .http
                .request(method, &format!("{}{path}", site.url()))
                .set("Authorization", &format!("Bearer {token}"));
            let result = match &body {
                Some(body) => request.send_json(body.clone()),
                None => request.call(),
            };
            match result {
                Ok(response) => {
                    return response
                        .into_json()
                        .map_err(io(format!("{method} {path} at {}", site.id)));
                }
                Err(ureq::Error::Status(503, _)) | Err(ureq::Error::Transport(_))
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(ureq::Error::Status(status, response)) => {
                    return Err(LocalError::State(format!(
                        "{method} {path} at {}: {status} {}",
                        site.id,
                        response.into_string().unwrap_or_default()
                    )));
                }
                Err(error) => {
                    return Err(LocalError::State(format!(
                        "{method} {path} at {}: {error}",
                        site.id
                    )));
                }
            }
        }
    }
}

impl LocalCluster {
    /// Heals every partition and kills every site (a stopped one is continued first).
    pub fn shutdown(&mut self) {
        self.partitions.clear();
        for site in &mut self.sites {
            if let Some(mut child) = site.child.take() {
                if site.stopped {
                    let _ = Command::new("kill")
                        .arg("-CONT")
                        .arg(child.id().to_string())
                        .status();
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

/// Runs `binary ARGS` to completion.
fn run(binary: &Path, arguments: &[&str]) -> Result<(), LocalError> {
    let output = Command::new(binary)
        .args(arguments)
        .output()
        .map_err(io(format!("running {}", binary.display())))?;
    if output.status.success() {
        return Ok(());
    }
    Err(LocalError::Command {
        command: format!("{} {}", binary.display(), arguments.join(" ")),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        ),
    })
}

/// A free port on 127.0.0.1 (UDP when `udp`).
fn free_port(udp: bool) -> Result<u16, LocalError> {
    let address = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|socket| socket.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr())
    };
    address
        .map(|address| address.port())
        .map_err(io("a free port"))
}
