//! Calendars: the day factors of a long run (a year) from weekday factors, a season and a list
//! of holidays, instead of one factor per day typed by hand.
//!
//! ```toml
//! [calendar]
//! start_date = "2026-01-01"
//! days = 365
//! weekday_factors = [1.05, 1.0, 1.0, 1.0, 1.0, 0.85, 0.7]   # Monday … Sunday
//! season = { from = "10-15", to = "04-15", factor = 1.15 }   # mid-autumn to mid-spring
//! holidays = [{ date = "2026-01-01", factor = 0.4 }]
//! ```
//!
//! A day's factor is `weekday factor × (season factor if the day falls in the season) ×
//! (holiday factor if it is a listed holiday)`. A season whose `from` is after its `to` wraps
//! over the new year. With a calendar, `volume.day_factors` is computed from it (a value given
//! in the file is replaced).

use serde::{Deserialize, Serialize};

/// Days from 0001-01-01 are not needed: dates are counted from 1970-01-01 (civil calendar,
/// proleptic Gregorian).
const DAYS_PER_WEEK: i64 = 7;

/// The `[calendar]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// First simulated day, "YYYY-MM-DD".
    pub start_date: String,
    /// Simulated days.
    pub days: usize,
    /// Factors Monday … Sunday.
    pub weekday_factors: [f64; 7],
    /// The high (or low) season.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub season: Option<SeasonConfig>,
    /// Holidays.
    #[serde(default)]
    pub holidays: Vec<HolidayConfig>,
}

/// A season: a span of the year, "MM-DD" to "MM-DD" inclusive, and its factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeasonConfig {
    /// First day, "MM-DD".
    pub from: String,
    /// Last day, "MM-DD" (before `from`: the season wraps over the new year).
    pub to: String,
    /// Factor on its days.
    pub factor: f64,
}

/// A holiday and its factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayConfig {
    /// Date, "YYYY-MM-DD".
    pub date: String,
    /// Factor on that day.
    pub factor: f64,
}

/// A calendar problem: the field (relative to `calendar`) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarProblem {
    /// Field path below `calendar`, e.g. `holidays[2].date`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl CalendarConfig {
    /// One factor per simulated day.
    pub fn day_factors(&self, days_max: usize) -> Result<Vec<f64>, CalendarProblem> {
        let problem = |field: &str, message: String| CalendarProblem {
            field: field.to_owned(),
            message,
        };
        let start = days_from_civil_text(&self.start_date).ok_or_else(|| {
            problem(
                "start_date",
                format!("`{}` is not a date YYYY-MM-DD", self.start_date),
            )
        })?;
        if self.days == 0 || self.days > days_max {
            return Err(problem(
                "days",
                format!("needs 1 to {days_max} days, got {}", self.days),
            ));
        }
        for (index, factor) in self.weekday_factors.iter().enumerate() {
            check_factor(*factor)
                .map_err(|message| problem(&format!("weekday_factors[{index}]"), message))?;
        }
        let season = match &self.season {
            Some(season) => {
                check_factor(season.factor).map_err(|message| problem("season.factor", message))?;
                let from = month_day(&season.from).ok_or_else(|| {
                    problem("season.from", format!("`{}` is not MM-DD", season.from))
                })?;
                let to = month_day(&season.to)
                    .ok_or_else(|| problem("season.to", format!("`{}` is not MM-DD", season.to)))?;
                Some((from, to, season.factor))
            }
            None => None,
        };
        let mut holidays = Vec::with_capacity(self.holidays.len());
        for (index, holiday) in self.holidays.iter().enumerate() {
            let day = days_from_civil_text(&holiday.date).ok_or_else(|| {
                problem(
                    &format!("holidays[{index}].date"),
                    format!("`{}` is not a date YYYY-MM-DD", holiday.date),
                )
            })?;
            check_factor(holiday.factor)
                .map_err(|message| problem(&format!("holidays[{index}].factor"), message))?;
            holidays.push((day, holiday.factor));
        }
        Ok((0..self.days as i64)
            .map(|offset| {
                let day = start + offset;
                let (_, month, day_of_month) = civil_from_days(day);
                let mut factor = self.weekday_factors[weekday_monday_zero(day)];
                if let Some((from, to, season_factor)) = season {
                    let here = (month, day_of_month);
                    let inside = if from <= to {
                        here >= from && here <= to
                    } else {
                        here >= from || here <= to
                    };
                    if inside {
                        factor *= season_factor;
                    }
                }
                for (holiday, holiday_factor) in &holidays {
                    if *holiday == day {
                        factor *= holiday_factor;
                    }
                }
                factor
            })
            .collect())
    }
}

