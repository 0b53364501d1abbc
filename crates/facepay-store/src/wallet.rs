//! A user's cards: which one pays, and removing one for good. Every query
//! names the user, so a card id of another user's finds nothing.

use crate::parties::{METHOD_COLUMNS, PaymentMethod};
use crate::{Connection, Result};

/// The most cards one user may hold at a time.
pub const CARDS_PER_USER_MAX: i64 = 10;

/// Holds the user's row until the caller's transaction ends, so that
/// changes to one wallet (a card added, replaced or removed, a new default)
/// run one after another on PostgreSQL: each sees the last one's default,
/// count and fingerprints. Without it, two new defaults at once could both
/// clear the old one and collide on the one-default index. SQLite has one
/// writer anyway.
pub async fn lock(conn: &mut Connection, user_id: &str) -> Result<()> {
    if crate::on_postgres(conn) {
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// How many active cards the user holds.
pub async fn active_count(conn: &mut Connection, user_id: &str) -> Result<i64> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM payment_methods WHERE user_id = $1 AND status = 'active'",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    Ok(count)
}

/// The user's own active card `id`; `None` for a removed card or for a
/// card of anyone else.
pub async fn active_method(
    conn: &mut Connection,
    user_id: &str,
    id: &str,
) -> Result<Option<PaymentMethod>> {
    let sql = format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods \
         WHERE id = $1 AND user_id = $2 AND status = 'active'"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(user_id)
        .fetch_optional(conn)
        .await?)
}

/// Makes the user's active card `id` the one payments use, and no other.
/// False when the user holds no such card.
pub async fn set_default(conn: &mut Connection, user_id: &str, id: &str) -> Result<bool> {
    if active_method(&mut *conn, user_id, id).await?.is_none() {
        return Ok(false);
    }
    // One default per user is a unique index: the old one goes first.
    sqlx::query(
        "UPDATE payment_methods SET is_default = 0 \
         WHERE user_id = $1 AND is_default = 1 AND id <> $2",
    )
    .bind(user_id)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE payment_methods SET is_default = 1 WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(true)
}

/// Removes the user's active card `id` for good: the data key of the
/// core's share is destroyed first (so a copy of the sealed share, in a
/// backup say, can no longer be opened), then the share, the vault's token,
/// the fingerprint and the stored credential are cleared from the row,
/// which stays (as `deleted`) for the payments that name it. If it was the
/// default, the oldest card left becomes the default. Returns the row as
/// it was, whose vault token the caller must give back to the vault after
/// committing; `None` when the user holds no such card.
pub async fn remove(
    conn: &mut Connection,
    user_id: &str,
    id: &str,
) -> Result<Option<PaymentMethod>> {
    let Some(method) = active_method(&mut *conn, user_id, id).await? else {
        return Ok(None);
    };
    if let Some(key_id) = &method.key_id {
        crate::keys::delete(&mut *conn, key_id).await?;
    }
    sqlx::query(
        "UPDATE payment_methods SET status = 'deleted', is_default = 0, key_id = NULL, \
         nonce = NULL, ciphertext = NULL, vault_token = NULL, fingerprint = NULL, \
         credential_connector = NULL, credential_id = NULL WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    if method.is_default == 1 {
        promote_oldest(conn, user_id).await?;
    }
    Ok(Some(method))
}

/// Makes the user's oldest active card the default, if they hold any.
async fn promote_oldest(conn: &mut Connection, user_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE payment_methods SET is_default = 1 WHERE id = (\
         SELECT id FROM payment_methods WHERE user_id = $1 AND status = 'active' \
         ORDER BY created_at_ms, id LIMIT 1)",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}
