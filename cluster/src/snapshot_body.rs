//! Snapshot bodies: the bytes of a snapshot (the driver's envelope around the state machine's
//! state, see [`crate::codec::SnapshotEnvelope`]), kept apart from raft-rs's `Snapshot`
//! messages, which carry only the metadata.
//!
//! ```text
//!   state machine ── snapshot_to ──► SnapshotWriter ──► file beside the store (RocksDB) / bytes
//!   SnapshotBody ── read_at, 1 MiB at a time ──► transport stream ──► SnapshotWriter (spool)
//!   SnapshotBody ── reader ──► envelope header + state machine's restore_from
//! ```
//!
//! A body is written once, through a [`SnapshotWriter`] that counts its length and crc32 and
//! refuses more than [`SNAPSHOT_BYTES_MAX`]; then it is immutable and cheap to share
//! (`Clone` is an `Arc`). A file body holds its file open: reading goes on after the store
//! replaced and unlinked it, so a send already under way is never cut short. Memory stays
//! bounded by the buffers (one chunk), whatever the size of the state.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

pub use crate::codec::SNAPSHOT_BYTES_MAX;

/// Bytes read from a file body at a time by [`BodyReader`].
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// The bytes of one snapshot, in memory or in a file; immutable once written.
#[derive(Clone)]
pub enum SnapshotBody {
    /// In memory: small snapshots (tests, the simulation, the memory storage) and snapshots
    /// that arrived inline in a raft message from an older peer.
    Memory {
        /// The bytes.
        bytes: Bytes,
        /// Their crc32.
        crc32: u32,
    },
    /// In a file, held open.
    File(Arc<BodyFile>),
}

/// A snapshot body's file.
pub struct BodyFile {
    file: File,
    len: u64,
    crc32: u32,
    path: PathBuf,
    /// A spool file (a received snapshot not yet adopted by a store) is removed when its last
    /// handle goes; a store's own file is removed by the store.
    remove_on_drop: bool,
}

impl Drop for BodyFile {
    fn drop(&mut self) {
        if self.remove_on_drop {
            // Best effort: a spool file left behind is removed when the spool is next used.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl std::fmt::Debug for SnapshotBody {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotBody::Memory { bytes, crc32 } => formatter
                .debug_struct("Memory")
                .field("len", &bytes.len())
                .field("crc32", crc32)
                .finish(),
            SnapshotBody::File(file) => formatter
                .debug_struct("File")
                .field("path", &file.path)
                .field("len", &file.len)
                .field("crc32", &file.crc32)
                .finish(),
        }
    }
}

/// Two bodies are equal when they hold the same bytes (compared by length and crc32: a body
/// is immutable and its crc32 was counted as it was written).
impl PartialEq for SnapshotBody {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.crc32() == other.crc32()
    }
}

impl Default for SnapshotBody {
    fn default() -> Self {
        SnapshotBody::from_bytes(Bytes::new())
    }
}

impl SnapshotBody {
    /// A body over bytes already in memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        let crc32 = crc32fast::hash(&bytes);
        SnapshotBody::Memory { bytes, crc32 }
    }

    /// A body over an existing file holding `len` bytes whose crc32 is `crc32` (a store's
    /// recorded snapshot); the length is checked now, the crc32 as it is read.
    pub fn open_file(path: &Path, len: u64, crc32: u32) -> io::Result<Self> {
        let file = File::open(path)?;
        let found = file.metadata()?.len();
        if found != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{found} bytes, {len} recorded"),
            ));
        }
        Ok(SnapshotBody::File(Arc::new(BodyFile {
            file,
            len,
            crc32,
            path: path.to_owned(),
            remove_on_drop: false,
        })))
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            SnapshotBody::Memory { bytes, .. } => bytes.len() as u64,
            SnapshotBody::File(file) => file.len,
        }
    }

    /// True when it holds no byte (a node that has no snapshot yet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The crc32 of its bytes.
    pub fn crc32(&self) -> u32 {
        match self {
            SnapshotBody::Memory { crc32, .. } => *crc32,
            SnapshotBody::File(file) => file.crc32,
        }
    }

    /// True for a spool file (removed when its last handle goes): a store adopts it by a
    /// hard link instead of a copy when it can.
    pub fn is_spooled(&self) -> bool {
        matches!(self, SnapshotBody::File(file) if file.remove_on_drop)
    }

    /// The file it lives in, if it is a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            SnapshotBody::Memory { .. } => None,
            SnapshotBody::File(file) => Some(&file.path),
        }
    }

    /// Up to `max` bytes from `offset` (fewer only at the end). A file is read with `pread`:
    /// any number of readers at once, from any thread.
    pub fn read_at(&self, offset: u64, max: usize) -> io::Result<Bytes> {
        let len = self.len();
        if offset > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("offset {offset} past the body's {len} bytes"),
            ));
        }
        let count = (len - offset).min(max as u64) as usize;
        match self {
            SnapshotBody::Memory { bytes, .. } => {
                let start = offset as usize;
                Ok(bytes.slice(start..start + count))
            }
            SnapshotBody::File(file) => {
                let mut buffer = vec![0; count];
                file.file.read_exact_at(&mut buffer, offset)?;
                Ok(Bytes::from(buffer))
            }
        }
    }

    /// A sequential reader over the whole body that checks its crc32 at the end (a file
    /// changed on disk since it was written is an `InvalidData` error, not a silent misread).
    pub fn reader(&self) -> BodyReader {
        BodyReader {
            body: self.clone(),
            offset: 0,
            buffer: Bytes::new(),
            hasher: crc32fast::Hasher::new(),
        }
    }

    /// The whole body in memory (tests and small snapshots only).
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(self.len() as usize);
        self.reader().read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// Reads a [`SnapshotBody`] front to back; see [`SnapshotBody::reader`].
