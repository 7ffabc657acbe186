//! Storage: the RocksDB store keeps what Raft persisted across reopen, compacts after a
//! snapshot, truncates conflicting suffixes, and reports a corrupted record clearly; the
//! in-memory store behaves the same for raft-rs.
#![allow(clippy::unwrap_used)]

use callgrid_cluster::StorageError;
use callgrid_cluster::snapshot_body::SnapshotBody;
use callgrid_cluster::storage::memory::MemoryStorage;
use callgrid_cluster::storage::rocks::{self, RocksStorage};
use callgrid_cluster::storage::{PersistRequest, Storage, StoreIdentity};
use raft::Storage as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

fn entry(index: u64, term: u64, data: &str) -> Entry {
    let mut entry = Entry::default();
    entry.index = index;
    entry.term = term;
    entry.data = data.as_bytes().to_vec().into();
    entry
}

fn body(text: &str) -> SnapshotBody {
    SnapshotBody::from_bytes(text.as_bytes().to_vec())
}

fn bootstrap_snapshot() -> Snapshot {
    let mut snapshot = Snapshot::default();
    let metadata = snapshot.mut_metadata();
    metadata.index = 1;
    metadata.term = 1;
    let mut conf_state = ConfState::default();
    conf_state.voters = vec![1, 2, 3];
    metadata.set_conf_state(conf_state);
    snapshot
}

fn identity(lost_through: u64) -> StoreIdentity {
    StoreIdentity {
        cluster_id: "test".to_owned(),
        node_id: 1,
        lost_through,
        incarnation: 1,
    }
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    let mut hard_state = HardState::default();
    hard_state.term = term;
    hard_state.vote = vote;
    hard_state.commit = commit;
    hard_state
}

fn fill<S: Storage>(storage: &mut S) {
    assert!(storage.is_empty());
    assert_eq!(storage.identity(), None);
    storage
        .bootstrap(&bootstrap_snapshot(), &body("initial"), &identity(0))
        .unwrap();
    assert!(
        storage
            .bootstrap(&bootstrap_snapshot(), &body("initial"), &identity(0))
            .is_err()
    );
    storage.set_identity(&identity(7)).unwrap();
    let entries: Vec<Entry> = (2..=6).map(|i| entry(i, 2, &format!("e{i}"))).collect();
    storage
        .persist(PersistRequest {
            snapshot: None,
            entries: &entries,
            hard_state: Some(&hard_state(2, 1, 4)),
            sync: true,
        })
        .unwrap();
    // A new leader overwrites 5..: the old 5 and 6 go away.
    let replacement = [entry(5, 3, "x5")];
    storage
        .persist(PersistRequest {
            snapshot: None,
            entries: &replacement,
            hard_state: Some(&hard_state(3, 2, 4)),
            sync: true,
        })
        .unwrap();
}

