//! Terminals: created unpaired with a one-time pairing code, paired by
//! the terminal itself (its own Ed25519 key, registered with the code),
//! re-paired (the old key retired at once, a new code) and retired.
//!
//! A pairing code is 8 characters from 31 that cannot be misread (about
//! 40 bits), lives 10 minutes at most, is used once, and is kept as an
//! Argon2id hash, so a copy of the database does not give it away in its
//! lifetime. Wrong codes are bounded twice: per code (after
//! `FAILURES_PER_CODE_MAX` the code is dead and the operator re-pairs;
//! counted in the store before the check, so it holds across servers) and
//! across all terminals (`FAILURES_GLOBAL_MAX` a minute, then 429 for all;
//! also counted in the store before the check, and given back for a right
//! code or one not checked, so it holds for all servers together).

use facepay_store::onboarding::{self, TerminalRow};
use facepay_store::parties;
use facepay_store::{audit, rate_windows};

use super::Onboarding;
use super::views::{
    self, OnboardedTerminal, PairRequest, Paired, PairingView, RePairRequest, TerminalRequest,
};
use crate::access::Operator;
use crate::core::{Claimed, Reply, Request, commit, derived_id, parse_json};
use crate::error::Failure;
use crate::keys::{self, KeyError};

/// The characters of a pairing code: no 0/O, 1/I/L.
const CODE_ALPHABET: &[u8; 31] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;
/// Wrong codes one terminal's code takes before it is dead.
pub const FAILURES_PER_CODE_MAX: i64 = 5;
/// Wrong codes (or unknown terminals) all servers take together per window.
pub const FAILURES_GLOBAL_MAX: i64 = 60;
pub const FAILURE_WINDOW_MS: i64 = 60_000;
/// The name wrong pairing codes are counted under in the store.
const FAILURES_GLOBAL: &str = "pairing_failures";

/// A new code: rejection sampling keeps every character equally likely.
fn new_code() -> Result<String, KeyError> {
    let mut code = String::with_capacity(CODE_LEN);
    while code.len() < CODE_LEN {
        for byte in keys::random_bytes::<16>()? {
            let limit = (256 / CODE_ALPHABET.len() * CODE_ALPHABET.len()) as u8;
            if byte < limit && code.len() < CODE_LEN {
                code.push(char::from(
                    CODE_ALPHABET[usize::from(byte) % CODE_ALPHABET.len()],
                ));
            }
        }
    }
    Ok(code)
}

