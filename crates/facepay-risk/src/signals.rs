//! What the risk engine knows about one payment, and the small sums that
//! turn a user's history into a signal.

use serde::Deserialize;

/// Everything a rule can look at, gathered by the caller between
/// identification and authorisation. `None` where there is no history
/// to say (a first payment has no amount z-score and no travel speed).
#[derive(Debug, Clone, Default)]
pub struct Signals {
    pub user_id: String,
    pub card_fingerprint: String,
    pub terminal_id: String,
    pub merchant_id: String,
    /// ISO 3166 alpha-2 of the store.
    pub country: String,
    /// Cosine of the best candidate, and its lead over the second.
    pub match_score: f64,
    pub match_margin: f64,
    pub liveness_score: f64,
    /// The amount in the store currency's minor units.
    pub amount_minor: i64,
    /// How unusual the amount is for this user ([`robust_z_score`]).
    pub amount_z_score: Option<f64>,
    /// Payments by this user, card, terminal and merchant in the windows
    /// the caller counts over (the last hour, say).
    pub user_payments_1h: u32,
    pub card_payments_1h: u32,
    pub terminal_payments_10m: u32,
    pub merchant_payments_1m: u32,
    /// Active accounts holding this card: more than one is how a stolen
    /// card number being tested under fresh accounts looks.
    pub card_accounts: u32,
    /// Speed needed to get here from the user's last payment
    /// ([`travel_speed_kmh`]).
    pub travel_speed_kmh: Option<f64>,
    pub first_at_merchant: bool,
    pub first_at_terminal: bool,
    /// Declined, unmatched or spoof-flagged attempts at this terminal in
    /// the last ten minutes: an attack in progress looks like this.
    pub terminal_failures_10m: u32,
    /// Local hour of the day at the store, 0 to 23.
    pub local_hour: u8,
    pub account_age_days: u32,
    pub pin_failures_24h: u32,
    /// An entry of the run-time blocklist (kept by the caller's store, fed
    /// by accepted fraud claims) that this payment matches, in words.
    pub blocked: Option<String>,
}

/// The numbers a rule can compare, by the name the rules file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    MatchScore,
    MatchMargin,
    LivenessScore,
    AmountMinor,
    AmountZScore,
    #[serde(rename = "user_payments_1h")]
    UserPayments1h,
    #[serde(rename = "card_payments_1h")]
    CardPayments1h,
    #[serde(rename = "terminal_payments_10m")]
    TerminalPayments10m,
    #[serde(rename = "merchant_payments_1m")]
    MerchantPayments1m,
    CardAccounts,
    TravelSpeedKmh,
    FirstAtMerchant,
    FirstAtTerminal,
    #[serde(rename = "terminal_failures_10m")]
    TerminalFailures10m,
    LocalHour,
    AccountAgeDays,
    #[serde(rename = "pin_failures_24h")]
    PinFailures24h,
}

impl Signal {
    /// A count of payments over a window, which the store may count only
    /// as far as the rules need ([`crate::Rules::count_limit`]).
    pub fn is_count(self) -> bool {
        matches!(
            self,
            Signal::UserPayments1h
                | Signal::CardPayments1h
                | Signal::TerminalPayments10m
                | Signal::MerchantPayments1m
        )
    }

    /// The count the store stops at its limit: a busy merchant's last
    /// minute. The others are bounded by the pace of one person, card or
    /// terminal, and counted whole.
    pub fn is_counted_to_limit(self) -> bool {
        self == Signal::MerchantPayments1m
    }
}

impl Signals {
    /// The value of `signal` (flags as 0 or 1); `None` when unknown.
    pub fn value(&self, signal: Signal) -> Option<f64> {
        let flag = |b: bool| Some(f64::from(u8::from(b)));
        match signal {
            Signal::MatchScore => Some(self.match_score),
            Signal::MatchMargin => Some(self.match_margin),
            Signal::LivenessScore => Some(self.liveness_score),
            // Exact up to 2^53 minor units, far past any payment.
            Signal::AmountMinor => Some(self.amount_minor as f64),
            Signal::AmountZScore => self.amount_z_score,
            Signal::UserPayments1h => Some(f64::from(self.user_payments_1h)),
            Signal::CardPayments1h => Some(f64::from(self.card_payments_1h)),
            Signal::TerminalPayments10m => Some(f64::from(self.terminal_payments_10m)),
            Signal::MerchantPayments1m => Some(f64::from(self.merchant_payments_1m)),
            Signal::CardAccounts => Some(f64::from(self.card_accounts)),
            Signal::TravelSpeedKmh => self.travel_speed_kmh,
            Signal::FirstAtMerchant => flag(self.first_at_merchant),
            Signal::FirstAtTerminal => flag(self.first_at_terminal),
            Signal::TerminalFailures10m => Some(f64::from(self.terminal_failures_10m)),
            Signal::LocalHour => Some(f64::from(self.local_hour)),
            Signal::AccountAgeDays => Some(f64::from(self.account_age_days)),
            Signal::PinFailures24h => Some(f64::from(self.pin_failures_24h)),
        }
    }
}

/// Past amounts looked at at most.
pub const HISTORY_MAX: usize = 1_000;
/// Fewer past payments than this say nothing about what is usual.
pub const HISTORY_MIN: usize = 5;

/// How far `amount_minor` lies from the user's usual amounts, in robust
/// standard deviations: (amount − median) / (1.4826 × median absolute
/// deviation), which a few past outliers do not move the way they move a
/// mean. `None` with too little history; a history of one repeated amount
/// counts any other amount as far (the deviation floor is 1 % of the
/// median, at least one minor unit).
pub fn robust_z_score(history_minor: &[i64], amount_minor: i64) -> Option<f64> {
    let recent = &history_minor[history_minor.len().saturating_sub(HISTORY_MAX)..];
    if recent.len() < HISTORY_MIN {
        return None;
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        }
    };
    let mut values: Vec<f64> = recent.iter().map(|&a| a as f64).collect();
    let centre = median(&mut values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    let spread = (1.4826 * median(&mut deviations)).max((centre.abs() / 100.0).max(1.0));
    Some((amount_minor as f64 - centre) / spread)
}

/// A place and a time: a store's position (microdegrees) at a payment.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub latitude_e6: i64,
    pub longitude_e6: i64,
    pub at_ms: i64,
}

/// The speed needed to go from `from` to `to` along the Earth's surface
/// (haversine), in km/h. Two payments in one place are 0 km/h whatever the
/// time between them; two places at once (or out of order) are infinitely
/// fast, so a rule on speed fires rather than staying quiet.
pub fn travel_speed_kmh(from: Seen, to: Seen) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6_371.0;
    let radians = |e6: i64| (e6 as f64 / 1e6).to_radians();
    let (lat1, lat2) = (radians(from.latitude_e6), radians(to.latitude_e6));
    let dlat = lat2 - lat1;
    let dlon = radians(to.longitude_e6) - radians(from.longitude_e6);
    let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    let km = 2.0 * EARTH_RADIUS_KM * a.sqrt().clamp(0.0, 1.0).asin();
    if km < 1e-6 {
        return 0.0;
    }
    let hours = (to.at_ms - from.at_ms) as f64 / 3_600_000.0;
    if hours > 0.0 {
        km / hours
    } else {
        f64::INFINITY
    }
}
