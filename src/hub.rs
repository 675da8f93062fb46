//! The hub: tokio broadcast channels that carry committed events to live sockets.
//!
//! One channel per conversation carries that conversation's events to its members' sockets.
//! Each connected user has two small channels of their own: `control` for what concerns them
//! before they have a subscription (being added to a conversation, their account closing), and
//! `presence` for their contacts coming and going. They are apart because presence can come in
//! floods (a whole class logging in) and is best effort, while a missed control event costs the
//! socket; and they are small because every connected user pays for their slots.
//!
//! The hub knows sockets, not SQL: the store's writer publishes here only after a commit, in
//! commit order, so a channel carries a conversation's messages in id order. Each event is
//! serialised once, by the first socket to send it, and shared by every socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::auth::SessionKey;
use crate::model::{GroupId, MessageId, UserId};
use crate::protocol::ServerFrame;

/// A committed event: what the hub and the sockets route it by, and its text, serialised once
/// and shared by every socket that sends it. Both cross to other instances as they are (see
/// `broker`), so an event is never rebuilt from its text.
///
/// The text is made when first needed, by the first socket that sends the event, not by the
/// writer thread that built it: that was 5 % of the single writer's time per send, spent even
/// when nobody was connected to receive it.
#[derive(Debug)]
pub struct Event {
    pub route: Route,
    /// What to serialise; `None` once it came as text (from another instance).
    frame: Option<ServerFrame>,
    text: OnceLock<Utf8Bytes>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.route == other.route && self.text() == other.text()
    }
}

impl Eq for Event {}

/// The little of an event that delivery looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Route {
    /// A new message: delivered once per socket, in id order.
    Message(MessageId),
    /// Someone joined: `since` is where the new member's sockets start reading.
    MemberAdded {
        group: GroupId,
        user: UserId,
        since: MessageId,
    },
    MemberRemoved {
        group: GroupId,
        user: UserId,
    },
    GroupDeleted,
    /// Not echoed to the typist's own sockets.
    Typing(UserId),
    Other,
}

impl Route {
    fn of(frame: &ServerFrame) -> Route {
        match frame {
            ServerFrame::GroupMessage(m) => Route::Message(m.id),
            ServerFrame::MemberAdded {
                group_id,
                user_id,
                since,
                ..
            } => Route::MemberAdded {
                group: *group_id,
                user: *user_id,
                since: *since,
            },
            ServerFrame::MemberRemoved { group_id, user_id } => Route::MemberRemoved {
                group: *group_id,
                user: *user_id,
            },
            ServerFrame::GroupDeleted { .. } => Route::GroupDeleted,
            ServerFrame::Typing { user_id, .. } => Route::Typing(*user_id),
            _ => Route::Other,
        }
    }
}

impl Event {
    pub fn new(frame: ServerFrame) -> Arc<Event> {
        Arc::new(Event {
            route: Route::of(&frame),
            frame: Some(frame),
            text: OnceLock::new(),
        })
    }

    /// The frame's JSON text, made by the first caller.
    pub fn text(&self) -> &Utf8Bytes {
        self.text.get_or_init(|| {
            self.frame
                .as_ref()
                .map_or_else(Utf8Bytes::default, ServerFrame::to_text)
        })
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.route, self.text().as_str()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let (route, text) = <(Route, String)>::deserialize(d)?;
        Ok(Event {
            route,
            frame: None,
            text: OnceLock::from(Utf8Bytes::from(text)),
        })
    }
}

/// What a user's control channel carries: events about their own memberships, and orders for
/// their sockets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    Event(Arc<Event>),
    /// The account was deleted: its sockets close.
    AccountClosed,
    /// Every session before `epoch` ended (a new password, "log out everywhere"): sockets
    /// opened with older tokens close.
    SessionsEnded {
        epoch: i64,
    },
    /// One session ended (logout): the sockets opened with its tokens close.
    SessionEnded(SessionKey),
    /// This instance missed events it cannot read back (see `broker`): the sockets close
    /// with 1013 and reconnect with `since`, which the database answers.
    Reconnect,
}

