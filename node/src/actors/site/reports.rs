//! Daily interval reports (issue 8, defect 4): one accumulator per local day of the site.
//!
//! The domain's [`Metrics`] counts in domain time; this book feeds it the time within the
//! site's local day (`[site] utc_offset_minutes`), so interval `i` of a day is always the
//! local clock's `i`-th interval. At local midnight the day is closed: its report is written
//! to `data_dir/reports/YYYY-MM-DD.json` and a new accumulator starts (agents' current states
//! are restated at 00:00 so their time keeps counting). The current day is written there too
//! every [`FLUSH_INTERVAL`] while it changes, so a restarted node reloads the day's figures
//! and adds to them. Files are versioned, validated on load and written atomically (temp file,
//! fsync, rename) by a writer thread of their own, never on the Site actor's thread
//! (`report_writer`); a corrupt or foreign file is logged and skipped, never fatal. Files of days
//! older than [`DAYS_KEPT`] are removed.
//!
//! Known limit: queue lengths are not restated at midnight (a queue that is not empty at
//! 00:00 counts from its next change).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use callgrid_domain::{
    AgentCounters, AgentId, Counters, Event, EventKind, Metrics, MetricsConfig, MetricsReport, Row,
    ServiceLevelPolicy, SiteId, SkillId, TimeMs,
};
use serde::{Deserialize, Serialize};

use super::report_writer::DayWriter;
use crate::state::model::DAY_MS;

/// Local days kept on disk: today and the 35 days before it.
pub const DAYS_KEPT: i64 = 35;
/// How often the current day is written while it changes.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Version of the day file format.
const FILE_VERSION: u32 = 1;
/// Days from 0000-03-01 (proleptic) to 1970-01-01, for the civil date conversion.
const UNIX_EPOCH_DAYS: i64 = 719_468;

/// A local calendar day of the site, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalDay(i64);

impl LocalDay {
    /// The local day of `utc_ms` and the time within it (ms since local midnight).
    pub fn of(utc_ms: u64, offset_minutes: i16) -> (LocalDay, u64) {
        let local = i128::from(utc_ms) + i128::from(offset_minutes) * 60_000;
        let day = local.div_euclid(i128::from(DAY_MS));
        let within = local.rem_euclid(i128::from(DAY_MS));
        (
            LocalDay(i64::try_from(day).unwrap_or(0)),
            u64::try_from(within).unwrap_or(0),
        )
    }

    /// Parses `YYYY-MM-DD` (a real calendar date).
    pub fn parse(text: &str) -> Option<LocalDay> {
        let mut parts = text.split('-');
        let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
            return None;
        }
        let year: i64 = year.parse().ok()?;
        let month: i64 = month.parse().ok()?;
        let day: i64 = day.parse().ok()?;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        // Howard Hinnant's days_from_civil.
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let year_of_era = y - era * 400;
        let month_index = (month + 9) % 12;
        let day_of_year = (153 * month_index + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        Some(LocalDay(era * 146_097 + day_of_era - UNIX_EPOCH_DAYS))
    }

    /// (year, month, day).
    fn civil(self) -> (i64, i64, i64) {
        let z = self.0 + UNIX_EPOCH_DAYS;
        let era = z.div_euclid(146_097);
        let day_of_era = z - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_index + 2) / 5 + 1;
        let month = if month_index < 10 {
            month_index + 3
        } else {
            month_index - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    /// Days from `self` back to `earlier`.
    pub fn days_since(self, earlier: LocalDay) -> i64 {
        self.0 - earlier.0
    }

    /// The day's local midnight as ms since the Unix epoch (negative before 1970).
    pub fn midnight_utc_ms(self, offset_minutes: i16) -> i64 {
        let day_ms = i64::try_from(DAY_MS).unwrap_or(i64::MAX);
        self.0
            .saturating_mul(day_ms)
            .saturating_sub(i64::from(offset_minutes) * 60_000)
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for LocalDay {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.civil();
        write!(formatter, "{year:04}-{month:02}-{day:02}")
    }
}

/// One local day's report, as the API serves it: the day, the offset, and the domain report
/// (interval `start_ms` counts from the local midnight).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayReport {
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    /// The site's offset from UTC the day was counted in.
    pub utc_offset_minutes: i16,
    /// The figures.
    #[serde(flatten)]
    pub report: MetricsReport,
}

/// A day as stored on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DayFile {
    version: u32,
    site: String,
    date: String,
    utc_offset_minutes: i16,
    /// Time the figures cover (queue length averages of the totals).
    observed_ms: u64,
    /// True once the day is over.
    closed: bool,
    report: MetricsReport,
}

