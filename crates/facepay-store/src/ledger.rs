//! The double-entry ledger. Every money movement is one transfer: a set of
//! entries (debits positive, credits negative) on single-currency accounts
//! that sums to zero, written in the caller's database transaction together
//! with the payment change it records. Balances are never stored; they are
//! sums of entries, so there is nothing to drift.
//!
//! The accounts of a card payment, per currency:
//! - `issuer_holds`: money the issuer has put on hold for us (authorised, not
//!   yet captured); mirrored by the merchant's `pending` account.
//! - `issuer_receivable`: captured money the issuer owes us; mirrored by the
//!   merchant's `payable` account, less the platform's fee.
//! - `platform:fees`: our fee on each capture.
//! - `platform:compensation`: what the platform paid fraud victims before
//!   recovering it from the merchant (an accepted claim pays the payer back
//!   from here at once; the recovery later charges the merchant's payable).
//!
//! Transfer ids are derived from the payment (or refund) and the step, so a
//! step posted twice is refused by the primary key: money cannot move twice.

use serde::Serialize;
use sqlx::Row;

use crate::{AnyQuery, Connection, Result, StoreError};

#[derive(Debug, Clone, Copy)]
pub enum Account<'a> {
    IssuerHolds,
    IssuerReceivable,
    MerchantPending(&'a str),
    MerchantPayable(&'a str),
    PlatformFees,
    PlatformCompensation,
    /// A hub participant's position: what a network or an FX provider owes
    /// the hub (positive) or is owed (negative) until settlement.
    HubPosition(&'a str),
    /// The hub's own fees.
    HubFees,
    /// What the hub owes a member for the funds it put in at the
    /// settlement bank (negative while it has funds there).
    HubFunds(&'a str),
    /// The hub's money at the settlement bank: members' funds in, and each
    /// settled position passing through.
    HubSettlementBank,
    /// facepay as a member network: card holds for payments abroad, what
    /// it owes the hub for them once captured, and what the hub owes it
    /// for its merchants' payments from abroad.
    MemberPending,
    MemberPayable,
    MemberReceivable,
}

impl Account<'_> {
    pub fn id(self, currency: &str) -> String {
        match self {
            Account::IssuerHolds => format!("issuer_holds:{currency}"),
            Account::IssuerReceivable => format!("issuer_receivable:{currency}"),
            Account::MerchantPending(m) => format!("merchant:{m}:pending:{currency}"),
            Account::MerchantPayable(m) => format!("merchant:{m}:payable:{currency}"),
            Account::PlatformFees => format!("platform:fees:{currency}"),
            Account::PlatformCompensation => format!("platform:compensation:{currency}"),
            Account::HubPosition(p) => format!("hub:position:{p}:{currency}"),
            Account::HubFees => format!("hub:fees:{currency}"),
            Account::HubFunds(m) => format!("hub:funds:{m}:{currency}"),
            Account::HubSettlementBank => format!("hub:settlement_bank:{currency}"),
            Account::MemberPending => format!("member:hub_pending:{currency}"),
            Account::MemberPayable => format!("member:hub_payable:{currency}"),
            Account::MemberReceivable => format!("member:hub_receivable:{currency}"),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Account::IssuerHolds => "issuer_holds",
            Account::IssuerReceivable => "issuer_receivable",
            Account::MerchantPending(_) => "merchant_pending",
            Account::MerchantPayable(_) => "merchant_payable",
            Account::PlatformFees => "platform_fees",
            Account::PlatformCompensation => "platform_compensation",
            Account::HubPosition(_) => "hub_position",
            Account::HubFees => "hub_fees",
            Account::HubFunds(_) => "hub_funds",
            Account::HubSettlementBank => "hub_settlement_bank",
            Account::MemberPending => "member_pending",
            Account::MemberPayable => "member_payable",
            Account::MemberReceivable => "member_receivable",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    Authorise,
    Capture,
    /// The rest of a hold released: a void, an expiry or the remainder of a
    /// partial capture.
    Release,
    Refund,
    /// The platform pays a fraud victim back in the merchant's stead.
    Compensation,
    /// The merchant pays the platform back for a compensation.
    Recovery,
    /// One currency's side of a committed hub transfer.
    Hub,
    /// A step of a leg facepay holds as a hub member.
    HubMember,
    /// A member's funds in or out at the settlement bank.
    HubFunds,
    /// A window's net position paid through the settlement bank.
    HubSettlement,
}

impl TransferKind {
    fn as_str(self) -> &'static str {
        match self {
            TransferKind::Authorise => "authorise",
            TransferKind::Capture => "capture",
            TransferKind::Release => "release",
            TransferKind::Refund => "refund",
            TransferKind::Compensation => "compensation",
            TransferKind::Recovery => "recovery",
            TransferKind::Hub => "hub",
            TransferKind::HubMember => "hub_member",
            TransferKind::HubFunds => "hub_funds",
            TransferKind::HubSettlement => "hub_settlement",
        }
    }
}

/// A bound on a transfer's legs (the most any transfer has is six: a
/// capture with its fee).
const LEGS_MAX: usize = 8;

/// The money side of one payment, as the ledger needs it.
#[derive(Debug, Clone, Copy)]
pub struct PaymentRef<'a> {
    pub payment_id: &'a str,
    pub merchant_id: &'a str,
    pub currency: &'a str,
}

/// Moves `amount_minor` onto hold.
pub async fn authorise(
    conn: &mut Connection,
    p: PaymentRef<'_>,
    amount_minor: i64,
    now_ms: i64,
) -> Result<()> {
    let legs = hold_legs(p.merchant_id, amount_minor);
    let id = format!("{}:authorise", p.payment_id);
    post(conn, &id, p, TransferKind::Authorise, &legs, now_ms).await
}

/// Turns `amount_minor` of the hold into money owed, less the fee.
pub async fn capture(
    conn: &mut Connection,
    p: PaymentRef<'_>,
    amount_minor: i64,
    fee_minor: i64,
    now_ms: i64,
) -> Result<()> {
    let legs = capture_legs(p.merchant_id, amount_minor, fee_minor);
    let id = format!("{}:capture", p.payment_id);
    post(conn, &id, p, TransferKind::Capture, &legs, now_ms).await
}

/// `authorise` then `capture` of the whole amount, in the statements of
/// one transfer: a payment captured as soon as it is approved.
pub async fn authorise_and_capture(
    conn: &mut Connection,
    p: PaymentRef<'_>,
    amount_minor: i64,
    fee_minor: i64,
    now_ms: i64,
) -> Result<()> {
    let hold = hold_legs(p.merchant_id, amount_minor);
    let captured = capture_legs(p.merchant_id, amount_minor, fee_minor);
    let (hold_id, capture_id) = (
        format!("{}:authorise", p.payment_id),
        format!("{}:capture", p.payment_id),
    );
    let transfers = [
        Transfer {
            id: &hold_id,
            kind: TransferKind::Authorise,
            legs: &hold,
        },
        Transfer {
            id: &capture_id,
            kind: TransferKind::Capture,
            legs: &captured,
        },
    ];
    post_all(conn, Some(p.payment_id), p.currency, &transfers, now_ms).await
}

fn hold_legs(merchant_id: &str, amount_minor: i64) -> [(Account<'_>, i64); 2] {
    [
        (Account::IssuerHolds, amount_minor),
        (Account::MerchantPending(merchant_id), -amount_minor),
    ]
}

fn capture_legs(merchant_id: &str, amount_minor: i64, fee_minor: i64) -> Vec<(Account<'_>, i64)> {
    assert!(fee_minor >= 0 && fee_minor <= amount_minor);
    let mut legs = vec![
        (Account::IssuerHolds, -amount_minor),
        (Account::MerchantPending(merchant_id), amount_minor),
        (Account::IssuerReceivable, amount_minor),
        (Account::MerchantPayable(merchant_id), -amount_minor),
    ];
    if fee_minor > 0 {
        legs.push((Account::MerchantPayable(merchant_id), fee_minor));
        legs.push((Account::PlatformFees, -fee_minor));
    }
    legs
}

/// Releases what is left of the hold.
pub async fn release(
    conn: &mut Connection,
    p: PaymentRef<'_>,
    amount_minor: i64,
    now_ms: i64,
) -> Result<()> {
    let legs = [
        (Account::IssuerHolds, -amount_minor),
        (Account::MerchantPending(p.merchant_id), amount_minor),
    ];
    let id = format!("{}:release", p.payment_id);
    post(conn, &id, p, TransferKind::Release, &legs, now_ms).await
}

/// Gives `amount_minor` back to the payer: the merchant owes that much less.
/// The fee is not returned, as with most acquirers.
pub async fn refund(
    conn: &mut Connection,
    p: PaymentRef<'_>,
    refund_id: &str,
    amount_minor: i64,
    now_ms: i64,
) -> Result<()> {
    let legs = [
        (Account::MerchantPayable(p.merchant_id), amount_minor),
        (Account::IssuerReceivable, -amount_minor),
    ];
    post(conn, refund_id, p, TransferKind::Refund, &legs, now_ms).await
}

/// Pays `amount_minor` back to the payer from the platform's compensation
/// account: the merchant's payable is untouched until [`recover`].
pub async fn compensate(
    conn: &mut Connection,
    p: PaymentRef<'_>,
    transfer_id: &str,
    amount_minor: i64,
    now_ms: i64,
) -> Result<()> {
    let legs = [
        (Account::PlatformCompensation, amount_minor),
        (Account::IssuerReceivable, -amount_minor),
    ];
    post(
        conn,
        transfer_id,
        p,
        TransferKind::Compensation,
        &legs,
        now_ms,
    )
    .await
}

/// Charges the merchant for what the platform compensated.
pub async fn recover(
    conn: &mut Connection,
    p: PaymentRef<'_>,
    transfer_id: &str,
    amount_minor: i64,
    now_ms: i64,
) -> Result<()> {
    let legs = [
        (Account::MerchantPayable(p.merchant_id), amount_minor),
        (Account::PlatformCompensation, -amount_minor),
    ];
    post(conn, transfer_id, p, TransferKind::Recovery, &legs, now_ms).await
}

/// Posts one currency's side of a committed hub transfer: `legs` on hub
/// accounts in `currency`, summing to zero.
pub async fn post_hub(
    conn: &mut Connection,
    transfer_id: &str,
    currency: &str,
    legs: &[(Account<'_>, i64)],
    now_ms: i64,
) -> Result<()> {
    assert!(
        legs.iter()
            .all(|(a, _)| matches!(a, Account::HubPosition(_) | Account::HubFees)),
        "hub transfers move hub accounts only"
    );
    post_in(
        conn,
        transfer_id,
        None,
        currency,
        TransferKind::Hub,
        legs,
        now_ms,
    )
    .await
}

/// Posts a member's funds in or out, or a settled position: `legs` on a
/// hub account and the settlement bank's, in `currency`, summing to zero.
pub async fn post_hub_bank(
    conn: &mut Connection,
    transfer_id: &str,
    kind: TransferKind,
    currency: &str,
    legs: &[(Account<'_>, i64)],
    now_ms: i64,
) -> Result<()> {
    assert!(matches!(
        kind,
        TransferKind::HubFunds | TransferKind::HubSettlement
    ));
    assert!(
        legs.iter().all(|(a, _)| matches!(
            a,
            Account::HubPosition(_)
                | Account::HubFees
                | Account::HubFunds(_)
                | Account::HubSettlementBank
        )),
        "settlement bank transfers move hub accounts only"
    );
    post_in(conn, transfer_id, None, currency, kind, legs, now_ms).await
}

/// Posts a step of a leg facepay holds as a hub member: card holds and
/// captures against the member accounts, or a merchant's credit.
pub async fn post_member(
    conn: &mut Connection,
    transfer_id: &str,
    currency: &str,
    legs: &[(Account<'_>, i64)],
    now_ms: i64,
) -> Result<()> {
    assert!(
        legs.iter().all(|(a, _)| matches!(
            a,
            Account::IssuerHolds
                | Account::IssuerReceivable
                | Account::MerchantPayable(_)
                | Account::MemberPending
                | Account::MemberPayable
                | Account::MemberReceivable
        )),
        "member legs move card and member accounts only"
    );
    post_in(
        conn,
        transfer_id,
        None,
        currency,
        TransferKind::HubMember,
        legs,
        now_ms,
    )
    .await
}

async fn post(
    conn: &mut Connection,
    transfer_id: &str,
    p: PaymentRef<'_>,
    kind: TransferKind,
    legs: &[(Account<'_>, i64)],
    now_ms: i64,
) -> Result<()> {
    post_in(
        conn,
        transfer_id,
        Some(p.payment_id),
        p.currency,
        kind,
        legs,
        now_ms,
    )
    .await
}

async fn post_in(
    conn: &mut Connection,
    transfer_id: &str,
    payment_id: Option<&str>,
    currency: &str,
    kind: TransferKind,
    legs: &[(Account<'_>, i64)],
    now_ms: i64,
) -> Result<()> {
    let transfer = Transfer {
        id: transfer_id,
        kind,
        legs,
    };
    post_all(conn, payment_id, currency, &[transfer], now_ms).await
}

/// One transfer of a [`post_all`].
struct Transfer<'a> {
    id: &'a str,
    kind: TransferKind,
    legs: &'a [(Account<'a>, i64)],
}

/// Transfers posted together, each balanced on its own.
const TRANSFERS_MAX: usize = 2;

/// Posts `transfers` in three statements however many there are and
/// however many legs they have (the transfers, their accounts, their
/// entries); on PostgreSQL, where each statement is a round trip, the
/// three are one (the first two as data-modifying `WITH` parts; the
/// entries' foreign key to their transfer is checked at the statement's
/// end, when the transfer's row is there).
async fn post_all(
    conn: &mut Connection,
    payment_id: Option<&str>,
    currency: &str,
    transfers: &[Transfer<'_>],
    now_ms: i64,
) -> Result<()> {
    assert!((1..=TRANSFERS_MAX).contains(&transfers.len()));
    for t in transfers {
        assert!(
            (2..=LEGS_MAX).contains(&t.legs.len()),
            "a transfer has two to {LEGS_MAX} legs"
        );
        assert!(t.legs.iter().all(|(_, amount)| *amount != 0), "zero leg");
        let sum: i128 = t.legs.iter().map(|(_, amount)| i128::from(*amount)).sum();
        assert_eq!(sum, 0, "transfer {} does not balance", t.id);
    }
    let legs: Vec<(&str, String, i64)> = transfers
        .iter()
        .flat_map(|t| {
            t.legs
                .iter()
                .map(|(a, amount)| (t.id, a.id(currency), *amount))
        })
        .collect();
    let mut accounts: Vec<(String, &'static str)> = Vec::new();
    for t in transfers {
        for (account, _) in t.legs {
            let id = account.id(currency);
            if !accounts.iter().any(|(known, _)| *known == id) {
                accounts.push((id, account.kind()));
            }
        }
    }
    let shape = (transfers.len(), accounts.len(), legs.len());
    if crate::on_postgres(conn) {
        let sql = post_sql(shape, true).join(" ");
        let query = bind_transfers(sqlx::query(&sql), transfers, payment_id, currency, now_ms);
        let query = bind_entries(bind_accounts(query, &accounts, currency, now_ms), &legs);
        query
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::from(e).duplicate_as("ledger transfer"))?;
        return Ok(());
    }
    let [transfers_sql, accounts_sql, entries_sql] = post_sql(shape, false);
    bind_transfers(
        sqlx::query(&transfers_sql),
        transfers,
        payment_id,
        currency,
        now_ms,
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from(e).duplicate_as("ledger transfer"))?;
    bind_accounts(sqlx::query(&accounts_sql), &accounts, currency, now_ms)
        .execute(&mut *conn)
        .await?;
    bind_entries(sqlx::query(&entries_sql), &legs)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn bind_transfers<'q>(
    mut q: AnyQuery<'q>,
    transfers: &'q [Transfer<'q>],
    payment_id: Option<&'q str>,
    currency: &'q str,
    now_ms: i64,
) -> AnyQuery<'q> {
    for t in transfers {
        q = q.bind(t.id).bind(payment_id).bind(t.kind.as_str());
        q = q.bind(currency).bind(now_ms);
    }
    q
}

fn bind_accounts<'q>(
    mut q: AnyQuery<'q>,
    accounts: &'q [(String, &'static str)],
    currency: &'q str,
    now_ms: i64,
) -> AnyQuery<'q> {
    for (id, kind) in accounts {
        q = q.bind(id.as_str()).bind(*kind).bind(currency).bind(now_ms);
    }
    q
}

fn bind_entries<'q>(mut q: AnyQuery<'q>, legs: &'q [(&'q str, String, i64)]) -> AnyQuery<'q> {
    for (transfer_id, account_id, amount) in legs {
        q = q.bind(*transfer_id).bind(account_id.as_str()).bind(*amount);
    }
    q
}

/// The statements of a [`post_all`] of `transfers`, `accounts` and `legs`
/// rows: three, or as `joined`, the parts of one (`WITH … INSERT`) whose
/// placeholders run on from one part to the next.
fn post_sql((transfers, accounts, legs): (usize, usize, usize), joined: bool) -> [String; 3] {
    let after = |binds: usize| if joined { binds } else { 0 };
    let (accounts_first, entries_first) =
        (after(transfers * 5), after(transfers * 5 + accounts * 4));
    let transfers_sql = format!(
        "INSERT INTO ledger_transfers (id, payment_id, kind, currency, created_at_ms) VALUES {}",
        crate::values_placeholders(transfers, 5)
    );
    let accounts_sql = format!(
        "INSERT INTO ledger_accounts (id, kind, currency, created_at_ms) VALUES {} \
         ON CONFLICT (id) DO NOTHING",
        crate::values_placeholders_after(accounts_first, accounts, 4)
    );
    let entries_sql = format!(
        "INSERT INTO ledger_entries (transfer_id, account_id, amount_minor) VALUES {}",
        crate::values_placeholders_after(entries_first, legs, 3)
    );
    if joined {
        return [
            format!("WITH transfers AS ({transfers_sql}),"),
            format!("accounts AS ({accounts_sql})"),
            entries_sql,
        ];
    }
    [transfers_sql, accounts_sql, entries_sql]
}

/// How many transfers a payment has posted.
pub async fn transfer_count(conn: &mut Connection, payment_id: &str) -> Result<i64> {
    Ok(sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger_transfers WHERE payment_id = $1",
    )
    .bind(payment_id)
    .fetch_one(conn)
    .await?
    .try_get("n")?)
}

