//! The teacher's side of groups and accounts, for the command line: groups named by id or by
//! their unique name, members added and removed, and a class list imported at once. Changes to
//! memberships are also written to `cli_events`, from which a running server tells the sockets
//! concerned (see `Store::take_cli_events`).

use super::db::{args, Db};

use super::admin::{find_user, Admin};
use super::{members, users, written, Caps, Pending, Store};
use crate::error::{Error, Result};
use crate::hub::{Control, Event, Outbound};
use crate::model::{DisplayName, Email, GroupId, GroupName, MessageId, Role, UserId, Username};
use crate::protocol::ServerFrame;

/// A group as `group list` shows it.
pub(crate) struct GroupLine {
    pub id: GroupId,
    pub name: String,
    pub owner: Option<String>,
    pub posting: String,
    pub members: i64,
}

/// One account of a class list, already checked.
pub(crate) struct NewAccount {
    /// Its line in the class list, for errors.
    pub line: u64,
    pub username: Username,
    pub email: Email,
    pub display_name: Option<DisplayName>,
    pub hash: String,
}

impl Admin {
    /// A new group named `name`, owned by `owner` (or nobody: then only the command line
    /// manages it), with `members`.
    pub fn create_group(
        &mut self,
        name: &GroupName,
        owner: Option<&str>,
        members: &[String],
    ) -> Result<GroupId> {
        self.in_transaction(|c| {
            let owner = owner.map(|o| find_user(c, o)).transpose()?;
            let id: GroupId = c.query_row(
                "INSERT INTO conversations (kind, name, owner_id) VALUES ('group', ?1, ?2) RETURNING id",
                args![name.as_str(), owner],
                |r| r.get(0),
            )?;
            if let Some(owner) = owner {
                add(c, id, owner, Role::Owner)?;
            }
            for m in members {
                let user = find_user(c, m)?;
                if Some(user) != owner {
                    add(c, id, user, Role::Member)?;
                }
            }
            Ok(id)
        })
    }

    pub fn list_groups(&mut self) -> Result<Vec<GroupLine>> {
        self.db().query_map(
            "SELECT c.id, c.name, u.username, c.posting,
                    (SELECT count(*) FROM members m WHERE m.conversation_id = c.id)
             FROM conversations c LEFT JOIN users u ON u.id = c.owner_id
             WHERE c.kind = 'group' ORDER BY c.id",
            args![],
            |r| {
                Ok(GroupLine {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    owner: r.get(2)?,
                    posting: r.get(3)?,
                    members: r.get(4)?,
                })
            },
        )
    }

    /// The group's members as (username, role), by joining time.
    pub fn group_members(&mut self, group: &str) -> Result<Vec<(String, Role)>> {
        let c = &self.db();
        let id = find_group(c, group)?;
        Ok(members::list(c, id)?
            .into_iter()
            .map(|m| (m.username, m.role))
            .collect())
    }

    /// Adds `users` (by username) as `role`; those already in are left as they are. Returns how
    /// many were added.
    pub fn add_to_group(&mut self, group: &str, users: &[String], role: Role) -> Result<usize> {
        self.in_transaction(|c| {
            let id = find_group(c, group)?;
            let mut added = 0;
            for name in users {
                let user = find_user(c, name)?;
                if !members::is_member(c, id, user)? {
                    add(c, id, user, role)?;
                    added += 1;
                }
            }
            Ok(added)
        })
    }

    /// Removes `users` (by username); one who is not a member is an error, and so is the owner.
    pub fn remove_from_group(&mut self, group: &str, users: &[String]) -> Result<()> {
        self.in_transaction(|c| {
            let id = find_group(c, group)?;
            for name in users {
                let user = find_user(c, name)?;
                let role: Option<Role> = c.query_opt(
                    "SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2",
                    args![id, user],
                    |r| r.get(0),
                )?;
                match role {
                    None => {
                        return Err(Error::not_found(format!(
                            "{name} is not a member of {group}"
                        )))
                    }
                    Some(Role::Owner) => {
                        return Err(Error::forbidden(format!(
                            "{name} owns {group} and cannot be removed"
                        )))
                    }
                    Some(_) => {}
                }
                c.execute(
                    "DELETE FROM members WHERE conversation_id = ?1 AND user_id = ?2",
                    args![id, user],
                )?;
                note(c, "member_removed", id, user, Role::Member)?;
            }
            Ok(())
        })
    }

