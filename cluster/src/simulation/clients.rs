//! Clients of the simulated cluster: puts and gets on the key-value model, each recorded
//! with its invocation and response step (or an unknown outcome), checked as answers arrive
//! (a put's answer names the index its value was applied at; a failed put is never applied)
//! and, at the end, for linearizability over the whole history.

use std::collections::{BTreeMap, HashMap};

use crate::core::{Completion, RequestId};
use crate::error::ProposeError;
use crate::transport::NodeId;

use super::linearizability::{self, Coverage, Operation, Timed};
use super::machines::KEYS;

/// How a put ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Done(u64),
    /// Certainly not applied.
    Failed,
    /// May or may not have been applied.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    key: u8,
    operation: Operation,
    invoked: u64,
    outcome: Outcome,
    /// For a read: the highest index of a put acknowledged before it was invoked.
    acknowledged_before: u64,
}

/// The clients' history and the requests in flight.
#[derive(Default)]
pub(super) struct Clients {
    records: Vec<Record>,
    pending: HashMap<(NodeId, RequestId), usize>,
    next_value: u64,
    acknowledged_index_max: u64,
    /// Values of puts that certainly failed.
    failed_values: HashMap<u64, usize>,
    pub(super) puts_succeeded: u64,
    pub(super) puts_failed: u64,
    pub(super) puts_unknown: u64,
    pub(super) reads_succeeded: u64,
    pub(super) reads_failed: u64,
}

/// What the applied history says about a value (for answer checks).
pub(super) trait AppliedHistory {
    /// The value applied at `index`, if any.
    fn value_at(&self, index: u64) -> Option<u64>;
    /// Where `value` was applied, if it was.
    fn index_of(&self, value: u64) -> Option<u64>;
}

/// The node's side at the time it answers a read.
pub(super) struct ReadView {
    pub(super) applied: u64,
    pub(super) values: [u64; KEYS],
    /// Check the read's index against acknowledged puts and the node's applied index.
    pub(super) check_index: bool,
}

impl Clients {
    /// Timestamps: invocations at even, responses at odd instants of a step, so a request
    /// made in a step is concurrent with answers given in the same step.
    fn invoked_at(step: u64) -> u64 {
        2 * step
    }

    fn answered_at(step: u64) -> u64 {
        2 * step + 1
    }

    /// A new put: its value (unique, never 0) and command are recorded as invoked.
    pub(super) fn new_put(&mut self, node: NodeId, request: RequestId, key: u8, step: u64) -> u64 {
        self.next_value += 1;
        let value = self.next_value;
        self.pending.insert((node, request), self.records.len());
        self.records.push(Record {
            key,
            operation: Operation::Write(value),
            invoked: Self::invoked_at(step),
            outcome: Outcome::Pending,
            acknowledged_before: 0,
        });
        value
    }

    /// A new get of `key`.
    pub(super) fn new_read(&mut self, node: NodeId, request: RequestId, key: u8, step: u64) {
        self.pending.insert((node, request), self.records.len());
        self.records.push(Record {
            key,
            operation: Operation::Read(0),
            invoked: Self::invoked_at(step),
            outcome: Outcome::Pending,
            acknowledged_before: self.acknowledged_index_max,
        });
    }

    /// `node` crashed: its callers lost the connection, their puts' outcomes are unknown.
    pub(super) fn node_crashed(&mut self, node: NodeId) {
        let lost: Vec<(NodeId, RequestId)> = self
            .pending
            .keys()
            .filter(|(owner, _)| *owner == node)
            .copied()
            .collect();
        for key in lost {
            if let Some(position) = self.pending.remove(&key) {
                let record = &mut self.records[position];
                match record.operation {
                    Operation::Write(_) => {
                        record.outcome = Outcome::Unknown;
                        self.puts_unknown += 1;
                    }
                    Operation::Read(_) => record.outcome = Outcome::Failed,
                }
            }
        }
    }

    /// Requests not answered yet, as (node, request id), for the violation's message.
    pub(super) fn pending_list(&self) -> Vec<(NodeId, RequestId)> {
        self.pending.keys().copied().collect()
    }

