//! `calibrate`: a scenario from history — per-contact records in the format `run --contacts`
//! writes (`contacts.csv`, see [`crate::contacts`]) over any number of days and files.
//!
//! What is estimated, and how:
//!
//! - volume: inbound contacts per day (bot-answered calls included, callbacks not), their mean
//!   is `contacts_per_day`; `day_factors` are the means per weekday position (day index mod 7)
//!   over that mean, one per history day up to seven; `season_factor` is 1 (the history's level
//!   is in `contacts_per_day`).
//! - intraday profile: inbound arrivals per interval over all days, from the first to the last
//!   interval with arrivals.
//! - channel, topic and site mix: shares of inbound contacts; a topic's skill is the skill its
//!   contacts queued for.
//! - bot share: bot-finished calls over the voice calls of the bot's topic.
//! - transfer share: transferred over answered inbound voice contacts of the transfer source.
//! - handle times: lognormal by maximum likelihood (mean and variance of the log), reported
//!   as mean and CV, with the Kolmogorov–Smirnov distance D between the sample and the fit as
//!   the goodness-of-fit figure; per channel and skill in the report, pooled into the
//!   scenario's voice / chat / line-2 distributions.
//! - patience: exponential by maximum likelihood with censoring. Every waiting leg of an
//!   inbound contact (the first wait, and the line-2 wait after a transfer: the engine and real
//!   callers draw a new patience there) is one observation: an abandonment is an event at its
//!   wait, an answer is a censored observation at its wait (the caller would have waited at
//!   least that long). A leg answered after the ring time alone (it never queued) is no
//!   observation: it was never at risk (the template's `ring_time_s` is the history's ring
//!   time). The estimate is Σ waits / abandonments; its 95% interval uses the
//!   χ² approximation `mean · (1 ± 1.96/√abandonments)`.
//!
//! Without per-contact records (directories holding only `run`'s interval reports) a coarser
//! calibration runs instead: see [`crate::calibrate_intervals`].
//!
//! Everything the history cannot tell (sites' staffing, targets, ring and wrap-up time,
//! callbacks, overflow, priorities) comes from a template scenario (the built-in default unless
//! `--template` names one); its sites must be the history's sites.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::contacts::{HEADER, Outcome};
use crate::scenario::{
    BotConfig, Distribution, MINUTES_PER_DAY, Scenario, ScenarioError, TopicConfig, clock_of,
};

/// Bound on records read, so a wrong file cannot exhaust memory: records are held in memory
/// (about 150 bytes each, so the bound is about 1.5 GB; a year of the 14-site scenario is
/// 6.1 million records).
pub const RECORDS_MAX: usize = 10_000_000;
/// Waits up to the ring time plus this are "answered at once" (records have millisecond
/// resolution).
pub const RING_TOLERANCE_S: f64 = 0.001;
/// Days in a week: day factors repeat with this period.
pub const WEEK_DAYS: usize = 7;

/// Why calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not a contact record.
    #[error("{path}: line {line}: {message}")]
    Record {
        /// Path.
        path: String,
        /// Line, 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The history does not support an estimate.
    #[error("history: {0}")]
    History(String),
    /// The template scenario could not be loaded, or the result does not validate.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
}

/// One parsed record.
#[derive(Debug, Clone)]
struct Record {
    day: usize,
    arrived_s: f64,
    entry_site: String,
    callback: bool,
    chat: bool,
    topic: String,
    skill: String,
    outcome: Outcome,
    wait_s: Option<f64>,
    handle_s: Option<f64>,
    transferred: bool,
    line2_outcome: Option<Outcome>,
    line2_wait_s: Option<f64>,
    line2_handle_s: Option<f64>,
}

/// A lognormal fit.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LognormalFit {
    /// Observations.
    pub samples: usize,
    /// Mean, seconds.
    pub mean_s: f64,
    /// Coefficient of variation.
    pub cv: f64,
    /// Kolmogorov–Smirnov distance between the sample and the fitted distribution.
    pub ks_distance: f64,
    /// 5% critical value of D for this sample size (1.36/√n; the parameters being fitted
    /// makes it conservative).
    pub ks_critical_5: f64,
}

