//! Snapshot format 3 is still read: `snapshot-v3.bin` is the snapshot the tree before format 4
//! (commit c77f5d0) wrote after applying [`v3_log`] — written there by this file's
//! `write_format_3_fixture` (`CALLGRID_WRITE_SNAPSHOT_V3=path cargo test -p callgrid-node --lib
//! write_format_3_fixture -- --ignored`), so the bytes are the old binary's, not a re-creation.

use crate::state::command::{Command, Envelope};
use crate::state::ledger::{LedgerChange, LedgerStage, LedgerUpdate};
use crate::state::model::{Actor, Fulfilment, OrderItem, PaymentForm, Role};
use crate::state::site_writes::{OutboxBatch, OutboxEntry, SiteWrite};
use crate::state::{SharedState, encode_envelope};

/// A log touching every part of the format-3 state: orders, a complaint, callbacks, an
/// idempotent create, a drained site, the outbox mark and the contact ledger (contact 10
/// answered by anna and ended, contact 11 waiting).
pub(super) fn v3_log() -> Vec<Envelope> {
    let agent = Actor {
        name: "anna".to_string(),
        role: Role::Agent,
    };
    let envelope = |at_ms, actor: &Actor, command| Envelope {
        at_ms,
        actor: actor.clone(),
        site: "msk".to_string(),
        command,
    };
    let order = Command::CreateOrder {
        caller: "+79161234567".to_string(),
        items: vec![OrderItem {
            sku: "NUR-200".to_string(),
            name: "Nurofen".to_string(),
            quantity: 2,
            unit_price_minor: 25_050,
        }],
        fulfilment: Fulfilment::Pickup {
            pharmacy: "apteka-7".to_string(),
        },
        payment: PaymentForm::Card,
        delivery_note: String::new(),
    };
    let ledger = |sequence, contact, change| OutboxEntry {
        sequence,
        write: SiteWrite::Ledger(LedgerUpdate {
            contact,
            at_ms: 5_000 + sequence,
            change,
        }),
    };
    let opened = |caller: &str| LedgerChange::Opened {
        caller: caller.to_string(),
        skill: "line1".to_string(),
        arrived_at_ms: 5_000,
        moved_from: None,
    };
    let outbox = Command::Outbox(OutboxBatch {
        incarnation: 1,
        entries: vec![
            ledger(1, 10, opened("+79160000010")),
            ledger(
                2,
                10,
                LedgerChange::Stage(LedgerStage::Answered {
                    agent: "anna".to_string(),
                }),
            ),
            ledger(3, 10, LedgerChange::Stage(LedgerStage::Ended)),
            ledger(4, 11, opened("+79160000011")),
        ],
    });
    vec![
        envelope(1_000, &agent, order.clone()),
        envelope(
            2_000,
            &agent,
            Command::Idempotent {
                key: "key-1".to_string(),
                command: Box::new(order),
            },
        ),
        envelope(
            3_000,
            &agent,
            Command::FileComplaint {
                caller: "+79161234567".to_string(),
                order: Some(1),
                text: "late".to_string(),
            },
        ),
        envelope(
            4_000,
            &Actor::system(),
            Command::CreateAbandonedCallback {
                caller: "+79990001122".to_string(),
                skill: "line1".to_string(),
                ordering_time_ms: 3_500,
            },
        ),
        envelope(
            4_500,
            &Actor::system(),
            Command::SetSiteDrained {
                site: "spb".to_string(),
                drained: true,
            },
        ),
        envelope(5_100, &Actor::system(), outbox),
    ]
}

/// The state after [`v3_log`].
pub(super) fn apply_v3_log() -> SharedState {
    let shared = SharedState::new();
    for (index, envelope) in v3_log().iter().enumerate() {
        let bytes = encode_envelope(envelope).unwrap();
        shared.apply_entry(index as u64 + 1, &bytes);
    }
    shared
}

/// Writes the snapshot of [`v3_log`] to `$CALLGRID_WRITE_SNAPSHOT_V3` (run on the tree before
/// format 4 to make the fixture; on this tree it would write format 4).
#[test]
#[ignore = "makes the fixture; see the module docs"]
fn write_format_3_fixture() {
    let Some(path) = std::env::var_os("CALLGRID_WRITE_SNAPSHOT_V3") else {
        return;
    };
    std::fs::write(path, apply_v3_log().snapshot().unwrap()).unwrap();
}