/// The mid-autumn to mid-spring season (seed 000) when a template names none.
pub const SEASON_DEFAULT: (&str, &str) = ("10-15", "04-15");
/// Rounds of the alternating weekday / season fit.
const FIT_ROUNDS: usize = 8;

/// Fits a calendar to daily volumes from `start_date`: volume(d) ≈ base × weekday(d) ×
/// season^(d in season), by alternating means (weekday factors normalised to mean 1, then the
/// season factor as the ratio of in-season to out-of-season deseasonalised means). Returns the
/// base (contacts on a mean weekday out of season) and the calendar; the season is left out
/// when the history lies entirely in or out of it. Holidays are not detected.
pub fn fit(
    volumes: &[f64],
    start_date: &str,
    season: (&str, &str),
) -> Result<(f64, CalendarConfig), CalendarProblem> {
    let problem = |field: &str, message: String| CalendarProblem {
        field: field.to_owned(),
        message,
    };
    let start = days_from_civil_text(start_date).ok_or_else(|| {
        problem(
            "start_date",
            format!("`{start_date}` is not a date YYYY-MM-DD"),
        )
    })?;
    let from = month_day(season.0)
        .ok_or_else(|| problem("season.from", format!("`{}` is not MM-DD", season.0)))?;
    let to = month_day(season.1)
        .ok_or_else(|| problem("season.to", format!("`{}` is not MM-DD", season.1)))?;
    let days: Vec<(usize, bool)> = (0..volumes.len() as i64)
        .map(|offset| {
            let day = start + offset;
            let (_, month, day_of_month) = civil_from_days(day);
            let here = (month, day_of_month);
            let inside = if from <= to {
                here >= from && here <= to
            } else {
                here >= from || here <= to
            };
            (weekday_monday_zero(day), inside)
        })
        .collect();
    let mean = |values: &mut dyn Iterator<Item = f64>| {
        let (sum, count) = values.fold((0.0, 0usize), |(sum, count), value| {
            (sum + value, count + 1)
        });
        (count > 0).then(|| sum / count as f64)
    };
    let has_both =
        days.iter().any(|(_, inside)| *inside) && days.iter().any(|(_, inside)| !*inside);
    let mut weekday = [1.0; 7];
    let mut season_factor: f64 = 1.0;
    for _ in 0..FIT_ROUNDS {
        for (index, factor) in weekday.iter_mut().enumerate() {
            *factor = mean(
                &mut days
                    .iter()
                    .zip(volumes)
                    .filter(|((day, _), _)| *day == index)
                    .map(|((_, inside), volume)| {
                        volume / if *inside { season_factor } else { 1.0 }
                    }),
            )
            .unwrap_or(1.0);
        }
        let weekday_mean = weekday.iter().sum::<f64>() / 7.0;
        for factor in &mut weekday {
            *factor /= weekday_mean.max(f64::MIN_POSITIVE);
        }
        if has_both {
            let level = |wanted: bool| {
                mean(
                    &mut days
                        .iter()
                        .zip(volumes)
                        .filter(|((_, inside), _)| *inside == wanted)
                        .map(|((day, _), volume)| volume / weekday[*day].max(f64::MIN_POSITIVE)),
                )
            };
            if let (Some(inside), Some(outside)) = (level(true), level(false)) {
                season_factor = inside / outside.max(f64::MIN_POSITIVE);
            }
        }
    }
    let base = mean(
        &mut days.iter().zip(volumes).map(|((day, inside), volume)| {
            volume
                / weekday[*day].max(f64::MIN_POSITIVE)
                / if *inside { season_factor } else { 1.0 }
        }),
    )
    .unwrap_or(0.0);
    Ok((
        base,
        CalendarConfig {
            start_date: start_date.to_owned(),
            days: volumes.len(),
            weekday_factors: weekday,
            season: has_both.then(|| SeasonConfig {
                from: season.0.to_owned(),
                to: season.1.to_owned(),
                factor: season_factor,
            }),
            holidays: Vec::new(),
        },
    ))
}

