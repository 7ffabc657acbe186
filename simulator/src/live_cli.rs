//! The `live` and `check` subcommands of the `callgrid-sim` binary.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use callgrid_sim::live::{
    self, check, clock::DrillClock, configs, faults, inject::Injector, local::LocalCluster,
};

/// `callgrid-sim live`.
#[derive(Debug, clap::Args)]
pub struct LiveArguments {
    /// Scenario TOML (one day); without it the built-in default day.
    scenario: Option<PathBuf>,
    /// Write the site configs, `tokens.json` and `clock.json` for the scenario into this
    /// directory and exit (start the sites from them, then run `live` with `--configs`).
    #[arg(long)]
    emit_configs: Option<PathBuf>,
    /// With `--emit-configs` or `--local`: simulated time runs this many times faster than
    /// wall time.
    #[arg(long, default_value_t = 600.0)]
    speed: f64,
    /// With `--emit-configs` or `--local`: seconds from now until the simulated day starts
    /// (time to start the sites).
    #[arg(long, default_value_t = 30)]
    start_in_s: u64,
    /// With `--emit-configs`: HTTP listen addresses, one per site.
    #[arg(long, value_delimiter = ',')]
    http_listen: Vec<String>,
    /// With `--emit-configs`: cluster (QUIC) listen addresses, one per site.
    #[arg(long, value_delimiter = ',')]
    cluster_listen: Vec<String>,
    /// With `--emit-configs`: the certificates directory (default DIR/certs).
    #[arg(long)]
    certificates_dir: Option<PathBuf>,
    /// Site base URLs (`http://host:port`), in the scenario's site order (processes this run
    /// does not own: `--faults` is refused with them).
    #[arg(long, value_delimiter = ',')]
    sites: Vec<String>,
    /// Start the sites with this `callgrid` binary (certificates, configs and data under
    /// HISTORY/cluster, free ports on 127.0.0.1, the day starting `--start-in-s` from now) and
    /// own their processes; they are killed at the end.
    #[arg(long, conflicts_with_all = ["sites", "configs", "emit_configs"])]
    local: Option<PathBuf>,
    /// Fault schedule (TOML, simulated times; see simulator/README.md "Fault schedules"):
    /// kill/restart, stop/cont, partition/heal, wipe/rejoin. Needs `--local`.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// The directory `--emit-configs` wrote (its `tokens.json` and `clock.json`).
    #[arg(long)]
    configs: Option<PathBuf>,
    /// Tokens file (default: CONFIGS/tokens.json).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Clock file (default: CONFIGS/clock.json).
    #[arg(long)]
    clock: Option<PathBuf>,
    /// Where the history, the replicas' records, the summary and the plot go.
    #[arg(long, default_value = "live-history")]
    history: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the summary and the verdict as JSON.
    #[arg(long)]
    json: bool,
}

