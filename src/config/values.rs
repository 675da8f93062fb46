//! The value parsers of the configuration's flags: each refuses what could not work, with a
//! sentence saying what would.

use std::time::Duration;

/// Ten years: longer lifetimes would overflow the clock arithmetic they feed.
const LONGEST: u64 = 10 * 365 * 24 * 3600;

pub(super) fn seconds(s: &str) -> Result<Duration, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| "a whole number of seconds".to_string())?;
    if !(1..=LONGEST).contains(&n) {
        return Err(format!("must be between 1 and {LONGEST} seconds"));
    }
    Ok(Duration::from_secs(n))
}

pub(super) fn timeout(s: &str) -> Result<Duration, String> {
    let n: f64 = s.parse().map_err(|_| "a number of seconds".to_string())?;
    if !(0.001..=86_400.0).contains(&n) {
        return Err("must be between 0.001 and 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(n))
}

pub(super) fn ping_interval(s: &str) -> Result<Duration, String> {
    let n: f64 = s.parse().map_err(|_| "a number of seconds".to_string())?;
    if !(0.1..=86_400.0).contains(&n) {
        return Err("must be between 0.1 and 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(n))
}

pub(super) fn size(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| "a whole number of bytes".to_string())?;
    if n < 1024 {
        return Err("must be at least 1024 bytes".into());
    }
    Ok(n)
}

pub(super) fn count(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| "a whole number".to_string())?;
    if n < 1 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// `*`, or an origin as a browser sends it: `http` or `https`, a host, maybe a port, and
/// nothing after (a trailing `/` is forgiven). Anything else would never match a request.
/// A NATS server's address: `nats://host:port` (several, comma-separated, for a NATS cluster).
pub(super) fn broker(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.split(',').all(|one| {
            one.trim()
                .strip_prefix("nats://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(['/', ' ']))
        });
    match ok {
        true => Ok(s.to_string()),
        false => Err(format!(
            "{s:?} is not a NATS address; give it like nats://127.0.0.1:4222"
        )),
    }
}

pub(super) fn origin(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s == "*" {
        return Ok(s.into());
    }
    let bad = || {
        format!(
            "{s:?} is not an origin; give the scheme, host and optional port, like \
             https://chat.example.org or http://192.168.1.20:8080 (or `*` for any)"
        )
    };
    let lower = s.trim_end_matches('/').to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(bad)?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if !host_ok || !port_ok {
        return Err(bad());
    }
    Ok(lower)
}

/// A host name as `Host` carries it, without the port (which the check ignores): a name given
/// with one would silently match nothing.
pub(super) fn host_name(s: &str) -> Result<String, String> {
    let name = s.trim().trim_end_matches('.');
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ok {
        return Err(format!(
            "{s:?} is not a host name; give the name alone, like chat.school.example (no scheme or port)"
        ));
    }
    Ok(name.to_string())
}

pub(super) fn signing_secret(s: &str) -> Result<String, String> {
    if s.len() < 16 {
        return Err("the JWT secret must be at least 16 bytes long".into());
    }
    Ok(s.to_string())
}

/// Bytes as a whole number, or with a `K`, `M` or `G` suffix (binary: `10M` is 10 MiB, and
/// `KiB`/`MB` spellings mean the same); at least one byte.
pub(super) fn byte_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size; give bytes, or a number with K, M or G (like 10M)");
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches("ib").trim_end_matches('b');
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .filter(|&b| b <= 1u64 << 40)
        .ok_or_else(|| format!("{s:?} is more than 1 TiB"))?;
    if bytes == 0 {
        return Err("must be at least one byte".into());
    }
    Ok(bytes)
}
