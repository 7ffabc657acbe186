//! Chain-wide counts: every contact once, from the moment it first reached any site.
//!
//! The routing core's metrics are per site: an overflowed contact is offered at its entry site
//! and again at the target, and the target measures its wait from the overflow. Summing sites
//! therefore counts such a contact twice and understates its wait. The chain row (the "all"
//! rows of a report) must instead count arrivals once and measure the wait a customer felt.
//!
//! Outbound callbacks are not in these counts: an agent calls the customer back, nobody waits
//! on the line, so they are agents' work (counted at the sites), not part of the chain's
//! service level. A callback placed after closing therefore does not turn the next interval
//! into a 0 % service level.
//!
//! These counts are kept here, in the simulator, from the same domain events the metrics read
//! (`Arrived`, `Answered`, `Abandoned`, `Blocked`), keyed by the engine's per-contact state: the
//! first arrival opens a contact, the first answer or abandonment closes it (a transferred
//! contact's second leg and an overflow do not count again). Cells are per interval of the
//! contact's arrival, repeating daily over several days like the domain metrics.

use callgrid_domain::Counters;

/// Per-contact chain state the engine keeps in its contact slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainContact {
    /// When the contact first arrived anywhere, ms.
    pub arrived_at_ms: u64,
    /// Whether it has been answered, abandoned or refused already (counted once).
    pub closed: bool,
}

/// Chain-wide counters per interval of arrival.
#[derive(Debug, Clone)]
pub struct ChainMetrics {
    interval_ms: u64,
    /// Cells repeat every this many intervals (one day).
    cycle_intervals: usize,
    threshold_ms: u64,
    short_abandon_ms: u64,
    cells: Vec<Counters>,
}

impl ChainMetrics {
    /// Counters for intervals of `interval_ms`, `cycle_intervals` per day.
    pub fn new(
        interval_ms: u64,
        cycle_intervals: usize,
        threshold_ms: u64,
        short_abandon_ms: u64,
    ) -> ChainMetrics {
        ChainMetrics {
            interval_ms: interval_ms.max(1),
            cycle_intervals: cycle_intervals.max(1),
            threshold_ms,
            short_abandon_ms,
            cells: vec![Counters::default(); cycle_intervals.max(1)],
        }
    }

    fn cell(&mut self, at_ms: u64) -> &mut Counters {
        let index = (at_ms / self.interval_ms) as usize % self.cycle_intervals;
        &mut self.cells[index]
    }

    /// A contact arrived at its entry site (not an overflow-in): it is offered to the chain.
    pub fn arrived(&mut self, now_ms: u64) -> ChainContact {
        self.cell(now_ms).offered += 1;
        ChainContact {
            arrived_at_ms: now_ms,
            closed: false,
        }
    }

    /// An agent answered the contact (anywhere); counts only its first answer.
    pub fn answered(&mut self, contact: &mut ChainContact, now_ms: u64) {
        if contact.closed {
            return;
        }
        contact.closed = true;
        let wait_ms = now_ms.saturating_sub(contact.arrived_at_ms);
        let threshold_ms = self.threshold_ms;
        let cell = self.cell(contact.arrived_at_ms);
        cell.answered += 1;
        cell.answer_wait_ms_sum += wait_ms;
        if wait_ms <= threshold_ms {
            cell.answered_within_target += 1;
        }
    }

    /// The caller hung up before any answer.
    pub fn abandoned(&mut self, contact: &mut ChainContact, now_ms: u64) {
        if contact.closed {
            return;
        }
        contact.closed = true;
        let wait_ms = now_ms.saturating_sub(contact.arrived_at_ms);
        let (threshold_ms, short_ms) = (self.threshold_ms, self.short_abandon_ms);
        let cell = self.cell(contact.arrived_at_ms);
        cell.abandoned += 1;
        cell.abandon_wait_ms_sum += wait_ms;
        if wait_ms < short_ms {
            cell.abandoned_short += 1;
        }
        if wait_ms > threshold_ms {
            cell.abandoned_after_target += 1;
        }
    }

    /// An offered contact got a busy tone at an overflow target: lost to the chain.
    pub fn blocked(&mut self, contact: &mut ChainContact) {
        if contact.closed {
            return;
        }
        contact.closed = true;
        self.cell(contact.arrived_at_ms).blocked += 1;
    }

    /// The chain cell of interval `index` (of the day; cyclic).
    pub fn interval(&self, index: usize) -> Counters {
        self.cells
            .get(index % self.cycle_intervals)
            .copied()
            .unwrap_or_default()
    }

    /// All intervals.
    pub fn totals(&self) -> Counters {
        let mut totals = Counters::default();
        for cell in &self.cells {
            totals.merge(cell);
        }
        totals
    }
}

/// `sites` (a sum over sites) with the contact counts and waits replaced by the chain's: the
/// agent-time, handle-time and queue figures stay summed over sites (they are not per contact
/// and do not double count); offered, answered, abandoned and their waits count each contact
/// once from its first arrival. (`blocked` stays the sites' sum: a busy tone at an overflow
/// target is counted there once.)
pub fn chain_row_counters(sites: &Counters, chain: &Counters) -> Counters {
    Counters {
        offered: chain.offered,
        answered: chain.answered,
        answered_within_target: chain.answered_within_target,
        abandoned: chain.abandoned,
        abandoned_short: chain.abandoned_short,
        abandoned_after_target: chain.abandoned_after_target,
        answer_wait_ms_sum: chain.answer_wait_ms_sum,
        abandon_wait_ms_sum: chain.abandon_wait_ms_sum,
        ..*sites
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_counts_once_with_its_wait_from_first_arrival() {
        let mut chain = ChainMetrics::new(1_800_000, 48, 20_000, 5_000);
        let mut contact = chain.arrived(1_000);
        // Overflowed and answered 30 s after arrival: one answer, outside 20 s.
        chain.answered(&mut contact, 31_000);
        // A transferred second leg is answered again: not counted.
        chain.answered(&mut contact, 90_000);
        let mut quick = chain.arrived(2_000);
        chain.answered(&mut quick, 12_000);
        let mut gone = chain.arrived(1_799_999);
        chain.abandoned(&mut gone, 1_802_000);
        let first = chain.interval(0);
        assert_eq!(first.offered, 3);
        assert_eq!(first.answered, 2);
        assert_eq!(first.answered_within_target, 1);
        assert_eq!(first.abandoned, 1);
        assert_eq!(first.abandoned_short, 1);
        assert_eq!(chain.interval(1), Counters::default());
        assert_eq!(chain.totals().answer_wait_ms_sum, 40_000);
    }

    #[test]
    fn cells_repeat_daily() {
        let day_ms = 48 * 1_800_000;
        let mut chain = ChainMetrics::new(1_800_000, 48, 20_000, 5_000);
        let _ = chain.arrived(10);
        let _ = chain.arrived(day_ms + 10);
        assert_eq!(chain.interval(0).offered, 2);
    }
}
