//! `callgrid cluster local`: a cluster of three cities (msk, ekb, nsk) on this machine, to try
//! the SRE commands and the simulator's live mode on.
//!
//! It writes a directory (`--dir`, else a new one under the temp dir): a cluster CA and node
//! certificates, one config per site (HTTP and QUIC on free loopback ports, overflow between
//! the sites, three agents each, one admin token for all of them), and starts one `callgrid
//! node` per site (logs in `DIR/<site>/node.log`). The admin token is printed once. In the
//! foreground it runs until Ctrl-C (or SIGTERM), then stops the nodes with SIGTERM; with
//! `--detach` it writes `DIR/pids` and returns, and `callgrid cluster local stop --dir DIR`
//! stops them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;

use super::CliError;
use callgrid_node::api::auth::{TOKEN_BYTES, hash_token};

/// City site ids, in order.
pub const SITE_NAMES: [&str; 5] = ["msk", "ekb", "nsk", "kzn", "spb"];
/// City names of [`SITE_NAMES`].
const CITY_NAMES: [&str; 5] = [
    "Moscow",
    "Yekaterinburg",
    "Novosibirsk",
    "Kazan",
    "Saint Petersburg",
];
/// File in the directory listing the started nodes (`site pid` per line).
pub const PIDS_FILE: &str = "pids";
/// How long to wait for every node to have a leader.
pub const START_WAIT: Duration = Duration::from_secs(60);
/// How long a node may take to stop after SIGTERM before it is killed.
pub const STOP_WAIT: Duration = Duration::from_secs(15);

/// `callgrid cluster local`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LocalArguments {
    /// How many sites (1 to 5): msk, ekb, nsk, kzn, spb.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub sites: u8,
    /// Directory for certificates, configs, data and logs (default: a new temp directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Return once the cluster runs, leaving the nodes running (stop with `local stop`).
    #[arg(long)]
    pub detach: bool,
    /// `stop`.
    #[command(subcommand)]
    pub command: Option<LocalCommand>,
}

/// `callgrid cluster local stop`.
#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Stop the nodes a `--detach`ed local cluster started (SIGTERM, then wait).
    Stop {
        /// The directory it was started with.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// One started site.
struct Started {
    site: &'static str,
    node_id: u64,
    url: String,
    child: Child,
}

/// Runs `local` or `local stop`.
pub fn run(arguments: LocalArguments, json: bool) -> Result<(), CliError> {
    if let Some(LocalCommand::Stop { dir }) = arguments.command {
        return stop_detached(&dir);
    }
    let dir = match arguments.dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("callgrid-local-{}", std::process::id())),
    };
    if dir.join(PIDS_FILE).exists() {
        return Err(CliError::Usage(format!(
            "{} holds a running local cluster ({PIDS_FILE}): stop it first",
            dir.display()
        )));
    }
    let local = |error: &dyn std::fmt::Display| CliError::Local(error.to_string());
    std::fs::create_dir_all(&dir).map_err(|error| local(&error))?;
    let dir = dir.canonicalize().map_err(|error| local(&error))?;
    let mut bytes = [0_u8; TOKEN_BYTES];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let token = format!("cg_{}", hex::encode(bytes));
    let count = usize::from(arguments.sites);
    let configs = write_configs(&dir, count, &hex::encode(hash_token(&token)))?;
    let mut started: Vec<Started> = Vec::with_capacity(count);
    for (index, (config, url)) in configs.into_iter().enumerate() {
        let site = SITE_NAMES[index];
        match spawn_node(&dir, site, &config) {
            Ok(child) => started.push(Started {
                site,
                node_id: index as u64 + 1,
                url,
                child,
            }),
            Err(error) => {
                stop_children(&mut started);
                return Err(error);
            }
        }
    }
    if let Err(error) = wait_ready(&mut started) {
        stop_children(&mut started);
        return Err(error);
    }
    announce(&dir, &started, &token, arguments.detach, json);
    if arguments.detach {
        let pids: String = started
            .iter()
            .map(|node| format!("{} {}\n", node.site, node.child.id()))
            .collect();
        return std::fs::write(dir.join(PIDS_FILE), pids).map_err(|error| local(&error));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| local(&error))?;
    let signal = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = terminate.recv() => Ok::<_, std::io::Error>("SIGTERM"),
            _ = interrupt.recv() => Ok("SIGINT"),
        }
    });
    eprintln!(
        "{}: stopping the nodes",
        signal.map_err(|error| local(&error))?
    );
    stop_children(&mut started);
    eprintln!("stopped; data kept in {}", dir.display());
    Ok(())
}

