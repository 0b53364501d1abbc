//! Phone numbers at rest. A number is stored as a keyed hash, for lookups
//! (one account per number, the step-up by the whole number, the scope of
//! an enrolment's idempotency key), and sealed under a data key of its own,
//! for the user's page; never in clear. The hash's key is a data key of a
//! fixed name (`lookup-phone`) in `data_keys`, wrapped by a KEK like every
//! other: made by the first server that needs it, re-wrapped by KEK
//! rotation, and useless without a KEK. Only the last four digits stay in
//! clear: they partition the gallery and are printed on receipts, as a
//! card's last four are.

use facepay_store::keys::{self as stored_keys, DataKeyRow};
use facepay_store::parties::{self, StoredPhone, User};

use super::Core;
use crate::error::Failure;
use crate::keys::LookupKey;

/// The id of the phone lookup key's row in `data_keys`.
pub const PHONE_LOOKUP_KEY_ID: &str = "lookup-phone";

/// What the lookup key hashes phone numbers as (its domain).
const PHONE_PURPOSE: &str = "phone";

/// What binds a sealed phone number to its user.
pub(crate) fn phone_aad(user_id: &str) -> String {
    format!("phone:{user_id}")
}

/// The scope of an enrolment's idempotency key: the caller is known only
/// by the number, so its keyed hash names the scope.
pub(crate) fn enrolment_scope(phone_hash: &str) -> String {
    format!("app:{phone_hash}")
}

/// The keyed hash of a normalised phone number under `key`.
pub(crate) fn hash_phone(key: &LookupKey, phone: &str) -> String {
    key.hash(PHONE_PURPOSE, phone)
}

impl Core {
    /// The keyed hash of a normalised phone number. The first call reads
    /// the key with a connection from the pool: never call it holding a
    /// transaction (SQLite's pool has one connection); take
    /// [`Core::phone_key`] first and [`hash_phone`] inside.
    pub(crate) async fn phone_hash(&self, phone: &str) -> Result<String, Failure> {
        Ok(hash_phone(self.phone_key().await?, phone))
    }

    /// A normalised phone number of `user_id` as it is stored: its keyed
    /// hash (`hash`, from [`Core::phone_hash`]) and the number sealed under
    /// a new data key, to be stored with it.
    pub(crate) fn seal_phone(
        &self,
        user_id: &str,
        phone: &str,
        hash: String,
    ) -> Result<(StoredPhone, DataKeyRow), Failure> {
        let sealed = self.envelope.seal(phone.as_bytes(), &phone_aad(user_id))?;
        let stored = StoredPhone {
            hash,
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
        };
        Ok((stored, sealed.data_key))
    }

    /// A user's phone number, opened; `None` when none is stored.
    pub(crate) async fn open_phone(
        &self,
        conn: &mut facepay_store::Connection,
        user: &User,
    ) -> Result<Option<String>, Failure> {
        let Some((key_id, nonce, ciphertext)) = user.sealed_phone() else {
            return Ok(None);
        };
        let data_key = self.data_key(conn, key_id).await?;
        let plain = self.envelope.open(
            key_id,
            data_key.as_ref(),
            nonce,
            ciphertext,
            &phone_aad(&user.id),
        )?;
        String::from_utf8(plain.to_vec()).map(Some).map_err(|_| {
            tracing::error!(user_id = %user.id, "sealed phone number is not text");
            Failure::internal()
        })
    }

    /// The key phone numbers are hashed under, read once per process.
    pub(crate) async fn phone_key(&self) -> Result<&LookupKey, Failure> {
        self.phone_key
            .get_or_try_init(|| self.load_phone_key())
            .await
    }

    /// The lookup key from its row, made first if there is none. Servers
    /// starting together may both make one; the row stored first is the
    /// one both use. A store whose users have hashes but no key lost it:
    /// a new key would make every hash unfindable, so that is an error.
    async fn load_phone_key(&self) -> Result<LookupKey, Failure> {
        let mut conn = self.conn().await?;
        let row = match stored_keys::get(&mut conn, PHONE_LOOKUP_KEY_ID).await? {
            Some(row) => row,
            None => {
                if parties::any_phone_hash(&mut conn).await? {
                    tracing::error!(
                        key_id = PHONE_LOOKUP_KEY_ID,
                        "users have phone hashes but their key is missing from data_keys"
                    );
                    return Err(Failure::internal());
                }
                let (row, _) = self.envelope.new_named_data_key(PHONE_LOOKUP_KEY_ID)?;
                stored_keys::insert_if_absent(&mut conn, &row, self.now_ms()).await?;
                stored_keys::get(&mut conn, PHONE_LOOKUP_KEY_ID)
                    .await?
                    .ok_or_else(Failure::internal)?
            }
        };
        Ok(LookupKey::new(self.envelope.data_key(&row)?))
    }
}
