//! The access log writer thread: it takes chunks of whole lines from the workers over a bounded
//! channel and writes each with one `write` to a file (append mode, created if missing) or
//! stdout, so slow disks or a stuck stdout cost workers dropped lines, never time.
//!
//! The control thread drives it through [`LogWriter`]: reopen the file after rotation
//! (SIGUSR1), point it at another target after a reload, stop. Control messages go over their
//! own unbounded channel so they are never lost to a full data queue. Before applying one the
//! thread writes the chunks already queued, so lines logged before a rotation land in the
//! rotated file; [`LogWriter::reopen`] and [`LogWriter::retarget`] wait (briefly) until it has
//! been applied, so lines logged after they return land in the new file.
//!
//! Write errors are reported on stderr once per reopen (not once per chunk: a full disk would
//! otherwise flood stderr) and the lost lines are counted. Written chunks' buffers go back to
//! the workers through a bounded recycling channel, so steady logging allocates nothing.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, never, select, unbounded, Receiver, Sender, TrySendError};
use tollgate_config::access_log::LogTarget;

/// Chunks the data queue holds; with a full queue workers drop lines rather than wait.
pub const QUEUE_CHUNKS: usize = 64;

/// How long [`LogWriter::reopen`] and [`LogWriter::retarget`] wait for the writer to apply
/// them. Bounded so a writer stuck on a blocked stdout cannot hang the control thread; the
/// request is still applied when the writer gets to it.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Whole lines from one worker, handed off together.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The formatted lines, each ending in `\n`.
    pub(crate) data: Vec<u8>,
    /// How many lines `data` holds (counted as lost if the write fails).
    pub(crate) lines: u64,
}

#[derive(Debug)]
enum Control {
    /// Reopen the file; acknowledge when done.
    Reopen(Sender<()>),
    /// Switch to another target; acknowledge when done.
    Retarget(LogTarget, Sender<()>),
    /// Write what is queued and exit.
    Stop,
}

/// Handle on the writer thread, held by the control thread.
#[derive(Debug)]
pub struct LogWriter {
    control: Sender<Control>,
    thread: Option<JoinHandle<()>>,
    lost: Arc<AtomicU64>,
}

/// The workers' end of the data queue; cloned into each worker.
#[derive(Debug, Clone)]
pub struct LogSender {
    data: Sender<Chunk>,
    recycled: Receiver<Vec<u8>>,
}

impl LogSender {
    /// Queues a chunk without blocking; gives it back if the queue is full or the writer gone.
    pub(crate) fn try_send(&self, chunk: Chunk) -> Result<(), Chunk> {
        self.data.try_send(chunk).map_err(|e| match e {
            TrySendError::Full(chunk) | TrySendError::Disconnected(chunk) => chunk,
        })
    }

    /// Whether the queue is full (checked first so a dropped chunk costs no new buffer).
    pub(crate) fn is_full(&self) -> bool {
        self.data.is_full()
    }

    /// An empty buffer of at least `capacity` bytes: a recycled one if the writer returned any.
    pub(crate) fn buffer(&self, capacity: usize) -> Vec<u8> {
        match self.recycled.try_recv() {
            Ok(mut buffer) => {
                buffer.reserve(capacity);
                buffer
            }
            Err(_) => Vec::with_capacity(capacity),
        }
    }

    /// A sender over a queue of `capacity` chunks whose receiving end the test holds, with
    /// nothing ever recycled.
    #[cfg(test)]
    pub(crate) fn for_test(capacity: usize) -> (LogSender, Receiver<Chunk>) {
        let (data, rx) = bounded(capacity);
        let (_, recycled) = bounded(0);
        (LogSender { data, recycled }, rx)
    }
}

impl LogWriter {
    /// Opens the target (an error if it cannot be opened) and starts the writer thread,
    /// named `tollgate-log`.
    pub fn start(target: LogTarget) -> io::Result<(LogWriter, LogSender)> {
        let sink = Sink::open(&target)?;
        let (data_tx, data_rx) = bounded(QUEUE_CHUNKS);
        let (control_tx, control_rx) = unbounded();
        let (recycle_tx, recycle_rx) = bounded(QUEUE_CHUNKS);
        let lost = Arc::new(AtomicU64::new(0));
        let state = State {
            sink,
            target,
            lost: Arc::clone(&lost),
            reported: false,
            recycle: recycle_tx,
        };
        let thread = std::thread::Builder::new()
            .name("tollgate-log".to_string())
            .spawn(move || run(data_rx, control_rx, state))?;
        let writer = LogWriter {
            control: control_tx,
            thread: Some(thread),
            lost,
        };
        let sender = LogSender {
            data: data_tx,
            recycled: recycle_rx,
        };
        Ok((writer, sender))
    }

