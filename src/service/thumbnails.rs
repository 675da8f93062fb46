//! Thumbnails: made once per image, on first request, and kept. The decode runs in a task of
//! its own that always finishes and keeps what it made, whoever is still waiting: a client that
//! hangs up cannot make the server decode the same image again, and requests for one image
//! share one decode. One image is decoded at a time, within `image::Limits`, and each user may
//! have only a few thumbnail requests waiting, so nobody can queue the decoder for everyone.

use std::collections::HashMap;
use std::io::{BufReader, Cursor};
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use image::{ImageFormat, ImageReader};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;

use super::attachments::limits;
use super::Service;
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::limits::Slots;
use crate::metrics::Metrics;
use crate::model::AttachmentId;
use crate::store::{ChunkReader, Store, Thumbnail};

/// The longest side of a thumbnail, in pixels.
pub(crate) const THUMBNAIL_SIDE: u32 = 320;
/// Images larger than this get no thumbnail (and are never decoded).
pub(crate) const THUMBNAIL_MAX_PIXELS: u64 = 40_000_000;
/// Thumbnail requests of one user waiting for a decode at once; more get 429.
const WAITING_PER_USER: usize = 2;

type Made = Shared<BoxFuture<'static, Result<Option<Thumbnail>>>>;

pub(crate) struct Thumbnails {
    /// One decoder at a time: each may take up to the decoding memory limit.
    decoder: Arc<Semaphore>,
    /// The decodes under way, by image: a second request waits for the same one.
    running: Arc<Mutex<HashMap<AttachmentId, Made>>>,
    waiting: Slots,
    /// Decodes queued or running, and done (the server's metrics).
    queued: Gauge,
    made: Counter,
}

impl Thumbnails {
    pub fn new(metrics: &Metrics) -> Thumbnails {
        Thumbnails {
            decoder: Arc::new(Semaphore::new(1)),
            running: Arc::default(),
            waiting: Slots::new(WAITING_PER_USER),
            queued: metrics.thumbnails_waiting.clone(),
            made: metrics.thumbnails_made.clone(),
        }
    }
}

impl Service {
    /// An image attachment's thumbnail; not found for other files and for images over 40
    /// megapixels or that do not decode.
    pub async fn thumbnail(&self, user: AuthUser, id: AttachmentId) -> Result<Thumbnail> {
        let none = || Error::not_found("this attachment has no thumbnail");
        let a = self.attachment(user, id).await?;
        let pixels = u64::from(a.width.unwrap_or(0)) * u64::from(a.height.unwrap_or(0));
        let format = ImageFormat::from_mime_type(&a.content_type);
        let Some(format) = format.filter(|_| a.is_image() && pixels <= THUMBNAIL_MAX_PIXELS) else {
            return Err(none());
        };
        if let Some(kept) = self.store.thumbnail(id).await? {
            return kept.ok_or_else(none);
        }
        let _waiting = (self.thumbnails.waiting).take_or_refuse(user.id, "thumbnail requests")?;
        let made = self
            .thumbnails
            .start(&self.store, id, a.size.max(0) as u64, format);
        made.await?.ok_or_else(none)
    }
}

impl Thumbnails {
    /// The decode of `id`: the one under way, or a new one.
    fn start(&self, store: &Store, id: AttachmentId, size: u64, format: ImageFormat) -> Made {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(made) = running.get(&id) {
            return made.clone();
        }
        let (store, decoder) = (store.clone(), Arc::clone(&self.decoder));
        let (queued, counted) = (self.queued.clone(), self.made.clone());
        queued.inc();
        let task = tokio::spawn(async move {
            let made = async {
                let _turn = decoder
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::unavailable("the server is stopping"))?;
                if let Some(kept) = store.thumbnail(id).await? {
                    return Ok(kept);
                }
                let made = store
                    .with_attachment_reader(id, size, move |r| make(r, format))
                    .await?;
                counted.inc();
                store.keep_thumbnail(id, made.clone()).await?;
                Ok(made)
            }
            .await;
            queued.dec();
            made
        });
        let made: Made = async move {
            task.await
                .unwrap_or_else(|e| Err(Error::internal(format!("thumbnail task: {e}"))))
        }
        .boxed()
        .shared();
        running.insert(id, made.clone());
        // Forget it once it is done (the result is kept in the database).
        let (forget, done) = (Arc::clone(&self.running), made.clone());
        tokio::spawn(async move {
            let _ = done.await;
            forget.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        });
        made
    }
}

/// Decodes the image within the limits and shrinks it to at most `THUMBNAIL_SIDE` a side: a
/// PNG when it has transparency, else a JPEG. `None` when it does not decode.
fn make(r: &mut ChunkReader<'_>, format: ImageFormat) -> Option<Thumbnail> {
    let mut reader = ImageReader::with_format(BufReader::new(r), format);
    reader.limits(limits());
    let image = reader.decode().ok()?;
    let small = image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    let mut out = Cursor::new(Vec::new());
    if small.color().has_alpha() {
        small.write_to(&mut out, ImageFormat::Png).ok()?;
        Some(("image/png".into(), out.into_inner()))
    } else {
        let rgb = image::DynamicImage::ImageRgb8(small.to_rgb8());
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
        rgb.write_with_encoder(encoder).ok()?;
        Some(("image/jpeg".into(), out.into_inner()))
    }
}
