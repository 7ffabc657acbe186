//! `calibrate` from interval reports alone, when no per-contact records exist: the
//! `intervals.csv` (chain rows), `site_intervals.csv` and `queue_intervals.csv` that `run`
//! writes, one directory per day (each file's rows need their `day`; a multi-day run's summed
//! rows have none and are refused).
//!
//! What interval reports can tell, and how it is estimated:
//! - volume and day factors: the chain rows' offered (inbound contacts reaching a queue, each
//!   once) per day, divided by `1 − the template's expected bot share` (bot-finished calls are
//!   not in interval reports);
//! - intraday profile: the chain rows' offered per interval;
//! - site shares: the site rows' `offered − overflowed_in` (callbacks included: a small bias);
//! - chat share: chat queues' offered over all first-line queues' offered;
//! - handle times: the mean only (queue rows' AHT weighted by answered, minus the template's
//!   wrap-up) for voice, chat and the transfer target; the CV stays the template's — interval
//!   reports carry no spread, so no lognormal is fitted and no goodness of fit exists;
//! - patience: exponential by maximum likelihood with censoring from the chain rows' sums:
//!   `(abandoned × mean abandon wait + answered × (ASA − ring time)) / abandoned` (an answer's
//!   ring time is not time at risk; exact for a contact answered at once, a slight
//!   understatement of exposure for one that queued).
//!
//! Topics, bot and transfer shares come from the template (interval reports have no topics).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::calibrate::{CalibrateError, Calibration, PatienceFit};
use crate::scenario::{Distribution, Scenario, clock_of};

/// One row of a report CSV (the columns used here).
#[derive(Debug, Clone)]
struct IntervalRow {
    day: usize,
    interval_start: String,
    site: String,
    queue: String,
    offered: f64,
    answered: f64,
    abandoned: f64,
    overflowed_in: f64,
    answer_speed_s_mean: f64,
    handle_time_s_mean: f64,
    abandon_wait_s_mean: f64,
}

fn read_rows(path: &Path) -> Result<Vec<IntervalRow>, CalibrateError> {
    let text = std::fs::read_to_string(path).map_err(|source| CalibrateError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let error = |line: usize, message: String| CalibrateError::Record {
        path: path.display().to_string(),
        line,
        message,
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| error(1, "empty file".to_owned()))?
        .split(',')
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|known| *known == name)
            .ok_or_else(|| error(1, format!("no column `{name}`")))
    };
    let columns = [
        column("day")?,
        column("interval_start")?,
        column("site")?,
        column("queue")?,
        column("offered")?,
        column("answered")?,
        column("abandoned")?,
        column("overflowed_in")?,
        column("answer_speed_s_mean")?,
        column("handle_time_s_mean")?,
        column("abandon_wait_s_mean")?,
    ];
    let mut rows = Vec::new();
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        if line.trim().is_empty() {
            continue;
        }
        // Site and queue names with commas are quoted by the writer; calibration needs
        // plain names.
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != header.len() {
            return Err(error(
                number,
                format!("{} fields, expected {}", fields.len(), header.len()),
            ));
        }
        let value = |position: usize| -> Result<f64, CalibrateError> {
            let field = fields[columns[position]].trim();
            match field.parse::<f64>() {
                Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
                _ => Err(error(
                    number,
                    format!(
                        "`{}` is not a number ≥ 0: `{field}`",
                        header[columns[position]]
                    ),
                )),
            }
        };
        let day = fields[columns[0]].trim().parse::<usize>().map_err(|_| {
            error(number, "no day: interval rows summed over several days cannot be calibrated; give one directory per day".to_owned())
        })?;
        rows.push(IntervalRow {
            day,
            interval_start: fields[columns[1]].trim().to_owned(),
            site: fields[columns[2]].trim().to_owned(),
            queue: fields[columns[3]].trim().to_owned(),
            offered: value(4)?,
            answered: value(5)?,
            abandoned: value(6)?,
            overflowed_in: value(7)?,
            answer_speed_s_mean: value(8)?,
            handle_time_s_mean: value(9)?,
            abandon_wait_s_mean: value(10)?,
        });
    }
    Ok(rows)
}

/// Whether `directory` holds interval reports but no per-contact records.
pub fn has_only_interval_reports(directory: &Path) -> bool {
    directory.is_dir()
        && !directory.join("contacts.csv").exists()
        && directory.join("intervals.csv").exists()
}

