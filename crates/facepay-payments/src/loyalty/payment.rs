//! Loyalty with a payment: the payer's coupons and points taken off the
//! amount before the card is charged (`reserve_discount`), points and
//! stamps earned with the capture in the capture's own transaction
//! (`earn`), and all of it given back in proportion by refunds
//! (`give_back`) and in full when a payment ends without a capture
//! (`undo_discount`). The pay path and the merchant's operations call
//! these; they call nothing back.

use std::cmp::Reverse;

use facepay_store::loyalty::{self, Coupon, PointsKind, PointsMove, Program};
use facepay_store::payments::Payment;

use crate::api::LoyaltyReceipt;
use crate::core::{Core, commit, stored_or_created};
use crate::error::Failure;

/// A claw back racing another refund's retries this often at most.
const CLAW_BACK_TRIES: usize = 3;
/// Stackable coupons on one payment, at most.
const STACKED_MAX: usize = 3;
/// A reservation losing a race for a coupon or points is planned again
/// this often at most.
const RESERVE_TRIES: usize = 3;

impl LoyaltyReceipt {
    /// The receipt's part for a discount and what the capture earned, if
    /// either is anything; with nothing earned (not captured yet), the
    /// payer's balance as it stands.
    pub(crate) async fn of(
        tx: &mut facepay_store::Connection,
        payment: &Payment,
        discount: &Discount,
        earned: Option<LoyaltyReceipt>,
    ) -> Result<Option<Self>, Failure> {
        if discount.is_empty() {
            return Ok(earned);
        }
        let mut r = match earned {
            Some(r) => r,
            None => {
                let user_id = payment.user_id.as_deref().ok_or_else(Failure::internal)?;
                LoyaltyReceipt {
                    points_balance: loyalty::points_balance(tx, &payment.merchant_id, user_id)
                        .await?,
                    ..LoyaltyReceipt::default()
                }
            }
        };
        r.discount_minor = discount.total_minor();
        r.coupons = discount.coupons.iter().map(|(n, _)| n.clone()).collect();
        r.points_redeemed = discount.points;
        Ok(Some(r))
    }
}

/// What a payment's coupons and points take off its amount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Discount {
    /// Each coupon used, by name, with what it takes off.
    pub coupons: Vec<(String, i64)>,
    /// Points redeemed, worth one minor unit each.
    pub points: i64,
}

impl Discount {
    pub fn total_minor(&self) -> i64 {
        self.coupons.iter().map(|(_, d)| d).sum::<i64>() + self.points
    }

    pub fn is_empty(&self) -> bool {
        self.coupons.is_empty() && self.points == 0
    }
}

/// The coupons to use on `amount_minor`, with what each takes off: the one
/// the payer picked in the app when it applies (with the best stackable
/// ones if it is stackable itself), otherwise whichever takes more off of
/// the best coupon used alone and the best stackable ones together.
/// Together they leave at least one minor unit for the card: an issuer
/// authorises positive amounts only.
fn choose<'a>(
    amount_minor: i64,
    usable: &'a [Coupon],
    picked: Option<&str>,
) -> Vec<(&'a Coupon, i64)> {
    let room_minor = amount_minor - 1;
    let off = |c: &Coupon| c.discount_minor(amount_minor);
    let mut stackable: Vec<&Coupon> = usable
        .iter()
        .filter(|c| c.stackable == 1 && off(c) > 0)
        .collect();
    stackable.sort_by_key(|c| (Reverse(off(c)), c.id.as_str()));
    let total = |set: &[&Coupon]| set.iter().map(|c| off(c)).sum::<i64>().min(room_minor);
    let picked = picked
        .and_then(|id| usable.iter().find(|c| c.id == id))
        .filter(|c| off(c) > 0);
    let set: Vec<&Coupon> = match picked {
        Some(c) if c.stackable == 0 => vec![c],
        Some(c) => std::iter::once(c)
            .chain(stackable.into_iter().filter(|s| s.id != c.id))
            .take(STACKED_MAX)
            .collect(),
        None => {
            let alone = usable
                .iter()
                .filter(|c| c.stackable == 0 && off(c) > 0)
                .max_by_key(|c| (off(c), Reverse(c.id.as_str())));
            let stacked: Vec<&Coupon> = stackable.into_iter().take(STACKED_MAX).collect();
            match alone {
                // One coupon spent rather than several for the same saving.
                Some(c) if total(&[c]) >= total(&stacked) => vec![c],
                _ => stacked,
            }
        }
    };
    let mut left_minor = room_minor;
    set.into_iter()
        .filter_map(|c| {
            let d = off(c).min(left_minor);
            left_minor -= d;
            (d > 0).then_some((c, d))
        })
        .collect()
}