/// A free loopback port (TCP or UDP); the OS may hand it out again before the node binds it,
/// which a local try-out accepts.
fn free_port(udp: bool) -> Result<u16, CliError> {
    let port = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|socket| socket.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|socket| socket.local_addr())
    };
    port.map(|address| address.port())
        .map_err(|error| CliError::Local(format!("no free port: {error}")))
}

/// Writes the CA, the certificates and each site's config; returns (config path, API URL).
fn write_configs(
    dir: &Path,
    count: usize,
    admin_sha256: &str,
) -> Result<Vec<(PathBuf, String)>, CliError> {
    let local = |error: &dyn std::fmt::Display| CliError::Local(error.to_string());
    let certs = dir.join("certs");
    if !certs.join("ca.pem").exists() {
        callgrid_cluster::certs::init_directory(&certs).map_err(|error| local(&error))?;
    }
    for id in 1..=count as u64 {
        callgrid_cluster::certs::issue_node_files(&certs, id).map_err(|error| local(&error))?;
    }
    let mut http = Vec::with_capacity(count);
    let mut quic = Vec::with_capacity(count);
    for _ in 0..count {
        http.push(free_port(false)?);
        quic.push(free_port(true)?);
    }
    let mut written = Vec::with_capacity(count);
    for index in 0..count {
        let site = SITE_NAMES[index];
        let mut text = format!(
            "# callgrid cluster local: site {site}\n[site]\nid = \"{site}\"\ncity = \"{}\"\n\
             number = {index}\ndata_dir = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{}\"\n\
             drain_s = 2\n\n[cluster]\nnode_id = {}\nlisten = \"127.0.0.1:{}\"\n\
             certificates_dir = \"{}\"\nbootstrap = \"new\"\n",
            CITY_NAMES[index],
            dir.join(site).join("data").display(),
            http[index],
            index + 1,
            quic[index],
            certs.display()
        );
        for other in (0..count).filter(|other| *other != index) {
            text.push_str(&format!(
                "\n[[cluster.peers]]\nid = {}\naddress = \"127.0.0.1:{}\"\n",
                other + 1,
                quic[other]
            ));
        }
        text.push_str("\n[overflow]\nenabled = true\n");
        for other in (0..count).filter(|other| *other != index) {
            text.push_str(&format!(
                "\n[[peer_sites]]\nid = \"{}\"\nnumber = {other}\napi_url = \"http://127.0.0.1:{}\"\n",
                SITE_NAMES[other], http[other]
            ));
        }
        for (id, login, skills) in [
            (1, "anna", "[\"line1\", \"complaints\", \"chat\"]"),
            (2, "boris", "[\"line1\", \"line2\"]"),
            (3, "vera", "[\"line1\", \"chat\"]"),
        ] {
            text.push_str(&format!(
                "\n[[agents]]\nlogin = \"{login}\"\nid = {id}\nskills = {skills}\n\
                 certificate_valid_until = \"2999-12-31\"\n"
            ));
        }
        text.push_str(&format!(
            "\n[[tokens]]\nname = \"local-admin\"\nrole = \"admin\"\nsha256 = \"{admin_sha256}\"\n"
        ));
        let site_dir = dir.join(site);
        std::fs::create_dir_all(&site_dir).map_err(|error| local(&error))?;
        let path = site_dir.join("site.toml");
        std::fs::write(&path, text).map_err(|error| local(&error))?;
        written.push((path, format!("http://127.0.0.1:{}", http[index])));
    }
    Ok(written)
}

fn spawn_node(dir: &Path, site: &str, config: &Path) -> Result<Child, CliError> {
    let local = |error: &dyn std::fmt::Display| CliError::Local(error.to_string());
    let binary = std::env::current_exe().map_err(|error| local(&error))?;
    let log =
        std::fs::File::create(dir.join(site).join("node.log")).map_err(|error| local(&error))?;
    let log_err = log.try_clone().map_err(|error| local(&error))?;
    Command::new(binary)
        .arg("node")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|error| CliError::Local(format!("starting the {site} node: {error}")))
}

