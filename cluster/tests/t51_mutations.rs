//! The simulation bites: with one Raft rule deliberately broken (test-only feature
//! `sim-mutations`, see `callgrid_cluster::mutations`), the simulation reports a violation
//! within a few seeds. Each test breaks one rule in its own thread (the switch is
//! per thread) and runs seeds until a violation, failing if none shows within
//! [`SEEDS_MAX`].
//!
//! `cargo test -p callgrid-cluster --features sim-mutations --test t51_mutations -- --nocapture`
//! prints which check caught each mutation and at which seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use callgrid_cluster::mutations::{self, Mutation};
use callgrid_cluster::simulation::{Simulation, SimulationOptions};

/// Seeds tried per mutation before the test fails.
const SEEDS_MAX: u64 = 16;
const STEPS: u64 = 4_000;

/// Runs seeds with `mutation` on until one reports a violation; returns its reason.
fn caught_within(mutation: Mutation, options: impl Fn(u64) -> SimulationOptions) -> String {
    mutations::set(mutation, true);
    for n in 0..SEEDS_MAX {
        let seed = 0x0B17_E000 + n;
        let nodes = if n % 2 == 0 { 3 } else { 5 };
        let mut options = options(seed);
        options.nodes = nodes;
        match Simulation::new(options).and_then(Simulation::run) {
            Ok(_) => println!("{mutation:?}: seed {seed} ({nodes} nodes) passed"),
            Err(violation) => {
                println!(
                    "{mutation:?}: caught at seed {seed} ({nodes} nodes), try {}: {violation}",
                    n + 1
                );
                mutations::set(mutation, false);
                return violation.reason;
            }
        }
    }
    panic!("{mutation:?} was not caught within {SEEDS_MAX} seeds");
}

fn default_options(seed: u64) -> SimulationOptions {
    SimulationOptions::new(seed, 3, STEPS)
}

#[test]
fn sending_before_persisting_is_caught() {
    caught_within(Mutation::SendBeforePersist, default_options);
}

#[test]
fn skipping_the_fsync_is_caught() {
    caught_within(Mutation::SkipFsync, default_options);
}

#[test]
fn answering_a_read_before_apply_is_caught() {
    caught_within(Mutation::ReadBeforeApply, default_options);
}

#[test]
fn a_read_before_apply_is_caught_by_the_linearizability_checker_alone() {
    let violation = caught_within(Mutation::ReadBeforeApply, |seed| {
        let mut options = default_options(seed);
        options.check_read_index = false;
        options
    });
    assert!(violation.contains("not linearizable"), "{violation}");
}

#[test]
fn a_wiped_voter_that_votes_is_caught() {
    caught_within(Mutation::WipedVoterVotes, |seed| {
        // Only the wiped-disk fault exercises this rule: make it frequent, and the run
        // longer (a wiped voter's vote must then decide an election that loses an entry).
        let mut options = SimulationOptions::new(seed, 3, STEPS * 2);
        options.replace = 0.003;
        options
    });
}

#[test]
fn without_a_mutation_the_same_seeds_pass() {
    for mutation in Mutation::ALL {
        assert!(!mutations::enabled(mutation));
    }
    let options = default_options(0x0B17_E000);
    Simulation::new(options)
        .and_then(Simulation::run)
        .unwrap_or_else(|violation| panic!("{violation}"));
}
