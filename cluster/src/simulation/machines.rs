//! The simulation's state machines: a small key-value register map whose every step the
//! simulation can check ([`KvStateMachine`]), and the plain recording machine the core's unit
//! tests use ([`RecordingStateMachine`]).

use crate::error::StateMachineError;
use crate::state_machine::StateMachine;

/// Keys of the key-value model (few, so operations on one key overlap and reads see writes).
pub const KEYS: usize = 4;

/// A command of the key-value model: `put key = value` (values are unique per run and never 0).
pub fn encode_put(key: u8, value: u64) -> Vec<u8> {
    let mut command = Vec::with_capacity(9);
    command.push(key);
    command.extend_from_slice(&value.to_le_bytes());
    command
}

fn decode_put(command: &[u8]) -> Option<(u8, u64)> {
    let (&key, value) = command.split_first()?;
    let value = u64::from_le_bytes(value.try_into().ok()?);
    ((key as usize) < KEYS && value != 0).then_some((key, value))
}

/// What a [`KvStateMachine`] did since the simulation last drained it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedEvent {
    /// A command applied at `index`; `digest` is the whole state's after it.
    Put {
        /// Log index.
        index: u64,
        /// Key written.
        key: u8,
        /// Value written.
        value: u64,
        /// Digest of the state after the write.
        digest: u64,
    },
    /// The state was replaced by a snapshot taken after the command at `index`.
    Restored {
        /// Index of the last command the snapshot holds (0: none).
        index: u64,
        /// Digest of the restored state.
        digest: u64,
    },
}

/// Registers `0..KEYS` holding the last value put (0 = never written). Responds to a put with
/// the index it applied at, and records every step for the simulation's checks.
#[derive(Debug, Default, Clone)]
pub struct KvStateMachine {
    values: [u64; KEYS],
    last_index: u64,
    events: Vec<AppliedEvent>,
}

impl KvStateMachine {
    /// The value of `key` (0: never written).
    pub fn get(&self, key: u8) -> u64 {
        self.values.get(key as usize).copied().unwrap_or(0)
    }

    /// The index of the last command applied (or restored).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// A digest of the whole state (equal states, equal digests).
    pub fn digest(&self) -> u64 {
        self.values
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, value| {
                (hash ^ value)
                    .wrapping_mul(0x0100_0000_01b3)
                    .rotate_left(29)
            })
    }

    /// Take what happened since the last call.
    pub fn take_events(&mut self) -> Vec<AppliedEvent> {
        std::mem::take(&mut self.events)
    }
}

impl StateMachine for KvStateMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        if let Some((key, value)) = decode_put(command) {
            self.values[key as usize] = value;
            self.last_index = index;
            self.events.push(AppliedEvent::Put {
                index,
                key,
                value,
                digest: self.digest(),
            });
        }
        index.to_le_bytes().to_vec()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        let mut bytes = Vec::with_capacity(8 * (KEYS + 1));
        bytes.extend_from_slice(&self.last_index.to_le_bytes());
        for value in self.values {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        Ok(bytes)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        if snapshot.is_empty() {
            // The bootstrap snapshot of a new cluster.
            *self = Self::default();
        } else {
            if snapshot.len() != 8 * (KEYS + 1) {
                return Err(StateMachineError::Decode(format!(
                    "{} bytes, expected {}",
                    snapshot.len(),
                    8 * (KEYS + 1)
                )));
            }
            let mut words = snapshot
                .chunks_exact(8)
                .map(|word| u64::from_le_bytes(word.try_into().unwrap_or_default()));
            self.last_index = words.next().unwrap_or(0);
            for (slot, value) in self.values.iter_mut().zip(words) {
                *slot = value;
            }
        }
        self.events.push(AppliedEvent::Restored {
            index: self.last_index,
            digest: self.digest(),
        });
        Ok(())
    }
}

/// A state machine that records the applied sequence itself (the core's unit tests).
#[derive(Debug, Default, Clone)]
pub struct RecordingStateMachine {
    /// (index, command) in apply order.
    pub applied: Vec<(u64, Vec<u8>)>,
}

impl StateMachine for RecordingStateMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        self.applied.push((index, command.to_vec()));
        index.to_le_bytes().to_vec()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        let mut bytes = Vec::new();
        for (index, command) in &self.applied {
            bytes.extend_from_slice(&index.to_le_bytes());
            bytes.extend_from_slice(&(command.len() as u32).to_le_bytes());
            bytes.extend_from_slice(command);
        }
        Ok(bytes)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        let mut applied = Vec::new();
        let mut rest = snapshot;
        let truncated = || StateMachineError::Decode("truncated".to_owned());
        while !rest.is_empty() {
            let index = u64::from_le_bytes(
                rest.get(..8)
                    .ok_or_else(truncated)?
                    .try_into()
                    .map_err(|_| truncated())?,
            );
            let length = u32::from_le_bytes(
                rest.get(8..12)
                    .ok_or_else(truncated)?
                    .try_into()
                    .map_err(|_| truncated())?,
            ) as usize;
            let command = rest.get(12..12 + length).ok_or_else(truncated)?;
            applied.push((index, command.to_vec()));
            rest = &rest[12 + length..];
        }
        self.applied = applied;
        Ok(())
    }
}
