//! The outbox against a replicator that can be cut off or answer "outcome unknown", on a real
//! RocksDB in a temp dir.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Outbox, OutboxStore};
use crate::replicate::{
    BoxFuture, LocalReplicator, Proposer, ReplicaHealth, ReplicateError, Replicator,
};
use crate::state::SharedState;
use crate::state::site_writes::SiteWrite;

/// How the test replicator answers.
const UNAVAILABLE: u32 = 0;
const APPLY_THEN_UNKNOWN: u32 = 1;
const NORMAL: u32 = 2;
/// Never answers (the proposal went to a leader that is gone; the cluster's proposal timeout
/// would answer after 5 s).
const SILENT: u32 = 3;

/// Applies through a [`LocalReplicator`], or refuses, or applies and then says the outcome is
/// unknown (a leader change after commit).
struct Flaky {
    inner: LocalReplicator,
    mode: AtomicU32,
    proposals: AtomicU64,
}

impl Replicator for Flaky {
    fn propose(&self, command: Vec<u8>) -> BoxFuture<Result<Vec<u8>, ReplicateError>> {
        self.proposals.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            UNAVAILABLE => Box::pin(async { Err(ReplicateError::Unavailable("cut off".into())) }),
            APPLY_THEN_UNKNOWN => {
                let applied = self.inner.propose(command);
                Box::pin(async move {
                    let _ = applied.await;
                    Err(ReplicateError::Indeterminate("leader changed".into()))
                })
            }
            SILENT => Box::pin(std::future::pending()),
            _ => self.inner.propose(command),
        }
    }

    fn read_barrier(&self) -> BoxFuture<Result<(), ReplicateError>> {
        self.inner.read_barrier()
    }

    fn health(&self) -> ReplicaHealth {
        self.inner.health()
    }

    fn shutdown(&self) {}
}

fn flaky(shared: &SharedState, mode: u32) -> Arc<Flaky> {
    Arc::new(Flaky {
        inner: LocalReplicator::new(shared.clone()),
        mode: AtomicU32::new(mode),
        proposals: AtomicU64::new(0),
    })
}

