//! Checks of the sections that deserialize as they are: every number has
//! a floor and a ceiling, every named file exists.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::Path;

use crate::DatabaseUrl;
use crate::error::{ConfigError, Location, Origins};
use crate::secret::{Secret, SecretSource};
use crate::sections::{
    Face, Fx, FxSourceKind, Gallery, GalleryKind, Hub, IMAGE_BYTES_MAX, Limits, NetworkKind,
    Retention, Risk, RiskPreset, Server, Webhooks,
};

const THREADS_MAX: u64 = 256;
const INFERENCE_CONCURRENCY_MAX: u64 = 256;
const CONNECTIONS_MAX: u64 = 1_000_000;
const TIMEOUT_MS_MAX: u64 = 3_600_000;
const JSON_BODY_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// facepay-gallery's `BITS_MAX`.
const PREFILTER_BITS_MAX: u64 = 4_096;
const CANDIDATES_MAX: u64 = 1_000_000;
/// facepay-gallery refuses more graph neighbours re-scored than this.
const HNSW_CANDIDATES_MAX: u64 = 4_096;
const HNSW_DEGREE_MAX: u64 = 4_096;
/// facepay-gallery's `CELLS_MAX` and `IVF_CANDIDATES_MAX`.
const IVF_CELLS_MAX: u64 = 65_536;
const IVF_CANDIDATES_MAX: u64 = 65_536;
/// facepay-gallery's default `rerank`: an inverted file keeps at least as
/// many candidates.
const IVF_CANDIDATES_MIN: u64 = 64;
/// A hub fee over 10% is a typing mistake.
const FEE_BPS_MAX: u64 = 1_000;
const NETWORKS_MAX: usize = 64;
const FX_SOURCES_MAX: usize = 16;
const FIXED_RATES_MAX: usize = 1_024;
const NAME_LEN_MAX: usize = 64;
const RATE_VALID_FOR_S_MAX: u64 = 7 * 24 * 3_600;
const HOURS_MAX: u64 = 366 * 24;
/// Card networks hold an authorisation for about a month at most.
const AUTHORISATION_HOLD_HOURS_MAX: u64 = 31 * 24;
const MINUTES_MAX: u64 = 7 * 24 * 60;
const ATTEMPTS_MAX: u64 = 1_000;
const WEBHOOK_TIMEOUT_MS_MAX: u64 = 60_000;
const WEBHOOK_CONCURRENCY_MAX: u64 = 256;
/// Receivers are retried for three days at most, as the longest-trying
/// payment platforms do.
const WEBHOOK_RETRY_WINDOW_HOURS_MAX: u64 = 72;
const WEBHOOK_POLL_INTERVAL_MS_MAX: u64 = 60_000;
/// Queued face analyses beyond this are memory held for nothing: the
/// request timeout ends them first.
const ENROLMENT_WAITING_MAX: u64 = 1_024;
/// A thousand face analyses a second from one address is no limit at all.
const FACE_WORK_PER_MINUTE_MAX: u64 = 60_000;
const FACE_WORK_BURST_MAX: u64 = 10_000;
/// About a hundred bytes each: a million addresses is a hundred
/// megabytes.
const FACE_WORK_ADDRESSES_MAX: u64 = 1_000_000;
/// facepay-payments' member id for facepay itself.
pub(crate) const FACEPAY_MEMBER_ID: &str = "kr.facepay";
/// The suffix that marks a simulated member network.
pub const SIMULATED_NETWORK_SUFFIX: &str = ".sim";

/// Builds errors located where their key was set, and resolves secrets
/// from the environment the configuration was loaded with.
pub(crate) struct Checker<'a> {
    pub origins: &'a Origins,
    pub env: &'a BTreeMap<String, String>,
}

