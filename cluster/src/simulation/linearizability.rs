//! A linearizability checker for the key-value model, in the Wing–Gong / Porcupine style:
//! a depth-first search over linearizations of one key's history, with memoization of
//! (set of linearized operations, register value) and backtracking, partitioned by key (a
//! history of independent registers is linearizable iff each key's is).
//!
//! Operations have an invocation time and a response time; an operation whose outcome is
//! unknown (timed out, its node crashed) has no response: it may take effect at any point
//! after its invocation, or never. Reductions keep the search small without losing anything
//! (values are unique per write): an unknown write whose value nobody read is left out
//! (taking effect could only make later reads wrong); an unknown write whose value was read
//! took effect before the first such read answered, so that answer is its response (an
//! open-ended write would multiply the orders to try by two per write); and a write that
//! certainly failed is left out (a read of its value then has no write to explain it).
//!
//! Values being unique, the reduced history is first decided in O(n log n) by the zones
//! check of Gibbons and Korach (`zones`); the search runs only to confirm a violation (or
//! when the check does not apply). The search alone is exponential in the worst case: with
//! many long, overlapping operations it ran out of its 20-million-step budget on
//! linearizable histories of 20,000-step runs.

use std::collections::{HashMap, HashSet};

mod zones;

/// One operation on a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `put value`.
    Write(u64),
    /// `get` that returned this value (0: never written).
    Read(u64),
}

/// An operation with its time span (`response: None`: outcome unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    /// The operation.
    pub operation: Operation,
    /// When it was invoked.
    pub invoked: u64,
    /// When it was answered, if it was.
    pub response: Option<u64>,
}

/// What the check covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Operations the search placed (reads and writes).
    pub operations: u64,
    /// Reads among them.
    pub reads: u64,
    /// Writes of unknown outcome that had to be placed (their value was read).
    pub unknown_writes: u64,
    /// Search steps taken (0 when the zones check decided alone).
    pub search_steps: u64,
}

/// Why a history is not (known to be) linearizable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// No order of the operations explains what the reads returned.
    #[error("not linearizable: {0}")]
    NotLinearizable(String),
    /// The search ran out of its step budget before deciding.
    #[error("undecided after {0} search steps")]
    Undecided(u64),
    /// The zones check found a violation the search did not confirm: a bug in a checker.
    #[error("the checkers disagree: the zones check says {0}, the search finds an order")]
    Disagreement(String),
}

/// Search steps per key before giving up (a linearizable history needs about one per
/// operation; a violating one is usually refuted in few more).
const STEPS_MAX: u64 = 20_000_000;

#[derive(Debug, Clone, Copy)]
enum Event {
    Call(usize),
    Return(usize),
}

/// Check one register's history; returns what was covered.
pub fn check_register(history: &[Timed]) -> Result<Coverage, CheckError> {
    // value → the earliest answer of a read that returned it.
    let mut first_read: HashMap<u64, u64> = HashMap::new();
    for timed in history {
        if let (Operation::Read(value), Some(response)) = (timed.operation, timed.response) {
            let first = first_read.entry(value).or_insert(response);
            *first = (*first).min(response);
        }
    }
    let mut operations = Vec::with_capacity(history.len());
    let mut unknown_writes = 0;
    for timed in history {
        let mut timed = *timed;
        match (timed.operation, timed.response) {
            (Operation::Read(_), None) => continue,
            (Operation::Write(value), None) => {
                let Some(&read_at) = first_read.get(&value) else {
                    continue;
                };
                if read_at <= timed.invoked {
                    return Err(CheckError::NotLinearizable(format!(
                        "value {value} was read (answered at {read_at}) before its write was \
                         invoked (at {})",
                        timed.invoked
                    )));
                }
                timed.response = Some(read_at);
                unknown_writes += 1;
            }
            _ => {}
        }
        operations.push(timed);
    }
    let mut coverage = Coverage {
        operations: operations.len() as u64,
        reads: operations
            .iter()
            .filter(|timed| matches!(timed.operation, Operation::Read(_)))
            .count() as u64,
        unknown_writes,
        search_steps: 0,
    };
    for timed in &operations {
        debug_assert!(
            timed
                .response
                .is_some_and(|response| response > timed.invoked)
        );
    }
    // The zones check decides in one pass; a violation it reports is confirmed by the
    // search, which names the first operation no order can place.
    match zones::check(&operations) {
        Some(Ok(())) => Ok(coverage),
        Some(Err(reason)) => match search(&operations) {
            Err(CheckError::NotLinearizable(detail)) => {
                Err(CheckError::NotLinearizable(format!("{reason}; {detail}")))
            }
            Err(CheckError::Undecided(_)) => Err(CheckError::NotLinearizable(reason)),
            Err(other) => Err(other),
            Ok(_) => Err(CheckError::Disagreement(reason)),
        },
        None => {
            coverage.search_steps = search(&operations)?;
            Ok(coverage)
        }
    }
}

