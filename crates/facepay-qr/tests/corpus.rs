//! The scheme corpus: payloads the schemes' documents or widely used
//! libraries publish (`corpus/README.md` names each source). Every sample
//! parses to its scheme, merchant account and currency, and every variant
//! made from it by breaking one thing is refused with that thing's code.

use std::collections::BTreeSet;

use facepay_qr::{QrError, ScannedQr, Scheme, Warning, crc16, parse};

const SAMPLES: &str = include_str!("corpus/samples.tsv");
const README: &str = include_str!("corpus/README.md");

struct Sample {
    scheme: &'static str,
    account: &'static str,
    institution: Option<&'static str>,
    currency: &'static str,
    amount: Option<&'static str>,
    name: &'static str,
    warnings: Vec<&'static str>,
    source: &'static str,
    payload: &'static str,
}

fn samples() -> Vec<Sample> {
    let given = |s: &'static str| (s != "-").then_some(s);
    SAMPLES
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let c: Vec<&'static str> = line.split('\t').collect();
            assert_eq!(c.len(), 9, "nine columns: {line}");
            Sample {
                scheme: c[0],
                account: c[1],
                institution: given(c[2]),
                currency: c[3],
                amount: given(c[4]),
                name: c[5],
                warnings: given(c[6]).map_or(Vec::new(), |w| w.split(' ').collect()),
                source: c[7],
                payload: c[8],
            }
        })
        .collect()
}

fn short(w: &Warning) -> String {
    match w {
        Warning::Omitted { id, .. } => format!("omitted:{id}"),
        Warning::FormatIndicator { found } => format!("format:{found}"),
        Warning::AmountElsewhere => "amount_elsewhere".to_owned(),
        Warning::Country { found, .. } => format!("country:{found}"),
        Warning::Currency { found } => format!("currency:{found}"),
    }
}

fn scheme(id: &str) -> Scheme {
    Scheme::ALL
        .into_iter()
        .find(|s| s.id() == id)
        .unwrap_or_else(|| panic!("no scheme {id}"))
}

/// The root fields, as (id, value), cut by the test's own reading of the
/// TLV so that variants can be built field by field.
fn root(payload: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = payload.chars().collect();
    let mut fields = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let id: String = chars[at..at + 2].iter().collect();
        let len: usize = chars[at + 2..at + 4]
            .iter()
            .collect::<String>()
            .parse()
            .unwrap();
        fields.push((id, chars[at + 4..at + 4 + len].iter().collect()));
        at += 4 + len;
    }
    fields
}

/// The fields written back, the CRC made right for them.
fn rebuild(fields: &[(String, String)]) -> String {
    let mut body: String = fields
        .iter()
        .filter(|(id, _)| id != "63")
        .map(|(id, v)| format!("{id}{:02}{v}", v.chars().count()))
        .collect();
    body.push_str("6304");
    format!("{body}{:04X}", crc16(&body))
}

fn with_field(payload: &str, id: &str, value: &str) -> String {
    let mut fields = root(payload);
    match fields.iter_mut().find(|(f, _)| f == id) {
        Some(field) => field.1 = value.to_owned(),
        None => fields.insert(1, (id.to_owned(), value.to_owned())),
    }
    rebuild(&fields)
}