impl Checker<'_> {
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            at: self.origins.locate(key),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn missing(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Missing {
            at: self.origins.locate(key),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn range(
        &self,
        key: &str,
        value: u64,
        bounds: RangeInclusive<u64>,
    ) -> Result<(), ConfigError> {
        if value < *bounds.start() {
            return Err(self.invalid(key, format!("must be at least {}", bounds.start())));
        }
        if value > *bounds.end() {
            return Err(self.invalid(key, format!("must be at most {}", bounds.end())));
        }
        Ok(())
    }

    /// The file must exist and be a file: a start-up that finds it
    /// missing later is a worse place to learn it.
    pub fn file(&self, key: &str, path: &Path) -> Result<(), ConfigError> {
        let reason = match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => return Ok(()),
            Ok(_) => format!("{} is not a file", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("the file {} does not exist", path.display())
            }
            Err(e) => format!("cannot read the file {}: {e}", path.display()),
        };
        Err(ConfigError::File {
            at: self.origins.locate(key),
            key: key.to_owned(),
            reason,
        })
    }

    pub fn secret(&self, key: &str, source: SecretSource) -> Result<Secret, ConfigError> {
        if let SecretSource::Env(name) = &source
            && name.starts_with("FACEPAY_")
            && name.contains("__")
        {
            return Err(self.invalid(
                key,
                format!("{name} would be read as a configuration key; name the variable without a double underscore"),
            ));
        }
        Secret::resolve(source, self.env).map_err(|reason| ConfigError::Secret {
            at: self.origins.locate(key),
            key: key.to_owned(),
            reason,
        })
    }

    /// A password in a database URL is a secret: it may come from the
    /// environment (`FACEPAY_STORE__URL`), never from the file.
    pub fn database_url(&self, key: &str, url: &DatabaseUrl) -> Result<(), ConfigError> {
        if url.has_password() && matches!(self.origins.locate(key), Location::File { .. }) {
            let variable = format!("FACEPAY_{}", key.replace('.', "__").to_ascii_uppercase());
            return Err(self.invalid(
                key,
                format!("holds a password, and secrets are never written in the file; set {variable} in the environment instead"),
            ));
        }
        Ok(())
    }

    /// An `http://` or `https://` address, with no user, query or
    /// fragment.
    pub fn http_url(&self, key: &str, text: &str) -> Result<(), ConfigError> {
        let url =
            url::Url::parse(text).map_err(|e| self.invalid(key, format!("is not a URL: {e}")))?;
        let plain = url.username().is_empty() && url.password().is_none();
        let plain = plain && url.query().is_none() && url.fragment().is_none();
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() || !plain {
            return Err(self.invalid(
                key,
                "must be an http:// or https:// address, with no user, query or fragment",
            ));
        }
        Ok(())
    }
}

