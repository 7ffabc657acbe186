//! The `callgrid-sim` binary: default run, reports on disk, JSON output, bad files.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use callgrid_sim::report::OUTPUT_FILES;
use callgrid_sim::scenario::DEFAULT_SCENARIO_TOML;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_callgrid-sim"))
}

#[test]
fn no_arguments_runs_the_default_day_and_writes_reports() {
    let directory = tempfile::tempdir().unwrap();
    let output = binary().current_dir(directory.path()).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("moscow") && stdout.contains("novosibirsk"),
        "{stdout}"
    );
    for name in OUTPUT_FILES {
        assert!(
            directory.path().join("sim-out").join(name).exists(),
            "{name}"
        );
    }
    let intervals =
        std::fs::read_to_string(directory.path().join("sim-out/intervals.csv")).unwrap();
    // Header + 48 half-hour intervals of the day.
    assert_eq!(intervals.lines().count(), 49);
    // After closing there are no contacts: the service-level field is empty, not 0.
    let closed = intervals
        .lines()
        .find(|line| line.starts_with("0,22:00,"))
        .unwrap();
    assert_eq!(closed.split(',').nth(14), Some(""), "{closed}");
    let page = std::fs::read_to_string(directory.path().join("sim-out/report.html")).unwrap();
    assert!(page.contains("<svg") && !page.contains("<script"));
}

#[test]
fn contacts_then_calibrate_then_compare_from_the_command_line() {
    let directory = tempfile::tempdir().unwrap();
    let history = directory.path().join("history");
    let output = binary()
        .args(["run", "--contacts", "--out"])
        .arg(&history)
        .output()
        .unwrap();
    assert!(output.status.success());
    let calibrated = directory.path().join("calibrated.toml");
    let output = binary()
        .arg("calibrate")
        .arg(&history)
        .arg("--out")
        .arg(&calibrated)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("patience: exponential"));
    let default = directory.path().join("default.toml");
    std::fs::write(&default, DEFAULT_SCENARIO_TOML).unwrap();
    let output = binary()
        .arg("compare")
        .arg(&default)
        .arg(&calibrated)
        .args(["--replications", "3", "--out"])
        .arg(directory.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("service level %") && stdout.contains("B − A"),
        "{stdout}"
    );
    assert!(directory.path().join("compare_service_level.svg").exists());
}

#[test]
fn json_summary_is_deterministic() {
    let run = || {
        let output = binary()
            .args(["run", "--json", "--no-files", "--seed", "99"])
            .output()
            .unwrap();
        assert!(output.status.success());
        output.stdout
    };
    let first = run();
    let value: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(value["seed"], 99);
    assert!(value["total"]["offered"].as_u64().unwrap() > 14_000);
    assert_eq!(first, run());
}

#[test]
fn replications_report_confidence_intervals() {
    let output = binary()
        .args(["run", "--json", "--replications", "3"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["replications"], 3);
    let level = &value["total"]["service_level"];
    assert!(level["half_width_95"].as_f64().unwrap() > 0.0);
    assert!(level["mean"].as_f64().unwrap() > 0.5);
}

#[test]
fn bad_scenario_exits_nonzero_naming_field_and_line() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("bad.toml");
    let text = DEFAULT_SCENARIO_TOML.replacen("share = 0.25", "share = -0.25", 1);
    let line = text
        .lines()
        .position(|line| line == "share = -0.25")
        .unwrap()
        + 1;
    std::fs::write(&file, text).unwrap();
    let output = binary().arg("run").arg(&file).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("bot.share"), "{stderr}");
    assert!(stderr.contains(&format!("line {line}")), "{stderr}");
}

#[test]
fn unknown_key_exits_nonzero() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("bad.toml");
    std::fs::write(
        &file,
        format!("{DEFAULT_SCENARIO_TOML}\n[extra]\nvalue = 1\n"),
    )
    .unwrap();
    let output = binary().arg("run").arg(&file).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("extra") && stderr.contains("line"),
        "{stderr}"
    );
}
