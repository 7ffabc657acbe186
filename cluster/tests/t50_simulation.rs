//! Deterministic cluster simulation: seeded runs of 3- and 5-node clusters through the sans-IO
//! core with loss, duplication, reordering, partitions and crash-restart, checking Raft's
//! invariants after every step (see `callgrid_cluster::simulation`).
//!
//! Replay a failure with `CALLGRID_SIM_SEED=<seed> cargo test -p callgrid-cluster --test
//! t50_simulation`; longer runs: `cargo run -p callgrid-cluster --release --example vopr`.

use callgrid_cluster::simulation::{Simulation, SimulationOptions};

const SEEDS: u64 = 6;
const STEPS: u64 = 4_000;

fn seeds() -> Vec<u64> {
    match std::env::var("CALLGRID_SIM_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (0..SEEDS).map(|n| 0x5EED_0000 + n).collect(),
    }
}

fn run(nodes: usize) {
    for seed in seeds() {
        println!("simulation: seed {seed}, {nodes} nodes, {STEPS} steps");
        let options = SimulationOptions::new(seed, nodes, STEPS);
        let report = Simulation::new(options)
            .and_then(Simulation::run)
            .unwrap_or_else(|violation| panic!("{violation}"));
        println!("simulation: seed {seed}: {report:?}");
        assert!(
            report.commands_applied > 0,
            "seed {seed}: nothing committed"
        );
    }
}

#[test]
fn three_node_cluster_keeps_raft_invariants_under_faults() {
    run(3);
}

#[test]
fn five_node_cluster_keeps_raft_invariants_under_faults() {
    run(5);
}

#[test]
fn same_seed_replays_the_same_run() {
    let options = SimulationOptions::new(42, 3, 1_500);
    let first = Simulation::new(options.clone()).and_then(Simulation::run);
    let second = Simulation::new(options).and_then(Simulation::run);
    assert_eq!(first, second);
    assert!(first.is_ok());
}
