//! Per-contact records (`run --contacts` → `contacts.csv`): one line per contact when it
//! leaves, in the format `calibrate` reads back.
//!
//! The engine opens a record when a contact arrives (or the bot answers it, or a callback is
//! placed), updates it from the domain events of that contact and writes it when the contact
//! leaves; open records live in a table indexed by the engine's contact slot, so memory
//! follows the contacts in progress, not the contacts simulated.
//!
//! Columns (times in seconds; empty when not applicable):
//!
//! | column | meaning |
//! |---|---|
//! | `day` | day index from 0 |
//! | `arrived_s` | arrival, seconds after the day's midnight |
//! | `entry_site`, `site` | site it arrived at; site where it ended (differs after overflow) |
//! | `direction` | `inbound` or `callback` |
//! | `channel` | `voice` or `chat` |
//! | `topic`, `skill` | IVR topic and the scenario skill of its first queue (empty for callbacks' topic) |
//! | `outcome` | `answered`, `abandoned`, `bot` (finished by the self-service bot), `blocked`, `open` (still in progress when the run ended) |
//! | `wait_s` | from arrival to the first answer or to hanging up |
//! | `handle_s` | the first answered leg's talk time |
//! | `transferred` | `1` if line 1 transferred it to line 2 |
//! | `line2_outcome`, `line2_wait_s`, `line2_handle_s` | the line-2 leg, if transferred |

use std::io::Write;

/// The CSV header of `contacts.csv`.
pub const HEADER: &str = "day,arrived_s,entry_site,site,direction,channel,topic,skill,outcome,wait_s,handle_s,transferred,line2_outcome,line2_wait_s,line2_handle_s";

/// How a leg (or the contact) ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    /// Still waiting or talking.
    #[default]
    Open,
    /// Answered by an agent.
    Answered,
    /// The caller hung up while waiting.
    Abandoned,
    /// Finished by the self-service bot.
    Bot,
    /// Busy tone (waiting limit reached).
    Blocked,
}

impl Outcome {
    /// The CSV word.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::Bot => "bot",
            Outcome::Blocked => "blocked",
        }
    }

    /// Parses the CSV word.
    pub fn parse(word: &str) -> Option<Outcome> {
        Some(match word {
            "open" => Outcome::Open,
            "answered" => Outcome::Answered,
            "abandoned" => Outcome::Abandoned,
            "bot" => Outcome::Bot,
            "blocked" => Outcome::Blocked,
            _ => return None,
        })
    }
}

/// One waiting-then-talking leg.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Leg {
    /// When the wait started, ms.
    pub waiting_since_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Wait, ms (set at answer or abandonment).
    pub wait_ms: Option<u64>,
    /// When talking started, ms.
    pub answered_at_ms: Option<u64>,
    /// Talk time, ms.
    pub handle_ms: Option<u64>,
}

/// An open record.
#[derive(Clone, Copy, Debug, Default)]
struct Open {
    arrived_ms: u64,
    entry_site: u16,
    site: u16,
    callback: bool,
    chat: bool,
    /// Topic index in the scenario (`u16::MAX`: none, a callback).
    topic: u16,
    /// Scenario skill index of the first queue.
    skill: u16,
    first: Leg,
    second: Option<Leg>,
}

/// Writes per-contact records while the engine runs.
pub struct ContactLog {
    open: Vec<Open>,
    site_names: Vec<String>,
    topic_names: Vec<String>,
    skill_names: Vec<String>,
    day_ms: u64,
    out: Box<dyn Write + Send>,
    /// The first write error (later records are dropped; the run reports it at the end).
    error: Option<std::io::Error>,
    written: u64,
}

impl std::fmt::Debug for ContactLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactLog")
            .field("written", &self.written)
            .finish()
    }
}

impl ContactLog {
    /// A log writing to `out` (the header first).
    pub fn new(
        site_names: Vec<String>,
        topic_names: Vec<String>,
        skill_names: Vec<String>,
        mut out: Box<dyn Write + Send>,
    ) -> ContactLog {
        let error = writeln!(out, "{HEADER}").err();
        ContactLog {
            open: Vec::new(),
            site_names,
            topic_names,
            skill_names,
            day_ms: 86_400_000,
            out,
            error,
            written: 0,
        }
    }

    fn slot(&mut self, slot: usize) -> &mut Open {
        if slot >= self.open.len() {
            self.open.resize(slot + 1, Open::default());
        }
        &mut self.open[slot]
    }

    /// A contact arrived (inbound or callback) into slot `slot`.
    #[allow(clippy::too_many_arguments)]
    pub fn arrived(
        &mut self,
        slot: usize,
        now_ms: u64,
        site: u16,
        callback: bool,
        chat: bool,
        topic: Option<u16>,
        skill: u16,
    ) {
        *self.slot(slot) = Open {
            arrived_ms: now_ms,
            entry_site: site,
            site,
            callback,
            chat,
            topic: topic.unwrap_or(u16::MAX),
            skill,
            first: Leg {
                waiting_since_ms: now_ms,
                ..Leg::default()
            },
            second: None,
        };
    }

