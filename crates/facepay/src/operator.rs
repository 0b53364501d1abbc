//! `facepay operator ...`: a deployment's onboarding from the shell.
//! `init` writes the first admin operator straight into the store (no key
//! exists yet to call the API with); the other commands call the API with
//! an admin operator's key, as the operator console and `curl` do
//! (docs/onboarding.md).

use std::time::Duration;

use anyhow::{Context, bail};
use facepay_payments::access;
use serde_json::{Value, json};

use crate::ledger::StoreArgs;

/// How long one request may take, and how many times a request that got no
/// answer is sent again (with the same idempotency key, so at most one
/// merchant, store or terminal is made).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
const ATTEMPTS_MAX: u32 = 3;

#[derive(clap::Subcommand)]
pub enum OperatorCommand {
    /// Add an admin operator and print their key once.
    Init {
        /// Lower-case letters, digits, `_`, `.` and `-`.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add a merchant, active at once.
    Merchant(NewMerchant),
    /// Open a store of a merchant.
    Store(NewStore),
    /// Add a terminal to a store and print its one-time pairing code.
    Terminal(NewTerminal),
    /// Make a merchant's API key and print it once.
    MerchantKey(NewMerchantKey),
}

#[derive(clap::Args)]
pub struct NewMerchant {
    #[arg(long)]
    name: String,
    #[arg(long)]
    legal_name: String,
    /// Basis points of every captured amount, 0 to 10000.
    #[arg(long)]
    fee_bps: i64,
    /// ISO 4217 code.
    #[arg(long)]
    settlement_currency: String,
    #[command(flatten)]
    api: Api,
}

#[derive(clap::Args)]
pub struct NewStore {
    #[arg(long)]
    merchant: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    address: String,
    #[arg(long)]
    city: String,
    /// ISO 3166 two-letter code.
    #[arg(long)]
    country: String,
    #[arg(long, allow_negative_numbers = true)]
    latitude: f64,
    #[arg(long, allow_negative_numbers = true)]
    longitude: f64,
    /// An IANA time zone, such as Asia/Seoul.
    #[arg(long)]
    time_zone: String,
    /// ISO 4217 code of the store's payments.
    #[arg(long)]
    currency: String,
    /// Opens every day at HH:MM (with --closes); no set hours without.
    #[arg(long, requires = "closes")]
    opens: Option<String>,
    #[arg(long, requires = "opens")]
    closes: Option<String>,
    #[command(flatten)]
    api: Api,
}

#[derive(clap::Args)]
pub struct NewTerminal {
    #[arg(long)]
    store: String,
    #[arg(long)]
    name: String,
    #[command(flatten)]
    api: Api,
}

#[derive(clap::Args)]
pub struct NewMerchantKey {
    #[arg(long)]
    merchant: String,
    /// read, refund_capture or admin.
    #[arg(long, default_value = "admin")]
    scope: String,
    #[arg(long)]
    label: Option<String>,
    #[command(flatten)]
    api: Api,
}

/// Where the API is and the key to call it with.
#[derive(clap::Args)]
pub struct Api {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An admin operator's key. Better from the environment: a flag shows
    /// in process lists and shell history.
    #[arg(long, env = "FACEPAY_OPERATOR_KEY", hide_env_values = true)]
    operator_key: String,
    /// Print the API's whole answer as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Init { name, store } => init(&name, store),
        OperatorCommand::Merchant(m) => {
            let body = json!({ "name": m.name, "legal_name": m.legal_name,
                               "fee_bps": m.fee_bps, "settlement_currency": m.settlement_currency });
            let made = m.api.post("/v1/operator/merchants", &body)?;
            m.api.show(&made, || {
                format!(
                    "merchant {} ({}) is active",
                    text(&made["id"]),
                    text(&made["name"])
                )
            })
        }
        OperatorCommand::Store(s) => {
            let made = s.api.post("/v1/operator/stores", &s.body())?;
            s.api.show(&made, || {
                format!(
                    "store {} ({}) of {} is open, in {}",
                    text(&made["id"]),
                    text(&made["name"]),
                    s.merchant,
                    text(&made["time_zone"])
                )
            })
        }
        OperatorCommand::Terminal(t) => {
            let body = json!({ "store_id": t.store, "name": t.name });
            let made = t.api.post("/v1/operator/terminals", &body)?;
            t.api.show(&made, || {
                format!(
                    "terminal {} in store {}; its pairing code, shown once, for {} s:\n{}",
                    text(&made["terminal"]["id"]),
                    t.store,
                    seconds_left(&made),
                    text(&made["pairing_code"])
                )
            })
        }
        OperatorCommand::MerchantKey(k) => {
            let body = json!({ "scope": k.scope, "label": k.label });
            let path = format!("/v1/operator/merchants/{}/keys", k.merchant);
            let made = k.api.post(&path, &body)?;
            k.api.show(&made, || {
                format!(
                    "{} key {} of {} (shown once, keep it secret):\n{}",
                    text(&made["scope"]),
                    text(&made["id"]),
                    k.merchant,
                    text(&made["secret"])
                )
            })
        }
    }
}