/// Calibrates from the interval reports in `directories` (one day each, in order).
pub fn calibrate(
    directories: &[PathBuf],
    template: &Scenario,
) -> Result<Calibration, CalibrateError> {
    let mut chain = Vec::new();
    let mut sites = Vec::new();
    let mut queues = Vec::new();
    let mut day_offset = 0;
    for directory in directories {
        let day_rows = read_rows(&directory.join("intervals.csv"))?;
        let days = day_rows.iter().map(|row| row.day + 1).max().unwrap_or(0);
        let shift = |mut rows: Vec<IntervalRow>| {
            for row in &mut rows {
                row.day += day_offset;
            }
            rows
        };
        chain.extend(shift(day_rows));
        sites.extend(shift(read_rows(&directory.join("site_intervals.csv"))?));
        queues.extend(shift(read_rows(&directory.join("queue_intervals.csv"))?));
        day_offset += days;
    }
    let days = day_offset;
    let total_queued: f64 = chain.iter().map(|row| row.offered).sum();
    if days == 0 || total_queued <= 0.0 {
        return Err(CalibrateError::History(
            "no contacts in the interval reports".to_owned(),
        ));
    }
    let mut scenario = template.clone();
    scenario.name = format!("calibrated from {days} day(s) of interval reports");
    scenario.outages.clear();
    scenario.calendar = None;

    // Bot-finished calls are not in interval reports: scale by the template's bot share.
    let bot_fraction: f64 = scenario
        .topics
        .iter()
        .map(|topic| {
            topic.share * (1.0 - scenario.channels.chat_share) * scenario.bot_share(&topic.name)
        })
        .sum();
    let mut per_day = vec![0.0; days];
    let mut profile: BTreeMap<String, f64> = BTreeMap::new();
    for row in &chain {
        per_day[row.day] += row.offered;
        *profile.entry(row.interval_start.clone()).or_default() += row.offered;
    }
    let contacts_per_day = total_queued / days as f64 / (1.0 - bot_fraction).max(1e-9);
    let positions = days.min(crate::calibrate::WEEK_DAYS);
    scenario.volume.contacts_per_day = contacts_per_day;
    scenario.volume.season_factor = 1.0;
    scenario.volume.day_factors = (0..positions)
        .map(|position| {
            let same: Vec<f64> = per_day
                .iter()
                .skip(position)
                .step_by(positions)
                .copied()
                .collect();
            same.iter().sum::<f64>() / same.len() as f64 / (total_queued / days as f64)
        })
        .collect();
    let mut shares = vec![0.0; template.intervals_per_day()];
    for (start, offered) in &profile {
        let index = template
            .interval_of(start)
            .map_err(CalibrateError::History)?;
        if let Some(slot) = shares.get_mut(index) {
            *slot += offered / total_queued;
        }
    }
    let first = shares.iter().position(|share| *share > 0.0).unwrap_or(0);
    let last = shares.iter().rposition(|share| *share > 0.0).unwrap_or(0);
    scenario.profile.start = clock_of(first as u32 * template.interval_minutes);
    scenario.profile.shares = shares[first..=last].to_vec();

    let arrivals = |name: &str| -> f64 {
        sites
            .iter()
            .filter(|row| row.site == name)
            .map(|row| row.offered - row.overflowed_in)
            .sum()
    };
    let all_arrivals: f64 = scenario.sites.iter().map(|site| arrivals(&site.name)).sum();
    for site in &mut scenario.sites {
        site.volume_share = arrivals(&site.name) / all_arrivals.max(1.0);
    }

    // Queues: `<skill>_voice` / `<skill>_chat`.
    let line2 = scenario
        .transfer_target()
        .map(|skill| format!("{skill}_voice"));
    let is_line2 = |queue: &str| line2.as_deref() == Some(queue);
    let chat_offered: f64 = queues
        .iter()
        .filter(|row| row.queue.ends_with("_chat"))
        .map(|row| row.offered)
        .sum();
    let first_line_offered: f64 = queues
        .iter()
        .filter(|row| !is_line2(&row.queue))
        .map(|row| row.offered)
        .sum();
    scenario.channels.chat_share = chat_offered / first_line_offered.max(1.0);
    let handle_mean = |pick: &dyn Fn(&str) -> bool| -> Option<f64> {
        let (sum, weight) = queues
            .iter()
            .filter(|row| pick(&row.queue) && row.answered > 0.0)
            .fold((0.0, 0.0), |(sum, weight), row| {
                (
                    sum + row.handle_time_s_mean * row.answered,
                    weight + row.answered,
                )
            });
        (weight > 0.0).then(|| (sum / weight - template.wrap_up_s).max(1.0))
    };
    let with_mean = |distribution: Distribution, mean: Option<f64>| match (distribution, mean) {
        (Distribution::Lognormal { cv, .. }, Some(mean_s)) => {
            Distribution::Lognormal { mean_s, cv }
        }
        (Distribution::Exponential { .. }, Some(mean_s)) => Distribution::Exponential { mean_s },
        (other, _) => other,
    };
    scenario.handle_time.voice = with_mean(
        scenario.handle_time.voice,
        handle_mean(&|queue| queue.ends_with("_voice") && !is_line2(queue)),
    );
    scenario.handle_time.chat = with_mean(
        scenario.handle_time.chat,
        handle_mean(&|queue| queue.ends_with("_chat")),
    );
    let line2_mean = handle_mean(&|queue| is_line2(queue));
    if let Some(transfer) = scenario.transfer.as_mut() {
        transfer.handle_time = with_mean(transfer.handle_time, line2_mean);
    }

    let abandoned: f64 = chain.iter().map(|row| row.abandoned).sum();
    if abandoned <= 0.0 {
        return Err(CalibrateError::History(
            "no abandonments: patience cannot be estimated".to_owned(),
        ));
    }
    let exposure_s: f64 = chain
        .iter()
        .map(|row| {
            row.abandoned * row.abandon_wait_s_mean
                + row.answered * (row.answer_speed_s_mean - template.ring_time_s).max(0.0)
        })
        .sum();
    let mean_s = exposure_s / abandoned;
    scenario.patience = Distribution::Exponential { mean_s };
    let text = toml::to_string(&scenario)
        .map_err(|error| CalibrateError::History(format!("cannot encode the scenario: {error}")))?;
    let scenario = Scenario::from_toml(&text, "calibrated scenario")?;
    Ok(Calibration {
        days,
        records: chain.len() + sites.len() + queues.len(),
        contacts_per_day,
        handle_times: BTreeMap::new(),
        patience: PatienceFit {
            observations: chain
                .iter()
                .map(|row| (row.answered + row.abandoned) as usize)
                .sum(),
            abandonments: abandoned as usize,
            mean_s,
            half_width_95_s: mean_s * 1.96 / abandoned.sqrt(),
        },
        scenario,
    })
}
