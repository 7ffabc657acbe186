//! Deliberately broken rules, to prove the simulation's checks catch them (mutation testing).
//!
//! Only with the test-only cargo feature `sim-mutations`; without it [`enabled`] is a
//! constant `false` and every mutation point compiles away, so non-test builds cannot carry
//! them. With it, each rule is switched per thread ([`set`]), so tests running in parallel
//! threads break different rules, and a thread that switched nothing runs the real code.

/// A rule that can be broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// Send the messages that must wait for the local write (votes, append acknowledgements)
    /// before persisting (raft-rs's `persisted_messages` rule).
    SendBeforePersist,
    /// A synced persist is not synced (the fsync is skipped): lost at the next crash.
    SkipFsync,
    /// Answer a read as soon as its index is confirmed, before the state machine applied it.
    ReadBeforeApply,
    /// A store that lost its data (re-bootstrapped by a `bootstrap = "new"` config, or
    /// marked as having lost acknowledged entries) votes as if nothing happened.
    WipedVoterVotes,
}

impl Mutation {
    /// Every mutation.
    pub const ALL: [Mutation; 4] = [
        Mutation::SendBeforePersist,
        Mutation::SkipFsync,
        Mutation::ReadBeforeApply,
        Mutation::WipedVoterVotes,
    ];

    #[cfg_attr(not(feature = "sim-mutations"), allow(dead_code))]
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

#[cfg(feature = "sim-mutations")]
thread_local! {
    static ENABLED: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Whether `mutation` is switched on in this thread.
#[cfg(feature = "sim-mutations")]
pub fn enabled(mutation: Mutation) -> bool {
    ENABLED.with(|enabled| enabled.get() & mutation.bit() != 0)
}

/// Whether `mutation` is switched on: never, without the `sim-mutations` feature.
#[cfg(not(feature = "sim-mutations"))]
#[inline(always)]
pub const fn enabled(_mutation: Mutation) -> bool {
    false
}

/// Switch `mutation` on or off for this thread.
#[cfg(feature = "sim-mutations")]
pub fn set(mutation: Mutation, on: bool) {
    ENABLED.with(|enabled| {
        let bits = enabled.get();
        enabled.set(if on {
            bits | mutation.bit()
        } else {
            bits & !mutation.bit()
        });
    });
}
