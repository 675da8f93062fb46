//! How many of one thing each user may have running at once (searches, uploads): a place is
//! taken when the thing starts and given back when its `Slot` is dropped, whatever way it ends
//! (also when its client goes away mid-way).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::model::UserId;

pub(crate) struct Slots {
    per_user: usize,
    running: Mutex<HashMap<UserId, usize>>,
}

/// One user's place; given back when dropped.
pub(crate) struct Slot<'a> {
    slots: &'a Slots,
    user: UserId,
}

impl Slots {
    pub fn new(per_user: usize) -> Slots {
        Slots {
            per_user,
            running: Mutex::default(),
        }
    }

    /// A place for `user`, or `None` while they already hold `per_user`.
    pub fn take(&self, user: UserId) -> Option<Slot<'_>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mine = running.entry(user).or_insert(0);
        if *mine >= self.per_user {
            return None;
        }
        *mine += 1;
        Some(Slot { slots: self, user })
    }

    /// A place, or the 429 that says how many `what` one may have at a time.
    pub fn take_or_refuse(&self, user: UserId, what: &str) -> Result<Slot<'_>> {
        self.take(user).ok_or_else(|| {
            Error::limit(
                format!(
                    "at most {} {what} at a time; wait for one to finish",
                    self.per_user
                ),
                Some(1),
            )
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut running = self.slots.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_their_places_and_gets_them_back() {
        let slots = Slots::new(2);
        let (ava, mike) = (UserId(1), UserId(2));
        let first = slots.take(ava).unwrap();
        let _second = slots.take(ava).unwrap();
        assert!(slots.take(ava).is_none());
        assert!(slots.take(mike).is_some(), "others have their own");
        drop(first);
        assert!(slots.take(ava).is_some());
    }
}