    /// Closes and reopens the file (after rotation), once the lines already queued are
    /// written to the old one; on stdout nothing is reopened. Waits until applied (up to 2 s).
    pub fn reopen(&self) {
        self.request(Control::Reopen);
    }

    /// Writes to `target` from now on (a reload changed it), once the lines already queued
    /// are written to the old one. If `target` cannot be opened the error is reported and the
    /// old target kept. Waits until applied (up to 2 s).
    pub fn retarget(&self, target: LogTarget) {
        self.request(|ack| Control::Retarget(target, ack));
    }

    /// Writes everything already queued and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Lines lost to write errors so far.
    pub fn write_failures(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    fn request(&self, make: impl FnOnce(Sender<()>) -> Control) {
        let (ack_tx, ack_rx) = bounded(1);
        if self.control.send(make(ack_tx)).is_ok() {
            // A timeout or a dead writer leaves nothing to do here: the request stays queued.
            let _ = ack_rx.recv_timeout(ACK_TIMEOUT);
        }
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.control.send(Control::Stop);
            if thread.join().is_err() {
                eprintln!("tollgate: access log: the writer thread panicked; lines were lost");
            }
        }
    }
}

impl Drop for LogWriter {
    /// Dropping without [`LogWriter::stop`] still writes what is queued, so no lines are lost
    /// on an early return.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Where the thread writes now.
enum Sink {
    Stdout,
    File(File),
}

impl Sink {
    fn open(target: &LogTarget) -> io::Result<Sink> {
        match target {
            LogTarget::Stdout => Ok(Sink::Stdout),
            LogTarget::File(path) => OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map(Sink::File),
        }
    }
}

/// The writer thread's state.
struct State {
    sink: Sink,
    target: LogTarget,
    lost: Arc<AtomicU64>,
    /// A failure was reported since the last reopen; later ones are only counted.
    reported: bool,
    recycle: Sender<Vec<u8>>,
}

/// The writer thread's loop. The receivers are kept apart from `state` so `select!` can
/// borrow them while the arms mutate the state.
fn run(data: Receiver<Chunk>, control: Receiver<Control>, mut state: State) {
    let mut data = data;
    loop {
        select! {
            recv(data) -> chunk => match chunk {
                Ok(chunk) => state.write(chunk),
                // Every worker's sender is gone: only control messages can arrive now.
                Err(_) => data = never(),
            },
            recv(control) -> message => match message {
                Ok(Control::Reopen(ack)) => {
                    state.drain(&data);
                    state.reopen();
                    let _ = ack.send(());
                }
                Ok(Control::Retarget(target, ack)) => {
                    state.drain(&data);
                    state.retarget(target);
                    let _ = ack.send(());
                }
                // A dropped handle stops the thread too, rather than leaving it waiting.
                Ok(Control::Stop) | Err(_) => {
                    state.drain(&data);
                    return;
                }
            },
        }
    }
}

impl State {
    /// Writes the chunks queued now (not ones arriving meanwhile, so a busy queue cannot
    /// delay a control message forever).
    fn drain(&mut self, data: &Receiver<Chunk>) {
        for _ in 0..data.len() {
            match data.try_recv() {
                Ok(chunk) => self.write(chunk),
                Err(_) => break,
            }
        }
    }

