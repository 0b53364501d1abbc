//! The risk engine, asked on every payment between identification and
//! authorisation: is this the payer, and should this payment go through?
//!
//! The caller gathers the payment's [`Signals`]; the engine runs the rules
//! of a TOML file (each compares one signal with a bound and adds its
//! weight when it fires), consults the block and allow lists, and answers
//! with an [`Assessment`]: a [`Decision`] (approve, step up with a factor
//! chosen by the score, review, decline) and every rule that fired, with
//! its reason in words. The rules can be replaced while payments run
//! ([`RiskEngine::reload`]); a file that does not parse or does not make
//! sense leaves the old rules in place.

mod signals;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use serde::Deserialize;

pub use signals::{
    HISTORY_MAX, HISTORY_MIN, Seen, Signal, Signals, robust_z_score, travel_speed_kmh,
};

/// The rules a deployment starts with.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");
/// The demo's rules: the default ones without the small-hours rule (the
/// demo runs at any hour, and its payers are new accounts paying somewhere
/// for the first time), and a step-up for amounts from 100,000 won, which
/// the demo shows once.
pub const DEMO_RULES: &str = include_str!("demo_rules.toml");
/// Rules that decide nothing: no rule, and thresholds no score reaches.
/// For tests and demos about something other than fraud, where a few
/// faces paying many times a minute is what the default rules question.
pub const APPROVE_ALL: &str = "[decision]\nstep_up_from = 1000\nreview_from = 1000\n\
     decline_from = 1000\nfactors = [{ from = 1000, factor = \"pin\" }]\n";

/// Rules in one file at most.
pub const RULES_MAX: usize = 256;
/// Entries in one block or allow list at most.
pub const LIST_MAX: usize = 100_000;
/// The largest weight a rule can carry.
pub const WEIGHT_MAX: u32 = 1_000;
/// The largest bound a rule may compare a count of payments with: counts
/// are counted only as far as the rules need ([`Rules::count_limit`]), and
/// this keeps that bounded.
pub const COUNT_BOUND_MAX: f64 = 1_000_000.0;

#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    #[error("the rules file does not parse: {0}")]
    Parse(String),
    #[error("the rules file is not usable: {0}")]
    Invalid(String),
}

/// What a step-up asks the payer for, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    /// The last four digits of their phone number.
    PhoneLast4,
    /// All of them.
    PhoneFull,
    Pin,
    /// A tap of their IC card, checked by its cryptogram.
    CardTap,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::PhoneLast4 => "phone_last4",
            Factor::PhoneFull => "phone_full",
            Factor::Pin => "pin",
            Factor::CardTap => "card_tap",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    StepUp(Factor),
    /// Authorise, but hold the capture until someone releases it.
    Review,
    Decline,
}

