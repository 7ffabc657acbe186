//! Network partitions on loopback with nftables: [`Partition::cut_off`] drops the UDP (QUIC)
//! traffic between one node's cluster port and its peers' ports, in an `inet` table of its
//! own named `<prefix>_<pid>_<n>`, matching only those ports on 127.0.0.1; [`Partition::heal`]
//! (or dropping the value, also while a thread panics) deletes that table. Nothing else on
//! the machine is touched. Needs root and `nft` (nftables).
//!
//! Used by `callgrid-sim live --faults` (prefix [`LIVE_PREFIX`]) and by the end-to-end tests
//! (`callgrid_tests::netns`). A run killed before it healed leaves its table behind;
//! [`remove_orphans`] deletes the tables of a prefix whose process no longer exists.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Table prefix of the live runs' partitions.
pub const LIVE_PREFIX: &str = "callgrid_live";

/// Tables made by this process so far (the `<n>` of the table names).
static TABLES: AtomicU32 = AtomicU32::new(0);

/// Why a partition could not be made or healed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PartitionError(pub String);

/// One node's cluster port cut off from its peers' until healed or dropped.
#[derive(Debug)]
pub struct Partition {
    table: String,
    active: bool,
}

/// Runs `nft` with `script` on stdin; its standard output.
fn nft(script: &str) -> Result<String, PartitionError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| {
            PartitionError(format!(
                "cannot run `nft` ({error}): partitions need nftables \
                 (apt-get install -y nftables) and root"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|error| PartitionError(format!("nft stdin: {error}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| PartitionError(format!("nft: {error}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(PartitionError(format!(
            "nft failed ({}): {}\nscript:\n{script}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )))
    }
}

/// A set literal of ports: `{ 1, 2 }`.
fn port_set(ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!("{{ {} }}", list.join(", "))
}

/// The nftables script of a table `table` dropping UDP on 127.0.0.1 between `port` and each
/// of `peers`, both ways (output and input hooks).
pub fn cut_off_script(table: &str, port: u16, peers: &[u16]) -> String {
    let peers = port_set(peers);
    let rules = format!(
        "ip saddr 127.0.0.1 ip daddr 127.0.0.1 udp sport {port} udp dport {peers} drop\n    \
         ip saddr 127.0.0.1 ip daddr 127.0.0.1 udp sport {peers} udp dport {port} drop"
    );
    format!(
        "table inet {table} {{\n  \
           chain output {{\n    type filter hook output priority 0; policy accept;\n    {rules}\n  }}\n  \
           chain input {{\n    type filter hook input priority 0; policy accept;\n    {rules}\n  }}\n\
         }}\n"
    )
}

impl Partition {
    /// Drops UDP on 127.0.0.1 between `port` (the cut-off node's cluster port) and each of
    /// `peers` (the other nodes' cluster ports), both ways, until healed; the table is named
    /// `callgrid_test_<pid>_<n>`.
    pub fn cut_off(port: u16, peers: &[u16]) -> Result<Partition, PartitionError> {
        Partition::cut_off_named("callgrid_test", port, peers)
    }

    /// [`Partition::cut_off`] in a table named `<prefix>_<pid>_<n>` (`prefix`: letters,
    /// digits and `_`).
    pub fn cut_off_named(
        prefix: &str,
        port: u16,
        peers: &[u16],
    ) -> Result<Partition, PartitionError> {
        if peers.is_empty() || peers.contains(&port) {
            return Err(PartitionError(format!(
                "cut off port {port} from peers {peers:?}: need other ports"
            )));
        }
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || character == '_')
        {
            return Err(PartitionError(format!(
                "table prefix `{prefix}`: letters, digits and `_` only"
            )));
        }
        let table = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed)
        );
        nft(&cut_off_script(&table, port, peers))?;
        Ok(Partition {
            table,
            active: true,
        })
    }

    /// The nftables table holding the rules (`inet` family).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Deletes the rules: the node hears its peers again.
    pub fn heal(&mut self) -> Result<(), PartitionError> {
        if !self.active {
            return Ok(());
        }
        nft(&format!("delete table inet {}\n", self.table))?;
        self.active = false;
        Ok(())
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Err(error) = self.heal() {
            tracing::error!(table = %self.table, %error, "partition not healed");
        }
    }
}

/// The process id in a table name `<prefix>_<pid>_<n>`, if the name has that form.
pub fn table_pid(prefix: &str, table: &str) -> Option<u32> {
    let rest = table.strip_prefix(prefix)?.strip_prefix('_')?;
    let (pid, n) = rest.split_once('_')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Deletes the `inet` tables named `<prefix>_<pid>_<n>` whose process is gone (a run killed
/// before it healed); the names deleted. Tables of running processes are left alone.
pub fn remove_orphans(prefix: &str) -> Result<Vec<String>, PartitionError> {
    let listing = nft("list tables inet\n")?;
    let mut removed = Vec::new();
    for line in listing.lines() {
        let Some(table) = line.trim().strip_prefix("table inet ") else {
            continue;
        };
        let Some(pid) = table_pid(prefix, table) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        nft(&format!("delete table inet {table}\n"))?;
        removed.push(table.to_string());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_matches_only_the_given_ports_on_loopback() {
        let script = cut_off_script("callgrid_live_1_0", 7001, &[7002, 7003]);
        assert!(
            script.starts_with("table inet callgrid_live_1_0 {"),
            "{script}"
        );
        assert!(
            script.contains("udp sport 7001 udp dport { 7002, 7003 } drop"),
            "{script}"
        );
        assert!(
            script.contains("udp sport { 7002, 7003 } udp dport 7001 drop"),
            "{script}"
        );
        assert_eq!(
            script
                .matches("ip saddr 127.0.0.1 ip daddr 127.0.0.1")
                .count(),
            4
        );
    }

    #[test]
    fn table_names_give_their_process() {
        assert_eq!(table_pid("callgrid_live", "callgrid_live_123_4"), Some(123));
        assert_eq!(table_pid("callgrid_live", "callgrid_test_123_4"), None);
        assert_eq!(table_pid("callgrid_live", "callgrid_live_x_4"), None);
        assert_eq!(table_pid("callgrid_live", "filter"), None);
    }

    #[test]
    fn a_port_is_not_cut_off_from_itself() {
        let error = Partition::cut_off_named("callgrid_live", 7001, &[7001]).expect_err("refused");
        assert!(error.0.contains("need other ports"), "{error}");
        let error = Partition::cut_off_named("bad prefix", 7001, &[7002]).expect_err("refused");
        assert!(error.0.contains("letters, digits"), "{error}");
    }
}
