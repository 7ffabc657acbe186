//! The live drill: three real `callgrid` sites on a scaled clock, the drill scenario's ~1,000
//! contacts played through the public API by `callgrid-sim live` (gateway and every agent),
//! the leader's site killed with SIGKILL at 12:40 simulated and restarted at 13:00 from its disk, the
//! history checker green (every acknowledged record on every replica, no double answers, a
//! callback for every abandoned caller, no stale order read), and the cluster's service level
//! within a stated tolerance of the offline simulator's prediction for the same scenario and
//! seed.
//!
//! Run: `cargo build -p callgrid-node && cargo test -p callgrid-tests --test live_drill --
//! --nocapture` (or `CALLGRID_BINARY=…`); the speed is `CALLGRID_DRILL_SPEED` (default 300).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callgrid_sim::live::{self, clock::DrillClock, configs};
use callgrid_sim::scenario::Scenario;
use callgrid_tests::{Node, Site, certificates, free_udp_port};

/// Measured SL (the cluster's reports) may differ from the predicted mean by this much
/// (absolute): the prediction's own 95 % interval over replications of a 1,000-contact run is
/// about ±5 points, and the scaled clock adds the API's wall latency to every wait.
const SERVICE_LEVEL_TOLERANCE: f64 = 0.12;
/// When the leader's site is killed and restarted, ms into the simulated day.
const KILL_AT_MS: u64 = (12 * 60 + 40) * 60_000;
const RESTART_AT_MS: u64 = 13 * 3_600_000;
/// Wall time the sites get to start and elect a leader before the simulated day begins.
const LEAD: Duration = Duration::from_secs(25);

fn drill_scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulator/scenarios/drill.toml");
    Scenario::from_file(&path).expect("drill scenario")
}

fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[test]
fn a_thousand_contacts_against_three_sites_check_green_and_match_the_prediction() {
    let speed: f64 = std::env::var("CALLGRID_DRILL_SPEED")
        .ok()
        .and_then(|speed| speed.parse().ok())
        .unwrap_or(300.0);
    let directory = tempfile::tempdir().expect("temp dir");
    let scenario = drill_scenario();
    let plan = live::plan::draw(&scenario, scenario.seed).expect("plan");
    let clock = DrillClock::starting_in(speed, LEAD, plan.day_span_ms.0 - 5 * 60_000);
    let certs = directory.path().join("certs");
    certificates(&certs, &[1, 2, 3]);
    let addresses = configs::Addresses {
        http: (0..3)
            .map(|_| format!("127.0.0.1:{}", free_tcp_port()))
            .collect(),
        cluster: (0..3)
            .map(|_| format!("127.0.0.1:{}", free_udp_port()))
            .collect(),
        certificates: certs,
    };
    let configs_dir = directory.path().join("configs");
    let tokens = configs::emit(&scenario, &plan, &clock, &addresses, &configs_dir).expect("emit");
    let sites: Vec<Site> = (0..3)
        .map(|index| {
            let id = configs::site_id(&scenario, index);
            Site {
                id: id.clone(),
                node_id: index as u64 + 1,
                cluster_address: addresses.cluster[index].clone(),
                config: configs_dir.join(&id).join("site.toml"),
                data: configs_dir.join(&id).join("data"),
            }
        })
        .collect();
    let nodes: Vec<Node> = sites.iter().map(Node::start).collect();
    for node in &nodes {
        wait_ready(&node.base);
    }
    let bases: Vec<String> = nodes.iter().map(|node| node.base.clone()).collect();
    let nodes = Arc::new(Mutex::new(nodes));
    let fault = {
        let nodes = Arc::clone(&nodes);
        let sites = sites.clone();
        let supervisor = tokens.supervisor.clone();
        std::thread::spawn(move || {
            clock.sleep_until_day(KILL_AT_MS);
            // The leader: its loss stalls every write until a new one is elected.
            let victim = leader_index(&nodes.lock().expect("nodes")[0].base, &supervisor);
            nodes.lock().expect("nodes")[victim].kill();
            println!(
                "killed {} (the leader) at 12:40 simulated",
                sites[victim].id
            );
            clock.sleep_until_day(RESTART_AT_MS);
            let restarted = Node::start(&sites[victim]);
            nodes.lock().expect("nodes")[victim] = restarted;
        })
    };
    let history = directory.path().join("history");
    let outcome = live::run(live::LiveOptions {
        seed: scenario.seed,
        scenario: scenario.clone(),
        sites: bases,
        tokens: tokens.clone(),
        clock,
        history: history.clone(),
        progress: false,
        fault_windows: vec![(KILL_AT_MS, RESTART_AT_MS)],
    })
    .expect("live run");
    fault.join().expect("the fault thread");
    println!("{}", live::summary::render(&outcome.summary));
    println!("{}", outcome.verdict.render());
    keep_on_failure(&history, outcome.verdict.passed());
    assert!(outcome.verdict.passed(), "{}", outcome.verdict.render());
    let summary = &outcome.summary;
    assert!(summary.client.offered >= 700, "{summary:?}");
    let measured = summary.cluster.service_level.expect("cluster SL");
    let predicted = summary.predicted_service_level_interval.map_or(
        summary.predicted.service_level.expect("predicted SL"),
        |(mean, _)| mean,
    );
    assert!(
        (measured - predicted).abs() <= SERVICE_LEVEL_TOLERANCE,
        "measured SL {measured:.3} vs predicted {predicted:.3} (tolerance {SERVICE_LEVEL_TOLERANCE})"
    );
}

/// The Raft leader's site index (node ids are index + 1), as `base` sees it.
fn leader_index(base: &str, supervisor: &str) -> usize {
    let status: serde_json::Value = ureq::get(&format!("{base}/api/v1/cluster/status"))
        .set("Authorization", &format!("Bearer {supervisor}"))
        .timeout(Duration::from_secs(5))
        .call()
        .expect("cluster status")
        .into_json()
        .expect("cluster status JSON");
    let leader = status["leader"].as_u64().expect("a leader");
    usize::try_from(leader - 1).expect("leader index")
}

fn wait_ready(base: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = ureq::get(&format!("{base}/readyz"))
            .timeout(Duration::from_secs(2))
            .call()
            .map(|response| response.status())
            .unwrap_or_else(|error| match error {
                ureq::Error::Status(status, _) => status,
                ureq::Error::Transport(_) => 0,
            });
        if status == 200 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{base} never became ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Copies a failing run's history next to the target dir for inspection.
fn keep_on_failure(history: &Path, passed: bool) {
    if passed {
        return;
    }
    let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("live_drill_history");
    let _ = std::fs::remove_dir_all(&keep);
    let _ = std::process::Command::new("cp")
        .arg("-r")
        .arg(history)
        .arg(&keep)
        .status();
    eprintln!("history kept in {}", keep.display());
}
