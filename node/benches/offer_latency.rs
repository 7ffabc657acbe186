//! Benchmark: contact-arrival-to-offer latency on real `callgrid` processes.
//!
//! 200 agents log in at one site; a burst of 2,000 contacts arrives from 8 gateway threads;
//! 8 desktop threads accept, end and wrap up whatever their agents are offered, so queued
//! contacts flow as agents free up. Reported:
//! - node side: arrival → first offer inside the node (`callgrid_offer_latency_seconds` quantiles
//!   from `/metrics`, printed in µs), which includes time spent queued behind busy agents;
//! - client side: the gateway's `POST /api/v1/contacts` round trip (arrival routed and, when
//!   an agent is free, offered before the answer).
//!
//! `cargo bench -p callgrid-node --bench offer_latency` runs one site, then a three-site
//! cluster (contacts and agents at the first site; routing does not wait for Raft).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const AGENTS: usize = 200;
const CONTACTS: usize = 2_000;
const GATEWAY_THREADS: usize = 8;
const DESKTOP_THREADS: usize = 8;
const TOKEN: &str = "bench-admin-token-0000000001";

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bench token's hash, as a config stores it (plaintext tokens are refused).
fn token_sha256() -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()))
}

fn config(site: &str, number: u16, data: &Path, cluster: &str) -> String {
    let mut text = format!(
        "[site]\nid = \"{site}\"\nnumber = {number}\ndata_dir = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n{cluster}\n\
         [[tokens]]\nname = \"bench\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        data.display(),
        token_sha256()
    );
    for agent in 0..AGENTS {
        text.push_str(&format!(
            "\n[[agents]]\nlogin = \"a{agent}\"\nid = {}\nskills = [\"line1\"]\n",
            agent + 1
        ));
    }
    text
}

fn start(config_path: &Path) -> (Process, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["node", "--config"])
        .arg(config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break format!("http://{}", rest.split_whitespace().next().unwrap());
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Process(child), base)
}

fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let request = ureq::request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .timeout(Duration::from_secs(30));
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{error}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if call(base, "GET", "/readyz", None).0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("node at {base} never became ready");
}

