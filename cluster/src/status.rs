//! [`ClusterStatus`]: what an operator (metrics, `callgrid cluster status`) sees of a node.

use serde::Serialize;

use crate::transport::NodeId;

/// A node's Raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Pre-vote candidate: asks whether it could win before disrupting the term.
    PreCandidate,
    /// Campaigning for leadership.
    Candidate,
    /// Leads the cluster.
    Leader,
}

/// A member's kind in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    /// Votes and counts for the quorum.
    Voter,
    /// Receives the log but does not vote.
    Learner,
}

/// One member as seen by this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    /// The member's id.
    pub id: NodeId,
    /// Voter or learner.
    pub kind: MemberKind,
    /// The member's address, when known.
    pub address: Option<String>,
    /// Highest log index known replicated on it (leader only).
    pub match_index: Option<u64>,
    /// How many entries it is behind the leader's last index (leader only).
    pub lag: Option<u64>,
}

/// A node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ClusterStatus {
    /// This node.
    pub node_id: NodeId,
    /// This node's role.
    pub role: Role,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index applied to the state machine.
    pub applied_index: u64,
    /// First index still in the log.
    pub first_index: u64,
    /// Last index in the log.
    pub last_index: u64,
    /// Members of the current configuration (sorted by id).
    pub members: Vec<MemberStatus>,
    /// Index of the latest snapshot.
    pub snapshot_index: u64,
    /// Snapshots produced by this node's state machine.
    pub snapshots_created: u64,
    /// Snapshots received from a leader and installed.
    pub snapshots_installed: u64,
    /// Log compactions (one per produced snapshot).
    pub compactions: u64,
    /// Entries removed by compaction.
    pub entries_compacted: u64,
    /// Snapshots not taken because the state exceeds the one snapshot size limit (it could
    /// never be shipped to a follower); the log is then kept, not compacted.
    pub snapshots_refused: u64,
    /// A leader proved that this node's store lost entries it had acknowledged: it does not
    /// vote until removed and re-added as a learner (then promoted).
    pub rejoin_required: bool,
    /// On the leader: members known to have held the log that now answer from an empty
    /// store (their disk was lost or replaced). The leader does not send them the log; they
    /// cannot vote until replaced by the runbook (remove, add as a learner, promote).
    pub stores_lost: Vec<NodeId>,
    /// Ticks since this node last heard from a quorum of voters (itself included) or from its
    /// leader; `None` if never since it started. Times the tick interval, the age of this
    /// node's local reads.
    pub quorum_contact_ticks: Option<u64>,
    /// Set when the driver stopped on a fatal error.
    pub fatal_error: Option<String>,
}
