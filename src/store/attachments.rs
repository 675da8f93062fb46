//! Attachments inside the database: an upload is a row in `attachments` and its bytes are
//! rows of at most `CHUNK` bytes in `attachment_chunks`, written one chunk per write (so a large
//! upload never holds the writer for long) and read one chunk at a time. `ChunkReader` reads
//! them as a file (for an image's size and its thumbnail).

use std::io::{self, Read, Seek, SeekFrom};

use super::db::{args, Db, Row};

use super::{written, Pending, Store};
use crate::error::{Error, Result};
use crate::model::{Attachment, AttachmentId, FileName, UserId};

/// The most bytes one chunk row holds (and one request keeps in memory while it streams).
pub(crate) const CHUNK: usize = 256 * 1024;

/// Unfinished uploads older than this are abandoned (an upload may take at most ten minutes).
const UNFINISHED_HOURS: u32 = 1;
/// An attachment no message refers to is removed once it is this old.
const UNREFERENCED_HOURS: u32 = 24;
/// Attachments removed per write, so a large purge never holds the writer for long.
const PURGE_BATCH: i64 = 50;

pub(super) const ATTACHMENT_COLUMNS: &str =
    "a.id, a.name, a.size, a.content_type, a.sha256, a.width, a.height, a.created_at";

pub(super) fn attachment_row(r: &Row, start: usize) -> Result<Attachment> {
    Ok(Attachment {
        id: r.get(start)?,
        name: r.get(start + 1)?,
        size: r.get(start + 2)?,
        content_type: r.get(start + 3)?,
        sha256: r.get::<Option<String>>(start + 4)?.unwrap_or_default(),
        width: r.get(start + 5)?,
        height: r.get(start + 6)?,
        created_at: r.get(start + 7)?,
    })
}