#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    pub account_id: String,
    pub currency: String,
    pub balance_minor: i64,
}

/// Every account's balance, derived from its entries.
pub async fn balances(conn: &mut Connection) -> Result<Vec<Balance>> {
    let rows = sqlx::query(
        "SELECT a.id, a.currency, CAST(COALESCE(SUM(e.amount_minor), 0) AS BIGINT) AS balance \
         FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id \
         GROUP BY a.id, a.currency ORDER BY a.id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Balance {
                account_id: r.try_get("id")?,
                currency: r.try_get("currency")?,
                balance_minor: r.try_get("balance")?,
            })
        })
        .collect()
}

/// What `facepay ledger verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub transfers: i64,
    pub entries: i64,
    pub payments: i64,
    /// At most [`PROBLEMS_MAX`] descriptions; `problem_count` has them all.
    pub problems: Vec<String>,
    pub problem_count: i64,
}

pub const PROBLEMS_MAX: usize = 100;
/// Payments checked per query, so memory stays flat on a large store.
const VERIFY_PAGE: i64 = 1000;

impl Verification {
    pub(crate) fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < PROBLEMS_MAX {
            self.problems.push(text);
        }
    }

    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }
}

/// Proves the ledger's invariants over the whole store:
/// 1. every transfer has two or more legs and sums to zero, in the
///    currency of each of its accounts;
/// 2. for every payment, the legs of its transfers match its recorded
///    amounts and state: the hold still open equals what is authorised and
///    neither captured nor released, what is receivable equals captured less
///    refunded, what the merchant is owed equals that less the fee (less
///    compensation the platform paid and has not yet recovered), and the
///    compensation outstanding is what the payment's claims say;
/// 3. refunds never exceed the capture and add up to the refunded amount;
/// 4. the payment's events form one chain ending in its current state.
///
/// Then the hub's checks (5-7) and the references' (8).
pub async fn verify(conn: &mut Connection) -> Result<Verification> {
    let mut v = Verification::default();
    let counts = sqlx::query(
        "SELECT (SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_transfers) AS transfers, \
         (SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_entries) AS entries",
    )
    .fetch_one(&mut *conn)
    .await?;
    v.transfers = counts.try_get("transfers")?;
    v.entries = counts.try_get("entries")?;

    let unbalanced = sqlx::query(
        "SELECT t.id, CAST(COALESCE(SUM(e.amount_minor), 0) AS BIGINT) AS total, \
         CAST(COUNT(e.id) AS BIGINT) AS legs, \
         CAST(SUM(CASE WHEN a.currency <> t.currency THEN 1 ELSE 0 END) AS BIGINT) AS foreign_legs \
         FROM ledger_transfers t LEFT JOIN ledger_entries e ON e.transfer_id = t.id \
         LEFT JOIN ledger_accounts a ON a.id = e.account_id GROUP BY t.id \
         HAVING COALESCE(SUM(e.amount_minor), 0) <> 0 OR COUNT(e.id) < 2 \
         OR SUM(CASE WHEN a.currency <> t.currency THEN 1 ELSE 0 END) > 0",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in unbalanced {
        let id: String = row.try_get("id")?;
        let total: i64 = row.try_get("total")?;
        let legs: i64 = row.try_get("legs")?;
        let foreign: i64 = row.try_get::<Option<i64>, _>("foreign_legs")?.unwrap_or(0);
        v.problem(format!(
            "transfer {id}: sum {total}, {legs} legs, {foreign} legs in another currency"
        ));
    }

    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT p.id, p.state, p.amount_minor, p.authorised_minor, p.captured_minor, \
             p.refunded_minor, p.fee_minor, \
             CAST(COALESCE(SUM(CASE WHEN a.kind = 'issuer_holds' THEN e.amount_minor ELSE 0 END), 0) AS BIGINT) AS holds, \
             CAST(COALESCE(SUM(CASE WHEN a.kind = 'merchant_pending' THEN e.amount_minor ELSE 0 END), 0) AS BIGINT) AS pending, \
             CAST(COALESCE(SUM(CASE WHEN a.kind = 'issuer_receivable' THEN e.amount_minor ELSE 0 END), 0) AS BIGINT) AS receivable, \
             CAST(COALESCE(SUM(CASE WHEN a.kind = 'merchant_payable' THEN e.amount_minor ELSE 0 END), 0) AS BIGINT) AS payable, \
             CAST(COALESCE(SUM(CASE WHEN a.kind = 'platform_fees' THEN e.amount_minor ELSE 0 END), 0) AS BIGINT) AS fees, \
             CAST(COALESCE(SUM(CASE WHEN a.kind = 'platform_compensation' THEN e.amount_minor ELSE 0 END), 0) AS BIGINT) AS compensation \
             FROM payments p LEFT JOIN ledger_transfers t ON t.payment_id = p.id \
             LEFT JOIN ledger_entries e ON e.transfer_id = t.id \
             LEFT JOIN ledger_accounts a ON a.id = e.account_id \
             WHERE p.id > $1 GROUP BY p.id, p.state, p.amount_minor, p.authorised_minor, \
             p.captured_minor, p.refunded_minor, p.fee_minor ORDER BY p.id LIMIT $2",
        )
        .bind(&after)
        .bind(VERIFY_PAGE)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("id")?;
        for row in &rows {
            v.payments += 1;
            check_payment(conn, row, &mut v).await?;
        }
    }
    check_hub(conn, &mut v).await?;
    crate::hub_members::check(conn, &mut v).await?;
    crate::hub_settlement::check(conn, &mut v).await?;
    check_references(conn, &mut v).await?;
    Ok(v)
}

