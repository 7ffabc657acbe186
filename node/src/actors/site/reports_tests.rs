#![allow(clippy::unwrap_used)]

use super::*;
use callgrid_domain::{Channel, ContactId, Direction, Topic};

const HOUR_MS: u64 = 3_600_000;
/// 2026-12-03T00:00:00Z.
const DAY_ONE_UTC_MS: u64 = 1_796_256_000_000;

fn arrival(contact: u64) -> Event {
    Event {
        at: TimeMs::ZERO,
        site: SiteId(0),
        kind: EventKind::Arrived {
            contact: ContactId(contact),
            skill: SkillId(0),
            channel: Channel::Voice,
            topic: Topic::Order,
            direction: Direction::Inbound,
        },
    }
}

fn book(directory: &Path, offset_minutes: i16, now: u64) -> DayBook {
    DayBook::open(
        directory,
        "msk",
        offset_minutes,
        MetricsConfig::default(),
        (1, 2),
        now,
    )
}

fn offered_at(report: &MetricsReport, start_ms: u64) -> u64 {
    report
        .intervals
        .iter()
        .find(|interval| interval.start_ms == start_ms)
        .map_or(0, |interval| interval.sites[0].counters.offered)
}

#[test]
fn dates_convert_both_ways() {
    assert_eq!(LocalDay::parse("1970-01-01"), Some(LocalDay(0)));
    let (day, within) = LocalDay::of(DAY_ONE_UTC_MS + HOUR_MS, 0);
    assert_eq!(day.to_string(), "2026-12-03");
    assert_eq!(within, HOUR_MS);
    assert_eq!(LocalDay::parse("2026-12-03"), Some(day));
    assert_eq!(
        LocalDay::parse("2024-02-29").unwrap().to_string(),
        "2024-02-29"
    );
    for bad in [
        "2026-02-29",
        "2026-13-01",
        "2026-1-01",
        "26-12-03",
        "2026-12-03x",
        "",
    ] {
        assert_eq!(LocalDay::parse(bad), None, "{bad}");
    }
    // 22:00 UTC is already the next day in Moscow (+03:00), and 02:00 the previous in -05:00.
    let (moscow, within) = LocalDay::of(DAY_ONE_UTC_MS + 22 * HOUR_MS, 180);
    assert_eq!(moscow.to_string(), "2026-12-04");
    assert_eq!(within, HOUR_MS);
    let (west, _) = LocalDay::of(DAY_ONE_UTC_MS + 2 * HOUR_MS, -300);
    assert_eq!(west.to_string(), "2026-12-02");
}

/// Issue 8 defect 4: the second day's traffic is the second day's report, in its own
/// intervals; the first day stays readable by date.
#[test]
fn the_second_days_report_is_its_own() {
    let directory = tempfile::tempdir().unwrap();
    let mut book = book(directory.path(), 0, DAY_ONE_UTC_MS);
    book.record(&arrival(1), DAY_ONE_UTC_MS + 10 * HOUR_MS);
    book.record(&arrival(2), DAY_ONE_UTC_MS + 10 * HOUR_MS + 60_000);
    let day_two = DAY_ONE_UTC_MS + DAY_MS;
    book.record(&arrival(3), day_two + 11 * HOUR_MS);

    let today = book.report(None, day_two + 12 * HOUR_MS).unwrap();
    assert_eq!(today.date, "2026-12-04");
    assert_eq!(today.report.totals.counters.offered, 1);
    assert_eq!(offered_at(&today.report, 11 * HOUR_MS), 1);
    assert_eq!(offered_at(&today.report, 10 * HOUR_MS), 0);

    let yesterday = book
        .report(LocalDay::parse("2026-12-03"), day_two + 12 * HOUR_MS)
        .unwrap();
    assert_eq!(yesterday.report.totals.counters.offered, 2);
    assert_eq!(offered_at(&yesterday.report, 10 * HOUR_MS), 2);
    assert!(matches!(
        book.report(LocalDay::parse("2026-12-05"), day_two),
        Err(ReportError::NotKept(_))
    ));
}

