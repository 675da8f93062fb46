//! Attachments: an upload streams into the database a chunk at a time (hashed and sniffed on
//! the way, never whole in memory), and a download streams out the same way. Thumbnails are
//! in `thumbnails`.

use std::io::BufReader;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use hyper::body::Bytes;
use image::{ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::Service;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::limits::Slot;
use crate::model::{Attachment, AttachmentId, FileName, UserId, INLINE_IMAGES};
use crate::store::{ChunkReader, Finished, Store, CHUNK};

/// The whole of one upload must arrive within this (and each piece of it within the body
/// timeout): at 10 MiB that is about 18 KB/s, slower than any classroom network.
const UPLOAD_TIME: Duration = Duration::from_secs(600);
/// What decoding one image (its size, or its thumbnail) may allocate.
const DECODE_MEMORY: u64 = 256 * 1024 * 1024;
/// Uploads one user may have in progress at once: each holds up to a chunk in memory.
pub(super) const UPLOADS_PER_USER: usize = 4;
/// Bytes kept from the start of an upload to tell its type.
const SNIFF_BYTES: usize = 8192;

/// An upload's bytes as they arrive.
pub(crate) type UploadBody<'a> = &'a mut (dyn Stream<Item = Result<Bytes>> + Send + Unpin);

/// The clock of one transfer (an upload arriving, a download being taken): each piece within
/// the body timeout, the whole within `UPLOAD_TIME`.
#[derive(Clone, Copy)]
struct TransferClock {
    deadline: Instant,
    piece: Duration,
}

impl TransferClock {
    fn start(piece: Duration) -> TransferClock {
        TransferClock {
            deadline: Instant::now() + UPLOAD_TIME,
            piece,
        }
    }

    /// When the next piece must have moved.
    fn next(&self) -> Instant {
        self.deadline.min(Instant::now() + self.piece)
    }
}

/// A byte range of an attachment: from `start` up to, not including, `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u64,
    pub end: u64,
}

/// Takes back an upload that did not finish (an error, or the client went away).
struct Unfinished {
    store: Store,
    id: Option<AttachmentId>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            // The write is queued at once; nobody waits for its answer.
            drop(self.store.abort_upload(id));
        }
    }
}

fn too_large(max: u64) -> Error {
    Error::TooLarge(format!("an attachment is at most {max} bytes"))
}

