//! Counts in fixed windows of time (migration 0024), shared by every
//! server on the store: a limit counted here holds for all of them
//! together, where one counted in each process lets n servers take n
//! times as much.

use crate::{Connection, Result};

/// The start of the fixed window of `window_ms` that `now_ms` falls in.
pub fn window_start_ms(now_ms: i64, window_ms: i64) -> i64 {
    assert!(window_ms > 0, "a window has a length");
    now_ms - now_ms.rem_euclid(window_ms)
}

/// Takes one of `max` uses of `name` in the window starting at
/// `window_start_ms`: the start of the window it was counted in (to give
/// it back in), or `None` when they are all taken. A later window starts
/// the count again; a server whose clock is behind counts in the current
/// one. One statement, so uses taken at once on several servers never
/// pass `max` together.
pub async fn take(
    conn: &mut Connection,
    name: &str,
    window_start_ms: i64,
    max: i64,
) -> Result<Option<i64>> {
    if max < 1 {
        return Ok(None);
    }
    let counted_in = sqlx::query_scalar(
        "INSERT INTO rate_windows (name, window_start_ms, used) VALUES ($1, $2, 1) \
         ON CONFLICT (name) DO UPDATE SET \
         used = CASE WHEN rate_windows.window_start_ms < excluded.window_start_ms \
           THEN 1 ELSE rate_windows.used + 1 END, \
         window_start_ms = CASE WHEN rate_windows.window_start_ms < excluded.window_start_ms \
           THEN excluded.window_start_ms ELSE rate_windows.window_start_ms END \
         WHERE rate_windows.window_start_ms < excluded.window_start_ms \
           OR rate_windows.used < $3 \
         RETURNING window_start_ms",
    )
    .bind(name)
    .bind(window_start_ms)
    .bind(max)
    .fetch_optional(conn)
    .await?;
    Ok(counted_in)
}

/// Gives back a use of `name` counted in the window starting at
/// `window_start_ms` (as [`take`] returned it); nothing once a later
/// window has begun.
pub async fn give_back(conn: &mut Connection, name: &str, window_start_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE rate_windows SET used = used - 1 \
         WHERE name = $1 AND window_start_ms = $2 AND used > 0",
    )
    .bind(name)
    .bind(window_start_ms)
    .execute(conn)
    .await?;
    Ok(())
}
