//! Network partitions for drills on loopback: the simulator's nftables helper
//! (`callgrid_sim::live::partition`), shared with `callgrid-sim live --faults`.
//! [`Partition::cut_off`] drops the UDP (QUIC) traffic between one node's cluster port and the
//! others' in a table of its own (`callgrid_test_<pid>_<n>`) that matches only the ports the
//! test allocated on 127.0.0.1; [`Partition::heal`] (or dropping the value, also while a test
//! panics) deletes that table. Needs root and `nft` (nftables).

pub use callgrid_sim::live::partition::{Partition, PartitionError};
