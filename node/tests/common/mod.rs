//! Test harness: real `callgrid` processes with temp data dirs and free ports, killed on drop.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::{Message, WebSocket};

pub const ADMIN: &str = "admin-token-for-tests-0001";
pub const GATEWAY: &str = "gateway-token-for-tests-01";
pub const SUPERVISOR: &str = "supervisor-token-for-tests";
pub const ANNA: &str = "anna-token-for-tests-00001";
pub const BORIS: &str = "boris-token-for-tests-0001";
pub const VERA: &str = "vera-token-for-tests-00001";

/// How long to wait for a node to print its address, or for a condition.
pub const WAIT: Duration = Duration::from_secs(30);

/// A free UDP port on loopback (for QUIC listeners, which must be known before start).
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// The standard test site: line 1, line 2, complaints, chat; anna (line 1), boris (line 2
/// with a valid certificate), vera (line 2, certificate expired).
pub fn site_config(site: &str, number: u16, data_dir: &Path, cluster: &str) -> String {
    format!(
        r#"
[site]
id = "{site}"
city = "Testgrad"
number = {number}
data_dir = "{data}"

[http]
listen = "127.0.0.1:0"
body_bytes_max = 4096
drain_s = 1

{cluster}

[routing]
offer_timeout_ms = 60000
skills = [
  {{ name = "line1", channel = "voice", line = "line1" }},
  {{ name = "line2", channel = "voice", line = "line2" }},
  {{ name = "complaints", channel = "voice", line = "line1" }},
  {{ name = "chat", channel = "chat", line = "line1" }},
]

[callbacks]
delay_s = 0
retry_interval_s = 0
attempts_max = 3
include_short_abandons = true

[[agents]]
login = "anna"
id = 1
skills = ["line1", "complaints", "chat"]

[[agents]]
login = "boris"
id = 2
skills = ["line1", "line2"]
certificate_valid_until = "2999-12-31"

[[agents]]
login = "vera"
id = 3
skills = ["line2"]
certificate_valid_until = "2001-01-01"

[[tokens]]
name = "root"
role = "admin"
sha256 = "{admin_hash}"

[[tokens]]
name = "pbx"
role = "gateway"
sha256 = "{gateway_hash}"

[[tokens]]
name = "olga"
role = "supervisor"
sha256 = "{supervisor_hash}"

[[tokens]]
name = "anna"
role = "agent"
sha256 = "{anna_hash}"

[[tokens]]
name = "boris"
role = "agent"
sha256 = "{boris_hash}"

[[tokens]]
name = "vera"
role = "agent"
sha256 = "{vera_hash}"
"#,
        data = data_dir.display(),
        admin_hash = sha256_hex(ADMIN),
        gateway_hash = sha256_hex(GATEWAY),
        supervisor_hash = sha256_hex(SUPERVISOR),
        anna_hash = sha256_hex(ANNA),
        boris_hash = sha256_hex(BORIS),
        vera_hash = sha256_hex(VERA),
    )
}

/// The hex SHA-256 of a token, as `[[tokens]] sha256` holds it (configs hold no secrets).
pub fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A running `callgrid node` process.
pub struct Node {
    child: Option<Child>,
    pub base: String,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    stdout_lines: mpsc::Receiver<String>,
}

