//! The user's wallet: cards added, replaced, removed and chosen as the
//! default without enrolling the face again. Every card goes through the
//! vault as enrolment's does (verified once by its security code, the
//! core's share sealed under a data key of its own); a removed card's
//! data key is destroyed and the vault forgets its share, so neither half
//! of its number can be joined again.

use facepay_store::keys::DataKeyRow;
use facepay_store::parties::{self, PaymentMethod};
use facepay_store::wallet::{self, CARDS_PER_USER_MAX};
use facepay_store::{Transaction, audit};

use super::Identity;
use super::enrol::CheckedCard;
use crate::api::{AddCardRequest, CardList, CardRemoved, PaymentMethodView, ReplaceCardRequest};
use crate::core::{Claimed, Reply, Request, commit, parse_json};
use crate::error::Failure;

fn card_not_found() -> Failure {
    Failure::new(404, "card_not_found", "you hold no such card")
}

fn cards_limit() -> Failure {
    Failure::conflict(
        "cards_limit",
        format!("a wallet holds at most {CARDS_PER_USER_MAX} cards; remove one first"),
    )
}

fn actor(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// A new card in the vault, with where it goes in the wallet.
struct NewCard {
    method: PaymentMethod,
    data_key: DataKeyRow,
}

impl Identity {
    /// `GET /v1/users/me/cards`: the caller's active cards, the default
    /// first.
    pub async fn my_cards(&self, token: &str) -> Result<Reply, Failure> {
        let user = self.user_by_token(token).await?;
        let methods = parties::payment_methods(&mut *self.core.conn().await?, &user.id).await?;
        let now_ms = self.core.now_ms();
        let cards = methods
            .iter()
            .map(|m| PaymentMethodView::of(m, now_ms))
            .collect::<Result<_, _>>()?;
        Reply::json(200, &CardList { cards })
    }

    /// `POST /v1/users/me/cards`: a card verified with its issuer, sealed
    /// and split like enrolment's; the default if asked or if it is the
    /// caller's only card.
    pub async fn add_card(&self, token: &str, key: &str, body: &[u8]) -> Result<Reply, Failure> {
        let request: AddCardRequest = parse_json(body)?;
        let user = self.user_by_token(token).await?;
        let scope = format!("user:{}", user.id);
        let card = self.check_card(&request.card)?;
        let work = |claimed: Claimed| async move {
            self.refuse_full_wallet(&user.id).await?;
            let new = self.new_card(&user.id, card).await?;
            let stored = self
                .store_added(&user.id, &new, request.make_default, &claimed)
                .await;
            self.forget_unless_stored(&new, stored).await
        };
        let request = Request::new("add_card", "", body);
        self.core.idempotent(scope, key, request, work).await
    }

    /// `POST /v1/users/me/cards/{id}/replace`: a new card takes the place
    /// of card `id` in one transaction (its default included); the old
    /// card's shares are destroyed as [`remove_card`](Self::remove_card)'s.
    pub async fn replace_card(
        &self,
        token: &str,
        key: &str,
        id: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: ReplaceCardRequest = parse_json(body)?;
        let user = self.user_by_token(token).await?;
        let scope = format!("user:{}", user.id);
        // Whose card `id` is, before anything about the new card: a card
        // of another wallet is not found, whatever the body says.
        self.held_card(&user.id, id).await?;
        let card = self.check_card(&request.card)?;
        let work = |claimed: Claimed| async move {
            // Again under the key: it may have been removed meanwhile.
            self.held_card(&user.id, id).await?;
            let new = self.new_card(&user.id, card).await?;
            let stored = self.store_replaced(&user.id, id, &new, &claimed).await;
            let old_token = match stored {
                Ok((_, ref old)) => old.vault_token.clone(),
                Err(_) => None,
            };
            let reply = self
                .forget_unless_stored(&new, stored.map(|(reply, _)| reply))
                .await?;
            if let Some(token) = old_token {
                self.core.forget_card(token).await;
            }
            Ok(reply)
        };
        let request = Request::new("replace_card", id, body);
        self.core.idempotent(scope, key, request, work).await
    }

    /// Fails with `card_not_found` unless `user_id` holds active card `id`.
    async fn held_card(&self, user_id: &str, id: &str) -> Result<(), Failure> {
        let mut conn = self.core.conn().await?;
        wallet::active_method(&mut conn, user_id, id)
            .await?
            .ok_or_else(card_not_found)?;
        Ok(())
    }

    /// `POST /v1/users/me/cards/{id}/default`: card `id` pays from now on.
    pub async fn set_default_card(
        &self,
        token: &str,
        key: &str,
        id: &str,
    ) -> Result<Reply, Failure> {
        let user = self.user_by_token(token).await?;
        let scope = format!("user:{}", user.id);
        let work = |claimed: Claimed| async move {
            let mut tx = self.core.begin().await?;
            wallet::lock(&mut tx, &user.id).await?;
            if !wallet::set_default(&mut tx, &user.id, id).await? {
                return Err(card_not_found());
            }
            let method = wallet::active_method(&mut tx, &user.id, id)
                .await?
                .ok_or_else(card_not_found)?;
            let now = self.core.now_ms();
            audit::append(&mut tx, now, &actor(&user.id), "card_made_default", id).await?;
            let reply = Reply::json(200, &PaymentMethodView::of(&method, now)?)?;
            claimed.complete(&mut tx, &reply).await?;
            commit(tx).await?;
            Ok(reply)
        };
        let request = Request::new("default_card", id, b"");
        self.core.idempotent(scope, key, request, work).await
    }

    /// `DELETE /v1/users/me/cards/{id}`: the core's share of the card is
    /// destroyed with its data key in the transaction, then the vault
    /// forgets its share. A wallet left empty pays no more
    /// (`no_payment_method`) until a card is added.
    pub async fn remove_card(&self, token: &str, key: &str, id: &str) -> Result<Reply, Failure> {
        let user = self.user_by_token(token).await?;
        let scope = format!("user:{}", user.id);
        let work = |claimed: Claimed| async move {
            let mut tx = self.core.begin().await?;
            wallet::lock(&mut tx, &user.id).await?;
            let removed = wallet::remove(&mut tx, &user.id, id)
                .await?
                .ok_or_else(card_not_found)?;
            let cards_left = wallet::active_count(&mut tx, &user.id).await?;
            let now = self.core.now_ms();
            audit::append(&mut tx, now, &actor(&user.id), "card_removed", id).await?;
            let answer = CardRemoved {
                id: id.to_owned(),
                removed: true,
                cards_left,
            };
            let reply = Reply::json(200, &answer)?;
            claimed.complete(&mut tx, &reply).await?;
            commit(tx).await?;
            if let Some(token) = removed.vault_token {
                self.core.forget_card(token).await;
            }
            Ok(reply)
        };
        let request = Request::new("remove_card", id, b"");
        self.core.idempotent(scope, key, request, work).await
    }

    /// Refuses a card before the issuer is asked when the wallet is full.
    async fn refuse_full_wallet(&self, user_id: &str) -> Result<(), Failure> {
        let count = wallet::active_count(&mut *self.core.conn().await?, user_id).await?;
        if count >= CARDS_PER_USER_MAX {
            return Err(cards_limit());
        }
        Ok(())
    }

    async fn new_card(&self, user_id: &str, card: CheckedCard) -> Result<NewCard, Failure> {
        let (method, data_key) = self.vault_checked_card(user_id, card).await?;
        Ok(NewCard { method, data_key })
    }

    /// The answer when the new card is stored; otherwise the vault's token
    /// is given back, and the failure passed on.
    async fn forget_unless_stored(
        &self,
        new: &NewCard,
        stored: Result<Reply, Failure>,
    ) -> Result<Reply, Failure> {
        if stored.is_err()
            && let Some(token) = &new.method.vault_token
        {
            self.core.forget_card(token.clone()).await;
        }
        stored
    }

    /// Inserts the new card and its share's data key, refusing a card the
    /// wallet holds already (by its fingerprint, `except` the card it
    /// replaces) or a full wallet. Returns how many other cards it holds.
    async fn insert_card(
        &self,
        tx: &mut Transaction,
        new: &NewCard,
        except: Option<&str>,
    ) -> Result<usize, Failure> {
        let held = parties::payment_methods(&mut *tx, &new.method.user_id).await?;
        let others = held.iter().filter(|m| Some(m.id.as_str()) != except);
        let others_count = others.clone().count();
        if others_count as i64 >= CARDS_PER_USER_MAX {
            return Err(cards_limit());
        }
        let fingerprint = new.method.fingerprint.as_deref();
        if fingerprint.is_some()
            && others
                .into_iter()
                .any(|m| m.fingerprint.as_deref() == fingerprint)
        {
            return Err(Failure::conflict(
                "card_already_added",
                "this card is in your wallet already",
            ));
        }
        let now = self.core.now_ms();
        facepay_store::keys::insert(&mut *tx, &new.data_key, now).await?;
        parties::insert_payment_method(&mut *tx, &new.method, now).await?;
        let user_id = &new.method.user_id;
        audit::append(
            &mut *tx,
            now,
            &actor(user_id),
            "card_sealed",
            &new.method.id,
        )
        .await?;
        Ok(others_count)
    }

    async fn store_added(
        &self,
        user_id: &str,
        new: &NewCard,
        make_default: bool,
        claimed: &Claimed,
    ) -> Result<Reply, Failure> {
        let mut tx = self.core.begin().await?;
        wallet::lock(&mut tx, user_id).await?;
        let others_count = self.insert_card(&mut tx, new, None).await?;
        if make_default || others_count == 0 {
            wallet::set_default(&mut tx, user_id, &new.method.id).await?;
        }
        self.answer_with_card(tx, user_id, &new.method.id, 201, claimed)
            .await
    }

    /// The new card in, the old one removed (its data key destroyed), and
    /// the old one's default passed on; returns the answer and the old row.
    async fn store_replaced(
        &self,
        user_id: &str,
        old_id: &str,
        new: &NewCard,
        claimed: &Claimed,
    ) -> Result<(Reply, PaymentMethod), Failure> {
        let mut tx = self.core.begin().await?;
        wallet::lock(&mut tx, user_id).await?;
        self.insert_card(&mut tx, new, Some(old_id)).await?;
        let old = wallet::remove(&mut tx, user_id, old_id)
            .await?
            .ok_or_else(card_not_found)?;
        if old.is_default == 1 {
            wallet::set_default(&mut tx, user_id, &new.method.id).await?;
        }
        let now = self.core.now_ms();
        audit::append(&mut tx, now, &actor(user_id), "card_removed", old_id).await?;
        let reply = self
            .answer_with_card(tx, user_id, &new.method.id, 201, claimed)
            .await?;
        Ok((reply, old))
    }

    /// The card as it now stands, kept as the key's answer, and commits.
    async fn answer_with_card(
        &self,
        mut tx: Transaction,
        user_id: &str,
        id: &str,
        status: u16,
        claimed: &Claimed,
    ) -> Result<Reply, Failure> {
        let method = wallet::active_method(&mut tx, user_id, id)
            .await?
            .ok_or_else(Failure::internal)?;
        let reply = Reply::json(status, &PaymentMethodView::of(&method, self.core.now_ms())?)?;
        claimed.complete(&mut tx, &reply).await?;
        commit(tx).await?;
        Ok(reply)
    }
}