fn refusal(payload: &str) -> QrError {
    match parse(payload) {
        Ok(scanned) => panic!("{payload} was read: {scanned:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_sample_parses_to_its_scheme_account_and_currency() {
    for s in samples() {
        let scanned: ScannedQr = parse(s.payload)
            .unwrap_or_else(|e| panic!("{} ({}): {e} [{}]", s.payload, s.source, e.code()));
        assert_eq!(scanned.scheme, scheme(s.scheme), "{}", s.payload);
        let account = scanned.merchant_account.as_ref().unwrap();
        assert_eq!(account.id, s.account, "{}", s.payload);
        assert_eq!(
            account.institution.as_deref(),
            s.institution,
            "{}",
            s.payload
        );
        assert_eq!(scanned.currency, s.currency, "{}", s.payload);
        assert_eq!(scanned.amount(), s.amount, "{}", s.payload);
        assert_eq!(scanned.display_name, s.name, "{}", s.payload);
        let warnings: Vec<String> = scanned.warnings.iter().map(short).collect();
        assert_eq!(warnings, s.warnings, "{}", s.payload);
        // What the parser reads, the generator writes and reads back.
        let again = facepay_qr::encode(&scanned.qr).unwrap();
        assert_eq!(parse(&again).unwrap().qr, scanned.qr, "{}", s.payload);
    }
}

#[test]
fn the_corpus_covers_at_least_six_schemes_with_named_sources() {
    let samples = samples();
    let schemes: BTreeSet<&str> = samples.iter().map(|s| s.scheme).collect();
    assert!(schemes.len() >= 6, "{schemes:?}");
    for s in &samples {
        assert!(
            README.contains(&format!("`{}`", s.source)),
            "README.md names no source {}",
            s.source
        );
    }
}

/// Each variant breaks one thing and is refused with that thing's code.
fn variants(payload: &str) -> Vec<(&'static str, String, &'static str)> {
    let chars: Vec<char> = payload.chars().collect();
    let n = chars.len();
    let text = |cs: &[char]| cs.iter().collect::<String>();
    let mut flipped = chars.clone();
    flipped[n - 1] = if flipped[n - 1] == '0' { '1' } else { '0' };
    let mut out = vec![
        ("CRC flipped", text(&flipped), "qr_bad_crc"),
        ("CRC cut off", text(&chars[..n - 8]), "qr_missing_field"),
        (
            "a stray character appended",
            format!("{payload} "),
            "qr_bad_id",
        ),
        (
            "the CRC appended again",
            format!("{payload}{}", text(&chars[n - 8..])),
            "qr_duplicate_field",
        ),
        (
            "a field appended after the CRC",
            format!("{payload}{}03abc", unused_id(payload)),
            "qr_misordered_field",
        ),
        (
            "the format indicator's length broken",
            format!("00X{}", text(&chars[3..])),
            "qr_bad_length",
        ),
        (
            "an unknown currency",
            with_field(payload, "53", "999"),
            "qr_unknown_currency",
        ),
        (
            "a malformed amount",
            with_field(payload, "54", "1.2.3"),
            "qr_bad_value",
        ),
    ];
    for cut in 1..=6 {
        out.push((
            "cut inside the CRC",
            text(&chars[..n - cut]),
            "qr_truncated",
        ));
    }
    // Cut inside the currency's value: the TLV ends mid-field.
    let cut = start_of(payload, "53") + 5;
    out.push((
        "cut inside the currency",
        text(&chars[..cut]),
        "qr_truncated",
    ));
    out
}

/// An id of the templates 80-99 that the payload does not use.
fn unused_id(payload: &str) -> String {
    let used: Vec<String> = root(payload).into_iter().map(|(id, _)| id).collect();
    (80..=99)
        .map(|id: u8| id.to_string())
        .find(|id| !used.contains(id))
        .unwrap()
}

/// Where root field `id` starts, in characters.
fn start_of(payload: &str, id: &str) -> usize {
    let mut at = 0;
    for (f, v) in root(payload) {
        if f == id {
            return at;
        }
        at += 4 + v.chars().count();
    }
    panic!("no field {id} in {payload}")
}

#[test]
fn every_corrupted_variant_is_refused_with_its_code() {
    let mut checked = 0;
    for s in samples() {
        for (what, variant, code) in variants(s.payload) {
            let e = refusal(&variant);
            assert_eq!(
                e.code(),
                code,
                "{what} of {} ({}): {e}",
                s.payload,
                s.source
            );
            checked += 1;
        }
    }
    assert!(checked > 400, "{checked}");
}

/// The name shown is the merchant name (59) when the code has one; without
/// it, a scheme that leaves names out shows its account data, and any other
/// scheme's code is refused.
#[test]
fn a_missing_merchant_name_is_refused_unless_the_scheme_leaves_it_out() {
    for s in samples() {
        let profile = scheme(s.scheme).profile();
        let omits_name = profile.may_omit.iter().any(|(id, _)| *id == 59);
        let fields = root(s.payload);
        let nameless: Vec<_> = fields
            .iter()
            .filter(|(id, _)| id != "59")
            .cloned()
            .collect();
        let nameless = rebuild(&nameless);
        if omits_name {
            assert!(!fields.iter().any(|(id, _)| id == "59"), "{}", s.payload);
            let scanned = parse(&nameless).unwrap();
            assert!(scanned.warnings.iter().any(|w| w.field() == 59));
            assert_eq!(scanned.display_name, s.name, "{}", s.payload);
        } else {
            let e = refusal(&nameless);
            assert_eq!(
                e,
                QrError::Missing {
                    id: 59,
                    name: "merchant name"
                },
                "{}",
                s.payload
            );
        }
        let named = parse(&with_field(s.payload, "59", "Test Shop")).unwrap();
        assert_eq!(named.display_name, "Test Shop", "{}", s.payload);
        assert!(!named.warnings.iter().any(|w| w.field() == 59));
    }
}

/// The same codes with their scheme's id replaced by an unknown one are
/// held to EMVCo's base rules: what their scheme allowed is refused.
#[test]
fn an_unknown_scheme_is_held_to_the_base_specification() {
    let ids = ["A000000677010111", "A000000677010112", "A000000727"];
    for s in samples() {
        let Some(id) = ids.iter().find(|id| s.payload.contains(*id)) else {
            continue;
        };
        let unknown = "F".repeat(id.len());
        let fields: Vec<_> = root(s.payload)
            .into_iter()
            .map(|(f, v)| (f, v.replace(id, &unknown)))
            .collect();
        let e = refusal(&rebuild(&fields));
        assert_eq!(e.code(), "qr_missing_field", "{}: {e}", s.payload);
    }
}
