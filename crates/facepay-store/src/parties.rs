//! Users, their templates and payment methods; merchants, stores, terminals
//! and API keys. Secrets are stored only as hashes (PINs, tokens, API keys,
//! phone numbers) or ciphertexts (templates, card numbers, phone numbers)
//! made by the caller.

use std::sync::LazyLock;

use serde::Serialize;
use sqlx::{FromRow, Row};

use crate::{Connection, Result, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: String,
    /// A keyed hash of the normalised phone number (see [`StoredPhone`]).
    pub phone_hash: Option<String>,
    pub phone_key_id: Option<String>,
    pub phone_nonce: Option<Vec<u8>>,
    pub phone_ciphertext: Option<Vec<u8>>,
    pub phone_last4: Option<String>,
    pub pin_hash: Option<String>,
    pub status: String,
    pub created_at_ms: i64,
}

impl User {
    /// The sealed phone number: its data key's id, nonce and ciphertext.
    pub fn sealed_phone(&self) -> Option<(&str, &[u8], &[u8])> {
        Some((
            self.phone_key_id.as_deref()?,
            self.phone_nonce.as_deref()?,
            self.phone_ciphertext.as_deref()?,
        ))
    }
}

/// A phone number as it is stored: never in clear. `hash` is a keyed hash
/// of the normalised number (the caller's key, held outside the database),
/// unique among users, for lookups; the number itself is sealed under the
/// data key `key_id`, for the user's own page.
#[derive(Debug, Clone)]
pub struct StoredPhone {
    pub hash: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// A new account: its phone hashed and sealed, its secrets hashed.
pub struct NewAccount<'a> {
    pub id: &'a str,
    pub phone: &'a StoredPhone,
    /// The partition key of the gallery and what a receipt shows, kept in
    /// clear as a card's last four digits are.
    pub phone_last4: &'a str,
    pub pin_hash: &'a str,
    pub token_hash: &'a str,
    pub created_at_ms: i64,
}

/// Stores a new account; `Duplicate` when its phone hash (or id, or token
/// hash) is taken.
pub async fn insert_account(conn: &mut Connection, user: &NewAccount<'_>) -> Result<()> {
    insert_accounts(conn, std::slice::from_ref(user)).await
}

/// Stores new accounts, as many rows a statement as it may bind; as
/// [`insert_account`] does one.
pub async fn insert_accounts(conn: &mut Connection, users: &[NewAccount<'_>]) -> Result<()> {
    const INSERT: &str = "INSERT INTO users (id, phone_hash, phone_key_id, phone_nonce, \
                          phone_ciphertext, phone_last4, pin_hash, token_hash, status, \
                          created_at_ms) VALUES";
    crate::insert_rows(conn, INSERT, users, |query, user| {
        (query.bind(user.id).bind(&user.phone.hash))
            .bind(&user.phone.key_id)
            .bind(&user.phone.nonce)
            .bind(&user.phone.ciphertext)
            .bind(user.phone_last4)
            .bind(user.pin_hash)
            .bind(user.token_hash)
            .bind("active")
            .bind(user.created_at_ms)
    })
    .await
    .map_err(|e| e.duplicate_as("user with this phone number"))
}

/// A user in the form of the first releases, the phone number in clear.
/// Only synthetic data (facepay-lab's simulated day) and the tests of the
/// start-up conversion write it; every server converts such rows at start
/// ([`phones_in_clear`], [`seal_phone`]). Enrolment stores
/// [`NewAccount`]s.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub phone: &'a str,
    pub phone_last4: &'a str,
    pub pin_hash: &'a str,
    pub token_hash: &'a str,
    pub created_at_ms: i64,
}

/// Stores a [`NewUser`] in the old form (see there).
pub async fn insert_user(conn: &mut Connection, user: &NewUser<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, phone, phone_last4, pin_hash, token_hash, status, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, 'active', $6)",
    )
    .bind(user.id)
    .bind(user.phone)
    .bind(user.phone_last4)
    .bind(user.pin_hash)
    .bind(user.token_hash)
    .bind(user.created_at_ms)
    .execute(conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("user with this phone number"))?;
    Ok(())
}

