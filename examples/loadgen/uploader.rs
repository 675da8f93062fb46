//! The uploaders of `uploads`: each posts the same file to /v1/attachments again and again
//! from an address of its own, and counts what finished.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hyper::body::Bytes;

use crate::net::{unix_nanos, IO_TIMEOUT};

/// One upload may take at most this long (10 MiB at ~170 KB/s).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// What one uploader did in phase 2.
#[derive(Default)]
pub(crate) struct Uploads {
    pub done: u64,
    pub bytes: u64,
    /// When the last upload was answered 201; each one's time in ms.
    pub last: Option<Instant>,
    pub times: Vec<f64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Uploads {
    pub fn add(&mut self, u: Uploads) {
        self.done += u.done;
        self.bytes += u.bytes;
        self.last = self.last.max(u.last);
        self.times.extend(u.times);
        self.errors += u.errors;
        if self.first_error.is_none() {
            self.first_error = u.first_error;
        }
    }
}

/// Bytes that do not compress and do not look like any known type (xorshift).
pub(crate) fn noise(n: usize) -> Vec<u8> {
    let mut x = unix_nanos() | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out[0] = 0; // no magic number by chance
    out
}

/// Uploads `file` again and again as one user, from an address of its own (127.0.0.200 + u),
/// starting no new upload after `deadline`. Every upload must answer 201 with its size.
pub(crate) async fn upload_loop(
    addr: SocketAddr,
    token: String,
    u: usize,
    file: Bytes,
    deadline: Instant,
) -> Uploads {
    let mut out = Uploads::default();
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 200 + (u % 40) as u8));
    let client = reqwest::Client::builder()
        .local_address(if addr.is_ipv6() { None } else { Some(source) })
        .tcp_nodelay(true)
        .connect_timeout(IO_TIMEOUT)
        .timeout(UPLOAD_TIMEOUT)
        .no_proxy()
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            out.errors += 1;
            out.first_error = Some(format!("reqwest client: {e}"));
            return out;
        }
    };
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let url = format!("http://{addr}/v1/attachments?name=lg-{u}-{n}.bin");
        let t = Instant::now();
        let answer = client
            .post(&url)
            .bearer_auth(&token)
            .header("Content-Type", "application/octet-stream")
            .body(file.clone())
            .send()
            .await;
        let (status, body) = match answer {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        };
        let size = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["size"].as_u64());
        if status == 201 && size == Some(file.len() as u64) {
            out.done += 1;
            out.bytes += file.len() as u64;
            out.times.push(t.elapsed().as_secs_f64() * 1000.0);
            out.last = Some(Instant::now());
        } else {
            out.errors += 1;
            out.first_error.get_or_insert(format!("{status} {body}"));
            if status == 0 || status == 413 {
                break; // the same would happen again until the deadline
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}
