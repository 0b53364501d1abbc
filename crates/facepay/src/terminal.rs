//! `facepay terminal pair` and `facepay terminal pay`: a command-line
//! terminal. It pairs with the operator's one-time code as a kiosk does
//! (its own key, made here, written 0600), and signs its requests
//! with its Ed25519 key exactly as a kiosk does (facepay-terminal), and
//! retries a request that got no answer with the same idempotency key, so it
//! never pays twice.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_terminal::{Client, TerminalFile, new_idempotency_key};

#[derive(clap::Subcommand)]
pub enum TerminalCommand {
    /// Pair this terminal with the code its operator got when they added
    /// it: makes its key and writes the key file.
    Pair {
        /// The terminal's id, as the operator got it.
        #[arg(long)]
        terminal_id: String,
        /// The one-time pairing code.
        #[arg(long)]
        code: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Where the key file goes (written 0600).
        #[arg(long, default_value = "terminal.json")]
        out: PathBuf,
    },
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
        /// The terminal's key file, as `facepay terminal pair` or `facepay demo` writes it.
        #[arg(long, default_value = ".facepay/data/demo-terminal.json")]
        terminal: PathBuf,
    },
}

pub fn run(command: TerminalCommand) -> anyhow::Result<()> {
    match command {
        TerminalCommand::Pair {
            terminal_id,
            code,
            server,
            out,
        } => {
            let paired = facepay_terminal::pair(&server, &terminal_id, &code, &out)?;
            println!(
                "PAIRED {terminal_id} at {} ({}), {}; key written to {}",
                paired["store"].as_str().unwrap_or(""),
                paired["merchant"].as_str().unwrap_or(""),
                paired["currency"].as_str().unwrap_or(""),
                out.display()
            );
            Ok(())
        }
        TerminalCommand::Pay {
            images,
            amount,
            currency,
            phone_last4,
            server,
            terminal,
        } => pay(images, &amount, &currency, phone_last4, &server, &terminal),
    }
}

fn pay(
    images: Vec<PathBuf>,
    amount: &str,
    currency: &str,
    phone_last4: Option<String>,
    server: &str,
    terminal: &std::path::Path,
) -> anyhow::Result<()> {
    let (terminal_id, key) = TerminalFile::load(terminal)?;
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
    let client = Client::new(server, terminal_id, key);
    let answer = client.post("/v1/terminal/payments", &new_idempotency_key()?, &body)?;
    print_answer(&answer);
    if answer.status == 202 {
        let Some(digits) = phone_last4 else {
            println!(
                "the payer must confirm: run again with --phone-last4 DIGITS to continue a new payment"
            );
            return Ok(());
        };
        let id = answer.json["id"].as_str().unwrap_or_default();
        let body = serde_json::to_vec(&serde_json::json!({ "phone_last4": digits }))?;
        let answer = client.post(
            &format!("/v1/terminal/payments/{id}/step-up"),
            &new_idempotency_key()?,
            &body,
        )?;
        print_answer(&answer);
    }
    Ok(())
}

fn print_answer(answer: &facepay_terminal::Answer) {
    if !answer.server_timing.is_empty() {
        println!("server stages: {}", answer.server_timing);
    }
    let status = answer.status;
    let answer = &answer.json;
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