pub struct BodyReader {
    body: SnapshotBody,
    offset: u64,
    buffer: Bytes,
    hasher: crc32fast::Hasher,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buffer.is_empty() {
            if self.offset == self.body.len() {
                let found = self.hasher.clone().finalize();
                if found != self.body.crc32() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "snapshot body crc32 mismatch: recorded {:08x}, read {found:08x}",
                            self.body.crc32()
                        ),
                    ));
                }
                return Ok(0);
            }
            self.buffer = self.body.read_at(self.offset, READ_BUFFER_BYTES)?;
            self.offset += self.buffer.len() as u64;
            self.hasher.update(&self.buffer);
        }
        let count = out.len().min(self.buffer.len());
        out[..count].copy_from_slice(&self.buffer[..count]);
        let _ = self.buffer.split_to(count);
        Ok(count)
    }
}

/// Where a [`SnapshotWriter`] puts the bytes.
enum Target {
    Memory(Vec<u8>),
    File {
        writer: BufWriter<File>,
        /// Written here, renamed to `path` when finished.
        temporary: PathBuf,
        path: PathBuf,
        remove_on_drop: bool,
    },
}

/// Writes one snapshot body; counts its length and crc32 and refuses to grow past its limit.
pub struct SnapshotWriter {
    target: Option<Target>,
    len: u64,
    limit: u64,
    hasher: crc32fast::Hasher,
}

impl std::fmt::Debug for SnapshotWriter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SnapshotWriter")
            .field("len", &self.len)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl SnapshotWriter {
    /// A writer into memory.
    pub fn memory() -> Self {
        Self::with_target(Target::Memory(Vec::new()))
    }

    /// A writer into `path` (through a temporary file beside it, renamed on
    /// [`Self::finish`] after an fsync of the file and its directory).
    pub fn file(path: &Path) -> io::Result<Self> {
        Self::file_target(path, false)
    }

    /// A writer into a spool file: removed when the finished body's last handle goes (or
    /// at once if the writer is dropped unfinished).
    pub fn spool(path: &Path) -> io::Result<Self> {
        Self::file_target(path, true)
    }

    fn file_target(path: &Path, remove_on_drop: bool) -> io::Result<Self> {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".partial");
        let temporary = PathBuf::from(temporary);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        Ok(Self::with_target(Target::File {
            writer: BufWriter::with_capacity(READ_BUFFER_BYTES, file),
            temporary,
            path: path.to_owned(),
            remove_on_drop,
        }))
    }

    fn with_target(target: Target) -> Self {
        Self {
            target: Some(target),
            len: 0,
            limit: SNAPSHOT_BYTES_MAX as u64,
            hasher: crc32fast::Hasher::new(),
        }
    }

    /// Refuse to grow past `limit` bytes (default and maximum: [`SNAPSHOT_BYTES_MAX`]).
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = limit.min(SNAPSHOT_BYTES_MAX as u64);
        self
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Make the body durable (a file is fsynced, renamed into place, and its directory
    /// fsynced) and immutable.
    pub fn finish(mut self) -> io::Result<SnapshotBody> {
        let crc32 = self.hasher.clone().finalize();
        match self.target.take() {
            Some(Target::Memory(bytes)) => Ok(SnapshotBody::Memory {
                bytes: Bytes::from(bytes),
                crc32,
            }),
            Some(Target::File {
                writer,
                temporary,
                path,
                remove_on_drop,
            }) => {
                let file = writer.into_inner().map_err(|error| error.into_error())?;
                if !remove_on_drop {
                    file.sync_all()?;
                }
                std::fs::rename(&temporary, &path)?;
                if !remove_on_drop && let Some(directory) = path.parent() {
                    File::open(directory)?.sync_all()?;
                }
                debug_assert_eq!(file.metadata()?.len(), self.len);
                Ok(SnapshotBody::File(Arc::new(BodyFile {
                    file,
                    len: self.len,
                    crc32,
                    path,
                    remove_on_drop,
                })))
            }
            None => Err(io::Error::other("snapshot writer already finished")),
        }
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.len + bytes.len() as u64 > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("snapshot larger than the {}-byte limit", self.limit),
            ));
        }
        let written = match self.target.as_mut() {
            Some(Target::Memory(buffer)) => {
                buffer.extend_from_slice(bytes);
                bytes.len()
            }
            Some(Target::File { writer, .. }) => writer.write(bytes)?,
            None => return Err(io::Error::other("snapshot writer already finished")),
        };
        self.hasher.update(&bytes[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.target.as_mut() {
            Some(Target::File { writer, .. }) => writer.flush(),
            _ => Ok(()),
        }
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if let Some(Target::File { temporary, .. }) = &self.target {
            // Unfinished: the partial file is garbage.
            let _ = std::fs::remove_file(temporary);
        }
    }
}