/// Where a committed event goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outbound {
    Group(GroupId, Arc<Event>),
    /// A user's control channel.
    User(UserId, Control),
    /// A user's presence channel.
    Presence(UserId, Arc<Event>),
}

/// Slots of a user's control channel: membership changes are rare.
const CONTROL_CAPACITY: usize = 16;
/// Slots of a user's presence channel; a socket that falls behind skips presence events.
const PRESENCE_CAPACITY: usize = 8;

/// A socket's own receivers.
pub struct UserReceivers {
    pub control: broadcast::Receiver<Control>,
    pub presence: Receiver,
}

pub type Receiver = broadcast::Receiver<Arc<Event>>;

pub struct Hub {
    capacity: usize,
    groups: Mutex<Groups>,
    users: Mutex<HashMap<UserId, UserSlot>>,
    /// Joined by a broker: each other instance's sockets per user, as it last said, and
    /// when it was last heard (see `broker`).
    elsewhere: Mutex<HashMap<u64, Elsewhere>>,
    /// Told of every change to a user's socket count here (the broker passes it on).
    watcher: OnceLock<Box<dyn Fn(UserId, usize) + Send + Sync>>,
}

struct Elsewhere {
    sockets: HashMap<UserId, usize>,
    heard: std::time::Instant,
}

/// An instance not heard for this long is gone (it says what it has every second).
const ELSEWHERE_TTL: std::time::Duration = std::time::Duration::from_secs(4);

#[derive(Default)]
struct Groups {
    channels: HashMap<GroupId, broadcast::Sender<Arc<Event>>>,
    /// Each conversation's newest message published by this process, so a socket that
    /// subscribes late (a new member) reads the database only if it missed one.
    newest: HashMap<GroupId, MessageId>,
}

struct UserSlot {
    control: broadcast::Sender<Control>,
    presence: broadcast::Sender<Arc<Event>>,
    sockets: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated, so go on.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    pub fn new(capacity: usize) -> Hub {
        Hub {
            capacity,
            groups: Mutex::new(Groups::default()),
            users: Mutex::new(HashMap::new()),
            elsewhere: Mutex::new(HashMap::new()),
            watcher: OnceLock::new(),
        }
    }

    /// `f` hears each user's socket count here whenever it changes.
    pub fn watch_sockets(&self, f: impl Fn(UserId, usize) + Send + Sync + 'static) {
        let _ = self.watcher.set(Box::new(f));
    }

    fn changed(&self, user: UserId, sockets: usize) {
        if let Some(f) = self.watcher.get() {
            f(user, sockets);
        }
    }

    /// Every user with sockets here, and how many.
    pub fn socket_counts(&self) -> Vec<(UserId, usize)> {
        (lock(&self.users).iter())
            .map(|(u, slot)| (*u, slot.sockets))
            .collect()
    }

    /// What instance `origin` says it has: all its counts (`full`), or one user's.
    pub fn sockets_elsewhere(&self, origin: u64, counts: &[(UserId, usize)], full: bool) {
        let mut elsewhere = lock(&self.elsewhere);
        let now = std::time::Instant::now();
        elsewhere.retain(|_, e| now.duration_since(e.heard) < ELSEWHERE_TTL);
        let there = elsewhere.entry(origin).or_insert_with(|| Elsewhere {
            sockets: HashMap::new(),
            heard: now,
        });
        there.heard = now;
        if full {
            there.sockets.clear();
        }
        for &(user, n) in counts {
            match n {
                0 => there.sockets.remove(&user),
                n => there.sockets.insert(user, n),
            };
        }
    }

    /// The user's sockets on other instances still heard from.
    fn elsewhere(&self, user: UserId) -> usize {
        let now = std::time::Instant::now();
        (lock(&self.elsewhere).values())
            .filter(|e| now.duration_since(e.heard) < ELSEWHERE_TTL)
            .filter_map(|e| e.sockets.get(&user))
            .sum()
    }