    /// How many requests are not answered yet.
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// An answer from `node`; `Err` names a broken rule.
    pub(super) fn complete(
        &mut self,
        node: NodeId,
        completion: &Completion,
        step: u64,
        history: &dyn AppliedHistory,
        view: &ReadView,
    ) -> Result<(), String> {
        let (id, is_read) = match completion {
            Completion::Propose { id, .. } => (*id, false),
            Completion::Read { id, .. } => (*id, true),
            Completion::Membership { .. } => return Ok(()),
        };
        let Some(position) = self.pending.remove(&(node, id)) else {
            return Err(format!("node {node}: completion for unknown request {id}"));
        };
        let record = &mut self.records[position];
        let answered = Self::answered_at(step);
        match (completion, record.operation) {
            (Completion::Propose { result, .. }, Operation::Write(value)) => match result {
                Ok(response) => {
                    let index = response
                        .as_slice()
                        .try_into()
                        .map(u64::from_le_bytes)
                        .map_err(|_| format!("node {node}: malformed response"))?;
                    if history.value_at(index) != Some(value) {
                        return Err(format!(
                            "node {node}: put {value} answered with index {index}, which holds {:?}",
                            history.value_at(index)
                        ));
                    }
                    record.outcome = Outcome::Done(answered);
                    self.acknowledged_index_max = self.acknowledged_index_max.max(index);
                    self.puts_succeeded += 1;
                }
                Err(
                    ProposeError::Dropped | ProposeError::Rejected(_) | ProposeError::Overloaded,
                ) => {
                    if let Some(index) = history.index_of(value) {
                        return Err(format!(
                            "node {node}: put {value} reported {result:?} but applied at {index}"
                        ));
                    }
                    record.outcome = Outcome::Failed;
                    self.failed_values.insert(value, position);
                    self.puts_failed += 1;
                }
                Err(_) => {
                    record.outcome = Outcome::Unknown;
                    self.puts_unknown += 1;
                }
            },
            (Completion::Read { result, .. }, Operation::Read(_)) => match result {
                Ok(index) => {
                    if view.check_index
                        && (*index < record.acknowledged_before || view.applied < *index)
                    {
                        return Err(format!(
                            "node {node}: read {id} at index {index}, but {} was acknowledged before it and {} is applied",
                            record.acknowledged_before, view.applied
                        ));
                    }
                    record.operation = Operation::Read(view.values[record.key as usize]);
                    record.outcome = Outcome::Done(answered);
                    self.reads_succeeded += 1;
                }
                Err(_) => {
                    record.outcome = Outcome::Failed;
                    self.reads_failed += 1;
                }
            },
            _ => {
                return Err(format!(
                    "node {node}: request {id} answered as a {} but was the other kind",
                    if is_read { "read" } else { "put" }
                ));
            }
        }
        Ok(())
    }

    /// Whether `value` belongs to a put that certainly failed.
    pub(super) fn failed(&self, value: u64) -> bool {
        self.failed_values.contains_key(&value)
    }

    /// Check the whole history for linearizability, key by key.
    pub(super) fn check_linearizable(&self) -> Result<Coverage, String> {
        let mut by_key: BTreeMap<u8, Vec<Timed>> = BTreeMap::new();
        for record in &self.records {
            let response = match record.outcome {
                Outcome::Done(at) => Some(at),
                // Pending at the end is reported elsewhere; treat as unknown here.
                Outcome::Unknown | Outcome::Pending => None,
                Outcome::Failed => continue,
            };
            by_key.entry(record.key).or_default().push(Timed {
                operation: record.operation,
                invoked: record.invoked,
                response,
            });
        }
        let mut total = Coverage::default();
        for (key, history) in by_key {
            let coverage = linearizability::check_register(&history)
                .map_err(|error| format!("key {key}: {error}"))?;
            total.operations += coverage.operations;
            total.reads += coverage.reads;
            total.unknown_writes += coverage.unknown_writes;
            total.search_steps += coverage.search_steps;
        }
        Ok(total)
    }
}
