//! The operator: membership changes and leadership transfers as client operations, sent to
//! the leader and retried until the membership shows them done. The replace-a-disk runbook
//! (remove, add back as a learner, promote once caught up) runs in two orders:
//!
//! - wipe first: the most up-to-date voter loses its disk (and the next most up-to-date
//!   crashes, leaving the stalest nodes to elect a leader — the field scenario of a wiped
//!   voter electing a stale node); the wiped node restarts still configured to bootstrap a
//!   new cluster, must refuse to vote, and is then replaced;
//! - remove first: the removed member keeps running and sending for a while (it must be
//!   ignored), then its disk is wiped and it is added back.
//!
//! And the last resort: when no leader can be elected for [`STUCK_STEPS`] while nothing is
//! injected (a double fault no runbook step can get past), the most up-to-date store is
//! forced into a one-voter cluster, as RUNBOOK §13 does by hand.

use std::collections::{BTreeSet, HashSet};

use crate::core::{MembershipChange, RequestId};
use crate::status::MemberKind;
use crate::transport::NodeId;

use super::{Simulation, Violation, nodes};

/// Steps a removed member keeps running (and sending) before its disk is replaced.
const LINGER_STEPS: u64 = 500;
/// Steps between attempts of one runbook step.
const RETRY_STEPS: u64 = 40;
/// Steps without a leader, every node up and no fault injected, after which the operator
/// concludes that no quorum can form any more (a double fault: a wiped voter and a
/// configuration the survivors cannot complete) and forces the most up-to-date store into a
/// one-voter cluster (RUNBOOK §13).
const STUCK_STEPS: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Remove,
    Linger { until: u64 },
    AddLearner,
    Promote,
}

#[derive(Debug, Clone, Copy)]
struct Replace {
    victim: NodeId,
    stage: Stage,
    wiped: bool,
    next_attempt: u64,
}

#[derive(Default)]
pub(super) struct Operator {
    plan: Option<Replace>,
    /// The runbook's request in flight: (node, request).
    request: Option<(NodeId, RequestId)>,
    /// The first step of the current stretch without a leader while nothing is injected.
    leaderless_since: Option<u64>,
    transfers: HashSet<(NodeId, RequestId)>,
}

impl Operator {
    /// The member the runbook removed and leaves running (and sending) for a while.
    pub(super) fn lingering(&self) -> Option<NodeId> {
        self.plan
            .filter(|plan| matches!(plan.stage, Stage::Linger { .. }))
            .map(|plan| plan.victim)
    }

    pub(super) fn node_crashed(&mut self, node: NodeId) {
        if self.request.is_some_and(|(owner, _)| owner == node) {
            self.request = None;
        }
        self.transfers.retain(|(owner, _)| *owner != node);
    }

    /// A membership completion; true when it was a runbook step that succeeded.
    pub(super) fn complete(
        &mut self,
        node: NodeId,
        request: RequestId,
        ok: bool,
    ) -> Result<bool, String> {
        if self.request == Some((node, request)) {
            self.request = None;
            return Ok(ok);
        }
        if self.transfers.remove(&(node, request)) {
            return Ok(false);
        }
        Err(format!(
            "node {node}: completion for unknown membership request {request}"
        ))
    }
}

impl Simulation {
    /// The leader with the highest term, if a live node leads.
    fn leader_index(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter(|index| {
                self.nodes[*index]
                    .core
                    .as_ref()
                    .is_some_and(|core| core.is_leader())
            })
            .max_by_key(|index| {
                self.nodes[*index]
                    .core
                    .as_ref()
                    .map_or(0, |core| core.term())
            })
    }

    /// Members (voters and learners) as the leader (or the most advanced node) sees them.
    pub(super) fn members(&self) -> BTreeSet<NodeId> {
        self.member_kinds().into_iter().map(|(id, _)| id).collect()
    }

