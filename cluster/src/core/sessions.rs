//! Replicated at-most-once: every entry carries its proposal's tag (proposing node, request
//! id — ids never repeat on a node, see [`super::RequestId`]); a second committed entry with a
//! tag already applied (a duplicated or re-routed forward) is not applied again. The table is
//! part of the replicated state (in every snapshot), so every node skips the same entries.
//!
//! Bounded: per proposing node the newest [`SESSION_IDS_MAX`] ids are kept; an id older than
//! all of them is treated as already applied. Such an entry belongs to a proposal thousands
//! of proposals old on its node — long past its deadline, its caller told the outcome is
//! unknown — so not applying it is an allowed outcome.

use std::collections::{BTreeMap, BTreeSet};

use crate::codec::EntryTag;
use crate::transport::NodeId;

/// Proposal ids kept per proposing node.
pub const SESSION_IDS_MAX: usize = 4096;

/// The applied proposal ids per proposing node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sessions {
    by_origin: BTreeMap<NodeId, BTreeSet<u64>>,
}

impl Sessions {
    /// From a snapshot's table.
    pub fn from_table(by_origin: BTreeMap<NodeId, BTreeSet<u64>>) -> Self {
        Self { by_origin }
    }

    /// The table, for a snapshot.
    pub fn table(&self) -> &BTreeMap<NodeId, BTreeSet<u64>> {
        &self.by_origin
    }

    /// Record `tag` as applied; false when it was applied before (or is older than the
    /// window), and must not be applied again.
    pub fn record(&mut self, tag: EntryTag) -> bool {
        let ids = self.by_origin.entry(tag.origin).or_default();
        if ids.contains(&tag.proposal) {
            return false;
        }
        if ids.len() >= SESSION_IDS_MAX {
            match ids.first() {
                Some(oldest) if tag.proposal < *oldest => return false,
                _ => {
                    ids.pop_first();
                }
            }
        }
        ids.insert(tag.proposal);
        debug_assert!(ids.len() <= SESSION_IDS_MAX);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(origin: NodeId, proposal: u64) -> EntryTag {
        EntryTag { origin, proposal }
    }

    #[test]
    fn a_tag_applies_once_and_the_window_is_bounded() {
        let mut sessions = Sessions::default();
        assert!(sessions.record(tag(1, 10)));
        assert!(!sessions.record(tag(1, 10)));
        assert!(sessions.record(tag(2, 10)), "ids are per proposing node");
        for proposal in 11..11 + SESSION_IDS_MAX as u64 {
            assert!(sessions.record(tag(1, proposal)));
        }
        assert_eq!(sessions.table()[&1].len(), SESSION_IDS_MAX);
        // 10 fell out of the window: older than every id kept, so refused.
        assert!(!sessions.record(tag(1, 10)));
        assert!(!sessions.record(tag(1, 11 + SESSION_IDS_MAX as u64 - 1)));
        let copy = Sessions::from_table(sessions.table().clone());
        assert_eq!(copy, sessions);
    }
}
