//! Enrolment: a phone, a PIN, a selfie burst and a card (verified once
//! with the issuer by its security code) make an account;
//! a face alone comes back to an account that has none. Each runs in named
//! stages: check the request, analyse the burst and seal its template,
//! seal the account's secrets and put the card in the vault, then store
//! everything and the answer in one transaction.

use facepay_connector::card;
use facepay_face::QualityPolicy;
use facepay_face::liveness::LivenessDecision;
use facepay_store::changes::{self, Kind};
use facepay_store::keys::DataKeyRow;
use facepay_store::parties::{self, PaymentMethod, StoredPhone, StoredTemplate};
use facepay_store::{StoreError, Transaction, audit, ids};
use tokio::sync::MutexGuard;
use zeroize::Zeroizing;

use super::{Identity, Lane};
use crate::api::{
    CardInput, EnrolRequest, EnrolResponse, FaceEnrolled, FaceRequest, PaymentMethodView,
};
use crate::core::{
    CardToVault, Claimed, Reply, Request, commit, decode_frames, enrolment_scope, normalise_phone,
    parse_json, template_aad, vector_to_bytes,
};
use crate::error::Failure;
use crate::keys;

/// An enrolment's answer as it is kept for replays: without the token,
/// which is stored only as its hash.
fn without_token(response: &EnrolResponse) -> Result<serde_json::Value, Failure> {
    let mut value = serde_json::to_value(response).map_err(|e| {
        tracing::error!(error = %e, "enrolment answer");
        Failure::internal()
    })?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("token");
    }
    Ok(value)
}

fn check_pin(pin: &str) -> Result<(), Failure> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure::unprocessable(
            "pin_invalid",
            "the PIN must be 4 to 12 digits",
        ));
    }
    Ok(())
}

/// A card that passed its checks, before the vault sees it.
pub(super) struct CheckedCard {
    pan: Zeroizing<String>,
    /// For the card's one verification; never stored.
    security_code: Zeroizing<String>,
    brand: String,
    expiry_month: i64,
    expiry_year: i64,
}

impl CheckedCard {
    /// The card as the vault takes it, for `user_id`, verified once with
    /// its issuer by its security code.
    pub(super) fn to_vault(&self, user_id: &str) -> Result<CardToVault<'_>, Failure> {
        Ok(CardToVault {
            method_id: ids::new("pm")?,
            user_id: user_id.to_owned(),
            pan: &self.pan,
            brand: self.brand.clone(),
            expiry_month: self.expiry_month,
            expiry_year: self.expiry_year,
            security_code: Some(&self.security_code),
        })
    }
}

/// A face ready to store: its template in the gallery's space, sealed for
/// its user under a data key of its own.
pub(super) struct NewFace {
    /// The template as the gallery holds it, to search again across
    /// servers just before it is stored.
    protected: Vec<f32>,
    template: StoredTemplate,
    data_key: DataKeyRow,
    liveness: LivenessDecision,
}

/// An account's secrets, sealed or hashed, with its card in the vault.
pub(super) struct NewAccount {
    pub(super) user_id: String,
    /// The number's keyed hash and the number sealed, never the number.
    phone: StoredPhone,
    phone_key: DataKeyRow,
    phone_last4: String,
    pin_hash: String,
    /// Shown once, in the answer; only its hash is stored.
    token: String,
    token_hash: String,
    pub(super) method: PaymentMethod,
    card_key: DataKeyRow,
}

