//! Attachments over HTTP: upload (the raw body, or one multipart part named `file`), download
//! with `ETag` and single `Range`s, and thumbnails. What is not a known image is always a
//! download, and nothing served here may run as a page (`nosniff`, `CSP: sandbox`).

use futures_util::StreamExt;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use super::{error_with_status, json, ErrorBody, Request, Routes};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::limits::Slot;
use crate::model::{Attachment, AttachmentId};
use crate::service::{Service, Span};

pub(super) fn routes(r: &mut Routes) {
    r.add(__path_upload, upload)
        .add(__path_download, download)
        .add(__path_thumbnail, thumbnail);
}

/// The file's bytes, as the body (for the document).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct FileBytes(Vec<u8>);

/// An upload as a form (for the document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Uploads a file: the raw body (with `?name=`), or `multipart/form-data` with one part named
/// `file`. Its type is read from its bytes.
#[utoipa::path(post, path = "/v1/attachments", tag = "attachments", security(("bearer" = [])),
    params(("name" = Option<String>, Query, description = "The file's name (else the part's file name, else `file`)")),
    request_body(description = "The file itself, or multipart/form-data with a part named file",
                 content((FileBytes = "application/octet-stream"), (UploadForm = "multipart/form-data"))),
    responses(
        (status = 201, body = Attachment),
        (status = 400, description = "Empty, or a multipart body without a file part", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 408, description = "The upload stopped arriving", body = ErrorBody),
        (status = 413, description = "Over --max-attachment (payload_too_large) or the quota (quota_exceeded)", body = ErrorBody),
    ))]
async fn upload(mut req: Request) -> Result<Response> {
    let user = req.user()?;
    let name = req.query()?.text("name").map(str::to_string);
    let declared: Option<u64> =
        header_text(&req.headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
    let content_type = header_text(&req.headers, header::CONTENT_TYPE)
        .unwrap_or("")
        .to_string();
    let body = req.take_body()?;
    let state = Arc::clone(&req.state);
    let service = &state.service;
    let place = service.upload_place(user)?;
    let unreadable = |_| Error::invalid("invalid_upload", "the upload could not be read");
    let mut body = service.timed(body.map(move |piece| piece.map_err(unreadable)));
    let result = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let boundary = multer::parse_boundary(&content_type).map_err(|_| {
            Error::invalid(
                "invalid_upload",
                "the multipart Content-Type has no boundary",
            )
        })?;
        let form = Form {
            service,
            max: state.config.max_attachment,
            place: &place,
            user,
            name,
        };
        form.upload(body, boundary).await
    } else {
        let result = service
            .upload(user, &place, name.as_deref(), declared, &mut body)
            .await;
        if matches!(result, Err(Error::TooLarge(_) | Error::Quota(_))) {
            super::request::drain(&mut body).await;
        }
        result
    };
    json(&result?, StatusCode::CREATED)
}

/// Bytes of a multipart body allowed before its `file` part (the preamble, part headers, other
/// parts): multer keeps them in memory until it finds the part.
const BEFORE_FILE: u64 = 64 * 1024;

/// A multipart upload: the first part named `file`; other parts before it are skipped.
struct Form<'a> {
    service: &'a Service,
    /// --max-attachment
    max: u64,
    place: &'a Slot<'a>,
    user: AuthUser,
    name: Option<String>,
}

impl Form<'_> {
    async fn upload<S>(self, body: S, boundary: String) -> Result<Attachment>
    where
        S: futures_util::Stream<Item = Result<hyper::body::Bytes>> + Send + Unpin + 'static,
    {
        // Counts what multer was given before the file part was found; past the limit (more
        // than one piece beyond it) the body is refused.
        let seen = Arc::new(AtomicU64::new(0));
        let in_file = Arc::new(AtomicBool::new(false));
        let (counted, past) = (Arc::clone(&seen), Arc::clone(&in_file));
        let body = body.map(move |piece| {
            let piece = piece?;
            let before = counted.fetch_add(piece.len() as u64, Ordering::Relaxed);
            if !past.load(Ordering::Relaxed) && before > BEFORE_FILE {
                return Err(Error::invalid(
                    "invalid_upload",
                    "the multipart body holds more than 64 KiB before its file part",
                ));
            }
            Ok(piece)
        });
        let limit = self.max + BEFORE_FILE;
        let constraints =
            multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
        let mut form = multer::Multipart::with_constraints(body, boundary, constraints);
        loop {
            let Some(field) = form.next_field().await.map_err(multipart_error)? else {
                return Err(Error::invalid(
                    "invalid_upload",
                    "the multipart body has no part named file",
                ));
            };
            if field.name() != Some("file") {
                continue;
            }
            in_file.store(true, Ordering::Relaxed);
            let name = self.name.or_else(|| field.file_name().map(str::to_string));
            let mut stream = field.map(|piece| piece.map_err(multipart_error));
            return self
                .service
                .upload(self.user, self.place, name.as_deref(), None, &mut stream)
                .await;
        }
    }
}

