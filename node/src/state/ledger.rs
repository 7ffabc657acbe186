//! The contact ledger's records: where each contact of the chain is, at coarse grain.
//! (Bincode in the log and snapshots: enums are externally tagged, nothing is flattened.)
//!
//! A site reports its contacts' coarse stages through its durable outbox (`SiteWrite::Ledger`,
//! batched), never on the routing path: the ledger is what the other sites know of a
//! contact, a few hundred milliseconds behind the site's memory. One entry per contact and
//! site: a contact overflowed from A to B has A's entry (stage `overflowed`, claimed by B) and
//! B's entry (opened with `moved_from` naming A's contact), linked.
//!
//! Write rate, sized for the 17,000-contact day of the simulator's default scenario: its
//! 12:00–16:00 peak carries ~41% of the day, 6,970 contacts in 4 h, so the peak hour holds
//! ~1,750 contacts (0.49/s over the chain). A contact writes about 3 ledger entries (opened;
//! answered, abandoned, served by the bot or overflowed; ended), so **~1.5 entries/s** at the
//! peak. Each site's outbox sends what accumulated while its previous batch was in flight
//! (one at a time), so proposals are at most one per site per commit round trip and at most
//! the entry rate: **≤ 1.5 proposals/s** chain-wide at the peak (three sites; about 0.7/s at
//! Moscow's 45%), plus one `ClaimOverflow` per overflowed contact. The cluster commits ~340
//! sequential proposals/s and ~6,500/s from 64 concurrent clients (3 nodes, QUIC, RocksDB
//! fsync; `CALLGRID_BENCH_QUICK=1 cargo bench -p callgrid-cluster --bench commit --profile
//! dev`, an unoptimized build on a shared 2-core machine), so the ledger uses under 0.5% of
//! the sequential figure.

use serde::{Deserialize, Serialize};

use super::command::{InvalidCommand, SHORT_TEXT_CHARS_MAX, validate_phone, validate_text};
use super::model::TimestampMs;

/// Open (not yet ended) ledger entries allowed; an `opened` beyond it is refused (logged by
/// the outbox). Far above any real backlog: the 17k day has at most a few hundred open.
pub const LEDGER_OPEN_MAX: usize = 100_000;
/// How long an ended entry stays readable after it ended; then it is dropped (bounded memory:
/// about one day of contacts, ~17,000 entries of ~150 bytes).
pub const LEDGER_ENDED_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;
/// Open entries listed per request at most.
pub const LEDGER_LIST_MAX: usize = 1_000;

/// Where a contact is, at coarse grain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStage {
    /// Waiting in a queue (or ringing at an agent).
    Queued,
    /// Talking with an agent.
    Answered {
        /// The agent's login.
        agent: String,
    },
    /// The conversation ended (or the contact was refused at arrival: queue full).
    Ended,
    /// The caller hung up before an answer.
    Abandoned,
    /// The site sent it away; `claimed` once the target's claim committed.
    Overflowed {
        /// The target site.
        to: String,
        /// Whether the target's claim committed (then the target owns the contact).
        claimed: bool,
    },
    /// The self-service bot served it.
    ServedByBot,
    /// Its site was lost; another site adopted it (a callback task replaces the call).
    Adopted {
        /// The adopting site.
        by: String,
    },
}

impl LedgerStage {
    /// Whether the contact needs nothing more from this site's entry.
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            LedgerStage::Ended
                | LedgerStage::Abandoned
                | LedgerStage::ServedByBot
                | LedgerStage::Adopted { .. }
                | LedgerStage::Overflowed { claimed: true, .. }
        )
    }
}

/// One contact at one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The contact's id at its site.
    pub contact: u64,
    /// The site that works (or worked) on it.
    pub owner: String,
    /// The caller's number (normalized).
    pub caller: String,
    /// Its queue (skill name).
    pub skill: String,
    /// When the caller first arrived in the chain (kept across overflows).
    pub arrived_at_ms: TimestampMs,
    /// The site where the caller first arrived.
    pub arrived_at_site: String,
    /// Where it is.
    pub stage: LedgerStage,
    /// Moves between sites before it came here.
    pub hops: u8,
    /// The contact at the previous site, if it was overflowed here.
    pub moved_from: Option<u64>,
    /// When its stage last changed (the proposing site's clock).
    pub updated_at_ms: TimestampMs,
    /// The owner's outbox sequence of the last update applied to it.
    pub sequence: u64,
    /// The agent who last answered it here (kept when it ends: quality reviews score this
    /// agent). Snapshot format 4.
    pub agent: Option<String>,
    /// The gateway's reference to the call's recording (a URL or an opaque id), for the
    /// supervisor who reviews it. Snapshot format 4.
    pub recording_ref: Option<String>,
}

