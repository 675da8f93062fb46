//! The log of committed batches that joins instances (see `broker`; PostgreSQL only): the
//! writer numbers and stores each batch (`next_batch`, `log_batch`), and an instance reads
//! back the batches the broker did not bring it.

use super::db::{args, Db};
use super::Store;
use crate::error::Result;

/// How long a batch stays readable: longer than any broker outage an instance rides out
/// without asking its sockets to reconnect.
const KEPT_MINUTES: i64 = 10;

impl Store {
    /// The database's name on the broker, and the newest batch committed.
    pub async fn cluster_head(&self) -> Result<(String, i64)> {
        self.read(|c| {
            c.query_row(
                "SELECT name, seq FROM cluster_head WHERE id = 1",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
    }

    /// Up to `limit` batches after `after`, in order.
    pub async fn batches_after(&self, after: i64, limit: i64) -> Result<Vec<(i64, String)>> {
        self.read(move |c| {
            c.query_map(
                "SELECT seq, body FROM cluster_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                args![after, limit],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
    }

    /// Forgets batches older than the log keeps (the newest always stays).
    pub async fn prune_batches(&self) -> Result<usize> {
        self.read(|c| {
            let sql = format!(
                "DELETE FROM cluster_log WHERE at < now() - interval '{KEPT_MINUTES} minutes'
                   AND seq < (SELECT seq FROM cluster_head WHERE id = 1)"
            );
            c.execute(&sql, args![])
        })
        .await
    }
}

/// The next batch's number. Taken first in the batch's transaction: the row stays locked
/// until the commit, so the batches of all instances commit one after another, in number
/// order, and the ids they hand out follow commit order.
pub(super) fn next_batch(conn: &Db) -> Result<i64> {
    conn.query_row(
        "UPDATE cluster_head SET seq = seq + 1 WHERE id = 1 RETURNING seq",
        args![],
        |r| r.get(0),
    )
}

/// Stores a batch's events under its number, before the commit.
pub(super) fn log_batch(conn: &Db, seq: i64, body: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO cluster_log (seq, body) VALUES (?1, ?2)",
        args![seq, body],
    )?;
    Ok(())
}
