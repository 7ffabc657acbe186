//! Benchmark: what a snapshot of the node's replicated state costs the Raft driver thread.
//!
//! The state machine hands the cluster its state encoded behind the read lock
//! (`SharedState::encoded`, on the driver thread); the bytes are written and fsynced on the
//! cluster's snapshot thread. Before, the driver thread encoded the state straight into the
//! file and synced it (`SharedState::snapshot_to`) while nothing could commit. (A copy of
//! the maps instead of the encoding was tried too: about as long, 89–93 ms for 200,000
//! orders, and it holds the maps rather than their compact encoding.) This bench fills a
//! state with N orders (through the same apply path as Raft) and prints, as medians of
//! several rounds:
//! - encoding into memory (what the driver thread now waits for);
//! - writing those bytes to a file with fsync (now on the snapshot thread);
//! - encoding into the file with fsync from the live state (what the driver thread waited
//!   for before): the baseline;
//! - the encoded size.
//!
//! `cargo bench -p callgrid-node --bench snapshot_build -- [--orders N] [--rounds N]`
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use callgrid_node::state::command::{Command, Envelope};
use callgrid_node::state::model::{Actor, Fulfilment, OrderItem, PaymentForm, Role};
use callgrid_node::state::{SharedState, encode_envelope};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "snapshot of the node's state: copy on the driver thread vs encode + fsync")]
struct Arguments {
    /// Orders in the state.
    #[arg(long, default_value_t = 200_000)]
    orders: u64,
    /// Measured rounds (the median is printed).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Set by `cargo bench`; without it (`cargo test --benches`) the run is a small one.
    #[arg(long)]
    bench: bool,
    /// libtest options that cargo may pass; ignored.
    #[arg(long, hide = true)]
    nocapture: bool,
    #[arg(long, hide = true)]
    exact: bool,
    /// libtest filter; ignored.
    filter: Option<String>,
}

fn order(index: u64) -> Command {
    Command::CreateOrder {
        caller: format!("+7916{:07}", index % 10_000_000),
        items: vec![
            OrderItem {
                sku: format!("SKU-{}", index % 5_000),
                name: "Ibuprofen 200 mg, 20 tablets".to_string(),
                quantity: 2,
                unit_price_minor: 12_900,
            },
            OrderItem {
                sku: format!("SKU-{}", (index * 7) % 5_000),
                name: "Vitamin C 500 mg".to_string(),
                quantity: 1,
                unit_price_minor: 34_900,
            },
        ],
        fulfilment: Fulfilment::Pickup {
            pharmacy: format!("msk-{:03}", index % 300),
        },
        payment: PaymentForm::Card,
        delivery_note: String::new(),
    }
}

fn filled(orders: u64) -> SharedState {
    let state = SharedState::new();
    for index in 1..=orders {
        let envelope = Envelope {
            at_ms: 1_700_000_000_000 + index * 1_000,
            actor: Actor {
                name: "anna".to_string(),
                role: Role::Agent,
            },
            site: "msk".to_string(),
            command: order(index),
        };
        state.apply_entry(index, &encode_envelope(&envelope).unwrap());
    }
    state
}

/// Writes through `write` into a new file in `directory` and fsyncs it; returns the bytes.
fn write_synced(directory: &std::path::Path, write: impl FnOnce(&mut dyn Write)) -> u64 {
    let path = directory.join("snapshot.bin");
    let file = std::fs::File::create(&path).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    write(&mut out);
    let file = out.into_inner().unwrap();
    file.sync_all().unwrap();
    let bytes = file.metadata().unwrap().len();
    std::fs::remove_file(&path).unwrap();
    bytes
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

fn main() {
    let arguments = Arguments::parse();
    let orders = if arguments.bench {
        arguments.orders
    } else {
        2_000
    };
    let rounds = arguments.rounds.max(1);
    let directory = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let state = filled(orders);
    println!(
        "state: {orders} orders applied in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (mut encodings, mut writes, mut before) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let encoded = state.encoded();
        encodings.push(start.elapsed());
        let start = Instant::now();
        bytes = write_synced(directory.path(), |out| encoded.write_to(out).unwrap());
        writes.push(start.elapsed());
        drop(encoded);
        let start = Instant::now();
        write_synced(directory.path(), |out| state.snapshot_to(out).unwrap());
        before.push(start.elapsed());
    }
    let (encoding, write, before) = (median(encodings), median(writes), median(before));
    println!(
        "snapshot of {orders} orders, {:.1} MiB encoded; medians of {rounds} rounds:",
        bytes as f64 / (1024.0 * 1024.0),
    );
    println!(
        "  driver thread now:    encode into memory {:.1} ms ({:.2}× the baseline)",
        milliseconds(encoding),
        encoding.as_secs_f64() / before.as_secs_f64()
    );
    println!(
        "  snapshot thread now:  write + fsync of the encoding {:.1} ms",
        milliseconds(write)
    );
    println!(
        "  driver thread before: encode + write + fsync of the live state {:.1} ms (baseline)",
        milliseconds(before)
    );
}
