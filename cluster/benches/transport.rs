//! Transport benchmark: two QUIC endpoints on loopback with mutual TLS.
//!
//! Prints one-way latency (p50/p99) of single messages sent one at a time, then
//! throughput (messages/s) and latency under load for a pipelined stream.
//! Run: `cargo bench -p callgrid-cluster --bench transport -- [--messages N] [--payload BYTES]`
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use callgrid_cluster::certs::CertificateAuthority;
use callgrid_cluster::transport::quic::{QuicConfig, QuicTransport};
use callgrid_cluster::transport::{PeerMessage, Transport, TransportError};
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
struct Arguments {
    /// Messages in the pipelined phase.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Messages in the one-at-a-time latency phase.
    #[arg(long, default_value_t = 5_000)]
    latency_messages: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// Ignored (cargo bench passes it).
    #[arg(long)]
    bench: bool,
}

fn message(start: Instant, payload: usize) -> PeerMessage {
    // The send time rides in the request id: both endpoints share this process's clock.
    PeerMessage::Forward {
        request_id: start.elapsed().as_nanos() as u64,
        term: 1,
        payload: vec![7; payload],
    }
}

fn record(histogram: &mut Histogram<u64>, start: Instant, inbound: &PeerMessage) {
    if let PeerMessage::Forward { request_id, .. } = inbound {
        let now = start.elapsed().as_nanos() as u64;
        let _ = histogram.record(now.saturating_sub(*request_id) / 1000);
    }
}

fn print(label: &str, histogram: &Histogram<u64>) {
    println!(
        "{label}: p50 {} µs, p99 {} µs, max {} µs ({} samples)",
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.99),
        histogram.max(),
        histogram.len()
    );
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let authority = CertificateAuthority::generate()?;
    let listen = "127.0.0.1:0".parse()?;
    let (two, inbound) = QuicTransport::start(QuicConfig::new(
        2,
        listen,
        vec![],
        authority.issue_identity(2)?,
    ))?;
    let (one, _one_inbound) = QuicTransport::start(QuicConfig::new(
        1,
        listen,
        vec![(2, two.local_address().to_string())],
        authority.issue_identity(1)?,
    ))?;
    let start = Instant::now();
    let wait = Duration::from_secs(30);

    // Warm up: connection, handshake, congestion window.
    for _ in 0..1000 {
        one.send(2, message(start, arguments.payload))?;
        inbound.recv_timeout(wait).context("warm-up message lost")?;
    }

    let mut latency = Histogram::<u64>::new(3)?;
    for _ in 0..arguments.latency_messages {
        one.send(2, message(start, arguments.payload))?;
        let received = inbound.recv_timeout(wait).context("message lost")?;
        record(&mut latency, start, &received.message);
    }
    print("one at a time, one-way latency", &latency);

    let mut loaded = Histogram::<u64>::new(3)?;
    let receiver = std::thread::spawn(move || -> anyhow::Result<(Histogram<u64>, Duration)> {
        let mut received = 0;
        let first = Instant::now();
        while received < arguments.messages {
            let inbound = inbound
                .recv_timeout(wait)
                .context("message lost under load")?;
            record(&mut loaded, start, &inbound.message);
            received += 1;
        }
        Ok((loaded, first.elapsed()))
    });
    let mut queue_full = 0_u64;
    let mut sent = 0;
    while sent < arguments.messages {
        match one.send(2, message(start, arguments.payload)) {
            Ok(()) => sent += 1,
            Err(TransportError::QueueFull(_)) => {
                queue_full += 1;
                std::thread::yield_now();
            }
            Err(error) => return Err(error.into()),
        }
    }
    let (loaded, elapsed) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    println!(
        "pipelined: {} messages of {} bytes in {:.3} s = {:.0} messages/s ({} QueueFull retries)",
        arguments.messages,
        arguments.payload,
        elapsed.as_secs_f64(),
        arguments.messages as f64 / elapsed.as_secs_f64(),
        queue_full
    );
    print("pipelined, one-way latency", &loaded);
    println!("sender stats: {:?}", one.stats());
    one.shutdown();
    two.shutdown();
    Ok(())
}
