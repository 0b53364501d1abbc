//! What a configuration names, in a few lines for people: printed by
//! `facepay config check`.

use std::fmt;

use crate::Config;
use crate::resolve::{Connector, KeyParts, KeyProvider, Vault};
use crate::sections::{FxSourceKind, Liveness, StoreKind, WebhookDestinations};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// One line per part: "store: sqlite in .facepay/data".
    pub parts: Vec<String>,
    /// The simulated outside parties ([`Config::simulated_parts`]).
    pub simulated: Vec<String>,
    /// What is fine for development and wrong for real payments.
    pub warnings: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            writeln!(f, "{part}")?;
        }
        if !self.simulated.is_empty() {
            let simulated = self.simulated.join(", ");
            writeln!(f, "SIMULATED, no real money moves through: {simulated}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "WARNING: {warning}")?;
        }
        Ok(())
    }
}

pub(crate) fn of(config: &Config) -> Summary {
    let mut parts = vec![server(config), store(config)];
    let KeyProvider::File { dir } = &config.keys.provider;
    parts.push(format!(
        "keys: files in {}; transform secrets in {}",
        dir.display(),
        config.keys.transforms_dir.display()
    ));
    parts.push(vault(&config.vault));
    parts.push(match &config.connector {
        Connector::SimulatedIssuer(_) => {
            "connector: simulated_issuer (a simulator: no card is charged)".to_owned()
        }
        Connector::Hyperswitch(h) => format!("connector: hyperswitch at {}", h.base_url),
    });
    let face = &config.face;
    parts.push(format!(
        "face: {} backend, {} thread(s), liveness {}, {} payment and {} enrolment analyses at \
         once, PAD model {}",
        face.backend,
        face.threads,
        face.liveness,
        face.inference_concurrency,
        face.enrolment_inference_concurrency,
        if face.pad { "on" } else { "off" },
    ));
    let gallery = &config.gallery;
    parts.push(format!(
        "gallery: {}, {} thread(s), {}",
        gallery.kind,
        gallery.threads,
        match &gallery.snapshot_file {
            Some(path) => format!("snapshot in {}", path.display()),
            None => "no snapshot".to_owned(),
        }
    ));
    parts.push(hub(config));
    parts.push(match &config.risk.rules_file {
        Some(path) => format!("risk: rules from {}", path.display()),
        None => "risk: built-in rules".to_owned(),
    });
    let webhooks = &config.webhooks;
    parts.push(format!(
        "webhooks: to {} addresses, {} at once, retried for {} h",
        webhooks.destinations, webhooks.concurrency, webhooks.retry_window_hours
    ));
    Summary {
        parts,
        simulated: config.simulated_parts(),
        warnings: warnings(config),
    }
}

fn server(config: &Config) -> String {
    let server = &config.server;
    let scheme = if server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut line = format!("server: {scheme}://{}", server.address);
    if let Some(url) = &server.public_url {
        line.push_str(&format!(", public at {url}"));
    }
    if !server.trusted_proxies.is_empty() {
        line.push_str(&format!(
            ", {} trusted proxies",
            server.trusted_proxies.len()
        ));
    }
    line
}

fn store(config: &Config) -> String {
    match &config.store.url {
        None => format!("store: sqlite in {}", config.store.data_dir.display()),
        Some(url) => format!("store: {} at {url}", url.kind()),
    }
}

fn vault(vault: &Vault) -> String {
    match vault {
        Vault::Remote(remote) => format!("vault: remote at {}", remote.url),
        Vault::Embedded(embedded) => {
            let parts = match &embedded.key_parts {
                KeyParts::Files([first, second]) => format!(
                    "key parts from {} and {}",
                    first.display(),
                    second.display()
                ),
                KeyParts::Embedded => {
                    "both key parts kept in the vault directory (DEVELOPMENT ONLY)".to_owned()
                }
                KeyParts::FromCustodians => {
                    "locked until the custodians give their parts".to_owned()
                }
            };
            let store = match &embedded.database_url {
                Some(url) => format!("{} at {url}", url.kind()),
                None => format!("{} in {}", StoreKind::Sqlite, embedded.dir.display()),
            };
            format!("vault: embedded, {store}, {parts}")
        }
    }
}

fn hub(config: &Config) -> String {
    let hub = &config.hub;
    if !hub.enabled {
        return "hub: off".to_owned();
    }
    let mut members: Vec<String> = hub
        .networks
        .iter()
        .map(|n| format!("{} ({} {})", n.id, n.kind, n.country))
        .collect();
    if hub.facepay_member {
        members.insert(
            0,
            format!(
                "{} ({})",
                crate::checks::FACEPAY_MEMBER_ID,
                hub.home_currency
            ),
        );
    }
    let sources: Vec<String> = config
        .fx
        .sources
        .iter()
        .map(|s| match s.kind {
            FxSourceKind::Simulated => s.kind.to_string(),
            FxSourceKind::Fixed => format!("fixed ({} rates)", s.rates.len()),
        })
        .collect();
    let or_none = |list: Vec<String>| match list.is_empty() {
        true => "none".to_owned(),
        false => list.join(", "),
    };
    format!(
        "hub: on, fee {} bps, members {}; fx sources {}",
        hub.fee_bps,
        or_none(members),
        or_none(sources)
    )
}

fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Vault::Embedded(embedded) = &config.vault
        && embedded.key_parts == KeyParts::Embedded
    {
        warnings.push(
            "the vault keeps both custodians' key parts in its own directory: for development only; \
             give vault.custodian_part_files or set vault.embedded_parts = false"
                .to_owned(),
        );
    }
    if config.face.liveness == Liveness::Lenient {
        warnings
            .push("liveness is lenient: a still photo pays; for demonstrations only".to_owned());
    }
    let server = &config.server;
    if server.tls.is_none()
        && !server.address.ip().is_loopback()
        && server.trusted_proxies.is_empty()
    {
        warnings.push(format!(
            "plain HTTP on {}, which is not a loopback address, and no trusted proxy: \
             give [server.tls] or put a TLS proxy in front",
            server.address
        ));
    }
    if config.webhooks.destinations == WebhookDestinations::Any {
        warnings.push(
            "webhook deliveries may reach private networks and this machine \
             (webhooks.destinations = \"any\"): only when every merchant is trusted"
                .to_owned(),
        );
    }
    let hub = &config.hub;
    if hub.enabled && !hub.networks.is_empty() && config.fx.sources.is_empty() {
        warnings.push(
            "the hub has member networks but no FX source: quotes across currencies find no rate"
                .to_owned(),
        );
    }
    warnings
}