/// Why a day's report cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The day is not kept (in the future, older than [`DAYS_KEPT`], or never recorded).
    #[error("no report is kept for {0}")]
    NotKept(String),
}

/// The site's daily reports: the current day live, the closed days on disk.
#[derive(Debug)]
pub struct DayBook {
    directory: PathBuf,
    site: String,
    offset_minutes: i16,
    config: MetricsConfig,
    site_count: usize,
    skill_count: usize,
    day: LocalDay,
    live: Metrics,
    /// Today's figures from before a restart, added to the live ones.
    base: Option<DayFile>,
    /// Each agent's latest state change, restated at the start of a new day.
    agent_states: BTreeMap<AgentId, Event>,
    dirty: bool,
    /// Writes day files off the caller's thread.
    writer: DayWriter,
}

impl DayBook {
    /// Opens the book in `data_dir/reports` for the day of `now_utc_ms`, reloading today's
    /// figures written before a restart and removing days no longer kept.
    pub fn open(
        data_dir: &Path,
        site: &str,
        offset_minutes: i16,
        config: MetricsConfig,
        (site_count, skill_count): (usize, usize),
        now_utc_ms: u64,
    ) -> DayBook {
        let directory = data_dir.join("reports");
        if let Err(error) = std::fs::create_dir_all(&directory) {
            tracing::error!(path = %directory.display(), %error, "cannot create the reports directory; reports are kept in memory only");
        }
        let (day, _) = LocalDay::of(now_utc_ms, offset_minutes);
        let live = day_metrics(&config, site_count, skill_count);
        let mut book = DayBook {
            directory,
            site: site.to_string(),
            offset_minutes,
            config,
            site_count,
            skill_count,
            day,
            live,
            base: None,
            agent_states: BTreeMap::new(),
            dirty: false,
            writer: DayWriter::start(),
        };
        book.base = book.load(day);
        book.prune();
        book
    }

    /// Records one event that happened at `utc_ms`; rolls the day over first if needed.
    pub fn record(&mut self, event: &Event, utc_ms: u64) {
        let (day, within) = LocalDay::of(utc_ms, self.offset_minutes);
        if day > self.day {
            self.roll_to(day);
        }
        // A late event from before midnight counts at the start of the current day.
        let within = if day < self.day { 0 } else { within };
        // Every instant of the event moves into the local day's time base, not only `at`:
        // an answer counts in the interval its contact entered the queue.
        let local = event.moved_to(TimeMs(within));
        self.live.record(&local);
        if let EventKind::AgentStateChanged { agent, .. } = event.kind {
            self.agent_states.insert(agent, local);
        }
        self.dirty = true;
    }

    /// Rolls over at midnight even without traffic, and writes the current day if it changed.
    pub fn flush(&mut self, now_utc_ms: u64) {
        let (day, within) = LocalDay::of(now_utc_ms, self.offset_minutes);
        if day > self.day {
            self.roll_to(day);
        }
        if self.dirty && day == self.day {
            self.live.finish(TimeMs(within));
            let file = self.current_file(false);
            self.write(&file);
            self.dirty = false;
        }
    }

    /// The report of `date` (today when `None`).
    pub fn report(
        &mut self,
        date: Option<LocalDay>,
        now_utc_ms: u64,
    ) -> Result<DayReport, ReportError> {
        let (today, within) = LocalDay::of(now_utc_ms, self.offset_minutes);
        if today > self.day {
            self.roll_to(today);
        }
        let date = date.unwrap_or(self.day);
        if date == self.day {
            self.live.finish(TimeMs(within));
            let file = self.current_file(false);
            return Ok(DayReport {
                date: file.date,
                utc_offset_minutes: self.offset_minutes,
                report: file.report,
            });
        }
        if date > self.day || self.day.days_since(date) > DAYS_KEPT {
            return Err(ReportError::NotKept(date.to_string()));
        }
        let file = self
            .load(date)
            .ok_or_else(|| ReportError::NotKept(date.to_string()))?;
        Ok(DayReport {
            date: file.date,
            utc_offset_minutes: file.utc_offset_minutes,
            report: file.report,
        })
    }

