//! What `serve` prints when it is ready: where it listens, the addresses students can open
//! (with a QR code of the first, for phones), and a walkthrough while the demo accounts exist.

use crate::config::Database;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

/// The addresses other machines can open: the listening address itself, or, when it is a
/// wildcard, each non-loopback IPv4 address of this machine's interfaces that are up.
pub(super) fn student_urls(addr: SocketAddr) -> Vec<String> {
    let ips: Vec<IpAddr> = if addr.ip().is_unspecified() {
        let mut v4: Vec<Ipv4Addr> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.is_oper_up() || matches!(i.oper_status, if_addrs::IfOperStatus::Unknown))
            .filter_map(|i| match i.ip() {
                IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_link_local() => Some(ip),
                _ => None,
            })
            .collect();
        v4.sort();
        v4.dedup();
        v4.into_iter().map(IpAddr::V4).collect()
    } else if addr.ip().is_loopback() {
        Vec::new()
    } else {
        vec![addr.ip()]
    };
    ips.into_iter()
        .map(|ip| format!("http://{}/", SocketAddr::new(ip, addr.port())))
        .collect()
}

/// The banner's text. `demo` holds the demo accounts that still exist (username, password).
pub(super) fn banner(
    addr: SocketAddr,
    db: &Database,
    urls: &[String],
    demo: &[(String, String)],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "chatserver {} listening on http://{addr} (database: {})",
        env!("CARGO_PKG_VERSION"),
        db
    );
    let local = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        format!("http://localhost:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    };
    let _ = writeln!(out, "Open {local} in a browser on this machine.");
    if !addr.ip().is_loopback() {
        if urls.is_empty() {
            let _ = writeln!(
                out,
                "No network address found: students cannot reach this machine yet."
            );
        } else {
            let _ = writeln!(out, "Students on the same network open:");
            for url in urls {
                let _ = writeln!(out, "  {url}");
            }
            if let Some(qr) = qr(&urls[0]) {
                let _ = writeln!(out, "{qr}");
            }
        }
    }
    let host = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    match demo.first() {
        Some((user, password)) => {
            let names: Vec<&str> = demo.iter().map(|(u, _)| u.as_str()).collect();
            let _ = writeln!(
                out,
                "Try it (demo users {}, password {password:?}; on this machine only):\n  \
                 TOKEN=$(curl -s http://{host}/v1/users/login -d '{{\"username\":\"{user}\",\"password\":\"{password}\"}}' | jq -r .token)\n  \
                 websocat \"ws://{host}/ws?token=$TOKEN\"\n  \
                 curl -s http://{host}/v1/messages/group/1 -H \"Authorization: Bearer $TOKEN\" -d '{{\"content\":\"Hello!\"}}'",
                names.join(" and ")
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Make accounts with `chatserver user add NAME EMAIL` or \
                 `chatserver user import class.csv --group NAME` (see README)."
            );
        }
    }
    out
}

/// A QR code of `text` in block characters, light modules drawn, for the usual light-on-dark
/// terminal (phones read it either way round).
fn qr(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_banner_lists_no_network_address_and_no_qr() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let text = banner(addr, &Database::parse("c.db"), &student_urls(addr), &[]);
        assert!(text.contains("http://localhost:8080/"), "{text}");
        assert!(!text.contains("Students"), "{text}");
        assert!(!text.contains('█'), "{text}");
        assert!(!text.contains("Ava"), "{text}");
        assert!(text.contains("chatserver user add"), "{text}");
    }

    #[test]
    fn a_network_banner_lists_the_addresses_and_draws_the_first() {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let urls = vec![
            "http://192.168.1.20:8080/".to_string(),
            "http://10.0.0.5:8080/".to_string(),
        ];
        let demo = vec![("Ava".to_string(), "password".to_string())];
        let text = banner(addr, &Database::parse("c.db"), &urls, &demo);
        assert!(
            text.contains("  http://192.168.1.20:8080/\n  http://10.0.0.5:8080/"),
            "{text}"
        );
        assert!(text.contains('█'), "{text}");
        assert!(text.contains("demo users Ava"), "{text}");
    }

    #[test]
    fn a_specific_address_is_the_one_listed() {
        let addr: SocketAddr = "192.168.7.7:9000".parse().unwrap();
        assert_eq!(student_urls(addr), ["http://192.168.7.7:9000/"]);
        assert!(student_urls("127.0.0.1:9000".parse().unwrap()).is_empty());
    }
}