/// The patience estimate.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct PatienceFit {
    /// Waiting legs observed.
    pub observations: usize,
    /// Of those, abandonments (the rest are censored by an answer).
    pub abandonments: usize,
    /// Exponential mean, seconds (maximum likelihood with censoring).
    pub mean_s: f64,
    /// 95% confidence half-width of the mean, seconds.
    pub half_width_95_s: f64,
}

/// What `calibrate` found.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// Days of history.
    pub days: usize,
    /// Records read.
    pub records: usize,
    /// Inbound contacts per day (mean).
    pub contacts_per_day: f64,
    /// Handle-time fits per (channel, skill), plus "line2" for transferred legs.
    pub handle_times: BTreeMap<String, LognormalFit>,
    /// Patience.
    pub patience: PatienceFit,
    /// The scenario.
    #[serde(skip)]
    pub scenario: Scenario,
}

/// Files to read: each path is a `contacts.csv` or a directory holding one.
pub fn input_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|path| {
            if path.is_dir() {
                path.join("contacts.csv")
            } else {
                path.clone()
            }
        })
        .collect()
}

/// Reads the history and builds a scenario on `template`.
pub fn calibrate(paths: &[PathBuf], template: &Scenario) -> Result<Calibration, CalibrateError> {
    calibrate_dated(paths, template, None)
}