fn check_factor(factor: f64) -> Result<(), String> {
    if factor.is_finite() && factor >= 0.0 {
        Ok(())
    } else {
        Err(format!("must be a finite number ≥ 0, got {factor}"))
    }
}

fn month_day(text: &str) -> Option<(u32, u32)> {
    let (month, day) = text.split_once('-')?;
    let month: u32 = month.parse().ok()?;
    let day: u32 = day.parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((month, day))
}

fn days_from_civil_text(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some()
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Civil date of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Monday = 0 … Sunday = 6 (1970-01-01 was a Thursday).
fn weekday_monday_zero(days: i64) -> usize {
    (days + 3).rem_euclid(DAYS_PER_WEEK) as usize
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dates_round_trip_and_weekdays_are_right() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        // 2026-01-01 is a Thursday; 2026-12-07 a Monday.
        assert_eq!(weekday_monday_zero(days_from_civil(2026, 1, 1)), 3);
        assert_eq!(weekday_monday_zero(days_from_civil(2026, 12, 7)), 0);
        assert!(days_from_civil_text("2026-02-29").is_none());
    }

    #[test]
    fn a_fit_recovers_weekday_and_season_factors_of_exact_volumes() {
        let truth = CalendarConfig {
            start_date: "2026-03-01".to_owned(),
            days: 120,
            weekday_factors: [1.1, 1.0, 1.0, 1.0, 0.95, 0.8, 0.6],
            season: Some(SeasonConfig {
                from: "10-15".to_owned(),
                to: "04-15".to_owned(),
                factor: 1.25,
            }),
            holidays: Vec::new(),
        };
        let volumes: Vec<f64> = truth
            .day_factors(366)
            .unwrap()
            .iter()
            .map(|factor| 2_000.0 * factor)
            .collect();
        let (base, fitted) = fit(&volumes, "2026-03-01", SEASON_DEFAULT).unwrap();
        let weekday_mean = truth.weekday_factors.iter().sum::<f64>() / 7.0;
        assert!(
            (base / (2_000.0 * weekday_mean) - 1.0).abs() < 1e-6,
            "{base}"
        );
        assert!((fitted.season.unwrap().factor - 1.25).abs() < 1e-6);
        for (found, expected) in fitted.weekday_factors.iter().zip(truth.weekday_factors) {
            assert!((found - expected / weekday_mean).abs() < 1e-6);
        }
    }

    #[test]
    fn factors_combine_weekday_season_and_holidays() {
        let calendar = CalendarConfig {
            start_date: "2026-01-01".to_owned(),
            days: 365,
            weekday_factors: [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.25],
            season: Some(SeasonConfig {
                from: "10-15".to_owned(),
                to: "04-15".to_owned(),
                factor: 1.2,
            }),
            holidays: vec![HolidayConfig {
                date: "2026-01-01".to_owned(),
                factor: 0.5,
            }],
        };
        let factors = calendar.day_factors(366).unwrap();
        assert_eq!(factors.len(), 365);
        // Thursday 1 January: in season, a holiday.
        assert!((factors[0] - 1.2 * 0.5).abs() < 1e-12);
        // Saturday 3 January: in season.
        assert!((factors[2] - 0.5 * 1.2).abs() < 1e-12);
        // Wednesday 15 April (day 104): last day of the season; Thursday 16 April out of it.
        assert!((factors[104] - 1.2).abs() < 1e-12);
        assert!((factors[105] - 1.0).abs() < 1e-12);
        let mut bad = calendar.clone();
        bad.holidays[0].date = "2026-13-01".to_owned();
        assert_eq!(bad.day_factors(366).unwrap_err().field, "holidays[0].date");
    }
}