/// `callgrid-sim check`.
#[derive(Debug, clap::Args)]
pub struct CheckArguments {
    /// A live run's `--history` directory.
    history: PathBuf,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `live`.
pub fn run_live(arguments: LiveArguments) -> anyhow::Result<ExitCode> {
    let mut scenario = crate::load(arguments.scenario.as_deref())?;
    if let Some(seed) = arguments.seed {
        scenario.seed = seed;
    }
    if let Some(directory) = &arguments.emit_configs {
        return emit(&arguments, &scenario, directory);
    }
    if let Some(binary) = &arguments.local {
        return run_local(&arguments, scenario, binary);
    }
    if arguments.faults.is_some() {
        anyhow::bail!(
            "--faults needs --local BINARY: the run can only kill, stop, partition or wipe \
             site processes it started itself, not the ones behind --sites"
        );
    }
    let configs = arguments.configs.clone();
    let in_configs = |name: &str| configs.as_ref().map(|directory| directory.join(name));
    let token_file = arguments
        .token_file
        .clone()
        .or_else(|| in_configs(configs::TOKENS_FILE))
        .context("--token-file or --configs is required")?;
    let clock_file = arguments
        .clock
        .clone()
        .or_else(|| in_configs(configs::CLOCK_FILE))
        .context("--clock or --configs is required")?;
    anyhow::ensure!(!arguments.sites.is_empty(), "--sites is required");
    let options = live::LiveOptions {
        seed: scenario.seed,
        scenario,
        sites: arguments.sites.clone(),
        tokens: configs::Tokens::load(&token_file)?,
        clock: DrillClock::load(&clock_file)?,
        history: arguments.history.clone(),
        progress: !arguments.json && std::io::stderr().is_terminal(),
        fault_windows: Vec::new(),
        injector: None,
    };
    let outcome = live::run(options)?;
    report(&arguments, &outcome)
}

/// `live --local BINARY [--faults FILE]`: starts the sites, applies the schedule, plays.
fn run_local(
    arguments: &LiveArguments,
    scenario: callgrid_sim::scenario::Scenario,
    binary: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1.0..=live::clock::SPEED_MAX).contains(&arguments.speed),
        "--speed must be between 1 and {}",
        live::clock::SPEED_MAX
    );
    let plan = live::plan::draw(&scenario, scenario.seed)?;
    let site_ids: Vec<String> = (0..scenario.sites.len())
        .map(|site| configs::site_id(&scenario, site))
        .collect();
    // Faults lie within the day: the run heals everything before it collects.
    let schedule = match &arguments.faults {
        Some(path) => Some(faults::Schedule::load(
            path,
            &site_ids,
            plan.day_span_ms.0,
            plan.day_span_ms.1,
        )?),
        None => None,
    };
    let fault_windows = match &schedule {
        Some(schedule) => schedule.windows()?,
        None => Vec::new(),
    };
    let directory = arguments.history.join("cluster");
    if directory.exists() {
        std::fs::remove_dir_all(&directory)
            .with_context(|| format!("removing the previous run's {}", directory.display()))?;
    }
    eprintln!(
        "starting {} sites with {} in {} (the day starts in {} s)",
        site_ids.len(),
        binary.display(),
        directory.display(),
        arguments.start_in_s
    );
    let cluster = LocalCluster::start(
        binary,
        &scenario,
        &plan,
        arguments.speed,
        Duration::from_secs(arguments.start_in_s),
        &directory,
    )?;
    let (sites, tokens, clock) = (cluster.urls(), cluster.tokens.clone(), cluster.clock);
    let cluster = Arc::new(Mutex::new(cluster));
    let injector = match schedule {
        Some(schedule) => Some(Injector::start(schedule, Arc::clone(&cluster), clock)?),
        None => None,
    };
    let options = live::LiveOptions {
        seed: scenario.seed,
        scenario,
        sites,
        tokens,
        clock,
        history: arguments.history.clone(),
        progress: !arguments.json && std::io::stderr().is_terminal(),
        fault_windows,
        injector,
    };
    let outcome = live::run(options);
    // Explicitly: on an error the fault thread may still hold the cluster.
    if let Ok(mut cluster) = cluster.lock() {
        cluster.shutdown();
    }
    let outcome = outcome?;
    let code = report(arguments, &outcome)?;
    let errors = outcome.fault_errors();
    if !errors.is_empty() {
        eprintln!("fault steps that failed:\n  {}", errors.join("\n  "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(code)
}

/// Prints the outcome; success when the checker passed.
fn report(arguments: &LiveArguments, outcome: &live::LiveOutcome) -> anyhow::Result<ExitCode> {
    if arguments.json {
        let json = serde_json::json!({"summary": outcome.summary, "verdict": outcome.verdict});
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", live::summary::render(&outcome.summary));
        print!("{}", outcome.verdict.render());
        println!(
            "history, summary and plot in {}",
            arguments.history.display()
        );
    }
    Ok(if outcome.verdict.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn emit(
    arguments: &LiveArguments,
    scenario: &callgrid_sim::scenario::Scenario,
    directory: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let sites = scenario.sites.len();
    let default_addresses = |port: u16| -> Vec<String> {
        (0..sites)
            .map(|site| format!("127.0.0.1:{}", port + site as u16))
            .collect()
    };
    let addresses = configs::Addresses {
        http: if arguments.http_listen.is_empty() {
            default_addresses(18_080)
        } else {
            arguments.http_listen.clone()
        },
        cluster: if arguments.cluster_listen.is_empty() {
            default_addresses(17_080)
        } else {
            arguments.cluster_listen.clone()
        },
        certificates: arguments
            .certificates_dir
            .clone()
            .unwrap_or_else(|| directory.join("certs")),
    };
    anyhow::ensure!(
        (1.0..=live::clock::SPEED_MAX).contains(&arguments.speed),
        "--speed must be between 1 and {}",
        live::clock::SPEED_MAX
    );
    let plan = live::plan::draw(scenario, scenario.seed)?;
    // The routing clock starts five simulated minutes before the first interval, so agents are
    // logged in when the first caller rings.
    let day_ms = plan.day_span_ms.0.saturating_sub(5 * 60_000);
    let clock = DrillClock::starting_in(
        arguments.speed,
        Duration::from_secs(arguments.start_in_s),
        day_ms,
    );
    configs::emit(scenario, &plan, &clock, &addresses, directory)?;
    let urls: Vec<String> = addresses
        .http
        .iter()
        .map(|address| format!("http://{address}"))
        .collect();
    println!(
        "wrote {} site configs ({} agents), tokens.json and clock.json to {}\n\
         the simulated day starts in {} s at {}×; before that:\n  \
         callgrid certs init --dir {certs}; callgrid certs issue --dir {certs} --node N (N = 1..={sites})\n  \
         callgrid node --config {}/<site>/site.toml   (each site)\n  \
         callgrid-sim live SCENARIO --configs {} --sites {}",
        sites,
        plan.agents.len(),
        directory.display(),
        arguments.start_in_s,
        arguments.speed,
        directory.display(),
        directory.display(),
        urls.join(","),
        certs = addresses.certificates.display(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `check`.
pub fn run_check(arguments: CheckArguments) -> anyhow::Result<ExitCode> {
    let verdict = check::check_directory(&arguments.history)?;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        print!("{}", verdict.render());
    }
    Ok(if verdict.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
