//! The user directory: finding people by name, and their public profiles with presence.

use super::Service;
use crate::error::{Error, Result};
use crate::model::{page_limit, PublicUser, UserId};

impl Service {
    /// Users whose username or display name contains `query`.
    pub async fn find_users(
        &self,
        query: &str,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Result<Vec<PublicUser>> {
        let limit = page_limit(limit)?;
        let mut found = self
            .store
            .search_users(query.trim().to_string(), limit, offset.unwrap_or(0))
            .await?;
        for u in &mut found {
            u.online = self.hub.is_online(u.id);
        }
        Ok(found)
    }

    pub async fn user(&self, id: UserId) -> Result<PublicUser> {
        let mut user = self
            .store
            .public_user(id)
            .await?
            .ok_or_else(|| Error::not_found("no such user"))?;
        user.online = self.hub.is_online(user.id);
        Ok(user)
    }
}
