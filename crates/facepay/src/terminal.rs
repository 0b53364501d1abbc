//! `facepay terminal pay`: a command-line terminal. It signs its requests
//! with its Ed25519 key exactly as a kiosk does, and retries a request that
//! got no answer with the same idempotency key, so it never pays twice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::SigningKey;
use facepay_payments::signing::{
    self, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP,
};
use serde::{Deserialize, Serialize};

/// Attempts per request when the server does not answer.
const ATTEMPTS_MAX: u32 = 5;
const TIMEOUT: Duration = Duration::from_secs(30);

/// A terminal's identity on disk: its id and secret key.
#[derive(Serialize, Deserialize)]
pub struct TerminalFile {
    pub terminal_id: String,
    pub secret_key_hex: String,
}

impl TerminalFile {
    pub fn load(path: &Path) -> anyhow::Result<(String, SigningKey)> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "{}: run `facepay demo` first to register a terminal",
                path.display()
            )
        })?;
        let file: TerminalFile = serde_json::from_str(&text)?;
        let bytes: [u8; 32] = hex::decode(&file.secret_key_hex)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("the terminal key is not 32 bytes"))?;
        Ok((file.terminal_id, SigningKey::from_bytes(&bytes)))
    }
}

#[derive(clap::Subcommand)]
pub enum TerminalCommand {
    /// Pay by face: send a burst of photos and an amount.
    Pay {
        /// A frame of the burst; repeat for several.
        #[arg(long = "image", required = true)]
        images: Vec<PathBuf>,
        /// In major units: 4500 (won), 12.34 (dollars).
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "KRW")]
        currency: String,
        /// Answer a step-up with these phone digits.
        #[arg(long)]
        phone_last4: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// The terminal's key file, as written by `facepay demo`.
        #[arg(long, default_value = ".facepay/data/demo-terminal.json")]
        terminal: PathBuf,
    },
}

pub struct Client {
    agent: ureq::Agent,
    server: String,
    terminal_id: String,
    key: SigningKey,
}

impl Client {
    pub fn new(server: &str, terminal_id: String, key: SigningKey) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .new_agent();
        Self {
            agent,
            server: server.trim_end_matches('/').to_owned(),
            terminal_id,
            key,
        }
    }

    /// Sends a signed POST, retrying with the same idempotency key (and a
    /// fresh signature and nonce) until the server answers.
    pub fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let answer = self.post_timed(path, idempotency_key, body)?;
        if !answer.server_timing.is_empty() {
            println!("server stages: {}", answer.server_timing);
        }
        Ok((answer.status, answer.json))
    }

    pub fn post_timed(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &[u8],
    ) -> anyhow::Result<Answer> {
        let mut last_error = None;
        for attempt in 0..ATTEMPTS_MAX {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
            let now_ms = facepay_store::now_ms();
            let signed = signing::sign(&self.key, &self.terminal_id, "POST", path, now_ms, body);
            let result = self
                .agent
                .post(&format!("{}{path}", self.server))
                .header("content-type", "application/json")
                .header("idempotency-key", idempotency_key)
                .header(HEADER_TERMINAL, &signed.terminal_id)
                .header(HEADER_TIMESTAMP, &signed.timestamp_ms.to_string())
                .header(HEADER_NONCE, &signed.nonce)
                .header(HEADER_SIGNATURE, &signed.signature)
                .send(body);
            match result {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let server_timing = response
                        .headers()
                        .get("server-timing")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let text = response.body_mut().read_to_string()?;
                    let json =
                        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                    // The first request may still hold the key; wait for it.
                    let in_progress =
                        status == 409 && json["error"]["code"] == "idempotency_in_progress";
                    if status >= 500 && status != 502 && status != 504 || in_progress {
                        last_error = Some(anyhow::anyhow!("server answered {status}: {json}"));
                        continue;
                    }
                    return Ok(Answer {
                        status,
                        json,
                        server_timing,
                    });
                }
                Err(e) => last_error = Some(e.into()),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
    }
}

