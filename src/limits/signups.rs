//! Sign-ups per address: a class behind one address can register, a script cannot fill the
//! database with accounts.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{forget_before, MAX_ENTRIES};

/// At most `limit` events per address in `window` (sign-ups).
pub(crate) struct RateLimit {
    limit: usize,
    window: Duration,
    by_ip: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    /// Told of each event taken here (instances joined by a broker pass it on: `heard`).
    reporter: std::sync::OnceLock<Box<dyn Fn(IpAddr) + Send + Sync>>,
}

impl RateLimit {
    pub fn new(limit: usize, window: Duration) -> RateLimit {
        RateLimit {
            limit,
            window,
            by_ip: Mutex::new(HashMap::new()),
            reporter: std::sync::OnceLock::new(),
        }
    }

    pub fn report_to(&self, reporter: Box<dyn Fn(IpAddr) + Send + Sync>) {
        let _ = self.reporter.set(reporter);
    }

    /// An event taken on another instance: it counts here too (one given back there still
    /// counts here: the error is on the safe side).
    pub fn heard(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if by_ip.len() <= MAX_ENTRIES || by_ip.contains_key(&ip) {
            let times = by_ip.entry(ip).or_default();
            forget_before(times, now, self.window);
            times.push_back(now);
        }
    }

    /// Takes one of `ip`'s events now, or says how long until one is free. `give_back` returns
    /// it (the event did not happen after all).
    pub fn take(&self, ip: IpAddr) -> Result<Instant, Duration> {
        let now = Instant::now();
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if by_ip.len() > MAX_ENTRIES {
            let window = self.window;
            by_ip.retain(|_, t| {
                t.back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
        }
        let times = by_ip.entry(ip).or_default();
        forget_before(times, now, self.window);
        if times.len() >= self.limit {
            let oldest = times[times.len() - self.limit];
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        times.push_back(now);
        drop(by_ip);
        if let Some(report) = self.reporter.get() {
            report(ip);
        }
        Ok(now)
    }

    pub fn give_back(&self, ip: IpAddr, taken: Instant) {
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(times) = by_ip.get_mut(&ip) {
            if let Some(i) = times.iter().position(|t| *t == taken) {
                times.remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ups_are_limited_per_address_and_a_failed_one_is_given_back() {
        let rate = RateLimit::new(2, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = rate.take(a).unwrap();
        rate.take(a).unwrap();
        assert!(rate.take(a).is_err());
        rate.give_back(a, first);
        assert!(rate.take(a).is_ok());
        assert!(rate.take("10.0.0.2".parse().unwrap()).is_ok());
    }
}