/// The discount a payment holds already: coupons used and points redeemed
/// for it and not given back.
async fn reserved(
    conn: &mut facepay_store::Connection,
    payment_id: &str,
) -> Result<Discount, Failure> {
    let mut d = Discount::default();
    for u in loyalty::coupon_uses(conn, payment_id).await? {
        if u.restored == 0 {
            let name = loyalty::coupon(conn, &u.coupon_id)
                .await?
                .map_or(u.coupon_id, |c| c.name);
            d.coupons.push((name, u.discount_minor));
        }
    }
    let moved = loyalty::payment_points(conn, payment_id).await?;
    d.points = moved.redeemed - moved.restored;
    Ok(d)
}

/// Gives back all a payment's coupons and redeemed points, in the
/// transaction that ends it without a capture (declined, failed, voided).
///
/// They go back to whoever they were taken from: an ambiguous match
/// retried after a crash may have named another payer since.
pub(crate) async fn undo_discount(
    tx: &mut facepay_store::Connection,
    payment: &Payment,
    now: i64,
) -> Result<(), Failure> {
    loyalty::restore_coupons(tx, &payment.id).await?;
    let moved = loyalty::payment_points(tx, &payment.id).await?;
    let due = moved.redeemed - moved.restored;
    if due > 0 {
        let redeemer = loyalty::redeemer(tx, &payment.id)
            .await?
            .ok_or_else(Failure::internal)?;
        restore_points(tx, payment, &redeemer, &payment.id, due, now).await?;
    }
    Ok(())
}

async fn restore_points(
    tx: &mut facepay_store::Connection,
    payment: &Payment,
    user_id: &str,
    by: &str,
    points: i64,
    now: i64,
) -> Result<(), Failure> {
    let transfer_id = format!("{by}:restore");
    let moved = loyalty::post_points(
        tx,
        PointsMove {
            transfer_id: &transfer_id,
            merchant_id: &payment.merchant_id,
            user_id,
            payment_id: Some(&payment.id),
            kind: PointsKind::Restore,
            points,
            now_ms: now,
        },
    )
    .await?;
    if moved.is_none() {
        tracing::error!(payment = %payment.id, "redeemed points not given back: a credit was refused");
        return Err(Failure::internal());
    }
    Ok(())
}

/// Points for `amount_minor` under a program: its basis points, rounded
/// down, at most its cap.
fn points_for(program: &Program, amount_minor: i64) -> i64 {
    let bps = program.points_bps.unwrap_or(0);
    let points = i128::from(amount_minor) * i128::from(bps) / 10_000;
    let points = i64::try_from(points).unwrap_or(i64::MAX);
    program.points_cap.map_or(points, |cap| points.min(cap))
}

/// Credits the points and stamps a captured payment earns, in the
/// capture's transaction.
pub(crate) async fn earn(
    tx: &mut facepay_store::Connection,
    payment: &Payment,
    now: i64,
) -> Result<Option<LoyaltyReceipt>, Failure> {
    let Some(user_id) = payment.user_id.as_deref() else {
        return Ok(None);
    };
    let merchant_id = &payment.merchant_id;
    let programs = loyalty::active_programs(tx, merchant_id).await?;
    if programs.is_empty() {
        return Ok(None);
    }
    let (points_programs, stamp_programs): (Vec<&Program>, Vec<&Program>) =
        programs.iter().partition(|p| p.kind == "points");
    let mut earned = LoyaltyReceipt::default();
    // The last move answers the balance, which the receipt shows without
    // reading it again.
    let mut points_balance = None;
    for program in &points_programs {
        let points = points_for(program, payment.captured_minor);
        if points == 0 {
            continue;
        }
        let transfer_id = format!("{}:earn:{}", payment.id, program.id);
        let moved = loyalty::post_points(
            tx,
            PointsMove {
                transfer_id: &transfer_id,
                merchant_id,
                user_id,
                payment_id: Some(&payment.id),
                kind: PointsKind::Earn,
                points,
                now_ms: now,
            },
        )
        .await?;
        let Some(balance) = moved else {
            tracing::error!(payment = %payment.id, "points not earned: a credit was refused");
            return Err(Failure::internal());
        };
        earned.points_earned += points;
        points_balance = Some(balance);
    }
    for program in &stamp_programs {
        add_stamp(tx, program, payment, user_id, now, &mut earned).await?;
    }
    earned.points_balance = match points_balance {
        Some(balance) => balance,
        None => loyalty::points_balance(tx, merchant_id, user_id).await?,
    };
    Ok(Some(earned))
}

