//! Presence: a user's contacts (everyone who shares a conversation with them) hear when their
//! first socket opens and their last one closes, on any instance (the hub knows the sockets
//! other instances report).

use super::Service;
use crate::hub::{Event, Outbound};
use crate::model::UserId;
use crate::protocol::ServerFrame;

impl Service {
    /// Tells everyone who shares a conversation with `user` that they came online, unless
    /// they already were, on another instance.
    pub async fn came_online(&self, user: UserId) {
        if self.hub.online_elsewhere(user) {
            return;
        }
        if let Ok((contacts, last_seen)) = self.store.came_online(user).await {
            self.announce(user, true, last_seen, contacts);
        }
    }

    /// Records when `user` was last seen and tells their contacts, unless they came back
    /// meanwhile or are still connected to another instance.
    pub async fn went_offline(&self, user: UserId) {
        if let Ok((contacts, last_seen)) = self.store.went_offline(user).await {
            if !self.hub.is_online(user) {
                self.announce(user, false, last_seen, contacts);
            }
        }
    }

    fn announce(&self, user: UserId, online: bool, last_seen: Option<String>, to: Vec<UserId>) {
        let event = Event::new(ServerFrame::Presence {
            user_id: user,
            online,
            last_seen,
        });
        for contact in to {
            self.bus.publish(Outbound::Presence(contact, event.clone()));
        }
    }
}