    pub fn publish(&self, out: Outbound) {
        match out {
            Outbound::Group(group, event) => {
                let mut groups = lock(&self.groups);
                match event.route {
                    Route::Message(id) => {
                        groups.newest.insert(group, id);
                    }
                    Route::GroupDeleted => {
                        groups.newest.remove(&group);
                    }
                    _ => {}
                }
                if let Some(tx) = groups.channels.get(&group) {
                    if tx.send(event).is_err() {
                        // Nobody listens any more: drop the channel until someone subscribes.
                        groups.channels.remove(&group);
                    }
                }
            }
            Outbound::User(user, control) => {
                if let Some(slot) = lock(&self.users).get(&user) {
                    let _ = slot.control.send(control);
                }
            }
            Outbound::Presence(user, event) => {
                if let Some(slot) = lock(&self.users).get(&user) {
                    let _ = slot.presence.send(event);
                }
            }
        }
    }

    /// Frees a conversation's channel once nobody listens: every channel allocates its buffer
    /// up front, and a user can be in many conversations nobody else opens.
    pub fn release_group(&self, group: GroupId) {
        let mut groups = lock(&self.groups);
        if groups
            .channels
            .get(&group)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            groups.channels.remove(&group);
        }
    }

    /// A receiver of the conversation's events from now on, and the newest message published
    /// before it (by this process), if any.
    pub fn subscribe_group(&self, group: GroupId) -> (Receiver, Option<MessageId>) {
        let mut groups = lock(&self.groups);
        let newest = groups.newest.get(&group).copied();
        let rx = groups
            .channels
            .entry(group)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        (rx, newest)
    }

    /// Registers one socket of `user`, unless they already have `limit` sockets (checked and
    /// counted under one lock, so concurrent upgrades cannot pass the limit together). The
    /// returned guard unregisters it when released or dropped; its `first` is true when the
    /// user had no other socket (they just came online).
    pub fn try_connect(
        self: &Arc<Self>,
        user: UserId,
        limit: usize,
    ) -> Option<(UserReceivers, Registration)> {
        let elsewhere = self.elsewhere(user);
        let mut users = lock(&self.users);
        let here = users.get(&user).map_or(0, |slot| slot.sockets);
        if here + elsewhere >= limit {
            return None;
        }
        let slot = users.entry(user).or_insert_with(|| UserSlot {
            control: broadcast::channel(CONTROL_CAPACITY).0,
            presence: broadcast::channel(PRESENCE_CAPACITY).0,
            sockets: 0,
        });
        slot.sockets += 1;
        let receivers = UserReceivers {
            control: slot.control.subscribe(),
            presence: slot.presence.subscribe(),
        };
        let registration = Registration {
            hub: Arc::clone(self),
            user,
            first: slot.sockets == 1,
            released: false,
        };
        let sockets = slot.sockets;
        drop(users);
        self.changed(user, sockets);
        Some((receivers, registration))
    }

    /// Unregisters one socket; true when it was the user's last here.
    fn disconnect(&self, user: UserId) -> bool {
        let mut users = lock(&self.users);
        let Some(slot) = users.get_mut(&user) else {
            return false;
        };
        slot.sockets -= 1;
        let left = slot.sockets;
        if left == 0 {
            users.remove(&user);
        }
        drop(users);
        self.changed(user, left);
        left == 0
    }

    /// Whether the user has a socket here or on another instance.
    pub fn is_online(&self, user: UserId) -> bool {
        lock(&self.users).contains_key(&user) || self.elsewhere(user) > 0
    }

    /// Whether the user has a socket on another instance.
    pub fn online_elsewhere(&self, user: UserId) -> bool {
        self.elsewhere(user) > 0
    }

    /// Every user with a socket here.
    pub fn connected_users(&self) -> Vec<UserId> {
        lock(&self.users).keys().copied().collect()
    }
}

/// A registered socket; unregisters when released, or on drop however the socket task ends.
pub struct Registration {
    hub: Arc<Hub>,
    user: UserId,
    pub first: bool,
    released: bool,
}

