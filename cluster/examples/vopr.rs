//! Long runs of the deterministic cluster simulation.
//!
//! `cargo run -p callgrid-cluster --release --example vopr -- --seed 7 --seeds 100 --jobs 2`
//! runs seeds 7..107 on two threads; a failure prints its seed, and `--seed N --seeds 1`
//! replays it. At the end: seeds run, failures, wall time and the per-seed time (median, p99,
//! max).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use callgrid_cluster::simulation::{Simulation, SimulationOptions, SimulationReport};
use clap::Parser;

/// Seeded simulation of 3- and 5-node clusters with faults.
#[derive(Debug, Parser)]
struct Arguments {
    /// First seed (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// How many consecutive seeds to run.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Steps with faults per run.
    #[arg(long, default_value_t = 20_000)]
    steps: u64,
    /// Cluster size; 0 alternates 3 and 5.
    #[arg(long, default_value_t = 0)]
    nodes: usize,
    /// Threads running seeds.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Stop starting seeds after this many seconds (0: run them all); the summary then
    /// counts the seeds that ran.
    #[arg(long, default_value_t = 0)]
    time_limit_s: u64,
    /// Print only failures and the summary.
    #[arg(long)]
    quiet: bool,
    /// Log the cores' tracing events at this level filter (e.g. `info`), to debug a replay.
    #[arg(long)]
    log: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    if let Some(filter) = &arguments.log {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .without_time()
            .init();
    }
    let first = arguments.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64)
    });
    println!(
        "vopr: seeds {first}..{} ({} steps, {} jobs)",
        first + arguments.seeds,
        arguments.steps,
        arguments.jobs
    );
    let next = AtomicU64::new(first);
    let failures = AtomicU64::new(0);
    let durations = Mutex::new(Vec::with_capacity(arguments.seeds as usize));
    let totals = Mutex::new(SimulationReport::default());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..arguments.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    let out_of_time = arguments.time_limit_s > 0
                        && started.elapsed() >= Duration::from_secs(arguments.time_limit_s);
                    if seed >= first + arguments.seeds || out_of_time {
                        break;
                    }
                    let nodes = match arguments.nodes {
                        0 => 3 + 2 * (seed % 2) as usize,
                        nodes => nodes,
                    };
                    let options = SimulationOptions::new(seed, nodes, arguments.steps);
                    let seed_started = Instant::now();
                    // A panic (raft-rs asserts, the core's debug assertions) is a failure
                    // of this seed, not of the run.
                    let result = std::panic::catch_unwind(|| {
                        Simulation::new(options).and_then(Simulation::run)
                    });
                    let elapsed = seed_started.elapsed();
                    let result = match result {
                        Ok(result) => result,
                        Err(panic) => {
                            let message = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                .unwrap_or_default();
                            println!("seed {seed} nodes {nodes}: PANIC {message}");
                            failures.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    if let (Ok(report), Ok(mut totals)) = (&result, totals.lock()) {
                        add(&mut totals, report);
                    }
                    match result {
                        Ok(report) if !arguments.quiet => {
                            println!("seed {seed} nodes {nodes}: ok in {elapsed:.2?} {report:?}");
                        }
                        Ok(_) => {}
                        Err(violation) => {
                            println!("seed {seed} nodes {nodes}: VIOLATION {violation}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if let Ok(mut durations) = durations.lock() {
                        durations.push(elapsed);
                    }
                }
            });
        }
    });
    let mut durations = durations.into_inner().unwrap_or_default();
    durations.sort();
    let at = |quantile: f64| {
        durations
            .get(((durations.len() as f64 - 1.0) * quantile).round() as usize)
            .copied()
            .unwrap_or(Duration::ZERO)
    };
    let failures = failures.into_inner();
    if let Ok(totals) = totals.into_inner() {
        println!("vopr: summed over the seeds that passed: {totals:?}");
    }
    println!(
        "vopr: {} seeds, {failures} failed, wall {:.1?}; per seed median {:.3?}, p99 {:.3?}, max {:.3?}",
        durations.len(),
        started.elapsed(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    if failures > 0 {
        bail!(
            "{failures} of {} seeds violated an invariant",
            arguments.seeds
        );
    }
    Ok(())
}

/// Add `report`'s counters to `totals` (the highest term is a maximum).
fn add(totals: &mut SimulationReport, report: &SimulationReport) {
    totals.commands_applied += report.commands_applied;
    totals.proposals_succeeded += report.proposals_succeeded;
    totals.proposals_failed += report.proposals_failed;
    totals.proposals_unknown += report.proposals_unknown;
    totals.reads_succeeded += report.reads_succeeded;
    totals.reads_failed += report.reads_failed;
    totals.crashes += report.crashes;
    totals.fsync_failures += report.fsync_failures;
    totals.crashes_mid_ready += report.crashes_mid_ready;
    totals.wipes += report.wipes;
    totals.forced_reconfigurations += report.forced_reconfigurations;
    totals.membership_changes += report.membership_changes;
    totals.transfers += report.transfers;
    totals.partitions += report.partitions;
    totals.term_max = totals.term_max.max(report.term_max);
    totals.snapshots_installed += report.snapshots_installed;
    totals.snapshots_chunked += report.snapshots_chunked;
    totals.forwards_stale += report.forwards_stale;
    totals.forwards_duplicated += report.forwards_duplicated;
    totals.messages_from_removed += report.messages_from_removed;
    totals.messages_delayed += report.messages_delayed;
    let (sum, add) = (&mut totals.linearizability, &report.linearizability);
    sum.operations += add.operations;
    sum.reads += add.reads;
    sum.unknown_writes += add.unknown_writes;
    sum.search_steps += add.search_steps;
}
