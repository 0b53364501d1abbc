//! The issuer's side of a card tap, for a step-up that asks the payer to tap
//! their IC card (EMV 4.3 Book 2, Annex A1):
//!
//! - the card's master key comes from the issuer master key, the PAN and
//!   the PAN sequence number (master key derivation, option A);
//! - every tap has a session key derived from that master key and the
//!   card's application transaction counter, ATC (common session key
//!   derivation);
//! - the card's cryptogram, the ARQC, is a retail MAC (ISO/IEC 9797-1 MAC
//!   algorithm 3, padding method 2) over the transaction data card and
//!   terminal agree on: amounts, country, verification results, currency,
//!   date, type, the terminal's unpredictable number, the card's AIP and
//!   ATC;
//! - the issuer recomputes it over the data *it* expects (the payment's own
//!   amount), requires the ATC to move forward, and answers with an ARPC
//!   (method 1) that the card can check in turn.
//!
//! Written here on RustCrypto's `des`: no maintained crate does these EMV
//! derivations, and each is a few block operations. The tests pin every
//! step to values published with pyemv, an independent implementation.

use std::collections::HashMap;
use std::sync::Mutex;

use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::{Des, TdesEde2};
use zeroize::Zeroize;

/// Cards whose last counter one issuer remembers at most.
pub const CARDS_MAX: usize = 1_000_000;
/// The largest amount EMV carries: twelve decimal digits.
pub const AMOUNT_MINOR_MAX: u64 = 999_999_999_999;
const BLOCK: usize = 8;
/// Authorisation response code "00", approved, in ASCII as cards carry it.
pub const APPROVED: [u8; 2] = *b"00";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmvError {
    #[error("the card number must be 12 to 19 digits and its sequence number 2 digits")]
    CardNumber,
    #[error("an amount above twelve digits, or a country or currency code above three")]
    Field,
    #[error(
        "the card's cryptogram does not verify: another card, or data changed since the tap (amount, currency, date, unpredictable number)"
    )]
    Cryptogram,
    #[error(
        "the card's counter did not move forward ({atc} after {last}): a replayed or cloned tap"
    )]
    CounterReplay { atc: u16, last: u16 },
    #[error("the issuer remembers {CARDS_MAX} cards at most")]
    Full,
}

impl EmvError {
    /// A stable machine code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            EmvError::CardNumber => "card_number_invalid",
            EmvError::Field => "card_tap_field_invalid",
            EmvError::Cryptogram => "card_cryptogram_invalid",
            EmvError::CounterReplay { .. } => "card_tap_replayed",
            EmvError::Full => "card_issuer_full",
        }
    }
}

/// A double-length (two-key) triple-DES key.
#[derive(Clone)]
pub struct DesKey([u8; 16]);