/// A rule that fired, or a list that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub rule: String,
    pub weight: u32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub decision: Decision,
    pub score: u32,
    pub fired: Vec<Fired>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    decision: Thresholds,
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
    #[serde(default)]
    block: Lists,
    #[serde(default)]
    allow: Lists,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Thresholds {
    step_up_from: u32,
    review_from: u32,
    decline_from: u32,
    /// The factor asked for from each score on; the strongest reached wins.
    factors: Vec<FactorFrom>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FactorFrom {
    from: u32,
    factor: Factor,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    name: String,
    signal: Signal,
    above: Option<f64>,
    below: Option<f64>,
    /// Inclusive bounds, for a signal such as the hour of the day.
    between: Option<[f64; 2]>,
    weight: u32,
    /// A step-up this rule causes asks for this factor at least.
    factor: Option<Factor>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lists {
    #[serde(default)]
    users: HashSet<String>,
    #[serde(default)]
    cards: HashSet<String>,
    #[serde(default)]
    terminals: HashSet<String>,
    #[serde(default)]
    merchants: HashSet<String>,
    #[serde(default)]
    countries: HashSet<String>,
}

impl Lists {
    fn len_max(&self) -> usize {
        [
            &self.users,
            &self.cards,
            &self.terminals,
            &self.merchants,
            &self.countries,
        ]
        .iter()
        .map(|l| l.len())
        .max()
        .unwrap_or(0)
    }

    /// The first entry of these lists the payment matches, as "list:value".
    fn matching(&self, s: &Signals) -> Option<String> {
        [
            ("user", &self.users, &s.user_id),
            ("card", &self.cards, &s.card_fingerprint),
            ("terminal", &self.terminals, &s.terminal_id),
            ("merchant", &self.merchants, &s.merchant_id),
            ("country", &self.countries, &s.country),
        ]
        .into_iter()
        .find(|(_, list, value)| list.contains(value.as_str()))
        .map(|(name, _, value)| format!("{name}:{value}"))
    }
}

impl Rule {
    /// Why the rule fires on `value`, or `None`. A value that is not a
    /// number fires: a broken signal must not pass a payment quietly.
    ///
    /// `counted_to_limit`: the value is a count stopped at its limit
    /// ([`Rules::count_limit`]), so the whole count is at least that.
    fn fires(&self, value: f64, counted_to_limit: bool) -> Option<String> {
        let name = &self.name;
        if value.is_nan() {
            return Some(format!("{name}: not a number"));
        }
        if let Some(bound) = self.above
            && value > bound
        {
            let at_least = if counted_to_limit { "at least " } else { "" };
            return Some(format!("{name}: {at_least}{value} above {bound}"));
        }
        if let Some(bound) = self.below
            && value < bound
        {
            return Some(format!("{name}: {value} below {bound}"));
        }
        if let Some([low, high]) = self.between
            && (low..=high).contains(&value)
        {
            return Some(format!("{name}: {value} within {low} to {high}"));
        }
        None
    }
}

impl RulesFile {
    fn parse(text: &str) -> Result<Self, RiskError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| RiskError::Parse(e.to_string()))?;
        file.check()?;
        Ok(file)
    }

    fn check(&self) -> Result<(), RiskError> {
        let invalid = |what: String| Err(RiskError::Invalid(what));
        let t = &self.decision;
        if !(t.step_up_from <= t.review_from && t.review_from <= t.decline_from) {
            return invalid("step_up_from <= review_from <= decline_from must hold".into());
        }
        if t.factors.is_empty()
            || t.factors[0].from != t.step_up_from
            || t.factors
                .windows(2)
                .any(|w| w[0].from >= w[1].from || w[0].factor >= w[1].factor)
        {
            return invalid(
                "factors must start at step_up_from and grow in score and strength".into(),
            );
        }
        if self.rules.len() > RULES_MAX {
            return invalid(format!("{} rules; at most {RULES_MAX}", self.rules.len()));
        }
        let mut names = HashSet::new();
        for rule in &self.rules {
            if rule.name.is_empty() || !names.insert(rule.name.as_str()) {
                return invalid(format!("rule name {:?} empty or repeated", rule.name));
            }
            let bounds = [
                rule.above.is_some(),
                rule.below.is_some(),
                rule.between.is_some(),
            ];
            if bounds.iter().filter(|b| **b).count() != 1 {
                return invalid(format!(
                    "rule {}: give exactly one of above, below, between",
                    rule.name
                ));
            }
            let finite = rule
                .above
                .into_iter()
                .chain(rule.below)
                .chain(rule.between.into_iter().flatten());
            if rule.signal.is_count() && finite.clone().any(|x| x > COUNT_BOUND_MAX) {
                return invalid(format!(
                    "rule {}: a count's bounds must be at most {COUNT_BOUND_MAX}",
                    rule.name
                ));
            }
            if finite.clone().any(|x| !x.is_finite())
                || rule.between.is_some_and(|[low, high]| low > high)
                || rule.weight > WEIGHT_MAX
            {
                return invalid(format!(
                    "rule {}: bounds must be finite and ordered, weight at most {WEIGHT_MAX}",
                    rule.name
                ));
            }
        }
        if self.block.len_max() > LIST_MAX || self.allow.len_max() > LIST_MAX {
            return invalid(format!("a list longer than {LIST_MAX} entries"));
        }
        Ok(())
    }

    fn assess(&self, s: &Signals) -> Assessment {
        let blocked = s.blocked.clone().or_else(|| self.block.matching(s));
        let listed = match blocked {
            Some(entry) => Some((Decision::Decline, "blocklist", format!("blocked: {entry}"))),
            None => self
                .allow
                .matching(s)
                .map(|entry| (Decision::Approve, "allowlist", format!("allowed: {entry}"))),
        };
        if let Some((decision, rule, reason)) = listed {
            return Assessment {
                decision,
                score: 0,
                fired: vec![Fired {
                    rule: rule.into(),
                    weight: 0,
                    reason,
                }],
            };
        }
        let mut fired = Vec::new();
        let mut score = 0u32;
        let mut floor: Option<Factor> = None;
        for rule in &self.rules {
            let counted_to_limit = |v: f64| {
                rule.signal.is_counted_to_limit() && v >= f64::from(self.count_limit(rule.signal))
            };
            let Some(reason) = s
                .value(rule.signal)
                .and_then(|v| rule.fires(v, counted_to_limit(v)))
            else {
                continue;
            };
            score = score.saturating_add(rule.weight);
            floor = floor.max(rule.factor);
            fired.push(Fired {
                rule: rule.name.clone(),
                weight: rule.weight,
                reason,
            });
        }
        let t = &self.decision;
        let decision = if score >= t.decline_from {
            Decision::Decline
        } else if score >= t.review_from {
            Decision::Review
        } else if score >= t.step_up_from {
            let by_score = t
                .factors
                .iter()
                .rev()
                .find(|f| score >= f.from)
                .map_or(Factor::PhoneLast4, |f| f.factor);
            Decision::StepUp(by_score.max(floor.unwrap_or(by_score)))
        } else {
            Decision::Approve
        };
        Assessment {
            decision,
            score,
            fired,
        }
    }
}

