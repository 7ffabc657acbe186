//! callgrid-tests: end-to-end drills on real `callgrid` processes — free ports, temp dirs,
//! processes killed on drop.
//!
//! The binary is `$CALLGRID_BINARY` when set (CI's drills pass the release build), else the
//! `callgrid` that `cargo test --workspace` builds next to this crate's test executables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod http;
pub mod netns;

/// How long to wait for a node to start, or for a condition.
pub const WAIT: Duration = Duration::from_secs(60);
/// The admin token every drill site accepts (`[[tokens]]`).
pub const ADMIN: &str = "admin-token-for-drills-0001";

/// Hex SHA-256 of a token, as `[[tokens]] sha256` holds it.
pub fn token_sha256(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The `callgrid` binary under test.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CALLGRID_BINARY") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test> → target/<profile>/callgrid
    let executable = std::env::current_exe().unwrap();
    let profile = executable.parent().and_then(Path::parent).unwrap();
    let binary = profile.join("callgrid");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p callgrid-node` (or `cargo test --workspace`), \
         or set CALLGRID_BINARY",
        binary.display()
    );
    binary
}

/// Runs `callgrid ARGS...` to completion; panics with its output if it fails.
pub fn callgrid(arguments: &[&str]) -> Output {
    let output = Command::new(binary()).args(arguments).output().unwrap();
    assert!(
        output.status.success(),
        "callgrid {arguments:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A free UDP port on loopback (for QUIC listeners, which must be known before start).
/// Never the same port twice in one test process: the kernel may hand a port that was just
/// released to the next `bind(0)`, and two tests running in parallel threads would then
/// give two nodes one QUIC address (one of them exits at start).
pub fn free_udp_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// One site of a drill cluster: its config path, data dir and cluster address.
#[derive(Debug, Clone)]
pub struct Site {
    /// `site.id`.
    pub id: String,
    /// Raft node id.
    pub node_id: u64,
    /// `127.0.0.1:<udp port>`.
    pub cluster_address: String,
    /// The config file.
    pub config: PathBuf,
    /// The data directory.
    pub data: PathBuf,
}

impl Site {
    /// Writes the config of site `id` (Raft node `node_id`) into `directory`: HTTP on a free
    /// port, the cluster on `cluster_address`, `peers` (id, address), certificates in
    /// `certificates` (none: a one-node site).
    pub fn write(
        directory: &Path,
        id: &str,
        node_id: u64,
        cluster_address: &str,
        peers: &[(u64, String)],
        certificates: Option<&Path>,
    ) -> Site {
        let data = directory.join(id).join("data");
        let config = directory.join(id).join("site.toml");
        std::fs::create_dir_all(directory.join(id)).unwrap();
        let mut cluster =
            format!("[cluster]\nnode_id = {node_id}\nlisten = \"{cluster_address}\"\n");
        if let Some(certificates) = certificates {
            cluster.push_str(&format!(
                "certificates_dir = \"{}\"\n",
                certificates.display()
            ));
        }
        if !peers.is_empty() {
            // Sites 1-3 start a drill cluster; a later one joins it (restored or added).
            let bootstrap = if node_id <= 3 { "new" } else { "join" };
            cluster.push_str(&format!("bootstrap = \"{bootstrap}\"\n"));
        }
        for (peer, address) in peers {
            cluster.push_str(&format!(
                "[[cluster.peers]]\nid = {peer}\naddress = \"{address}\"\n"
            ));
        }
        let text = format!(
            "[site]\nid = \"{id}\"\ncity = \"Drill\"\nnumber = {node_id}\ndata_dir = \"{}\"\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\ndrain_s = 1\n\n{cluster}\n\
             [[tokens]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
            data.display(),
            token_sha256(ADMIN)
        );
        std::fs::write(&config, text).unwrap();
        Site {
            id: id.to_string(),
            node_id,
            cluster_address: cluster_address.to_string(),
            config,
            data,
        }
    }
}

/// A running `callgrid node` process, killed on drop.
pub struct Node {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// What it runs.
    pub site: Site,
    /// The admin token the node generated and printed on its first start, if it did.
    pub generated_admin_token: Option<String>,
}

impl Node {
    /// Starts `callgrid node --config` and waits for its "listening on" line.
    pub fn start(site: &Site) -> Node {
        let mut child = Command::new(binary())
            .arg("node")
            .arg("--config")
            .arg(&site.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let mut generated_admin_token = None;
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = receiver.recv_timeout(left).unwrap_or_else(|error| {
                let exited = child.try_wait().ok().flatten();
                panic!(
                    "{} did not print its address ({error}; exit status: {exited:?})",
                    site.id
                )
            });
            if let Some(token) = line.split("keep it): ").nth(1) {
                generated_admin_token = Some(token.trim().to_string());
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let address = rest.split_whitespace().next().unwrap();
                break format!("http://{address}");
            }
        };
        Node {
            child: Some(child),
            base,
            site: site.clone(),
            generated_admin_token,
        }
    }

    /// SIGTERM, then waits (at most [`WAIT`]) for the exit status; `None` if it had to be
    /// killed.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// `METHOD path` with `token` (instead of the admin token): (status, JSON body).
    pub fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let request = ureq::request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {token}"))
            .timeout(Duration::from_secs(20));
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => return (0, Value::String(error.to_string())),
        };
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `METHOD path` with the admin token and an optional JSON body: (status, JSON body).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(ADMIN, method, path, body)
    }

    /// The cluster status (`/api/v1/cluster/status`).
    pub fn status(&self) -> Value {
        self.call("GET", "/api/v1/cluster/status", None).1
    }

    /// Every order, ordered by id, as the node serves them (a linearizable read).
    pub fn orders(&self) -> Value {
        let (status, body) = self.call("GET", "/api/v1/orders?limit=500", None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Takes an order for `caller`, retrying while the cluster has no leader; returns its id.
    pub fn take_order(&self, caller: &str) -> u64 {
        let body = serde_json::json!({
            "caller": caller,
            "items": [{"sku": "NUR-200", "name": "Nurofen 200 mg", "quantity": 2, "unit_price_minor": 25050}],
            "fulfilment": {"pickup": {"pharmacy": "apteka-7"}},
            "payment": "card"
        });
        let (status, created) = eventually("an order to be taken", || {
            let (status, created) = self.call("POST", "/api/v1/orders", Some(body.clone()));
            (status != 503 && status != 0).then_some((status, created))
        });
        assert_eq!(status, 201, "{created}");
        created["order"].as_u64().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after [`WAIT`].
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates a CA and certificates for `nodes` in `directory` (the layout a node reads).
pub fn certificates(directory: &Path, nodes: &[u64]) {
    let dir = directory.to_str().unwrap();
    callgrid(&["certs", "init", "--dir", dir]);
    for node in nodes {
        callgrid(&["certs", "issue", "--dir", dir, "--node", &node.to_string()]);
    }
}

/// Starts `ids.len()` sites forming one cluster (ids as Raft node ids) and waits for a
/// leader; certificates for `extra` node ids are issued too (for members added later).
pub fn cluster(directory: &Path, ids: &[u64], extra: &[u64]) -> (Vec<Node>, PathBuf) {
    let certs = directory.join("certs");
    let all: Vec<u64> = ids.iter().chain(extra).copied().collect();
    certificates(&certs, &all);
    let addresses: Vec<String> = ids
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_udp_port()))
        .collect();
    let nodes: Vec<Node> = ids
        .iter()
        .zip(&addresses)
        .map(|(id, address)| {
            let peers: Vec<(u64, String)> = ids
                .iter()
                .zip(&addresses)
                .filter(|(other, _)| *other != id)
                .map(|(other, address)| (*other, address.clone()))
                .collect();
            let site = Site::write(
                directory,
                &format!("site{id}"),
                *id,
                address,
                &peers,
                Some(&certs),
            );
            Node::start(&site)
        })
        .collect();
    for node in &nodes {
        eventually("a leader", || {
            let (status, _) = node.call("GET", "/readyz", None);
            (status == 200).then_some(())
        });
    }
    (nodes, certs)
}

/// The leader's id as `node` sees it.
pub fn leader(node: &Node) -> u64 {
    eventually("a known leader", || node.status()["leader"].as_u64())
}