    fn member_kinds(&self) -> Vec<(NodeId, MemberKind)> {
        let index = self.leader_index().or_else(|| {
            (0..self.nodes.len()).max_by_key(|index| {
                self.nodes[*index]
                    .core
                    .as_ref()
                    .map_or(0, |core| core.applied_index())
            })
        });
        index
            .and_then(|index| self.nodes[index].core.as_ref())
            .map(|core| {
                core.status()
                    .members
                    .into_iter()
                    .map(|member| (member.id, member.kind))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Start runbooks and transfers (with faults), advance the runbook in progress.
    pub(super) fn operate(&mut self, faults: bool) -> Result<(), Violation> {
        if faults && self.operator.plan.is_none() && self.rng.chance(self.options.replace) {
            self.start_replace()?;
        }
        if faults && self.rng.chance(self.options.transfer) {
            self.transfer();
        }
        if self.step % 10 == 0 {
            self.advance_replace()?;
        }
        self.force_if_stuck(faults)
    }

    /// The last resort of RUNBOOK §13, when no leader can be elected any more: the most
    /// up-to-date store that did not lose its disk becomes the only voter
    /// ([`crate::storage::recovery::force_new_cluster`]); the runbook in progress then adds
    /// its victim back to the new cluster. The other nodes are no longer members.
    fn force_if_stuck(&mut self, faults: bool) -> Result<(), Violation> {
        let all_up = self.nodes.iter().all(|node| node.core.is_some());
        if faults || !all_up || self.leader_index().is_some() {
            self.operator.leaderless_since = None;
            return Ok(());
        }
        let since = *self.operator.leaderless_since.get_or_insert(self.step);
        if self.step < since + STUCK_STEPS {
            return Ok(());
        }
        self.operator.leaderless_since = None;
        let survivor = (0..self.nodes.len())
            .filter(|index| {
                let node = &self.nodes[*index];
                !node.awaiting_rejoin
                    && node
                        .core
                        .as_ref()
                        .is_some_and(|core| !core.rejoin_required())
            })
            .max_by_key(|index| {
                let storage = &self.nodes[*index].storage;
                let last = raft::Storage::last_index(storage).unwrap_or(0);
                (raft::Storage::term(storage, last).unwrap_or(0), last)
            });
        let Some(survivor) = survivor else {
            return Ok(());
        };
        let id = self.nodes[survivor].id;
        self.crash(survivor);
        let mut storage = self.nodes[survivor].storage.clone();
        crate::storage::recovery::force_new_cluster(&mut storage, id)
            .map_err(|error| self.violation(format!("forcing node {id}: {error}")))?;
        self.report.forced_reconfigurations += 1;
        self.restart(survivor)
    }

    fn transfer(&mut self) {
        let Some(leader) = self.leader_index() else {
            return;
        };
        let voters: Vec<NodeId> = self
            .member_kinds()
            .into_iter()
            .filter(|(id, kind)| *kind == MemberKind::Voter && *id != self.nodes[leader].id)
            .map(|(id, _)| id)
            .collect();
        if voters.is_empty() {
            return;
        }
        let target = voters[self.rng.below(voters.len() as u64) as usize];
        let request = self.new_request();
        let leader_id = self.nodes[leader].id;
        if let Some(core) = self.nodes[leader].core.as_mut() {
            core.handle_transfer_leader(request, target);
            self.operator.transfers.insert((leader_id, request));
            self.report.transfers += 1;
        }
    }

    fn start_replace(&mut self) -> Result<(), Violation> {
        let everyone_votes = self
            .member_kinds()
            .iter()
            .filter(|(_, kind)| *kind == MemberKind::Voter)
            .count()
            == self.nodes.len();
        // Only an established cluster: a voter that never received an entry is, to itself,
        // indistinguishable from a wiped one and refuses to vote (the item-1 rule), so a
        // runbook started before every voter holds some history can leave two voters that
        // never elect anyone (a known limit of the rule, not what this fault is about).
        let established = self.nodes.iter().all(|node| {
            node.core.is_some()
                && raft::Storage::last_index(&node.storage)
                    .is_ok_and(|last| last > crate::core::BOOTSTRAP_INDEX)
        });
        if !everyone_votes || !established {
            return Ok(());
        }
        let wipe_first = self.rng.chance(0.5);
        let victim = if wipe_first {
            // The most up-to-date voters: one is wiped, the next crashes.
            let mut by_log: Vec<usize> = (0..self.nodes.len())
                .filter(|index| self.nodes[*index].core.is_some())
                .collect();
            by_log.sort_by_key(|index| {
                std::cmp::Reverse(
                    raft::Storage::last_index(&self.nodes[*index].storage).unwrap_or(0),
                )
            });
            let Some(&victim) = by_log.first() else {
                return Ok(());
            };
            self.wipe(victim)?;
            if let Some(&second) = by_log.get(1) {
                self.crash(second);
            }
            self.nodes[victim].id
        } else {
            self.nodes[self.rng.below(self.nodes.len() as u64) as usize].id
        };
        self.operator.plan = Some(Replace {
            victim,
            stage: Stage::Remove,
            wiped: wipe_first,
            next_attempt: self.step,
        });
        Ok(())
    }

    fn advance_replace(&mut self) -> Result<(), Violation> {
        let Some(mut plan) = self.operator.plan else {
            return Ok(());
        };
        if self.operator.request.is_some() {
            return Ok(());
        }
        let Some(leader) = self.leader_index() else {
            return Ok(());
        };
        let kinds = self.member_kinds();
        let kind_of = |id: NodeId| kinds.iter().find(|(m, _)| *m == id).map(|(_, kind)| *kind);
        let victim_index = self.nodes.iter().position(|node| node.id == plan.victim);
        let change = match plan.stage {
            Stage::Remove if kind_of(plan.victim).is_none() => {
                plan.stage = if plan.wiped {
                    Stage::AddLearner
                } else {
                    Stage::Linger {
                        until: self.step + LINGER_STEPS,
                    }
                };
                None
            }
            Stage::Remove if self.nodes[leader].id == plan.victim => {
                // Hand leadership away before removing the leader.
                self.transfer();
                None
            }
            Stage::Remove => Some(MembershipChange::Remove { id: plan.victim }),
            Stage::Linger { until } => {
                if self.step >= until
                    && let Some(index) = victim_index
                {
                    self.wipe(index)?;
                    plan.wiped = true;
                    plan.stage = Stage::AddLearner;
                }
                None
            }
            // Only a learner proves the re-addition: a leader that has not applied the
            // removal yet (a stale view) still lists the victim as a voter.
            Stage::AddLearner if kind_of(plan.victim) == Some(MemberKind::Learner) => {
                plan.stage = Stage::Promote;
                None
            }
            Stage::AddLearner => Some(MembershipChange::AddLearner {
                id: plan.victim,
                address: nodes::address(plan.victim),
            }),
            Stage::Promote if kind_of(plan.victim) == Some(MemberKind::Voter) => {
                if let Some(index) = victim_index {
                    self.nodes[index].awaiting_rejoin = false;
                }
                self.operator.plan = None;
                return Ok(());
            }
            Stage::Promote => {
                let commit = self.nodes[leader]
                    .core
                    .as_ref()
                    .map_or(0, |core| core.commit_index());
                // As the runbook says: once it has caught up — and, for a store that lost
                // acknowledged entries, once it has applied its re-addition (it may vote
                // again then; applying a later snapshot alone does not tell it).
                let caught_up = victim_index
                    .and_then(|index| self.nodes[index].core.as_ref())
                    .is_some_and(|core| {
                        core.applied_index() + 10 >= commit && !core.rejoin_required()
                    });
                caught_up.then_some(MembershipChange::PromoteLearner { id: plan.victim })
            }
        };
        if let Some(change) = change
            && self.step >= plan.next_attempt
        {
            let request = self.new_request();
            let leader_id = self.nodes[leader].id;
            if let Some(core) = self.nodes[leader].core.as_mut() {
                core.handle_membership(request, change);
                self.operator.request = Some((leader_id, request));
                plan.next_attempt = self.step + RETRY_STEPS;
            }
        }
        self.operator.plan = Some(plan);
        Ok(())
    }
}