    /// Creates every account of a class list, and adds them to `group` (made if missing), all
    /// in one transaction: any failure creates nothing.
    pub fn import(&mut self, accounts: &[NewAccount], group: Option<&GroupName>) -> Result<()> {
        self.in_transaction(|c| {
            let group = match group {
                None => None,
                Some(name) => Some(match find_group(c, name.as_str()) {
                    Ok(id) => id,
                    Err(Error::NotFound(_)) => c.query_row(
                        "INSERT INTO conversations (kind, name) VALUES ('group', ?1) RETURNING id",
                        args![name.as_str()],
                        |r| r.get(0),
                    )?,
                    Err(e) => return Err(e),
                }),
            };
            // Every clash with an existing account is named, not just the first.
            let mut clashes = Vec::new();
            for a in accounts {
                if let Some(what) = users::taken(c, &a.username, &a.email)? {
                    clashes.push(format!(
                        "line {}: {what} {} is taken",
                        a.line,
                        match what {
                            "username" => a.username.as_str(),
                            _ => a.email.as_str(),
                        }
                    ));
                }
            }
            if !clashes.is_empty() {
                return Err(Error::conflict(format!(
                    "nothing imported: {}",
                    clashes.join("; ")
                )));
            }
            for a in accounts {
                let profile = users::insert(c, &a.username, &a.email, &a.hash)?;
                if let Some(name) = &a.display_name {
                    c.execute(
                        "UPDATE users SET display_name = ?2 WHERE id = ?1",
                        args![profile.id, name.as_str()],
                    )?;
                }
                if let Some(group) = group {
                    add(c, group, profile.id, Role::Member)?;
                }
            }
            Ok(())
        })
    }
}

/// A group by id, or by its name when that is unique.
fn find_group(conn: &Db, group: &str) -> Result<GroupId> {
    if let Ok(id) = group.parse::<i64>() {
        let found: Option<GroupId> = conn.query_opt(
            "SELECT id FROM conversations WHERE id = ?1 AND kind = 'group'",
            args![id],
            |r| r.get(0),
        )?;
        return found.ok_or_else(|| Error::not_found(format!("no group with id {id}")));
    }
    let ids: Vec<GroupId> = conn.query_map(
        "SELECT id FROM conversations WHERE kind = 'group' AND name = ?1 ORDER BY id",
        args![group],
        |r| r.get(0),
    )?;
    match ids.as_slice() {
        [] => Err(Error::not_found(format!("no group named {group:?}"))),
        [one] => Ok(*one),
        many => Err(Error::conflict(format!(
            "{} groups are named {group:?} (ids {}); give the id",
            many.len(),
            many.iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Adds a member (no caps: the operator decides) and notes it for a running server.
fn add(conn: &Db, group: GroupId, user: UserId, role: Role) -> Result<()> {
    members::insert(
        conn,
        Caps::NONE,
        group,
        user,
        role,
        members::Joining::ByOther,
    )?;
    note(conn, "member_added", group, user, role)
}

fn note(conn: &Db, kind: &str, group: GroupId, user: UserId, role: Role) -> Result<()> {
    conn.execute(
        "INSERT INTO cli_events (kind, conversation_id, user_id, role) VALUES (?1, ?2, ?3, ?4)",
        args![kind, group, user, role.as_str()],
    )?;
    Ok(())
}

impl Store {
    /// Whether the command line has changed memberships since the last look (a read, so that
    /// the common answer, no, costs no write).
    pub async fn has_cli_events(&self) -> Result<bool> {
        self.read(|c| {
            c.query_row("SELECT EXISTS (SELECT 1 FROM cli_events)", args![], |r| {
                r.get(0)
            })
        })
        .await
    }

    /// The command line's membership changes since the last look, as the events that tell the
    /// sockets concerned; they are deleted in the same write.
    pub fn take_cli_events(&self) -> Pending<usize> {
        self.write(|c| {
            let mut rows: Vec<(i64, String, GroupId, UserId, Role)> = c.query_map(
                "DELETE FROM cli_events RETURNING id, kind, conversation_id, user_id, role",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            rows.sort_by_key(|r| r.0);
            let mut events = Vec::new();
            for (_, kind, group, user, role) in &rows {
                let frame = if kind == "member_added" {
                    let since: MessageId = c.query_row(
                        "SELECT coalesce(max(id), 0) FROM messages WHERE conversation_id = ?1",
                        args![group],
                        |r| r.get(0),
                    )?;
                    ServerFrame::MemberAdded {
                        group_id: *group,
                        user_id: *user,
                        role: *role,
                        since,
                    }
                } else {
                    ServerFrame::MemberRemoved {
                        group_id: *group,
                        user_id: *user,
                    }
                };
                let event = Event::new(frame);
                events.push(Outbound::Group(*group, event.clone()));
                events.push(Outbound::User(*user, Control::Event(event)));
            }
            Ok(written(rows.len(), events))
        })
    }
}