/// Users after `after_id` whose phone number is still in clear (written
/// before migration 0015, or by [`insert_user`]), as (id, number), in id
/// order, at most `limit`.
pub async fn phones_in_clear(
    conn: &mut Connection,
    after_id: &str,
    limit: i64,
) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, phone FROM users WHERE phone IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Replaces a user's phone in clear by its hash and sealed number, if the
/// row still holds `in_clear` (`Changed` when it does not). A hash
/// another user holds already (two accounts of one number, which only
/// rows written around the unique index could make) is left out: the
/// number is sealed and cleared all the same, and the caller says so.
pub async fn seal_phone(
    conn: &mut Connection,
    user_id: &str,
    in_clear: &str,
    phone: &StoredPhone,
) -> Result<SealedPhone> {
    let holder: Option<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE phone_hash = $1 AND id <> $2")
            .bind(&phone.hash)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    let hash = if holder.is_some() {
        None
    } else {
        Some(phone.hash.as_str())
    };
    let done = sqlx::query(
        "UPDATE users SET phone = NULL, phone_hash = $3, phone_key_id = $4, phone_nonce = $5, \
         phone_ciphertext = $6 WHERE id = $1 AND phone = $2",
    )
    .bind(user_id)
    .bind(in_clear)
    .bind(hash)
    .bind(&phone.key_id)
    .bind(&phone.nonce)
    .bind(&phone.ciphertext)
    .execute(conn)
    .await?;
    Ok(match (done.rows_affected(), holder) {
        (0, _) => SealedPhone::Changed,
        (_, None) => SealedPhone::Sealed,
        (_, Some(other)) => SealedPhone::HashTaken { by: other },
    })
}

/// What [`seal_phone`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedPhone {
    Sealed,
    /// Sealed and cleared, without a hash: user `by` holds it.
    HashTaken {
        by: String,
    },
    /// The row no longer held that number; nothing was written.
    Changed,
}

const USER_COLUMNS: &str = "id, phone_hash, phone_key_id, phone_nonce, phone_ciphertext, \
     phone_last4, pin_hash, status, created_at_ms";

pub async fn user(conn: &mut Connection, id: &str) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

/// A user and the card a payment charges (their first active card in
/// [`CARD_ORDER`]) with the wrapped data key of its share, in one
/// statement: the pay path reads all three after every face and opens
/// the share before it asks the issuer. `None` for no such user; no card
/// is `(user, None, None)`, and a card without a data key row (a legacy
/// key) has no key.
pub async fn user_with_card(conn: &mut Connection, id: &str) -> Result<Option<UserWithCard>> {
    // Written once: the pay path runs it for every payment.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let of = |table: &str, columns: &str, alias: &str| {
            columns
                .split(',')
                .map(|c| format!("{table}.{c} AS {alias}{c}", c = c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "SELECT {}, {}, {} FROM users u LEFT JOIN payment_methods m ON m.id = \
             (SELECT id FROM payment_methods WHERE user_id = u.id AND status = 'active' \
             ORDER BY {CARD_ORDER} LIMIT 1) LEFT JOIN data_keys d ON d.id = m.key_id \
             WHERE u.id = $1",
            of("m", METHOD_COLUMNS, ""),
            of("u", USER_COLUMNS, "u_"),
            of("d", crate::keys::DATA_KEY_COLUMNS, "d_"),
        )
    });
    let Some(row) = sqlx::query(SQL.as_str())
        .bind(id)
        .fetch_optional(conn)
        .await?
    else {
        return Ok(None);
    };
    let user = User {
        id: row.try_get("u_id")?,
        phone_hash: row.try_get("u_phone_hash")?,
        phone_key_id: row.try_get("u_phone_key_id")?,
        phone_nonce: row.try_get("u_phone_nonce")?,
        phone_ciphertext: row.try_get("u_phone_ciphertext")?,
        phone_last4: row.try_get("u_phone_last4")?,
        pin_hash: row.try_get("u_pin_hash")?,
        status: row.try_get("u_status")?,
        created_at_ms: row.try_get("u_created_at_ms")?,
    };
    let card = match row.try_get::<Option<String>, _>("id")? {
        Some(_) => Some(PaymentMethod::from_row(&row)?),
        None => None,
    };
    let data_key = match row.try_get::<Option<String>, _>("d_id")? {
        Some(key_id) => Some(crate::keys::DataKeyRow {
            id: key_id,
            kek_id: row.try_get("d_kek_id")?,
            nonce: row.try_get("d_nonce")?,
            wrapped: row.try_get("d_wrapped")?,
        }),
        None => None,
    };
    Ok(Some((user, card, data_key)))
}