/// Whether the URL's host is this machine.
pub(crate) fn is_loopback_url(text: &str) -> bool {
    match url::Url::parse(text)
        .ok()
        .and_then(|url| url.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

pub(crate) fn server(server: &Server, cx: &Checker) -> Result<(), ConfigError> {
    if let Some(url) = &server.public_url {
        cx.http_url("server.public_url", url)?;
    }
    if let Some(tls) = &server.tls {
        cx.file("server.tls.cert_file", &tls.cert_file)?;
        cx.file("server.tls.key_file", &tls.key_file)?;
    }
    let s = server;
    cx.range(
        "server.connections_max",
        s.connections_max,
        1..=CONNECTIONS_MAX,
    )?;
    cx.range(
        "server.requests_in_flight_max",
        s.requests_in_flight_max,
        1..=CONNECTIONS_MAX,
    )?;
    cx.range(
        "server.header_timeout_ms",
        s.header_timeout_ms,
        1..=TIMEOUT_MS_MAX,
    )?;
    cx.range(
        "server.request_timeout_ms",
        s.request_timeout_ms,
        1..=TIMEOUT_MS_MAX,
    )?;
    cx.range(
        "server.idle_timeout_ms",
        s.idle_timeout_ms,
        1..=TIMEOUT_MS_MAX,
    )?;
    cx.range(
        "server.json_body_bytes_max",
        s.json_body_bytes_max,
        1..=JSON_BODY_BYTES_MAX,
    )?;
    cx.range(
        "server.image_bytes_max",
        s.image_bytes_max,
        1..=IMAGE_BYTES_MAX,
    )
}

pub(crate) fn face(face: &Face, cx: &Checker) -> Result<(), ConfigError> {
    cx.range("face.threads", face.threads, 1..=THREADS_MAX)?;
    cx.range(
        "face.inference_concurrency",
        face.inference_concurrency,
        1..=INFERENCE_CONCURRENCY_MAX,
    )?;
    cx.range(
        "face.enrolment_inference_concurrency",
        face.enrolment_inference_concurrency,
        1..=INFERENCE_CONCURRENCY_MAX,
    )?;
    cx.range(
        "face.enrolment_waiting_max",
        face.enrolment_waiting_max,
        1..=ENROLMENT_WAITING_MAX,
    )
}

pub(crate) fn gallery(gallery: &Gallery, cx: &Checker) -> Result<(), ConfigError> {
    cx.range("gallery.threads", gallery.threads, 1..=THREADS_MAX)?;
    match gallery.kind {
        GalleryKind::Exact => Ok(()),
        GalleryKind::Prefilter => {
            let p = &gallery.prefilter;
            cx.range("gallery.prefilter.bits", p.bits, 64..=PREFILTER_BITS_MAX)?;
            if !p.bits.is_multiple_of(64) {
                return Err(cx.invalid("gallery.prefilter.bits", "must be a multiple of 64"));
            }
            cx.range(
                "gallery.prefilter.candidates",
                p.candidates,
                1..=CANDIDATES_MAX,
            )
        }
        GalleryKind::Hnsw => {
            if !gallery.keep_floats {
                // The graph is rebuilt from the floats at every start.
                return Err(cx.invalid(
                    "gallery.keep_floats",
                    "kind = \"hnsw\" needs the floats kept",
                ));
            }
            let h = &gallery.hnsw;
            cx.range(
                "gallery.hnsw.connectivity",
                h.connectivity,
                2..=HNSW_DEGREE_MAX,
            )?;
            cx.range(
                "gallery.hnsw.expansion_add",
                h.expansion_add,
                1..=HNSW_DEGREE_MAX,
            )?;
            cx.range(
                "gallery.hnsw.expansion_search",
                h.expansion_search,
                1..=HNSW_DEGREE_MAX,
            )?;
            cx.range(
                "gallery.hnsw.candidates",
                h.candidates,
                1..=HNSW_CANDIDATES_MAX,
            )
        }
        GalleryKind::Ivf => {
            let i = &gallery.ivf;
            cx.range("gallery.ivf.cells", i.cells, 1..=IVF_CELLS_MAX)?;
            cx.range("gallery.ivf.probes", i.probes, 1..=i.cells)?;
            cx.range(
                "gallery.ivf.candidates",
                i.candidates,
                IVF_CANDIDATES_MIN..=IVF_CANDIDATES_MAX,
            )
        }
    }
}

pub(crate) fn hub(hub: &Hub, cx: &Checker) -> Result<(), ConfigError> {
    cx.range("hub.fee_bps", u64::from(hub.fee_bps), 0..=FEE_BPS_MAX)?;
    if hub.networks.len() > NETWORKS_MAX {
        return Err(cx.invalid("hub.networks", format!("at most {NETWORKS_MAX} networks")));
    }
    let mut seen = BTreeSet::new();
    for (index, network) in hub.networks.iter().enumerate() {
        let key = format!("hub.networks[{index}].id");
        let id = network.id.as_str();
        let well_formed = !id.is_empty()
            && id.len() <= NAME_LEN_MAX
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b));
        if !well_formed {
            return Err(cx.invalid(
                &key,
                format!("a network id is 1 to {NAME_LEN_MAX} of a-z, 0-9, '.', '-' and '_'"),
            ));
        }
        if id == FACEPAY_MEMBER_ID {
            return Err(cx.invalid(
                &key,
                format!("{FACEPAY_MEMBER_ID} is facepay's own member id; see hub.facepay_member"),
            ));
        }
        // A simulator is always visibly one, wherever its id is shown.
        let simulated = network.kind == NetworkKind::Simulated;
        if simulated != id.ends_with(SIMULATED_NETWORK_SUFFIX) {
            return Err(cx.invalid(
                &key,
                format!("the id of a simulated network, and only of one, ends in {SIMULATED_NETWORK_SUFFIX}"),
            ));
        }
        if !seen.insert(id) {
            return Err(cx.invalid(&key, format!("{id} is named twice")));
        }
    }
    Ok(())
}

