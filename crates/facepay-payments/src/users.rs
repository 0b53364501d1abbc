//! The app side: enrol a face and a card, see my data, delete it.

use facepay_connector::card;
use facepay_face::QualityPolicy;
use facepay_store::changes::Kind;
use facepay_store::parties::{self, NewUser, StoredTemplate};
use facepay_store::{audit, ids, loyalty, payments};
use zeroize::Zeroizing;

use crate::api::{EnrolRequest, EnrolResponse, FaceDeleted, FaceRequest, PaymentView, UserView};
use crate::cards::CardToVault;
use crate::face::analyse_burst;
use crate::{
    Failure, Payments, Reply, decode_frames, keys, parse_json, template_aad, vector_to_bytes,
};

/// Payments listed on the user's own page.
const USER_PAYMENTS_MAX: i64 = 50;

pub(crate) fn normalise_phone(phone: &str) -> Result<String, Failure> {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure::unprocessable(
            "phone_invalid",
            "the phone number must be 8 to 15 digits, with an optional leading '+'",
        ));
    }
    Ok(format!("+{digits}"))
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

impl Payments {
    /// `POST /v1/users`: a phone, a PIN, a selfie burst and a card.
    pub async fn enrol(&self, key: &str, body: &[u8]) -> Result<Reply, Failure> {
        let request: EnrolRequest = parse_json(body)?;
        let phone = normalise_phone(&request.phone)?;
        check_pin(&request.pin)?;
        let pan = Zeroizing::new(request.card.number.replace([' ', '-'], ""));
        let (year, month, _day) = card::utc_date(self.clock.now_ms());
        let brand = card::validate(
            &pan,
            request.card.expiry_month,
            request.card.expiry_year,
            year,
            month,
        )
        .map_err(|e| Failure::unprocessable(e.code(), e.to_string()))?;
        let frames = decode_frames(&request.frames)?;
        let scope = format!("app:{phone}");
        self.idempotent(scope, key, body, |claimed| async move {
            let mode = self.config.liveness;
            let outcome = self
                .on_inference_thread(move |engine, checker| {
                    analyse_burst(engine, checker, mode, &QualityPolicy::enrolment(), &frames)
                })
                .await?;
            // One face, one account: a face already enrolled is refused.
            // Enrolments take turns from here to the gallery insert, so two
            // racing enrolments of one face cannot both pass the search.
            let _turn = self.enrol_lock.lock().await;
            let protected = self.protect(&outcome.template.vector)?;
            self.refuse_enrolled_face(&protected)?;
            let pin = request.pin.clone();
            let pin_hash = tokio::task::spawn_blocking(move || keys::hash_pin(&pin))
                .await
                .map_err(|_| Failure::internal())??;
            let user_id = ids::new("usr");
            let (token, token_hash) = keys::new_secret("fpu");
            let model = outcome.template.model.to_string();
            let sealed_template = self.envelope.seal(
                &vector_to_bytes(&protected),
                &template_aad(&user_id, &model),
            )?;
            let (method, card_key) = self
                .vault_card(CardToVault {
                    method_id: ids::new("pm"),
                    user_id: user_id.clone(),
                    pan: &pan,
                    brand: brand.as_str().to_owned(),
                    expiry_month: i64::from(request.card.expiry_month),
                    expiry_year: i64::from(request.card.expiry_year),
                })
                .await?;
            let vault_token = method.vault_token.clone().unwrap_or_default();
            let now = self.clock.now_ms();
            let reply = Reply::json(
                201,
                &EnrolResponse {
                    user_id: user_id.clone(),
                    token,
                    payment_method: method.clone(),
                    liveness: format!("{:?}", outcome.liveness).to_lowercase(),
                },
            )?;
            let stored = async {
                let mut tx = self.store.begin().await?;
                parties::insert_user(
                    &mut tx,
                    &NewUser {
                        id: &user_id,
                        phone: &phone,
                        phone_last4: &phone[phone.len() - 4..],
                        pin_hash: &pin_hash,
                        token_hash: &token_hash,
                        created_at_ms: now,
                    },
                )
                .await
                .map_err(|e| match e {
                    facepay_store::StoreError::Duplicate(_) => Failure::conflict(
                        "phone_already_enrolled",
                        "this phone number already has an account",
                    ),
                    other => other.into(),
                })?;
                facepay_store::keys::insert(&mut tx, &sealed_template.data_key, now).await?;
                facepay_store::keys::insert(&mut tx, &card_key, now).await?;
                parties::insert_template(
                    &mut tx,
                    &StoredTemplate {
                        user_id: user_id.clone(),
                        model,
                        key_id: sealed_template.key_id,
                        nonce: sealed_template.nonce,
                        ciphertext: sealed_template.ciphertext,
                        transform_id: Some(self.transform_id().to_owned()),
                    },
                    now,
                )
                .await?;
                parties::insert_payment_method(&mut tx, &method, now).await?;
                audit::append(&mut tx, now, "app", "template_sealed", &user_id).await?;
                self.record_change(&mut tx, &user_id, Kind::Template, None)
                    .await?;
                audit::append(&mut tx, now, "app", "card_sealed", &method.id).await?;
                claimed.complete(&mut tx, &reply).await?;
                tx.commit().await.map_err(facepay_store::StoreError::from)?;
                Ok::<_, Failure>(())
            }
            .await;
            if let Err(failure) = stored {
                self.forget_card(vault_token).await;
                return Err(failure);
            }
            // Through the change log, in order with every other change, so
            // a deletion already committed (a replay) is not undone.
            self.apply_own_changes().await;
            Ok(reply)
        })
        .await
    }

