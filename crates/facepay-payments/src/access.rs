//! Who calls with a bearer key, and what they may do: merchant keys with
//! a scope (`read` < `refund_capture` < `admin`), operators with a role
//! (`support` < `risk` < `admin`), and the keys' life: created and shown
//! once, listed, rotated (the old key lives on for an overlap), revoked,
//! expired. A key is stored as the SHA-256 of its 256-bit secret and its
//! first characters, never the secret; every change is audited.

use std::sync::Arc;

use facepay_store::access::{self, KeyKind, KeyRow, NewKey};
use facepay_store::audit;
use facepay_store::parties::{self, Merchant};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::{Claimed, Core, Reply, Request, commit, derived_id, parse_json};
use crate::error::Failure;
use crate::keys::{self, KeyError};

/// A rotated key stays valid this long by default, beside its successor.
pub const ROTATION_OVERLAP_S_DEFAULT: i64 = 86_400;
pub const ROTATION_OVERLAP_S_MIN: i64 = 60;
pub const ROTATION_OVERLAP_S_MAX: i64 = 7 * 86_400;
/// The furthest expiry a key may be given.
const EXPIRY_MS_MAX: i64 = 5 * 365 * 86_400_000;
/// Characters of a secret kept to tell keys apart: the prefix and 8 hex.
const PREFIX_CHARS: usize = 12;

/// What a merchant key may do; each scope includes those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MerchantScope {
    /// Read payments, reports, terminals and loyalty.
    Read,
    /// Also capture, void and refund.
    RefundCapture,
    /// Everything, keys and loyalty changes included.
    Admin,
}

/// What an operator may do; each role includes those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    /// Read only.
    Support,
    /// Also decide claims, settle reviews, keep the blocklist.
    Risk,
    /// Everything: onboarding, operators and keys, hub windows.
    Admin,
}

impl MerchantScope {
    pub fn as_str(self) -> &'static str {
        match self {
            MerchantScope::Read => "read",
            MerchantScope::RefundCapture => "refund_capture",
            MerchantScope::Admin => "admin",
        }
    }
}

impl OperatorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Support => "support",
            OperatorRole::Risk => "risk",
            OperatorRole::Admin => "admin",
        }
    }
}

fn stored_enum<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Failure> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        tracing::error!(text, "a stored scope or role the API does not name");
        Failure::internal()
    })
}

/// Someone holding an operator key; names are unique.
#[derive(Debug, Clone)]
pub struct Operator {
    pub name: String,
    pub role: OperatorRole,
    /// The key this request came with.
    pub key_id: String,
}

impl Operator {
    /// Who the audit log says acted.
    pub fn actor(&self) -> String {
        format!("operator:{}", self.name)
    }

    /// An idempotency scope per operator and per thing acted on, so one key
    /// reused on another claim or payment is not taken for a retry.
    pub(crate) fn scope(&self, what: &str, id: &str) -> String {
        format!("operator:{}:{what}:{id}", self.name)
    }
}

/// A merchant by one of its keys.
#[derive(Debug, Clone)]
pub struct MerchantCaller {
    pub merchant: Merchant,
    pub key_id: String,
    pub scope: MerchantScope,
}

impl MerchantCaller {
    fn actor(&self) -> String {
        format!("merchant:{}:key:{}", self.merchant.id, self.key_id)
    }
}

/// A key as lists show it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    /// The merchant id, or the operator's name.
    pub owner: String,
    /// A merchant key's scope (`read`, `refund_capture`, `admin`), or for
    /// an operator's key the operator's role (`support`, `risk`, `admin`).
    pub scope: String,
    pub label: Option<String>,
    /// The secret's first characters, to tell keys apart.
    pub prefix: Option<String>,
    pub state: KeyState,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    /// The key a rotation made to replace this one.
    pub replaced_by: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

