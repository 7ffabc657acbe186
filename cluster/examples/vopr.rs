//! Long runs of the deterministic cluster simulation.
//!
//! `cargo run -p callgrid-cluster --release --example vopr -- --seed 7 --seeds 100 --steps 50000`
//! runs seeds 7..107; a failure prints its seed, and `--seed N --seeds 1` replays it.

use anyhow::bail;
use callgrid_cluster::simulation::{Simulation, SimulationOptions};
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
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let first = arguments.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64)
    });
    let mut failures = 0;
    for seed in first..first + arguments.seeds {
        let nodes = match arguments.nodes {
            0 => 3 + 2 * (seed % 2) as usize,
            nodes => nodes,
        };
        let options = SimulationOptions::new(seed, nodes, arguments.steps);
        match Simulation::new(options).and_then(Simulation::run) {
            Ok(report) => println!("seed {seed} nodes {nodes}: ok {report:?}"),
            Err(violation) => {
                println!("seed {seed} nodes {nodes}: VIOLATION {violation}");
                failures += 1;
            }
        }
    }
    if failures > 0 {
        bail!(
            "{failures} of {} seeds violated an invariant",
            arguments.seeds
        );
    }
    Ok(())
}