impl Identity {
    /// `POST /v1/users`: a phone, a PIN, a selfie burst and a card.
    pub async fn enrol(&self, key: &str, body: &[u8]) -> Result<Reply, Failure> {
        let request: EnrolRequest = parse_json(body)?;
        let phone = normalise_phone(&request.phone)?;
        check_pin(&request.pin)?;
        let card = self.check_card(&request.card)?;
        let frames = decode_frames(&request.frames)?;
        // The caller is known by the number only; its keyed hash scopes the
        // key, so no number is written with it.
        let phone_hash = self.core.phone_hash(&phone).await?;
        let scope = enrolment_scope(&phone_hash);
        let work = |claimed| async move {
            let user_id = ids::new("usr")?;
            let (_turn, face) = self.new_face(&user_id, frames).await?;
            let phone = (phone, phone_hash);
            let account = self.new_account(user_id, phone, &request.pin, card).await?;
            let response = EnrolResponse {
                user_id: account.user_id.clone(),
                token: account.token.clone(),
                payment_method: PaymentMethodView::of(&account.method, self.core.now_ms())?,
                liveness: face.liveness.into(),
            };
            let reply = Reply::json(201, &response)?;
            let kept = Reply::json(201, &without_token(&response)?)?;
            if let Err(failure) = self.store_enrolment(&account, &face, &claimed, &kept).await {
                let vault_token = account.method.vault_token.unwrap_or_default();
                self.core.forget_card(vault_token).await;
                return Err(failure);
            }
            // Through the change log, in order with every other change, so
            // a deletion already committed (a replay) is not undone.
            self.apply_own_changes().await;
            Ok(reply)
        };
        let request = Request::new("enrol", "", body);
        self.core
            .idempotent_or(scope, key, request, work, |earlier| {
                self.with_new_token(earlier)
            })
            .await
    }

    /// A replayed enrolment's answer with a token made now: the first
    /// answer's token is stored nowhere, so it cannot be shown again, and
    /// the new one replaces it (whoever retries is the one who lost the
    /// first answer).
    async fn with_new_token(&self, earlier: Reply) -> Result<Reply, Failure> {
        if earlier.status != 201 {
            return Ok(earlier);
        }
        let mut answer: serde_json::Value = serde_json::from_str(&earlier.body).map_err(|e| {
            tracing::error!(error = %e, "stored enrolment answer");
            Failure::internal()
        })?;
        let Some(user_id) = answer.get("user_id").and_then(|v| v.as_str()) else {
            tracing::error!("stored enrolment answer without a user");
            return Err(Failure::internal());
        };
        let (token, token_hash) = keys::new_secret("fpu")?;
        let mut conn = self.core.conn().await?;
        if !parties::replace_token_hash(&mut conn, user_id, &token_hash).await? {
            return Err(Failure::conflict(
                "account_deleted",
                "the account this enrolment made has been deleted since",
            ));
        }
        answer["token"] = serde_json::Value::String(token);
        Ok(Reply {
            status: earlier.status,
            body: answer.to_string(),
            timings: None,
        })
    }

    /// The card's number, brand and expiry checked against today's date.
    pub(super) fn check_card(&self, input: &CardInput) -> Result<CheckedCard, Failure> {
        let pan = Zeroizing::new(input.number.replace([' ', '-'], ""));
        let (year, month, _day) = card::utc_date(self.core.now_ms());
        let brand = card::validate(&pan, input.expiry_month, input.expiry_year, year, month)
            .map_err(|e| Failure::unprocessable(e.code(), e.to_string()))?;
        let security_code = Zeroizing::new(input.security_code.clone());
        card::check_security_code(&security_code)
            .map_err(|e| Failure::unprocessable(e.code(), e.to_string()))?;
        Ok(CheckedCard {
            pan,
            security_code,
            brand: brand.as_str().to_owned(),
            expiry_month: i64::from(input.expiry_month),
            expiry_year: i64::from(input.expiry_year),
        })
    }

    /// Puts a checked card of `user_id` in the vault, verified once with
    /// its issuer by its security code, and seals the core's share: the
    /// row to insert (not the default) and the share's data key. If the
    /// row is not stored, the caller gives the vault's token back.
    pub(super) async fn vault_checked_card(
        &self,
        user_id: &str,
        card: CheckedCard,
    ) -> Result<(PaymentMethod, DataKeyRow), Failure> {
        self.core.vault_card(card.to_vault(user_id)?).await
    }