impl KeyView {
    fn of(row: KeyRow, now_ms: i64) -> Self {
        let state = if row.revoked_at_ms.is_some() {
            KeyState::Revoked
        } else if row.expires_at_ms.is_some_and(|at| at <= now_ms) {
            KeyState::Expired
        } else {
            KeyState::Active
        };
        Self {
            id: row.id,
            owner: row.owner,
            scope: row.scope,
            label: row.label,
            prefix: row.prefix,
            state,
            created_at_ms: row.created_at_ms,
            expires_at_ms: row.expires_at_ms,
            revoked_at_ms: row.revoked_at_ms,
            replaced_by: row.replaced_by,
        }
    }
}

/// A key just made: its secret is shown here once and stored nowhere.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewKeyView {
    /// The key's id (`key_...`), to list, rotate or revoke it.
    pub id: String,
    /// Send as `Authorization: Bearer <secret>`. Shown once: a replay of
    /// the request that made it gets a new secret, which replaces it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    pub scope: String,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// A rotation: the new key, and the old one with the end of its overlap.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Rotation {
    pub key: NewKeyView,
    /// The old key's id.
    pub previous_id: String,
    /// When the old key stops working.
    pub previous_expires_at_ms: i64,
}

/// `POST /v1/merchant/keys` and `POST /v1/operator/merchants/{id}/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantKeyRequest {
    pub scope: MerchantScope,
    /// 1 to 100 characters, not all blank.
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 100
    )]
    pub label: Option<String>,
    /// Unix time in milliseconds, in the future and within five years.
    pub expires_at_ms: Option<i64>,
}

/// `POST /v1/operator/keys`: another key for an operator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorKeyRequest {
    /// The operator's name.
    #[schema(pattern = r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub operator: String,
    #[schema(
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$",
        max_length = 100
    )]
    pub label: Option<String>,
    /// Unix time in milliseconds, in the future and within five years.
    pub expires_at_ms: Option<i64>,
}

/// `POST /v1/operator/operators`: a new operator and their first key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorRequest {
    /// Lower-case letters, digits, `_`, `.` and `-`; unique.
    #[schema(pattern = r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub name: String,
    pub role: OperatorRole,
    /// The first key's expiry: Unix time in milliseconds, in the future
    /// and within five years.
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    pub name: String,
    pub role: OperatorRole,
    pub created_at_ms: i64,
}

/// A new operator and their first key, shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewOperator {
    pub operator: OperatorView,
    pub key: NewKeyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorList {
    pub operators: Vec<OperatorView>,
}

/// `POST .../keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old key keeps working beside the new one, 60 s to
    /// 7 days; a day when absent.
    #[schema(minimum = 60, maximum = 604800)]
    pub overlap_s: Option<i64>,
}

fn check_name(name: &str) -> Result<(), Failure> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && b"_.-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(Failure::unprocessable(
            "operator_name_invalid",
            "an operator's name is 1 to 64 lower-case letters, digits, `_`, `.` or `-`",
        ))
    }
}

