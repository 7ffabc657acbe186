//! Calibration recovers the parameters a history was generated with.
#![allow(clippy::unwrap_used)]

use callgrid_sim::calibrate;
use callgrid_sim::contacts;
use callgrid_sim::scenario::{Distribution, Scenario};

fn lognormal(distribution: &Distribution) -> (f64, f64) {
    match *distribution {
        Distribution::Lognormal { mean_s, cv } => (mean_s, cv),
        other => panic!("not lognormal: {other:?}"),
    }
}

#[test]
fn a_week_of_simulated_history_gives_back_its_parameters() {
    // Known parameters: the default day over a week with weekday factors.
    let mut truth = Scenario::built_in().unwrap();
    truth.volume.day_factors = vec![1.0, 1.05, 0.95, 1.0, 1.1, 0.7, 0.6];
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("contacts.csv");
    let file = std::fs::File::create(&path).unwrap();
    let (_, written) = contacts::simulate_logged(
        &truth,
        truth.seed,
        None,
        Box::new(std::io::BufWriter::new(file)),
    )
    .unwrap();
    assert!(written > 100_000, "{written}");

    let template = Scenario::built_in().unwrap();
    let calibration = calibrate::calibrate(&[directory.path().to_path_buf()], &template).unwrap();
    println!("{}", calibrate::render(&calibration));
    let found = &calibration.scenario;
    assert_eq!(calibration.days, 7);

    // Volume per day within 3% (Poisson noise is under 1%).
    for (day, factor) in truth.volume.day_factors.iter().enumerate() {
        let expected = truth.volume.contacts_per_day * factor;
        let got = found.volume.contacts_per_day * found.volume.day_factors[day];
        assert!(
            (got / expected - 1.0).abs() < 0.03,
            "day {day}: {got} vs {expected}"
        );
    }
    // Intraday profile within 0.3 points per interval.
    let truth_shares = truth.interval_shares();
    for (interval, share) in found.interval_shares().iter().enumerate() {
        assert!(
            (share - truth_shares[interval]).abs() < 0.003,
            "interval {interval}"
        );
    }
    // Mixes within one point.
    assert!((found.channels.chat_share - 0.15).abs() < 0.01);
    for topic in &truth.topics {
        let got = found
            .topics
            .iter()
            .find(|known| known.name == topic.name)
            .unwrap();
        assert!((got.share - topic.share).abs() < 0.01, "{}", topic.name);
        assert_eq!(got.skill, topic.skill);
    }
    for (site, expected) in found.sites.iter().zip(&truth.sites) {
        assert!(
            (site.volume_share - expected.volume_share).abs() < 0.01,
            "{}",
            site.name
        );
    }
    let bot = found.bot.as_ref().unwrap();
    assert_eq!(bot.topic, "order_status");
    assert!((bot.share - 0.25).abs() < 0.02, "{}", bot.share);
    let transfer = found.transfer.as_ref().unwrap();
    assert!((transfer.share - 0.08).abs() < 0.01, "{}", transfer.share);

    // Handle times: lognormal means within 3% (line 2: 5%), CV within 0.05, and a close fit.
    let (voice_mean, voice_cv) = lognormal(&found.handle_time.voice);
    assert!((voice_mean / 180.0 - 1.0).abs() < 0.03, "{voice_mean}");
    assert!((voice_cv - 0.8).abs() < 0.05, "{voice_cv}");
    let (chat_mean, chat_cv) = lognormal(&found.handle_time.chat);
    assert!((chat_mean / 360.0 - 1.0).abs() < 0.03, "{chat_mean}");
    assert!((chat_cv - 0.8).abs() < 0.05, "{chat_cv}");
    let (line2_mean, _) = lognormal(&transfer.handle_time);
    assert!((line2_mean / 300.0 - 1.0).abs() < 0.05, "{line2_mean}");
    for (key, fit) in &calibration.handle_times {
        assert!(fit.ks_distance < 0.03, "{key}: {fit:?}");
    }

    // Patience: exponential 180 s, recovered within 10% from the censored waits.
    let Distribution::Exponential { mean_s } = found.patience else {
        panic!("{:?}", found.patience)
    };
    assert!((mean_s / 180.0 - 1.0).abs() < 0.10, "{mean_s}");
    assert!(calibration.patience.half_width_95_s < 0.15 * mean_s);

    // The calibrated scenario runs.
    let report = callgrid_sim::engine::simulate(found, found.seed, None).unwrap();
    assert!(report.total.offered > 50_000);
}