impl Drop for DesKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl DesKey {
    pub fn new(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    fn encrypt(&self, block: [u8; BLOCK]) -> [u8; BLOCK] {
        let cipher = TdesEde2::new(&self.0.into());
        let mut b = block.into();
        cipher.encrypt_block(&mut b);
        b.into()
    }

    /// Two halves encrypted under this key, joined, with odd parity: a
    /// derived key.
    fn derive(&self, left: [u8; BLOCK], right: [u8; BLOCK]) -> DesKey {
        let mut key = [0u8; 16];
        key[..BLOCK].copy_from_slice(&self.encrypt(left));
        key[BLOCK..].copy_from_slice(&self.encrypt(right));
        for byte in &mut key {
            // DES keys carry odd parity in each byte's lowest bit.
            *byte = (*byte & 0xFE) | u8::from((*byte >> 1).count_ones() % 2 == 0);
        }
        DesKey(key)
    }
}

/// Packs decimal digits two to a byte (BCD).
fn bcd<const N: usize>(digits: &str) -> [u8; N] {
    assert_eq!(digits.len(), 2 * N);
    assert!(digits.bytes().all(|d| d.is_ascii_digit()));
    let mut out = [0u8; N];
    for (i, pair) in digits.as_bytes().chunks_exact(2).enumerate() {
        out[i] = ((pair[0] - b'0') << 4) | (pair[1] - b'0');
    }
    out
}

/// The card's master key for application cryptograms (option A): the last
/// sixteen digits of PAN and sequence number, and their complement, under
/// the issuer master key.
pub fn icc_master_key(
    issuer_master_key: &DesKey,
    pan: &str,
    psn: &str,
) -> Result<DesKey, EmvError> {
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(12..=19).contains(&pan.len()) || psn.len() != 2 || !digits_ok(pan) || !digits_ok(psn) {
        return Err(EmvError::CardNumber);
    }
    let joined = format!("{pan}{psn}");
    let last16 = format!("{:0>16}", &joined[joined.len().saturating_sub(16)..]);
    let a: [u8; BLOCK] = bcd(&last16);
    let b = a.map(|x| !x);
    Ok(issuer_master_key.derive(a, b))
}

/// The session key of the tap with counter `atc` (common session key
/// derivation, R = ATC || 00 00 00 00 00 00).
pub fn session_key(master_key: &DesKey, atc: u16) -> DesKey {
    let [hi, lo] = atc.to_be_bytes();
    master_key.derive([hi, lo, 0xF0, 0, 0, 0, 0, 0], [hi, lo, 0x0F, 0, 0, 0, 0, 0])
}

/// The data a cryptogram covers, in the order and encoding of EMV Book 2's
/// recommended minimum (tags 9F02, 9F03, 9F1A, 95, 5F2A, 9A, 9C, 9F37, 82,
/// 9F36).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransactionData {
    /// 9F02, in the currency's minor units.
    pub amount_minor: u64,
    /// 9F03 (cashback), usually 0.
    pub other_amount_minor: u64,
    /// 9F1A: ISO 3166 numeric (Korea 410).
    pub terminal_country: u16,
    /// 95: terminal verification results.
    pub tvr: [u8; 5],
    /// 5F2A: ISO 4217 numeric (KRW 410).
    pub currency: u16,
    /// 9A: year (two digits), month, day.
    pub date: (u8, u8, u8),
    /// 9C: 0x00 for goods and services.
    pub transaction_type: u8,
    /// 9F37: the terminal's fresh random number.
    pub unpredictable_number: u32,
    /// 82: the card's application interchange profile.
    pub aip: [u8; 2],
    /// 9F36: the card's application transaction counter.
    pub atc: u16,
}

impl TransactionData {
    pub fn bytes(&self) -> Result<Vec<u8>, EmvError> {
        if self.amount_minor > AMOUNT_MINOR_MAX
            || self.other_amount_minor > AMOUNT_MINOR_MAX
            || self.terminal_country > 999
            || self.currency > 999
        {
            return Err(EmvError::Field);
        }
        let (y, m, d) = self.date;
        if y > 99 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return Err(EmvError::Field);
        }
        let mut out = Vec::with_capacity(37);
        out.extend(bcd::<6>(&format!("{:012}", self.amount_minor)));
        out.extend(bcd::<6>(&format!("{:012}", self.other_amount_minor)));
        out.extend(bcd::<2>(&format!("{:04}", self.terminal_country)));
        out.extend(self.tvr);
        out.extend(bcd::<2>(&format!("{:04}", self.currency)));
        out.extend(bcd::<3>(&format!("{y:02}{m:02}{d:02}")));
        out.push(self.transaction_type);
        out.extend(self.unpredictable_number.to_be_bytes());
        out.extend(self.aip);
        out.extend(self.atc.to_be_bytes());
        Ok(out)
    }
}