/// A typed code as issued: upper case, without dashes or spaces.
fn normalised(code: &str) -> Option<String> {
    let code: String = code
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

fn invalid_code() -> Failure {
    Failure::unauthorised(
        "pairing_code_invalid",
        "this code does not pair this terminal; check both, or ask for a new code",
    )
}

fn unknown_terminal() -> Failure {
    Failure::new(404, "unknown_terminal", "no such terminal")
}

impl Onboarding {
    async fn terminal_row(&self, id: &str) -> Result<TerminalRow, Failure> {
        let mut conn = self.core.conn().await?;
        onboarding::terminal(&mut conn, id)
            .await?
            .ok_or_else(unknown_terminal)
    }

    /// Hashes a new code for `terminal_id` and stores it in `tx`, replacing
    /// any code it had: the code and when it expires.
    async fn issue_code(
        &self,
        tx: &mut facepay_store::Connection,
        terminal_id: &str,
        actor: &str,
        ttl_ms: i64,
    ) -> Result<(String, i64), Failure> {
        let code = new_code()?;
        let hashed = code.clone();
        let hash = tokio::task::spawn_blocking(move || keys::hash_pin(&hashed))
            .await
            .map_err(|_| Failure::internal())??;
        let now = self.core.now_ms();
        let expires_at_ms = now + ttl_ms;
        onboarding::put_pairing_code(tx, terminal_id, &hash, actor, now, expires_at_ms).await?;
        Ok((code, expires_at_ms))
    }

    /// `POST /v1/operator/terminals`: an unpaired terminal and its code.
    pub async fn create_terminal(
        &self,
        op: &Operator,
        key: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: TerminalRequest = parse_json(body)?;
        let name = terminal_name(&request.name)?;
        let ttl_ms = views::pairing_ttl_ms(request.pairing_code_ttl_s)?;
        let scope = op.scope("terminals", "");
        let id = derived_id("trm", &scope, key);
        let work = |claimed: Claimed| async move {
            let mut conn = self.core.conn().await?;
            let store = onboarding::store(&mut conn, &request.store_id)
                .await?
                .ok_or_else(|| Failure::new(404, "unknown_store", "no such store"))?;
            let merchant = parties::merchant(&mut conn, &store.merchant_id).await?;
            drop(conn);
            if merchant.is_some_and(|m| m.status == "closed") {
                return Err(Failure::conflict(
                    "merchant_closed",
                    "a closed merchant gets no new terminal",
                ));
            }
            let now = self.core.now_ms();
            let mut tx = self.core.begin().await?;
            onboarding::insert_unpaired_terminal(&mut tx, &id, &store.id, &name, now)
                .await
                .map_err(|e| match e {
                    facepay_store::StoreError::Duplicate(_) => Failure::conflict(
                        "terminal_name_taken",
                        "this store has a terminal of this name already",
                    ),
                    other => other.into(),
                })?;
            let (code, expires_at_ms) = self.issue_code(&mut tx, &id, &op.actor(), ttl_ms).await?;
            audit::append(&mut tx, now, &op.actor(), "terminal_created", &id).await?;
            let mut view = PairingView {
                terminal: self.view_in(&mut tx, &id).await?,
                pairing_code: String::new(),
                pairing_expires_at_ms: expires_at_ms,
            };
            // Kept without its code; the caller sees it once.
            claimed.complete(&mut tx, &Reply::json(201, &view)?).await?;
            commit(tx).await?;
            view.pairing_code = code;
            Reply::json(201, &view)
        };
        let request_of = Request::new("create_terminal", "", body);
        let actor = op.actor();
        self.core
            .idempotent_or(scope.clone(), key, request_of, work, |earlier| {
                self.replay_create(earlier, actor, ttl_ms)
            })
            .await
    }

    async fn view_in(
        &self,
        conn: &mut facepay_store::Connection,
        id: &str,
    ) -> Result<OnboardedTerminal, Failure> {
        let row = onboarding::terminal(conn, id)
            .await?
            .ok_or_else(unknown_terminal)?;
        OnboardedTerminal::of(row)
    }

    /// A replayed creation: the terminal as it is now, with a new code
    /// (which replaces the first) while it is still waiting for its pairing.
    async fn replay_create(
        &self,
        earlier: Reply,
        actor: String,
        ttl_ms: i64,
    ) -> Result<Reply, Failure> {
        if earlier.status != 201 {
            return Ok(earlier);
        }
        let kept: PairingView = serde_json::from_str(&earlier.body).map_err(|e| {
            tracing::error!(error = %e, "a kept terminal answer is unreadable");
            Failure::internal()
        })?;
        let row = self.terminal_row(&kept.terminal.id).await?;
        if row.paired_at_ms.is_some() || row.retired_at_ms.is_some() {
            let view = PairingView {
                terminal: OnboardedTerminal::of(row)?,
                pairing_code: String::new(),
                pairing_expires_at_ms: kept.pairing_expires_at_ms,
            };
            return Reply::json(201, &view);
        }
        let mut tx = self.core.begin().await?;
        let (code, expires_at_ms) = self.issue_code(&mut tx, &row.id, &actor, ttl_ms).await?;
        commit(tx).await?;
        let view = PairingView {
            terminal: OnboardedTerminal::of(row)?,
            pairing_code: code,
            pairing_expires_at_ms: expires_at_ms,
        };
        Reply::json(201, &view)
    }

    /// `POST /v1/operator/terminals/{id}/re-pair`: the terminal's key is
    /// dropped at once (it signs nothing from now on) and a new code is
    /// issued.
    pub async fn re_pair_terminal(
        &self,
        op: &Operator,
        id: &str,
        body: &[u8],
    ) -> Result<Reply, Failure> {
        let request: RePairRequest = if body.is_empty() {
            RePairRequest::default()
        } else {
            // `null` asks for the defaults, as an empty body does.
            parse_json::<Option<RePairRequest>>(body)?.unwrap_or_default()
        };
        let ttl_ms = views::pairing_ttl_ms(request.pairing_code_ttl_s)?;
        self.terminal_row(id).await?;
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        if !onboarding::unpair_terminal(&mut tx, id).await? {
            return Err(Failure::conflict(
                "terminal_retired",
                "a retired terminal cannot pair again",
            ));
        }
        let (code, expires_at_ms) = self.issue_code(&mut tx, id, &op.actor(), ttl_ms).await?;
        audit::append(&mut tx, now, &op.actor(), "terminal_re_paired", id).await?;
        let terminal = self.view_in(&mut tx, id).await?;
        commit(tx).await?;
        Reply::json(
            200,
            &PairingView {
                terminal,
                pairing_code: code,
                pairing_expires_at_ms: expires_at_ms,
            },
        )
    }

    /// `POST /v1/operator/terminals/{id}/retire`: for good. Retiring a
    /// retired terminal changes nothing and answers it.
    pub async fn retire_terminal(&self, op: &Operator, id: &str) -> Result<Reply, Failure> {
        self.terminal_row(id).await?;
        let now = self.core.now_ms();
        let mut tx = self.core.begin().await?;
        if onboarding::retire_terminal(&mut tx, id, now).await? {
            audit::append(&mut tx, now, &op.actor(), "terminal_retired", id).await?;
        }
        let terminal = self.view_in(&mut tx, id).await?;
        commit(tx).await?;
        Reply::json(200, &terminal)
    }
}

/// 1 to 64 letters, digits, spaces, `_`, `.` or `-`, not starting with a
/// space.
fn terminal_name(name: &str) -> Result<String, Failure> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with(' ')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" _.-".contains(&b));
    if ok {
        Ok(name.trim_end().to_owned())
    } else {
        Err(Failure::unprocessable(
            "terminal_name_invalid",
            "a terminal's name is 1 to 64 letters, digits, spaces, `_`, `.` or `-`",
        ))
    }
}