/// multer's error as ours: our own errors (a timeout, a refused body) come back as they were.
fn multipart_error(e: multer::Error) -> Error {
    match e {
        multer::Error::StreamReadFailed(inner) => match inner.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::invalid(
                "invalid_upload",
                format!("the upload could not be read: {other}"),
            ),
        },
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            Error::TooLarge("the upload is too large".into())
        }
        other => Error::invalid(
            "invalid_upload",
            format!("the multipart body is not valid: {other}"),
        ),
    }
}

/// The file. `ETag` is its sha256; `Range: bytes=…` (one range) gives 206.
#[utoipa::path(get, path = "/v1/attachments/{id}", tag = "attachments", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Attachment id")),
    responses(
        (status = 200, description = "The file: an image inline, anything else as a download",
            content((FileBytes = "application/octet-stream"), (FileBytes = "image/png"), (FileBytes = "image/jpeg"),
                    (FileBytes = "image/gif"), (FileBytes = "image/webp"))),
        (status = 206, description = "The range asked for",
            content((FileBytes = "application/octet-stream"), (FileBytes = "image/png"), (FileBytes = "image/jpeg"),
                    (FileBytes = "image/gif"), (FileBytes = "image/webp"))),
        (status = 304, description = "If-None-Match matched"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not the uploader nor in a conversation it was sent to", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, description = "The range is outside the file", body = ErrorBody),
    ))]
async fn download(req: Request) -> Result<Response> {
    let attachment = req
        .service()
        .attachment(req.user()?, req.id::<AttachmentId>("id")?)
        .await?;
    let etag = format!("\"{}\"", attachment.sha256);
    if matches_etag(&req.headers, &etag) {
        return Ok(not_modified(&etag));
    }
    let size = attachment.size.max(0) as u64;
    let range = match header_text(&req.headers, header::RANGE) {
        Some(r) if if_range_holds(&req.headers, &etag) => parse_range(r, size),
        _ => Ok(None),
    };
    let (status, span) = match range {
        Err(()) => {
            let mut res = error_with_status(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "the range is outside the file",
            );
            set(&mut res, header::CONTENT_RANGE, &format!("bytes */{size}"));
            return Ok(res);
        }
        Ok(Some(span)) => (StatusCode::PARTIAL_CONTENT, span),
        Ok(None) => (
            StatusCode::OK,
            Span {
                start: 0,
                end: size,
            },
        ),
    };
    let bytes = req.service().attachment_bytes(attachment.id, span);
    let mut res = warp::reply::stream(bytes).into_response();
    *res.status_mut() = status;
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {}-{}/{size}", span.start, span.end - 1);
        set(&mut res, header::CONTENT_RANGE, &range);
    }
    set(
        &mut res,
        header::CONTENT_LENGTH,
        &(span.end - span.start).to_string(),
    );
    set(&mut res, header::ACCEPT_RANGES, "bytes");
    set(&mut res, header::ETAG, &etag);
    served_as_file(&mut res, &attachment);
    Ok(res)
}

/// An image's thumbnail, at most 320 px on its long side (PNG or JPEG).
#[utoipa::path(get, path = "/v1/attachments/{id}/thumbnail", tag = "attachments",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Attachment id")),
    responses(
        (status = 200, description = "The thumbnail",
            content((FileBytes = "image/jpeg"), (FileBytes = "image/png"))),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not the uploader nor in a conversation it was sent to", body = ErrorBody),
        (status = 404, description = "No such attachment, not an image, or over 40 megapixels", body = ErrorBody),
    ))]
