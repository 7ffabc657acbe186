//! The zones check of Gibbons and Korach ("Testing shared memories", SIAM J. Comput. 1997):
//! linearizability of one register's history in O(n log n) when every write's value is
//! unique, so each read names the write it saw.
//!
//! A value's *cluster* is its write and the reads that returned it. `f` is the earliest
//! response in the cluster, `s` the latest invocation. When `f < s` the value must be the
//! register's content over all of `[f, s]`: a *forward zone*. Otherwise `[s, f]` is a
//! *backward zone*: the whole cluster can take effect at one instant in there. The history is
//! linearizable iff every read has a write that was invoked before the read answered, no two
//! forward zones overlap, and no backward zone lies inside a forward zone. At equal times a
//! call and a return are concurrent (as in the Wing–Gong search), so touching zones do not
//! conflict.
//!
//! The search in the parent module stays the reference: this check answers in one pass
//! where the search can take exponential time (long operations, many concurrent reads), and
//! a property test holds the two to the same verdict.

use std::collections::HashMap;

use super::{Operation, Timed};

/// A value's cluster: its write and the reads that returned it.
#[derive(Debug, Clone, Copy)]
struct Cluster {
    /// Earliest response.
    f: i128,
    /// Latest invocation.
    s: i128,
    /// The write's invocation (`None`: no write of the value took effect).
    write_invoked: Option<i128>,
    /// Earliest response of a read of the value.
    read_answered: Option<i128>,
}

/// Check a history whose operations all have a response (the parent reduced unknown ones).
/// `None` when the check does not apply (a value written twice, a write of the initial value
/// 0, an operation without a response); otherwise the verdict, with the reason of a violation.
pub(super) fn check(operations: &[Timed]) -> Option<Result<(), String>> {
    let mut clusters: HashMap<u64, Cluster> = HashMap::with_capacity(operations.len());
    // The initial value 0, written before everything.
    clusters.insert(
        0,
        Cluster {
            f: -1,
            s: -2,
            write_invoked: Some(-2),
            read_answered: None,
        },
    );
    for operation in operations {
        let response = i128::from(operation.response?);
        let invoked = i128::from(operation.invoked);
        let (value, write) = match operation.operation {
            Operation::Write(0) => return None,
            Operation::Write(value) => (value, true),
            Operation::Read(value) => (value, false),
        };
        let cluster = clusters.entry(value).or_insert(Cluster {
            f: i128::MAX,
            s: i128::MIN,
            write_invoked: None,
            read_answered: None,
        });
        if write {
            if cluster.write_invoked.is_some() {
                return None;
            }
            cluster.write_invoked = Some(invoked);
        } else {
            cluster.read_answered =
                Some(cluster.read_answered.map_or(response, |r| r.min(response)));
        }
        cluster.f = cluster.f.min(response);
        cluster.s = cluster.s.max(invoked);
    }
    let mut forward = Vec::new();
    let mut backward = Vec::new();
    for (value, cluster) in &clusters {
        let Some(write_invoked) = cluster.write_invoked else {
            return Some(Err(format!("value {value} was read but never written")));
        };
        if let Some(answered) = cluster.read_answered
            && answered < write_invoked
        {
            return Some(Err(format!(
                "value {value} was read (answered at {answered}) before its write was invoked \
                 (at {write_invoked})"
            )));
        }
        if cluster.f < cluster.s {
            forward.push((cluster.f, cluster.s, *value));
        } else {
            backward.push((cluster.s, cluster.f, *value));
        }
    }
    forward.sort_unstable();
    for pair in forward.windows(2) {
        let ((_, end, first), (start, _, second)) = (pair[0], pair[1]);
        if start < end {
            return Some(Err(format!(
                "values {first} and {second} must both be the register's over [{start}, {end}]"
            )));
        }
    }
    for (start, end, value) in backward {
        // The forward zone starting last before this one starts (they are disjoint now).
        let before = forward.partition_point(|(f, _, _)| *f < start);
        if let Some(&(f, s, holder)) = before.checked_sub(1).and_then(|i| forward.get(i))
            && end < s
        {
            return Some(Err(format!(
                "value {value} took effect within [{start}, {end}], where value {holder} must \
                 be the register's (over [{f}, {s}])"
            )));
        }
    }
    Some(Ok(()))
}