/// A change a site reports for one of its contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerChange {
    /// The contact arrived here (from the gateway, or overflowed from `moved_from`).
    Opened {
        /// The caller's number (normalized): what a callback would dial.
        caller: String,
        /// Its queue.
        skill: String,
        /// When the caller first arrived (for an overflowed contact: at the first site).
        arrived_at_ms: TimestampMs,
        /// The contact at the previous site, if it was overflowed here.
        moved_from: Option<u64>,
    },
    /// It moved to another queue here (transfer to line 2).
    Requeued {
        /// The new queue.
        skill: String,
    },
    /// Its stage changed (not to `Queued` with a new skill: that is `Requeued`).
    Stage(LedgerStage),
    /// The gateway named the call's recording (at the answer or the end): kept with the
    /// entry, also after it ended. Appended: the log encodes variants by position.
    Recording {
        /// A URL (`http`/`https`) or an opaque id (see [`validate_recording_ref`]).
        reference: String,
    },
}

/// One site's report about one of its contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerUpdate {
    /// The contact's id at the reporting site.
    pub contact: u64,
    /// When it happened (the site's clock).
    pub at_ms: TimestampMs,
    /// What happened.
    pub change: LedgerChange,
}

impl LedgerUpdate {
    /// Checks what can be checked without the state.
    pub fn validate(&self) -> Result<(), InvalidCommand> {
        if self.contact == 0 {
            return Err(InvalidCommand::new("contact", "must be positive"));
        }
        match &self.change {
            LedgerChange::Opened { caller, skill, .. } => {
                validate_phone("caller", caller)?;
                validate_text("skill", skill, SHORT_TEXT_CHARS_MAX, false)
            }
            LedgerChange::Requeued { skill } => {
                validate_text("skill", skill, SHORT_TEXT_CHARS_MAX, false)
            }
            LedgerChange::Stage(LedgerStage::Answered { agent }) => {
                validate_text("agent", agent, SHORT_TEXT_CHARS_MAX, false)
            }
            LedgerChange::Stage(LedgerStage::Overflowed { to, claimed }) => {
                if *claimed {
                    return Err(InvalidCommand::new(
                        "claimed",
                        "only a committed claim marks an overflow claimed",
                    ));
                }
                validate_text("to", to, SHORT_TEXT_CHARS_MAX, false)
            }
            LedgerChange::Stage(LedgerStage::Adopted { .. }) => Err(InvalidCommand::new(
                "stage",
                "only an adoption marks a contact adopted",
            )),
            LedgerChange::Stage(_) => Ok(()),
            LedgerChange::Recording { reference } => validate_recording_ref(reference),
        }
    }
}

/// Characters a recording reference may have.
pub const RECORDING_REF_CHARS_MAX: usize = 512;

/// Checks a gateway's recording reference: 1 to [`RECORDING_REF_CHARS_MAX`] visible ASCII
/// characters (`!` to `~`: no spaces, no control characters; a URL percent-encodes the rest);
/// something with a scheme (`…://`) must be an `http` or `https` URL, since the supervisor's
/// page opens it as a link; anything else is an opaque id shown as text.
pub fn validate_recording_ref(reference: &str) -> Result<(), InvalidCommand> {
    let field = "recording_ref";
    if reference.is_empty() || reference.len() > RECORDING_REF_CHARS_MAX {
        return Err(InvalidCommand::new(
            field,
            &format!("must have 1 to {RECORDING_REF_CHARS_MAX} characters"),
        ));
    }
    if !reference.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(InvalidCommand::new(
            field,
            "must be printable ASCII without spaces (percent-encode a URL)",
        ));
    }
    if let Some((scheme, _)) = reference.split_once("://")
        && !["http", "https"].contains(&scheme.to_ascii_lowercase().as_str())
    {
        return Err(InvalidCommand::new(
            field,
            "a URL must be http or https (or give an opaque id without a scheme)",
        ));
    }
    Ok(())
}

/// Overflow moves a site took part in, counted from committed claims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverflowCounts {
    /// Contacts claimed away from this site.
    pub out: u64,
    /// Contacts this site claimed from others.
    pub into: u64,
}