impl Registration {
    /// Unregisters now; true when this was the user's last socket.
    pub fn release(mut self) -> bool {
        self.released = true;
        self.hub.disconnect(self.user)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.released {
            self.hub.disconnect(self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_events_reach_subscribers_in_order_and_unsubscribed_groups_cost_nothing() {
        let hub = Hub::new(8);
        let (mut rx, newest) = hub.subscribe_group(GroupId(1));
        assert_eq!(newest, None);
        let deleted = |id| {
            Event::new(ServerFrame::MessageDeleted {
                id: MessageId(id),
                group_id: GroupId(1),
            })
        };
        for id in 1..=3 {
            hub.publish(Outbound::Group(GroupId(1), deleted(id)));
        }
        hub.publish(Outbound::Group(GroupId(2), deleted(4)));
        for id in 1..=3 {
            let ev = rx.try_recv().expect("event");
            assert_eq!(*ev, *deleted(id));
        }
        assert!(rx.try_recv().is_err());
        assert!(!lock(&hub.groups).channels.contains_key(&GroupId(2)));
        hub.release_group(GroupId(1));
        assert!(
            lock(&hub.groups).channels.contains_key(&GroupId(1)),
            "still listened to"
        );
        drop(rx);
        hub.release_group(GroupId(1));
        assert!(
            !lock(&hub.groups).channels.contains_key(&GroupId(1)),
            "freed with its last listener"
        );
    }

    #[test]
    fn a_late_subscriber_learns_the_newest_message_published_before_it() {
        let hub = Hub::new(8);
        let message = crate::model::Message {
            id: MessageId(7),
            group_id: GroupId(3),
            sender_id: None,
            sender_username: None,
            content: "hi".into(),
            timestamp: String::new(),
            edited_at: None,
            deleted: false,
            client_id: None,
            attachments: Vec::new(),
            reply_to: None,
            reactions: Vec::new(),
            mentions: Vec::new(),
        };
        hub.publish(Outbound::Group(
            GroupId(3),
            Event::new(ServerFrame::GroupMessage(message)),
        ));
        assert_eq!(hub.subscribe_group(GroupId(3)).1, Some(MessageId(7)));
        assert_eq!(hub.subscribe_group(GroupId(4)).1, None);
        hub.publish(Outbound::Group(
            GroupId(3),
            Event::new(ServerFrame::GroupDeleted {
                group_id: GroupId(3),
            }),
        ));
        assert_eq!(hub.subscribe_group(GroupId(3)).1, None);
    }

    #[test]
    fn sockets_another_instance_reports_count_until_it_says_otherwise() {
        let hub = Arc::new(Hub::new(8));
        hub.sockets_elsewhere(9, &[(UserId(7), 2)], true);
        assert!(hub.is_online(UserId(7)) && hub.online_elsewhere(UserId(7)));
        assert!(
            hub.try_connect(UserId(7), 2).is_none(),
            "two elsewhere fill a cap of 2"
        );
        let (_rx, here) = hub.try_connect(UserId(7), 3).unwrap();
        assert!(here.first, "the first socket here");
        hub.sockets_elsewhere(9, &[(UserId(7), 0)], false);
        assert!(!hub.online_elsewhere(UserId(7)));
        drop(here);
        assert!(!hub.is_online(UserId(7)));
        hub.sockets_elsewhere(9, &[(UserId(8), 1)], false);
        hub.sockets_elsewhere(9, &[], true);
        assert!(!hub.is_online(UserId(8)), "a full report replaces the last");
    }

    #[test]
    fn a_user_is_online_while_any_socket_is_open() {
        let hub = Arc::new(Hub::new(8));
        let (_rx1, a) = hub.try_connect(UserId(7), usize::MAX).unwrap();
        let (_rx2, b) = hub.try_connect(UserId(7), usize::MAX).unwrap();
        assert!(a.first && !b.first);
        assert!(hub.is_online(UserId(7)));
        assert!(!a.release());
        assert!(hub.is_online(UserId(7)));
        assert!(b.release());
        assert!(!hub.is_online(UserId(7)));
        let (_rx3, c) = hub.try_connect(UserId(7), usize::MAX).unwrap();
        assert!(c.first);
        drop(c);
        assert!(!hub.is_online(UserId(7)));
    }
}
