//! `http-write-bench`: replicated writes over HTTP, one client sequential and N clients
//! concurrent, p50/p99 and writes/s — the same requests and the same output as
//! `bench/http_write_bench.py`, from a client that costs little CPU per request.
//!
//! The Python harness is the shared reference; its 64 threads share one interpreter lock and
//! the machine's cores with the servers it measures, so its ceiling (against a server that does
//! nothing) is below what a fast server reaches. This client keeps one keep-alive connection
//! per thread and spends 25–50 µs of CPU per write (mostly the kernel's socket calls; the
//! Python harness ~220 µs), so the servers get the cores.
//!
//! ```text
//! http-write-bench etcd     URL --requests N --clients C          # etcd v3 HTTP gateway: PUT key
//! http-write-bench callgrid URL --requests N --clients C --token T # callgrid: POST /api/v1/orders
//! http-write-bench null     URL ...                               # callgrid's requests, labelled "null"
//! ```

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Parser, ValueEnum};

/// Requests sent before the sequential measurement (connection set up, caches warm).
const WARMUP_REQUESTS: u64 = 50;
/// Longest wait for one answer: a write that takes longer fails the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most concurrent clients (threads) one run may start.
const CLIENTS_MAX: u64 = 4_096;
/// The etcd value's size, as the Python harness writes it.
const ETCD_VALUE_BYTES: usize = 200;

/// What the requests look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// etcd's v3 HTTP gateway: `POST /v3/kv/put` with a 200-byte value.
    Etcd,
    /// callgrid's API: `POST /api/v1/orders` (one pickup order with one item).
    Callgrid,
    /// callgrid's requests against a server that answers at once (the client's ceiling).
    Null,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::Callgrid => "callgrid",
            Self::Null => "null",
        }
    }
}

/// Replicated writes over HTTP: one client sequential, then N clients concurrent.
#[derive(Debug, Parser)]
#[command(name = "http-write-bench", version)]
struct Args {
    /// The system the requests are shaped for.
    #[arg(value_enum)]
    target: Target,
    /// Base URL of the server (`http://127.0.0.1:2379`).
    url: String,
    /// Sequential writes measured for the one-client figures.
    #[arg(long, default_value_t = 2_000)]
    requests: u64,
    /// Concurrent clients: a thread and a connection each.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=CLIENTS_MAX))]
    clients: u64,
    /// Writes sent by the concurrent clients together (split evenly); default `2 × requests`,
    /// as the Python harness. A fast server needs more to be measured over a second or more.
    #[arg(long)]
    concurrent_requests: Option<u64>,
    /// Bearer token (callgrid: a token whose role may create orders).
    #[arg(long, default_value = "")]
    token: String,
}

/// One connection's worth of requests to one server.
struct Client {
    agent: ureq::Agent,
    url: String,
    target: Target,
    authorization: String,
    etcd_value: String,
}

impl Client {
    fn new(args: &Args) -> Self {
        Self {
            // One agent per thread: its pool keeps the thread's one keep-alive connection.
            agent: ureq::AgentBuilder::new()
                .timeout(REQUEST_TIMEOUT)
                .max_idle_connections_per_host(1)
                .build(),
            url: args.url.trim_end_matches('/').to_string(),
            target: args.target,
            authorization: format!("Bearer {}", args.token),
            etcd_value: BASE64.encode([b'x'; ETCD_VALUE_BYTES]),
        }
    }

    /// The path and body of write number `sequence` (distinct keys, distinct callers).
    fn request(&self, sequence: u64) -> (&'static str, String) {
        match self.target {
            Target::Etcd => {
                let key = BASE64.encode(format!("order/{sequence}"));
                let body = serde_json::json!({ "key": key, "value": self.etcd_value });
                ("/v3/kv/put", body.to_string())
            }
            Target::Callgrid | Target::Null => {
                let body = serde_json::json!({
                    "caller": format!("+7912{:07}", sequence % 10_000_000),
                    "items": [{"sku": "4600000000001", "name": "Ibuprofen 200 mg", "quantity": 2,
                               "unit_price_minor": 12900}],
                    "fulfilment": {"pickup": {"pharmacy": "msk-001"}},
                    "payment": "card",
                });
                ("/api/v1/orders", body.to_string())
            }
        }
    }

    /// Sends write `sequence` and waits for its answer; the time from send to answer.
    fn put(&self, sequence: u64) -> Result<Duration> {
        let (path, body) = self.request(sequence);
        let mut request = self
            .agent
            .post(&format!("{}{path}", self.url))
            .set("content-type", "application/json");
        if self.target != Target::Etcd {
            request = request.set("authorization", &self.authorization);
        }
        let started = Instant::now();
        match request.send_string(&body) {
            Ok(response) => {
                // Read the whole body: the connection is reused only after it.
                response
                    .into_string()
                    .with_context(|| format!("reading the answer to write {sequence}"))?;
                Ok(started.elapsed())
            }
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                let shown: String = text.chars().take(300).collect();
                bail!("{}: HTTP {status}: {shown}", self.target.label())
            }
            Err(error) => Err(error).with_context(|| format!("write {sequence} to {}", self.url)),
        }
    }
}

