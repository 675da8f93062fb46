//! Blocking: whom the caller has blocked cannot add them to a group, nor open or write a
//! direct chat with them.

use super::conversations::other_user;
use super::Service;
use crate::auth::AuthUser;
use crate::error::Result;
use crate::model::{PublicUser, UserId};

impl Service {
    pub async fn block(&self, user: AuthUser, other: UserId) -> Result<()> {
        let other = other_user(user, other)?;
        self.store.block(user.id, other).await
    }

    pub async fn unblock(&self, user: AuthUser, other: UserId) -> Result<()> {
        self.store.unblock(user.id, other).await
    }

    pub async fn blocks(&self, user: AuthUser) -> Result<Vec<PublicUser>> {
        let mut blocked = self.store.blocked_by(user.id).await?;
        for u in &mut blocked {
            u.online = self.hub.is_online(u.id);
        }
        Ok(blocked)
    }
}
