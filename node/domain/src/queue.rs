//! The two ordered structures routing needs per skill: the contact queue (priority, then FIFO
//! by ordering time, then arrival sequence) and the idle-agent set (least loaded, then longest
//! idle, then lowest id).
//!
//! Both are priority sets with lazy deletion: an entry carries the generation of the slot it
//! points to, and an entry whose generation no longer matches is skipped when it surfaces.
//! In-order pushes (the common case) go to a sorted run, the rest into a binary heap, so
//! insert and removal are O(1) mostly and O(log n) at worst, with no allocation once grown,
//! and abandonment is O(1). They are compacted when stale entries outnumber live ones.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// A waiting contact's place. Heap order: the best (next to serve) is the greatest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueEntry {
    pub(crate) priority: u8,
    pub(crate) ordering_time_ms: u64,
    pub(crate) sequence: u64,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl QueueEntry {
    /// The routing order key: higher priority, then older ordering time, then lower sequence.
    /// Greater means served first.
    #[inline]
    pub(crate) fn serves_before(&self, other: &QueueEntry) -> bool {
        self.cmp(other) == Ordering::Greater
    }
}

impl Ord for QueueEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.ordering_time_ms.cmp(&self.ordering_time_ms))
            .then_with(|| other.sequence.cmp(&self.sequence))
            .then_with(|| other.slot.cmp(&self.slot))
            .then_with(|| other.generation.cmp(&self.generation))
    }
}

impl PartialOrd for QueueEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An available agent's place in a skill's idle set. Greatest = chosen first: least loaded,
/// then longest idle, then lowest agent id (then lowest generation, which only ever ties an
/// agent with itself).
///
/// The order is packed into two words compared as one 128-bit number, smaller first:
/// `order_high` = load (8 bits) · idle since (56 bits, saturating — 2.2 million years of
/// milliseconds), `order_low` = agent id (32 bits) · generation (32 bits). Heap operations on
/// the idle sets run for every offer, so one comparison instead of four matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdleEntry {
    order_high: u64,
    order_low: u64,
    pub(crate) index: u32,
}

/// Largest idle-since instant the packed order distinguishes.
const IDLE_SINCE_MS_MAX: u64 = (1 << 56) - 1;

impl IdleEntry {
    #[inline]
    pub(crate) fn new(
        load: u8,
        idle_since_ms: u64,
        agent_id: u32,
        index: u32,
        generation: u32,
    ) -> IdleEntry {
        IdleEntry {
            order_high: (u64::from(load) << 56) | idle_since_ms.min(IDLE_SINCE_MS_MAX),
            order_low: (u64::from(agent_id) << 32) | u64::from(generation),
            index,
        }
    }

    /// The agent's generation when the entry was made (stale when it changed since).
    #[inline]
    pub(crate) fn generation(&self) -> u32 {
        self.order_low as u32
    }

    /// The agent's id.
    #[cfg(test)]
    pub(crate) fn agent_id(&self) -> u32 {
        (self.order_low >> 32) as u32
    }
}

impl Ord for IdleEntry {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        (other.order_high, other.order_low).cmp(&(self.order_high, self.order_low))
    }
}

impl PartialOrd for IdleEntry {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Slack before a heap is compacted: stale entries may reach twice the live ones plus this.
const COMPACTION_SLACK: usize = 16;

/// A max-priority set with lazy deletion: `is_live` decides whether an entry still counts.
///
/// Most pushes come in order — a contact joining the back of its queue is the worst of its
/// priority, an agent freed now is the most recently idle — so an entry no greater than the
/// last one of the *run* (a deque kept in non-increasing order) is appended there in O(1);
/// only out-of-order pushes (a higher priority, a returned offer, an agent back with an old
/// idle time) go into the binary heap. The best entry is the greater of the run's front and
/// the heap's top, so the order is exactly that of one heap, at a fraction of the cost.
#[derive(Debug)]
pub(crate) struct LazyHeap<T: Ord + Copy> {
    run: VecDeque<T>,
    heap: BinaryHeap<T>,
}

impl<T: Ord + Copy> Default for LazyHeap<T> {
    fn default() -> Self {
        LazyHeap {
            run: VecDeque::new(),
            heap: BinaryHeap::new(),
        }
    }
}

impl<T: Ord + Copy> LazyHeap<T> {
    #[inline]
    pub(crate) fn push(&mut self, entry: T) {
        if self.run.back().is_none_or(|last| entry <= *last) {
            self.run.push_back(entry);
        } else {
            self.heap.push(entry);
        }
    }

