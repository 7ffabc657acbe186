//! The `callgrid` binary: `callgrid node [--config site.toml]` runs a site node.
//!
//! Without a config it runs the embedded single-site default: data in `./callgrid-data`, API
//! on 127.0.0.1:8080 (or `--http`), a generated admin token printed once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use callgrid_node::api::auth::{TokenTable, ensure_admin_token, persist_admin_token};
use callgrid_node::config::NodeConfig;
use callgrid_node::replicate::Replicator;
use callgrid_node::state::SharedState;
use clap::{Parser, Subcommand};

mod backup;
mod cli;

#[derive(Debug, Parser)]
#[command(
    name = "callgrid",
    version,
    about = "callgrid contact-center site node"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run a site node (the default).
    Node(NodeArguments),
    /// Health probe for images without a shell: GET the URL, exit 0 on a 2xx answer.
    Probe {
        /// `http://host:port/path`.
        url: String,
    },
    /// Consistent backup of a node's store (RocksDB checkpoint, identity, manifest).
    Backup(backup::BackupArguments),
    /// Restore a backup into a new data directory (the node rejoins as a new member).
    Restore(backup::RestoreArguments),
    /// Site configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// API tokens: configs hold only their SHA-256 (`[[tokens]] sha256 = ...`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Cluster certificates (mutual TLS between sites).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// SRE commands over a node's admin API (status, membership, leader, drain, tokens), and
    /// `cluster local`: a three-city cluster on this machine.
    Cluster(cli::cluster::ClusterArguments),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a commented single-site sample (`callgrid config example > site.toml`).
    Example,
    /// Parse and validate a configuration file; the error names the key.
    Check {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Read a token from standard input (first line) and print its hex SHA-256.
    Hash,
    /// Generate a new random token; print it once and the `sha256` line for the config.
    New,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Create a cluster CA (`ca.pem`, `ca.key`) in a directory.
    Init {
        /// Directory for the files.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue `node-N.pem` / `node-N.key` signed by the CA in the directory.
    Issue {
        /// Directory holding the CA.
        #[arg(long)]
        dir: PathBuf,
        /// Node id (the `cluster.node_id` of the site).
        #[arg(long)]
        node: u64,
    },
}

#[derive(Debug, Default, clap::Args)]
struct NodeArguments {
    /// Site configuration (TOML). Without it: the embedded single-site default.
    #[arg(long, env = "CALLGRID_CONFIG")]
    config: Option<PathBuf>,
    /// HTTP listen address (overrides `http.listen`).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Cluster (QUIC) listen address (overrides `cluster.listen`).
    #[arg(long)]
    cluster_listen: Option<SocketAddr>,
    /// Data directory (overrides `site.data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let arguments = match cli.command {
        Some(Commands::Node(arguments)) => arguments,
        Some(Commands::Certs { command }) => return certs(command),
        Some(Commands::Token { command }) => return token(command),
        Some(Commands::Config { command }) => return config_command(command),
        Some(Commands::Probe { url }) => return probe(&url),
        Some(Commands::Cluster(arguments)) => std::process::exit(cli::cluster::run(arguments)),
        Some(Commands::Backup(arguments)) => {
            init_logging(false);
            return backup::run_backup(arguments);
        }
        Some(Commands::Restore(arguments)) => {
            init_logging(false);
            return backup::run_restore(arguments);
        }
        None => NodeArguments::default(),
    };
    init_logging(arguments.log_json);
    let mut config = match &arguments.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::embedded_default(),
    };
    if let Some(http) = arguments.http {
        config.http.listen = http;
    }
    if let Some(listen) = arguments.cluster_listen {
        config.cluster.listen = listen;
    }
    if let Some(data_dir) = &arguments.data_dir {
        config.site.data_dir = data_dir.clone();
    }
    config.validate()?;
    if !callgrid_node::clock::install(config.site.clock()) {
        anyhow::bail!("the routing clock was installed twice with different settings");
    }
    std::fs::create_dir_all(&config.site.data_dir)
        .with_context(|| format!("creating data directory {}", config.site.data_dir.display()))?;
    let config = Arc::new(config);

    let mut tokens = TokenTable::from_config(&config.tokens);
    let (admin_hash, generated) = ensure_admin_token(&config.site.data_dir)?;
    // Named after its site: the cluster's token list tells the sites' admin tokens apart
    // (`callgrid cluster token revoke --name admin@msk`).
    tokens.insert(
        admin_hash,
        format!("admin@{}", config.site.id),
        callgrid_node::state::model::Role::Admin,
    );
    let admin = generated.map(|token| (admin_hash, token));
    actix_web::rt::System::new().block_on(run(config, tokens, admin))
}

