//! Bad scenario files give an error naming the field and its line.
#![allow(clippy::unwrap_used)]

use callgrid_sim::scenario::{DEFAULT_SCENARIO_TOML, Scenario, ScenarioError};

/// Replaces the first occurrence of `from` in the default scenario and returns the text and
/// the 1-based line where the replacement starts.
fn default_with(from: &str, to: &str) -> (String, usize) {
    let offset = DEFAULT_SCENARIO_TOML.find(from).unwrap();
    let line = DEFAULT_SCENARIO_TOML[..offset].matches('\n').count() + 1;
    (DEFAULT_SCENARIO_TOML.replacen(from, to, 1), line)
}

fn invalid(text: &str) -> (String, usize, String) {
    match Scenario::from_toml(text, "test.toml") {
        Err(ScenarioError::Invalid {
            field,
            location,
            message,
            ..
        }) => (field, location.unwrap().line, message),
        other => panic!("expected a semantic error, got {other:?}"),
    }
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let (text, line) = default_with("ring_time_s = 2.0", "ring_time_s = 2.0\nring_tone = 1");
    let error = Scenario::from_toml(&text, "test.toml").unwrap_err();
    let ScenarioError::Parse {
        location, message, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(location.unwrap().line, line + 1);
    assert!(message.contains("ring_tone"), "{message}");
    assert!(
        error.to_string().contains(&format!("line {}", line + 1)),
        "{error}"
    );
}

#[test]
fn negative_rate_is_named_with_its_line() {
    let (text, line) = default_with("contacts_per_day = 17000.0", "contacts_per_day = -5.0");
    let (field, at, message) = invalid(&text);
    assert_eq!(field, "volume.contacts_per_day");
    assert_eq!(at, line);
    assert!(message.contains("≥ 0"), "{message}");
}

#[test]
fn nan_rate_is_rejected() {
    let (text, line) = default_with("mean_s = 180.0\n", "mean_s = nan\n");
    let (field, at, _) = invalid(&text);
    assert_eq!(field, "patience.mean_s");
    assert_eq!(at, line);
}

#[test]
fn profile_not_summing_to_one_is_named() {
    let (text, line) = default_with("0.019589, 0.025465", "0.119589, 0.025465");
    let (field, at, message) = invalid(&text);
    assert_eq!(field, "profile.shares");
    // The error points at the `shares` key, one line above the first value.
    assert_eq!(at, line - 1);
    assert!(message.contains("sum to"), "{message}");
}

#[test]
fn zero_agents_with_demand_is_named() {
    let (text, line) = default_with("per_interval = [17, 22,", "per_interval = [0, 22,");
    let (field, at, message) = invalid(&text);
    assert_eq!(field, "sites[0].staffing");
    assert!(
        at < line && at > line - 10,
        "error at line {at}, staffing at {line}"
    );
    assert!(
        message.contains("zero `line1` agents at 08:00"),
        "{message}"
    );
}

#[test]
fn missing_site_in_overflow_policy_is_named() {
    let (text, line) = default_with(
        "name = \"moscow\"\nvolume_share = 0.45\n",
        "name = \"moscow\"\nvolume_share = 0.45\noverflow_to = [\"kazan\"]\n",
    );
    let (field, at, message) = invalid(&text);
    assert_eq!(field, "sites[0].overflow_to[0]");
    assert_eq!(at, line + 2);
    assert!(message.contains("kazan"), "{message}");
}

#[test]
fn missing_site_in_outage_is_named() {
    let text = format!(
        "{DEFAULT_SCENARIO_TOML}\n[[outages]]\nsite = \"omsk\"\nstart = \"13:00\"\nend = \"14:00\"\n"
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("site = \"omsk\""))
        .unwrap()
        + 1;
    let (field, at, _) = invalid(&text);
    assert_eq!(field, "outages[0].site");
    assert_eq!(at, line);
}

#[test]
fn wrong_type_is_a_parse_error_with_line() {
    let (text, line) = default_with("seed = 20261124", "seed = \"abc\"");
    let error = Scenario::from_toml(&text, "test.toml").unwrap_err();
    let ScenarioError::Parse { location, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(location.unwrap().line, line);
}

#[test]
fn unknown_distribution_field_is_rejected() {
    let (text, line) = default_with(
        "voice = { distribution = \"lognormal\", mean_s = 180.0, cv = 0.8 }",
        "voice = { distribution = \"lognormal\", mean_s = 180.0, cv = 0.8, sd = 1.0 }",
    );
    let error = Scenario::from_toml(&text, "test.toml").unwrap_err();
    let ScenarioError::Parse {
        location, message, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(location.unwrap().line, line);
    assert!(message.contains("sd"), "{message}");
}

#[test]
fn sections_that_do_not_apply_may_be_left_out() {
    // The default day without transfer, bot, callbacks and overflow (and its line-2 agents).
    let mut table: toml::Table =
        toml::from_str(callgrid_sim::scenario::DEFAULT_SCENARIO_TOML).unwrap();
    for section in ["transfer", "bot", "callbacks", "overflow"] {
        assert!(table.remove(section).is_some(), "{section}");
    }
    for site in table["sites"].as_array_mut().unwrap() {
        let staffing = site["staffing"].as_array_mut().unwrap();
        staffing.retain(|entry| entry["skills"].as_array().unwrap()[0].as_str() != Some("line2"));
    }
    let text = toml::to_string(&table).unwrap();
    let scenario = Scenario::from_toml(&text, "minimal").unwrap();
    assert!(scenario.transfer.is_none() && scenario.bot.is_none());
    assert!(!scenario.callbacks.enabled && !scenario.overflow.enabled);
    let report = callgrid_sim::engine::simulate(&scenario, scenario.seed, None).unwrap();
    assert_eq!(report.bot_handled, 0);
    assert_eq!(report.total.transferred, 0);
    assert_eq!(report.total.callbacks_created, 0);
    assert_eq!(report.total.overflowed_in, 0);
    assert!(report.total.offered > 15_000);
    // Without a transfer section a line-2 group names a skill nothing uses: an error.
    let mut with_line2: toml::Table =
        toml::from_str(callgrid_sim::scenario::DEFAULT_SCENARIO_TOML).unwrap();
    with_line2.remove("transfer");
    let error = Scenario::from_toml(&toml::to_string(&with_line2).unwrap(), "no-transfer")
        .unwrap_err()
        .to_string();
    assert!(error.contains("line2"), "{error}");
}