/// The events in time order, as a doubly linked list over `0..events.len()` (plus a head
/// sentinel at `events.len()`).
struct List {
    events: Vec<Event>,
    next: Vec<usize>,
    previous: Vec<usize>,
    /// Index of each operation's return event (`usize::MAX`: none).
    return_of: Vec<usize>,
}

impl List {
    fn new(operations: &[Timed]) -> Self {
        let mut timed: Vec<(u64, u8, Event)> = Vec::with_capacity(2 * operations.len());
        for (id, operation) in operations.iter().enumerate() {
            // Calls before returns at equal times would make them concurrent; times are
            // distinct by construction (calls even, returns odd) so the order is only a
            // tie-breaker.
            timed.push((operation.invoked, 0, Event::Call(id)));
            if let Some(response) = operation.response {
                timed.push((response, 1, Event::Return(id)));
            }
        }
        timed.sort_by_key(|(time, kind, _)| (*time, *kind));
        let events: Vec<Event> = timed.into_iter().map(|(_, _, event)| event).collect();
        let count = events.len();
        let head = count;
        let mut return_of = vec![usize::MAX; operations.len()];
        for (position, event) in events.iter().enumerate() {
            if let Event::Return(id) = event {
                return_of[*id] = position;
            }
        }
        // Node `head` is the sentinel; `count + 1` stands for "none".
        let next = (0..=count)
            .map(|node| if node == head { 0 } else { node + 1 })
            .map(|next| if next >= count { NONE } else { next })
            .collect();
        let previous = (0..=count)
            .map(|node| {
                if node == 0 {
                    head
                } else {
                    node.wrapping_sub(1)
                }
            })
            .collect();
        Self {
            events,
            next,
            previous,
            return_of,
        }
    }

    fn unlink(&mut self, node: usize) {
        let (previous, next) = (self.previous[node], self.next[node]);
        self.next[previous] = next;
        if next != NONE {
            self.previous[next] = previous;
        }
    }

    fn relink(&mut self, node: usize) {
        let (previous, next) = (self.previous[node], self.next[node]);
        self.next[previous] = node;
        if next != NONE {
            self.previous[next] = node;
        }
    }
}

const NONE: usize = usize::MAX;

fn search(operations: &[Timed]) -> Result<u64, CheckError> {
    let mut list = List::new(operations);
    let head = list.events.len();
    let mut returns_left = list.return_of.iter().filter(|r| **r != NONE).count();
    let words = operations.len().div_ceil(64);
    let mut linearized = vec![0_u64; words];
    let mut cache: HashSet<(Vec<u64>, u64)> = HashSet::new();
    // (call node, state before it).
    let mut stack: Vec<(usize, u64)> = Vec::new();
    let mut state = 0_u64;
    let mut entry = list.next[head];
    let mut steps = 0_u64;
    while returns_left > 0 {
        steps += 1;
        if steps > STEPS_MAX {
            return Err(CheckError::Undecided(steps));
        }
        if entry == NONE {
            // Only unknown calls are left to try and none fits: backtrack.
            let Some((call, previous_state)) = stack.pop() else {
                return Err(not_linearizable(operations, &list, head));
            };
            entry = undo(&mut list, &mut linearized, &mut returns_left, call);
            state = previous_state;
            continue;
        }
        match list.events[entry] {
            Event::Call(id) => {
                let next_state = match operations[id].operation {
                    Operation::Write(value) => Some(value),
                    Operation::Read(value) => (value == state).then_some(state),
                };
                let mut advanced = false;
                if let Some(next_state) = next_state {
                    linearized[id / 64] |= 1 << (id % 64);
                    if cache.insert((linearized.clone(), next_state)) {
                        stack.push((entry, state));
                        state = next_state;
                        list.unlink(entry);
                        let ret = list.return_of[id];
                        if ret != NONE {
                            list.unlink(ret);
                            returns_left -= 1;
                        }
                        entry = list.next[head];
                        advanced = true;
                    } else {
                        linearized[id / 64] &= !(1 << (id % 64));
                    }
                }
                if !advanced {
                    entry = list.next[entry];
                }
            }
            Event::Return(_) => {
                // An operation returned before any order placed it: undo the last choice.
                let Some((call, previous_state)) = stack.pop() else {
                    return Err(not_linearizable(operations, &list, head));
                };
                entry = undo(&mut list, &mut linearized, &mut returns_left, call);
                state = previous_state;
            }
        }
    }
    Ok(steps)
}

/// Put back the call at `call` (and its return); returns the node to try next.
fn undo(list: &mut List, linearized: &mut [u64], returns_left: &mut usize, call: usize) -> usize {
    let Event::Call(id) = list.events[call] else {
        unreachable!("only calls are pushed");
    };
    let ret = list.return_of[id];
    if ret != NONE {
        list.relink(ret);
        *returns_left += 1;
    }
    list.relink(call);
    linearized[id / 64] &= !(1 << (id % 64));
    list.next[call]
}