    /// The bot finished a voice call: written at once.
    pub fn bot(&mut self, now_ms: u64, site: u16, topic: u16, skill: u16) {
        let record = Open {
            arrived_ms: now_ms,
            entry_site: site,
            site,
            callback: false,
            chat: false,
            topic,
            skill,
            first: Leg {
                waiting_since_ms: now_ms,
                outcome: Outcome::Bot,
                ..Leg::default()
            },
            second: None,
        };
        self.write(&record);
    }

    fn leg(&mut self, slot: usize) -> &mut Leg {
        let open = self.slot(slot);
        match open.second.as_mut() {
            Some(second) => second,
            None => &mut open.first,
        }
    }

    /// An agent answered (the current leg).
    pub fn answered(&mut self, slot: usize, now_ms: u64) {
        let leg = self.leg(slot);
        if leg.outcome == Outcome::Open {
            leg.outcome = Outcome::Answered;
            leg.wait_ms = Some(now_ms.saturating_sub(leg.waiting_since_ms));
            leg.answered_at_ms = Some(now_ms);
        }
    }

    /// The caller hung up while waiting (the current leg).
    pub fn abandoned(&mut self, slot: usize, now_ms: u64) {
        let leg = self.leg(slot);
        if leg.outcome == Outcome::Open {
            leg.outcome = Outcome::Abandoned;
            leg.wait_ms = Some(now_ms.saturating_sub(leg.waiting_since_ms));
        }
    }

    /// Busy tone.
    pub fn blocked(&mut self, slot: usize) {
        let leg = self.leg(slot);
        if leg.outcome == Outcome::Open {
            leg.outcome = Outcome::Blocked;
        }
    }

    /// The current leg's talk ended (also when it ends in a transfer).
    pub fn talk_ended(&mut self, slot: usize, now_ms: u64) {
        let leg = self.leg(slot);
        if let (Some(answered), None) = (leg.answered_at_ms, leg.handle_ms) {
            leg.handle_ms = Some(now_ms.saturating_sub(answered));
        }
    }

    /// Line 1 transferred it: a second leg starts waiting.
    pub fn transferred(&mut self, slot: usize, now_ms: u64) {
        self.talk_ended(slot, now_ms);
        let open = self.slot(slot);
        if open.second.is_none() {
            open.second = Some(Leg {
                waiting_since_ms: now_ms,
                ..Leg::default()
            });
        }
    }

    /// It moved to another site.
    pub fn moved(&mut self, slot: usize, site: u16) {
        self.slot(slot).site = site;
    }

    /// It left: write its record.
    pub fn close(&mut self, slot: usize) {
        if let Some(record) = self.open.get(slot).copied() {
            self.write(&record);
        }
    }

    fn write(&mut self, record: &Open) {
        if self.error.is_some() {
            return;
        }
        let name = |names: &[String], index: u16| {
            names.get(usize::from(index)).cloned().unwrap_or_default()
        };
        let seconds = |ms: Option<u64>| {
            ms.map_or_else(String::new, |ms| format!("{:.3}", ms as f64 / 1000.0))
        };
        let second = record.second.unwrap_or_default();
        let line = format!(
            "{},{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            record.arrived_ms / self.day_ms,
            (record.arrived_ms % self.day_ms) as f64 / 1000.0,
            name(&self.site_names, record.entry_site),
            name(&self.site_names, record.site),
            if record.callback {
                "callback"
            } else {
                "inbound"
            },
            if record.chat { "chat" } else { "voice" },
            name(&self.topic_names, record.topic),
            name(&self.skill_names, record.skill),
            record.first.outcome.as_str(),
            seconds(record.first.wait_ms),
            seconds(record.first.handle_ms),
            u8::from(record.second.is_some()),
            if record.second.is_some() {
                second.outcome.as_str()
            } else {
                ""
            },
            seconds(second.wait_ms),
            seconds(second.handle_ms),
        );
        if let Err(error) = writeln!(self.out, "{line}") {
            self.error = Some(error);
        } else {
            self.written += 1;
        }
    }

    /// Writes the records still open (as `open`), flushes, and returns how many were written.
    pub fn finish(
        &mut self,
        live_slots: impl Iterator<Item = usize>,
    ) -> Result<u64, std::io::Error> {
        for slot in live_slots {
            self.close(slot);
        }
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        self.out.flush()?;
        Ok(self.written)
    }
}

/// Why a logged run failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The simulation failed.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// A record could not be written.
    #[error("cannot write contact records: {0}")]
    Write(#[from] std::io::Error),
}

/// Simulates like [`crate::engine::simulate`] and writes a record per contact into `out`;
/// returns the report and how many records were written.
pub fn simulate_logged(
    scenario: &crate::scenario::Scenario,
    seed: u64,
    progress: Option<&crate::engine::Progress<'_>>,
    out: Box<dyn Write + Send>,
) -> Result<(crate::report::RunReport, u64), LogError> {
    let mut engine = crate::engine::Engine::new(scenario, seed)?;
    let log = ContactLog::new(
        scenario
            .sites
            .iter()
            .map(|site| site.name.clone())
            .collect(),
        scenario
            .topics
            .iter()
            .map(|topic| topic.name.clone())
            .collect(),
        engine.skills().names.clone(),
        out,
    );
    engine.log_contacts(log);
    engine.run(progress)?;
    let written = engine.finish_contact_log().unwrap_or(Ok(0))?;
    Ok((engine.report(scenario, seed), written))
}
