//! Operations metrics beside routing and Raft: each Raft member's lag, the node certificate's
//! expiry, and the data directory's disk space (for the alert rules in
//! `deploy/prometheus/callgrid.rules.yml`). Every family carries `# HELP` and `# TYPE`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use callgrid_cluster::certs::node_certificate_path;

use crate::config::NodeConfig;
use crate::replicate::ReplicaHealth;

/// Directory of the node certificates when `cluster.certificates_dir` is not set (as the
/// cluster module resolves it).
fn certificates_directory(config: &NodeConfig) -> PathBuf {
    config.cluster.certificates_dir.clone().unwrap_or_else(|| {
        config
            .site
            .data_dir
            .join(crate::cluster::CERTIFICATES_DIRECTORY)
    })
}

/// `notAfter` of the first certificate in a PEM file, in Unix seconds.
pub fn certificate_not_after(pem: &[u8]) -> Option<i64> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let certificate = pem.parse_x509().ok()?;
    Some(certificate.validity().not_after.timestamp())
}

/// Available and total bytes of the filesystem holding `path`.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let stats = rustix::fs::statvfs(path).ok()?;
    let available = stats.f_bavail.saturating_mul(stats.f_frsize);
    let size = stats.f_blocks.saturating_mul(stats.f_frsize);
    debug_assert!(available <= size || size == 0);
    Some((available, size))
}

fn header(text: &mut String, name: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} gauge");
}

/// Appends member lag, certificate expiry and disk space to the `/metrics` text.
pub fn render(text: &mut String, config: &NodeConfig, health: &ReplicaHealth) {
    let site = config.site.id.as_str();
    let members = health.details["members"].as_array();
    let lags: Vec<(u64, u64)> = members
        .into_iter()
        .flatten()
        .filter_map(|member| Some((member["id"].as_u64()?, member["lag"].as_u64()?)))
        .collect();
    if !lags.is_empty() {
        header(
            text,
            "callgrid_raft_member_lag_entries",
            "Log entries a Raft member is behind the leader (reported by the leader).",
        );
        for (member, lag) in lags {
            let _ = writeln!(
                text,
                "callgrid_raft_member_lag_entries{{site=\"{site}\",member=\"{member}\"}} {lag}"
            );
        }
    }
    let certificate =
        node_certificate_path(&certificates_directory(config), config.cluster.node_id);
    if let Some(not_after) = std::fs::read(&certificate)
        .ok()
        .and_then(|pem| certificate_not_after(&pem))
    {
        header(
            text,
            "callgrid_certificate_expiry_timestamp_seconds",
            "When this node's cluster certificate expires (Unix seconds).",
        );
        let _ = writeln!(
            text,
            "callgrid_certificate_expiry_timestamp_seconds{{site=\"{site}\"}} {not_after}"
        );
    }
    match disk_space(&config.site.data_dir) {
        Some((available, size)) => {
            header(
                text,
                "callgrid_data_dir_available_bytes",
                "Bytes available to the node on the data directory's filesystem.",
            );
            let _ = writeln!(
                text,
                "callgrid_data_dir_available_bytes{{site=\"{site}\"}} {available}"
            );
            header(
                text,
                "callgrid_data_dir_size_bytes",
                "Size of the data directory's filesystem in bytes.",
            );
            let _ = writeln!(
                text,
                "callgrid_data_dir_size_bytes{{site=\"{site}\"}} {size}"
            );
        }
        None => {
            tracing::warn!(dir = %config.site.data_dir.display(), "data directory statvfs failed")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn certificate_expiry_is_read_from_pem() {
        let authority = callgrid_cluster::certs::CertificateAuthority::generate().unwrap();
        let not_after = certificate_not_after(authority.certificate_pem().as_bytes()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(not_after > now + 86_400, "{not_after} vs {now}");
        assert!(certificate_not_after(b"not a certificate").is_none());
    }

    #[test]
    fn disk_space_of_a_temp_dir() {
        let directory = tempfile::tempdir().unwrap();
        let (available, size) = disk_space(directory.path()).unwrap();
        assert!(size > 0 && available <= size);
        assert!(disk_space(&directory.path().join("missing")).is_none());
    }
}