/// 5. A hub transfer whose payee was paid posted both currencies' sides;
///    any other posted none. Each window's net positions sum to zero in
///    every currency.
async fn check_hub(conn: &mut Connection, v: &mut Verification) -> Result<()> {
    let wrong = sqlx::query(
        "SELECT h.id, h.state, CAST(COUNT(t.id) AS BIGINT) AS posted FROM hub_transfers h \
         LEFT JOIN ledger_transfers t ON t.id = h.id || ':source' OR t.id = h.id || ':destination' \
         GROUP BY h.id, h.state \
         HAVING (h.state IN ('committed', 'payer_commit_pending')) <> (COUNT(t.id) = 2) \
         OR COUNT(t.id) NOT IN (0, 2)",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in wrong {
        let id: String = row.try_get("id")?;
        let state: String = row.try_get("state")?;
        let posted: i64 = row.try_get("posted")?;
        v.problem(format!(
            "hub transfer {id} ({state}): {posted} ledger sides posted"
        ));
    }
    let unbalanced = sqlx::query(
        "SELECT window_id, currency, CAST(SUM(net_minor) AS BIGINT) AS total FROM hub_positions \
         GROUP BY window_id, currency HAVING SUM(net_minor) <> 0",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in unbalanced {
        let window: String = row.try_get("window_id")?;
        let currency: String = row.try_get("currency")?;
        let total: i64 = row.try_get("total")?;
        v.problem(format!(
            "hub window {window}: {currency} positions sum to {total}"
        ));
    }
    Ok(())
}

/// References that PostgreSQL does not check (migration 0022): the rows
/// they name are shared by nearly every payment, and a foreign key would
/// lock them in each. Child table, its column, the table of the row named.
const UNCHECKED_REFERENCES: [(&str, &str, &str); 11] = [
    ("payments", "merchant_id", "merchants"),
    ("payments", "store_id", "stores"),
    ("payments", "terminal_id", "terminals"),
    ("ledger_entries", "account_id", "ledger_accounts"),
    ("points_transfers", "merchant_id", "merchants"),
    ("points_balances", "merchant_id", "merchants"),
    ("stamp_cards", "program_id", "loyalty_programs"),
    ("payment_stamps", "program_id", "loyalty_programs"),
    ("coupon_uses", "coupon_id", "coupons"),
    ("coupon_holdings", "coupon_id", "coupons"),
    ("terminal_attempts", "terminal_id", "terminals"),
];

/// 8. Every reference in [`UNCHECKED_REFERENCES`] names a row that exists.
async fn check_references(conn: &mut Connection, v: &mut Verification) -> Result<()> {
    for (table, column, parent) in UNCHECKED_REFERENCES {
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM {table} c WHERE c.{column} IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column})"
        );
        let missing: i64 = sqlx::query_scalar(&sql).fetch_one(&mut *conn).await?;
        if missing > 0 {
            v.problem(format!(
                "{table}.{column}: {missing} naming no row of {parent}"
            ));
        }
    }
    Ok(())
}