/// Reports roll at the site's local midnight, not at UTC midnight.
#[test]
fn days_roll_at_local_midnight() {
    let directory = tempfile::tempdir().unwrap();
    let mut book = book(directory.path(), 180, DAY_ONE_UTC_MS);
    // 20:30 UTC = 23:30 Moscow on the 3rd; 21:30 UTC = 00:30 Moscow on the 4th.
    book.record(&arrival(1), DAY_ONE_UTC_MS + 20 * HOUR_MS + HOUR_MS / 2);
    book.record(&arrival(2), DAY_ONE_UTC_MS + 21 * HOUR_MS + HOUR_MS / 2);
    let today = book.report(None, DAY_ONE_UTC_MS + 22 * HOUR_MS).unwrap();
    assert_eq!(today.date, "2026-12-04");
    assert_eq!(today.utc_offset_minutes, 180);
    assert_eq!(offered_at(&today.report, HOUR_MS / 2), 1);
    let third = book.report(LocalDay::parse("2026-12-03"), DAY_ONE_UTC_MS + 22 * HOUR_MS);
    assert_eq!(
        offered_at(&third.unwrap().report, 23 * HOUR_MS + HOUR_MS / 2),
        1
    );
}

/// A reopened book (node restart) adds to the day's figures written before.
#[test]
fn the_day_survives_a_reopen_and_adds_up() {
    let directory = tempfile::tempdir().unwrap();
    let at = DAY_ONE_UTC_MS + 9 * HOUR_MS;
    let mut first = book(directory.path(), 0, at);
    first.record(&arrival(1), at);
    first.flush(at + 1_000);
    drop(first);
    let mut second = book(directory.path(), 0, at + 2_000);
    second.record(&arrival(2), at + 3_000);
    let today = second.report(None, at + 4_000).unwrap();
    assert_eq!(today.report.totals.counters.offered, 2);
    assert_eq!(offered_at(&today.report, 9 * HOUR_MS), 2);
    assert_eq!(today.report.sites[0].counters.offered, 2);
}

/// A corrupt or foreign file is skipped (logged), never fatal; days past the window go.
#[test]
fn corrupt_files_are_skipped_and_old_days_removed() {
    let directory = tempfile::tempdir().unwrap();
    let reports = directory.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(reports.join("2026-12-03.json"), b"{not json").unwrap();
    std::fs::write(reports.join("2026-12-02.json"), b"{\"version\": 99}").unwrap();
    std::fs::write(reports.join("2026-10-01.json"), b"{}").unwrap();
    let at = DAY_ONE_UTC_MS + HOUR_MS;
    let mut book = book(directory.path(), 0, at);
    book.wait_written();
    assert_eq!(
        book.report(None, at)
            .unwrap()
            .report
            .totals
            .counters
            .offered,
        0
    );
    assert!(book.report(LocalDay::parse("2026-12-02"), at).is_err());
    assert!(
        !reports.join("2026-10-01.json").exists(),
        "older than 35 days"
    );
    book.record(&arrival(1), at);
    book.flush(at);
    book.wait_written();
    let reopened = super::DayBook::open(
        directory.path(),
        "msk",
        0,
        MetricsConfig::default(),
        (1, 2),
        at,
    );
    assert!(reopened.base.is_some(), "the rewritten day loads again");
}

