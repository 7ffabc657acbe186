//! Memory of the replicated state per 100,000 orders (issue 8, defect 7): the resident set
//! growth of this test process while the state takes 100,000 phone orders, and the snapshot
//! size. Its own test binary, so nothing else allocates meanwhile. Run with `--nocapture` to
//! see the figures:
//!
//! `cargo test -p callgrid-node --test t70_state_memory -- --nocapture`
#![allow(clippy::unwrap_used)]

use callgrid_node::state::model::{Actor, Fulfilment, OrderItem, PaymentForm, Role};
use callgrid_node::state::{Command, Envelope, ReplicatedState, SharedState, encode_envelope};

const ORDERS: u64 = 100_000;

/// Resident set size of this process in bytes (Linux), `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn order(number: u64) -> Command {
    Command::CreateOrder {
        caller: format!("+7916{:07}", number % 10_000_000),
        items: vec![
            OrderItem {
                sku: format!("SKU{}", number % 5_000),
                name: "Ибупрофен 200 мг №50".to_string(),
                quantity: 2,
                unit_price_minor: 15_050,
            },
            OrderItem {
                sku: format!("SKU{}", (number + 7) % 5_000),
                name: "Нурофен экспресс".to_string(),
                quantity: 1,
                unit_price_minor: 29_900,
            },
        ],
        fulfilment: Fulfilment::Pickup {
            pharmacy: format!("apteka-{}", number % 300),
        },
        payment: PaymentForm::Card,
        delivery_note: String::new(),
    }
}

#[test]
fn state_memory_per_100k_orders_is_measured_and_bounded() {
    let actor = Actor {
        name: "anna".to_string(),
        role: Role::Agent,
    };
    let before = resident_bytes();
    let shared = SharedState::new();
    for number in 0..ORDERS {
        let envelope = Envelope {
            at_ms: 1_700_000_000_000 + number * 1_000,
            actor: actor.clone(),
            site: "msk".to_string(),
            command: order(number),
        };
        shared.apply_entry(number + 1, &encode_envelope(&envelope).unwrap());
    }
    let after = resident_bytes();
    assert_eq!(
        shared.read(|state: &ReplicatedState| state.counts().orders),
        ORDERS as usize
    );
    let snapshot_bytes = shared.snapshot().unwrap().len() as u64;
    println!(
        "snapshot: {:.1} MiB per {ORDERS} orders ({} bytes per order)",
        snapshot_bytes as f64 / (1024.0 * 1024.0),
        snapshot_bytes / ORDERS
    );
    let (Some(before), Some(after)) = (before, after) else {
        println!("resident set size not available on this system");
        return;
    };
    let grown = after.saturating_sub(before);
    println!(
        "state memory: {:.1} MiB resident per {ORDERS} orders ({} bytes per order)",
        grown as f64 / (1024.0 * 1024.0),
        grown / ORDERS
    );
    // Two lines, a pickup point, an audit entry and the indexes: well under 4 KiB an order.
    assert!(grown / ORDERS < 4_096, "{} bytes per order", grown / ORDERS);
    assert!(snapshot_bytes / ORDERS < 1_024);
}