async fn thumbnail(req: Request) -> Result<Response> {
    let id: AttachmentId = req.id("id")?;
    let (kind, data) = req.service().thumbnail(req.user()?, id).await?;
    let mut res = Response::new(data.into());
    set(&mut res, header::CONTENT_TYPE, &kind);
    set(&mut res, header::CACHE_CONTROL, "private, no-cache");
    set(&mut res, header::CONTENT_SECURITY_POLICY, "sandbox");
    Ok(res)
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn set(res: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(name, v);
    }
}

/// Images of the four inline types are shown; everything else is saved, under its name.
fn served_as_file(res: &mut Response, a: &Attachment) {
    let (kind, disposition) = match a.is_image() {
        true => (a.content_type.as_str(), "inline"),
        false => ("application/octet-stream", "attachment"),
    };
    set(res, header::CONTENT_TYPE, kind);
    set(
        res,
        header::CONTENT_DISPOSITION,
        &content_disposition(disposition, &a.name),
    );
    set(res, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(res, header::CONTENT_SECURITY_POLICY, "sandbox");
    // Revalidated each time (a cheap 304): who may fetch it can change.
    set(res, header::CACHE_CONTROL, "private, no-cache");
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII stand-in for old
/// clients, and the name itself percent-encoded.
fn content_disposition(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    header_text(headers, header::IF_NONE_MATCH).is_some_and(|v| {
        v.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*")
    })
}

/// Without `If-Range`, or when it names this file, a `Range` is honoured.
fn if_range_holds(headers: &HeaderMap, etag: &str) -> bool {
    header_text(headers, header::IF_RANGE).is_none_or(|v| v.trim() == etag)
}

fn not_modified(etag: &str) -> Response {
    let mut res = Response::new(Default::default());
    *res.status_mut() = StatusCode::NOT_MODIFIED;
    set(&mut res, header::ETAG, etag);
    // As on the 200: a browser keeps its copy (rather than the default no-store dropping it).
    set(&mut res, header::CACHE_CONTROL, "private, no-cache");
    res
}

/// One `bytes=` range of a file of `size` bytes: `Ok(None)` for none we honour (another unit,
/// several ranges, a malformed header: the whole file is sent), `Err` for one outside the file.
fn parse_range(value: &str, size: u64) -> Result<Option<Span>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let span = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => match number(last) {
            Some(0) => return Err(()),
            Some(n) => Span {
                start: size.saturating_sub(n),
                end: size,
            },
            None => return Ok(None),
        },
        (false, _) => {
            let Some(start) = number(first) else {
                return Ok(None);
            };
            let end = match last.trim().is_empty() {
                true => size,
                false => match number(last) {
                    Some(l) if l >= start => l.saturating_add(1).min(size),
                    _ => return Ok(None),
                },
            };
            Span { start, end }
        }
        (true, true) => return Ok(None),
    };
    if span.start >= size || span.start >= span.end {
        return Err(());
    }
    Ok(Some(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        let span = |start, end| Ok(Some(Span { start, end }));
        assert_eq!(parse_range("bytes=0-9", 100), span(0, 10));
        assert_eq!(parse_range("bytes=90-", 100), span(90, 100));
        assert_eq!(parse_range("bytes=-10", 100), span(90, 100));
        assert_eq!(parse_range("bytes=-500", 100), span(0, 100));
        assert_eq!(parse_range("bytes=95-200", 100), span(95, 100));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        for ignored in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=x-1",
            "bytes=5-1",
            "bytes=-",
        ] {
            assert_eq!(parse_range(ignored, 100), Ok(None), "{ignored}");
        }
    }

    #[test]
    fn file_names_are_quoted_for_old_and_new_clients() {
        assert_eq!(
            content_disposition("attachment", "a \"b\".pdf"),
            "attachment; filename=\"a _b_.pdf\"; filename*=UTF-8''a%20%22b%22.pdf"
        );
        assert!(content_disposition("inline", "é.png").contains("filename*=UTF-8''%C3%A9.png"));
    }
}
