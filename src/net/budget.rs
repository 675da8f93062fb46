//! How many connections the server holds, in all and per address. Every connection (an upgraded
//! socket too) holds a file descriptor; past the process's open-files limit every new client
//! fails, so the server refuses the newest connection at once when a bound is reached, and one
//! address can never take more than half of the whole.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// File descriptors kept back for the database (its pool, WAL and shared memory), the
/// listeners, the lock file and the blocking threads.
const RESERVE: u64 = 128;

pub(crate) struct Budget {
    max: usize,
    per_ip: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// A connection's place in the budget, given back when the last holder drops it (the
/// connection's task, and the socket's task after an upgrade).
pub(crate) struct Permit {
    budget: Arc<Budget>,
    ip: IpAddr,
}

impl Budget {
    /// `max` connections in all (default: the open-files limit less a reserve), at most
    /// `per_ip` of them (and never more than half of `max`) from one address.
    pub fn new(max: Option<usize>, per_ip: usize) -> Arc<Budget> {
        let max = max.unwrap_or_else(default_max).max(2);
        Arc::new(Budget {
            max,
            per_ip: per_ip.clamp(1, max / 2),
            held: Mutex::new(Held::default()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn per_ip(&self) -> usize {
        self.per_ip
    }

    /// A place for a new connection from `ip`, unless a bound is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let from_ip = held.by_ip.get(&ip).copied().unwrap_or(0);
        if held.total >= self.max || from_ip >= self.per_ip {
            return None;
        }
        held.total += 1;
        held.by_ip.insert(ip, from_ip + 1);
        Some(Permit {
            budget: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.by_ip.remove(&self.ip);
            }
        }
    }
}

/// What the open-files limit allows, less the reserve (and at least half of it).
fn default_max() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let budget = soft.saturating_sub(RESERVE).max(soft / 2);
    usize::try_from(budget).unwrap_or(usize::MAX)
}

/// Raises the open-files limit to what the system allows (the hard limit), as most servers
/// do: a class of sockets should not need `ulimit -n`. Returns the limit now in force.
pub(crate) fn raise_open_files_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_in_all_and_per_address_and_places_come_back() {
        let budget = Budget::new(Some(6), 100);
        assert_eq!(budget.per_ip(), 3, "never more than half of the whole");
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let from_a: Vec<_> = (0..3).map(|_| budget.admit(a).unwrap()).collect();
        assert!(budget.admit(a).is_none(), "a's share is taken");
        let from_b: Vec<_> = (0..3).map(|_| budget.admit(b).unwrap()).collect();
        assert!(
            budget.admit("127.0.0.4".parse().unwrap()).is_none(),
            "all taken"
        );
        drop(from_a);
        assert!(budget.admit(a).is_some());
        drop(from_b);
        assert_eq!(budget.held.lock().unwrap().total, 0);
    }
}
