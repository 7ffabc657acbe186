//! `callgrid-sim`: run a scenario, search staffing, validate against Erlang C / A, benchmark.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use callgrid_sim::engine::{self, Progress};
use callgrid_sim::scenario::Scenario;
use callgrid_sim::{
    bench, calibrate, compare, contacts, html, replicate, report, shifts, staff, validate,
};
use clap::{Parser, Subcommand};

mod live_cli;

/// Capacity planner's simulator for callgrid contact centers.
#[derive(Debug, Parser)]
#[command(name = "callgrid-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a scenario (default: the built-in 17,000-contact day) and report.
    Run(RunArguments),
    /// Fewest agents per interval per site reaching the scenario's SL and abandonment targets.
    Staff(StaffArguments),
    /// Two scenarios side by side: mean ± 95% CI of each and of their difference, SL plot.
    Compare(CompareArguments),
    /// A scenario from history: per-contact records (`run --contacts`) or interval reports
    /// over any number of days.
    Calibrate(CalibrateArguments),
    /// Compare long M/M/c and M/M/c+M runs with the Erlang C and Erlang A closed forms.
    Validate(ValidateArguments),
    /// Wall time, events/s and peak memory of the default day and a 100-site 1M-contact day.
    Bench(BenchArguments),
    /// Play a scenario's day against a real cluster through its API (gateway and agents),
    /// then check the history and compare with the offline prediction; or, with
    /// `--emit-configs`, write the cluster's site configs for the scenario.
    Live(Box<live_cli::LiveArguments>),
    /// Check a live run's history directory (exit 1 when a check fails).
    Check(live_cli::CheckArguments),
}

#[derive(Debug, clap::Args, Default)]
struct RunArguments {
    /// Scenario TOML; without it the built-in default day.
    scenario: Option<PathBuf>,
    /// Directory for CSV, JSON and SVG reports.
    #[arg(long, default_value = "sim-out")]
    out: PathBuf,
    /// Print the summary as JSON on stdout (no table, no progress bar).
    #[arg(long)]
    json: bool,
    /// Independent replications with seeds seed, seed+1, …; reports mean and 95% CI.
    #[arg(long, default_value_t = 1)]
    replications: u32,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Do not write report files.
    #[arg(long)]
    no_files: bool,
    /// Also write one record per contact into `contacts.csv` in `--out` (the input of
    /// `calibrate`).
    #[arg(long)]
    contacts: bool,
}

#[derive(Debug, clap::Args)]
struct StaffArguments {
    /// Scenario TOML; without it the built-in default day.
    scenario: Option<PathBuf>,
    /// Replications pooled per evaluation (more: less noise, slower); 0 chooses from the
    /// traffic (the median cell pools at least 1,600 contacts).
    #[arg(long, default_value_t = staff::REPLICATIONS_AUTO)]
    replications: u32,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Write the scenario with the found staffing to this file.
    #[arg(long)]
    write_scenario: Option<PathBuf>,
    /// Shift patterns and hourly cost: choose agents per pattern at least cost.
    #[arg(long)]
    shifts: Option<PathBuf>,
    /// With `--shifts`: directory for `shifts.html` and `shifts.json`.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct CompareArguments {
    /// Scenario A (the baseline).
    a: PathBuf,
    /// Scenario B (the what-if).
    b: PathBuf,
    /// Replications per scenario (seeds of A for both: common random numbers).
    #[arg(long, default_value_t = compare::REPLICATIONS_DEFAULT)]
    replications: u32,
    /// Directory for `compare.json` and `compare_service_level.svg`.
    #[arg(long, default_value = "sim-out")]
    out: PathBuf,
    /// Print the comparison as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct CalibrateArguments {
    /// History: `contacts.csv` files or directories holding one (each file's days follow the
    /// previous file's), or directories with only `run`'s interval reports (one day each).
    #[arg(required = true)]
    history: Vec<PathBuf>,
    /// Scenario giving what history cannot (sites' staffing, targets, callbacks, overflow);
    /// default: the built-in day.
    #[arg(long)]
    template: Option<PathBuf>,
    /// Where to write the calibrated scenario.
    #[arg(long, default_value = "calibrated.toml")]
    out: PathBuf,
    /// Date of the history's first day (YYYY-MM-DD): fit a [calendar] (weekday factors and
    /// season) instead of weekday-position factors.
    #[arg(long)]
    start_date: Option<String>,
    /// Print the fits as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ValidateArguments {
    /// Print the comparison as JSON.
    #[arg(long)]
    json: bool,
    /// Contacts per case (more: tighter agreement, slower).
    #[arg(long, default_value_t = validate::CONTACTS_DEFAULT)]
    contacts: u64,
}

