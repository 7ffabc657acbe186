//! Id → dense index tables: direct-mapped with a hash-map fallback for collisions.

use super::*;

pub(super) type IdMap<K> = HashMap<K, u32, BuildHasherDefault<crate::ids::IdHasher>>;

/// Ids usable as keys of a [`DirectIndex`].
pub(super) trait RawId: Copy + Eq + std::hash::Hash {
    fn raw(self) -> u64;
}

impl RawId for ContactId {
    #[inline]
    fn raw(self) -> u64 {
        self.0
    }
}

impl RawId for AgentId {
    #[inline]
    fn raw(self) -> u64 {
        u64::from(self.0)
    }
}

/// Id → dense index: a direct-mapped table with a hash-map fallback for collisions.
#[derive(Debug)]
pub(super) struct DirectIndex<K> {
    /// (raw id, value); `ABSENT` marks an empty position.
    direct: Vec<(u64, u32)>,
    sparse: IdMap<K>,
    len: usize,
}

impl<K> Default for DirectIndex<K> {
    fn default() -> Self {
        DirectIndex {
            direct: Vec::new(),
            sparse: IdMap::default(),
            len: 0,
        }
    }
}

impl<K: RawId> DirectIndex<K> {
    const ABSENT: u32 = u32::MAX;

    #[inline]
    fn position(raw: u64) -> usize {
        (raw as usize) & (DIRECT_TABLE_ENTRIES - 1)
    }

    #[inline]
    pub(super) fn get(&self, key: &K) -> Option<&u32> {
        let raw = key.raw();
        if let Some(entry) = self.direct.get(Self::position(raw)) {
            if entry.1 != Self::ABSENT && entry.0 == raw {
                return Some(&entry.1);
            }
        }
        if self.sparse.is_empty() {
            return None;
        }
        self.sparse.get(key)
    }

    #[inline]
    pub(super) fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn insert(&mut self, key: K, value: u32) {
        let raw = key.raw();
        let position = Self::position(raw);
        if self.direct.len() <= position {
            self.direct.resize(position + 1, (0, Self::ABSENT));
        }
        let entry = &mut self.direct[position];
        if entry.1 == Self::ABSENT && !self.sparse.contains_key(&key) {
            *entry = (raw, value);
            self.len += 1;
        } else if entry.1 != Self::ABSENT && entry.0 == raw {
            entry.1 = value;
        } else if self.sparse.insert(key, value).is_none() {
            self.len += 1;
        }
    }

    pub(super) fn remove(&mut self, key: &K) {
        let raw = key.raw();
        if let Some(entry) = self.direct.get_mut(Self::position(raw)) {
            if entry.1 != Self::ABSENT && entry.0 == raw {
                entry.1 = Self::ABSENT;
                self.len -= 1;
                return;
            }
        }
        if self.sparse.remove(key).is_some() {
            self.len -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_index_falls_back_on_collisions_and_keeps_count() {
        let mut index: DirectIndex<ContactId> = DirectIndex::default();
        let step = DIRECT_TABLE_ENTRIES as u64;
        let (first, second, third) = (ContactId(5), ContactId(5 + step), ContactId(5 + 2 * step));
        index.insert(first, 1);
        index.insert(second, 2);
        index.insert(third, 3);
        assert_eq!(index.len(), 3);
        assert_eq!(index.get(&first), Some(&1));
        assert_eq!(index.get(&second), Some(&2));
        assert_eq!(index.get(&third), Some(&3));
        index.remove(&first);
        assert_eq!(index.get(&first), None);
        assert_eq!(index.len(), 2);
        // The freed position is not reused by a key that already lives in the fallback map.
        index.insert(second, 7);
        assert_eq!(index.get(&second), Some(&7));
        assert_eq!(index.len(), 2);
        index.remove(&second);
        index.remove(&third);
        index.remove(&third);
        assert_eq!(index.len(), 0);
        assert!(!index.contains_key(&third));
        index.insert(ContactId(u64::MAX), 9);
        assert_eq!(index.get(&ContactId(u64::MAX)), Some(&9));
    }
}