/// What [`user_with_card`] reads: the user, their card, and its share's
/// wrapped data key.
pub type UserWithCard = (User, Option<PaymentMethod>, Option<crate::keys::DataKeyRow>);

/// Whether any user has a phone hash: the key those hashes were made with
/// must exist then.
pub async fn any_phone_hash(conn: &mut Connection) -> Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE phone_hash IS NOT NULL LIMIT 1")
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// Replaces the token of an account that is not deleted; false when there
/// is none.
pub async fn replace_token_hash(
    conn: &mut Connection,
    user_id: &str,
    token_hash: &str,
) -> Result<bool> {
    let done =
        sqlx::query("UPDATE users SET token_hash = $2 WHERE id = $1 AND status <> 'deleted'")
            .bind(user_id)
            .bind(token_hash)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn user_by_token_hash(conn: &mut Connection, token_hash: &str) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE token_hash = $1");
    Ok(sqlx::query_as(&sql)
        .bind(token_hash)
        .fetch_optional(conn)
        .await?)
}

pub async fn set_user_status(conn: &mut Connection, id: &str, status: &str) -> Result<()> {
    let done = sqlx::query("UPDATE users SET status = $2 WHERE id = $1 AND status <> 'deleted'")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

/// Erases what identifies a user: the data keys of their template, cards
/// and phone number are destroyed first (so a copy of the ciphertext, in a
/// backup say, can no longer be opened), then the template row and the card
/// ciphertexts go, and the phone (its hash, sealed number and last digits),
/// PIN hash and token are cleared. Payments stay, because merchants and the
/// ledger need them, but point at an anonymous user.
pub async fn delete_user(conn: &mut Connection, id: &str, now_ms: i64) -> Result<()> {
    // The user's row first, as a wallet change takes it: never the other
    // order, which could deadlock with one.
    crate::wallet::lock(&mut *conn, id).await?;
    sqlx::query(
        "DELETE FROM data_keys WHERE id IN (SELECT key_id FROM templates WHERE user_id = $1 \
         UNION SELECT key_id FROM payment_methods WHERE user_id = $1 AND key_id IS NOT NULL \
         UNION SELECT phone_key_id FROM users WHERE id = $1 AND phone_key_id IS NOT NULL)",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM templates WHERE user_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE payment_methods SET status = 'deleted', is_default = 0, key_id = NULL, \
         nonce = NULL, ciphertext = NULL, vault_token = NULL, fingerprint = NULL, \
         credential_connector = NULL, credential_id = NULL WHERE user_id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query(
        "UPDATE users SET status = 'deleted', phone = NULL, phone_hash = NULL, \
         phone_key_id = NULL, phone_nonce = NULL, phone_ciphertext = NULL, phone_last4 = NULL, \
         pin_hash = NULL, token_hash = NULL, deleted_at_ms = $2 \
         WHERE id = $1 AND status <> 'deleted'",
    )
    .bind(id)
    .bind(now_ms)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

/// Erases a user's face only: its data key first, then the template. The
/// account and its cards stay. False when there was no face.
pub async fn delete_template(conn: &mut Connection, user_id: &str) -> Result<bool> {
    sqlx::query(
        "DELETE FROM data_keys WHERE id IN (SELECT key_id FROM templates WHERE user_id = $1)",
    )
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query("DELETE FROM templates WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

#[derive(Debug, Clone, FromRow)]
pub struct StoredTemplate {
    pub user_id: String,
    pub model: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// The keyed transform the template was stored under (`None`: none).
    pub transform_id: Option<String>,
}

pub async fn insert_template(
    conn: &mut Connection,
    template: &StoredTemplate,
    now_ms: i64,
) -> Result<()> {
    insert_templates(conn, &[template], now_ms).await
}

/// Stores templates, as many rows a statement as it may bind.
pub async fn insert_templates(
    conn: &mut Connection,
    templates: &[&StoredTemplate],
    now_ms: i64,
) -> Result<()> {
    const INSERT: &str = "INSERT INTO templates (user_id, model, key_id, nonce, ciphertext, \
                          transform_id, created_at_ms) VALUES";
    crate::insert_rows(conn, INSERT, templates, |query, template| {
        (query.bind(&template.user_id).bind(&template.model))
            .bind(&template.key_id)
            .bind(&template.nonce)
            .bind(&template.ciphertext)
            .bind(&template.transform_id)
            .bind(now_ms)
    })
    .await
    .map_err(|e| e.duplicate_as("template"))
}

/// A template of an active user, with the phone digits that partition
/// the gallery and its wrapped data key (none for a legacy template).
#[derive(Debug, Clone, FromRow)]
pub struct ActiveTemplate {
    #[sqlx(flatten)]
    pub template: StoredTemplate,
    pub phone_last4: Option<String>,
    data_key_kek_id: Option<String>,
    data_key_nonce: Option<Vec<u8>>,
    data_key_wrapped: Option<Vec<u8>>,
}

impl ActiveTemplate {
    pub fn data_key(&self) -> Option<crate::keys::DataKeyRow> {
        Some(crate::keys::DataKeyRow {
            id: self.template.key_id.clone(),
            kek_id: self.data_key_kek_id.clone()?,
            nonce: self.data_key_nonce.clone()?,
            wrapped: self.data_key_wrapped.clone()?,
        })
    }
}

const ACTIVE_TEMPLATES: &str = "SELECT t.user_id, t.model, t.key_id, t.nonce, t.ciphertext, \
     t.transform_id, u.phone_last4, d.kek_id AS data_key_kek_id, d.nonce AS data_key_nonce, \
     d.wrapped AS data_key_wrapped FROM templates t JOIN users u ON u.id = t.user_id \
     LEFT JOIN data_keys d ON d.id = t.key_id WHERE u.status = 'active'";

/// Templates of active users after `after_user_id`, in user order, at most
/// `limit`: the in-memory gallery is built a batch at a time.
pub async fn active_templates(
    conn: &mut Connection,
    after_user_id: &str,
    limit: i64,
) -> Result<Vec<ActiveTemplate>> {
    assert!(limit > 0);
    // `u.id > $1` says again what the join implies: without it PostgreSQL
    // merge-joins users from the first one on every batch, so reading a
    // million templates took minutes instead of seconds.
    Ok(sqlx::query_as(&format!(
        "{ACTIVE_TEMPLATES} AND t.user_id > $1 AND u.id > $1 ORDER BY t.user_id LIMIT $2"
    ))
    .bind(after_user_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// One user's template, if they are active and have one.
pub async fn active_template(
    conn: &mut Connection,
    user_id: &str,
) -> Result<Option<ActiveTemplate>> {
    Ok(
        sqlx::query_as(&format!("{ACTIVE_TEMPLATES} AND t.user_id = $1"))
            .bind(user_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// How many templates of active users there are.
pub async fn active_template_count(conn: &mut Connection) -> Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM templates t JOIN users u ON u.id = t.user_id \
         WHERE u.status = 'active'",
    )
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Who paid where: (user, merchant) for every captured payment of an
/// identified user, once each.
pub async fn regulars(conn: &mut Connection) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT user_id, merchant_id FROM payments \
         WHERE user_id IS NOT NULL AND captured_minor > 0 ORDER BY user_id, merchant_id",
    )
    .fetch_all(conn)
    .await?)
}

/// Templates stored under another transform than `transform_id` (or none),
/// a batch at a time, whatever their user's status.
pub async fn templates_not_under(
    conn: &mut Connection,
    transform_id: &str,
    limit: i64,
) -> Result<Vec<StoredTemplate>> {
    Ok(sqlx::query_as(
        "SELECT user_id, model, key_id, nonce, ciphertext, transform_id FROM templates \
         WHERE transform_id IS NULL OR transform_id <> $1 ORDER BY user_id LIMIT $2",
    )
    .bind(transform_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Replaces a template's sealed vector if the row still holds the data key
/// the caller read (`old_key_id`); false when it changed meanwhile.
pub async fn replace_template(
    conn: &mut Connection,
    template: &StoredTemplate,
    old_key_id: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE templates SET key_id = $1, nonce = $2, ciphertext = $3, transform_id = $4 \
         WHERE user_id = $5 AND key_id = $6",
    )
    .bind(&template.key_id)
    .bind(&template.nonce)
    .bind(&template.ciphertext)
    .bind(&template.transform_id)
    .bind(&template.user_id)
    .bind(old_key_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many templates each transform holds (`None`: stored untransformed).
pub async fn template_count_by_transform(
    conn: &mut Connection,
) -> Result<Vec<(Option<String>, i64)>> {
    Ok(sqlx::query_as(
        "SELECT transform_id, CAST(COUNT(*) AS BIGINT) FROM templates GROUP BY transform_id \
         ORDER BY transform_id",
    )
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct PaymentMethod {
    pub id: String,
    #[serde(skip)]
    pub user_id: String,
    pub brand: String,
    pub last4: String,
    pub expiry_month: i64,
    pub expiry_year: i64,
    #[serde(skip)]
    pub key_id: Option<String>,
    #[serde(skip)]
    pub nonce: Option<Vec<u8>>,
    #[serde(skip)]
    pub ciphertext: Option<Vec<u8>>,
    /// The card vault's token for this card's other share.
    #[serde(skip)]
    pub vault_token: Option<String>,
    /// A keyed hash of the card number from the vault: the same card gives
    /// the same fingerprint, and the number cannot be found from it.
    pub fingerprint: Option<String>,
    pub status: String,
    /// The connector whose verification of the card left
    /// `credential_id` (migration 0013).
    #[serde(skip)]
    pub credential_connector: Option<String>,
    /// The stored credential later payments on the card name; no card data.
    #[serde(skip)]
    pub credential_id: Option<String>,
    /// 1 on the one active card of a user that payments use, 0 on the
    /// others (migration 0018; an integer so both engines read it alike).
    pub is_default: i64,
}

pub async fn insert_payment_method(
    conn: &mut Connection,
    method: &PaymentMethod,
    now_ms: i64,
) -> Result<()> {
    insert_payment_methods(conn, &[method], now_ms).await
}

/// Stores payment methods, as many rows a statement as it may bind.
pub async fn insert_payment_methods(
    conn: &mut Connection,
    methods: &[&PaymentMethod],
    now_ms: i64,
) -> Result<()> {
    const INSERT: &str = "INSERT INTO payment_methods (id, user_id, brand, last4, expiry_month, \
                          expiry_year, key_id, nonce, ciphertext, vault_token, fingerprint, status, \
                          created_at_ms, credential_connector, credential_id, is_default) VALUES";
    crate::insert_rows(conn, INSERT, methods, |query, method| {
        (query.bind(&method.id).bind(&method.user_id))
            .bind(&method.brand)
            .bind(&method.last4)
            .bind(method.expiry_month)
            .bind(method.expiry_year)
            .bind(&method.key_id)
            .bind(&method.nonce)
            .bind(&method.ciphertext)
            .bind(&method.vault_token)
            .bind(&method.fingerprint)
            .bind(&method.status)
            .bind(now_ms)
            .bind(&method.credential_connector)
            .bind(&method.credential_id)
            .bind(method.is_default)
    })
    .await
}

pub(crate) const METHOD_COLUMNS: &str = "id, user_id, brand, last4, expiry_month, expiry_year, key_id, \
     nonce, ciphertext, vault_token, fingerprint, status, credential_connector, credential_id, \
     is_default";

/// The order of a user's active cards: the default first (the one a payment
/// uses), then oldest first.
const CARD_ORDER: &str = "is_default DESC, created_at_ms, id";

/// A user's active cards, in [`CARD_ORDER`].
pub async fn payment_methods(conn: &mut Connection, user_id: &str) -> Result<Vec<PaymentMethod>> {
    let sql = format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods WHERE user_id = $1 AND status = 'active' \
         ORDER BY {CARD_ORDER}"
    );
    Ok(sqlx::query_as(&sql).bind(user_id).fetch_all(conn).await?)
}

pub async fn payment_method(conn: &mut Connection, id: &str) -> Result<Option<PaymentMethod>> {
    let sql = format!("SELECT {METHOD_COLUMNS} FROM payment_methods WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

pub async fn payment_method_by_vault_token(
    conn: &mut Connection,
    token: &str,
) -> Result<Option<PaymentMethod>> {
    let sql = format!("SELECT {METHOD_COLUMNS} FROM payment_methods WHERE vault_token = $1");
    Ok(sqlx::query_as(&sql)
        .bind(token)
        .fetch_optional(conn)
        .await?)
}

/// Active cards from before the vault: the whole number sealed in the core,
/// no vault token. A batch at a time.
pub async fn cards_without_vault(conn: &mut Connection, limit: i64) -> Result<Vec<PaymentMethod>> {
    let sql = format!(
        "SELECT {METHOD_COLUMNS} FROM payment_methods WHERE vault_token IS NULL \
         AND ciphertext IS NOT NULL AND status = 'active' ORDER BY id LIMIT $1"
    );
    Ok(sqlx::query_as(&sql).bind(limit).fetch_all(conn).await?)
}

/// Replaces a card's sealed number by its vault token and the core's
/// sealed share, if the row still holds what the caller read (`old_key_id`).
pub async fn set_card_share(
    conn: &mut Connection,
    method: &PaymentMethod,
    old_key_id: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE payment_methods SET key_id = $1, nonce = $2, ciphertext = $3, vault_token = $4, \
         fingerprint = $5 WHERE id = $6 AND key_id = $7 AND vault_token IS NULL",
    )
    .bind(&method.key_id)
    .bind(&method.nonce)
    .bind(&method.ciphertext)
    .bind(&method.vault_token)
    .bind(&method.fingerprint)
    .bind(&method.id)
    .bind(old_key_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub fee_bps: i64,
    pub status: String,
}

pub async fn insert_merchant(conn: &mut Connection, m: &Merchant, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO merchants (id, name, fee_bps, status, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&m.id)
    .bind(&m.name)
    .bind(m.fee_bps)
    .bind(&m.status)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct StoreRow {
    pub id: String,
    pub merchant_id: String,
    pub name: String,
    pub country: String,
    pub city: String,
    pub currency: String,
    pub latitude_e6: i64,
    pub longitude_e6: i64,
}

pub async fn insert_store(conn: &mut Connection, s: &StoreRow, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO stores (id, merchant_id, name, country, city, currency, latitude_e6, \
         longitude_e6, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&s.id)
    .bind(&s.merchant_id)
    .bind(&s.name)
    .bind(&s.country)
    .bind(&s.city)
    .bind(&s.currency)
    .bind(s.latitude_e6)
    .bind(s.longitude_e6)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn stores_of(conn: &mut Connection, merchant_id: &str) -> Result<Vec<StoreRow>> {
    Ok(sqlx::query_as(
        "SELECT id, merchant_id, name, country, city, currency, latitude_e6, longitude_e6 \
         FROM stores WHERE merchant_id = $1 ORDER BY id",
    )
    .bind(merchant_id)
    .fetch_all(conn)
    .await?)
}

pub async fn insert_terminal(
    conn: &mut Connection,
    id: &str,
    store_id: &str,
    public_key: &[u8],
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO terminals (id, store_id, name, public_key, status, created_at_ms, \
         paired_at_ms) VALUES ($1, $2, $1, $3, 'active', $4, $4)",
    )
    .bind(id)
    .bind(store_id)
    .bind(public_key)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_terminal_key(conn: &mut Connection, id: &str, public_key: &[u8]) -> Result<()> {
    let done = sqlx::query(
        "UPDATE terminals SET public_key = $2, \
         paired_at_ms = COALESCE(paired_at_ms, created_at_ms) WHERE id = $1",
    )
    .bind(id)
    .bind(public_key)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("terminal"));
    }
    Ok(())
}

pub async fn set_terminal_status(conn: &mut Connection, id: &str, status: &str) -> Result<()> {
    let done = sqlx::query("UPDATE terminals SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("terminal"));
    }
    Ok(())
}

/// A terminal with the store and merchant it belongs to: what a signed
/// terminal request needs to know about its caller.
#[derive(Debug, Clone)]
pub struct TerminalContext {
    pub terminal_id: String,
    pub public_key: Vec<u8>,
    pub terminal_status: String,
    pub store: StoreRow,
    pub merchant: Merchant,
}

pub async fn terminal_context(conn: &mut Connection, id: &str) -> Result<Option<TerminalContext>> {
    let row = sqlx::query(
        "SELECT t.id, t.public_key, \
         CASE WHEN t.retired_at_ms IS NOT NULL THEN 'retired' ELSE t.status END AS status, \
         s.id AS store_id, s.name AS store_name, s.country, \
         s.city, s.currency, s.latitude_e6, s.longitude_e6, m.id AS merchant_id, \
         m.name AS merchant_name, m.fee_bps, \
         CASE WHEN m.closed_at_ms IS NOT NULL THEN 'closed' ELSE m.status END AS merchant_status \
         FROM terminals t JOIN stores s ON s.id = t.store_id JOIN merchants m ON m.id = s.merchant_id \
         WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let merchant_id: String = row.try_get("merchant_id")?;
    Ok(Some(TerminalContext {
        terminal_id: row.try_get("id")?,
        public_key: row.try_get("public_key")?,
        terminal_status: row.try_get("status")?,
        store: StoreRow {
            id: row.try_get("store_id")?,
            merchant_id: merchant_id.clone(),
            name: row.try_get("store_name")?,
            country: row.try_get("country")?,
            city: row.try_get("city")?,
            currency: row.try_get("currency")?,
            latitude_e6: row.try_get("latitude_e6")?,
            longitude_e6: row.try_get("longitude_e6")?,
        },
        merchant: Merchant {
            id: merchant_id,
            name: row.try_get("merchant_name")?,
            fee_bps: row.try_get("fee_bps")?,
            status: row.try_get("merchant_status")?,
        },
    }))
}

pub async fn insert_api_key(
    conn: &mut Connection,
    id: &str,
    merchant_id: &str,
    key_hash: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, merchant_id, key_hash, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(merchant_id)
    .bind(key_hash)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// A merchant; `status` is `closed` once it is closed.
pub async fn merchant(conn: &mut Connection, id: &str) -> Result<Option<Merchant>> {
    Ok(sqlx::query_as(
        "SELECT id, name, fee_bps, \
         CASE WHEN closed_at_ms IS NOT NULL THEN 'closed' ELSE status END AS status \
         FROM merchants WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// A merchant's terminal as its dashboard shows it.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct TerminalStatus {
    pub terminal_id: String,
    pub store_id: String,
    pub store: String,
    /// `active`, `suspended` or `retired`.
    pub status: String,
    /// Why the fraud checks flagged it, until an operator clears it.
    pub flag_reason: Option<String>,
    pub last_payment_at_ms: Option<i64>,
}

/// A merchant's terminals, at most `TERMINALS_MAX`.
pub const TERMINALS_MAX: i64 = 1000;

pub async fn terminals_of(conn: &mut Connection, merchant_id: &str) -> Result<Vec<TerminalStatus>> {
    Ok(sqlx::query_as(
        "SELECT t.id AS terminal_id, t.store_id, s.name AS store, \
         CASE WHEN t.retired_at_ms IS NOT NULL THEN 'retired' ELSE t.status END AS status, \
         t.flag_reason, \
         (SELECT MAX(p.created_at_ms) FROM payments p WHERE p.terminal_id = t.id) \
         AS last_payment_at_ms FROM terminals t JOIN stores s ON s.id = t.store_id \
         WHERE s.merchant_id = $1 ORDER BY s.name, t.id LIMIT $2",
    )
    .bind(merchant_id)
    .bind(TERMINALS_MAX)
    .fetch_all(conn)
    .await?)
}