fn not_linearizable(operations: &[Timed], list: &List, head: usize) -> CheckError {
    // The first operation that could not be placed, for the report.
    let first = list.next[head];
    let culprit = (first != NONE)
        .then(|| match list.events[first] {
            Event::Call(id) | Event::Return(id) => operations[id],
        })
        .map_or_else(String::new, |timed| format!(" first unplaced: {timed:?}"));
    CheckError::NotLinearizable(format!(
        "{} operations, no valid order;{culprit}",
        operations.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(operation: Operation, invoked: u64, response: Option<u64>) -> Timed {
        Timed {
            operation,
            invoked,
            response,
        }
    }

    #[test]
    fn sequential_and_concurrent_histories_pass() {
        let history = [
            op(Operation::Write(1), 0, Some(3)),
            op(Operation::Read(0), 2, Some(5)),
            op(Operation::Read(1), 4, Some(7)),
            op(Operation::Write(2), 6, Some(11)),
            op(Operation::Read(2), 8, Some(9)),
            op(Operation::Read(1), 8, Some(9)),
        ];
        // Write(2) is concurrent with both reads; one reads 2 and the other 1 — fine only
        // if Read(1) is placed first.
        let coverage = check_register(&history).expect("linearizable");
        assert_eq!(coverage.operations, 6);
        assert_eq!(coverage.reads, 4);
    }

    #[test]
    fn a_stale_read_is_caught() {
        let history = [
            op(Operation::Write(1), 0, Some(1)),
            op(Operation::Write(2), 2, Some(3)),
            op(Operation::Read(1), 4, Some(5)),
        ];
        assert!(matches!(
            check_register(&history),
            Err(CheckError::NotLinearizable(_))
        ));
    }

    #[test]
    fn unknown_writes_may_or_may_not_happen() {
        let history = [
            op(Operation::Write(1), 0, Some(1)),
            op(Operation::Write(2), 2, None),
            op(Operation::Read(1), 4, Some(5)),
            op(Operation::Read(2), 6, Some(7)),
            op(Operation::Write(3), 8, None),
            op(Operation::Read(2), 10, Some(11)),
        ];
        let coverage = check_register(&history).expect("linearizable");
        assert_eq!(
            coverage.unknown_writes, 1,
            "the unread unknown write is left out"
        );
        // A value that goes back in time is not.
        let history = [
            op(Operation::Write(1), 0, Some(1)),
            op(Operation::Write(2), 2, None),
            op(Operation::Read(2), 4, Some(5)),
            op(Operation::Read(1), 6, Some(7)),
        ];
        assert!(check_register(&history).is_err());
    }

    /// Histories of up to 8 operations, linearizable by construction (each operation's
    /// interval around a point of a sequential run) unless a read is given a wrong value.
    fn histories() -> impl proptest::strategy::Strategy<Value = Vec<Timed>> {
        use proptest::prelude::*;
        let operation = (
            any::<bool>(),
            0_u64..30,
            0_u64..15,
            0_u64..15,
            0_u8..6,
            0_u64..6,
        );
        proptest::collection::vec(operation, 1..9).prop_map(|mut specs| {
            specs.sort_by_key(|spec| spec.1);
            let (mut state, mut next_value) = (0, 0);
            let mut history = Vec::new();
            for (write, point, before, after, corrupt, wrong) in specs {
                let operation = if write {
                    next_value += 1;
                    state = next_value;
                    Operation::Write(next_value)
                } else if corrupt == 0 {
                    Operation::Read(wrong)
                } else {
                    Operation::Read(state)
                };
                // Invocations even, responses odd, as in the simulation.
                let centre = 20 + 2 * point;
                history.push(op(
                    operation,
                    2 * (centre - before),
                    Some(2 * (centre + after) + 1),
                ));
            }
            history
        })
    }

    #[test]
    fn the_zones_check_and_the_search_agree_on_both_verdicts() {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = histories();
        let (mut linearizable, mut violations) = (0, 0);
        for _ in 0..20_000 {
            let history = strategy
                .new_tree(&mut runner)
                .expect("the history strategy always yields a tree")
                .current();
            let zones = zones::check(&history).expect("applies");
            let search = search(&history);
            assert_eq!(
                zones.is_ok(),
                search.is_ok(),
                "{history:?}: {zones:?} / {search:?}"
            );
            if zones.is_ok() {
                linearizable += 1;
            } else {
                violations += 1;
            }
        }
        // Both verdicts are exercised.
        assert!(
            linearizable > 2_000 && violations > 2_000,
            "{linearizable} / {violations}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4_000))]
        #[test]
        fn the_zones_check_and_the_search_agree(history in histories()) {
            let zones = zones::check(&history).expect("applies: unique values, all answered");
            let search = search(&history);
            proptest::prop_assert_eq!(
                zones.is_ok(),
                search.is_ok(),
                "zones {:?}, search {:?}",
                zones,
                search
            );
        }
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught() {
        let history = [
            op(Operation::Write(1), 0, Some(1)),
            op(Operation::Read(9), 2, Some(3)),
        ];
        assert!(check_register(&history).is_err());
    }
}
