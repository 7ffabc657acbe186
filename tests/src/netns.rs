//! Network partitions for drills on loopback: [`Partition::cut_off`] drops the UDP (QUIC)
//! traffic between one node's cluster port and the others' with nftables, in a table of its
//! own (`callgrid_test_<pid>_<n>`) that matches only the ports the test allocated on
//! 127.0.0.1; [`Partition::heal`] (or dropping the value, also while a test panics) deletes
//! that table. Nothing else on the machine is touched. Needs root and `nft` (nftables).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Tables made by this process so far (the `<n>` of the table names).
static TABLES: AtomicU32 = AtomicU32::new(0);

/// Why a partition could not be made.
#[derive(Debug)]
pub struct PartitionError(pub String);

impl std::fmt::Display for PartitionError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// One node's cluster port cut off from its peers' until healed or dropped.
#[derive(Debug)]
pub struct Partition {
    table: String,
    active: bool,
}

/// Runs `nft` with `script` on stdin.
fn nft(script: &str) -> Result<(), PartitionError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| {
            PartitionError(format!(
                "cannot run `nft` ({error}): the partition drills need nftables \
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
        Ok(())
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

impl Partition {
    /// Drops UDP on 127.0.0.1 between `port` (the cut-off node's cluster port) and each of
    /// `peers` (the other nodes' cluster ports), both ways, until healed.
    pub fn cut_off(port: u16, peers: &[u16]) -> Result<Partition, PartitionError> {
        if peers.is_empty() || peers.contains(&port) {
            return Err(PartitionError(format!(
                "cut off port {port} from peers {peers:?}: need other ports"
            )));
        }
        let table = format!(
            "callgrid_test_{}_{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed)
        );
        let peers = port_set(peers);
        let rules = format!(
            "ip saddr 127.0.0.1 ip daddr 127.0.0.1 udp sport {port} udp dport {peers} drop\n    \
             ip saddr 127.0.0.1 ip daddr 127.0.0.1 udp sport {peers} udp dport {port} drop"
        );
        let script = format!(
            "table inet {table} {{\n  \
               chain output {{\n    type filter hook output priority 0; policy accept;\n    {rules}\n  }}\n  \
               chain input {{\n    type filter hook input priority 0; policy accept;\n    {rules}\n  }}\n\
             }}\n"
        );
        nft(&script)?;
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
            eprintln!("partition {}: {error}", self.table);
        }
    }
}