impl Onboarding {
    /// Takes an attempt whose code was right, or not checked (its code
    /// dead), out of the count of wrong ones. Lost, it leaves one wrong
    /// code too many counted for the minute: only logged, as the answer
    /// is unharmed.
    async fn attempt_given_back(&self, window_start_ms: i64) {
        let given_back = async {
            let mut conn = self.core.conn().await?;
            rate_windows::give_back(&mut conn, FAILURES_GLOBAL, window_start_ms).await?;
            Ok::<(), Failure>(())
        };
        if let Err(e) = given_back.await {
            tracing::warn!(error = %e, "a pairing attempt stays counted as a wrong code");
        }
    }

    /// `POST /v1/terminals/pair`: the code proves the caller is the
    /// terminal the operator set up; the key it sends signs its requests
    /// from now on. A wrong code is 401 `pairing_code_invalid`; only the
    /// right code learns that it was used (409 `pairing_code_used`) or
    /// expired (410 `pairing_code_expired`).
    pub async fn pair(&self, body: &[u8]) -> Result<Reply, Failure> {
        let throttled = || {
            Failure::new(
                429,
                "pairing_throttled",
                "too many wrong pairing codes lately; wait a minute, or ask for a new code",
            )
        };
        let request: PairRequest = parse_json(body)?;
        let public_key = parse_public_key(&request.public_key_hex)?;
        let mut conn = self.core.conn().await?;
        // Counted as wrong before the check, and given back if it was
        // right or not checked, so codes tried at once on several servers
        // cannot pass the bound together.
        let window_start_ms = rate_windows::window_start_ms(self.core.now_ms(), FAILURE_WINDOW_MS);
        let taken = rate_windows::take(
            &mut conn,
            FAILURES_GLOBAL,
            window_start_ms,
            FAILURES_GLOBAL_MAX,
        );
        let Some(counted_in_ms) = taken.await? else {
            return Err(throttled());
        };
        let stored = onboarding::pairing_code(&mut conn, &request.terminal_id).await?;
        let (Some(code), Some(stored)) = (normalised(&request.code), stored) else {
            return Err(invalid_code());
        };
        // Counted before the check, so codes tried at once cannot pass the
        // code's limit together.
        let terminal_id = &request.terminal_id;
        if !onboarding::take_pairing_attempt(&mut conn, terminal_id, FAILURES_PER_CODE_MAX).await? {
            drop(conn);
            self.attempt_given_back(counted_in_ms).await;
            return Err(throttled());
        }
        drop(conn);
        let hash = stored.code_hash.clone();
        let matches = tokio::task::spawn_blocking(move || keys::pin_matches(&code, &hash))
            .await
            .map_err(|_| Failure::internal())?;
        if !matches {
            return Err(invalid_code());
        }
        self.attempt_given_back(counted_in_ms).await;
        let now = self.core.now_ms();
        if stored.used_at_ms.is_some() {
            return Err(Failure::conflict(
                "pairing_code_used",
                "this code paired a terminal already; ask for a new code (re-pair)",
            ));
        }
        if stored.expires_at_ms <= now {
            return Err(Failure::new(
                410,
                "pairing_code_expired",
                "this code has expired; ask for a new code (re-pair)",
            ));
        }
        self.register_key(&request.terminal_id, &stored.code_hash, &public_key, now)
            .await
    }