/// The rules in force, replaceable while payments are assessed.
pub struct RiskEngine {
    rules: RwLock<Rules>,
}

/// The rules in force at one moment. A payment reads them once, so the
/// counts gathered for it and its assessment follow the same rules even
/// while they are replaced.
#[derive(Clone)]
pub struct Rules(Arc<RulesFile>);

impl Rules {
    pub fn assess(&self, signals: &Signals) -> Assessment {
        self.0.assess(signals)
    }

    /// How far a count of payments needs counting: one past the highest
    /// bound any rule compares it with, 0 when no rule reads it. A count
    /// stopped there decides every rule exactly as the whole count would,
    /// and a busy merchant's payments are not read one by one for a rule
    /// nobody wrote.
    pub fn count_limit(&self, signal: Signal) -> u32 {
        self.0.count_limit(signal)
    }
}

impl RulesFile {
    fn count_limit(&self, signal: Signal) -> u32 {
        assert!(signal.is_count());
        let highest = self
            .rules
            .iter()
            .filter(|r| r.signal == signal)
            .flat_map(|r| {
                r.above
                    .into_iter()
                    .chain(r.below)
                    .chain(r.between.into_iter().flatten())
            })
            .fold(None, |top: Option<f64>, b| {
                Some(top.map_or(b, |t| t.max(b)))
            });
        match highest {
            None => 0,
            // Checked when the rules were read: finite, at most COUNT_BOUND_MAX.
            Some(bound) => bound.clamp(0.0, COUNT_BOUND_MAX).ceil() as u32 + 1,
        }
    }
}

impl RiskEngine {
    pub fn from_toml(text: &str) -> Result<Self, RiskError> {
        Ok(Self {
            rules: RwLock::new(Rules(Arc::new(RulesFile::parse(text)?))),
        })
    }

    /// Replaces the rules; on an error the old ones stay in force.
    pub fn reload(&self, text: &str) -> Result<(), RiskError> {
        let fresh = Rules(Arc::new(RulesFile::parse(text)?));
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    pub fn rules(&self) -> Rules {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn assess(&self, signals: &Signals) -> Assessment {
        self.rules().assess(signals)
    }
}

#[cfg(test)]
mod tests;
