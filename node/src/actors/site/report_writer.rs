//! The interval reports' writer thread: the Site actor hands over a day file's bytes and goes
//! on; this thread writes them atomically (temp file, fsync, rename), so a slow disk never
//! stalls routing. Writes of the same file coalesce (only the newest bytes are written), a
//! read sees bytes still waiting to be written, and dropping the writer finishes what is
//! queued before it returns.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct Queue {
    /// The newest bytes of each file not yet written.
    pending: BTreeMap<PathBuf, Arc<Vec<u8>>>,
    /// A file being written now (readers see its bytes until it is on disk).
    writing: Option<(PathBuf, Arc<Vec<u8>>)>,
    /// Work to do once the files queued before it are written (removing old days).
    jobs: VecDeque<Job>,
    /// A job is running.
    busy: bool,
    stopping: bool,
}

/// Work for the writer thread besides writing a file.
pub type Job = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for Queue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Queue")
            .field("pending", &self.pending.len())
            .field("jobs", &self.jobs.len())
            .field("stopping", &self.stopping)
            .finish()
    }
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// Writes day files on a thread of its own.
#[derive(Debug)]
pub struct DayWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl DayWriter {
    /// Starts the writer thread (if the thread cannot start, files are written in the
    /// caller's thread and the failure is logged).
    pub fn start() -> DayWriter {
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("callgrid-reports".to_string())
            .spawn(move || run(&worker));
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(error) => {
                tracing::error!(%error, "cannot start the report writer thread; writing inline");
                None
            }
        };
        DayWriter { shared, thread }
    }

    /// Queues `bytes` to be written to `path` (replacing bytes queued for it before).
    pub fn submit(&self, path: PathBuf, bytes: Vec<u8>) {
        if self.thread.is_none() {
            write_atomically(&path, &bytes);
            return;
        }
        let mut queue = self.shared.queue.lock();
        queue.pending.insert(path, Arc::new(bytes));
        self.shared.changed.notify_all();
    }

    /// Runs `job` on the writer thread once the files queued before it are written.
    pub fn after_writes(&self, job: Job) {
        if self.thread.is_none() {
            job();
            return;
        }
        let mut queue = self.shared.queue.lock();
        queue.jobs.push_back(job);
        self.shared.changed.notify_all();
    }

    /// The file's bytes: still queued or being written, or else read from disk.
    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        {
            let queue = self.shared.queue.lock();
            if let Some(bytes) = queue.pending.get(path) {
                return Ok(bytes.as_ref().clone());
            }
            if let Some((writing, bytes)) = &queue.writing
                && writing == path
            {
                return Ok(bytes.as_ref().clone());
            }
        }
        std::fs::read(path)
    }

    /// Waits until everything queued is on disk.
    pub fn wait_idle(&self) {
        let mut queue = self.shared.queue.lock();
        while self.thread.is_some()
            && (!queue.pending.is_empty()
                || queue.writing.is_some()
                || !queue.jobs.is_empty()
                || queue.busy)
        {
            self.shared.changed.wait(&mut queue);
        }
    }
}

impl Drop for DayWriter {
    fn drop(&mut self) {
        self.shared.queue.lock().stopping = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the report writer thread panicked");
        }
    }
}

/// What the thread does next.
enum Work {
    Write(PathBuf, Arc<Vec<u8>>),
    Job(Job),
}

/// The thread: writes what is queued, one file at a time, then runs the jobs queued behind
/// the writes, until stopped and drained.
fn run(shared: &Shared) {
    loop {
        let work = {
            let mut queue = shared.queue.lock();
            queue.writing = None;
            queue.busy = false;
            shared.changed.notify_all();
            loop {
                if let Some((path, bytes)) = queue.pending.pop_first() {
                    queue.writing = Some((path.clone(), Arc::clone(&bytes)));
                    break Work::Write(path, bytes);
                }
                if let Some(job) = queue.jobs.pop_front() {
                    queue.busy = true;
                    break Work::Job(job);
                }
                if queue.stopping {
                    return;
                }
                shared.changed.wait(&mut queue);
            }
        };
        match work {
            Work::Write(path, bytes) => write_atomically(&path, &bytes),
            Work::Job(job) => job(),
        }
    }
}

/// Tests: which thread wrote each file (the Site actor's thread must not).
#[cfg(test)]
pub(super) static WRITTEN_BY: std::sync::Mutex<Vec<(PathBuf, Option<String>)>> =
    std::sync::Mutex::new(Vec::new());

/// Writes a file atomically (temp file, fsync, rename); failures are logged.
fn write_atomically(path: &Path, bytes: &[u8]) {
    #[cfg(test)]
    if let Ok(mut written) = WRITTEN_BY.lock() {
        let thread = std::thread::current().name().map(str::to_string);
        written.push((path.to_path_buf(), thread));
    }
    let temp = path.with_extension("json.tmp");
    let result = std::fs::File::create(&temp)
        .and_then(|mut handle| {
            handle.write_all(bytes)?;
            handle.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(error) = result {
        tracing::error!(path = %path.display(), %error, "cannot write the interval report day");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Writes land on disk (the newest bytes of a file), reads see queued bytes, and a
    /// dropped writer has finished everything.
    #[test]
    fn writes_coalesce_reads_see_the_queue_and_drop_finishes() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("2026-12-04.json");
        let writer = DayWriter::start();
        for round in 0..50_u32 {
            writer.submit(path.clone(), round.to_string().into_bytes());
            assert_eq!(writer.read(&path).unwrap(), round.to_string().into_bytes());
        }
        writer.wait_idle();
        assert_eq!(std::fs::read(&path).unwrap(), b"49");
        let other = directory.path().join("2026-12-05.json");
        writer.submit(other.clone(), b"last".to_vec());
        drop(writer);
        assert_eq!(std::fs::read(&other).unwrap(), b"last");
        let leftovers = std::fs::read_dir(directory.path())
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0, "no temp files left");
    }
}