    /// An enrolment whose face was embedded elsewhere (`vector`, unit
    /// length, from this server's model): the benchmarks' synthetic payers,
    /// stored exactly as an enrolment stores them (template sealed under a
    /// data key, card split through the vault and verified, PIN hashed),
    /// by the same transaction. No route calls it: every enrolment the
    /// server answers analyses a burst.
    pub async fn enrol_embedded(
        &self,
        key: &str,
        (phone, pin): (&str, &str),
        card: &crate::api::CardInput,
        vector: &[f32],
    ) -> Result<Reply, Failure> {
        let phone = normalise_phone(phone)?;
        check_pin(pin)?;
        let card = self.check_card(card)?;
        let phone_hash = self.core.phone_hash(&phone).await?;
        let scope = enrolment_scope(&phone_hash);
        let body = format!("embedded:{phone_hash}");
        let work = |claimed| async move {
            let user_id = ids::new("usr")?;
            // The PIN's hash and the card's verification before the turn:
            // enrolments at once take turns only for the face.
            let account = self
                .new_account(user_id, (phone, phone_hash), pin, card)
                .await?;
            let _turn = self.enrol_lock.lock().await;
            let reply = Reply::json(201, &serde_json::json!({"user_id": account.user_id}))?;
            let stored = match self.sealed_face(&account.user_id, vector, LivenessDecision::Live) {
                Ok(face) => {
                    self.store_enrolment(&account, &face, &claimed, &reply)
                        .await
                }
                Err(failure) => Err(failure),
            };
            if let Err(failure) = stored {
                self.core
                    .forget_card(account.method.vault_token.unwrap_or_default())
                    .await;
                return Err(failure);
            }
            self.apply_own_changes().await;
            Ok(reply)
        };
        let request = Request::new("enrol", "", body.as_bytes());
        self.core.idempotent(scope, key, request, work).await
    }

    /// Analyses the burst and seals its template for `user_id`, refusing a
    /// face already enrolled (one face, one account). Enrolments take turns
    /// from here to the gallery insert, so two racing enrolments of one
    /// face cannot both pass the search: the caller holds the turn
    /// returned until then.
    async fn new_face(
        &self,
        user_id: &str,
        frames: Vec<Vec<u8>>,
    ) -> Result<(MutexGuard<'_, ()>, NewFace), Failure> {
        let outcome = self
            .analyse(frames, QualityPolicy::enrolment(), Lane::Enrolment)
            .await?;
        let turn = self.enrol_lock.lock().await;
        let face = self.sealed_face(user_id, &outcome.template.vector, outcome.liveness)?;
        Ok((turn, face))
    }

    /// `vector` in the gallery's space and sealed for `user_id`, unless
    /// the gallery holds the face already. The caller holds the
    /// enrolments' turn.
    fn sealed_face(
        &self,
        user_id: &str,
        vector: &[f32],
        liveness: LivenessDecision,
    ) -> Result<NewFace, Failure> {
        let face = self.seal_face(user_id, vector, liveness)?;
        self.refuse_enrolled_face(&face.protected)?;
        Ok(face)
    }

    /// `vector` in the gallery's space and sealed for `user_id`, with no
    /// search of the gallery.
    pub(super) fn seal_face(
        &self,
        user_id: &str,
        vector: &[f32],
        liveness: LivenessDecision,
    ) -> Result<NewFace, Failure> {
        let protected = self.protect(vector)?;
        let model = self.engine.model_id().to_string();
        let sealed = self
            .core
            .envelope
            .seal(&vector_to_bytes(&protected), &template_aad(user_id, &model))?;
        Ok(NewFace {
            protected,
            template: StoredTemplate {
                user_id: user_id.to_owned(),
                model,
                key_id: sealed.key_id,
                nonce: sealed.nonce,
                ciphertext: sealed.ciphertext,
                transform_id: Some(self.transform_id.clone()),
            },
            data_key: sealed.data_key,
            liveness,
        })
    }