/// A stamp on the payer's card of `program`, and its reward coupon when
/// the stamp fills the card and the coupon can still be used.
async fn add_stamp(
    tx: &mut facepay_store::Connection,
    program: &Program,
    payment: &Payment,
    user_id: &str,
    now: i64,
    earned: &mut LoyaltyReceipt,
) -> Result<(), Failure> {
    let stamps = loyalty::add_stamp(tx, &program.id, user_id, &payment.id).await?;
    let every = program.stamps_per_reward.unwrap_or(i64::MAX).max(1);
    // The stamps on the card now: a full card starts again.
    let on_card = match stamps % every {
        0 => every,
        n => n,
    };
    earned.stamps = Some(earned.stamps.unwrap_or(0).max(on_card));
    let Some(reward_id) = program.reward_coupon_id.as_deref() else {
        return Ok(());
    };
    if stamps % every != 0 {
        return Ok(());
    }
    let reward = loyalty::coupon(tx, reward_id).await?;
    let usable = reward
        .as_ref()
        .is_some_and(|c| c.status == "active" && c.valid_from_ms <= now && now < c.valid_until_ms);
    if usable {
        loyalty::grant_coupon(tx, reward_id, user_id).await?;
        loyalty::mark_rewarded(tx, &payment.id, &program.id).await?;
        earned.rewards.extend(reward.map(|c| c.name));
    }
    Ok(())
}

/// Settles loyalty with a refund, in the refund's transaction: the points
/// the payment earned are taken back and the points it redeemed given back
/// in the proportion it is now refunded; a full refund also gives back its
/// coupons and takes back its stamps (with the reward they completed, if
/// unused). Points already spent cannot be taken back: the payer's balance
/// is taken down to zero at most. A payment that ends without a capture
/// gives everything back. Returns the points taken back.
pub(crate) async fn give_back(
    tx: &mut facepay_store::Connection,
    after: &Payment,
    refund_id: &str,
    now: i64,
) -> Result<i64, Failure> {
    let Some(user_id) = after.user_id.as_deref() else {
        return Ok(0);
    };
    if after.captured_minor <= 0 {
        undo_discount(tx, after, now).await?;
        return Ok(0);
    }
    let share = |points: i64| {
        let part = i128::from(points) * i128::from(after.refunded_minor)
            / i128::from(after.captured_minor);
        i64::try_from(part).unwrap_or(i64::MAX)
    };
    let moved = loyalty::payment_points(tx, &after.id).await?;
    let restore_due = share(moved.redeemed) - moved.restored;
    if restore_due > 0 {
        restore_points(tx, after, user_id, refund_id, restore_due, now).await?;
    }
    if after.refunded_minor >= after.captured_minor {
        loyalty::take_back_stamps(tx, &after.id, user_id).await?;
        loyalty::restore_coupons(tx, &after.id).await?;
    }
    let due = share(moved.earned) - moved.clawed_back;
    if due <= 0 {
        return Ok(0);
    }
    let transfer_id = format!("{refund_id}:clawback");
    // Another refund of this payer's may spend the balance between the
    // read and the move: read again and take what is there.
    for _ in 0..CLAW_BACK_TRIES {
        let balance = loyalty::points_balance(tx, &after.merchant_id, user_id).await?;
        let points = due.min(balance);
        if points <= 0 {
            return Ok(0);
        }
        let taken = loyalty::post_points(
            tx,
            PointsMove {
                transfer_id: &transfer_id,
                merchant_id: &after.merchant_id,
                user_id,
                payment_id: Some(&after.id),
                kind: PointsKind::Clawback,
                points,
                now_ms: now,
            },
        )
        .await?;
        if taken.is_some() {
            return Ok(points);
        }
    }
    tracing::warn!(payment = %after.id, "points not taken back: the balance kept moving");
    Ok(0)
}

/// What a payment will take from the payer: coupons with what each takes
/// off, and points.
struct Plan {
    coupons: Vec<(Coupon, i64)>,
    points: i64,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.coupons.is_empty() && self.points == 0
    }

    fn discount(&self) -> Discount {
        Discount {
            coupons: self
                .coupons
                .iter()
                .map(|(c, d)| (c.name.clone(), *d))
                .collect(),
            points: self.points,
        }
    }
}

