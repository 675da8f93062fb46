//! What every answer and every request is checked for at the door: the `Host` a request names
//! (against DNS rebinding: a page on another site that resolves its own name to this machine's
//! address can otherwise drive the server from a student's browser), and the headers that keep
//! pages from being framed, sniffed or leaking their address.

use std::net::{Ipv4Addr, Ipv6Addr};

use warp::http::{header, HeaderMap, HeaderValue, Response};

/// The names a request's `Host` may give besides an IP address.
pub(crate) struct Hosts {
    names: Vec<String>,
}

impl Hosts {
    /// `localhost`, this machine's name (also as `NAME.local`), and `public` (`--public-host`).
    pub fn new(public: &[String]) -> Hosts {
        let mut names = vec!["localhost".to_string()];
        if let Some(own) = gethostname::gethostname().to_str() {
            let own = own.trim().to_ascii_lowercase();
            if !own.is_empty() {
                names.push(format!("{own}.local"));
                names.push(own);
            }
        }
        names.extend(
            public
                .iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase()),
        );
        Hosts { names }
    }

    /// Whether a request with these headers may be served. A request without `Host` (HTTP/1.0
    /// tools) is: a browser always sends one.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST) else {
            return true;
        };
        let Ok(host) = host.to_str() else {
            return false;
        };
        let name = without_port(host.trim())
            .trim_end_matches('.')
            .to_ascii_lowercase();
        name.parse::<Ipv4Addr>().is_ok()
            || name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .is_some_and(|n| n.parse::<Ipv6Addr>().is_ok())
            || self.names.contains(&name)
    }
}

fn without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Pages may not be framed and load only what this server serves; nothing is sniffed; no
/// answer says where it came from; API answers are not cached.
pub(crate) fn secure<B>(res: &mut Response<B>) {
    let is_page = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if is_page {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h
    }

    #[test]
    fn ip_literals_localhost_and_named_hosts_pass_other_names_do_not() {
        let hosts = Hosts::new(&["Chat.School.Example".to_string()]);
        for ok in [
            "127.0.0.1:8080",
            "10.0.0.5",
            "[::1]:8080",
            "[fe80::1]",
            "localhost:8080",
            "LOCALHOST",
            "chat.school.example:80",
            "chat.school.example.",
        ] {
            assert!(hosts.allows(&with_host(ok)), "{ok} refused");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "::1",
            "localhost.evil",
        ] {
            assert!(!hosts.allows(&with_host(bad)), "{bad} allowed");
        }
        assert!(hosts.allows(&HeaderMap::new()), "no Host at all");
    }
}
