//! Linearizable reads: requests batched into one ReadIndex round, answered once the state
//! machine applied the index the leader confirmed.

use super::*;

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// A linearizable read: completes with an index once the state machine has applied it.
    /// Reads arriving before the same poll share one ReadIndex round.
    pub fn handle_read(&mut self, id: RequestId) {
        self.new_reads.push(id);
    }

    pub(super) fn handle_read_state(&mut self, read_state: ReadState) {
        let Some(context) = ReadContext::decode(&read_state.request_ctx) else {
            return;
        };
        if context.node != self.config.node_id {
            return;
        }
        if let Some(batch) = self.read_batches.get_mut(&context.sequence) {
            batch.index.get_or_insert(read_state.index);
        }
    }

    pub(super) fn finish_reads(&mut self) {
        let applied = self.applied;
        let done: Vec<u64> = self
            .read_batches
            .iter()
            .filter(|(_, batch)| {
                batch.index.is_some_and(|index| {
                    index <= applied
                        || crate::mutations::enabled(crate::mutations::Mutation::ReadBeforeApply)
                })
            })
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in done {
            if let Some(batch) = self.read_batches.remove(&sequence) {
                let index = batch.index.unwrap_or(applied);
                for id in batch.ids {
                    self.output.completions.push(Completion::Read {
                        id,
                        result: Ok(index),
                    });
                }
            }
        }
    }

    /// raft-rs drops a read index silently (no leader yet, or a leader that has not committed
    /// in its term): ask again every `read_retry_ticks` until the deadline.
    pub(super) fn retry_reads(&mut self, now: u64) {
        let node = self.config.node_id;
        let retry = self.config.read_retry_ticks;
        let mut retries = Vec::new();
        for (sequence, batch) in &mut self.read_batches {
            if batch.index.is_none() && batch.next_attempt <= now {
                batch.next_attempt = now + retry;
                retries.push(*sequence);
            }
        }
        for sequence in retries {
            self.raw.read_index(ReadContext { node, sequence }.encode());
        }
    }
}
