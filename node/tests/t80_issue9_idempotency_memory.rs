//! Memory of the idempotency table at its cap (issue 9, item 4): the resident set growth of
//! this test process and the snapshot growth while the replicated state remembers
//! `IDEMPOTENCY_KEYS_MAX` keys (UUID-sized keys of a gateway principal; each request a callback
//! outcome that is refused, so the keys are all the state holds). Its own test binary, so
//! nothing else allocates meanwhile. Run with `--nocapture` to see the figures:
//!
//! `cargo test -p callgrid-node --test t80_issue9_idempotency_memory -- --nocapture`
#![allow(clippy::unwrap_used)]

use callgrid_node::state::machine::{IDEMPOTENCY_KEY_TTL_MS, IDEMPOTENCY_KEYS_MAX};
use callgrid_node::state::model::{Actor, CallbackOutcome, Role};
use callgrid_node::state::{Command, Envelope, SharedState, encode_envelope};

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn idempotency_table_memory_at_its_cap_is_measured_and_bounded() {
    let actor = Actor {
        name: "pbx-gateway-moscow".to_string(),
        role: Role::Gateway,
    };
    let shared = SharedState::new();
    let empty_snapshot = shared.snapshot().unwrap().len() as u64;
    let before = resident_bytes();
    let keys = IDEMPOTENCY_KEYS_MAX as u64 + 1_000;
    let start_ms = 1_700_000_000_000;
    for number in 0..keys {
        let envelope = Envelope {
            at_ms: start_ms + number,
            actor: actor.clone(),
            site: "msk".to_string(),
            command: Command::Idempotent {
                key: format!("6f9619ff-8b86-d011-b42d-{number:012x}"),
                command: Box::new(Command::RecordCallbackAttempt {
                    callback: 1_000_000 + number,
                    outcome: CallbackOutcome::NoAnswer,
                }),
            },
        };
        shared.apply_entry(number + 1, &encode_envelope(&envelope).unwrap());
    }
    let after = resident_bytes();
    let counts = shared.read(|state| state.counts());
    assert_eq!(counts.idempotency_keys, IDEMPOTENCY_KEYS_MAX, "capped");
    assert_eq!(counts.idempotency_keys_evicted, 1_000);
    let kept = IDEMPOTENCY_KEYS_MAX as u64;
    let snapshot_bytes = shared.snapshot().unwrap().len() as u64 - empty_snapshot;
    println!(
        "snapshot: {:.1} MiB for {kept} keys ({} bytes per key)",
        snapshot_bytes as f64 / (1024.0 * 1024.0),
        snapshot_bytes / kept
    );
    assert!(
        snapshot_bytes / kept < 512,
        "{} bytes per key",
        snapshot_bytes / kept
    );

    // A day of log time later every key is forgotten (amortised over the next commands).
    let later = start_ms + keys + IDEMPOTENCY_KEY_TTL_MS;
    let mut index = keys;
    while shared.read(|state| state.counts().idempotency_keys) > 0 {
        index += 1;
        assert!(index < keys * 2, "the expiry sweep makes progress");
        let envelope = Envelope {
            at_ms: later,
            actor: actor.clone(),
            site: "msk".to_string(),
            command: Command::CallerCalledIn {
                caller: "+79160000000".to_string(),
            },
        };
        shared.apply_entry(index, &encode_envelope(&envelope).unwrap());
    }

    let (Some(before), Some(after)) = (before, after) else {
        println!("resident set size not available on this system");
        return;
    };
    let grown = after.saturating_sub(before);
    println!(
        "state memory: {:.1} MiB resident for {kept} keys ({} bytes per key)",
        grown as f64 / (1024.0 * 1024.0),
        grown / kept
    );
    assert!(grown / kept < 2_048, "{} bytes per key", grown / kept);
}