    /// The current day as a file: the reloaded base plus the live figures.
    fn current_file(&self, closed: bool) -> DayFile {
        let live = self.live.report();
        let live_observed = self.live.observed_ms();
        let (report, observed_ms) = match &self.base {
            Some(base) => (
                merge(&base.report, &live, base.observed_ms + live_observed),
                base.observed_ms + live_observed,
            ),
            None => (live, live_observed),
        };
        let mut report = report;
        // Intervals with no traffic and no agent time (before the first event of the day) are
        // left out rather than listed as zeros.
        report.intervals.retain(|interval| {
            interval
                .sites
                .iter()
                .chain(&interval.queues)
                .any(|row| row.counters != Counters::default())
        });
        DayFile {
            version: FILE_VERSION,
            site: self.site.clone(),
            date: self.day.to_string(),
            utc_offset_minutes: self.offset_minutes,
            observed_ms,
            closed,
            report,
        }
    }

    /// Closes the current day (written as closed) and starts `day` with the agents' states.
    fn roll_to(&mut self, day: LocalDay) {
        debug_assert!(day > self.day, "days only move forward");
        self.live.finish(TimeMs(DAY_MS));
        let closed = self.current_file(true);
        self.write(&closed);
        tracing::info!(site = %self.site, day = %closed.date, "interval report day closed");
        self.day = day;
        self.base = None;
        self.live = day_metrics(&self.config, self.site_count, self.skill_count);
        for event in self.agent_states.values_mut() {
            event.at = TimeMs::ZERO;
            self.live.record(event);
        }
        self.dirty = true;
        self.prune();
    }

    fn path(&self, day: LocalDay) -> PathBuf {
        self.directory.join(format!("{day}.json"))
    }

    /// Hands a day file to the writer thread (atomic write: temp file, fsync, rename); the
    /// caller (the Site actor) does not wait for the disk.
    fn write(&self, file: &DayFile) {
        let path = self.directory.join(format!("{}.json", file.date));
        match serde_json::to_vec(file) {
            Ok(bytes) => self.writer.submit(path, bytes),
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot encode the interval report day");
            }
        }
    }

    /// Waits until every day handed to the writer is on disk (tests, shutdown).
    pub fn wait_written(&self) {
        self.writer.wait_idle();
    }

    /// Reads and validates a day file; a missing file is `None`, a bad one is logged.
    fn load(&self, day: LocalDay) -> Option<DayFile> {
        let path = self.path(day);
        let bytes = match self.writer.read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot read the interval report day");
                return None;
            }
        };
        let checked = serde_json::from_slice::<DayFile>(&bytes)
            .map_err(|error| error.to_string())
            .and_then(|file| self.validate(file, day));
        match checked {
            Ok(file) => Some(file),
            Err(reason) => {
                tracing::error!(path = %path.display(), %reason, "interval report day file skipped");
                None
            }
        }
    }

    fn validate(&self, file: DayFile, day: LocalDay) -> Result<DayFile, String> {
        if file.version != FILE_VERSION {
            return Err(format!(
                "version {} (expected {FILE_VERSION})",
                file.version
            ));
        }
        if file.site != self.site || file.date != day.to_string() {
            return Err(format!("holds {} of site {}", file.date, file.site));
        }
        let report = &file.report;
        if report.interval_ms != self.config.interval_ms() {
            return Err(format!("interval of {} ms", report.interval_ms));
        }
        let per_day = DAY_MS / self.config.interval_ms().max(1);
        let queue_rows = self.site_count * self.skill_count;
        let rows_fit = |sites: &[Row], queues: &[Row]| {
            sites.len() == self.site_count && queues.len() == queue_rows
        };
        if !rows_fit(&report.sites, &report.queues)
            || report.intervals.iter().any(|interval| {
                u64::from(interval.index) >= per_day || !rows_fit(&interval.sites, &interval.queues)
            })
        {
            return Err("rows do not fit the configured sites, skills or intervals".to_string());
        }
        Ok(file)
    }

    /// Removes day files older than [`DAYS_KEPT`] days (and stray temp files of those days).
    /// Removes day files older than [`DAYS_KEPT`] days (and stray temp files of those days),
    /// on the writer thread after the writes queued before.
    fn prune(&self) {
        let directory = self.directory.clone();
        let today = self.day;
        self.writer
            .after_writes(Box::new(move || prune_days(&directory, today)));
    }
}

/// Removes the day files in `directory` more than [`DAYS_KEPT`] days before `today`.
fn prune_days(directory: &Path, today: LocalDay) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(date) = name.to_str().and_then(|name| name.split('.').next()) else {
            continue;
        };
        let Some(day) = LocalDay::parse(date) else {
            continue;
        };
        if today.days_since(day) > DAYS_KEPT {
            if let Err(error) = std::fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), %error, "cannot remove an old report day");
            }
        }
    }
}

