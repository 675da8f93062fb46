//! Limits on guessing and sign-ups. A classroom shares one network, and often one address, so
//! a failure counts against one account *from one address*: a student who guesses at the
//! teacher's password locks that account for their own address only, and a correct password
//! from anywhere else is never refused because of them. An address that fails a great deal over
//! many accounts is slowed (one attempt a second) rather than refused, so the classmates behind
//! the same address can still sign in.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::model::UserId;

mod signups;
mod slots;

pub(crate) use signups::RateLimit;
pub(crate) use slots::{Slot, Slots};

/// How many failures in `window`.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub failures: usize,
    pub window: Duration,
}

impl Limit {
    /// `FAILURES/SECONDS`, as the command line gives it: `10/600`.
    pub fn parse(s: &str) -> Result<Limit, String> {
        let wrong = || format!("{s:?} is not FAILURES/SECONDS (like 10/600)");
        let (failures, seconds) = s.split_once('/').ok_or_else(wrong)?;
        let failures: usize = failures.trim().parse().map_err(|_| wrong())?;
        let seconds: u64 = seconds.trim().parse().map_err(|_| wrong())?;
        if failures == 0 || !(1..=86_400 * 366).contains(&seconds) {
            return Err(wrong());
        }
        Ok(Limit {
            failures,
            window: Duration::from_secs(seconds),
        })
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

/// Over its budget, an address gets one attempt per this long.
const PACE: Duration = Duration::from_secs(1);
/// The longest a paced attempt waits for its turn; past that it is refused (429) without
/// taking a turn, so abandoned attempts cannot push the address's turns far into the future.
const MAX_PACED_WAIT: Duration = Duration::from_secs(5);

/// Why an attempt is refused, and how long until one may succeed.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// This account has too many recent failures from this address.
    Locked(Duration),
    /// This address is over its failure budget and its turns are taken for the next seconds.
    Paced(Duration),
}
/// Entries kept before old ones are swept: an attacker inventing names cannot grow the maps.
pub(super) const MAX_ENTRIES: usize = 100_000;

pub(crate) struct LoginGuard {
    pair: Limit,
    budget: Limit,
    state: Mutex<GuardState>,
    /// Woken when an attempt ends, for attempts waiting on one account and address.
    ended: Notify,
    /// Told of each outcome here (instances joined by a broker pass it on; see `heard`).
    reporter: std::sync::OnceLock<Reporter>,
}

/// Hears each login outcome: the account's key, the address, whether it failed.
pub(crate) type Reporter = Box<dyn Fn(&str, IpAddr, bool) + Send + Sync>;

#[derive(Default)]
struct GuardState {
    pairs: HashMap<(String, IpAddr), Pair>,
    addresses: HashMap<IpAddr, Address>,
}

#[derive(Default)]
struct Pair {
    failures: VecDeque<Instant>,
    in_flight: usize,
}

struct Address {
    failures: VecDeque<Instant>,
    next_slot: Instant,
}

/// A password check in progress. `failed` or `succeeded` records its outcome; dropped without
/// either (the client went away), it counts for nothing.
pub(crate) struct Attempt<'g> {
    guard: &'g LoginGuard,
    key: (String, IpAddr),
    open: bool,
}