/// Runs the node; a newly generated admin token (hash, token) is stored and printed only once
/// the node has started, so a failed first start does not use it up.
async fn run(
    config: Arc<NodeConfig>,
    tokens: TokenTable,
    admin: Option<([u8; 32], String)>,
) -> anyhow::Result<()> {
    let shared = SharedState::new();
    let replicator: Arc<dyn Replicator> =
        callgrid_node::node::cluster_replicator(&config, shared.clone())
            .context("starting the cluster")?;
    let running = callgrid_node::node::start(config.clone(), tokens, replicator.clone(), shared)?;
    if let Some((hash, token)) = admin {
        persist_admin_token(&config.site.data_dir, &hash)?;
        // Printed once: only its hash is kept.
        println!("admin token (shown once, keep it): {token}");
    }
    println!(
        "callgrid site `{}` ({}) listening on http://{} (API /api/v1, data in {})",
        config.site.id,
        config.site.city,
        running.http_address,
        config.site.data_dir.display()
    );
    tracing::info!(http = %running.http_address, cluster = %config.cluster.listen, "node started");
    let site = running.site.clone();
    let mut server = actix_web::rt::spawn(running.server);
    tokio::select! {
        stopped = &mut server => stopped??,
        signal = stop_signal() => {
            let signal = signal?;
            tracing::info!(signal, "stopping");
            // A leader hands over first, while this node still serves: the cluster's writes
            // pause for one transfer, not for an election timeout after it is gone.
            match replicator.hand_over_leadership(LEADER_HAND_OVER_WAIT).await {
                Ok(Some(leader)) => tracing::info!(leader, "leadership handed over"),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "leadership not handed over; stopping anyway"),
            }
            // Stop accepting, let requests in flight finish (`http.drain_s`).
            running.handle.stop(true).await;
            server.await??;
        }
    }
    site.do_send(callgrid_node::actors::site::Drain);
    // The outbox's threads stop and are joined before the cluster goes: a drainer still
    // inside RocksDB or a proposal when the process exits could abort it. What is not
    // committed stays on disk for the next start.
    let outbox = running.outbox;
    if let Err(error) = tokio::task::spawn_blocking(move || outbox.close()).await {
        tracing::warn!(%error, "the outbox did not close cleanly");
    }
    replicator.shutdown();
    tracing::info!("node stopped");
    Ok(())
}

/// Longest wait, on SIGTERM, for another node to lead before this one stops anyway.
const LEADER_HAND_OVER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Resolves with the name of the first SIGTERM or SIGINT.
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

fn certs(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::Init { dir } => {
            callgrid_cluster::certs::init_directory(&dir)?;
            println!("cluster CA created in {}", dir.display());
        }
        CertsCommand::Issue { dir, node } => {
            anyhow::ensure!(node != 0, "--node must not be 0");
            let (certificate, key) = callgrid_cluster::certs::issue_node_files(&dir, node)?;
            println!("issued {} and {}", certificate.display(), key.display());
        }
    }
    Ok(())
}

/// Seconds a probe waits for the node.
const PROBE_TIMEOUT_S: u64 = 3;
/// Bytes of the answer a probe reads (the status line is all it needs).
const PROBE_RESPONSE_BYTES_MAX: u64 = 4_096;

fn probe(url: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are probed")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(authority, path)| {
            (authority, format!("/{path}"))
        });
    let address = std::net::ToSocketAddrs::to_socket_addrs(authority)?
        .next()
        .context("the host did not resolve")?;
    let timeout = std::time::Duration::from_secs(PROBE_TIMEOUT_S);
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream
        .take(PROBE_RESPONSE_BYTES_MAX)
        .read_to_string(&mut answer)?;
    let status = answer.split_whitespace().nth(1).unwrap_or_default();
    anyhow::ensure!(status.starts_with('2'), "probe failed: status {status}");
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .with_writer(std::io::stderr)
            .init();
    } else {
        // Colour only on a terminal: a log file or journal gets no escape codes.
        let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(colour)
            .init();
    }
}

/// `callgrid token hash|new`.
fn token(command: TokenCommand) -> anyhow::Result<()> {
    use callgrid_node::api::auth::{TOKEN_BYTES, hash_token};
    match command {
        TokenCommand::Hash => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the token from standard input")?;
            let token = line.trim();
            anyhow::ensure!(token.len() >= 16, "a token must be at least 16 characters");
            println!("{}", hex::encode(hash_token(token)));
        }
        TokenCommand::New => {
            let mut bytes = [0_u8; TOKEN_BYTES];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
            let token = format!("cg_{}", hex::encode(bytes));
            println!("token (shown once, give it to its holder): {token}");
            println!("sha256 = \"{}\"", hex::encode(hash_token(&token)));
        }
    }
    Ok(())
}

/// `callgrid config example|check`.
fn config_command(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Example => print!("{}", NodeConfig::EXAMPLE),
        ConfigCommand::Check { file } => {
            let config = NodeConfig::load(&file)?;
            println!(
                "{}: valid (site `{}`, {} skills, {} agents, {} tokens)",
                file.display(),
                config.site.id,
                config.routing.skills.len(),
                config.agents.len(),
                config.tokens.len()
            );
        }
    }
    Ok(())
}