/// Waits until every node answers `/readyz` with a leader.
fn wait_ready(started: &mut [Started]) -> Result<(), CliError> {
    let deadline = Instant::now() + START_WAIT;
    for node in started.iter_mut() {
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(CliError::Local(format!(
                    "the {} node exited ({status}): see its node.log",
                    node.site
                )));
            }
            let ready = ureq::get(&format!("{}/readyz", node.url))
                .timeout(Duration::from_secs(2))
                .call()
                .is_ok();
            if ready {
                break;
            }
            if Instant::now() >= deadline {
                return Err(CliError::Local(format!(
                    "the {} node has no leader after {} s: see its node.log",
                    node.site,
                    START_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

fn announce(dir: &Path, started: &[Started], token: &str, detach: bool, json: bool) {
    let stop = if detach {
        format!("callgrid cluster local stop --dir {}", dir.display())
    } else {
        "Ctrl-C".to_string()
    };
    if json {
        let sites: Vec<_> = started
            .iter()
            .map(|node| {
                json!({"site": node.site, "node_id": node.node_id, "url": node.url,
                       "pid": node.child.id()})
            })
            .collect();
        println!(
            "{}",
            json!({"sites": sites, "token": token, "dir": dir, "stop": stop})
        );
        return;
    }
    println!(
        "callgrid local cluster: {} sites, data in {}",
        started.len(),
        dir.display()
    );
    super::print_table(
        &std::iter::once(["SITE", "NODE", "URL", "LOG"].map(String::from).to_vec())
            .chain(started.iter().map(|node| {
                vec![
                    node.site.to_string(),
                    node.node_id.to_string(),
                    node.url.clone(),
                    dir.join(node.site).join("node.log").display().to_string(),
                ]
            }))
            .collect::<Vec<_>>(),
    );
    println!("admin token (shown once, keep it): {token}");
    if let Some(first) = started.first() {
        println!(
            "try:  CALLGRID_TOKEN=<token> callgrid cluster --url {} status",
            first.url
        );
    }
    println!("stop: {stop}");
}

fn signal(pid: u32, signal: rustix::process::Signal) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|pid| rustix::process::kill_process(pid, signal).is_ok())
}

/// SIGTERM to each child, then waits ([`STOP_WAIT`]) and kills what is left.
fn stop_children(started: &mut [Started]) {
    for node in started.iter() {
        signal(node.child.id(), rustix::process::Signal::TERM);
    }
    for node in started.iter_mut() {
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            match node.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!("the {} node did not stop in time: killed", node.site);
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Whether `pid` is still a `callgrid node` started with a config in `dir` (so a pid reused
/// by another process is never signalled).
fn is_our_node(pid: u32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let arguments: Vec<String> = cmdline
            .split(|byte| *byte == 0)
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect();
        arguments.iter().any(|argument| argument == "node")
            && arguments
                .iter()
                .any(|argument| Path::new(argument).starts_with(dir))
    })
}

/// `callgrid cluster local stop --dir DIR`.
fn stop_detached(dir: &Path) -> Result<(), CliError> {
    let path = dir.join(PIDS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|error| {
        CliError::Usage(format!(
            "{}: {error} (was it started with --detach --dir {}?)",
            path.display(),
            dir.display()
        ))
    })?;
    let dir = dir
        .canonicalize()
        .map_err(|error| CliError::Local(error.to_string()))?;
    let mut pids = Vec::new();
    for line in text.lines() {
        let Some((site, pid)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        if is_our_node(pid, &dir) {
            signal(pid, rustix::process::Signal::TERM);
            pids.push((site.to_string(), pid));
        }
    }
    let deadline = Instant::now() + STOP_WAIT;
    while pids.iter().any(|(_, pid)| is_our_node(*pid, &dir)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (site, pid) in &pids {
        if is_our_node(*pid, &dir) {
            eprintln!("the {site} node did not stop in time: killed");
            signal(*pid, rustix::process::Signal::KILL);
        }
    }
    std::fs::remove_file(&path).map_err(|error| CliError::Local(error.to_string()))?;
    println!(
        "stopped {} nodes; data kept in {}",
        pids.len(),
        dir.display()
    );
    Ok(())
}
