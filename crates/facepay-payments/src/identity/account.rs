//! The user's own account: who a token belongs to, everything held about
//! them, and deleting their face or all of it.

use facepay_store::{audit, loyalty, parties, payments};

use super::Identity;
use crate::api::{FaceDeleted, UserDeleted, UserRows, UserView};
use crate::core::Reply;
use crate::error::Failure;
use crate::keys;

/// Payments listed on the user's own page.
const USER_PAYMENTS_MAX: i64 = 50;

impl Identity {
    pub async fn user_by_token(&self, token: &str) -> Result<parties::User, Failure> {
        let mut conn = self.core.conn().await?;
        parties::user_by_token_hash(&mut conn, &keys::secret_hash(token))
            .await?
            .ok_or_else(|| {
                Failure::unauthorised("token_invalid", "sign in again: this token is not valid")
            })
    }

    /// `GET /v1/users/me`: everything we hold about the user.
    pub async fn me(&self, token: &str) -> Result<Reply, Failure> {
        let user = self.user_by_token(token).await?;
        let mut conn = self.core.conn().await?;
        let methods = parties::payment_methods(&mut conn, &user.id).await?;
        let payments = payments::of_user(&mut conn, &user.id, USER_PAYMENTS_MAX).await?;
        let points = loyalty::user_points(&mut conn, &user.id).await?;
        let stamps = loyalty::user_stamps(&mut conn, &user.id).await?;
        let coupons = loyalty::user_coupons(&mut conn, &user.id, self.core.now_ms()).await?;
        let choices = loyalty::user_choices(&mut conn, &user.id).await?;
        let phone = self.core.open_phone(&mut conn, &user).await?;
        let view = UserView::of(&UserRows {
            user: &user,
            phone,
            has_face: self.gallery.contains(&user.id),
            methods: &methods,
            now_ms: self.core.now_ms(),
            payments: &payments,
            points: &points,
            stamps: &stamps,
            coupons: &coupons,
            choices: &choices,
        })?;
        Reply::json(200, &view)
    }

    /// `DELETE /v1/users/me/face`: the template's data key and the template
    /// are erased and the face stops paying at once; the account, its cards
    /// and its payments stay.
    pub async fn delete_my_face(&self, token: &str) -> Result<Reply, Failure> {
        let user = self.user_by_token(token).await?;
        let mut tx = self.core.begin().await?;
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
            self.core.now_ms(),
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
        let methods = parties::payment_methods(&mut *self.core.conn().await?, &user.id).await?;
        let mut tx = self.core.begin().await?;
        let now = self.core.now_ms();
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
            self.core.forget_card(token).await;
        }
        Reply::json(
            200,
            &UserDeleted {
                user_id: user.id,
                deleted: true,
            },
        )
    }
}
