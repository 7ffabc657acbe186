//! `callgrid backup` and `callgrid restore`: a node's replicated state on disk and back.
//!
//! ```text
//!   backup --to DIR                         restore --from DIR --data DATA
//!   DIR/store/          RocksDB checkpoint   ──► DATA/raft/        (verified on open)
//!   DIR/identity/*.pem  CA + node cert       (checked, not copied: the new member gets its own)
//!   DIR/site.toml       the site's config    (a reference for the new member's config)
//!   DIR/admin-token.sha256                   ──► DATA/admin-token.sha256
//!   DIR/manifest.json   who, when, which log range, sha256 + size of every file above
//! ```
//!
//! The backup runs beside the live node: the store is opened read-only (no lock) and
//! checkpointed (see `callgrid_cluster::storage::rocks::checkpoint`), then the checkpoint is
//! reopened and every record's crc32 verified before the manifest is written — a directory
//! without `manifest.json` is not a backup. Restore verifies every file against the manifest
//! before it writes anything and never overwrites a store.
//!
//! A restored store is brought back as a **new member** (RUNBOOK.md, "Restore from backup"):
//! start it with a node id the cluster never had, add it from the leader as a learner, and
//! promote it once it has caught up. Reusing the backed-up node id would let the node vote
//! again in terms it already voted in before the backup. A one-node site has no other member
//! to add it: it restarts from the restored store under its own id.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use callgrid_cluster::storage::rocks;
use callgrid_node::api::auth::ADMIN_TOKEN_FILE;
use callgrid_node::cluster::RAFT_DIRECTORY;
use callgrid_node::config::NodeConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The manifest's file name inside a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The RocksDB checkpoint inside a backup directory.
pub const STORE_DIRECTORY: &str = "store";
/// Certificates (public parts only) inside a backup directory.
pub const IDENTITY_DIRECTORY: &str = "identity";
/// The site's configuration inside a backup directory.
pub const CONFIG_FILE: &str = "site.toml";
/// The layout version this binary writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// `callgrid backup` arguments.
#[derive(Debug, clap::Args)]
pub struct BackupArguments {
    /// The node's site configuration (its data dir, node id and certificates).
    #[arg(long, env = "CALLGRID_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides `site.data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// New directory for the backup (must not exist or be empty).
    #[arg(long)]
    to: PathBuf,
}

/// `callgrid restore` arguments.
#[derive(Debug, clap::Args)]
pub struct RestoreArguments {
    /// A directory written by `callgrid backup`.
    #[arg(long)]
    from: PathBuf,
    /// The new node's data directory (must hold no store yet).
    #[arg(long)]
    data: PathBuf,
    /// The Raft id the restored store will run as: a NEW id when the backup is of a member of
    /// a multi-node cluster (the copy joins as a new member); left out, the store keeps the
    /// backed-up node's id (a one-node site, or a copy only to inspect).
    #[arg(long)]
    node_id: Option<u64>,
}

/// What a backup holds; written last, so its presence marks a complete backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Version of the binary that wrote it.
    pub callgrid_version: String,
    /// Wall-clock time of the backup (Unix milliseconds).
    pub created_at_ms: u64,
    /// The site (`site.id`).
    pub site: String,
    /// The backed-up node's Raft id: a restored node must not reuse it in a cluster.
    pub node_id: u64,
    /// The cluster as this node knew it.
    pub cluster: ClusterIdentity,
    /// The log range in the checkpoint.
    pub store: StoreRange,
    /// Every file of the backup but the manifest, sorted by path.
    pub files: Vec<FileEntry>,
}

/// The cluster's identity: its members and its CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterIdentity {
    /// Voters of the store's latest snapshot configuration.
    pub voters: Vec<u64>,
    /// Learners of the store's latest snapshot configuration.
    pub learners: Vec<u64>,
    /// The configured peers (`[[cluster.peers]]`): id and address.
    pub peers: Vec<(u64, String)>,
    /// sha256 of the cluster CA certificate (`ca.pem`), when the node has one.
    pub ca_sha256: Option<String>,
}

/// First and last log index of the checkpoint (first - 1 is the snapshot's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreRange {
    /// First log index after the latest snapshot.
    pub first_index: u64,
    /// Last log index.
    pub last_index: u64,
}

/// One file of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the backup directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// sha256, lowercase hex.
    pub sha256: String,
}