pub(crate) fn fx(fx: &Fx, cx: &Checker) -> Result<(), ConfigError> {
    if fx.sources.len() > FX_SOURCES_MAX {
        return Err(cx.invalid("fx.sources", format!("at most {FX_SOURCES_MAX} sources")));
    }
    let mut simulated = false;
    for (index, source) in fx.sources.iter().enumerate() {
        let key = format!("fx.sources[{index}]");
        match source.kind {
            FxSourceKind::Simulated if simulated => {
                return Err(cx.invalid(&key, "the simulated rates are named twice"));
            }
            FxSourceKind::Simulated if !source.rates.is_empty() => {
                return Err(cx.invalid(&format!("{key}.rates"), "only a fixed source takes rates"));
            }
            FxSourceKind::Simulated => simulated = true,
            FxSourceKind::Fixed => fixed_rates(source, &key, cx)?,
        }
    }
    Ok(())
}

fn fixed_rates(
    source: &crate::sections::FxSource,
    key: &str,
    cx: &Checker,
) -> Result<(), ConfigError> {
    if source.rates.is_empty() || source.rates.len() > FIXED_RATES_MAX {
        return Err(cx.invalid(
            &format!("{key}.rates"),
            format!("a fixed source lists 1 to {FIXED_RATES_MAX} rates"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (index, rate) in source.rates.iter().enumerate() {
        let key = format!("{key}.rates[{index}]");
        if rate.provider.is_empty() || rate.provider.len() > NAME_LEN_MAX {
            return Err(cx.invalid(
                &format!("{key}.provider"),
                format!("1 to {NAME_LEN_MAX} characters"),
            ));
        }
        if rate.source == rate.destination {
            return Err(cx.invalid(&format!("{key}.destination"), "is the source currency"));
        }
        let spread_max = u64::from(facepay_fx::SPREAD_BPS_MAX);
        cx.range(
            &format!("{key}.spread_bps"),
            u64::from(rate.spread_bps),
            0..=spread_max,
        )?;
        cx.range(
            &format!("{key}.valid_for_s"),
            rate.valid_for_s,
            1..=RATE_VALID_FOR_S_MAX,
        )?;
        if !seen.insert((&rate.provider, rate.source.code(), rate.destination.code())) {
            return Err(cx.invalid(&key, "this provider's rate for this pair is given twice"));
        }
    }
    Ok(())
}

pub(crate) fn risk(risk: &Risk, cx: &Checker) -> Result<(), ConfigError> {
    let Some(path) = &risk.rules_file else {
        return Ok(());
    };
    let key = "risk.rules_file";
    if risk.preset != RiskPreset::Default {
        return Err(cx.invalid(
            "risk.preset",
            "a rules_file replaces the preset; name one or the other",
        ));
    }
    cx.file(key, path)?;
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        at: cx.origins.locate(key),
        key: key.to_owned(),
        reason: format!("cannot read the file {}: {e}", path.display()),
    })?;
    facepay_risk::RiskEngine::from_toml(&text)
        .map(drop)
        .map_err(|e| cx.invalid(key, format!("{}: {e}", path.display())))
}

pub(crate) fn retention(retention: &Retention, cx: &Checker) -> Result<(), ConfigError> {
    let r = retention;
    cx.range(
        "retention.idempotency_hours",
        r.idempotency_hours,
        1..=HOURS_MAX,
    )?;
    cx.range(
        "retention.authorisation_hold_hours",
        r.authorisation_hold_hours,
        1..=AUTHORISATION_HOLD_HOURS_MAX,
    )?;
    cx.range(
        "retention.abandoned_after_minutes",
        r.abandoned_after_minutes,
        1..=MINUTES_MAX,
    )
}

pub(crate) fn limits(limits: &Limits, cx: &Checker) -> Result<(), ConfigError> {
    let l = limits;
    cx.range(
        "limits.idempotency_lease_ms",
        l.idempotency_lease_ms,
        1..=TIMEOUT_MS_MAX,
    )?;
    cx.range(
        "limits.step_up_attempts_max",
        l.step_up_attempts_max,
        1..=ATTEMPTS_MAX,
    )?;
    cx.range(
        "limits.terminal_attempts_max",
        l.terminal_attempts_max,
        1..=ATTEMPTS_MAX,
    )?;
    cx.range(
        "limits.factor_failures_max",
        l.factor_failures_max,
        1..=ATTEMPTS_MAX,
    )?;
    cx.range(
        "limits.factor_lock_minutes",
        l.factor_lock_minutes,
        1..=MINUTES_MAX,
    )?;
    cx.range(
        "limits.enrolments_per_address_per_minute",
        l.enrolments_per_address_per_minute,
        1..=FACE_WORK_PER_MINUTE_MAX,
    )?;
    cx.range(
        "limits.enrolment_burst_per_address",
        l.enrolment_burst_per_address,
        1..=FACE_WORK_BURST_MAX,
    )?;
    cx.range(
        "limits.photo_analyses_per_address_per_minute",
        l.photo_analyses_per_address_per_minute,
        1..=FACE_WORK_PER_MINUTE_MAX,
    )?;
    cx.range(
        "limits.photo_analysis_burst_per_address",
        l.photo_analysis_burst_per_address,
        1..=FACE_WORK_BURST_MAX,
    )?;
    cx.range(
        "limits.face_work_addresses_max",
        l.face_work_addresses_max,
        1..=FACE_WORK_ADDRESSES_MAX,
    )
}

pub(crate) fn webhooks(webhooks: &Webhooks, cx: &Checker) -> Result<(), ConfigError> {
    let w = webhooks;
    cx.range(
        "webhooks.timeout_ms",
        w.timeout_ms,
        100..=WEBHOOK_TIMEOUT_MS_MAX,
    )?;
    cx.range(
        "webhooks.concurrency",
        w.concurrency,
        1..=WEBHOOK_CONCURRENCY_MAX,
    )?;
    cx.range(
        "webhooks.retry_delay_first_ms",
        w.retry_delay_first_ms,
        1..=TIMEOUT_MS_MAX,
    )?;
    cx.range(
        "webhooks.retry_window_hours",
        w.retry_window_hours,
        1..=WEBHOOK_RETRY_WINDOW_HOURS_MAX,
    )?;
    cx.range(
        "webhooks.disable_after_hours",
        w.disable_after_hours,
        1..=HOURS_MAX,
    )?;
    cx.range(
        "webhooks.poll_interval_ms",
        w.poll_interval_ms,
        10..=WEBHOOK_POLL_INTERVAL_MS_MAX,
    )?;
    // Kept past the last retry, so that the log shows every attempt.
    cx.range(
        "webhooks.retention_hours",
        w.retention_hours,
        w.retry_window_hours + 1..=HOURS_MAX,
    )
}
