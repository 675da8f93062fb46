//! Attachments for tests: images made on the spot, uploads and downloads, and sends that carry
//! attachments or answer a message.

use std::collections::HashMap;
use std::io::Cursor;

use reqwest::Method;
use serde_json::Value;

use super::*;

/// A PNG of `w`×`h` pixels, a gradient (so it does not compress to nothing).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode a PNG");
    out.into_inner()
}

/// A JPEG of `w`×`h` pixels.
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, 64, (y % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encode a JPEG");
    out.into_inner()
}

/// What a download answered: status, headers (lower-case names) and the body's bytes.
pub struct Fetched {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Fetched {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Api {
    /// Uploads `bytes` as the raw body with the given Content-Type: (status, body).
    pub async fn upload_as(
        &self,
        by: &Session,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        let query = serde_urlencoded::to_string([("name", name)]).expect("a query");
        let resp = self
            .http
            .post(self.url(&format!("/v1/attachments?{query}")))
            .bearer_auth(&by.token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Uploads `bytes` and returns the attachment object (the upload must succeed).
    pub async fn upload(&self, by: &Session, name: &str, bytes: Vec<u8>) -> Value {
        let (status, body) = self
            .upload_as(by, name, "application/octet-stream", bytes)
            .await;
        assert_eq!(status, 201, "upload {name}: {body}");
        body
    }

    /// GET `path` with extra headers; the body as bytes.
    pub async fn fetch(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Fetched {
        let mut req = self.http.request(Method::GET, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp.bytes().await.expect("the body").to_vec();
        Fetched {
            status,
            headers,
            body,
        }
    }

    /// POST a message body (content, attachment_ids, reply_to, …) to a conversation.
    pub async fn send_body(&self, by: &Session, group: i64, body: &Value) -> (u16, Value) {
        self.post_json(&format!("/v1/messages/group/{group}"), by.auth(), body)
            .await
    }

    /// PUT (`on`) or DELETE the caller's reaction; the emoji is percent-encoded here.
    pub async fn react(&self, by: &Session, message: i64, emoji: &str, on: bool) -> (u16, Value) {
        let encoded: String = emoji.bytes().map(|b| format!("%{b:02X}")).collect();
        let path = format!("/v1/messages/{message}/reactions/{encoded}");
        let method = if on { Method::PUT } else { Method::DELETE };
        self.request(method, &path, by.auth(), None).await
    }
}