/// Takes the payer's coupons and points for a payment before its card is
/// charged, in a transaction of its own that also touches the payment's row
/// (or writes it, when there is none yet); the
/// card is then asked only for the rest. A payment racing this one for the
/// last use of a coupon finds it gone and is planned again without it. A
/// crash before the payment's own transaction leaves it created, holding
/// them, until the sweep of abandoned payments gives them back.
/// `tried_before`: an earlier try of the payment may have reserved some
/// already (kept for the same payer). Returns the payment as stored now,
/// and the discount.
pub(crate) async fn reserve_discount(
    core: &Core,
    stored: Option<&Payment>,
    tried_before: bool,
    payment: &Payment,
) -> Result<(Option<Payment>, Discount), Failure> {
    let user_id = payment.user_id.as_deref().ok_or_else(Failure::internal)?;
    if stored.is_some()
        && tried_before
        && let Some(kept) = keep_earlier(core, payment, user_id).await?
    {
        return Ok((stored.cloned(), kept));
    }
    for _ in 0..RESERVE_TRIES {
        let now = core.now_ms();
        let plan = plan(core, payment, user_id, now).await?;
        if plan.is_empty() {
            return Ok((stored.cloned(), Discount::default()));
        }
        if let Some(before) = take(core, (stored, tried_before), payment, &plan, now).await? {
            let discount = plan.discount();
            assert!(discount.total_minor() < payment.amount_minor);
            return Ok((Some(before), discount));
        }
    }
    Err(Failure::new(
        503,
        "loyalty_busy",
        "the payer's coupons and points kept changing; try the payment again",
    ))
}

/// A retried step-up finds what its first try reserved: kept if it is this
/// payer's (returned), another payer's given back first (`None`).
async fn keep_earlier(
    core: &Core,
    payment: &Payment,
    user_id: &str,
) -> Result<Option<Discount>, Failure> {
    let mut conn = core.conn().await?;
    let kept = reserved(&mut conn, &payment.id).await?;
    if kept.is_empty() {
        return Ok(None);
    }
    let uses = loyalty::coupon_uses(&mut conn, &payment.id).await?;
    let redeemer = loyalty::redeemer(&mut conn, &payment.id).await?;
    drop(conn);
    let theirs = uses.iter().all(|u| u.restored == 1 || u.user_id == user_id)
        && redeemer.as_deref().is_none_or(|r| r == user_id);
    if theirs {
        return Ok(Some(kept));
    }
    let mut tx = core.begin().await?;
    undo_discount(&mut tx, payment, core.now_ms()).await?;
    commit(tx).await?;
    Ok(None)
}

/// The coupons and points the payer's choice and balance give `payment`.
async fn plan(core: &Core, payment: &Payment, user_id: &str, now: i64) -> Result<Plan, Failure> {
    let merchant_id = &payment.merchant_id;
    let loyalty::PayerLoyalty {
        choice,
        points_balance,
        usable,
    } = loyalty::payer_loyalty(&mut *core.conn().await?, merchant_id, user_id, now).await?;
    let balance = match &choice {
        Some(c) if c.redeem_points == 1 => points_balance,
        _ => 0,
    };
    let picked = choice.as_ref().and_then(|c| c.coupon_id.as_deref());
    let coupons: Vec<(Coupon, i64)> = choose(payment.amount_minor, &usable, picked)
        .into_iter()
        .map(|(c, d)| (c.clone(), d))
        .collect();
    let coupons_minor: i64 = coupons.iter().map(|(_, d)| d).sum();
    let points = balance.min(payment.amount_minor - 1 - coupons_minor).max(0);
    Ok(Plan { coupons, points })
}

