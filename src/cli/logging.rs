//! The server's log, on stderr, written in bursts. A line (one per request at info) is only
//! appended to a buffer by the thread that logs it; a thread of its own writes the buffer out
//! a moment after its first line, so a busy server makes one write, and one wake-up, for many
//! lines. Writing each line at once cost a tenth of the persisted sends a second (a write,
//! or handing each line to a writer thread, is a system call and a wake-up per request).
//!
//! Nothing is dropped: past `MOST` buffered bytes (a terminal that does not keep up) the thread
//! logging writes the buffer out itself and waits for stderr, as every line once did. Lines
//! come out in the order they were logged. A line reaches the terminal at most `LINGER` late;
//! a process killed with SIGKILL loses at most that much of its log. Dropping the guard
//! `init` returns writes out the rest and writes later lines directly.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line waits for the lines after it before the buffer is written.
const LINGER: Duration = Duration::from_millis(20);

/// Buffered bytes past which the thread logging writes them out itself.
const MOST: usize = 256 << 10;

/// Starts logging at `default` (unless `RUST_LOG` says otherwise); keep the guard until the end.
pub fn init(default: &str) -> Guard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let log = Arc::new(Log {
        buffer: Mutex::new(Vec::new()),
        out: Mutex::new(()),
        direct: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    let writing = Arc::clone(&log);
    let thread = thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || writing.run());
    let thread = match thread {
        Ok(thread) => Some(thread),
        Err(_) => {
            log.direct.store(true, Ordering::Relaxed);
            None
        }
    };
    tracing_subscriber::fmt()
        .with_ansi(io::stderr().is_terminal())
        .event_format(super::line::Format)
        .with_env_filter(filter)
        .with_writer(Writer(
            Arc::clone(&log),
            thread.as_ref().map(|t| t.thread().clone()),
        ))
        .init();
    Guard { log, thread }
}

struct Log {
    buffer: Mutex<Vec<u8>>,
    /// Held while bytes go to stderr, taken before the buffer is let go: keeps the order.
    out: Mutex<()>,
    /// No buffering (the guard is gone, or there is no thread to write).
    direct: AtomicBool,
    /// The guard is gone: the thread writes what is left and ends.
    done: AtomicBool,
}

impl Log {
    fn run(&self) {
        loop {
            thread::park();
            if self.done.load(Ordering::Acquire) {
                return self.write_out(self.buffer());
            }
            thread::sleep(LINGER);
            self.write_out(self.buffer());
        }
    }

    fn buffer(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes the buffer out and empties it; its lock is let go once stderr's is held.
    fn write_out(&self, mut buffer: MutexGuard<'_, Vec<u8>>) {
        if buffer.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut *buffer);
        let out = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(buffer);
        // A log that cannot be written (stderr closed) is not a reason to stop serving.
        let _ = io::stderr().lock().write_all(&bytes);
        drop(out);
    }
}

/// What `tracing` writes a line through.
struct Writer(Arc<Log>, Option<thread::Thread>);

impl<'a> MakeWriter<'a> for Writer {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self)
    }
}

/// One event's line (tracing's formatter writes each line whole, in one call).
struct Line<'a>(&'a Writer);

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let Writer(log, thread) = self.0;
        if log.direct.load(Ordering::Acquire) {
            let _out = log
                .out
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            return io::stderr().lock().write(bytes);
        }
        let mut buffer = log.buffer();
        let first = buffer.is_empty();
        buffer.extend_from_slice(bytes);
        if buffer.len() > MOST {
            log.write_out(buffer);
        } else if first {
            drop(buffer);
            if let Some(thread) = thread {
                thread.unpark();
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes out what is buffered when dropped; later lines go to stderr directly.
pub struct Guard {
    log: Arc<Log>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let buffer = self.log.buffer();
        self.log.direct.store(true, Ordering::Release);
        self.log.write_out(buffer);
        self.log.done.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