/// The `p` quantile (0–1) of sorted `samples`, as the Python harness takes it.
fn quantile(sorted: &[Duration], p: f64) -> Duration {
    debug_assert!(sorted.windows(2).all(|pair| pair[0] <= pair[1]));
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Truncation is the rule: index ⌊p·n⌋, capped at the last sample.
    let index = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[index]
}

/// This process's CPU time so far (user + system), from `/proc/self/stat` (clock ticks of
/// 1/100 s, Linux's `USER_HZ`); `None` where there is no such file.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// One line in the Python harness's format (scripts/bench-write-path.sh parses it).
fn report(
    target: Target,
    clients: u64,
    mut samples: Vec<Duration>,
    elapsed: Duration,
    cpu: Option<Duration>,
) {
    samples.sort_unstable();
    let count = samples.len() as f64;
    let milliseconds = |duration: Duration| duration.as_secs_f64() * 1e3;
    let noun = if clients == 1 { "client" } else { "clients" };
    let cpu = cpu
        .map(|cpu| format!(" client-cpu={:.0}us/write", cpu.as_secs_f64() * 1e6 / count))
        .unwrap_or_default();
    println!(
        "{} {clients} {noun}: p50={:.2} ms p99={:.2} ms ops/s={:.0}{cpu}",
        target.label(),
        milliseconds(quantile(&samples, 0.5)),
        milliseconds(quantile(&samples, 0.99)),
        count / elapsed.as_secs_f64(),
    );
}

fn sequential(args: &Args) -> Result<()> {
    let client = Client::new(args);
    for sequence in 0..WARMUP_REQUESTS {
        client.put(sequence)?;
    }
    let cpu_before = process_cpu();
    let started = Instant::now();
    let samples = (0..args.requests)
        .map(|offset| client.put(1_000 + offset))
        .collect::<Result<Vec<_>>>()?;
    let elapsed = started.elapsed();
    let cpu = cpu_before
        .zip(process_cpu())
        .map(|(before, after)| after.saturating_sub(before));
    report(args.target, 1, samples, elapsed, cpu);
    Ok(())
}

fn concurrent(args: &Args) -> Result<()> {
    let clients = args.clients;
    debug_assert!(
        (1..=CLIENTS_MAX).contains(&clients),
        "bounded by the parser"
    );
    let total = args.concurrent_requests.unwrap_or(args.requests * 2);
    let per_client = (total / clients).max(1);
    // Every thread connects (one warm-up write) before the clock starts.
    let ready = Arc::new(Barrier::new(usize::try_from(clients)? + 1));
    let threads = (0..clients)
        .map(|k| {
            let client = Client::new(args);
            let ready = Arc::clone(&ready);
            std::thread::Builder::new()
                .name(format!("client-{k}"))
                .spawn(move || -> Result<Vec<Duration>> {
                    let base = 200_000 + k * 10_000;
                    let warmed = client.put(base + per_client);
                    ready.wait();
                    warmed?;
                    (0..per_client).map(|j| client.put(base + j)).collect()
                })
                .context("starting a client thread")
        })
        .collect::<Result<Vec<_>>>()?;
    ready.wait();
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut samples = Vec::new();
    for thread in threads {
        let mine = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        samples.extend(mine);
    }
    let elapsed = started.elapsed();
    let cpu = cpu_before
        .zip(process_cpu())
        .map(|(before, after)| after.saturating_sub(before));
    report(args.target, clients, samples, elapsed, cpu);
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.requests == 0 || args.concurrent_requests == Some(0) {
        bail!("--requests and --concurrent-requests must be at least 1");
    }
    sequential(&args)?;
    concurrent(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_truncated_index_as_the_python_harness() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&samples, 0.99), Duration::from_millis(100));
        assert_eq!(quantile(&samples[..1], 0.99), Duration::from_millis(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn requests_match_the_python_harness() {
        let args = Args::parse_from(["http-write-bench", "etcd", "http://127.0.0.1:1/"]);
        let client = Client::new(&args);
        let (path, body) = client.request(7);
        assert_eq!(path, "/v3/kv/put");
        let body: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["key"], BASE64.encode("order/7"));
        let value = BASE64
            .decode(body["value"].as_str().expect("value"))
            .expect("base64");
        assert_eq!(value, vec![b'x'; ETCD_VALUE_BYTES]);
        assert_eq!(client.url, "http://127.0.0.1:1");

        let args = Args::parse_from(["http-write-bench", "callgrid", "http://h:1", "--token", "t"]);
        let client = Client::new(&args);
        let (path, body) = client.request(12_345_678);
        assert_eq!(path, "/api/v1/orders");
        let body: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["caller"], "+79122345678");
        assert_eq!(body["items"][0]["quantity"], 2);
        assert_eq!(client.authorization, "Bearer t");
    }
}