/// The application cryptogram over `data` under a session key: CBC-MAC
/// with single DES under the key's left half, the last block then
/// decrypted under the right half and encrypted under the left again.
pub fn cryptogram(session_key: &DesKey, data: &[u8]) -> [u8; BLOCK] {
    let (left, right) = session_key.bytes().split_at(BLOCK);
    let (k1, k2) = (Des::new(left.into()), Des::new(right.into()));
    let mut padded = data.to_vec();
    padded.push(0x80);
    padded.resize(padded.len().div_ceil(BLOCK) * BLOCK, 0);
    let mut state: des::cipher::Block<Des> = [0u8; BLOCK].into();
    for chunk in padded.chunks_exact(BLOCK) {
        for (s, x) in state.iter_mut().zip(chunk) {
            *s ^= x;
        }
        k1.encrypt_block(&mut state);
    }
    k2.decrypt_block(&mut state);
    k1.encrypt_block(&mut state);
    state.into()
}

/// The issuer's answer to a verified ARQC (method 1): the ARQC with the
/// response code folded in, under the session key.
pub fn arpc(session_key: &DesKey, arqc: &[u8; BLOCK], response_code: [u8; 2]) -> [u8; BLOCK] {
    let mut block = *arqc;
    block[0] ^= response_code[0];
    block[1] ^= response_code[1];
    session_key.encrypt(block)
}

/// Equal without an early exit, so the time taken says nothing about how
/// much of a forged cryptogram was right.
fn same(a: &[u8; BLOCK], b: &[u8; BLOCK]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks taps for one issuer master key, and remembers each card's last
/// counter so that no tap is accepted twice.
pub struct Issuer {
    master_key: DesKey,
    /// Last accepted counter by card, keyed by a check value of the card's
    /// master key rather than its number.
    counters: Mutex<HashMap<[u8; BLOCK], u16>>,
}

impl Issuer {
    pub fn new(master_key: DesKey) -> Self {
        Self {
            master_key,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Verifies a tap for the payment `expected` describes (its own amount
    /// and currency; the tap's counter and the terminal's unpredictable
    /// number) and returns the ARPC approving it. A cryptogram that does
    /// not verify changes nothing; one that does moves the card's counter.
    pub fn verify(
        &self,
        pan: &str,
        psn: &str,
        expected: &TransactionData,
        arqc: &[u8; BLOCK],
    ) -> Result<[u8; BLOCK], EmvError> {
        let card_key = icc_master_key(&self.master_key, pan, psn)?;
        let session = session_key(&card_key, expected.atc);
        if !same(&cryptogram(&session, &expected.bytes()?), arqc) {
            return Err(EmvError::Cryptogram);
        }
        let card = card_key.encrypt([0; BLOCK]);
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        match counters.get(&card) {
            Some(&last) if expected.atc <= last => {
                return Err(EmvError::CounterReplay {
                    atc: expected.atc,
                    last,
                });
            }
            None if counters.len() >= CARDS_MAX => return Err(EmvError::Full),
            _ => {}
        }
        counters.insert(card, expected.atc);
        Ok(arpc(&session, arqc, APPROVED))
    }
}

/// A simulated IC card, named as such: it holds its master key and counter
/// and answers a tap the way a card computes its ARQC. For tests and demos;
/// a real card answers through a reader.
pub struct SimulatedCard {
    master_key: DesKey,
    atc: u16,
    aip: [u8; 2],
}

impl SimulatedCard {
    /// A card personalised by the issuer holding `issuer_master_key`.
    pub fn issue(issuer_master_key: &DesKey, pan: &str, psn: &str) -> Result<Self, EmvError> {
        Ok(Self {
            master_key: icc_master_key(issuer_master_key, pan, psn)?,
            atc: 0,
            aip: [0x58, 0x00],
        })
    }

    /// A tap: the card counts it, fills in its own fields and signs what
    /// the terminal asked for.
    pub fn tap(
        &mut self,
        terminal: &TransactionData,
    ) -> Result<(TransactionData, [u8; BLOCK]), EmvError> {
        self.atc = self.atc.checked_add(1).ok_or(EmvError::Field)?;
        let data = TransactionData {
            atc: self.atc,
            aip: self.aip,
            ..terminal.clone()
        };
        let arqc = cryptogram(&session_key(&self.master_key, self.atc), &data.bytes()?);
        Ok((data, arqc))
    }
}

#[cfg(test)]
mod tests;