    /// Whether the best entry is the run's front (else the heap's top); `None` when empty.
    #[inline]
    fn best_in_run(&self) -> Option<bool> {
        match (self.run.front(), self.heap.peek()) {
            (Some(front), Some(top)) => Some(front >= top),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }

    /// The best live entry, discarding stale ones on the way.
    #[inline]
    pub(crate) fn peek_live(&mut self, is_live: impl Fn(&T) -> bool) -> Option<T> {
        loop {
            let in_run = self.best_in_run()?;
            let best = if in_run {
                self.run.front()
            } else {
                self.heap.peek()
            };
            let best = *best?;
            if is_live(&best) {
                return Some(best);
            }
            self.remove_best(in_run);
        }
    }

    #[inline]
    fn remove_best(&mut self, in_run: bool) {
        if in_run {
            self.run.pop_front();
        } else {
            self.heap.pop();
        }
    }

    /// Removes the best entry (after `peek_live` returned it).
    #[inline]
    pub(crate) fn pop(&mut self) {
        if let Some(in_run) = self.best_in_run() {
            self.remove_best(in_run);
        }
    }

    /// Drops stale entries when they dominate, so memory stays proportional to live entries.
    #[inline]
    pub(crate) fn compact_if_needed(&mut self, live_count: usize, is_live: impl Fn(&T) -> bool) {
        if self.run.len() + self.heap.len() > 2 * live_count + COMPACTION_SLACK {
            self.run.retain(|entry| is_live(entry));
            self.heap.retain(|entry| is_live(entry));
        }
    }

    /// Every entry, live or stale, in no particular order (for counting positions).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.run.iter().chain(self.heap.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(priority: u8, ordering_time_ms: u64, sequence: u64) -> QueueEntry {
        QueueEntry {
            priority,
            ordering_time_ms,
            sequence,
            slot: sequence as u32,
            generation: 0,
        }
    }

    #[test]
    fn queue_order_is_priority_then_ordering_time_then_sequence() {
        let mut heap = LazyHeap::default();
        heap.push(entry(0, 100, 1));
        heap.push(entry(0, 50, 2));
        heap.push(entry(1, 200, 3));
        heap.push(entry(0, 50, 0));
        let mut order = Vec::new();
        while let Some(top) = heap.peek_live(|_| true) {
            order.push(top.sequence);
            heap.pop();
        }
        assert_eq!(order, vec![3, 0, 2, 1]);
    }

    #[test]
    fn idle_order_is_load_then_longest_idle_then_id() {
        let idle = |load, idle_since_ms, agent_id| {
            IdleEntry::new(load, idle_since_ms, agent_id, agent_id, 0)
        };
        let mut heap = LazyHeap::default();
        heap.push(idle(1, 0, 1));
        heap.push(idle(0, 30, 2));
        heap.push(idle(0, 10, 4));
        heap.push(idle(0, 10, 3));
        let mut order = Vec::new();
        while let Some(top) = heap.peek_live(|_| true) {
            order.push(top.agent_id());
            heap.pop();
        }
        assert_eq!(order, vec![3, 4, 2, 1]);
    }

    #[test]
    fn stale_entries_are_skipped_and_compacted() {
        let mut heap = LazyHeap::default();
        for sequence in 0..200 {
            heap.push(entry(0, sequence, sequence));
        }
        let live = |entry: &QueueEntry| entry.sequence % 100 == 7;
        assert_eq!(heap.peek_live(live).map(|e| e.sequence), Some(7));
        heap.compact_if_needed(2, live);
        assert_eq!(heap.iter().count(), 2);
    }
}