/// Takes what `plan` says with the payment recorded, in one transaction;
/// `None` (rolled back) when another payment took a use or the points
/// first.
async fn take(
    core: &Core,
    (stored, tried_before): (Option<&Payment>, bool),
    payment: &Payment,
    plan: &Plan,
    now: i64,
) -> Result<Option<Payment>, Failure> {
    let (merchant_id, user_id) = (&payment.merchant_id, payment.user_id.as_deref());
    let user_id = user_id.ok_or_else(Failure::internal)?;
    let mut tx = core.begin().await?;
    let mut before = stored_or_created(&mut tx, stored, payment).await?;
    if stored.is_some() && tried_before {
        // Touched, so that no sweep takes it for abandoned meanwhile (a
        // row this request wrote is new enough).
        let mut touched = before.clone();
        touched.updated_at_ms = now;
        crate::core::transition(&mut tx, &before, &touched).await?;
        before = touched;
    }
    // Coupons, then points, as `undo_discount` gives them back; in the
    // coupons' order, so that two payments stacking the same coupons
    // never deadlock.
    let mut coupons: Vec<&(Coupon, i64)> = plan.coupons.iter().collect();
    coupons.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    for (coupon, off) in coupons {
        let used = loyalty::use_coupon(
            &mut tx,
            merchant_id,
            coupon,
            user_id,
            &payment.id,
            *off,
            now,
        )
        .await?;
        if !used {
            return Ok(None);
        }
    }
    if plan.points > 0 {
        let transfer_id = format!("{}:redeem", payment.id);
        let redeemed = loyalty::post_points(
            &mut tx,
            PointsMove {
                transfer_id: &transfer_id,
                merchant_id,
                user_id,
                payment_id: Some(&payment.id),
                kind: PointsKind::Redeem,
                points: plan.points,
                now_ms: now,
            },
        )
        .await?;
        if redeemed.is_none() {
            return Ok(None);
        }
    }
    commit(tx).await?;
    Ok(Some(before))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coupon(id: &str, kind: &str, value: i64, stackable: bool) -> Coupon {
        Coupon {
            id: id.into(),
            merchant_id: "m".into(),
            name: id.into(),
            kind: kind.into(),
            value,
            min_spend_minor: 0,
            valid_from_ms: 0,
            valid_until_ms: i64::MAX,
            per_user_max: 1,
            total_max: None,
            used_count: 0,
            stackable: i64::from(stackable),
            granted_only: 0,
            status: "active".into(),
            created_at_ms: 0,
        }
    }

    fn chosen(amount_minor: i64, usable: &[Coupon], picked: Option<&str>) -> Vec<(String, i64)> {
        choose(amount_minor, usable, picked)
            .into_iter()
            .map(|(c, d)| (c.id.clone(), d))
            .collect()
    }

    #[test]
    fn the_best_of_one_lone_coupon_and_the_stackable_ones_applies() {
        let usable = [
            coupon("alone", "fixed", 700, false),
            coupon("a", "fixed", 300, true),
            coupon("b", "percent", 1_000, true),
        ];
        let pair = vec![("b".to_owned(), 500), ("a".to_owned(), 300)];
        assert_eq!(chosen(5_000, &usable, None), pair, "800 beats 700");
        assert_eq!(
            chosen(2_000, &usable, None),
            vec![("alone".to_owned(), 700)],
            "700 beats 300 + 200"
        );
        let mut small = usable.clone();
        small[0].min_spend_minor = 10_000;
        assert_eq!(chosen(5_000, &small, None), pair, "under its minimum spend");
    }

    #[test]
    fn a_picked_coupon_applies_first_and_alone_unless_stackable() {
        let usable = [
            coupon("alone", "fixed", 700, false),
            coupon("a", "fixed", 300, true),
            coupon("b", "fixed", 100, true),
        ];
        assert_eq!(
            chosen(5_000, &usable, Some("b")),
            vec![("b".to_owned(), 100), ("a".to_owned(), 300)]
        );
        let mut lone = usable.clone();
        lone[0].value = 50;
        assert_eq!(
            chosen(5_000, &lone, Some("alone")),
            vec![("alone".to_owned(), 50)],
            "picked, though the stack takes more off"
        );
        assert_eq!(
            chosen(5_000, &usable, Some("gone")),
            chosen(5_000, &usable, None),
            "a pick that is not usable leaves the best"
        );
    }

    #[test]
    fn coupons_leave_the_card_one_minor_unit_and_stack_three_at_most() {
        let free = [coupon("free", "percent", 10_000, false)];
        assert_eq!(chosen(4_500, &free, None), vec![("free".to_owned(), 4_499)]);
        let many: Vec<Coupon> = (1..=5)
            .map(|i| coupon(&format!("s{i}"), "fixed", 100 * i, true))
            .collect();
        let ids: Vec<String> = chosen(10_000, &many, None)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["s5", "s4", "s3"]);
        let capped = chosen(1_000, &many, None);
        assert_eq!(capped.iter().map(|(_, d)| d).sum::<i64>(), 999);
        assert!(chosen(1, &many, None).is_empty(), "nothing to take off");
    }

    #[test]
    fn points_round_down_and_stop_at_the_cap() {
        let program = Program {
            id: "lp".into(),
            merchant_id: "m".into(),
            kind: "points".into(),
            status: "active".into(),
            points_bps: Some(150),
            points_cap: Some(100),
            stamps_per_reward: None,
            reward_coupon_id: None,
            created_at_ms: 0,
        };
        assert_eq!(points_for(&program, 4_500), 67, "1.5% of 4,500 is 67.5");
        assert_eq!(points_for(&program, 1_000_000), 100, "capped");
        assert_eq!(points_for(&program, 50), 0);
    }
}