/// Copy a body into `writer` with one buffer of memory; returns the bytes copied.
pub fn copy_body(body: &SnapshotBody, writer: &mut SnapshotWriter) -> io::Result<u64> {
    io::copy(&mut body.reader(), writer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_file_body_reads_back_what_was_written_and_survives_its_unlink() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("snapshot.bin");
        let bytes = pattern(700_000);
        let mut writer = SnapshotWriter::file(&path).unwrap();
        writer.write_all(&bytes).unwrap();
        let body = writer.finish().unwrap();
        assert_eq!(body.len(), bytes.len() as u64);
        assert_eq!(body.crc32(), crc32fast::hash(&bytes));
        assert!(!directory.path().join("snapshot.bin.partial").exists());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(body.to_vec().unwrap(), bytes);
        assert_eq!(&body.read_at(699_990, 100).unwrap()[..], &bytes[699_990..]);
        assert!(body.read_at(700_001, 1).is_err());
    }

    #[test]
    fn a_changed_file_fails_its_crc_check_and_an_unfinished_one_is_removed() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("snapshot.bin");
        let mut writer = SnapshotWriter::file(&path).unwrap();
        writer.write_all(&pattern(10_000)).unwrap();
        let body = writer.finish().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(b"x", 5_000)
            .unwrap();
        let error = body.to_vec().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let unfinished = directory.path().join("unfinished.bin");
        let mut writer = SnapshotWriter::file(&unfinished).unwrap();
        writer.write_all(b"half").unwrap();
        drop(writer);
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_spool_file_goes_with_its_last_handle_and_the_limit_holds() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("spool.bin");
        let mut writer = SnapshotWriter::spool(&path).unwrap().with_limit(8);
        writer.write_all(b"12345678").unwrap();
        let error = writer.write_all(b"9").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::FileTooLarge);
        let body = writer.finish().unwrap();
        let copy = body.clone();
        drop(body);
        assert!(path.exists());
        drop(copy);
        assert!(!path.exists());
    }

    #[test]
    fn memory_and_file_bodies_with_the_same_bytes_are_equal() {
        let directory = tempfile::tempdir().unwrap();
        let bytes = pattern(3_000);
        let mut writer = SnapshotWriter::file(&directory.path().join("a")).unwrap();
        writer.write_all(&bytes).unwrap();
        let file = writer.finish().unwrap();
        let memory = SnapshotBody::from_bytes(bytes.clone());
        assert_eq!(file, memory);
        assert_ne!(memory, SnapshotBody::from_bytes(pattern(2_999)));
        let mut copied = SnapshotWriter::memory();
        assert_eq!(copy_body(&file, &mut copied).unwrap(), 3_000);
        assert_eq!(copied.finish().unwrap().to_vec().unwrap(), bytes);
    }
}