impl Node {
    /// Starts `callgrid node --config <path>` and waits for its "listening on" line.
    pub fn start(config_path: &Path, data_dir: &Path) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_callgrid"))
            .arg("node")
            .arg("--config")
            .arg(config_path)
            .env("RUST_LOG", "warn,callgrid_node=info")
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
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = receiver
                .recv_timeout(left)
                .expect("node did not print its address");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let address = rest.split_whitespace().next().unwrap();
                break format!("http://{address}");
            }
        };
        Node {
            child: Some(child),
            base,
            config_path: config_path.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            stdout_lines: receiver,
        }
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the exit status.
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
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Restarts the process with the same config and data.
    pub fn restart(&mut self) {
        self.kill();
        let restarted = Node::start(&self.config_path, &self.data_dir);
        *self = restarted;
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(&self.base, method, path, token, body)
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, Value) {
        let request = ureq::request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", content_type);
        into_pair(request.send_string(body))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn into_pair(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("transport error: {error}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request =
        ureq::request(method, &format!("{base}{path}")).timeout(Duration::from_secs(20));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    into_pair(result)
}

/// Polls `check` until it returns Some or the wait runs out.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A single-site node in a temp dir (returned so it lives as long as the node).
pub fn single_site() -> (tempfile::TempDir, Node) {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let port = free_udp_port();
    let cluster = format!(
        "[cluster]\nnode_id = 1\nlisten = \"127.0.0.1:{port}\"\ncertificates_dir = \"{}\"\n",
        directory.path().join("certs").display()
    );
    let config = site_config("msk", 0, &data, &cluster);
    let path = directory.path().join("site.toml");
    std::fs::write(&path, config).unwrap();
    let node = Node::start(&path, &data);
    wait_site_policy(&node, "msk");
    (directory, node)
}

/// Waits until `site` replicated its `[callbacks]`/`[orders]` policy (a node does once it
/// caught up; until then its commands follow the cluster default on a first start).
pub fn wait_site_policy(node: &Node, site: &str) {
    eventually("the site's policy to be replicated", || {
        let (status, overview) = node.call("GET", "/api/v1/cluster/overview", Some(ADMIN), None);
        let replicated = overview["sites"]
            .as_array()?
            .iter()
            .any(|entry| entry["site"] == site && entry["policy"].is_object());
        (status == 200 && replicated).then_some(())
    });
}

pub fn order_body(caller: &str) -> Value {
    json!({
        "caller": caller,
        "items": [{"sku": "NUR-200", "name": "Nurofen 200 mg", "quantity": 2, "unit_price_minor": 25050}],
        "fulfilment": {"pickup": {"pharmacy": "apteka-7"}},
        "payment": "card",
        "delivery_note": "call before"
    })
}

/// Logs `login` in and makes it ready.
pub fn ready(node: &Node, login: &str, token: &str) {
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/agents/{login}/login"),
        Some(token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/agents/{login}/state"),
        Some(token),
        Some(json!({"state": "ready"})),
    );
    assert_eq!(status, 200, "{body}");
}

/// The contacts an agent holds, from its desktop view.
pub fn agent_contacts(node: &Node, login: &str, token: &str) -> Vec<Value> {
    let (status, body) = node.call("GET", &format!("/api/v1/agents/{login}"), Some(token), None);
    assert_eq!(status, 200, "{body}");
    body["contacts"].as_array().cloned().unwrap_or_default()
}

/// A WebSocket stream of a node (agent desktop, supervisor, gateway).
pub type Socket = WebSocket<TcpStream>;

/// Opens a stream; `Err(status)` when the upgrade is refused with an HTTP status.
pub fn connect(node: &Node, path: &str, token: Option<&str>) -> Result<Socket, u16> {
    let url = format!("{}{path}", node.base.replacen("http://", "ws://", 1));
    let mut request = url.as_str().into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    let address = node.base.trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(address).unwrap();
    // Reads fail instead of hanging when an expected event never comes.
    stream.set_read_timeout(Some(WAIT)).unwrap();
    match tungstenite::client(request, stream) {
        Ok((socket, _)) => Ok(socket),
        Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("websocket handshake: {error}"),
    }
}

/// The next JSON event on the stream (control frames skipped).
pub fn next_event(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("the stream ended or timed out") {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => panic!("stream closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// Creates a cluster CA in `directory` and a certificate for each of `nodes`, with the
/// `callgrid certs` subcommands operators use.
pub fn certs(directory: &Path, nodes: &[u64]) {
    let status = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["certs", "init", "--dir"])
        .arg(directory)
        .status()
        .unwrap();
    assert!(status.success());
    for node in nodes {
        let status = Command::new(env!("CARGO_BIN_EXE_callgrid"))
            .args(["certs", "issue", "--node", &node.to_string(), "--dir"])
            .arg(directory)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