#[test]
fn calibrating_without_history_fails_clearly() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("contacts.csv");
    std::fs::write(&path, "not,a,header\n").unwrap();
    let error = calibrate::calibrate(&[path], &Scenario::built_in().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("line 1") && error.contains("header"),
        "{error}"
    );
}

#[test]
fn interval_reports_alone_give_volume_profile_sites_handle_means_and_patience() {
    let truth = Scenario::built_in().unwrap();
    let directory = tempfile::tempdir().unwrap();
    let mut days = Vec::new();
    for day in 0..4u64 {
        let report = callgrid_sim::engine::simulate(&truth, truth.seed + day, None).unwrap();
        let path = directory.path().join(format!("day{day}"));
        callgrid_sim::report::write_files(&report, &path).unwrap();
        days.push(path);
    }
    let calibration = calibrate::calibrate(&days, &truth).unwrap();
    let found = &calibration.scenario;
    assert_eq!(calibration.days, 4);
    assert!(calibration.handle_times.is_empty(), "no per-contact fits");
    let volume = found.volume.contacts_per_day;
    assert!((volume / 17_000.0 - 1.0).abs() < 0.03, "{volume}");
    let truth_shares = truth.interval_shares();
    for (interval, share) in found.interval_shares().iter().enumerate() {
        assert!(
            (share - truth_shares[interval]).abs() < 0.004,
            "interval {interval}"
        );
    }
    for (site, expected) in found.sites.iter().zip(&truth.sites) {
        assert!(
            (site.volume_share - expected.volume_share).abs() < 0.015,
            "{}",
            site.name
        );
    }
    assert!(
        (found.channels.chat_share - 0.15).abs() < 0.015,
        "{}",
        found.channels.chat_share
    );
    let (voice_mean, voice_cv) = lognormal(&found.handle_time.voice);
    assert!((voice_mean / 180.0 - 1.0).abs() < 0.05, "{voice_mean}");
    assert_eq!(voice_cv, 0.8, "the CV is the template's");
    let Distribution::Exponential { mean_s } = found.patience else {
        panic!("{:?}", found.patience)
    };
    assert!((mean_s / 180.0 - 1.0).abs() < 0.15, "{mean_s}");
}

#[test]
fn dated_history_gives_back_weekday_factors_and_the_season() {
    let mut truth = Scenario::built_in().unwrap();
    truth.volume.contacts_per_day = 2_000.0;
    truth.calendar = Some(callgrid_sim::calendar::CalendarConfig {
        start_date: "2026-03-01".to_owned(),
        days: 120,
        weekday_factors: [1.1, 1.0, 1.0, 1.0, 0.95, 0.8, 0.6],
        season: Some(callgrid_sim::calendar::SeasonConfig {
            from: "10-15".to_owned(),
            to: "04-15".to_owned(),
            factor: 1.25,
        }),
        holidays: Vec::new(),
    });
    let truth = Scenario::from_toml(&toml::to_string(&truth).unwrap(), "truth").unwrap();
    assert_eq!(truth.days(), 120);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("contacts.csv");
    let file = std::fs::File::create(&path).unwrap();
    contacts::simulate_logged(
        &truth,
        truth.seed,
        None,
        Box::new(std::io::BufWriter::new(file)),
    )
    .unwrap();
    let calibration = calibrate::calibrate_dated(&[path], &truth, Some("2026-03-01")).unwrap();
    let calendar = calibration.scenario.calendar.as_ref().unwrap();
    let season = calendar.season.as_ref().unwrap().factor;
    assert!((season / 1.25 - 1.0).abs() < 0.03, "season {season}");
    let weekday_mean = (1.1 + 1.0 + 1.0 + 1.0 + 0.95 + 0.8 + 0.6) / 7.0;
    for (found, expected) in calendar
        .weekday_factors
        .iter()
        .zip([1.1, 1.0, 1.0, 1.0, 0.95, 0.8, 0.6])
    {
        assert!(
            (found / (expected / weekday_mean) - 1.0).abs() < 0.04,
            "{found} vs {expected}"
        );
    }
    let base = calibration.scenario.volume.contacts_per_day;
    assert!(
        (base / (2_000.0 * weekday_mean) - 1.0).abs() < 0.03,
        "{base}"
    );
    assert_eq!(calibration.scenario.days(), 120);
}