pub(super) fn forget_before(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

impl LoginGuard {
    /// At most `pair` failures per account per address, and past `budget` failures from one
    /// address over all accounts, one attempt a second from it.
    pub fn new(pair: Limit, budget: Limit) -> LoginGuard {
        LoginGuard {
            pair,
            budget,
            state: Mutex::new(GuardState::default()),
            ended: Notify::new(),
            reporter: std::sync::OnceLock::new(),
        }
    }

    pub fn report_to(&self, reporter: Reporter) {
        let _ = self.reporter.set(reporter);
    }

    /// An outcome on another instance: counted as if here (without an attempt in flight).
    pub fn heard(&self, login: &str, ip: IpAddr, failed: bool) {
        self.record(&(login.to_string(), ip), failed, false);
    }

    fn lock(&self) -> MutexGuard<'_, GuardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a password check for `login` from `addr`: refused with how long to wait when
    /// that account is locked for that address. While checks already in flight could lock it,
    /// this one waits for them rather than being refused, so parallel guesses cannot slip past
    /// the limit and parallel correct logins are never turned away.
    pub async fn begin(
        &self,
        login: LoginKey<'_>,
        addr: Option<IpAddr>,
    ) -> Result<Attempt<'_>, Refused> {
        let key = (
            login.key(),
            addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        );
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.try_begin(&key).map_err(Refused::Locked)? {
                break;
            }
            ended.await;
        }
        let attempt = Attempt {
            guard: self,
            key,
            open: true,
        };
        let wait = self.pace(attempt.key.1).map_err(Refused::Paced)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(attempt)
    }

    /// `Ok(true)`: counted in flight; `Ok(false)`: wait for one in flight; `Err`: locked.
    fn try_begin(&self, key: &(String, IpAddr)) -> Result<bool, Duration> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.pairs.len() > MAX_ENTRIES {
            let window = self.pair.window;
            state.pairs.retain(|_, p| {
                p.in_flight > 0
                    || p.failures
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let pair = state.pairs.entry(key.clone()).or_default();
        forget_before(&mut pair.failures, now, self.pair.window);
        if pair.failures.len() >= self.pair.failures {
            // Unlocked when the oldest failure that counts leaves the window.
            let oldest = pair.failures[pair.failures.len() - self.pair.failures];
            return Err(self.pair.window.saturating_sub(now.duration_since(oldest)));
        }
        if pair.failures.len() + pair.in_flight >= self.pair.failures {
            return Ok(false);
        }
        pair.in_flight += 1;
        Ok(true)
    }

    /// How long an attempt from `ip` waits first: nothing, unless the address is over its
    /// failure budget, when attempts are spaced `PACE` apart; `Err` (how long until a turn is
    /// free) when the turns of the next `MAX_PACED_WAIT` are all taken.
    fn pace(&self, ip: IpAddr) -> Result<Duration, Duration> {
        let now = Instant::now();
        let mut state = self.lock();
        let Some(address) = state.addresses.get_mut(&ip) else {
            return Ok(Duration::ZERO);
        };
        forget_before(&mut address.failures, now, self.budget.window);
        if address.failures.len() < self.budget.failures {
            return Ok(Duration::ZERO);
        }
        let slot = address.next_slot.max(now);
        if slot - now > MAX_PACED_WAIT {
            return Err(slot - now - MAX_PACED_WAIT);
        }
        address.next_slot = slot + PACE;
        Ok(slot - now)
    }

    fn end(&self, key: &(String, IpAddr), failed: bool) {
        self.record(key, failed, true);
        if let Some(report) = self.reporter.get() {
            report(&key.0, key.1, failed);
        }
    }

    fn record(&self, key: &(String, IpAddr), failed: bool, here: bool) {
        let now = Instant::now();
        let mut state = self.lock();
        if !here && !state.pairs.contains_key(key) && state.pairs.len() <= MAX_ENTRIES {
            state.pairs.insert(key.clone(), Pair::default());
        }
        if let Some(pair) = state.pairs.get_mut(key) {
            if here {
                pair.in_flight = pair.in_flight.saturating_sub(1);
            }
            match failed {
                true => pair.failures.push_back(now),
                false => pair.failures.clear(),
            }
        }
        if failed {
            if state.addresses.len() > MAX_ENTRIES {
                let window = self.budget.window;
                state.addresses.retain(|_, a| {
                    a.failures
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < window)
                });
            }
            let budget = self.budget.failures;
            let address = state.addresses.entry(key.1).or_insert_with(|| Address {
                failures: VecDeque::new(),
                next_slot: now,
            });
            address.failures.push_back(now);
            while address.failures.len() > budget {
                address.failures.pop_front();
            }
        }
        drop(state);
        self.ended.notify_waiters();
    }
}