pub struct Answer {
    pub status: u16,
    pub json: serde_json::Value,
    /// The server's `Server-Timing` header: its time per stage.
    pub server_timing: String,
}

pub fn new_idempotency_key() -> String {
    hex::encode(facepay_payments::keys::random_bytes::<16>())
}

pub fn run(command: TerminalCommand) -> anyhow::Result<()> {
    let TerminalCommand::Pay {
        images,
        amount,
        currency,
        phone_last4,
        server,
        terminal,
    } = command;
    let (terminal_id, key) = TerminalFile::load(&terminal)?;
    let frames = images
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(|b| BASE64.encode(b))
                .with_context(|| p.display().to_string())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = serde_json::to_vec(
        &serde_json::json!({ "amount": amount, "currency": currency, "frames": frames }),
    )?;
    let client = Client::new(&server, terminal_id, key);
    let (status, answer) = client.post("/v1/terminal/payments", &new_idempotency_key(), &body)?;
    print_answer(status, &answer);
    if status == 202 {
        let Some(digits) = phone_last4 else {
            println!(
                "the payer must confirm: run again with --phone-last4 DIGITS to continue a new payment"
            );
            return Ok(());
        };
        let id = answer["id"].as_str().unwrap_or_default();
        let body = serde_json::to_vec(&serde_json::json!({ "phone_last4": digits }))?;
        let (status, answer) = client.post(
            &format!("/v1/terminal/payments/{id}/step-up"),
            &new_idempotency_key(),
            &body,
        )?;
        print_answer(status, &answer);
    }
    Ok(())
}

fn print_answer(status: u16, answer: &serde_json::Value) {
    let payment = if answer["payment"].is_object() {
        &answer["payment"]
    } else {
        answer
    };
    match status {
        201 => {
            println!(
                "APPROVED {} {} at {} ({}), card {}, payer {}, match {:.3}, payment {}",
                payment["amount"].as_str().unwrap_or(""),
                payment["currency"].as_str().unwrap_or(""),
                payment["receipt"]["merchant"].as_str().unwrap_or(""),
                payment["receipt"]["store"].as_str().unwrap_or(""),
                payment["receipt"]["card"].as_str().unwrap_or(""),
                payment["receipt"]["payer"].as_str().unwrap_or(""),
                payment["match_score"].as_f64().unwrap_or(0.0),
                payment["id"].as_str().unwrap_or(""),
            );
            let loyalty = &payment["receipt"]["loyalty"];
            if let Some(discount) = loyalty["discount_minor"].as_i64() {
                let coupons: Vec<&str> = loyalty["coupons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str())
                    .collect();
                println!(
                    "DISCOUNT {discount} (coupons: {}; points used: {}), card charged {}",
                    if coupons.is_empty() {
                        "none".to_owned()
                    } else {
                        coupons.join(", ")
                    },
                    loyalty["points_redeemed"].as_i64().unwrap_or(0),
                    payment["authorised_minor"].as_i64().unwrap_or(0),
                );
            }
            if loyalty.is_object() {
                println!(
                    "POINTS +{} (balance {}), stamps {}{}",
                    loyalty["points_earned"].as_i64().unwrap_or(0),
                    loyalty["points_balance"].as_i64().unwrap_or(0),
                    loyalty["stamps"].as_i64().unwrap_or(0),
                    match loyalty["rewards"].as_array() {
                        Some(rewards) if !rewards.is_empty() => format!(
                            ", earned: {}",
                            rewards
                                .iter()
                                .filter_map(|r| r.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        _ => String::new(),
                    }
                );
            }
        }
        202 => println!(
            "STEP-UP needed ({}): ask the payer for the last four digits of their phone; payment {}",
            payment["reason"].as_str().unwrap_or(""),
            payment["id"].as_str().unwrap_or("")
        ),
        _ => println!(
            "REFUSED ({status}) {}: {}",
            answer["error"]["code"].as_str().unwrap_or("?"),
            answer["error"]["message"].as_str().unwrap_or("")
        ),
    }
}
