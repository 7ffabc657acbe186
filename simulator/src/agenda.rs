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
    /// Key of the first entry of each lane, then of the heap's top (`u128::MAX`: empty), so
    /// choosing the next source reads one small array.
    heads: [u128; LANES + 1],
    sequence: u64,
    len: usize,
}

impl<T: Copy> Default for Agenda<T> {
    fn default() -> Self {
        Agenda {
            lanes: std::array::from_fn(|_| VecDeque::new()),
            heap: BinaryHeap::new(),
            heads: [u128::MAX; LANES + 1],
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
        self.insert(
            Entry {
                key: (u128::from(at) << 64) | u128::from(self.sequence),
                item,
            },
            lane,
        );
    }

    #[inline]
    fn insert(&mut self, entry: Entry<T>, lane: Option<usize>) {
        self.len += 1;
        if let Some(index) = lane.filter(|lane| *lane < LANES) {
            let lane = &mut self.lanes[index];
            match lane.back() {
                None => {
                    self.heads[index] = entry.key;
                    lane.push_back(entry);
                    return;
                }
                Some(last) if last.key <= entry.key => {
                    lane.push_back(entry);
                    return;
                }
                Some(_) => {}
            }
        }
        if entry.key < self.heads[LANES] {
            self.heads[LANES] = entry.key;
        }
        self.heap.push(HeapEntry(entry));
    }

    /// Schedules `item` at `at` ahead of every item pushed with [`Agenda::push`] for the same
    /// time (its key's sequence is 0). For items that must come first at their time whenever
    /// they are scheduled (interval boundaries, scheduled one at a time instead of all up
    /// front, so the agenda does not grow with the number of days). At most one such item per
    /// time, or their order among themselves is unspecified.
    #[inline]
    pub fn push_first(&mut self, at: u64, lane: Option<usize>, item: T) {
        self.insert(
            Entry {
                key: u128::from(at) << 64,
                item,
            },
            lane,
        );
    }

    /// Takes the earliest item (earliest scheduled among equal times).
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, T)> {
        if self.len == 0 {
            return None;
        }
        let mut source = LANES;
        let mut best = self.heads[LANES];
        for (index, head) in self.heads[..LANES].iter().enumerate() {
            if *head < best {
                best = *head;
                source = index;
            }
        }
        let entry = if source < LANES {
            let lane = &mut self.lanes[source];
            let entry = lane.pop_front()?;
            self.heads[source] = lane.front().map_or(u128::MAX, |next| next.key);
            entry
        } else {
            let entry = self.heap.pop()?.0;
            self.heads[LANES] = self.heap.peek().map_or(u128::MAX, |next| next.0.key);
            entry
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

    #[test]
    fn push_first_comes_before_earlier_pushes_at_the_same_time() {
        let mut agenda = Agenda::default();
        agenda.push(10, None, 'a');
        agenda.push(10, Some(1), 'b');
        agenda.push(5, None, 'c');
        agenda.push_first(10, Some(0), 'B');
        agenda.push_first(20, Some(0), 'C');
        let order: Vec<char> = std::iter::from_fn(|| agenda.pop().map(|(_, item)| item)).collect();
        assert_eq!(order, vec!['c', 'B', 'a', 'b', 'C']);
    }

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