fn check_filled<S: Storage>(storage: &S) {
    assert_eq!(storage.first_index().unwrap(), 2);
    assert_eq!(storage.last_index().unwrap(), 5);
    assert_eq!(storage.term(1).unwrap(), 1);
    assert_eq!(storage.term(5).unwrap(), 3);
    let entries = storage
        .entries(2, 6, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    let data: Vec<&[u8]> = entries.iter().map(|e| e.get_data()).collect();
    assert_eq!(data, vec![&b"e2"[..], b"e3", b"e4", b"x5"]);
    assert_eq!(storage.identity(), Some(identity(7)));
    let state = storage.initial_state().unwrap();
    assert_eq!(state.hard_state, hard_state(3, 2, 4));
    assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
}

#[test]
fn memory_storage_appends_truncates_and_compacts() {
    let mut storage = MemoryStorage::new();
    fill(&mut storage);
    check_filled(&storage);
    let mut snapshot = bootstrap_snapshot();
    snapshot.mut_metadata().index = 4;
    snapshot.mut_metadata().term = 2;
    storage
        .save_snapshot(&snapshot, &body("state at 4"), 5)
        .unwrap();
    assert_eq!(storage.first_index().unwrap(), 5);
    assert!(
        storage
            .entries(3, 5, None, raft::GetEntriesContext::empty(false))
            .is_err()
    );
    assert_eq!(storage.term(4).unwrap(), 2);
}

#[test]
fn rocks_storage_survives_reopen_and_compaction() {
    let directory = tempfile::tempdir().unwrap();
    {
        let mut storage = RocksStorage::open(directory.path()).unwrap();
        fill(&mut storage);
        check_filled(&storage);
    }
    let mut storage = RocksStorage::open(directory.path()).unwrap();
    check_filled(&storage);

    let mut snapshot = bootstrap_snapshot();
    snapshot.mut_metadata().index = 4;
    snapshot.mut_metadata().term = 2;
    storage
        .save_snapshot(&snapshot, &body("state at 4"), 5)
        .unwrap();
    storage.set_commit(5).unwrap();
    drop(storage);

    let storage = RocksStorage::open(directory.path()).unwrap();
    assert_eq!(storage.first_index().unwrap(), 5);
    assert_eq!(storage.last_index().unwrap(), 5);
    assert_eq!(
        storage.latest_snapshot_body().to_vec().unwrap(),
        b"state at 4"
    );
    assert!(storage.latest_snapshot().get_data().is_empty());
    assert_eq!(storage.latest_snapshot().get_metadata().index, 4);
    assert_eq!(storage.initial_state().unwrap().hard_state.commit, 5);
    assert_eq!(
        rocks::read_conf_state(&storage).unwrap().unwrap().voters,
        vec![1, 2, 3]
    );
}

#[test]
fn rocks_storage_installs_a_received_snapshot() {
    let directory = tempfile::tempdir().unwrap();
    let mut storage = RocksStorage::open(directory.path()).unwrap();
    fill(&mut storage);
    let mut snapshot = bootstrap_snapshot();
    snapshot.mut_metadata().index = 10;
    snapshot.mut_metadata().term = 4;
    storage
        .persist(PersistRequest {
            snapshot: Some((&snapshot, &body("received"))),
            entries: &[],
            hard_state: None,
            sync: true,
        })
        .unwrap();
    drop(storage);
    let storage = RocksStorage::open(directory.path()).unwrap();
    assert_eq!(storage.first_index().unwrap(), 11);
    assert_eq!(storage.last_index().unwrap(), 10);
    let hard_state = storage.initial_state().unwrap().hard_state;
    assert_eq!((hard_state.term, hard_state.commit), (4, 10));
}

#[test]
fn corrupted_log_record_is_reported_with_its_location() {
    let directory = tempfile::tempdir().unwrap();
    {
        let mut storage = RocksStorage::open(directory.path()).unwrap();
        fill(&mut storage);
    }
    {
        // Flip one byte of entry 3's stored value, behind the store's back.
        let mut options = rocksdb::Options::default();
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(
            &options,
            directory.path(),
            [
                rocks::COLUMN_FAMILY_LOG,
                rocks::COLUMN_FAMILY_STATE,
                rocks::COLUMN_FAMILY_SNAPSHOT,
                rocks::COLUMN_FAMILY_STATE_MACHINE,
            ],
        )
        .unwrap();
        let log = db.cf_handle(rocks::COLUMN_FAMILY_LOG).unwrap();
        let key = 3u64.to_be_bytes();
        let mut value = db.get_cf(log, key).unwrap().unwrap();
        let last = value.len() - 1;
        value[last] ^= 0x40;
        db.put_cf(log, key, value).unwrap();
    }
    let error = RocksStorage::open(directory.path()).unwrap_err();
    match &error {
        StorageError::Corrupted {
            column_family,
            key,
            reason,
        } => {
            assert_eq!(*column_family, rocks::COLUMN_FAMILY_LOG);
            assert_eq!(key, "index 3");
            assert!(reason.contains("crc32"), "{reason}");
        }
        other => panic!("expected a corruption error, got {other}"),
    }
    assert!(error.to_string().contains("corrupted record"));
}

#[test]
fn corrupted_hard_state_is_reported() {
    let directory = tempfile::tempdir().unwrap();
    {
        let mut storage = RocksStorage::open(directory.path()).unwrap();
        fill(&mut storage);
    }
    {
        let db = rocksdb::DB::open_cf(
            &rocksdb::Options::default(),
            directory.path(),
            [
                rocks::COLUMN_FAMILY_LOG,
                rocks::COLUMN_FAMILY_STATE,
                rocks::COLUMN_FAMILY_SNAPSHOT,
                rocks::COLUMN_FAMILY_STATE_MACHINE,
            ],
        )
        .unwrap();
        let state = db.cf_handle(rocks::COLUMN_FAMILY_STATE).unwrap();
        db.put_cf(state, b"hard_state", [1, 2]).unwrap();
    }
    let error = RocksStorage::open(directory.path()).unwrap_err();
    assert!(
        matches!(error, StorageError::Corrupted { column_family, .. } if column_family == rocks::COLUMN_FAMILY_STATE),
        "{error}"
    );
}

/// After a snapshot at 4 keeping entries from 3 (the compaction lag): the log starts at 3.
fn check_kept_behind_the_snapshot<S: Storage>(storage: &S) {
    assert_eq!(storage.latest_snapshot().get_metadata().index, 4);
    assert_eq!(storage.first_index().unwrap(), 3);
    assert_eq!(storage.last_index().unwrap(), 5);
    assert_eq!(storage.term(3).unwrap(), 2);
    assert_eq!(storage.term(4).unwrap(), 2);
    let entries = storage
        .entries(3, 6, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    let data: Vec<&[u8]> = entries.iter().map(|e| e.get_data()).collect();
    assert_eq!(data, vec![&b"e3"[..], b"e4", b"x5"]);
    assert!(
        storage
            .entries(2, 4, None, raft::GetEntriesContext::empty(false))
            .is_err(),
        "entry 2 was compacted"
    );
}

#[test]
fn entries_behind_a_snapshot_are_kept_for_lagging_followers_across_reopen() {
    let mut snapshot = bootstrap_snapshot();
    snapshot.mut_metadata().index = 4;
    snapshot.mut_metadata().term = 2;

    let mut memory = MemoryStorage::new();
    fill(&mut memory);
    memory
        .save_snapshot(&snapshot, &body("state at 4"), 3)
        .unwrap();
    check_kept_behind_the_snapshot(&memory);
    memory.crash();
    check_kept_behind_the_snapshot(&memory);

    let directory = tempfile::tempdir().unwrap();
    {
        let mut storage = RocksStorage::open(directory.path()).unwrap();
        fill(&mut storage);
        storage
            .save_snapshot(&snapshot, &body("state at 4"), 3)
            .unwrap();
        check_kept_behind_the_snapshot(&storage);
    }
    let mut storage = RocksStorage::open(directory.path()).unwrap();
    check_kept_behind_the_snapshot(&storage);
    // Appending after the snapshot works; rewriting what it covers is refused.
    let next = [entry(6, 3, "e6")];
    storage
        .persist(PersistRequest {
            entries: &next,
            sync: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(storage.last_index().unwrap(), 6);
    let covered = [entry(4, 3, "rewrite")];
    assert!(
        storage
            .persist(PersistRequest {
                entries: &covered,
                sync: true,
                ..Default::default()
            })
            .is_err()
    );
    // A received snapshot replaces the whole log, kept entries included.
    let mut received = bootstrap_snapshot();
    received.mut_metadata().index = 10;
    received.mut_metadata().term = 4;
    storage
        .persist(PersistRequest {
            snapshot: Some((&received, &body("received"))),
            ..Default::default()
        })
        .unwrap();
    drop(storage);
    let storage = RocksStorage::open(directory.path()).unwrap();
    assert_eq!(storage.first_index().unwrap(), 11);
    assert_eq!(storage.last_index().unwrap(), 10);
}

#[test]
fn rocks_snapshot_bodies_live_in_files_beside_the_store() {
    let directory = tempfile::tempdir().unwrap();
    let files = || {
        let mut names: Vec<String> =
            std::fs::read_dir(directory.path().join(rocks::SNAPSHOT_DIRECTORY))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        names.sort();
        names
    };
    let mut storage = RocksStorage::open(directory.path()).unwrap();
    fill(&mut storage);
    assert_eq!(
        files().len(),
        1,
        "the bootstrap snapshot's file: {:?}",
        files()
    );
    let mut snapshot = bootstrap_snapshot();
    for (index, text) in [(3, "state at 3"), (4, "state at 4")] {
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = 2;
        // Written through the store's writer, as the driver does.
        let mut writer = storage.snapshot_writer(index, 2).unwrap();
        std::io::Write::write_all(&mut writer, text.as_bytes()).unwrap();
        let written = writer.finish().unwrap();
        storage.save_snapshot(&snapshot, &written, index).unwrap();
    }
    // The latest and the one before it stay; the older one is gone.
    let names = files();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[1].contains(&format!("{:020}", 4)), "{names:?}");
    let held = storage.latest_snapshot_body();
    drop(storage);

    let storage = RocksStorage::open(directory.path()).unwrap();
    assert_eq!(
        storage.latest_snapshot_body().to_vec().unwrap(),
        b"state at 4"
    );
    assert_eq!(held, storage.latest_snapshot_body());
    drop(storage);

    // A snapshot file changed on disk: a wrong length is refused at open, a wrong byte
    // when it is read (its crc32).
    let latest = directory
        .path()
        .join(rocks::SNAPSHOT_DIRECTORY)
        .join(&names[1]);
    std::fs::write(&latest, b"state at 5").unwrap();
    let storage = RocksStorage::open(directory.path()).unwrap();
    let error = storage.latest_snapshot_body().to_vec().unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    drop(storage);
    std::fs::write(&latest, b"short").unwrap();
    let error = RocksStorage::open(directory.path()).unwrap_err();
    assert!(matches!(error, StorageError::Corrupted { .. }), "{error}");
    assert!(error.to_string().contains("snapshot file"), "{error}");
}

#[test]
fn a_checkpoint_carries_the_snapshot_file() {
    let directory = tempfile::tempdir().unwrap();
    {
        let mut storage = RocksStorage::open(directory.path()).unwrap();
        fill(&mut storage);
        let mut snapshot = bootstrap_snapshot();
        snapshot.mut_metadata().index = 4;
        snapshot.mut_metadata().term = 2;
        storage
            .save_snapshot(&snapshot, &body("state at 4"), 5)
            .unwrap();
    }
    let copy = directory.path().join("copy");
    let info = rocks::checkpoint(directory.path(), &copy).unwrap();
    assert_eq!(info.first_index, 5);
    let storage = RocksStorage::open(&copy).unwrap();
    assert_eq!(
        storage.latest_snapshot_body().to_vec().unwrap(),
        b"state at 4"
    );
}

#[test]
fn force_new_cluster_commits_the_log_and_leaves_the_node_the_only_voter() {
    use protobuf::Message as _;
    use raft::eraftpb::{ConfChangeType, ConfChangeV2, EntryType};

    let directory = tempfile::tempdir().unwrap();
    // An empty store holds nothing to recover.
    assert!(rocks::force_new_cluster(directory.path(), 1).is_err());
    {
        let mut storage = RocksStorage::open(directory.path()).unwrap();
        // Node 1's store (the fill's identity), voters 1, 2, 3, commit 4 of 5.
        fill(&mut storage);
    }
    // The last change of its log (not known to be committed) added a learner, node 9.
    {
        let mut storage = RocksStorage::open(directory.path()).unwrap();
        let mut change = ConfChangeV2::default();
        let mut single = raft::eraftpb::ConfChangeSingle::default();
        single.set_change_type(ConfChangeType::AddLearnerNode);
        single.node_id = 9;
        change.mut_changes().push(single);
        let mut added = entry(6, 3, "");
        added.set_entry_type(EntryType::EntryConfChangeV2);
        added.data = change.write_to_bytes().unwrap().into();
        storage
            .persist(PersistRequest {
                entries: &[added],
                sync: true,
                ..Default::default()
            })
            .unwrap();
    }
    let forced = rocks::force_new_cluster(directory.path(), 1).unwrap();
    assert_eq!(forced.commit_before, 4);
    assert_eq!(forced.last_before, 6);
    assert_eq!(forced.removed, vec![2, 3, 9]);
    assert_eq!(forced.last_after, 9);
    let storage = RocksStorage::open(directory.path()).unwrap();
    let hard_state = storage.initial_state().unwrap().hard_state;
    assert_eq!(hard_state.commit, 9, "everything in the log is committed");
    let entries = storage
        .entries(7, 10, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    let removed: Vec<u64> = entries
        .iter()
        .map(|entry| {
            let change = ConfChangeV2::parse_from_bytes(entry.get_data()).unwrap();
            assert_eq!(
                change.get_changes()[0].get_change_type(),
                ConfChangeType::RemoveNode
            );
            change.get_changes()[0].node_id
        })
        .collect();
    assert_eq!(removed, vec![2, 3, 9]);
    assert_eq!(storage.identity().unwrap().lost_through, 0);
    drop(storage);
    // Another node's store is refused.
    let error = rocks::force_new_cluster(directory.path(), 2).unwrap_err();
    assert!(error.to_string().contains("belongs to node 1"), "{error}");
}