fn abandoned(caller: u32) -> SiteWrite {
    SiteWrite::AbandonedCallback {
        caller: format!("+7916000{caller:04}"),
        skill: "line1".to_string(),
        ordering_time_ms: 1_000 + u64::from(caller),
    }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn callbacks_open(shared: &SharedState) -> usize {
    shared.read(|state| state.counts().callbacks_open)
}

#[test]
fn writes_are_committed_in_batches_and_the_store_empties() {
    let data = tempfile::tempdir().unwrap();
    let shared = SharedState::new();
    let replicator = flaky(&shared, NORMAL);
    let outbox =
        Outbox::open(data.path(), Proposer::new(replicator.clone(), "msk".into())).unwrap();
    for caller in 0..200 {
        outbox.append(abandoned(caller)).unwrap();
    }
    wait_until("200 commits", || outbox.committed_sequence() == 200);
    assert_eq!(callbacks_open(&shared), 200);
    assert!(
        replicator.proposals.load(Ordering::SeqCst) < 200,
        "batched: {} proposals for 200 writes",
        replicator.proposals.load(Ordering::SeqCst)
    );
    let snapshot = outbox.snapshot();
    assert_eq!((snapshot.depth, snapshot.committed_total), (0, 200));
    assert_eq!(
        shared.read(|state| state.outbox_progress("msk")).sequence,
        200
    );
    outbox.close();
    let store = OutboxStore::open(&data.path().join(super::OUTBOX_DIRECTORY), 1).unwrap();
    assert_eq!(
        store.first_pending().unwrap(),
        None,
        "committed entries deleted"
    );
    assert_eq!(store.last_sequence().unwrap(), 200);
}

#[test]
fn writes_taken_while_cut_off_survive_a_restart_and_commit_once() {
    let data = tempfile::tempdir().unwrap();
    let shared = SharedState::new();
    let replicator = flaky(&shared, UNAVAILABLE);
    let outbox =
        Outbox::open(data.path(), Proposer::new(replicator.clone(), "msk".into())).unwrap();
    for caller in 0..5 {
        outbox.append(abandoned(caller)).unwrap();
    }
    wait_until("5 durable", || outbox.durable_sequence() == 5);
    wait_until("a refused proposal", || {
        replicator.proposals.load(Ordering::SeqCst) > 0
    });
    assert_eq!(outbox.snapshot().depth, 5);
    assert_eq!(
        callbacks_open(&shared),
        0,
        "nothing committed while cut off"
    );
    let incarnation = outbox.incarnation();
    outbox.close();

    // The node restarts; the quorum is back but answers "outcome unknown" after committing.
    let replicator = flaky(&shared, APPLY_THEN_UNKNOWN);
    let outbox =
        Outbox::open(data.path(), Proposer::new(replicator.clone(), "msk".into())).unwrap();
    assert_eq!(outbox.incarnation(), incarnation, "same store");
    assert_eq!(outbox.snapshot().depth, 5, "resumed from disk");
    wait_until("two unknown outcomes", || {
        replicator.proposals.load(Ordering::SeqCst) >= 2
    });
    replicator.mode.store(NORMAL, Ordering::SeqCst);
    wait_until("5 commits", || outbox.committed_sequence() == 5);
    assert_eq!(callbacks_open(&shared), 5, "each write applied once");
    let progress = shared.read(|state| state.outbox_progress("msk"));
    assert_eq!((progress.incarnation, progress.sequence), (incarnation, 5));
    assert!(outbox.snapshot().retries_total >= 2);
    outbox.close();
}

/// A batch proposed to a leader that is gone never hears back (here: never at all); once the
/// cluster commits other writes, the drainer proposes it again after `OUTBOX_PROPOSAL_STALL`
/// instead of waiting out the cluster's 5 s proposal timeout (a site's acknowledged writes stayed unreplicated for
/// seconds after each leader change: a wipe of the site then lost them in the fault drill).
#[test]
fn a_proposal_to_a_gone_leader_is_made_again_once_the_cluster_commits() {
    let data = tempfile::tempdir().unwrap();
    let shared = SharedState::new();
    let replicator = flaky(&shared, SILENT);
    let outbox = Outbox::open_with(
        data.path(),
        Proposer::new(replicator.clone(), "msk".into()),
        Some(shared.clone()),
    )
    .unwrap();
    outbox.append(abandoned(1)).unwrap();
    wait_until("the first proposal", || {
        replicator.proposals.load(Ordering::SeqCst) == 1
    });
    replicator.mode.store(NORMAL, Ordering::SeqCst);
    // Another site's write commits: the cluster has a leader again.
    let other = Proposer::new(Arc::new(LocalReplicator::new(shared.clone())), "spb".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(other.propose(
            crate::state::model::Actor::system(),
            crate::state::Command::CreateAbandonedCallback {
                caller: "+79160009999".to_string(),
                skill: "line1".to_string(),
                ordering_time_ms: 5_000,
            },
        ))
        .unwrap();
    wait_until("the write committed", || outbox.committed_sequence() == 1);
    assert_eq!(callbacks_open(&shared), 2);
    let snapshot = outbox.snapshot();
    assert_eq!(snapshot.stalled_total, 1, "{snapshot:?}");
    outbox.close();
}

#[test]
fn an_invalid_write_is_refused_on_append() {
    let data = tempfile::tempdir().unwrap();
    let shared = SharedState::new();
    let outbox = Outbox::open(
        data.path(),
        Proposer::new(Arc::new(LocalReplicator::new(shared)), "msk".into()),
    )
    .unwrap();
    let error = outbox
        .append(SiteWrite::CallerCalledIn {
            caller: "not a number".into(),
        })
        .unwrap_err();
    assert!(error.to_string().contains("caller"), "{error}");
    assert_eq!(outbox.snapshot().depth, 0);
    outbox.close();
}

#[tokio::test]
async fn durable_resolves_once_the_appended_writes_are_fsynced() {
    let data = tempfile::tempdir().unwrap();
    let shared = SharedState::new();
    let replicator = flaky(&shared, UNAVAILABLE);
    let outbox = Outbox::open(data.path(), Proposer::new(replicator, "msk".into())).unwrap();
    outbox.durable().await.unwrap();
    for caller in 0..3 {
        outbox.append(abandoned(caller)).unwrap();
    }
    outbox.durable().await.unwrap();
    assert_eq!(outbox.durable_sequence(), 3, "on disk though not committed");
    assert_eq!(outbox.committed_sequence(), 0);
    let outbox = tokio::task::spawn_blocking(move || outbox.close());
    outbox.await.unwrap();
}

fn order(caller: u32) -> crate::state::Command {
    use crate::state::model::{Fulfilment, OrderItem, PaymentForm};
    crate::state::Command::CreateOrder {
        caller: format!("+7916100{caller:04}"),
        items: vec![OrderItem {
            sku: "NUR-200".into(),
            name: "Nurofen".into(),
            quantity: 1,
            unit_price_minor: 25_050,
        }],
        fulfilment: Fulfilment::Pickup {
            pharmacy: "apteka-7".into(),
        },
        payment: PaymentForm::Cash,
        delivery_note: String::new(),
    }
}

fn pending_order(caller: u32) -> SiteWrite {
    SiteWrite::IdempotentCreate {
        pending: format!("p-{caller}"),
        actor: crate::state::model::Actor {
            name: "anna".into(),
            role: crate::state::model::Role::Agent,
        },
        key: format!("key-{caller}"),
        command: Box::new(order(caller)),
    }
}

fn orders(shared: &SharedState) -> usize {
    shared.read(|state| state.orders_recent(usize::MAX).len())
}

/// Orders an agent took while the site was cut off wait on disk (pending, also across a
/// restart), then commit once each — through "outcome unknown" answers that did commit — and
/// each pending id resolves to its order.
#[test]
fn pending_creates_survive_a_restart_and_commit_once_each() {
    let data = tempfile::tempdir().unwrap();
    let shared = SharedState::new();
    let replicator = flaky(&shared, UNAVAILABLE);
    let open = |replicator: &Arc<Flaky>| {
        Outbox::open_with(
            data.path(),
            Proposer::new(replicator.clone(), "msk".into()),
            Some(shared.clone()),
        )
        .unwrap()
    };
    let outbox = open(&replicator);
    outbox.append(abandoned(1)).unwrap();
    for caller in 0..3 {
        outbox.append(pending_order(caller)).unwrap();
    }
    wait_until("4 durable", || outbox.durable_sequence() == 4);
    let record = outbox.pending_status("p-1", &shared).unwrap().unwrap();
    assert_eq!(
        (record.principal.as_str(), record.key.as_str()),
        ("anna", "key-1")
    );
    assert_eq!(record.resolved, None, "pending while cut off");
    assert_eq!(
        outbox
            .pending_list(Some("anna"), &shared, 10)
            .unwrap()
            .len(),
        3
    );
    assert!(
        outbox
            .pending_list(Some("boris"), &shared, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        outbox.pending_by_key("anna", "key-2").unwrap().unwrap().id,
        "p-2"
    );
    outbox.close();

    // Restarted; the quorum is back but every answer is "outcome unknown" (after committing).
    let replicator = flaky(&shared, APPLY_THEN_UNKNOWN);
    let outbox = open(&replicator);
    assert_eq!(
        outbox.pending_list(None, &shared, 10).unwrap().len(),
        3,
        "kept on disk"
    );
    wait_until("a few unknown outcomes", || {
        replicator.proposals.load(Ordering::SeqCst) >= 4
    });
    replicator.mode.store(NORMAL, Ordering::SeqCst);
    wait_until("4 commits", || outbox.committed_sequence() == 4);
    assert_eq!(orders(&shared), 3, "one order per pending create");
    assert_eq!(callbacks_open(&shared), 1);
    let mut ids = Vec::new();
    for caller in 0..3 {
        let record = outbox
            .pending_status(&format!("p-{caller}"), &shared)
            .unwrap()
            .unwrap();
        let resolved = record.resolved.expect("resolved once committed");
        let Some(Ok(crate::state::Outcome::OrderCreated(id))) = resolved.response else {
            panic!("resolved to an order: {resolved:?}");
        };
        let caller_of = shared.read(|state| state.order(id).map(|order| order.caller.clone()));
        assert_eq!(caller_of, Some(format!("+7916100{caller:04}")));
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct orders");
    outbox.close();
}

/// The drainer proposes at most one create per batch (each remembers its key at its own log
/// index), however many are pending.
#[test]
fn creates_are_proposed_one_per_batch() {
    let data = tempfile::tempdir().unwrap();
    let shared = SharedState::new();
    let replicator = flaky(&shared, UNAVAILABLE);
    let outbox = Outbox::open_with(
        data.path(),
        Proposer::new(replicator.clone(), "msk".into()),
        Some(shared.clone()),
    )
    .unwrap();
    for caller in 0..5 {
        outbox.append(pending_order(caller)).unwrap();
    }
    wait_until("5 durable", || outbox.durable_sequence() == 5);
    let before = replicator.proposals.load(Ordering::SeqCst);
    replicator.mode.store(NORMAL, Ordering::SeqCst);
    wait_until("5 commits", || outbox.committed_sequence() == 5);
    assert_eq!(orders(&shared), 5);
    assert!(
        replicator.proposals.load(Ordering::SeqCst) - before >= 5,
        "one proposal per create"
    );
    assert_eq!(outbox.snapshot().dropped_total, 0);
    outbox.close();
}
