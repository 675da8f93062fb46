//! Failed-login limits. A classroom shares one address, so the limit that matters is per
//! account: after a few failures that account answers 429 for a while, whoever asks. The
//! per-address limit is far higher, against one machine guessing at many accounts, and a locked
//! account never blocks the address's other accounts.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::UserId;

/// How many failures in `window` lock a key, per kind of key.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub failures: usize,
    pub window: Duration,
}

impl Limit {
    /// `FAILURES/SECONDS`, as the command line gives it: `5/300`.
    pub fn parse(s: &str) -> Result<Limit, String> {
        let wrong = || format!("{s:?} is not FAILURES/SECONDS (like 5/300)");
        let (failures, seconds) = s.split_once('/').ok_or_else(wrong)?;
        let failures: usize = failures.trim().parse().map_err(|_| wrong())?;
        let seconds: u64 = seconds.trim().parse().map_err(|_| wrong())?;
        if failures == 0 || seconds == 0 {
            return Err(wrong());
        }
        Ok(Limit {
            failures,
            window: Duration::from_secs(seconds),
        })
    }
}

/// Failure times per key, for a sliding window.
struct Failures<K> {
    limit: Limit,
    by_key: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn new(limit: Limit) -> Self {
        Failures {
            limit,
            by_key: HashMap::new(),
        }
    }

    fn forget_old(&mut self, key: &K, now: Instant) {
        if let Some(times) = self.by_key.get_mut(key) {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.limit.window)
            {
                times.pop_front();
            }
            if times.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// How long `key` must wait, if it is locked.
    fn locked_for(&mut self, key: &K, now: Instant) -> Option<Duration> {
        self.forget_old(key, now);
        let times = self.by_key.get(key)?;
        if times.len() < self.limit.failures {
            return None;
        }
        // Unlocked when the oldest failure that counts leaves the window.
        let oldest = times[times.len() - self.limit.failures];
        Some(self.limit.window.saturating_sub(now.duration_since(oldest)))
    }

    fn record(&mut self, key: K, now: Instant) {
        // Bound memory: an attacker inventing names cannot grow the map without end.
        if self.by_key.len() > 100_000 {
            let window = self.limit.window;
            self.by_key.retain(|_, t| {
                t.back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
        }
        let times = self.by_key.entry(key).or_default();
        times.push_back(now);
        while times.len() > self.limit.failures {
            times.pop_front();
        }
    }
}

/// What a login attempt names: an account (however it was spelled), or a name that matches
/// no account.
#[derive(Clone, Copy, Debug)]
pub enum LoginKey<'a> {
    Account(UserId),
    Name(&'a str),
}

impl LoginKey<'_> {
    fn key(self) -> String {
        match self {
            LoginKey::Account(id) => format!("#{id}"),
            LoginKey::Name(name) => name.trim().to_lowercase(),
        }
    }
}

pub struct LoginGuard {
    accounts: Mutex<Failures<String>>,
    addresses: Mutex<Failures<IpAddr>>,
}

impl LoginGuard {
    pub fn new(account: Limit, address: Limit) -> LoginGuard {
        LoginGuard {
            accounts: Mutex::new(Failures::new(account)),
            addresses: Mutex::new(Failures::new(address)),
        }
    }

    /// Starts a login attempt: refused with how long to wait if the account or address is
    /// locked out, else counted as a failure at once (before the password is checked), so
    /// parallel guesses cannot all slip past the check. `succeeded` takes it back.
    pub fn attempt(&self, login: LoginKey, addr: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let key = login.key();
        let mut accounts = lock(&self.accounts);
        let mut addresses = lock(&self.addresses);
        let account = accounts.locked_for(&key, now);
        let address = addr.and_then(|a| addresses.locked_for(&a, now));
        if let Some(wait) = account.into_iter().chain(address).max() {
            return Err(wait);
        }
        accounts.record(key, now);
        if let Some(a) = addr {
            addresses.record(a, now);
        }
        Ok(())
    }

    /// A successful login clears the account's failures and takes back the address's count
    /// of this attempt: successful logins never bring an address nearer its ceiling.
    pub fn succeeded(&self, login: LoginKey, addr: Option<IpAddr>) {
        lock(&self.accounts).by_key.remove(&login.key());
        if let Some(a) = addr {
            let mut addresses = lock(&self.addresses);
            if let Some(times) = addresses.by_key.get_mut(&a) {
                times.pop_back();
                if times.is_empty() {
                    addresses.by_key.remove(&a);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(account: usize, address: usize) -> LoginGuard {
        let window = Duration::from_secs(60);
        LoginGuard::new(
            Limit {
                failures: account,
                window,
            },
            Limit {
                failures: address,
                window,
            },
        )
    }

    #[test]
    fn an_account_locks_after_its_failures_and_others_stay_open() {
        let guard = guard(3, 10);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let (ava, mike) = (LoginKey::Account(UserId(1)), LoginKey::Account(UserId(2)));
        for _ in 0..3 {
            assert!(guard.attempt(ava, Some(ip)).is_ok());
        }
        let wait = guard.attempt(ava, Some(ip)).expect_err("locked");
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(
            guard.attempt(mike, Some(ip)).is_ok(),
            "other accounts are not locked"
        );
        for name in ["a", "b", "c", "d", "e", "f"] {
            let _ = guard.attempt(LoginKey::Name(name), Some(ip));
        }
        assert!(
            guard.attempt(mike, Some(ip)).is_err(),
            "the address ceiling applies"
        );
        assert!(guard
            .attempt(mike, Some("10.0.0.2".parse().unwrap()))
            .is_ok());
    }

    #[test]
    fn unknown_names_count_as_typed_ignoring_case_and_spaces() {
        let five = Limit::parse("5/300").unwrap();
        let guard = LoginGuard::new(five, Limit::parse("100/300").unwrap());
        for spelling in ["x", " X", "x ", "X", "x"] {
            assert!(guard.attempt(LoginKey::Name(spelling), None).is_ok());
        }
        assert!(guard.attempt(LoginKey::Name("X"), None).is_err());
        assert!(guard.attempt(LoginKey::Name("y"), None).is_ok());
    }

    #[test]
    fn success_clears_the_account_and_does_not_count_for_the_address() {
        let guard = guard(2, 2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let ava = LoginKey::Account(UserId(1));
        for _ in 0..10 {
            assert!(guard.attempt(ava, Some(ip)).is_ok());
            guard.succeeded(ava, Some(ip));
        }
        assert!(guard.attempt(ava, Some(ip)).is_ok());
        assert!(guard.attempt(ava, Some(ip)).is_ok());
        assert!(
            guard.attempt(ava, Some(ip)).is_err(),
            "two failures lock it"
        );
    }
}
