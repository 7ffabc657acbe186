//! Logical time: each tick advances raft-rs's timers and ends every request whose deadline
//! (counted in ticks) has passed.

use super::*;

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// One tick of logical time: raft-rs timers, request deadlines, read retries.
    pub fn handle_tick(&mut self) {
        self.tick += 1;
        self.raw.tick();
        let now = self.tick;

        let (expired, kept) = partition_expired(self.waiting.drain(..), now, |p| p.deadline);
        self.waiting = kept.into();
        for proposal in expired {
            self.complete_proposal(proposal.id, Err(ProposeError::NoLeader));
        }
        // Committed on the leader but this node is too far behind to apply it by the
        // deadline: the caller still learns it committed (not a timeout that invites a
        // retry), without the read-your-writes guarantee.
        for ((index, id), parked) in take_expired(&mut self.parked, now, |p| p.deadline) {
            tracing::debug!(request_id = id, index, "answered before local apply");
            self.complete_proposal(id, Ok(parked.response));
        }
        for (id, _) in take_expired(&mut self.forwarded, now, |p| p.deadline) {
            self.complete_proposal(id, Err(ProposeError::TimedOut));
        }
        for (_, appended) in take_expired(&mut self.appended, now, |a| a.deadline) {
            self.fail_appended(appended.kind, Failure::TimedOut);
        }
        for (_, batch) in take_expired(&mut self.read_batches, now, |b| b.deadline) {
            for id in batch.ids {
                self.output.completions.push(Completion::Read {
                    id,
                    result: Err(ReadError::TimedOut),
                });
            }
        }
        self.retry_reads(now);
        let (expired, kept) = partition_expired(self.transfers.drain(..), now, |t| t.deadline);
        self.transfers = kept;
        for transfer in expired {
            self.output.completions.push(Completion::Membership {
                id: transfer.id,
                result: Err(MembershipError::TimedOut),
            });
        }
        self.expire_snapshot_sends(now);
    }
}

/// Remove and return the entries of `map` whose deadline (in ticks) has come.
pub(super) fn take_expired<K: Ord + Copy, V>(
    map: &mut BTreeMap<K, V>,
    now: u64,
    deadline: impl Fn(&V) -> u64,
) -> Vec<(K, V)> {
    let keys: Vec<K> = map
        .iter()
        .filter(|(_, value)| deadline(value) <= now)
        .map(|(key, _)| *key)
        .collect();
    keys.into_iter()
        .filter_map(|key| map.remove(&key).map(|value| (key, value)))
        .collect()
}

/// Split `items` into those whose deadline has come and the others, keeping order.
fn partition_expired<T>(
    items: impl Iterator<Item = T>,
    now: u64,
    deadline: impl Fn(&T) -> u64,
) -> (Vec<T>, Vec<T>) {
    items.partition(|item| deadline(item) <= now)
}