    /// One face, one account across the servers of one PostgreSQL: the
    /// enrolment's transaction takes the change log's lock first (every
    /// enrolment, on every server, holds it from here to its commit),
    /// applies what other servers committed meanwhile, and searches again.
    /// Two servers enrolling one face at once thus take turns, and the
    /// second finds the first's face. SQLite is one server, whose
    /// enrolments take turns already.
    async fn refuse_enrolled_elsewhere(
        &self,
        tx: &mut Transaction,
        face: &NewFace,
    ) -> Result<(), Failure> {
        if !facepay_store::on_postgres(tx) {
            return Ok(());
        }
        changes::lock(&mut *tx).await?;
        self.catch_up_on(&mut *tx).await?;
        self.refuse_enrolled_face(&face.protected)
    }

    /// One face, one account: a face the gallery already holds is refused.
    fn refuse_enrolled_face(&self, protected: &[f32]) -> Result<(), Failure> {
        let found = self.gallery.search(
            protected,
            facepay_gallery::Scope::All,
            self.core.config.decision.match_threshold,
            1,
        )?;
        if let Some(best) = found.first() {
            tracing::info!(
                score = best.score,
                "enrolment refused: face already enrolled"
            );
            return Err(Failure::conflict(
                "face_already_enrolled",
                "this face is already enrolled; one face can hold one account",
            ));
        }
        Ok(())
    }

    /// Seals the phone number (`phone`: the normalised number and its
    /// keyed hash), hashes the PIN, makes the account's token and puts the
    /// card in the vault, verified with the issuer by its security code (a
    /// card the issuer refuses ends the enrolment here). If the account is
    /// not stored, the caller gives the vault's token back.
    async fn new_account(
        &self,
        user_id: String,
        phone: (String, String),
        pin: &str,
        card: CheckedCard,
    ) -> Result<NewAccount, Failure> {
        let pin = pin.to_owned();
        let pin_hash = tokio::task::spawn_blocking(move || keys::hash_pin(&pin))
            .await
            .map_err(|_| Failure::internal())??;
        let vaulted = self.vault_checked_card(&user_id, card).await?;
        let vault_token = vaulted.0.vault_token.clone().unwrap_or_default();
        match self.account_of(user_id, phone, pin_hash, vaulted) {
            Ok(account) => Ok(account),
            Err(failure) => {
                self.core.forget_card(vault_token).await;
                Err(failure)
            }
        }
    }

    /// An account of its parts: its phone sealed here, its PIN hashed and
    /// its card in the vault already.
    pub(super) fn account_of(
        &self,
        user_id: String,
        (phone, phone_hash): (String, String),
        pin_hash: String,
        (mut method, card_key): (PaymentMethod, DataKeyRow),
    ) -> Result<NewAccount, Failure> {
        let phone_last4 = phone[phone.len() - 4..].to_owned();
        let (phone, phone_key) = self.core.seal_phone(&user_id, &phone, phone_hash)?;
        let (token, token_hash) = keys::new_secret("fpu")?;
        // An account's first card is the one it pays with.
        method.is_default = 1;
        Ok(NewAccount {
            user_id,
            phone,
            phone_key,
            phone_last4,
            pin_hash,
            token,
            token_hash,
            method,
            card_key,
        })
    }

    /// The account, its face, its card and the answer, in one transaction.
    async fn store_enrolment(
        &self,
        account: &NewAccount,
        face: &NewFace,
        claimed: &Claimed,
        reply: &Reply,
    ) -> Result<(), Failure> {
        let mut tx = self.core.begin().await?;
        self.refuse_enrolled_elsewhere(&mut tx, face).await?;
        self.insert_enrolments(&mut tx, &[(account, face)]).await?;
        claimed.complete(&mut tx, reply).await?;
        commit(tx).await
    }