fn check_label(label: Option<&str>) -> Result<Option<String>, Failure> {
    let Some(label) = label else { return Ok(None) };
    let trimmed = label.trim();
    if trimmed.is_empty() || label.chars().count() > 100 {
        return Err(Failure::unprocessable(
            "text_invalid",
            "a label is 1 to 100 characters, not all blank",
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

fn check_expiry(expires_at_ms: Option<i64>, now_ms: i64) -> Result<(), Failure> {
    match expires_at_ms {
        Some(at) if at <= now_ms || at > now_ms + EXPIRY_MS_MAX => Err(Failure::unprocessable(
            "expiry_invalid",
            "a key's expiry must be in the future and within five years",
        )),
        _ => Ok(()),
    }
}

/// A new secret for `kind`, its hash and its prefix.
fn new_secret(kind: KeyKind) -> Result<(String, String, String), KeyError> {
    let (secret, hash) = keys::new_secret(match kind {
        KeyKind::Merchant => "fpk",
        KeyKind::Operator => "fpo",
    })?;
    let prefix = secret.chars().take(PREFIX_CHARS).collect();
    Ok((secret, hash, prefix))
}

/// The first admin operator of a deployment and their key, written
/// straight into `store`: no key exists yet to call the API with
/// (`facepay operator init`). The answer holds the secret, shown once.
pub async fn init_admin_operator(
    store: &facepay_store::Store,
    name: &str,
    now_ms: i64,
) -> Result<NewOperator, Failure> {
    check_name(name)?;
    let key_id = facepay_store::ids::new("key")?;
    let (secret, hash, prefix) = new_secret(KeyKind::Operator)?;
    let role = OperatorRole::Admin;
    let row = NewKey {
        id: &key_id,
        owner: name,
        scope: role.as_str(),
        label: Some("first key"),
        prefix: Some(&prefix),
        key_hash: &hash,
        expires_at_ms: None,
        created_at_ms: now_ms,
    };
    let mut tx = store.begin().await?;
    insert_operator_with_key(&mut tx, &row).await?;
    let subject = format!("{name}:{}", role.as_str());
    audit::append(&mut tx, now_ms, "cli", "operator_created", &subject).await?;
    commit(tx).await?;
    Ok(NewOperator {
        operator: OperatorView {
            name: name.to_owned(),
            role,
            created_at_ms: now_ms,
        },
        key: NewKeyView {
            id: key_id,
            secret,
            scope: role.as_str().to_owned(),
            expires_at_ms: None,
        },
    })
}

/// An operator named `key.owner` with the role `key.scope`, and that key,
/// in the caller's transaction; a name taken already is `operator_exists`.
async fn insert_operator_with_key(
    tx: &mut facepay_store::Transaction,
    key: &NewKey<'_>,
) -> Result<(), Failure> {
    access::insert_operator(&mut *tx, key.owner, key.scope, key.created_at_ms)
        .await
        .map_err(|e| match e {
            facepay_store::StoreError::Duplicate(_) => {
                Failure::conflict("operator_exists", "an operator has this name already")
            }
            other => other.into(),
        })?;
    access::insert_key(&mut *tx, KeyKind::Operator, key).await?;
    Ok(())
}

/// The key-related answers a replay changes: a secret made then.
#[derive(Clone, Copy)]
enum Shown {
    Key,
    Operator,
    Rotation,
}

pub struct Access {
    core: Arc<Core>,
}

impl Access {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Refuses a revoked or expired key with its own code.
    fn check_live(row: &KeyRow, now_ms: i64) -> Result<(), Failure> {
        if row.revoked_at_ms.is_some() {
            return Err(Failure::unauthorised(
                "key_revoked",
                "this key was revoked; use another key",
            ));
        }
        if row.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(Failure::unauthorised(
                "key_expired",
                "this key has expired; use its successor or make a new key",
            ));
        }
        Ok(())
    }

    /// The merchant a key belongs to, with the key's scope. A suspended or
    /// closed merchant is refused (403).
    pub async fn merchant(&self, secret: &str) -> Result<MerchantCaller, Failure> {
        let mut conn = self.core.conn().await?;
        let hash = keys::secret_hash(secret);
        let row = access::key_by_hash(&mut conn, KeyKind::Merchant, &hash)
            .await?
            .ok_or_else(|| Failure::unauthorised("api_key_invalid", "this API key is not valid"))?;
        Self::check_live(&row, self.core.now_ms())?;
        let merchant = parties::merchant(&mut conn, &row.owner)
            .await?
            .ok_or_else(|| Failure::unauthorised("api_key_invalid", "this API key is not valid"))?;
        check_merchant_active(&merchant.status)?;
        Ok(MerchantCaller {
            merchant,
            key_id: row.id,
            scope: stored_enum(&row.scope)?,
        })
    }

    /// The operator a key belongs to, with their role.
    pub async fn operator(&self, secret: &str) -> Result<Operator, Failure> {
        let mut conn = self.core.conn().await?;
        let hash = keys::secret_hash(secret);
        let row = access::key_by_hash(&mut conn, KeyKind::Operator, &hash)
            .await?
            .ok_or_else(|| {
                Failure::unauthorised("operator_key_invalid", "this operator key is not valid")
            })?;
        Self::check_live(&row, self.core.now_ms())?;
        Ok(Operator {
            role: stored_enum(&row.scope)?,
            name: row.owner,
            key_id: row.id,
        })
    }
}

/// Refuses a merchant that is not active: 403 `merchant_suspended` or
/// `merchant_closed`.
pub fn check_merchant_active(status: &str) -> Result<(), Failure> {
    match status {
        "active" => Ok(()),
        "closed" => Err(Failure::forbidden(
            "merchant_closed",
            "this merchant is closed",
        )),
        _ => Err(Failure::forbidden(
            "merchant_suspended",
            "this merchant is suspended",
        )),
    }
}

/// Who manages a set of keys, as the audit log and idempotency see them.
pub enum Manager<'a> {
    Merchant(&'a MerchantCaller),
    Operator(&'a Operator),
}

impl Manager<'_> {
    fn actor(&self) -> String {
        match self {
            Manager::Merchant(m) => m.actor(),
            Manager::Operator(o) => o.actor(),
        }
    }

    fn scope(&self, what: &str, id: &str) -> String {
        match self {
            Manager::Merchant(m) => format!("merchant:{}:{what}:{id}", m.merchant.id),
            Manager::Operator(o) => o.scope(what, id),
        }
    }

    /// The key this request came with: it may not revoke itself.
    fn key_id(&self) -> &str {
        match self {
            Manager::Merchant(m) => &m.key_id,
            Manager::Operator(o) => &o.key_id,
        }
    }
}

impl Access {
    /// `POST .../keys` for a merchant: a new key with its scope.
    pub async fn create_merchant_key(
        &self,
        by: Manager<'_>,
        merchant_id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: MerchantKeyRequest = parse_json(body)?;
        let label = check_label(request.label.as_deref())?;
        check_expiry(request.expires_at_ms, self.core.now_ms())?;
        let scope = by.scope("keys", merchant_id);
        let id = derived_id("key", &scope, key);
        let by = &by;
        let work = |claimed| async move {
            let mut conn = self.core.conn().await?;
            let merchant = parties::merchant(&mut conn, merchant_id)
                .await?
                .ok_or_else(|| Failure::not_found("merchant"))?;
            if merchant.status == "closed" {
                return Err(Failure::conflict(
                    "merchant_closed",
                    "this merchant is closed",
                ));
            }
            drop(conn);
            let new = Made {
                kind: KeyKind::Merchant,
                id: &id,
                owner: merchant_id,
                scope: request.scope.as_str(),
                label: label.as_deref(),
                expires_at_ms: request.expires_at_ms,
            };
            self.insert_key(by, &new, "merchant_key_created", claimed)
                .await
        };
        let request = Request::new("create_merchant_key", merchant_id, body);
        self.core
            .idempotent_or(scope.clone(), key, request, work, |earlier| {
                self.replay(KeyKind::Merchant, Shown::Key, earlier)
            })
            .await
    }

    /// `POST /v1/operator/keys`: another key for an operator.
    pub async fn create_operator_key(
        &self,
        by: &Operator,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: OperatorKeyRequest = parse_json(body)?;
        check_name(&request.operator)?;
        let label = check_label(request.label.as_deref())?;
        check_expiry(request.expires_at_ms, self.core.now_ms())?;
        let by = Manager::Operator(by);
        let scope = by.scope("keys", &request.operator);
        let id = derived_id("key", &scope, key);
        let by = &by;
        let work = |claimed| async move {
            let mut conn = self.core.conn().await?;
            let operator = access::operator(&mut conn, &request.operator)
                .await?
                .ok_or_else(|| Failure::not_found("operator"))?;
            drop(conn);
            let new = Made {
                kind: KeyKind::Operator,
                id: &id,
                owner: &operator.name,
                scope: &operator.role,
                label: label.as_deref(),
                expires_at_ms: request.expires_at_ms,
            };
            self.insert_key(by, &new, "operator_key_created", claimed)
                .await
        };
        let request = Request::new("create_operator_key", "", body);
        self.core
            .idempotent_or(scope.clone(), key, request, work, |earlier| {
                self.replay(KeyKind::Operator, Shown::Key, earlier)
            })
            .await
    }

    /// Writes a new key, its audit entry and the answer in one transaction.
    async fn insert_key(
        &self,
        by: &Manager<'_>,
        new: &Made<'_>,
        action: &str,
        claimed: Claimed,
    ) -> Result<Reply, Failure> {
        let now = self.core.now_ms();
        let (secret, hash, prefix) = new_secret(new.kind)?;
        let mut tx = self.core.begin().await?;
        let row = NewKey {
            id: new.id,
            owner: new.owner,
            scope: new.scope,
            label: new.label,
            prefix: Some(&prefix),
            key_hash: &hash,
            expires_at_ms: new.expires_at_ms,
            created_at_ms: now,
        };
        if !access::insert_key_within_limit(&mut tx, new.kind, &row).await? {
            return Err(too_many_keys());
        }
        audit::append(&mut tx, now, &by.actor(), action, new.id).await?;
        let mut view = NewKeyView {
            id: new.id.to_owned(),
            secret: String::new(),
            scope: new.scope.to_owned(),
            expires_at_ms: new.expires_at_ms,
        };
        // Kept without its secret; the caller sees it once.
        let kept = Reply::json(201, &view)?;
        claimed.complete(&mut tx, &kept).await?;
        commit(tx).await?;
        view.secret = secret;
        Reply::json(201, &view)
    }
}

fn too_many_keys() -> Failure {
    Failure::conflict(
        "too_many_keys",
        format!(
            "{} live keys at most; revoke one first (revoked and rotated keys do not count)",
            access::KEYS_PER_OWNER_MAX
        ),
    )
}

/// A key about to be made.
struct Made<'a> {
    kind: KeyKind,
    id: &'a str,
    owner: &'a str,
    scope: &'a str,
    label: Option<&'a str>,
    expires_at_ms: Option<i64>,
}

impl Access {
    /// An owner's keys (every operator's for `KeyKind::Operator` and no
    /// owner), oldest first. An unknown merchant is 404.
    pub async fn list_keys(&self, kind: KeyKind, owner: Option<&str>) -> Result<Reply, Failure> {
        let now = self.core.now_ms();
        let mut conn = self.core.conn().await?;
        if let (KeyKind::Merchant, Some(id)) = (kind, owner)
            && parties::merchant(&mut conn, id).await?.is_none()
        {
            return Err(Failure::new(404, "unknown_merchant", "no such merchant"));
        }
        let rows = access::keys(&mut conn, kind, owner).await?;
        let keys = rows.into_iter().map(|r| KeyView::of(r, now)).collect();
        Reply::json(200, &KeyList { keys })
    }

    /// The key `id` of `owner` (any owner's for `None`), or 404.
    async fn owned_key(
        &self,
        kind: KeyKind,
        owner: Option<&str>,
        id: &str,
    ) -> Result<KeyRow, Failure> {
        let mut conn = self.core.conn().await?;
        access::key(&mut conn, kind, id)
            .await?
            .filter(|k| owner.is_none_or(|o| o == k.owner))
            .ok_or_else(|| Failure::not_found("key"))
    }

    /// Revokes a key at once. Revoking one already revoked answers it as it
    /// is; the key a request comes with cannot revoke itself (409
    /// `key_in_use`: rotate it, or revoke it with another key).
    pub async fn revoke_key(
        &self,
        by: Manager<'_>,
        kind: KeyKind,
        owner: Option<&str>,
        id: &str,
    ) -> Result<Reply, Failure> {
        let row = self.owned_key(kind, owner, id).await?;
        if row.id == by.key_id() {
            return Err(Failure::conflict(
                "key_in_use",
                "a key cannot revoke itself: revoke it with another key, or rotate it",
            ));
        }
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        if access::revoke_key(&mut tx, kind, id, now).await? {
            let action = match kind {
                KeyKind::Merchant => "merchant_key_revoked",
                KeyKind::Operator => "operator_key_revoked",
            };
            audit::append(&mut tx, now, &by.actor(), action, id).await?;
        }
        commit(tx).await?;
        let row = self.owned_key(kind, owner, id).await?;
        Reply::json(200, &KeyView::of(row, now))
    }

    /// Makes a successor with the same owner, scope and label; the old key
    /// keeps working for the overlap, then expires. A key revoked, expired
    /// or rotated already is refused (409 `key_not_rotatable`).
    pub async fn rotate_key(
        &self,
        by: Manager<'_>,
        kind: KeyKind,
        owner: Option<&str>,
        id: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: RotateRequest = if body.is_empty() {
            RotateRequest::default()
        } else {
            // `null` asks for the defaults, as an empty body does.
            parse_json::<Option<RotateRequest>>(body)?.unwrap_or_default()
        };
        let overlap_s = request.overlap_s.unwrap_or(ROTATION_OVERLAP_S_DEFAULT);
        if !(ROTATION_OVERLAP_S_MIN..=ROTATION_OVERLAP_S_MAX).contains(&overlap_s) {
            return Err(Failure::unprocessable(
                "overlap_invalid",
                format!(
                    "the overlap is {ROTATION_OVERLAP_S_MIN} to {ROTATION_OVERLAP_S_MAX} seconds"
                ),
            ));
        }
        let scope = by.scope("rotate", id);
        let new_id = derived_id("key", &scope, key);
        let by = &by;
        let work = |claimed| async move {
            let old = self.owned_key(kind, owner, id).await?;
            self.rotate(by, kind, &old, &new_id, overlap_s, claimed)
                .await
        };
        let request = Request::new("rotate_key", id, body);
        self.core
            .idempotent_or(scope.clone(), key, request, work, |earlier| {
                self.replay(kind, Shown::Rotation, earlier)
            })
            .await
    }

    async fn rotate(
        &self,
        by: &Manager<'_>,
        kind: KeyKind,
        old: &KeyRow,
        new_id: &str,
        overlap_s: i64,
        claimed: Claimed,
    ) -> Result<Reply, Failure> {
        let now = self.core.now_ms();
        let not_rotatable = || {
            Failure::conflict(
                "key_not_rotatable",
                "only a live key that was not rotated before can be rotated",
            )
        };
        if Self::check_live(old, now).is_err() || old.replaced_by.is_some() {
            return Err(not_rotatable());
        }
        let ends_at_ms = now + overlap_s * 1000;
        let (secret, hash, prefix) = new_secret(kind)?;
        let mut tx = self.core.begin().await?;
        if !access::end_rotated_key(&mut tx, kind, &old.id, ends_at_ms, new_id).await? {
            return Err(not_rotatable());
        }
        let row = NewKey {
            id: new_id,
            owner: &old.owner,
            scope: &old.scope,
            label: old.label.as_deref(),
            prefix: Some(&prefix),
            key_hash: &hash,
            expires_at_ms: None,
            created_at_ms: now,
        };
        // The old key, replaced now, no longer counts: only an owner over
        // the limit already (keys made before it) is refused.
        if !access::insert_key_within_limit(&mut tx, kind, &row).await? {
            return Err(too_many_keys());
        }
        let action = match kind {
            KeyKind::Merchant => "merchant_key_rotated",
            KeyKind::Operator => "operator_key_rotated",
        };
        audit::append(
            &mut tx,
            now,
            &by.actor(),
            action,
            &format!("{}>{new_id}", old.id),
        )
        .await?;
        let mut rotation = Rotation {
            key: NewKeyView {
                id: new_id.to_owned(),
                secret: String::new(),
                scope: old.scope.clone(),
                expires_at_ms: None,
            },
            previous_id: old.id.clone(),
            previous_expires_at_ms: old.expires_at_ms.map_or(ends_at_ms, |e| e.min(ends_at_ms)),
        };
        claimed
            .complete(&mut tx, &Reply::json(201, &rotation)?)
            .await?;
        commit(tx).await?;
        rotation.key.secret = secret;
        Reply::json(201, &rotation)
    }

    /// `POST /v1/operator/operators`: a new operator and their first key.
    pub async fn create_operator(
        &self,
        by: &Operator,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: OperatorRequest = parse_json(body)?;
        check_name(&request.name)?;
        check_expiry(request.expires_at_ms, self.core.now_ms())?;
        let scope = by.scope("operators", "");
        let key_id = derived_id("key", &scope, key);
        let work = |claimed: Claimed| async move {
            let now = self.core.now_ms();
            let role = request.role.as_str().to_owned();
            let (secret, hash, prefix) = new_secret(KeyKind::Operator)?;
            let row = NewKey {
                id: &key_id,
                owner: &request.name,
                scope: &role,
                label: None,
                prefix: Some(&prefix),
                key_hash: &hash,
                expires_at_ms: request.expires_at_ms,
                created_at_ms: now,
            };
            let mut tx = self.core.begin().await?;
            insert_operator_with_key(&mut tx, &row).await?;
            let subject = format!("{}:{role}", request.name);
            audit::append(&mut tx, now, &by.actor(), "operator_created", &subject).await?;
            let mut answer = NewOperator {
                operator: OperatorView {
                    name: request.name.clone(),
                    role: request.role,
                    created_at_ms: now,
                },
                key: NewKeyView {
                    id: key_id.clone(),
                    secret: String::new(),
                    scope: role,
                    expires_at_ms: request.expires_at_ms,
                },
            };
            claimed
                .complete(&mut tx, &Reply::json(201, &answer)?)
                .await?;
            commit(tx).await?;
            answer.key.secret = secret;
            Reply::json(201, &answer)
        };
        let request = Request::new("create_operator", "", body);
        self.core
            .idempotent_or(scope.clone(), key, request, work, |earlier| {
                self.replay(KeyKind::Operator, Shown::Operator, earlier)
            })
            .await
    }

    pub async fn list_operators(&self) -> Result<Reply, Failure> {
        let mut conn = self.core.conn().await?;
        let operators = access::operators(&mut conn)
            .await?
            .into_iter()
            .map(|o| {
                Ok(OperatorView {
                    role: stored_enum(&o.role)?,
                    name: o.name,
                    created_at_ms: o.created_at_ms,
                })
            })
            .collect::<Result<_, Failure>>()?;
        Reply::json(200, &OperatorList { operators })
    }

    /// A replayed creation or rotation: the answer kept, with a secret
    /// made now that replaces the first (which was shown once and is
    /// stored nowhere). A key revoked since answers 409 `key_revoked`.
    async fn replay(&self, kind: KeyKind, shown: Shown, earlier: Reply) -> Result<Reply, Failure> {
        if earlier.status != 201 {
            return Ok(earlier);
        }
        let mut answer: serde_json::Value = serde_json::from_str(&earlier.body).map_err(|e| {
            tracing::error!(error = %e, "a kept key answer is not JSON");
            Failure::internal()
        })?;
        let at = match shown {
            Shown::Key => "",
            Shown::Operator | Shown::Rotation => "/key",
        };
        let id = answer
            .pointer(&format!("{at}/id"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(Failure::internal)?;
        let (secret, hash, prefix) = new_secret(kind)?;
        let mut conn = self.core.conn().await?;
        if !access::replace_secret(&mut conn, kind, &id, &hash, &prefix).await? {
            return Err(Failure::conflict(
                "key_revoked",
                "the key this request made was revoked since",
            ));
        }
        if let Some(slot) = answer.pointer_mut(at) {
            slot["secret"] = serde_json::Value::String(secret);
        }
        Reply::json(201, &answer)
    }
}