#[derive(Debug, clap::Args)]
struct BenchArguments {
    /// Timed repetitions per case (the median is reported).
    #[arg(long, default_value_t = bench::REPETITIONS_DEFAULT)]
    repetitions: u32,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Skip the 1,000,000-contact case and the year.
    #[arg(long)]
    quick: bool,
    /// Skip the 1- vs 7-day memory probes (child processes).
    #[arg(long)]
    no_memory: bool,
    /// Internal: simulate this many default days and print peak memory (kB).
    #[arg(long = "memory-probe-days", hide = true)]
    memory_probe_days: Option<usize>,
    /// Internal: simulate this many days of the year scenario and print peak memory (kB).
    #[arg(long = "memory-probe-year-days", hide = true)]
    memory_probe_year_days: Option<usize>,
    /// Internal: simulate the ciw comparison day once (whole-process timing).
    #[arg(long = "ciw-day-probe", hide = true)]
    ciw_day_probe: bool,
    /// Skip the ciw comparison (it runs when python3 with ciw is installed).
    #[arg(long)]
    no_ciw: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command.unwrap_or(Command::Run(RunArguments {
        out: PathBuf::from("sim-out"),
        replications: 1,
        ..RunArguments::default()
    })) {
        Command::Run(arguments) => run(arguments),
        Command::Staff(arguments) => run_staff(arguments),
        Command::Compare(arguments) => run_compare(arguments),
        Command::Calibrate(arguments) => run_calibrate(arguments),
        Command::Validate(arguments) => run_validate(arguments),
        Command::Bench(arguments) => run_bench(arguments),
        Command::Live(arguments) => live_cli::run_live(*arguments),
        Command::Check(arguments) => live_cli::run_check(arguments),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The scenario at `path`, or the built-in day.
pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Scenario> {
    Ok(match path {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::built_in()?,
    })
}

fn run(arguments: RunArguments) -> anyhow::Result<ExitCode> {
    let mut scenario = load(arguments.scenario.as_deref())?;
    if let Some(seed) = arguments.seed {
        scenario.seed = seed;
    }
    if arguments.replications > 1 {
        let summary = replicate::replicate(&scenario, arguments.replications)?;
        if arguments.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            print!("{}", replicate::render(&summary));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let show_progress = !arguments.json && std::io::stderr().is_terminal();
    let bar = show_progress.then(|| {
        let bar = indicatif::ProgressBar::new(engine::PROGRESS_STEPS);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {percent}% simulated {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |done: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    };
    let progress: Option<&Progress<'_>> = if bar.is_some() { Some(&progress) } else { None };
    let result = if arguments.contacts {
        std::fs::create_dir_all(&arguments.out)
            .with_context(|| format!("creating {}", arguments.out.display()))?;
        let path = arguments.out.join("contacts.csv");
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let (result, _) = contacts::simulate_logged(
            &scenario,
            scenario.seed,
            progress,
            Box::new(std::io::BufWriter::new(file)),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        result
    } else {
        engine::simulate(&scenario, scenario.seed, progress)?
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if !arguments.no_files {
        report::write_files(&result, &arguments.out)
            .with_context(|| format!("writing reports to {}", arguments.out.display()))?;
        write_file(
            &arguments.out,
            "report.html",
            &html::render(&result, &scenario),
        )?;
    }
    if arguments.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&engine::summary_json(&result))?
        );
    } else {
        print!("{}", report::render_table(&result));
        if !arguments.no_files {
            println!("reports written to {}", arguments.out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_staff(arguments: StaffArguments) -> anyhow::Result<ExitCode> {
    let scenario = load(arguments.scenario.as_deref())?;
    if let Some(path) = &arguments.shifts {
        let config = shifts::ShiftsConfig::from_file(path)?;
        let plan = shifts::plan(&scenario, &config, arguments.replications)?;
        if let Some(directory) = &arguments.out {
            write_file(
                directory,
                "shifts.html",
                &html::render_shift_plan(&plan, &scenario),
            )?;
            write_file(
                directory,
                "shifts.json",
                &serde_json::to_string_pretty(&plan)?,
            )?;
        }
        write_staffed_scenario(arguments.write_scenario.as_deref(), &plan.scenario)?;
        if arguments.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{}", shifts::render(&plan));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let plan = staff::search(&scenario, arguments.replications)?;
    write_staffed_scenario(arguments.write_scenario.as_deref(), &plan.scenario)?;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", staff::render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_calibrate(arguments: CalibrateArguments) -> anyhow::Result<ExitCode> {
    let template = load(arguments.template.as_deref())?;
    let calibration = calibrate::calibrate_dated(
        &arguments.history,
        &template,
        arguments.start_date.as_deref(),
    )?;
    let text = toml::to_string(&calibration.scenario).context("encoding the scenario")?;
    std::fs::write(&arguments.out, text)
        .with_context(|| format!("writing {}", arguments.out.display()))?;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&calibration)?);
    } else {
        print!("{}", calibrate::render(&calibration));
        println!("scenario written to {}", arguments.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn run_compare(arguments: CompareArguments) -> anyhow::Result<ExitCode> {
    let mut a = Scenario::from_file(&arguments.a)?;
    let mut b = Scenario::from_file(&arguments.b)?;
    // Two files with the same scenario name are told apart by their paths.
    if a.name == b.name {
        a.name = format!("{} ({})", a.name, arguments.a.display());
        b.name = format!("{} ({})", b.name, arguments.b.display());
    }
    let comparison = compare::compare(&a, &b, arguments.replications)?;
    write_file(
        &arguments.out,
        "compare.json",
        &serde_json::to_string_pretty(&comparison)?,
    )?;
    write_file(
        &arguments.out,
        "compare_service_level.svg",
        &compare::service_level_svg(&comparison),
    )?;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        print!("{}", compare::render(&comparison));
        println!(
            "written: {}",
            arguments.out.join("compare_service_level.svg").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `name` into `directory` (created if missing).
fn write_file(directory: &Path, name: &str, content: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("creating {}", directory.display()))?;
    let path = directory.join(name);
    std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))
}

fn run_validate(arguments: ValidateArguments) -> anyhow::Result<ExitCode> {
    let comparison = validate::run(arguments.contacts)?;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        print!("{}", validate::render(&comparison));
    }
    Ok(if comparison.iter().all(|case| case.agrees) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_bench(arguments: BenchArguments) -> anyhow::Result<ExitCode> {
    if let Some(days) = arguments.memory_probe_days {
        println!("{}", bench::memory_probe(days, false)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(days) = arguments.memory_probe_year_days {
        println!("{}", bench::memory_probe(days, true)?);
        return Ok(ExitCode::SUCCESS);
    }
    if arguments.ciw_day_probe {
        println!("{}", bench::ciw_day_probe()?);
        return Ok(ExitCode::SUCCESS);
    }
    let figures = bench::run(
        arguments.repetitions,
        !arguments.quick,
        !arguments.no_memory,
        !arguments.no_ciw,
    )?;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        print!("{}", bench::render(&figures));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the staffed scenario where `--write-scenario` asked for it (both staffing modes).
fn write_staffed_scenario(
    path: Option<&std::path::Path>,
    scenario: &impl serde::Serialize,
) -> anyhow::Result<()> {
    if let Some(path) = path {
        let text = toml::to_string(scenario).context("encoding the staffed scenario")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