fn run(label: &str, base: &str) {
    for agent in 0..AGENTS {
        assert_eq!(
            call(
                base,
                "POST",
                &format!("/api/v1/agents/a{agent}/login"),
                None
            )
            .0,
            200
        );
        let ready = call(
            base,
            "POST",
            &format!("/api/v1/agents/a{agent}/state"),
            Some(json!({"state": "ready"})),
        );
        assert_eq!(ready.0, 200, "{}", ready.1);
    }
    let handled = Arc::new(AtomicUsize::new(0));
    let mut desktops = Vec::new();
    for thread in 0..DESKTOP_THREADS {
        let base = base.to_string();
        let handled = handled.clone();
        desktops.push(std::thread::spawn(move || {
            let agents: Vec<usize> = (0..AGENTS)
                .filter(|agent| agent % DESKTOP_THREADS == thread)
                .collect();
            while handled.load(Ordering::Relaxed) < CONTACTS {
                for agent in &agents {
                    let (_, view) = call(&base, "GET", &format!("/api/v1/agents/a{agent}"), None);
                    for contact in view["contacts"].as_array().cloned().unwrap_or_default() {
                        let id = contact["id"].as_u64().unwrap();
                        if contact["stage"] != "offered" {
                            continue;
                        }
                        call(
                            &base,
                            "POST",
                            &format!("/api/v1/agents/a{agent}/contacts/{id}/accept"),
                            None,
                        );
                        call(&base, "POST", &format!("/api/v1/contacts/{id}/ended"), None);
                        call(
                            &base,
                            "POST",
                            &format!("/api/v1/agents/a{agent}/contacts/{id}/wrap-up"),
                            Some(json!({"code": "bench"})),
                        );
                        handled.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    let mut gateways = Vec::new();
    for thread in 0..GATEWAY_THREADS {
        let base = base.to_string();
        gateways.push(std::thread::spawn(move || {
            let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            for contact in (0..CONTACTS).filter(|contact| contact % GATEWAY_THREADS == thread) {
                let caller = format!("+7916{contact:07}");
                let sent = Instant::now();
                let (status, body) = call(
                    &base,
                    "POST",
                    "/api/v1/contacts",
                    Some(json!({"caller": caller, "topic": "order"})),
                );
                assert_eq!(status, 201, "{body}");
                histogram.record(sent.elapsed().as_micros() as u64).unwrap();
            }
            histogram
        }));
    }
    let mut round_trip = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for gateway in gateways {
        round_trip.add(gateway.join().unwrap()).unwrap();
    }
    let burst = started.elapsed();
    for desktop in desktops {
        desktop.join().unwrap();
    }
    let drained = started.elapsed();
    let (_, metrics) = call(base, "GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    // The node exports seconds; printed in µs.
    let quantile = |metric: &str, wanted: &str| {
        metrics
            .lines()
            .find(|line| {
                line.starts_with(&format!("{metric}{{"))
                    && line.contains(&format!("quantile=\"{wanted}\""))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|seconds| seconds.parse::<f64>().ok())
            .map_or_else(
                || "?".to_string(),
                |seconds| format!("{:.0}", seconds * 1e6),
            )
    };
    println!(
        "{label}: {AGENTS} agents, burst of {CONTACTS} contacts sent in {:.2} s, all handled in {:.2} s",
        burst.as_secs_f64(),
        drained.as_secs_f64()
    );
    println!(
        "{label}: arrival→offer in node p50 {} µs, p99 {} µs (includes queueing behind busy agents)",
        quantile("callgrid_offer_latency_seconds", "0.5"),
        quantile("callgrid_offer_latency_seconds", "0.99")
    );
    println!(
        "{label}: arrival→offer for contacts that found a free agent (routing only) p50 {} µs, p99 {} µs, count {}",
        quantile("callgrid_offer_latency_immediate_seconds", "0.5"),
        quantile("callgrid_offer_latency_immediate_seconds", "0.99"),
        metrics
            .lines()
            .find(|line| line.starts_with("callgrid_offer_latency_immediate_seconds_count"))
            .and_then(|line| line.rsplit(' ').next())
            .unwrap_or("0")
    );
    println!(
        "{label}: POST /contacts round trip p50 {} µs, p99 {} µs, max {} µs",
        round_trip.value_at_quantile(0.5),
        round_trip.value_at_quantile(0.99),
        round_trip.max()
    );
}

fn main() {
    let directory = tempfile::tempdir().unwrap();

    // One site: a one-voter Raft cluster on RocksDB.
    let data = directory.path().join("single");
    let path = directory.path().join("single.toml");
    std::fs::write(&path, config("single", 0, &data, "")).unwrap();
    let (process, base) = start(&path);
    wait_ready(&base);
    run("one node", &base);
    drop(process);

    // Three sites in one cluster over QUIC with mutual TLS.
    let certificates = directory.path().join("certs");
    let callgrid = env!("CARGO_BIN_EXE_callgrid");
    assert!(
        Command::new(callgrid)
            .args(["certs", "init", "--dir"])
            .arg(&certificates)
            .status()
            .unwrap()
            .success()
    );
    for node in 1..=3 {
        assert!(
            Command::new(callgrid)
                .args(["certs", "issue", "--node", &node.to_string(), "--dir"])
                .arg(&certificates)
                .status()
                .unwrap()
                .success()
        );
    }
    let ports = [free_udp_port(), free_udp_port(), free_udp_port()];
    let mut processes = Vec::new();
    let mut bases = Vec::new();
    for index in 0..3 {
        let peers: Vec<String> = (0..3)
            .filter(|other| *other != index)
            .map(|other| {
                format!(
                    "{{ id = {}, address = \"127.0.0.1:{}\" }}",
                    other + 1,
                    ports[other]
                )
            })
            .collect();
        let cluster = format!(
            "[cluster]\nnode_id = {}\nlisten = \"127.0.0.1:{}\"\ncertificates_dir = \"{}\"\nbootstrap = \"new\"\npeers = [{}]\n",
            index + 1,
            ports[index],
            certificates.display(),
            peers.join(", ")
        );
        let site = format!("site{}", index + 1);
        let data = directory.path().join(&site);
        let path = directory.path().join(format!("{site}.toml"));
        std::fs::write(&path, config(&site, index as u16, &data, &cluster)).unwrap();
        let (process, base) = start(&path);
        processes.push(process);
        bases.push(base);
    }
    for base in &bases {
        wait_ready(base);
    }
    run("three-node cluster", &bases[0]);
}
