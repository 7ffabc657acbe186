//! The client's history of a live run: every request with its wall start and end times, the
//! answer and the contact it concerns, one JSON line each in `history.jsonl`; at the end every
//! replica's records in `replicas/<site>.json`. [`super::check`] reads both.
//!
//! Players hand records to one writer thread through a bounded channel (a full channel slows
//! the players down rather than growing memory).

use std::io::{BufRead as _, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Records in flight to the writer at most.
pub const HISTORY_CHANNEL_CAPACITY: usize = 16_384;
/// The history file in a history directory.
pub const HISTORY_FILE: &str = "history.jsonl";
/// The replicas' records in a history directory.
pub const REPLICAS_DIR: &str = "replicas";

/// One request as the client saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Order of issue (unique within a run).
    pub seq: u64,
    /// Who sent it: `gateway`, an agent's login, or `collector`.
    pub actor: String,
    /// Site index (scenario order) it went to.
    pub site: usize,
    /// Endpoint class (`arrive`, `accept`, `order`, `order_read`, …).
    pub class: String,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Wall time it was sent, µs since the Unix epoch.
    pub start_us: u64,
    /// Wall time the answer was complete, µs since the Unix epoch.
    pub end_us: u64,
    /// HTTP status; 0 when no answer came (connection refused, timeout).
    pub status: u16,
    /// The plan index of the contact it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<usize>,
    /// The node's contact id it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<u64>,
    /// The answer's JSON body (or the error text).
    #[serde(default)]
    pub body: Value,
    /// The `Idempotency-Key` the request carried (a create), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Which retry of the same request this is (0: the first attempt).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl Request {
    /// Acknowledged: a 2xx answer.
    pub fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a history cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line or file is not what the run writes.
    #[error("{path}:{line}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line number (1-based; 0 for a whole file).
        line: usize,
        /// Why.
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HistoryError + '_ {
    move |source| HistoryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where players send their records; cheap to clone.
#[derive(Debug, Clone)]
pub struct HistorySink {
    sender: mpsc::SyncSender<Request>,
    seq: Arc<AtomicU64>,
}

impl HistorySink {
    /// The next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands a record to the writer (blocks while the channel is full).
    pub fn record(&self, request: Request) {
        // The writer only stops after every sink is dropped; a send error means it failed,
        // which `HistoryWriter::finish` reports.
        let _ = self.sender.send(request);
    }
}

/// The writer thread.
#[derive(Debug)]
pub struct HistoryWriter {
    handle: JoinHandle<Result<u64, HistoryError>>,
}

/// Starts the writer of `directory/history.jsonl`.
pub fn start(directory: &Path) -> Result<(HistorySink, HistoryWriter), HistoryError> {
    std::fs::create_dir_all(directory).map_err(io(directory))?;
    let path = directory.join(HISTORY_FILE);
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    let (sender, receiver) = mpsc::sync_channel::<Request>(HISTORY_CHANNEL_CAPACITY);
    let handle = std::thread::Builder::new()
        .name("history".to_string())
        .spawn(move || {
            let mut out = BufWriter::new(file);
            let mut written = 0;
            for request in receiver {
                let line =
                    serde_json::to_string(&request).map_err(|source| HistoryError::Parse {
                        path: path.clone(),
                        line: 0,
                        source,
                    })?;
                writeln!(out, "{line}").map_err(io(&path))?;
                written += 1;
            }
            out.flush().map_err(io(&path))?;
            Ok(written)
        })
        .map_err(io(directory))?;
    Ok((
        HistorySink {
            sender,
            seq: Arc::new(AtomicU64::new(0)),
        },
        HistoryWriter { handle },
    ))
}

impl HistoryWriter {
    /// Waits for the writer after every sink was dropped; the number of records written.
    pub fn finish(self) -> Result<u64, HistoryError> {
        self.handle.join().unwrap_or_else(|_| {
            Err(HistoryError::Io {
                path: PathBuf::from(HISTORY_FILE),
                source: std::io::Error::other("the history writer panicked"),
            })
        })
    }
}

/// Reads `directory/history.jsonl`.
pub fn read(directory: &Path) -> Result<Vec<Request>, HistoryError> {
    let path = directory.join(HISTORY_FILE);
    let file = std::fs::File::open(&path).map_err(io(&path))?;
    let mut requests = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        let request = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
            path: path.clone(),
            line: number + 1,
            source,
        })?;
        requests.push(request);
    }
    Ok(requests)
}

/// One replica's records as fetched at the end of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Replica {
    /// Site name.
    pub site: String,
    /// Whether the replica answered at all.
    pub reachable: bool,
    /// Order id → the order (absent: not found on this replica).
    pub orders: std::collections::BTreeMap<u64, Value>,
    /// Pre-order id → the pre-order.
    pub pre_orders: std::collections::BTreeMap<u64, Value>,
    /// Complaint id → the complaint.
    pub complaints: std::collections::BTreeMap<u64, Value>,
    /// Every callback the replica holds.
    pub callbacks: Vec<Value>,
    /// Caller → the ids of every order the replica holds for that caller, for each caller
    /// the players tried to take an order for (each planned contact has its own caller and
    /// at most one planned order).
    #[serde(default)]
    pub orders_by_caller: std::collections::BTreeMap<String, Vec<u64>>,
}

/// Writes `directory/replicas/<index>.json`.
pub fn write_replica(
    directory: &Path,
    index: usize,
    replica: &Replica,
) -> Result<(), HistoryError> {
    let folder = directory.join(REPLICAS_DIR);
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    let path = folder.join(format!("{index}.json"));
    let text = serde_json::to_string(replica).map_err(|source| HistoryError::Parse {
        path: path.clone(),
        line: 0,
        source,
    })?;
    std::fs::write(&path, text).map_err(io(&path))
}

/// Reads every `directory/replicas/*.json`, by index.
pub fn read_replicas(directory: &Path) -> Result<Vec<Replica>, HistoryError> {
    let folder = directory.join(REPLICAS_DIR);
    let mut replicas = Vec::new();
    for index in 0.. {
        let path = folder.join(format!("{index}.json"));
        if !path.is_file() {
            break;
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let replica = serde_json::from_str(&text).map_err(|source| HistoryError::Parse {
            path: path.clone(),
            line: 0,
            source,
        })?;
        replicas.push(replica);
    }
    Ok(replicas)
}