    /// The rows of the accounts, their faces and their cards, their audit
    /// entries and the gallery's changes, in `tx`: a statement a table
    /// whatever their number (a bulk import stores a thousand at once).
    pub(super) async fn insert_enrolments(
        &self,
        tx: &mut Transaction,
        enrolled: &[(&NewAccount, &NewFace)],
    ) -> Result<(), Failure> {
        let now = self.core.now_ms();
        let users: Vec<_> = enrolled
            .iter()
            .map(|(account, _)| parties::NewAccount {
                id: &account.user_id,
                phone: &account.phone,
                phone_last4: &account.phone_last4,
                pin_hash: &account.pin_hash,
                token_hash: &account.token_hash,
                created_at_ms: now,
            })
            .collect();
        parties::insert_accounts(&mut *tx, &users)
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(_) => Failure::conflict(
                    "phone_already_enrolled",
                    "this phone number already has an account",
                ),
                other => other.into(),
            })?;
        let keys: Vec<_> = (enrolled.iter())
            .flat_map(|(account, face)| [&account.phone_key, &face.data_key, &account.card_key])
            .collect();
        facepay_store::keys::insert_all(&mut *tx, &keys, now).await?;
        let templates: Vec<_> = enrolled.iter().map(|(_, face)| &face.template).collect();
        parties::insert_templates(&mut *tx, &templates, now).await?;
        let methods: Vec<_> = enrolled
            .iter()
            .map(|(account, _)| &account.method)
            .collect();
        parties::insert_payment_methods(&mut *tx, &methods, now).await?;
        let entries: Vec<_> = (enrolled.iter())
            .flat_map(|(account, _)| {
                [
                    ("template_sealed", account.user_id.as_str()),
                    ("card_sealed", account.method.id.as_str()),
                ]
            })
            .collect();
        audit::append_all(&mut *tx, now, "app", &entries).await?;
        let changes: Vec<_> = (enrolled.iter())
            .map(|(account, _)| (account.user_id.as_str(), Kind::Template, None))
            .collect();
        facepay_store::changes::append_all(&mut *tx, &changes, now).await?;
        Ok(())
    }

    /// `PUT /v1/users/me/face`: enrols the face of an account that has
    /// none (deleted by its user, or suspended by an accepted fraud claim,
    /// whose block on the account this lifts).
    pub async fn enrol_my_face(
        &self,
        token: &str,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: FaceRequest = parse_json(body)?;
        let frames = decode_frames(&request.frames)?;
        let user = self.user_by_token(token).await?;
        let scope = format!("user:{}", user.id);
        self.core
            .idempotent(
                scope,
                key,
                Request::new("enrol_face", "", body),
                |claimed| async move {
                    let (_turn, face) = self.new_face(&user.id, frames).await?;
                    let reply = Reply::json(
                        201,
                        &FaceEnrolled {
                            user_id: user.id.clone(),
                            face_enrolled: true,
                        },
                    )?;
                    self.store_face(&user.id, &face, &claimed, &reply).await?;
                    self.apply_own_changes().await;
                    Ok(reply)
                },
            )
            .await
    }

    /// A face for an existing account, with the answer, in one
    /// transaction; the block an accepted claim put on the account goes.
    async fn store_face(
        &self,
        user_id: &str,
        face: &NewFace,
        claimed: &Claimed,
        reply: &Reply,
    ) -> Result<(), Failure> {
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        // The user's row before the change log's lock, in the order a
        // deletion takes them.
        facepay_store::wallet::lock(&mut tx, user_id).await?;
        self.refuse_enrolled_elsewhere(&mut tx, face).await?;
        facepay_store::keys::insert(&mut tx, &face.data_key, now).await?;
        parties::insert_template(&mut tx, &face.template, now)
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(_) => Failure::conflict(
                    "face_already_enrolled",
                    "this account has a face enrolled; delete it first",
                ),
                other => other.into(),
            })?;
        facepay_store::fraud::remove_block(&mut tx, "user", user_id, Some("claim")).await?;
        let actor = format!("user:{user_id}");
        audit::append(&mut tx, now, &actor, "template_sealed", user_id).await?;
        self.record_change(&mut tx, user_id, Kind::Template, None)
            .await?;
        claimed.complete(&mut tx, reply).await?;
        commit(tx).await
    }
}
