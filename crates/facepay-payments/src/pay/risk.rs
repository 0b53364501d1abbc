//! The risk engine on every identified payment: the signals come from the
//! payer's history in the store and from the match itself; the assessment
//! (decision, score, the rules that fired) is what the pay flow acts on and
//! records with the payment.

use facepay_face::liveness::LivenessDecision;
use facepay_risk::{Assessment, Seen, Signal, Signals, robust_z_score, travel_speed_kmh};
use facepay_store::parties::{PaymentMethod, TerminalContext, User};
use facepay_store::risk::{self, Ask};

use super::Payments;
use crate::error::Failure;

/// The windows velocities are counted over.
const USER_WINDOW_MS: i64 = 3_600_000;
const CARD_WINDOW_MS: i64 = 3_600_000;
const TERMINAL_WINDOW_MS: i64 = 600_000;
const MERCHANT_WINDOW_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// Wrong PINs are counted over this window.
const PIN_WINDOW_MS: i64 = DAY_MS;
/// Refused attempts at a terminal are counted over this window, for the
/// risk signal and for throttling.
pub(crate) const TERMINAL_ATTEMPTS_WINDOW_MS: i64 = TERMINAL_WINDOW_MS;

/// What the risk engine is told about the match itself.
pub struct Matched<'a> {
    pub user: &'a User,
    pub method: &'a PaymentMethod,
    pub score: f32,
    pub lead: f32,
    pub liveness: LivenessDecision,
    pub amount_minor: i64,
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// The hour of mean solar time at a longitude: stores carry no time zone,
/// and the sun is what "the small hours" are about.
fn solar_hour(at_ms: i64, longitude_e6: i64) -> u8 {
    let offset_ms = longitude_e6 * 240 / 1_000; // 4 minutes a degree
    ((at_ms + offset_ms).rem_euclid(DAY_MS) / 3_600_000) as u8
}

impl Payments {
    /// Assesses a payment made now, by the services' clock (a scenario
    /// replays a day by setting its own). The payment's own row, if it
    /// has one, is not counted in its history.
    pub async fn assess_risk(
        &self,
        ctx: &TerminalContext,
        m: &Matched<'_>,
        payment_id: &str,
    ) -> Result<Assessment, Failure> {
        let now = self.core.now_ms();
        let rules = self.risk.rules();
        let history = {
            let mut conn = self.core.conn().await?;
            risk::history(
                &mut conn,
                &Ask {
                    payment_id,
                    user_id: &m.user.id,
                    card_fingerprint: m.method.fingerprint.as_deref(),
                    terminal_id: &ctx.terminal_id,
                    merchant_id: &ctx.merchant.id,
                    country: &ctx.store.country,
                    now_ms: now,
                    user_since_ms: now - USER_WINDOW_MS,
                    card_since_ms: now - CARD_WINDOW_MS,
                    terminal_since_ms: now - TERMINAL_WINDOW_MS,
                    merchant_since_ms: now - MERCHANT_WINDOW_MS,
                    merchant_count_limit: rules.count_limit(Signal::MerchantPayments1m).into(),
                    pin_since_ms: now - PIN_WINDOW_MS,
                },
            )
            .await?
        };
        let here = Seen {
            latitude_e6: ctx.store.latitude_e6,
            longitude_e6: ctx.store.longitude_e6,
            at_ms: now,
        };
        let signals = Signals {
            user_id: m.user.id.clone(),
            card_fingerprint: m.method.fingerprint.clone().unwrap_or_default(),
            terminal_id: ctx.terminal_id.clone(),
            merchant_id: ctx.merchant.id.clone(),
            country: ctx.store.country.clone(),
            match_score: f64::from(m.score),
            match_margin: f64::from(m.lead),
            liveness_score: match m.liveness {
                LivenessDecision::Live => 1.0,
                LivenessDecision::Inconclusive => 0.5,
                LivenessDecision::Spoof => 0.0,
            },
            amount_minor: m.amount_minor,
            amount_z_score: robust_z_score(&history.amounts_minor, m.amount_minor),
            user_payments_1h: count(history.user_payments),
            card_payments_1h: count(history.card_payments),
            terminal_payments_10m: count(history.terminal_payments),
            merchant_payments_1m: count(history.merchant_payments),
            card_accounts: count(history.card_accounts),
            travel_speed_kmh: history.last_place.map(|p| {
                let then = Seen {
                    latitude_e6: p.latitude_e6,
                    longitude_e6: p.longitude_e6,
                    at_ms: p.at_ms,
                };
                travel_speed_kmh(then, here)
            }),
            first_at_merchant: !history.paid_at_merchant,
            first_at_terminal: !history.paid_at_terminal,
            terminal_failures_10m: count(history.terminal_failures),
            local_hour: solar_hour(now, ctx.store.longitude_e6),
            account_age_days: count((now - m.user.created_at_ms) / DAY_MS),
            pin_failures_24h: count(history.pin_failures),
            blocked: history.blocked,
        };
        Ok(rules.assess(&signals))
    }
}

#[cfg(test)]
mod tests {
    use super::solar_hour;

    #[test]
    fn solar_hours_follow_the_longitude() {
        // Noon UTC is about 20:28 in Seoul (127 E) and about 1:28 in
        // Honolulu (158 W).
        let noon_ms = 12 * 3_600_000;
        assert_eq!(solar_hour(noon_ms, 127_000_000), 20);
        assert_eq!(solar_hour(noon_ms, -158_000_000), 1);
        assert_eq!(solar_hour(0, 0), 0);
    }
}
