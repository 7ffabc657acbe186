//! The application's side of replication: the [`StateMachine`] the driver applies committed
//! commands to. It lives on the driver thread; an application that needs to read its data from
//! other threads keeps that data behind its own `Arc<RwLock<..>>` inside its implementation.

use std::io::{Read, Write};

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

    /// Write the whole state (taken after the last applied command) to `out`, as
    /// [`Self::snapshot`] would return it. The driver streams it into a file beside the store
    /// (or into memory for the memory storage), so a state machine that can serialise
    /// piece by piece never holds a second copy of its state; the default writes
    /// [`Self::snapshot`]'s bytes. A write error (the snapshot grew past
    /// [`crate::codec::SNAPSHOT_BYTES_MAX`], the disk is full) must be returned as it is:
    /// the driver then keeps its log and tries again later.
    fn snapshot_to(&self, out: &mut dyn Write) -> Result<(), StateMachineError> {
        let bytes = self.snapshot()?;
        out.write_all(&bytes).map_err(StateMachineError::write)
    }

    /// A point-in-time view of the state (after the last applied command) that can be
    /// written from another thread while `apply` goes on: the driver then builds the
    /// snapshot file on a thread of its own and keeps ticking, proposing and applying
    /// meanwhile. The view is taken on the driver thread, so what it costs there is what
    /// the driver waits for: nearly nothing for an `Arc` of immutable or persistent data or
    /// a database snapshot; an encoding of the state into memory (the node's) saves the
    /// file's write and fsync but not the encoding. The default, `None`, has the driver
    /// stream [`Self::snapshot_to`] on its own thread, which stops it for as long as the
    /// writing takes.
    fn snapshot_view(&self) -> Option<Box<dyn SnapshotView>> {
        None
    }

    /// Replace the whole state with the snapshot read from `input` (its end is the end of
    /// the snapshot). The default reads it into memory and calls [`Self::restore`].
    fn restore_from(&mut self, input: &mut dyn Read) -> Result<(), StateMachineError> {
        let mut bytes = Vec::new();
        input
            .read_to_end(&mut bytes)
            .map_err(|error| StateMachineError::Decode(error.to_string()))?;
        self.restore(&bytes)
    }
}

/// A view of a state machine's state at one applied index, written from another thread
/// ([`StateMachine::snapshot_view`]).
pub trait SnapshotView: Send + 'static {
    /// Write the state as [`StateMachine::snapshot_to`] would have at the view's index.
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> Result<(), StateMachineError>;
}