fn init(name: &str, store: StoreArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let store = store.open().await?;
        let made = access::init_admin_operator(&store, name, facepay_store::now_ms()).await;
        store.close().await;
        let made = made?;
        println!(
            "admin operator {name}, key {} (shown once, keep it secret):\n{}",
            made.key.id, made.key.secret
        );
        Ok(())
    })
}

impl NewStore {
    fn body(&self) -> Value {
        let opening_hours: Vec<Value> = match (&self.opens, &self.closes) {
            (Some(opens), Some(closes)) => ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .map(|day| json!({ "day": day, "opens": opens, "closes": closes }))
                .collect(),
            _ => Vec::new(),
        };
        json!({ "merchant_id": self.merchant, "name": self.name, "address": self.address,
                "city": self.city, "country": self.country, "latitude": self.latitude,
                "longitude": self.longitude, "time_zone": self.time_zone,
                "currency": self.currency, "opening_hours": opening_hours })
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// Whole seconds until a pairing code expires, by this machine's clock.
fn seconds_left(made: &Value) -> i64 {
    let expires_at_ms = made["pairing_expires_at_ms"].as_i64().unwrap_or_default();
    (expires_at_ms - facepay_store::now_ms()).max(0) / 1000
}

impl Api {
    /// POSTs `body`; the answer's JSON, or the API's code and message as
    /// the error. A request that got no answer is sent again with the same
    /// idempotency key.
    fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(ATTEMPT_TIMEOUT))
            .build()
            .new_agent();
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let idempotency_key = facepay_terminal::new_idempotency_key()?;
        let mut attempt = 1;
        let mut response = loop {
            let sent = agent
                .post(&url)
                .header("authorization", &format!("Bearer {}", self.operator_key))
                .header("idempotency-key", &idempotency_key)
                .header("content-type", "application/json")
                .send(body.to_string());
            match sent {
                Ok(response) => break response,
                Err(e) if attempt >= ATTEMPTS_MAX => {
                    return Err(e).with_context(|| format!("no answer from {url}"));
                }
                Err(_) => attempt += 1,
            }
        };
        let status = response.status().as_u16();
        let answer: Value = response
            .body_mut()
            .read_json()
            .with_context(|| format!("{url} answered {status} without JSON"))?;
        if !(200..300).contains(&status) {
            bail!(
                "{status} {}: {}",
                answer["error"]["code"].as_str().unwrap_or("unknown"),
                answer["error"]["message"].as_str().unwrap_or("no message")
            );
        }
        Ok(answer)
    }

    /// The whole answer with `--json`, else the line `said` writes.
    fn show(&self, answer: &Value, said: impl FnOnce() -> String) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(answer)?);
        } else {
            println!("{}", said());
        }
        Ok(())
    }
}