    fn write(&mut self, chunk: Chunk) {
        let Chunk { mut data, lines } = chunk;
        let result = match &mut self.sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&data).and_then(|()| out.flush())
            }
            Sink::File(file) => file.write_all(&data),
        };
        if result.is_ok() {
            // Tests wait for this event rather than poll the file.
            tracing::debug!(lines, path = %self.target, "access log lines written");
        } else if let Err(e) = result {
            // The whole chunk counts as lost, even if part of it reached the target.
            self.lost.fetch_add(lines, Ordering::Relaxed);
            let target = self.target.clone();
            self.report(format_args!("writing to {target} failed: {e}"));
        }
        data.clear();
        // A full recycling queue means workers have spares; this one is freed here instead.
        let _ = self.recycle.try_send(data);
    }

    fn reopen(&mut self) {
        self.reported = false;
        if matches!(self.target, LogTarget::Stdout) {
            return;
        }
        match Sink::open(&self.target) {
            // Replacing the sink closes the old file.
            Ok(sink) => self.sink = sink,
            Err(e) => {
                let target = self.target.clone();
                self.report(format_args!(
                    "reopening {target} failed: {e}; still writing to the file opened before"
                ));
            }
        }
    }

    fn retarget(&mut self, target: LogTarget) {
        self.reported = false;
        match Sink::open(&target) {
            Ok(sink) => {
                self.sink = sink;
                self.target = target;
            }
            Err(e) => {
                let old = self.target.clone();
                self.report(format_args!(
                    "opening {target} failed: {e}; still writing to {old}"
                ));
            }
        }
    }

    /// Reports the first failure since the last reopen on stderr.
    fn report(&mut self, message: fmt::Arguments<'_>) {
        if !self.reported {
            self.reported = true;
            eprintln!(
                "tollgate: access log: {message} (further failures are counted in the \
                 lost-lines metric, not reported, until the log is reopened)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::test_path;

    fn chunk(text: &str) -> Chunk {
        Chunk {
            data: text.as_bytes().to_vec(),
            lines: text.matches('\n').count() as u64,
        }
    }

    #[test]
    fn start_fails_when_the_file_cannot_be_opened() {
        let dir = test_path("no-such-dir");
        let err = LogWriter::start(LogTarget::File(dir.join("access.log"))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn appends_to_an_existing_file() {
        let path = test_path("append");
        std::fs::write(&path, "before\n").unwrap();
        let (writer, sender) = LogWriter::start(LogTarget::File(path.clone())).unwrap();
        sender.try_send(chunk("a\nb\n")).unwrap();
        writer.stop();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\na\nb\n");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn write_errors_count_lost_lines_and_keep_running() {
        // Every write to /dev/full fails with ENOSPC.
        let (writer, sender) = LogWriter::start(LogTarget::File("/dev/full".into())).unwrap();
        sender.try_send(chunk("1\n2\n3\n")).unwrap();
        sender.try_send(chunk("4\n")).unwrap();
        // reopen() returns once the queued chunks were written (and failed).
        writer.reopen();
        assert_eq!(writer.write_failures(), 4);
        sender.try_send(chunk("5\n6\n")).unwrap();
        writer.reopen();
        assert_eq!(writer.write_failures(), 6);
        writer.stop();
    }

    #[test]
    fn retarget_moves_later_lines_and_keeps_the_old_target_on_error() {
        let first = test_path("retarget-1");
        let second = test_path("retarget-2");
        let (writer, sender) = LogWriter::start(LogTarget::File(first.clone())).unwrap();
        sender.try_send(chunk("one\n")).unwrap();
        writer.retarget(LogTarget::File(second.clone()));
        sender.try_send(chunk("two\n")).unwrap();
        writer.retarget(LogTarget::File(test_path("missing-dir").join("x.log")));
        sender.try_send(chunk("three\n")).unwrap();
        writer.stop();
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "one\n");
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "two\nthree\n");
        std::fs::remove_file(&first).unwrap();
        std::fs::remove_file(&second).unwrap();
    }

    #[test]
    fn written_buffers_are_recycled_empty() {
        let path = test_path("recycle");
        let (writer, sender) = LogWriter::start(LogTarget::File(path.clone())).unwrap();
        let mut data = Vec::with_capacity(1000);
        data.extend_from_slice(b"x\n");
        sender.try_send(Chunk { data, lines: 1 }).unwrap();
        writer.reopen();
        let buffer = sender.buffer(10);
        assert!(buffer.is_empty());
        assert!(buffer.capacity() >= 1000, "{}", buffer.capacity());
        writer.stop();
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn dropping_the_handle_writes_what_is_queued() {
        let path = test_path("drop");
        let (writer, sender) = LogWriter::start(LogTarget::File(path.clone())).unwrap();
        sender.try_send(chunk("kept\n")).unwrap();
        drop(writer);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\n");
        // The writer is gone: the chunk comes back to the caller.
        assert!(sender.try_send(chunk("late\n")).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