    /// Uses the code and registers the key in one transaction.
    async fn register_key(
        &self,
        terminal_id: &str,
        code_hash: &str,
        public_key: &[u8; 32],
        now: i64,
    ) -> Result<Reply, Failure> {
        let mut tx = self.core.begin().await?;
        if !onboarding::use_pairing_code(&mut tx, terminal_id, code_hash, now).await? {
            return Err(Failure::conflict(
                "pairing_code_used",
                "this code was used or replaced meanwhile; ask for a new code (re-pair)",
            ));
        }
        if !onboarding::pair_terminal(&mut tx, terminal_id, public_key, now).await? {
            return Err(Failure::conflict(
                "terminal_retired",
                "a retired terminal cannot pair",
            ));
        }
        let actor = format!("terminal:{terminal_id}");
        let subject = format!("{terminal_id}:{}", hex::encode(&public_key[..8]));
        audit::append(&mut tx, now, &actor, "terminal_paired", &subject).await?;
        let context = parties::terminal_context(&mut tx, terminal_id)
            .await?
            .ok_or_else(unknown_terminal)?;
        let row = onboarding::terminal(&mut tx, terminal_id)
            .await?
            .ok_or_else(unknown_terminal)?;
        let store = onboarding::store(&mut tx, &row.store_id).await?;
        commit(tx).await?;
        Reply::json(
            200,
            &Paired {
                terminal_id: row.id,
                name: row.name,
                store_id: context.store.id,
                store: context.store.name,
                merchant_id: context.merchant.id,
                merchant: context.merchant.name,
                currency: context.store.currency,
                time_zone: store.and_then(|s| s.time_zone),
                paired_at_ms: now,
            },
        )
    }
}

/// A valid Ed25519 public key, from 64 hex digits.
fn parse_public_key(text: &str) -> Result<[u8; 32], Failure> {
    let invalid = || {
        Failure::unprocessable(
            "public_key_invalid",
            "public_key_hex is an Ed25519 public key: 32 bytes as 64 hex digits",
        )
    };
    let bytes: [u8; 32] = hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(invalid)?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| invalid())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet_and_read_back_however_typed() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let code = new_code().unwrap();
            assert_eq!(code.len(), CODE_LEN);
            assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
            let typed = format!("{}-{}", &code[..4], &code[4..]).to_lowercase();
            assert_eq!(normalised(&typed).as_deref(), Some(code.as_str()));
            seen.insert(code);
        }
        assert_eq!(seen.len(), 200, "codes repeat");
        for bad in ["", "ABCDEFG", "ABCDEFGHJ", "ABCDEFG0", "ABCDEFGI"] {
            assert_eq!(normalised(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_public_key_must_be_a_curve_point_in_hex() {
        let key = crate::signing::new_terminal_key().unwrap().verifying_key();
        let hex_key = hex::encode(key.to_bytes());
        assert_eq!(parse_public_key(&hex_key).unwrap(), key.to_bytes());
        for bad in ["", "00", &"zz".repeat(32), &"ab".repeat(33)] {
            assert_eq!(
                parse_public_key(bad).unwrap_err().code,
                "public_key_invalid"
            );
        }
    }
}
