//! A connection's clock: how long its client may take. A request's headers must arrive within
//! the header timeout (from the connection's opening, or from the first byte of a later request),
//! a request in progress within the body timeout, and a kept-alive connection may sit idle for
//! the idle timeout. The connection's task sleeps until the current deadline and closes the
//! connection once it has passed. (hyper's own header timer also runs while a connection is idle
//! between requests, which would cut keep-alive to the header timeout; hence this.)

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::config::NetArgs;

const HEAD: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

pub(crate) struct Clock {
    opened: Instant,
    phase: AtomicU8,
    /// Milliseconds from `opened` to when the current phase began.
    since: AtomicU64,
}

impl Clock {
    pub fn new() -> Arc<Clock> {
        Arc::new(Clock {
            opened: Instant::now(),
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(0),
        })
    }

    fn enter(&self, phase: u8) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.since.store(ms, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// The request's headers are in: its handler runs.
    pub fn busy(&self) {
        self.enter(BUSY);
    }

    /// The answer is handed to hyper: the connection waits for its next request.
    pub fn idle(&self) {
        self.enter(IDLE);
    }

    /// Bytes arrived; while idle, they begin the next request's headers. While a request is
    /// busy, any progress (bytes in or out) moves the backstop: an upload or a download may
    /// take longer than the body timeout as long as it keeps moving (the handlers bound the
    /// whole: a JSON body within the body timeout, an upload within ten minutes).
    fn heard(&self) {
        match self.phase.load(Ordering::Relaxed) {
            IDLE => self.enter(HEAD),
            BUSY => self.enter(BUSY),
            _ => {}
        }
    }

    /// Bytes went out: a request still busy, or an answer's body still streaming after its
    /// headers (a download), is not idle.
    fn sent(&self) {
        match self.phase.load(Ordering::Relaxed) {
            BUSY => self.enter(BUSY),
            IDLE => self.enter(IDLE),
            _ => {}
        }
    }

    /// When the connection's current phase runs out.
    pub fn deadline(&self, limits: &NetArgs) -> Instant {
        let since = self.opened + Duration::from_millis(self.since.load(Ordering::Relaxed));
        let allowed = match self.phase.load(Ordering::Relaxed) {
            HEAD => limits.header_timeout,
            // The handler itself answers a body that does not arrive in time (408); this is
            // the backstop, with room for that answer.
            BUSY => limits.body_timeout * 2,
            _ => limits.idle_timeout,
        };
        since + allowed
    }
}

/// The connection's stream, telling its clock when bytes arrive.
pub(crate) struct Watched<S> {
    inner: S,
    clock: Arc<Clock>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, clock: Arc<Clock>) -> Watched<S> {
        Watched { inner, clock }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.heard();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.sent();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.sent();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