    /// One face, one account: a face the gallery already holds is refused.
    fn refuse_enrolled_face(&self, protected: &[f32]) -> Result<(), Failure> {
        let found = self.gallery.search(
            protected,
            facepay_gallery::Scope::All,
            self.config.decision.match_threshold,
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
        self.idempotent(scope, key, body, |claimed| async move {
            let mode = self.config.liveness;
            let outcome = self
                .on_inference_thread(move |engine, checker| {
                    analyse_burst(engine, checker, mode, &QualityPolicy::enrolment(), &frames)
                })
                .await?;
            let _turn = self.enrol_lock.lock().await;
            let protected = self.protect(&outcome.template.vector)?;
            self.refuse_enrolled_face(&protected)?;
            let model = outcome.template.model.to_string();
            let sealed = self.envelope.seal(
                &vector_to_bytes(&protected),
                &template_aad(&user.id, &model),
            )?;
            let now = self.clock.now_ms();
            let reply = Reply::json(
                201,
                &serde_json::json!({ "user_id": user.id, "face_enrolled": true }),
            )?;
            let mut tx = self.store.begin().await?;
            facepay_store::keys::insert(&mut tx, &sealed.data_key, now).await?;
            parties::insert_template(
                &mut tx,
                &StoredTemplate {
                    user_id: user.id.clone(),
                    model,
                    key_id: sealed.key_id,
                    nonce: sealed.nonce,
                    ciphertext: sealed.ciphertext,
                    transform_id: Some(self.transform_id().to_owned()),
                },
                now,
            )
            .await
            .map_err(|e| match e {
                facepay_store::StoreError::Duplicate(_) => Failure::conflict(
                    "face_already_enrolled",
                    "this account has a face enrolled; delete it first",
                ),
                other => other.into(),
            })?;
            facepay_store::fraud::remove_block(&mut tx, "user", &user.id, Some("claim")).await?;
            let actor = format!("user:{}", user.id);
            audit::append(&mut tx, now, &actor, "template_sealed", &user.id).await?;
            self.record_change(&mut tx, &user.id, Kind::Template, None)
                .await?;
            claimed.complete(&mut tx, &reply).await?;
            tx.commit().await.map_err(facepay_store::StoreError::from)?;
            self.apply_own_changes().await;
            Ok(reply)
        })
        .await
    }

    pub async fn user_by_token(&self, token: &str) -> Result<parties::User, Failure> {
        let mut conn = self.conn().await?;
        parties::user_by_token_hash(&mut conn, &keys::secret_hash(token))
            .await?
            .ok_or_else(|| {
                Failure::unauthorised("token_invalid", "sign in again: this token is not valid")
            })
    }

    /// `GET /v1/users/me`: everything we hold about the user.
    pub async fn me(&self, token: &str) -> Result<Reply, Failure> {
        let user = self.user_by_token(token).await?;
        let mut conn = self.conn().await?;
        let methods = parties::payment_methods(&mut conn, &user.id).await?;
        let payments = payments::of_user(&mut conn, &user.id, USER_PAYMENTS_MAX).await?;
        let points = loyalty::user_points(&mut conn, &user.id).await?;
        let stamps = loyalty::user_stamps(&mut conn, &user.id).await?;
        let coupons = loyalty::user_coupons(&mut conn, &user.id, self.clock.now_ms()).await?;
        let choices = loyalty::user_choices(&mut conn, &user.id).await?;
        Reply::json(
            200,
            &UserView {
                has_face: self.gallery.contains(&user.id),
                user_id: user.id,
                phone: user.phone,
                status: user.status,
                created_at_ms: user.created_at_ms,
                payment_methods: methods,
                payments: payments.iter().map(PaymentView::of).collect(),
                points,
                stamps,
                coupons,
                choices,
            },
        )
    }

    /// `DELETE /v1/users/me/face`: the template's data key and the template
    /// are erased and the face stops paying at once; the account, its cards
    /// and its payments stay.
    pub async fn delete_my_face(&self, token: &str) -> Result<Reply, Failure> {
        let user = self.user_by_token(token).await?;
        let mut tx = self.store.begin().await?;
        if !parties::delete_template(&mut tx, &user.id).await? {
            return Err(Failure::new(
                404,
                "face_not_enrolled",
                "this account has no face enrolled",
            ));
        }
        let actor = format!("user:{}", user.id);
        audit::append(
            &mut tx,
            self.clock.now_ms(),
            &actor,
            "face_deleted",
            &user.id,
        )
        .await?;
        self.record_deletion(&mut tx, &user.id).await?;
        tx.commit().await.map_err(facepay_store::StoreError::from)?;
        self.gallery.remove(&user.id)?;
        // A follower that read the template before this commit may have
        // put it back meanwhile; applying the log up to here takes it out.
        self.apply_own_changes().await;
        Reply::json(
            200,
            &FaceDeleted {
                user_id: user.id,
                face_deleted: true,
            },
        )
    }

    /// `DELETE /v1/users/me`: the template and card data are erased and the
    /// face stops paying at once; past payments stay for the merchants'
    /// books, detached from any identity.
    pub async fn delete_me(&self, token: &str) -> Result<Reply, Failure> {
        let user = self.user_by_token(token).await?;
        let methods = parties::payment_methods(&mut *self.conn().await?, &user.id).await?;
        let mut tx = self.store.begin().await?;
        let now = self.clock.now_ms();
        parties::delete_user(&mut tx, &user.id, now).await?;
        let actor = format!("user:{}", user.id);
        audit::append(&mut tx, now, &actor, "user_deleted", &user.id).await?;
        self.record_deletion(&mut tx, &user.id).await?;
        tx.commit().await.map_err(facepay_store::StoreError::from)?;
        self.gallery.remove(&user.id)?;
        self.apply_own_changes().await;
        // The core's shares are gone with their data keys, so the vault's
        // are worthless already; deleting them is tidiness, not safety.
        for token in methods.into_iter().filter_map(|m| m.vault_token) {
            self.forget_card(token).await;
        }
        Reply::json(
            200,
            &serde_json::json!({ "user_id": user.id, "deleted": true }),
        )
    }
}