/// Days within the window stay; the 36th day back is gone.
#[test]
fn thirty_five_days_are_kept() {
    let directory = tempfile::tempdir().unwrap();
    let mut book = book(directory.path(), 0, DAY_ONE_UTC_MS);
    for day in 0..40 {
        book.record(&arrival(day), DAY_ONE_UTC_MS + day * DAY_MS + HOUR_MS);
    }
    let now = DAY_ONE_UTC_MS + 39 * DAY_MS + 2 * HOUR_MS;
    let last = book.day;
    for back in 1..=DAYS_KEPT {
        let day = LocalDay(last.0 - back);
        let report = book.report(Some(day), now).unwrap();
        assert_eq!(report.report.totals.counters.offered, 1, "{day}");
    }
    assert!(
        book.report(Some(LocalDay(last.0 - DAYS_KEPT - 1)), now)
            .is_err()
    );
    book.wait_written();
    let files = std::fs::read_dir(directory.path().join("reports"))
        .unwrap()
        .count();
    assert_eq!(
        files as i64, DAYS_KEPT,
        "closed days on disk (today is not yet flushed)"
    );
}

/// An answer counts in the local interval its contact entered the queue, not at the hour its
/// routing-time instants read as local time (they count from UTC midnight: before the fix a
/// Moscow answer at 12:00 landed in 09:00 beside an empty offered count).
#[test]
fn an_answer_counts_in_its_local_interval() {
    let directory = tempfile::tempdir().unwrap();
    let at_utc = DAY_ONE_UTC_MS + 9 * HOUR_MS;
    let mut book = book(directory.path(), 180, at_utc);
    // Routing time counts from UTC midnight: 09:00:05 UTC, queued 5 s before.
    let routing_at = TimeMs(9 * HOUR_MS + 5_000);
    let mut arrived = arrival(1);
    arrived.at = TimeMs(9 * HOUR_MS);
    book.record(&arrived, at_utc);
    let answered = Event {
        at: routing_at,
        site: SiteId(0),
        kind: EventKind::Answered {
            contact: ContactId(1),
            agent: AgentId(1),
            skill: SkillId(0),
            wait_ms: 5_000,
            site_wait_ms: 5_000,
            entered_queue_at: TimeMs(9 * HOUR_MS),
            entered_site_at: TimeMs(9 * HOUR_MS),
            answered_before: false,
        },
    };
    book.record(&answered, at_utc + 5_000);
    let today = book.report(None, at_utc + 6_000).unwrap().report;
    let local_noon = 12 * HOUR_MS;
    let interval = today
        .intervals
        .iter()
        .find(|interval| interval.start_ms == local_noon)
        .unwrap_or_else(|| panic!("no 12:00 interval in {:?}", today.intervals));
    assert_eq!(interval.sites[0].counters.offered, 1);
    assert_eq!(
        interval.sites[0].counters.answered, 1,
        "answered at 12:00 local"
    );
    assert_eq!(today.intervals.len(), 1, "nothing at 09:00 local");
}

/// Issue 8, section 6: the day's file is written (fsync) on the writer thread, never on the
/// thread that records and flushes (the Site actor's); what is queued still reads back.
#[test]
fn the_day_is_written_off_the_callers_thread() {
    let directory = tempfile::tempdir().unwrap();
    let at = DAY_ONE_UTC_MS + 9 * HOUR_MS;
    let mut book = book(directory.path(), 0, at);
    book.record(&arrival(1), at);
    book.flush(at + 1_000);
    // Rolling over writes the closed day; its report reads back at once, queued or not.
    book.record(&arrival(2), at + DAY_MS);
    let closed = book
        .report(LocalDay::parse("2026-12-03"), at + DAY_MS)
        .unwrap();
    assert_eq!(closed.report.totals.counters.offered, 1);
    book.wait_written();
    let path = directory.path().join("reports").join("2026-12-03.json");
    assert!(path.exists());
    let written = super::super::report_writer::WRITTEN_BY
        .lock()
        .unwrap()
        .clone();
    let writers: Vec<&Option<String>> = written
        .iter()
        .filter(|(file, _)| file == &path)
        .map(|(_, thread)| thread)
        .collect();
    assert!(!writers.is_empty(), "the day was written");
    assert!(
        writers
            .iter()
            .all(|thread| thread.as_deref() == Some("callgrid-reports")),
        "written by {writers:?}, not by the writer thread"
    );
}
