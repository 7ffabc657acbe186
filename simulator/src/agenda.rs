//! The engine's agenda: pending actions taken out in (time, scheduling order).
//!
//! Most actions are scheduled a *constant* delay after the moment they are scheduled (a ring
//! after the ring time, a wrap-up end after the wrap-up time), or are a single pending item
//! (the next arrival), or are all known up front in time order (interval boundaries). Such a
//! stream is already sorted, so it needs no heap at all: it sits in a FIFO *lane*. Only
//! actions at random delays (talk ends, patience, callbacks, overflow polls) go into a binary
//! heap, which therefore stays small. Taking the next action compares the heads of the
//! lanes and of the heap.
//!
//! Order is exact and machine-independent: every push gets the next value of a 64-bit
//! sequence, the key is (time, sequence), and keys are unique, so equal times come out in
//! scheduling order whichever lane or heap they sit in. A push that would not keep its lane
//! sorted (never the case for the engine's constant delays, but possible in principle) goes
//! to the heap instead, so correctness never depends on the caller's hint.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Number of FIFO lanes.
pub const LANES: usize = 4;

/// A pending item with its key `time << 64 | sequence`.
#[derive(Clone, Copy, Debug)]
struct Entry<T> {
    key: u128,
    item: T,
}

/// Heap order: the smallest key is the greatest entry (std's heap is a max-heap).
#[derive(Clone, Copy, Debug)]
struct HeapEntry<T>(Entry<T>);

impl<T> PartialEq for HeapEntry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl<T> Eq for HeapEntry<T> {}

impl<T> PartialOrd for HeapEntry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for HeapEntry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.key.cmp(&self.0.key)
    }
}

/// Pending items ordered by (time, scheduling order). See the module documentation.
#[derive(Debug)]
pub struct Agenda<T> {
    lanes: [VecDeque<Entry<T>>; LANES],
    heap: BinaryHeap<HeapEntry<T>>,
    sequence: u64,
    len: usize,
}

impl<T: Copy> Default for Agenda<T> {
    fn default() -> Self {
        Agenda {
            lanes: std::array::from_fn(|_| VecDeque::new()),
            heap: BinaryHeap::new(),
            sequence: 0,
            len: 0,
        }
    }
}

impl<T: Copy> Agenda<T> {
    /// Items pending.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `item` at `at`. `lane` (below [`LANES`]) is a hint that items pushed there
    /// come in time order; an out-of-order push goes to the heap instead.
    #[inline]
    pub fn push(&mut self, at: u64, lane: Option<usize>, item: T) {
        self.sequence += 1;
        let entry = Entry {
            key: (u128::from(at) << 64) | u128::from(self.sequence),
            item,
        };
        self.len += 1;
        if let Some(lane) = lane.and_then(|lane| self.lanes.get_mut(lane)) {
            if lane.back().is_none_or(|last| last.key <= entry.key) {
                lane.push_back(entry);
                return;
            }
        }
        self.heap.push(HeapEntry(entry));
    }

    /// Takes the earliest item (earliest scheduled among equal times).
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, T)> {
        let mut best = self.heap.peek().map_or(u128::MAX, |top| top.0.key);
        let mut best_lane = LANES;
        for (index, lane) in self.lanes.iter().enumerate() {
            if let Some(front) = lane.front() {
                if front.key < best {
                    best = front.key;
                    best_lane = index;
                }
            }
        }
        let entry = if best_lane < LANES {
            self.lanes[best_lane].pop_front()?
        } else {
            self.heap.pop()?.0
        };
        self.len -= 1;
        Some(((entry.key >> 64) as u64, entry.item))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The agenda pops in (time, scheduling order), like a stable sort, for any
        /// interleaving of pushes (never before the last popped time, on any lane or none,
        /// in order or not) and pops.
        #[test]
        fn pops_in_time_then_push_order(operations in proptest::collection::vec((0u64..5_000, 0usize..6, any::<bool>()), 1..400)) {
            let mut agenda = Agenda::default();
            let mut reference: Vec<(u64, u64)> = Vec::new(); // (time, push number)
            let mut now = 0;
            for (number, (delay, lane, pop)) in operations.into_iter().enumerate() {
                if pop {
                    let expected = reference
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, entry)| **entry)
                        .map(|(index, entry)| (index, *entry));
                    let popped = agenda.pop();
                    match expected {
                        None => prop_assert!(popped.is_none()),
                        Some((index, (time, pushed))) => {
                            reference.remove(index);
                            let (at, item) = popped.unwrap();
                            prop_assert_eq!(at, time);
                            prop_assert_eq!(item, pushed);
                            now = at;
                        }
                    }
                } else {
                    // Lane 0 gets a constant delay (sorted), the others anything; lane 5
                    // means no lane.
                    let at = if lane == 0 { now + 700 } else { now + delay % 3 * 1_000 + delay / 3 };
                    agenda.push(at, (lane < LANES).then_some(lane), number as u64);
                    reference.push((at, number as u64));
                }
                prop_assert_eq!(agenda.len(), reference.len());
                prop_assert_eq!(agenda.is_empty(), reference.is_empty());
            }
        }
    }
}