/// `callgrid backup`.
pub fn run_backup(arguments: BackupArguments) -> anyhow::Result<()> {
    let mut config = match &arguments.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::embedded_default(),
    };
    if let Some(data_dir) = arguments.data_dir {
        config.site.data_dir = data_dir;
    }
    config.validate()?;
    let manifest = backup(&config, arguments.config.as_deref(), &arguments.to)?;
    println!(
        "backup of site `{}` node {} in {}: log {}..={}, {} files, manifest {}",
        manifest.site,
        manifest.node_id,
        arguments.to.display(),
        manifest.store.first_index,
        manifest.store.last_index,
        manifest.files.len(),
        MANIFEST_FILE
    );
    Ok(())
}

/// `callgrid restore`.
pub fn run_restore(arguments: RestoreArguments) -> anyhow::Result<()> {
    let manifest = restore(&arguments.from, &arguments.data, arguments.node_id)?;
    println!(
        "restored site `{}` (backed-up node {}, log {}..={}) into {}",
        manifest.site,
        manifest.node_id,
        manifest.store.first_index,
        manifest.store.last_index,
        arguments.data.display()
    );
    if let Some(node_id) = arguments.node_id.filter(|id| *id != manifest.node_id) {
        println!(
            "next: start it with cluster.node_id = {node_id} (and learners = [{node_id}]), then on \
             the leader add it as a learner and promote it once it caught up (RUNBOOK.md, \
             \"Restore from backup\")"
        );
    } else if manifest.cluster.voters.len() + manifest.cluster.learners.len() > 1 {
        println!(
            "next: start it with a NEW cluster.node_id (not {}), then on the leader add it as a \
             learner and promote it once it caught up (RUNBOOK.md, \"Restore from backup\")",
            manifest.node_id
        );
    } else {
        println!("next: start the one-node site on this data directory (same config)");
    }
    Ok(())
}

/// Writes a backup of the node described by `config` into `to`.
pub fn backup(
    config: &NodeConfig,
    config_path: Option<&Path>,
    to: &Path,
) -> anyhow::Result<Manifest> {
    let store = config.site.data_dir.join(RAFT_DIRECTORY);
    ensure!(
        store.join("CURRENT").is_file(),
        "no store in {} (is --data-dir / site.data_dir right?)",
        store.display()
    );
    prepare_empty_directory(to)?;
    let info = rocks::checkpoint(&store, &to.join(STORE_DIRECTORY))
        .with_context(|| format!("checkpoint of {}", store.display()))?;

    let certificates = config.cluster.certificates_dir.clone().unwrap_or_else(|| {
        config
            .site
            .data_dir
            .join(callgrid_node::cluster::CERTIFICATES_DIRECTORY)
    });
    let node_certificate = format!("node-{}.pem", config.cluster.node_id);
    let mut ca_sha256 = None;
    for name in ["ca.pem", node_certificate.as_str()] {
        let source = certificates.join(name);
        if source.is_file() {
            let target = to.join(IDENTITY_DIRECTORY).join(name);
            copy_file(&source, &target)?;
            if name == "ca.pem" {
                ca_sha256 = Some(file_digest(&target)?.1);
            }
        }
    }
    if let Some(path) = config_path {
        copy_file(path, &to.join(CONFIG_FILE))?;
    }
    let token = config.site.data_dir.join(ADMIN_TOKEN_FILE);
    if token.is_file() {
        copy_file(&token, &to.join(ADMIN_TOKEN_FILE))?;
    }

    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        callgrid_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at_ms: callgrid_node::replicate::now_ms(),
        site: config.site.id.clone(),
        node_id: config.cluster.node_id,
        cluster: ClusterIdentity {
            voters: info.voters,
            learners: info.learners,
            peers: config
                .cluster
                .peers
                .iter()
                .map(|peer| (peer.id, peer.address.clone()))
                .collect(),
            ca_sha256,
        },
        store: StoreRange {
            first_index: info.first_index,
            last_index: info.last_index,
        },
        files: list_files(to)?,
    };
    // Written last and renamed into place: a backup interrupted before this has no manifest.
    let text = serde_json::to_string_pretty(&manifest)?;
    let partial = to.join(format!("{MANIFEST_FILE}.partial"));
    std::fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
    sync_file(&partial)?;
    std::fs::rename(&partial, to.join(MANIFEST_FILE))?;
    tracing::info!(to = %to.display(), last_index = manifest.store.last_index, "backup written");
    Ok(manifest)
}