/// A day's accumulator: cells repeat daily, so every interval of the day has its own cell.
fn day_metrics(config: &MetricsConfig, site_count: usize, skill_count: usize) -> Metrics {
    let per_day = DAY_MS / config.interval_ms().max(1);
    Metrics::new_cyclic(
        config.clone(),
        site_count,
        skill_count,
        u32::try_from(per_day).unwrap_or(u32::MAX),
    )
}

/// Adds two reports of the same day (before and after a restart).
fn merge(base: &MetricsReport, live: &MetricsReport, span_ms: u64) -> MetricsReport {
    let policy = live.service_level_policy;
    let rows = |left: &[Row], right: &[Row], span: u64| -> Vec<Row> {
        left.iter()
            .zip(right)
            .map(|(left, right)| {
                let mut counters = left.counters;
                counters.merge(&right.counters);
                row(left.site, left.skill, counters, span, policy)
            })
            .collect()
    };
    let mut intervals: BTreeMap<u32, callgrid_domain::IntervalReport> = base
        .intervals
        .iter()
        .map(|interval| (interval.index, interval.clone()))
        .collect();
    for interval in &live.intervals {
        let merged = match intervals.get(&interval.index) {
            Some(earlier) => callgrid_domain::IntervalReport {
                index: interval.index,
                start_ms: interval.start_ms,
                sites: rows(&earlier.sites, &interval.sites, live.interval_ms),
                queues: rows(&earlier.queues, &interval.queues, live.interval_ms),
            },
            None => interval.clone(),
        };
        intervals.insert(interval.index, merged);
    }
    let mut agents: BTreeMap<AgentId, callgrid_domain::AgentRow> = base
        .agents
        .iter()
        .map(|agent| (agent.agent, agent.clone()))
        .collect();
    for agent in &live.agents {
        let counters = match agents.get(&agent.agent) {
            Some(earlier) => add_agent(&earlier.counters, &agent.counters),
            None => agent.counters,
        };
        agents.insert(
            agent.agent,
            callgrid_domain::AgentRow {
                agent: agent.agent,
                site: agent.site,
                occupancy: counters.occupancy(),
                aht_ms: counters.aht_ms(),
                counters,
            },
        );
    }
    let mut totals = base.totals.counters;
    totals.merge(&live.totals.counters);
    MetricsReport {
        interval_ms: live.interval_ms,
        service_level_target_ms: live.service_level_target_ms,
        service_level_policy: policy,
        totals: row(SiteId(0), None, totals, span_ms, policy),
        intervals: intervals.into_values().collect(),
        sites: rows(&base.sites, &live.sites, span_ms),
        queues: rows(&base.queues, &live.queues, span_ms),
        agents: agents.into_values().collect(),
    }
}

fn row(
    site: SiteId,
    skill: Option<SkillId>,
    counters: Counters,
    span_ms: u64,
    policy: ServiceLevelPolicy,
) -> Row {
    Row {
        site,
        skill,
        service_level: counters.service_level(policy),
        abandon_rate: counters.abandon_rate(),
        asa_ms: counters.asa_ms(),
        aht_ms: counters.aht_ms(),
        abandon_wait_ms_average: counters.abandon_wait_ms_average(),
        queue_length_average: counters.queue_length_average(span_ms),
        occupancy: counters.occupancy(),
        counters,
    }
}

fn add_agent(left: &AgentCounters, right: &AgentCounters) -> AgentCounters {
    AgentCounters {
        offered: left.offered + right.offered,
        answered: left.answered + right.answered,
        rejected: left.rejected + right.rejected,
        timed_out: left.timed_out + right.timed_out,
        transferred_out: left.transferred_out + right.transferred_out,
        handled: left.handled + right.handled,
        talk_ms_sum: left.talk_ms_sum + right.talk_ms_sum,
        hold_ms_sum: left.hold_ms_sum + right.hold_ms_sum,
        wrap_up_ms_sum: left.wrap_up_ms_sum + right.wrap_up_ms_sum,
        available_ms: left.available_ms + right.available_ms,
        reserved_ms: left.reserved_ms + right.reserved_ms,
        busy_ms: left.busy_ms + right.busy_ms,
        wrap_up_state_ms: left.wrap_up_state_ms + right.wrap_up_state_ms,
        not_ready_ms: left.not_ready_ms + right.not_ready_ms,
        staffed_ms: left.staffed_ms + right.staffed_ms,
    }
}

#[cfg(test)]
#[path = "reports_tests.rs"]
mod tests;
