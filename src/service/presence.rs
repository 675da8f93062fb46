//! Presence: a user's contacts (everyone who shares a conversation with them) hear when their
//! first socket opens and their last one closes.

use super::Service;
use crate::hub::{Event, Outbound};
use crate::model::UserId;
use crate::protocol::ServerFrame;

impl Service {
    /// Tells everyone who shares a conversation with `user` that they came online.
    pub async fn came_online(&self, user: UserId) {
        if let Ok((contacts, last_seen)) = self.store.came_online(user).await {
            self.announce(user, true, last_seen, contacts);
        }
    }

    /// Records when `user` was last seen and tells their contacts, unless they came back
    /// meanwhile.
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