/// What is known of an upload once all its bytes are in.
#[derive(Debug)]
pub(crate) struct Finished {
    pub sha256: String,
    pub content_type: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// A stored thumbnail: its type and bytes.
pub(crate) type Thumbnail = (String, Vec<u8>);

/// What a file costs beyond its bytes, in the quota (as the usage triggers of V5 count it).
pub(crate) const FILE_OVERHEAD: u64 = 4096;

/// What `user`'s attachments take, kept up to date by triggers (one row, not a sum).
fn used(conn: &Db, user: UserId) -> Result<u64> {
    let n: Option<i64> = conn.query_opt(
        "SELECT bytes FROM attachment_usage WHERE user_id = ?1",
        args![user],
        |r| r.get(0),
    )?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

fn over_quota(quota: u64) -> Error {
    Error::Quota(format!(
        "your attachments would take more than your quota of {quota} bytes; \
         delete messages with attachments you no longer need"
    ))
}

impl Store {
    /// Starts an upload of `user`'s (refused when their quota is already full or `expected`
    /// bytes would pass it).
    pub fn begin_upload(
        &self,
        user: UserId,
        name: FileName,
        expected: u64,
        quota: u64,
    ) -> Pending<AttachmentId> {
        self.write(move |c| {
            let adds = expected.max(1).saturating_add(FILE_OVERHEAD);
            if used(c, user)?.saturating_add(adds) > quota {
                return Err(over_quota(quota));
            }
            let id = c.query_row(
                "INSERT INTO attachments (uploader_id, name) VALUES (?1, ?2) RETURNING id",
                args![user, name.as_str()],
                |r| r.get(0),
            )?;
            Ok(written(id, Vec::new()))
        })
    }

    /// Stores the upload's next chunk, refusing it when it would pass the quota.
    pub fn upload_chunk(
        &self,
        id: AttachmentId,
        user: UserId,
        seq: i64,
        data: Vec<u8>,
        quota: u64,
    ) -> Pending<()> {
        self.write(move |c| {
            if used(c, user)?.saturating_add(data.len() as u64) > quota {
                return Err(over_quota(quota));
            }
            c.execute(
                "INSERT INTO attachment_chunks (attachment_id, seq, data) VALUES (?1, ?2, ?3)",
                args![id, seq, data],
            )?;
            c.execute(
                "UPDATE attachments SET size = size + ?2 WHERE id = ?1",
                args![id, data.len() as i64],
            )?;
            Ok(written((), Vec::new()))
        })
    }

    /// Marks the upload complete: from now on it can be attached and downloaded.
    pub fn finish_upload(&self, id: AttachmentId, done: Finished) -> Pending<Attachment> {
        self.write(move |c| {
            c.execute(
                "UPDATE attachments SET complete = 1, sha256 = ?2, content_type = ?3,
                        width = ?4, height = ?5
                 WHERE id = ?1",
                args![id, done.sha256, done.content_type, done.width, done.height],
            )?;
            let sql = format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments a WHERE a.id = ?1");
            let attachment = c.query_row(&sql, args![id], |r| attachment_row(r, 0))?;
            Ok(written(attachment, Vec::new()))
        })
    }

    /// Forgets an upload that failed or was abandoned.
    pub fn abort_upload(&self, id: AttachmentId) -> Pending<()> {
        self.write(move |c| {
            c.execute(
                "DELETE FROM attachments WHERE id = ?1 AND complete = 0",
                args![id],
            )?;
            Ok(written((), Vec::new()))
        })
    }

    /// A finished attachment `user` may fetch: they uploaded it, or they are in a
    /// conversation where a message refers to it. Not found, or forbidden.
    pub async fn attachment_for(&self, id: AttachmentId, user: UserId) -> Result<Attachment> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {ATTACHMENT_COLUMNS},
                        a.uploader_id IS NOT DISTINCT FROM ?2 OR EXISTS (
                          SELECT 1 FROM message_attachments ma
                            JOIN messages m ON m.id = ma.message_id
                            JOIN members mb ON mb.conversation_id = m.conversation_id
                                           AND mb.user_id = ?2
                          WHERE ma.attachment_id = a.id)
                 FROM attachments a WHERE a.id = ?1 AND a.complete = 1"
            );
            let found: Option<(Attachment, bool)> = c
                .query_opt(&sql, args![id, user], |r| Ok((attachment_row(r, 0)?, r.get(8)?)))?;
            match found {
                None => Err(Error::not_found("no such attachment")),
                Some((_, false)) => Err(Error::forbidden(
                    "only its uploader and the members of a conversation it was sent to can fetch an attachment",
                )),
                Some((attachment, true)) => Ok(attachment),
            }
        })
        .await
    }

    /// One chunk of an attachment's bytes.
    pub async fn attachment_chunk(&self, id: AttachmentId, seq: i64) -> Result<Option<Vec<u8>>> {
        self.read(move |c| {
            c.query_opt(
                "SELECT data FROM attachment_chunks WHERE attachment_id = ?1 AND seq = ?2",
                args![id, seq],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Runs `f` on the attachment's bytes as a file, on the blocking pool.
    pub async fn with_attachment_reader<T, F>(&self, id: AttachmentId, size: u64, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut ChunkReader<'_>) -> T + Send + 'static,
    {
        self.read(move |c| Ok(f(&mut ChunkReader::new(c, id, size))))
            .await
    }

    /// The kept thumbnail: `None` when none was made yet, `Some(None)` when the image cannot
    /// have one.
    pub async fn thumbnail(&self, id: AttachmentId) -> Result<Option<Option<Thumbnail>>> {
        self.read(move |c| {
            let row: Option<(Option<String>, Option<Vec<u8>>)> = c.query_opt(
                "SELECT content_type, data FROM attachment_thumbnails WHERE attachment_id = ?1",
                args![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(row.map(|(t, d)| t.zip(d)))
        })
        .await
    }

    /// Keeps a thumbnail made (or the finding that there can be none).
    pub fn keep_thumbnail(&self, id: AttachmentId, thumb: Option<Thumbnail>) -> Pending<()> {
        self.write(move |c| {
            let (kind, data) = thumb.unzip();
            c.execute(
                "INSERT INTO attachment_thumbnails (attachment_id, content_type, data)
                 SELECT id, ?2, CAST(?3 AS BLOB) FROM attachments WHERE id = ?1
                 ON CONFLICT (attachment_id)
                 DO UPDATE SET content_type = excluded.content_type, data = excluded.data",
                args![id, kind, data],
            )?;
            Ok(written((), Vec::new()))
        })
    }

    /// Removes attachments no message refers to once they are a day old, and abandoned
    /// uploads (every unfinished one when `starting`: no upload survives a restart).
    pub async fn purge_attachments(&self, starting: bool) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self
                .write(move |c| {
                    let n = c.execute(
                        &format!(
                            "DELETE FROM attachments WHERE id IN (
                               SELECT id FROM attachments a
                               WHERE (a.complete = 0 AND (?1 OR a.created_at <
                                       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{UNFINISHED_HOURS} hours')))
                                  OR (a.created_at <
                                       strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{UNREFERENCED_HOURS} hours')
                                      AND NOT EXISTS (SELECT 1 FROM message_attachments ma
                                                      WHERE ma.attachment_id = a.id))
                               LIMIT ?2)"
                        ),
                        args![starting, PURGE_BATCH],
                    )?;
                    Ok(written(n, Vec::new()))
                })
                .await?;
            total += n;
            if (n as i64) < PURGE_BATCH {
                return Ok(total);
            }
        }
    }
}

/// An attachment's bytes as a file that reads its chunks as they are needed.
pub(crate) struct ChunkReader<'c> {
    conn: &'c Db<'c>,
    id: AttachmentId,
    size: u64,
    pos: u64,
    /// The chunk last read: its number and bytes.
    current: Option<(u64, Vec<u8>)>,
}

impl<'c> ChunkReader<'c> {
    fn new(conn: &'c Db<'c>, id: AttachmentId, size: u64) -> ChunkReader<'c> {
        ChunkReader {
            conn,
            id,
            size,
            pos: 0,
            current: None,
        }
    }

    fn chunk(&mut self, seq: u64) -> io::Result<&[u8]> {
        if self.current.as_ref().map(|(s, _)| *s) != Some(seq) {
            let data: Vec<u8> = self
                .conn
                .query_row(
                    "SELECT data FROM attachment_chunks WHERE attachment_id = ?1 AND seq = ?2",
                    args![self.id, seq as i64],
                    |r| r.get(0),
                )
                .map_err(io::Error::other)?;
            self.current = Some((seq, data));
        }
        Ok(self.current.as_ref().map_or(&[][..], |(_, d)| d.as_slice()))
    }
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let (seq, offset) = (self.pos / CHUNK as u64, (self.pos % CHUNK as u64) as usize);
        let chunk = self.chunk(seq)?;
        let available = chunk.get(offset..).unwrap_or(&[]);
        let n = available.len().min(buf.len());
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a chunk is short",
            ));
        }
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ChunkReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