impl Attempt<'_> {
    /// The password was right: this account's failures from this address are forgotten.
    pub fn succeeded(mut self) {
        self.open = false;
        self.guard.end(&self.key, false);
    }

    /// The password was wrong.
    pub fn failed(mut self) {
        self.open = false;
        self.guard.end(&self.key, true);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.open {
            let mut state = self.guard.lock();
            if let Some(pair) = state.pairs.get_mut(&self.key) {
                pair.in_flight = pair.in_flight.saturating_sub(1);
            }
            drop(state);
            self.guard.ended.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(pair: usize, budget: usize) -> LoginGuard {
        let window = Duration::from_secs(60);
        LoginGuard::new(
            Limit {
                failures: pair,
                window,
            },
            Limit {
                failures: budget,
                window,
            },
        )
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[tokio::test]
    async fn an_account_locks_for_the_failing_address_only() {
        let guard = guard(3, 100);
        let ava = LoginKey::Account(UserId(1));
        for _ in 0..3 {
            guard.begin(ava, ip("10.0.0.1")).await.unwrap().failed();
        }
        let wait = guard
            .begin(ava, ip("10.0.0.1"))
            .await
            .err()
            .expect("locked");
        let Refused::Locked(wait) = wait else {
            panic!("locked, not paced: {wait:?}")
        };
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        let elsewhere = guard.begin(ava, ip("10.0.0.2")).await;
        assert!(elsewhere.is_ok(), "another address is not locked out");
        let mike = guard
            .begin(LoginKey::Account(UserId(2)), ip("10.0.0.1"))
            .await;
        assert!(
            mike.is_ok(),
            "another account from the same address is not locked"
        );
    }

    #[tokio::test]
    async fn success_forgets_the_failures_and_abandoned_attempts_count_for_nothing() {
        let guard = guard(2, 100);
        let ava = LoginKey::Account(UserId(1));
        guard.begin(ava, ip("10.0.0.1")).await.unwrap().failed();
        guard.begin(ava, ip("10.0.0.1")).await.unwrap().succeeded();
        drop(guard.begin(ava, ip("10.0.0.1")).await.unwrap());
        guard.begin(ava, ip("10.0.0.1")).await.unwrap().failed();
        assert!(
            guard.begin(ava, ip("10.0.0.1")).await.is_ok(),
            "one failure since"
        );
    }

    #[tokio::test]
    async fn unknown_names_count_as_typed_ignoring_case_and_spaces() {
        let guard = guard(5, 100);
        for spelling in ["x", " X", "x ", "X", "x"] {
            guard
                .begin(LoginKey::Name(spelling), None)
                .await
                .unwrap()
                .failed();
        }
        assert!(guard.begin(LoginKey::Name("X"), None).await.is_err());
        assert!(guard.begin(LoginKey::Name("y"), None).await.is_ok());
    }

    #[tokio::test]
    async fn an_address_over_its_budget_is_paced_not_refused() {
        let guard = guard(100, 2);
        for n in 0..2 {
            guard
                .begin(LoginKey::Account(UserId(n)), ip("10.0.0.1"))
                .await
                .unwrap()
                .failed();
        }
        let here: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            guard.pace(here),
            Ok(Duration::ZERO),
            "the first turn is now"
        );
        let next = guard.pace(here).unwrap();
        assert!(
            next > Duration::from_millis(900),
            "then one a second: {next:?}"
        );
        assert_eq!(
            guard.pace("10.0.0.2".parse().unwrap()),
            Ok(Duration::ZERO),
            "others are not slowed"
        );
        // Turns are handed out for the next five seconds only: attempts that would wait
        // longer (abandoned or not) are refused and take no turn, so a flood of them cannot
        // make a classmate's correct login wait for minutes.
        let taken: Vec<_> = (0..20).map(|_| guard.pace(here)).collect();
        let waiting = taken.iter().filter(|t| t.is_ok()).count();
        assert_eq!(waiting, 4, "{taken:?}");
        let refused = taken.last().unwrap().unwrap_err();
        assert!(refused <= Duration::from_secs(1), "{refused:?}");
    }
}