impl Service {
    /// One of `user`'s places for an upload in progress, taken before anything of the body
    /// is read (a multipart body's parts before its file too).
    pub fn upload_place(&self, user: AuthUser) -> Result<Slot<'_>> {
        self.uploads.take_or_refuse(user.id, "uploads")
    }

    /// The upload's body with its clock: each piece must arrive within the body timeout, and
    /// the whole within ten minutes; past either, a `TimedOut` error ends it.
    pub fn timed<S>(&self, body: S) -> impl Stream<Item = Result<Bytes>> + Send + Unpin + 'static
    where
        S: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    {
        let clock = TransferClock::start(self.config.net.body_timeout);
        Box::pin(futures_util::stream::unfold(
            Some(body),
            move |state| async move {
                let mut body = state?;
                match tokio::time::timeout_at(clock.next(), body.next()).await {
                    Ok(Some(piece)) => Some((piece, Some(body))),
                    Ok(None) => None,
                    Err(_) => Some((
                        Err(Error::TimedOut("the upload stopped arriving".into())),
                        None,
                    )),
                }
            },
        ))
    }

    /// Stores an upload of `user`'s. `declared` is its length when the client said it, so a
    /// file that is too large is refused before any of it is read.
    pub async fn upload(
        &self,
        user: AuthUser,
        _place: &Slot<'_>,
        name: Option<&str>,
        declared: Option<u64>,
        body: UploadBody<'_>,
    ) -> Result<Attachment> {
        let (max, quota) = (self.config.max_attachment, self.config.attachment_quota);
        if declared.is_some_and(|n| n > max) {
            return Err(too_large(max));
        }
        let name = FileName::clean(name);
        let id = self
            .store
            .begin_upload(user.id, name, declared.unwrap_or(0), quota)
            .await?;
        let mut unfinished = Unfinished {
            store: self.store.clone(),
            id: Some(id),
        };
        let received = self.receive(user.id, id, body).await;
        // From here the upload is finished or taken back in order: the guard is only for a
        // client that goes away mid-upload (this future dropped).
        unfinished.id = None;
        match received {
            Ok(finished) => self.store.finish_upload(id, finished).await,
            Err(e) => {
                let _ = self.store.abort_upload(id).await;
                Err(e)
            }
        }
    }

    /// Reads the body into chunk rows; its hash, type and (for an image) size.
    async fn receive(
        &self,
        user: UserId,
        id: AttachmentId,
        body: UploadBody<'_>,
    ) -> Result<Finished> {
        let (max, quota) = (self.config.max_attachment, self.config.attachment_quota);
        let mut hasher = Sha256::new();
        let mut head = Vec::new();
        let mut buf = Vec::with_capacity(CHUNK);
        let (mut seq, mut total) = (0i64, 0u64);
        while let Some(piece) = body.next().await {
            let mut piece = piece?;
            total += piece.len() as u64;
            if total > max {
                return Err(too_large(max));
            }
            hasher.update(&piece);
            let keep = SNIFF_BYTES.saturating_sub(head.len()).min(piece.len());
            head.extend_from_slice(&piece[..keep]);
            while !piece.is_empty() {
                let take = (CHUNK - buf.len()).min(piece.len());
                buf.extend_from_slice(&piece.split_to(take));
                if buf.len() == CHUNK {
                    let full = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK));
                    self.store.upload_chunk(id, user, seq, full, quota).await?;
                    seq += 1;
                }
            }
        }
        if total == 0 {
            return Err(Error::invalid("invalid_attachment", "the file is empty"));
        }
        if !buf.is_empty() {
            self.store.upload_chunk(id, user, seq, buf, quota).await?;
        }
        let content_type = match infer::get(&head) {
            Some(kind) => kind.mime_type(),
            None if looks_like_text(&head) => "text/plain",
            None => "application/octet-stream",
        };
        let (width, height) = match ImageFormat::from_mime_type(content_type) {
            Some(format) if INLINE_IMAGES.contains(&content_type) => {
                self.store
                    .with_attachment_reader(id, total, move |r| dimensions(r, format))
                    .await?
            }
            _ => (None, None),
        };
        Ok(Finished {
            sha256: hex(&hasher.finalize()),
            content_type: content_type.to_string(),
            width,
            height,
        })
    }

    /// An attachment the caller may fetch.
    pub async fn attachment(&self, user: AuthUser, id: AttachmentId) -> Result<Attachment> {
        self.store.attachment_for(id, user.id).await
    }

    /// The bytes of `span` of an attachment, a chunk at a time: a task reads each chunk as
    /// the client takes the one before (at most two wait).
    pub fn attachment_bytes(
        &self,
        id: AttachmentId,
        span: Span,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let store = self.store.clone();
        // A client that reads too slowly is cut off, as an upload that arrives too slowly is.
        let clock = TransferClock::start(self.config.net.body_timeout);
        tokio::spawn(async move {
            let mut pos = span.start;
            while pos < span.end {
                let seq = pos / CHUNK as u64;
                let piece = match store.attachment_chunk(id, seq as i64).await {
                    Ok(Some(data)) => {
                        let from = (pos % CHUNK as u64) as usize;
                        let to = data.len().min(from + (span.end - pos) as usize);
                        Bytes::from(data).slice(from.min(to)..to)
                    }
                    _ => Bytes::new(),
                };
                if piece.is_empty() {
                    let _ = tx
                        .send(Err(std::io::Error::other("an attachment chunk is missing")))
                        .await;
                    return;
                }
                pos += piece.len() as u64;
                match tokio::time::timeout_at(clock.next(), tx.send(Ok(piece))).await {
                    Ok(Ok(())) => {}
                    // The client went away, or reads too slowly: the answer ends unfinished.
                    Ok(Err(_)) => return,
                    Err(_) => {
                        let _ =
                            tx.try_send(Err(std::io::Error::other("the client reads too slowly")));
                        return;
                    }
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    /// Removes attachments nothing refers to after a day, and abandoned uploads. Called at
    /// start-up (`starting`: every unfinished upload is abandoned) and about once an hour.
    pub async fn purge_attachments(&self, starting: bool) {
        match self.store.purge_attachments(starting).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "unused attachments removed"),
            Err(e) => tracing::warn!(error = %e, "removing unused attachments"),
        }
    }
}

/// UTF-8 without control characters (but tab, newline, carriage return and form feed), as
/// far as the start of the file shows (its last character may be cut).
fn looks_like_text(head: &[u8]) -> bool {
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    !text.is_empty()
        && !text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(100_000);
    limits.max_image_height = Some(100_000);
    limits.max_alloc = Some(DECODE_MEMORY);
    limits
}

/// An image's width and height from its header (none when it does not parse).
fn dimensions(r: &mut ChunkReader<'_>, format: ImageFormat) -> (Option<u32>, Option<u32>) {
    let mut reader = ImageReader::with_format(BufReader::new(r), format);
    reader.limits(limits());
    match reader.into_dimensions() {
        Ok((w, h)) if w > 0 && h > 0 => (Some(w), Some(h)),
        _ => (None, None),
    }
}
