//! What the players share: the plan, the tokens, the API, the clock, and each contact's fate
//! and whereabouts (the caller's side of the world: waiting, answered, gone).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::client::Api;
use super::clock::DrillClock;
use super::configs::Tokens;
use super::plan::Plan;

/// A contact's fate as the caller lives it.
pub mod fate {
    /// Not presented yet, or waiting.
    pub const WAITING: u8 = 0;
    /// An agent picked up.
    pub const ANSWERED: u8 = 1;
    /// The caller hung up while waiting.
    pub const ABANDONED: u8 = 2;
    /// The bot answered.
    pub const SELF_SERVED: u8 = 3;
    /// The node refused it (blocked or an error).
    pub const REFUSED: u8 = 4;
}

/// Per topic, what the node and the players need to know.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    /// The node's topic name.
    pub node_topic: String,
    /// Routing priority.
    pub priority: u8,
    /// The agent takes an order / a pre-order / files a complaint for it.
    pub record: Option<RecordKind>,
}

/// A record an agent creates during a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// `POST /orders`.
    Order,
    /// `POST /pre-orders`.
    PreOrder,
    /// `POST /complaints`.
    Complaint,
}

/// The shared world.
#[derive(Debug)]
pub struct World {
    /// The plan.
    pub plan: Plan,
    /// Per scenario topic.
    pub topics: Vec<TopicInfo>,
    /// Node skill a line-1 agent transfers to (`<to>_voice`), if the scenario transfers.
    pub transfer_skill: Option<String>,
    /// Tokens.
    pub tokens: Tokens,
    /// The API.
    pub api: Api,
    /// The clock.
    pub clock: DrillClock,
    /// How long an offer rings before it times out (the node's routing config), ms.
    pub offer_timeout_ms: u64,
    /// Per plan index: its [`fate`].
    pub fates: Vec<AtomicU8>,
    /// Per plan index: (site, node contact id) where it is now.
    pub whereabouts: Mutex<HashMap<usize, (usize, u64)>>,
    /// (site, node contact id) → plan index, for stream messages.
    pub by_contact: Mutex<HashMap<(usize, u64), usize>>,
    /// Set when the run stops.
    pub stop: AtomicBool,
    /// Threads retrying creates in the background (joined after the players).
    pub retries: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl World {
    /// Moves contact `index` from `from` to `to` fate; false if it was not in `from`.
    pub fn settle(&self, index: usize, from: u8, to: u8) -> bool {
        self.fates.get(index).is_some_and(|fate| {
            fate.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    /// Contact `index`'s fate.
    pub fn fate(&self, index: usize) -> u8 {
        self.fates
            .get(index)
            .map_or(fate::REFUSED, |fate| fate.load(Ordering::Acquire))
    }

    /// Records that contact `index` is `contact` at `site` now.
    pub fn place(&self, index: usize, site: usize, contact: u64) {
        if let Ok(mut whereabouts) = self.whereabouts.lock() {
            whereabouts.insert(index, (site, contact));
        }
        if let Ok(mut by_contact) = self.by_contact.lock() {
            by_contact.insert((site, contact), index);
        }
    }

    /// Where contact `index` is now.
    pub fn whereabouts(&self, index: usize) -> Option<(usize, u64)> {
        self.whereabouts.lock().ok()?.get(&index).copied()
    }

    /// The plan index of `contact` at `site`.
    pub fn index_of(&self, site: usize, contact: u64) -> Option<usize> {
        self.by_contact.lock().ok()?.get(&(site, contact)).copied()
    }

    /// Whether the run is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}