/// [`calibrate`] for history whose first day is `start_date` ("YYYY-MM-DD"): the scenario then
/// gets a `[calendar]` fitted to the daily volumes (weekday factors and the template's season,
/// or mid-autumn to mid-spring) instead of weekday-position factors.
pub fn calibrate_dated(
    paths: &[PathBuf],
    template: &Scenario,
    start_date: Option<&str>,
) -> Result<Calibration, CalibrateError> {
    let interval_only = paths
        .iter()
        .filter(|path| crate::calibrate_intervals::has_only_interval_reports(path))
        .count();
    if interval_only == paths.len() && !paths.is_empty() {
        return crate::calibrate_intervals::calibrate(paths, template);
    }
    if interval_only > 0 {
        return Err(CalibrateError::History(
            "some history directories have per-contact records and some only interval reports; \
             give one kind"
                .to_owned(),
        ));
    }
    let mut records = Vec::new();
    let mut day_offset = 0;
    for path in input_files(paths) {
        let file = std::fs::File::open(&path).map_err(|source| CalibrateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let file_records = parse(
            &path,
            std::io::BufReader::new(file),
            RECORDS_MAX - records.len(),
        )?;
        let days = file_records
            .iter()
            .map(|record| record.day + 1)
            .max()
            .unwrap_or(0);
        records.extend(file_records.into_iter().map(|mut record| {
            record.day += day_offset;
            record
        }));
        day_offset += days;
    }
    estimate(&records, day_offset, template, start_date)
}

/// Parses records from `reader`, at most `records_max` of them.
fn parse(
    path: &Path,
    reader: impl std::io::BufRead,
    records_max: usize,
) -> Result<Vec<Record>, CalibrateError> {
    let error = |line: usize, message: String| CalibrateError::Record {
        path: path.display().to_string(),
        line,
        message,
    };
    let read_error = |source| CalibrateError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut lines = reader.lines();
    let header = lines.next().transpose().map_err(read_error)?;
    if header.as_deref().map(str::trim) != Some(HEADER) {
        return Err(error(1, format!("expected the header `{HEADER}`")));
    }
    let mut records = Vec::new();
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let line = line.map_err(read_error)?;
        if line.trim().is_empty() {
            continue;
        }
        if records.len() >= records_max {
            return Err(CalibrateError::History(format!(
                "more than {RECORDS_MAX} records in all (records are held in memory)"
            )));
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 15 {
            return Err(error(
                number,
                format!("{} fields, expected 15", fields.len()),
            ));
        }
        let number_field = |column: usize, name: &str| -> Result<Option<f64>, CalibrateError> {
            let field = fields[column].trim();
            if field.is_empty() {
                return Ok(None);
            }
            match field.parse::<f64>() {
                Ok(value) if value.is_finite() && value >= 0.0 => Ok(Some(value)),
                _ => Err(error(
                    number,
                    format!("`{name}` is not a number ≥ 0: `{field}`"),
                )),
            }
        };
        let outcome = |column: usize| -> Result<Option<Outcome>, CalibrateError> {
            let field = fields[column].trim();
            if field.is_empty() {
                return Ok(None);
            }
            Outcome::parse(field)
                .map(Some)
                .ok_or_else(|| error(number, format!("unknown outcome `{field}`")))
        };
        let day = fields[0]
            .trim()
            .parse::<usize>()
            .map_err(|_| error(number, format!("`day` is not a day index: `{}`", fields[0])))?;
        let arrived_s = number_field(1, "arrived_s")?
            .filter(|seconds| *seconds < f64::from(MINUTES_PER_DAY) * 60.0)
            .ok_or_else(|| error(number, "`arrived_s` must lie within the day".to_owned()))?;
        records.push(Record {
            day,
            arrived_s,
            entry_site: fields[2].trim().to_owned(),
            callback: match fields[4].trim() {
                "inbound" => false,
                "callback" => true,
                other => return Err(error(number, format!("unknown direction `{other}`"))),
            },
            chat: match fields[5].trim() {
                "voice" => false,
                "chat" => true,
                other => return Err(error(number, format!("unknown channel `{other}`"))),
            },
            topic: fields[6].trim().to_owned(),
            skill: fields[7].trim().to_owned(),
            outcome: outcome(8)?.ok_or_else(|| error(number, "`outcome` is empty".to_owned()))?,
            wait_s: number_field(9, "wait_s")?,
            handle_s: number_field(10, "handle_s")?,
            transferred: fields[11].trim() == "1",
            line2_outcome: outcome(12)?,
            line2_wait_s: number_field(13, "line2_wait_s")?,
            line2_handle_s: number_field(14, "line2_handle_s")?,
        });
    }
    Ok(records)
}

fn estimate(
    records: &[Record],
    days: usize,
    template: &Scenario,
    start_date: Option<&str>,
) -> Result<Calibration, CalibrateError> {
    let inbound: Vec<&Record> = records.iter().filter(|record| !record.callback).collect();
    if inbound.is_empty() || days == 0 {
        return Err(CalibrateError::History("no inbound contacts".to_owned()));
    }
    let total = inbound.len() as f64;
    let contacts_per_day = total / days as f64;
    let mut scenario = template.clone();
    scenario.name = format!(
        "calibrated from {days} day(s) of history ({} contacts)",
        inbound.len()
    );
    scenario.outages.clear();

    // Volume and weekday factors.
    let mut per_day = vec![0.0; days];
    for record in &inbound {
        per_day[record.day] += 1.0;
    }
    let positions = days.min(WEEK_DAYS);
    let mut sums = vec![(0.0, 0usize); positions];
    for (day, count) in per_day.iter().enumerate() {
        let slot = &mut sums[day % positions];
        slot.0 += count;
        slot.1 += 1;
    }
    scenario.volume.contacts_per_day = contacts_per_day;
    scenario.volume.season_factor = 1.0;
    scenario.volume.day_factors = sums
        .iter()
        .map(|(sum, count)| sum / *count as f64 / contacts_per_day)
        .collect();
    scenario.calendar = None;
    if let Some(start_date) = start_date {
        if days > crate::scenario::DAYS_MAX {
            return Err(CalibrateError::History(format!(
                "{days} days of history; a calendar covers at most {}",
                crate::scenario::DAYS_MAX
            )));
        }
        let season = template
            .calendar
            .as_ref()
            .and_then(|calendar| calendar.season.as_ref())
            .map_or(crate::calendar::SEASON_DEFAULT, |season| {
                (season.from.as_str(), season.to.as_str())
            });
        let (base, calendar) =
            crate::calendar::fit(&per_day, start_date, season).map_err(|problem| {
                CalibrateError::History(format!("{}: {}", problem.field, problem.message))
            })?;
        scenario.volume.contacts_per_day = base;
        scenario.calendar = Some(calendar);
    }

    // Intraday profile.
    let interval_s = f64::from(template.interval_minutes) * 60.0;
    let mut profile = vec![0.0; template.intervals_per_day()];
    for record in &inbound {
        let index = ((record.arrived_s / interval_s) as usize).min(profile.len() - 1);
        profile[index] += 1.0;
    }
    let first = profile.iter().position(|count| *count > 0.0).unwrap_or(0);
    let last = profile.iter().rposition(|count| *count > 0.0).unwrap_or(0);
    scenario.profile.start = clock_of(first as u32 * template.interval_minutes);
    scenario.profile.shares = profile[first..=last]
        .iter()
        .map(|count| count / total)
        .collect();

    // Channel, sites, topics, bot.
    scenario.channels.chat_share = share(&inbound, |record| record.chat);
    for site in &mut scenario.sites {
        site.volume_share = share(&inbound, |record| record.entry_site == site.name);
    }
    if let Some(unknown) = inbound
        .iter()
        .find(|record| template.site_index(&record.entry_site).is_none())
    {
        return Err(CalibrateError::History(format!(
            "site `{}` is not in the template scenario",
            unknown.entry_site
        )));
    }
    let mut topics: BTreeMap<&str, (usize, BTreeMap<&str, usize>)> = BTreeMap::new();
    for record in &inbound {
        let entry = topics.entry(record.topic.as_str()).or_default();
        entry.0 += 1;
        *entry.1.entry(record.skill.as_str()).or_default() += 1;
    }
    scenario.topics = topics
        .iter()
        .map(|(name, (count, skills))| TopicConfig {
            name: (*name).to_owned(),
            share: *count as f64 / total,
            skill: skills
                .iter()
                .max_by_key(|(_, count)| **count)
                .map(|(skill, _)| (*skill).to_owned())
                .unwrap_or_default(),
            priority: template
                .topics
                .iter()
                .find(|topic| topic.name == *name)
                .map_or(0, |topic| topic.priority),
        })
        .collect();
    scenario.bot = bot(&inbound);

    // Transfers and handle times.
    let mut handle_times = BTreeMap::new();
    let mut voice = Vec::new();
    let mut chat = Vec::new();
    let mut line2 = Vec::new();
    let mut by_key: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for record in &inbound {
        if let Some(handle) = record
            .handle_s
            .filter(|_| record.outcome == Outcome::Answered)
        {
            let channel = if record.chat { "chat" } else { "voice" };
            by_key
                .entry(format!("{channel} {}", record.skill))
                .or_default()
                .push(handle);
            if record.chat {
                chat.push(handle)
            } else {
                voice.push(handle)
            }
        }
        if let Some(handle) = record
            .line2_handle_s
            .filter(|_| record.line2_outcome == Some(Outcome::Answered))
        {
            line2.push(handle);
        }
    }
    for (key, samples) in &mut by_key {
        if let Some(fit) = fit_lognormal(samples) {
            handle_times.insert(key.clone(), fit);
        }
    }
    let voice_fit = fit_lognormal(&mut voice).ok_or_else(|| {
        CalibrateError::History("no answered voice contacts with a handle time".to_owned())
    })?;
    scenario.handle_time.voice = lognormal(&voice_fit);
    if let Some(fit) = fit_lognormal(&mut chat) {
        scenario.handle_time.chat = lognormal(&fit);
    }
    if let Some(transfer) = scenario.transfer.as_mut() {
        let answered_source = inbound
            .iter()
            .filter(|record| {
                !record.chat
                    && record.skill == transfer.from_skill
                    && record.outcome == Outcome::Answered
            })
            .count();
        let transferred = inbound.iter().filter(|record| record.transferred).count();
        transfer.share = if answered_source > 0 {
            transferred as f64 / answered_source as f64
        } else {
            0.0
        };
        if let Some(fit) = fit_lognormal(&mut line2) {
            transfer.handle_time = lognormal(&fit);
            handle_times.insert("line2 (transferred legs)".to_owned(), fit);
        }
    }

    let patience = fit_patience(&inbound, template.ring_time_s)?;
    scenario.patience = Distribution::Exponential {
        mean_s: patience.mean_s,
    };
    // The result must be a valid scenario (shares summing to one, staffing where there is
    // demand); check it the same way a file is checked.
    let text = toml::to_string(&scenario)
        .map_err(|error| CalibrateError::History(format!("cannot encode the scenario: {error}")))?;
    let scenario = Scenario::from_toml(&text, "calibrated scenario")?;
    Ok(Calibration {
        days,
        records: records.len(),
        contacts_per_day,
        handle_times,
        patience,
        scenario,
    })
}

fn share(records: &[&Record], pick: impl Fn(&Record) -> bool) -> f64 {
    records.iter().filter(|record| pick(record)).count() as f64 / records.len().max(1) as f64
}

fn bot(inbound: &[&Record]) -> Option<BotConfig> {
    let mut by_topic: BTreeMap<&str, usize> = BTreeMap::new();
    for record in inbound
        .iter()
        .filter(|record| record.outcome == Outcome::Bot)
    {
        *by_topic.entry(record.topic.as_str()).or_default() += 1;
    }
    let (topic, handled) = by_topic.into_iter().max_by_key(|(_, count)| *count)?;
    let voice_calls = inbound
        .iter()
        .filter(|record| !record.chat && record.topic == topic)
        .count();
    Some(BotConfig {
        topic: topic.to_owned(),
        share: handled as f64 / voice_calls.max(1) as f64,
    })
}

fn lognormal(fit: &LognormalFit) -> Distribution {
    Distribution::Lognormal {
        mean_s: fit.mean_s,
        cv: fit.cv,
    }
}

/// Lognormal maximum-likelihood fit and its Kolmogorov–Smirnov distance (sorts `samples`).
pub fn fit_lognormal(samples: &mut [f64]) -> Option<LognormalFit> {
    let positive: Vec<f64> = samples
        .iter()
        .copied()
        .filter(|value| *value > 0.0)
        .collect();
    let count = positive.len();
    if count < 2 {
        return None;
    }
    let logs: Vec<f64> = positive.iter().map(|value| value.ln()).collect();
    let mu = logs.iter().sum::<f64>() / count as f64;
    let variance = logs.iter().map(|log| (log - mu).powi(2)).sum::<f64>() / count as f64;
    let sigma = variance.sqrt();
    if sigma <= 0.0 {
        return None;
    }
    let mut sorted = positive;
    sorted.sort_by(f64::total_cmp);
    let mut distance: f64 = 0.0;
    for (index, value) in sorted.iter().enumerate() {
        let fitted = normal_cdf((value.ln() - mu) / sigma);
        let below = index as f64 / count as f64;
        let above = (index + 1) as f64 / count as f64;
        distance = distance
            .max((fitted - below).abs())
            .max((above - fitted).abs());
    }
    Some(LognormalFit {
        samples: count,
        mean_s: (mu + variance / 2.0).exp(),
        cv: (variance.exp() - 1.0).sqrt(),
        ks_distance: distance,
        ks_critical_5: 1.36 / (count as f64).sqrt(),
    })
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 for erf, |error| < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let polynomial = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - polynomial * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

fn fit_patience(inbound: &[&Record], ring_time_s: f64) -> Result<PatienceFit, CalibrateError> {
    let mut exposure_s = 0.0;
    let mut observations = 0;
    let mut abandonments = 0;
    // A leg answered after the ring time alone never waited in a queue: the caller was never
    // at risk of hanging up on hold, so it is no observation (counting its ring time as
    // exposure would bias the mean up by a third on the default day).
    let at_once_s = ring_time_s + RING_TOLERANCE_S;
    let mut observe = |outcome: Option<Outcome>, wait: Option<f64>| {
        if let (Some(outcome), Some(wait)) = (outcome, wait) {
            match outcome {
                Outcome::Abandoned => {
                    abandonments += 1;
                    observations += 1;
                    exposure_s += wait;
                }
                Outcome::Answered if wait > at_once_s => {
                    observations += 1;
                    exposure_s += wait;
                }
                _ => {}
            }
        }
    };
    for record in inbound {
        observe(Some(record.outcome), record.wait_s);
        observe(record.line2_outcome, record.line2_wait_s);
    }
    if abandonments == 0 {
        return Err(CalibrateError::History(
            "no abandonments: patience cannot be estimated (use `distribution = \"none\"`)"
                .to_owned(),
        ));
    }
    let mean_s = exposure_s / abandonments as f64;
    Ok(PatienceFit {
        observations,
        abandonments,
        mean_s,
        half_width_95_s: mean_s * 1.96 / (abandonments as f64).sqrt(),
    })
}

/// Terminal summary.
pub fn render(calibration: &Calibration) -> String {
    let mut out = String::new();
    let scenario = &calibration.scenario;
    let _ = writeln!(
        out,
        "{} records over {} day(s): {:.0} inbound contacts per day, day factors {:?}",
        calibration.records,
        calibration.days,
        calibration.contacts_per_day,
        scenario
            .volume
            .day_factors
            .iter()
            .map(|factor| (factor * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    let _ = writeln!(
        out,
        "chat share {:.3}; bot {}; transfer share {}",
        scenario.channels.chat_share,
        scenario.bot.as_ref().map_or_else(
            || "none".to_owned(),
            |bot| format!("{:.3} of `{}` calls", bot.share, bot.topic)
        ),
        scenario.transfer.as_ref().map_or_else(
            || "none".to_owned(),
            |transfer| format!("{:.3}", transfer.share)
        )
    );
    if calibration.handle_times.is_empty() {
        let _ = writeln!(
            out,
            "handle times: means from interval reports (voice {:?} s, chat {:?} s), CV from the \
             template; no per-contact records, so no fit and no goodness of fit",
            scenario.handle_time.voice.mean_s().map(|mean| mean.round()),
            scenario.handle_time.chat.mean_s().map(|mean| mean.round())
        );
    } else {
        let _ = writeln!(out, "handle times (lognormal, maximum likelihood):");
    }
    if !calibration.handle_times.is_empty() {
        let _ = writeln!(
            out,
            "  {:<28} {:>8} {:>9} {:>6} {:>8} {:>10}",
            "channel / skill", "n", "mean s", "CV", "KS D", "D 5% crit"
        );
    }
    for (key, fit) in &calibration.handle_times {
        let _ = writeln!(
            out,
            "  {:<28} {:>8} {:>9.1} {:>6.3} {:>8.4} {:>10.4}",
            key, fit.samples, fit.mean_s, fit.cv, fit.ks_distance, fit.ks_critical_5
        );
    }
    let patience = &calibration.patience;
    let _ = writeln!(
        out,
        "patience: exponential, maximum likelihood with answered waits censored: mean {:.1} ± {:.1} s \
         ({} abandonments in {} waits)",
        patience.mean_s, patience.half_width_95_s, patience.abandonments, patience.observations
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lognormal_fit_recovers_parameters_of_a_known_sample() {
        // Quantiles of a lognormal with mu = 5, sigma = 0.5 (a perfect sample).
        let count = 2_000;
        let mut samples: Vec<f64> = (0..count)
            .map(|index| {
                let p = (index as f64 + 0.5) / count as f64;
                (5.0 + 0.5 * inverse_normal(p)).exp()
            })
            .collect();
        let fit = fit_lognormal(&mut samples).unwrap();
        let mean = (5.0f64 + 0.125).exp();
        assert!((fit.mean_s - mean).abs() / mean < 0.01, "{fit:?}");
        let cv = (0.25f64.exp() - 1.0).sqrt();
        assert!((fit.cv - cv).abs() < 0.01, "{fit:?}");
        assert!(fit.ks_distance < 0.01, "{fit:?}");
    }

    /// Bisection on the CDF (test helper).
    fn inverse_normal(p: f64) -> f64 {
        let (mut low, mut high) = (-10.0, 10.0);
        for _ in 0..100 {
            let middle = (low + high) / 2.0;
            if normal_cdf(middle) < p {
                low = middle;
            } else {
                high = middle;
            }
        }
        (low + high) / 2.0
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
    }

    #[test]
    fn a_bad_record_names_its_line() {
        let text = format!(
            "{HEADER}\n0,10.0,moscow,moscow,inbound,voice,order,line1,answered,1.0,100.0,0,,,\n0,x\n"
        );
        let error = parse(Path::new("h.csv"), text.as_bytes(), 10)
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 3"), "{error}");
    }
}