/// Checks a backup against its manifest and copies it into the data directory `data`.
pub fn restore(from: &Path, data: &Path, node_id: Option<u64>) -> anyhow::Result<Manifest> {
    let manifest = verify(from)?;
    if let Some(node_id) = node_id {
        ensure!(node_id > 0, "--node-id must be positive");
        let members = manifest.cluster.voters.len() + manifest.cluster.learners.len();
        ensure!(
            members <= 1 || node_id != manifest.node_id,
            "--node-id {node_id} is the backed-up member's own id: a restored copy joins as a NEW \
             member (RUNBOOK.md, \"Restore from backup\")"
        );
    }
    let store = data.join(RAFT_DIRECTORY);
    ensure!(
        !store.exists(),
        "{} already exists: restore only into a data directory without a store",
        store.display()
    );
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let store_prefix = format!("{STORE_DIRECTORY}/");
    for file in &manifest.files {
        let target = if let Some(rest) = file.path.strip_prefix(&store_prefix) {
            store.join(rest)
        } else if file.path == ADMIN_TOKEN_FILE {
            data.join(ADMIN_TOKEN_FILE)
        } else {
            continue;
        };
        copy_file(&from.join(&file.path), &target)?;
    }
    let info = rocks::checkpoint_info(&store)
        .with_context(|| format!("opening the restored store {}", store.display()))?;
    ensure!(
        info.last_index == manifest.store.last_index,
        "the restored store ends at index {} but the manifest says {}",
        info.last_index,
        manifest.store.last_index
    );
    if let Some(node_id) = node_id {
        rocks::adopt_store(&store, node_id)
            .with_context(|| format!("giving the restored store to node {node_id}"))?;
    }
    tracing::info!(from = %from.display(), data = %data.display(), "backup restored");
    Ok(manifest)
}

/// Reads the manifest and checks every file's size and sha256, and that no file is missing
/// or unlisted.
pub fn verify(from: &Path) -> anyhow::Result<Manifest> {
    let path = from.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (not a complete backup?)", path.display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(
        manifest.format == MANIFEST_FORMAT,
        "backup format {} is not {MANIFEST_FORMAT}",
        manifest.format
    );
    let listed: BTreeSet<&str> = manifest
        .files
        .iter()
        .map(|file| file.path.as_str())
        .collect();
    ensure!(
        listed.len() == manifest.files.len(),
        "the manifest lists a file twice"
    );
    for file in &manifest.files {
        check_relative(&file.path)?;
        let (bytes, sha256) = file_digest(&from.join(&file.path))?;
        ensure!(
            bytes == file.bytes && sha256 == file.sha256,
            "{} does not match the manifest ({bytes} bytes, sha256 {sha256})",
            file.path
        );
    }
    let present = list_files(from)?;
    for file in &present {
        ensure!(
            listed.contains(file.path.as_str()),
            "{} is not in the manifest",
            file.path
        );
    }
    Ok(manifest)
}

fn check_relative(path: &str) -> anyhow::Result<()> {
    let relative = Path::new(path);
    let plain = relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)));
    if path.is_empty() || !plain {
        bail!("manifest path {path:?} is not a plain relative path");
    }
    Ok(())
}

fn prepare_empty_directory(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        let mut entries =
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
        ensure!(
            entries.next().is_none(),
            "{} is not empty: back up into a new directory",
            path.display()
        );
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // The config may hold token hashes and the store holds callers' numbers.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn copy_file(source: &Path, target: &Path) -> anyhow::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::copy(source, target)
        .with_context(|| format!("copying {} to {}", source.display(), target.display()))?;
    sync_file(target)
}

fn sync_file(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

/// Every regular file under `root` except the manifest, with size and sha256, sorted.
fn list_files(root: &Path) -> anyhow::Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory)
            .with_context(|| format!("reading {}", directory.display()))?
        {
            let path = entry?.path();
            let kind = std::fs::symlink_metadata(&path)?.file_type();
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            ensure!(kind.is_file(), "{} is not a regular file", path.display());
            let relative = path.strip_prefix(root)?;
            let name = relative
                .components()
                .map(|component| component.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if name == MANIFEST_FILE || name == format!("{MANIFEST_FILE}.partial") {
                continue;
            }
            let (bytes, sha256) = file_digest(&path)?;
            files.push(FileEntry {
                path: name,
                bytes,
                sha256,
            });
        }
    }
    files.sort_by(|left, right| left.path.cmp(&right.path));
    Ok(files)
}

fn file_digest(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    let mut bytes = 0_u64;
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}
