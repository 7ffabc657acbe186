//! The application's side of replication: the [`StateMachine`] the driver applies committed
//! commands to. It lives on the driver thread; an application that needs to read its data from
//! other threads keeps that data behind its own `Arc<RwLock<..>>` inside its implementation.

pub use crate::error::StateMachineError;

/// A deterministic state machine fed with committed commands.
///
/// Every replica applies the same commands in the same order and must reach the same state:
/// `apply` may not read clocks, random numbers or anything else outside `command`.
pub trait StateMachine: Send + 'static {
    /// Apply a committed command (opaque bytes); returns the response for the proposer.
    /// `index` is the Raft log index of the command; it increases strictly.
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8>;
    /// Serialise the whole state (taken after the last applied command).
    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError>;
    /// Replace the whole state with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError>;
}
