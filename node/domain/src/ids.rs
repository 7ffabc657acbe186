//! Compact identifiers and time: the value types every other module indexes by.
//!
//! Ids are small integers so that storage can be `Vec`s indexed by id and a contact costs a
//! few bytes, which is what lets the simulator route a million contacts in well under a second.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::hash::Hasher;

/// A point in time in milliseconds since an epoch chosen by the driver (the simulator uses the
/// start of the simulated day, the node uses the Unix epoch). The domain never reads a clock.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TimeMs(pub u64);

impl TimeMs {
    /// The epoch.
    pub const ZERO: TimeMs = TimeMs(0);

    /// Milliseconds elapsed from `earlier` to `self`, zero if `earlier` is later.
    #[inline]
    pub fn since(self, earlier: TimeMs) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// This time plus `ms` milliseconds (saturating: far-future deadlines never wrap around).
    #[inline]
    pub fn plus_ms(self, ms: u64) -> TimeMs {
        TimeMs(self.0.saturating_add(ms))
    }
}

impl fmt::Display for TimeMs {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}ms", self.0)
    }
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The id as a `usize`, for indexing dense storage.
            #[inline]
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A site (one city's contact center). Dense: sites are numbered 0..n by the driver.
    SiteId(u16)
);
id_type!(
    /// A skill, which is also a queue at every site. Dense: the index into `RoutingConfig::skills`.
    SkillId(u16)
);
id_type!(
    /// An agent. Chosen by the driver; any value, unique within the cluster.
    AgentId(u32)
);
id_type!(
    /// A contact (call or chat). Chosen by the driver; unique within the cluster.
    ContactId(u64)
);
id_type!(
    /// A caller's phone number in E.164 digits packed into an integer (no String per contact).
    CallerNumber(u64)
);
id_type!(
    /// A callback task in a [`crate::CallbackBook`].
    CallbackId(u64)
);

/// The most skills a deployment can define: skills are a bitset in one `u64`.
pub const SKILLS_MAX: usize = 64;

/// A set of skills as a bitset: membership tests and iteration without allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SkillSet(pub u64);

impl SkillSet {
    /// No skills.
    pub const EMPTY: SkillSet = SkillSet(0);

    /// Whether `skill` is in the set. Skills beyond [`SKILLS_MAX`] are never members.
    #[inline]
    pub fn contains(self, skill: SkillId) -> bool {
        skill.index() < SKILLS_MAX && self.0 & (1u64 << skill.0) != 0
    }

    /// Adds `skill`; ignored beyond [`SKILLS_MAX`] (configuration validation rejects those).
    #[inline]
    pub fn insert(&mut self, skill: SkillId) {
        if skill.index() < SKILLS_MAX {
            self.0 |= 1u64 << skill.0;
        }
    }

    /// Removes `skill`.
    #[inline]
    pub fn remove(&mut self, skill: SkillId) {
        if skill.index() < SKILLS_MAX {
            self.0 &= !(1u64 << skill.0);
        }
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of skills in the set.
    #[inline]
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The skills in ascending id order (deterministic).
    #[inline]
    pub fn iter(self) -> SkillSetIter {
        SkillSetIter(self.0)
    }
}

impl FromIterator<SkillId> for SkillSet {
    fn from_iter<T: IntoIterator<Item = SkillId>>(iter: T) -> Self {
        let mut set = SkillSet::EMPTY;
        for skill in iter {
            set.insert(skill);
        }
        set
    }
}

/// Iterator over a [`SkillSet`] in ascending order.
#[derive(Clone, Debug)]
pub struct SkillSetIter(u64);

impl Iterator for SkillSetIter {
    type Item = SkillId;

    #[inline]
    fn next(&mut self) -> Option<SkillId> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(SkillId(bit as u16))
    }
}

/// A multiplicative hasher for integer ids: ids are not attacker-chosen inside the domain and
/// SipHash would cost more than the routing decision. Maps are only looked up, never iterated,
/// so hashing never influences results.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skill_set_iterates_in_ascending_order() {
        let set: SkillSet = [SkillId(5), SkillId(0), SkillId(63)].into_iter().collect();
        let skills: Vec<SkillId> = set.iter().collect();
        assert_eq!(skills, vec![SkillId(0), SkillId(5), SkillId(63)]);
        assert_eq!(set.len(), 3);
        assert!(set.contains(SkillId(5)));
        assert!(!set.contains(SkillId(6)));
        assert!(!set.contains(SkillId(64)));
    }

    #[test]
    fn time_since_saturates() {
        assert_eq!(TimeMs(5).since(TimeMs(10)), 0);
        assert_eq!(TimeMs(10).since(TimeMs(4)), 6);
        assert_eq!(TimeMs(u64::MAX).plus_ms(5), TimeMs(u64::MAX));
    }
}