async fn check_payment(
    conn: &mut Connection,
    row: &sqlx::any::AnyRow,
    v: &mut Verification,
) -> Result<()> {
    let id: String = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let amount: i64 = row.try_get("amount_minor")?;
    let authorised: i64 = row.try_get("authorised_minor")?;
    let captured: i64 = row.try_get("captured_minor")?;
    let refunded: i64 = row.try_get("refunded_minor")?;
    let fee: i64 = row.try_get("fee_minor")?;
    let holds: i64 = row.try_get("holds")?;
    let pending: i64 = row.try_get("pending")?;
    let receivable: i64 = row.try_get("receivable")?;
    let payable: i64 = row.try_get("payable")?;
    let fees: i64 = row.try_get("fees")?;
    let compensation: i64 = row.try_get("compensation")?;

    let open_hold = if state == "authorised" {
        authorised - captured
    } else {
        0
    };
    let mut expect = |what: &str, got: i64, want: i64| {
        if got != want {
            v.problem(format!(
                "payment {id} ({state}): {what} is {got}, expected {want}"
            ));
        }
    };
    expect("hold on the issuer", holds, open_hold);
    expect("merchant's pending", pending, -open_hold);
    expect("issuer receivable", receivable, captured - refunded);
    // Compensation not yet recovered stands in for the merchant's refund.
    expect(
        "merchant's payable with compensation outstanding",
        payable + compensation,
        -(captured - fee - refunded),
    );
    expect("platform fee", fees, -fee);
    let outstanding: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(compensated_minor - recovered_minor), 0) AS BIGINT) AS total \
         FROM claims WHERE payment_id = $1",
    )
    .bind(&id)
    .fetch_one(&mut *conn)
    .await?
    .try_get("total")?;
    if compensation != outstanding {
        v.problem(format!(
            "payment {id}: the compensation account holds {compensation}, its claims say \
             {outstanding} is outstanding"
        ));
    }

    let amounts_ok = 0 <= refunded
        && refunded <= captured
        && captured <= authorised
        && authorised <= amount
        && 0 <= fee
        && fee <= captured;
    let state_ok = match state.as_str() {
        "created" | "requires_step_up" | "declined" | "failed" => authorised == 0,
        "authorised" => authorised > 0 && captured == 0,
        "voided" => authorised > 0 && captured == 0,
        "captured" => captured > 0 && refunded == 0,
        "partially_refunded" => 0 < refunded && refunded < captured,
        "refunded" => captured > 0 && refunded == captured,
        _ => false,
    };
    if !amounts_ok || !state_ok {
        v.problem(format!(
            "payment {id} ({state}): amounts out of order: amount {amount}, authorised \
             {authorised}, captured {captured}, refunded {refunded}, fee {fee}"
        ));
    }

    let refunds: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS total FROM refunds \
         WHERE payment_id = $1",
    )
    .bind(&id)
    .fetch_one(&mut *conn)
    .await?
    .try_get("total")?;
    if refunds != refunded {
        v.problem(format!(
            "payment {id}: refunds add up to {refunds}, the payment says {refunded}"
        ));
    }

    let events = crate::payments::events(conn, &id).await?;
    let mut previous: Option<&str> = None;
    for event in &events {
        if event.from_state.as_deref() != previous {
            v.problem(format!(
                "payment {id}: event to {} starts from {:?}, the state before was {previous:?}",
                event.to_state, event.from_state
            ));
        }
        previous = Some(&event.to_state);
    }
    if previous != Some(state.as_str()) {
        v.problem(format!(
            "payment {id}: last event ends in {previous:?}, the payment is {state}"
        ));
    }
    Ok(())
}
