use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;

use super::*;

fn sample() -> MerchantQr {
    MerchantQr {
        format_indicator: "01".into(),
        initiation: Some(Initiation::Dynamic),
        accounts: vec![Account::Template {
            id: 26,
            network: "id.co.example.qris".into(),
            fields: vec![
                (1, "936000140000000001".into()),
                (2, "ID1020000000001".into()),
            ],
        }],
        category_code: Some("5812".into()),
        currency_numeric: "360".into(),
        amount: Some("55000".into()),
        tip: Some(Tip::Percentage("3.5".into())),
        country: Some("ID".into()),
        merchant_name: Some("Warung Makan Sederhana".into()),
        city: Some("JAKARTA".into()),
        postal_code: Some("10110".into()),
        additional: Some(Additional {
            bill_number: Some("INV-0042".into()),
            store_label: Some("Kemang".into()),
            terminal_label: Some("T01".into()),
            reference_label: Some("REF123".into()),
            payment_system: vec![(50, "0015SG.COM.DASH.WWW".into())],
            ..Additional::default()
        }),
        language: Some(Language {
            preference: "ko".into(),
            merchant_name: "소박한 식당".into(),
            city: Some("자카르타".into()),
        }),
        unreserved: vec![(80, "0012facepay.hub".into())],
    }
}

/// A payload with its CRC recomputed, for tests that break one rule only.
fn with_crc(body: &str) -> String {
    let covered = format!("{body}6304");
    format!("{covered}{:04X}", crc16(&covered))
}

#[test]
fn the_crc_has_the_published_check_value() {
    assert_eq!(crc16("123456789"), 0x29B1);
}

#[test]
fn a_payload_round_trips_with_its_crc() {
    let qr = sample();
    let text = encode(&qr).unwrap();
    assert!(text.starts_with("000201010212"));
    assert_eq!(&text[text.len() - 8..text.len() - 4], "6304");
    let scanned = parse(&text).unwrap();
    assert_eq!(scanned.qr, qr);
    assert_eq!(scanned.scheme, Scheme::Emvco);
    assert_eq!(scanned.currency, "IDR");
    assert_eq!(scanned.display_name, "Warung Makan Sederhana");
    assert_eq!(scanned.amount(), Some("55000"));
    assert!(scanned.warnings.is_empty());
    let account = scanned.merchant_account.unwrap();
    assert_eq!(
        (account.network.as_str(), account.id.as_str()),
        ("id.co.example.qris", "936000140000000001")
    );
    // Lower-case CRC digits read the same.
    let lower = format!(
        "{}{}",
        &text[..text.len() - 4],
        text[text.len() - 4..].to_lowercase()
    );
    assert_eq!(parse(&lower).unwrap().qr, qr);
}

#[test]
fn a_static_code_needs_no_amount_and_a_dynamic_one_does() {
    let mut qr = sample();
    qr.initiation = Some(Initiation::Static);
    qr.amount = None;
    qr.tip = Some(Tip::Prompt);
    assert_eq!(parse(&encode(&qr).unwrap()).unwrap().qr, qr);
    qr.initiation = Some(Initiation::Dynamic);
    assert!(matches!(encode(&qr), Err(QrError::Missing { id: 54, .. })));
}

#[test]
fn every_broken_rule_is_named() {
    let good = encode(&sample()).unwrap();
    let body = &good[..good.len() - 8];
    let minimal = "000201".to_owned()
        + "0208MERCH001"
        + "52045812"
        + "5303410"
        + "5802KR"
        + "5904Cafe"
        + "6005Seoul";
    assert!(parse(&with_crc(&minimal)).is_ok());
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "qr_empty"),
        ("0".repeat(PAYLOAD_CHARS_MAX + 1), "qr_too_long"),
        (format!("{}0000", &good[..good.len() - 4]), "qr_bad_crc"),
        (good[..good.len() - 2].to_owned(), "qr_truncated"),
        (with_crc(&format!("{minimal}5A02xx")), "qr_bad_id"),
        (with_crc(&format!("{minimal}59x1a")), "qr_bad_length"),
        (with_crc(&format!("{minimal}5900")), "qr_bad_length"),
        (
            with_crc(&format!("{minimal}5904Cafe")),
            "qr_duplicate_field",
        ),
        (
            with_crc(&format!("5802KR{}", &minimal.replace("5802KR", ""))),
            "qr_misordered_field",
        ),
        (
            format!("{}610512345", with_crc(&minimal)),
            "qr_misordered_field",
        ),
        (
            with_crc(&minimal.replace("52045812", "")),
            "qr_missing_field",
        ),
        (
            with_crc(&minimal.replace("0208MERCH001", "")),
            "qr_missing_field",
        ),
        (with_crc(&minimal.replace("000201", "")), "qr_missing_field"),
        (minimal.clone(), "qr_missing_field"),
        (
            with_crc(&minimal.replace("52045812", "52045A12")),
            "qr_bad_value",
        ),
        (
            with_crc(&minimal.replace("5303410", "53034X0")),
            "qr_bad_value",
        ),
        (
            with_crc(&minimal.replace("5303410", "5303999")),
            "qr_unknown_currency",
        ),
        (
            with_crc(&minimal.replace("5802KR", "5802kr")),
            "qr_bad_value",
        ),
        (
            with_crc(&minimal.replace("000201", "000202")),
            "qr_bad_value",
        ),
        (with_crc(&format!("{minimal}54041.2.")), "qr_bad_value"),
        (with_crc(&format!("{minimal}010213")), "qr_bad_value"),
        (with_crc(&format!("{minimal}550202")), "qr_bad_value"),
        (with_crc(&format!("{minimal}5603100")), "qr_bad_value"),
        (with_crc(&format!("{minimal}65020A")), "qr_bad_value"),
        (with_crc(&format!("{minimal}260801041234")), "qr_bad_value"),
        (with_crc(&format!("{minimal}62061002XY")), "qr_bad_value"),
        (
            with_crc(&format!("{minimal}64120002k10102Ab")),
            "qr_bad_value",
        ),
        (with_crc(&format!("{minimal}6204A1B2")), "qr_bad_id"),
        (
            with_crc(&minimal.replace("5904Cafe", "5904Caf\u{e9}")),
            "qr_bad_value",
        ),
        (
            with_crc(&format!("{body}54041.2."))[..10].to_owned(),
            "qr_truncated",
        ),
    ];
    for (payload, code) in cases {
        let error = parse(&payload).expect_err(&payload);
        assert_eq!(error.code(), code, "{payload}: {error}");
        assert!(!error.to_string().is_empty());
    }
}

/// A code with one template and only the fields every scheme prints.
fn bare(id: u8, network: &str, fields: &[(u8, &str)], country: &str, currency: &str) -> MerchantQr {
    MerchantQr {
        format_indicator: "01".into(),
        initiation: Some(Initiation::Static),
        accounts: vec![Account::Template {
            id,
            network: network.into(),
            fields: fields.iter().map(|(s, v)| (*s, (*v).to_owned())).collect(),
        }],
        category_code: None,
        currency_numeric: currency.into(),
        amount: None,
        tip: None,
        country: Some(country.into()),
        merchant_name: None,
        city: None,
        postal_code: None,
        additional: None,
        language: None,
        unreserved: Vec::new(),
    }
}

#[test]
fn the_scheme_decides_which_base_fields_may_be_left_out() {
    let promptpay = bare(29, "A000000677010111", &[(1, "0066812345678")], "TH", "764");
    let scanned = parse(&encode(&promptpay).unwrap()).unwrap();
    assert_eq!(scanned.scheme, Scheme::PromptPay);
    assert_eq!(scanned.display_name, "PromptPay +66812345678");
    let omitted: Vec<u8> = scanned.warnings.iter().map(Warning::field).collect();
    assert_eq!(omitted, [52, 59, 60]);
    assert!(
        scanned
            .warnings
            .iter()
            .all(|w| w.code() == "qr_field_omitted")
    );
    // The same code under a network no scheme names is held to the base
    // specification, and so is a PromptPay code without its proxy.
    let unknown = bare(29, "A000000677019999", &[(1, "0066812345678")], "TH", "764");
    assert_eq!(encode(&unknown).unwrap_err().code(), "qr_missing_field");
    let no_proxy = bare(29, "A000000677010111", &[(9, "x")], "TH", "764");
    assert!(matches!(
        encode(&no_proxy),
        Err(QrError::Missing { id: 29, .. })
    ));
    // A name the code carries is the one shown.
    let mut named = promptpay;
    named.merchant_name = Some("Som Tam Shop".into());
    let scanned = parse(&encode(&named).unwrap()).unwrap();
    assert_eq!(scanned.display_name, "Som Tam Shop");
    assert_eq!(scanned.warnings.len(), 2);
}

#[test]
fn duitnow_may_print_format_02_and_no_other_scheme_may() {
    let mut duitnow = bare(
        26,
        "A0000006150001",
        &[(1, "890053"), (2, "MD1")],
        "MY",
        "458",
    );
    duitnow.format_indicator = "02".into();
    duitnow.category_code = Some("8661".into());
    duitnow.merchant_name = Some("MASJID".into());
    duitnow.city = Some("MY".into());
    let scanned = parse(&encode(&duitnow).unwrap()).unwrap();
    assert_eq!(scanned.scheme, Scheme::DuitNow);
    assert_eq!(
        scanned.warnings,
        [Warning::FormatIndicator { found: "02".into() }]
    );
    let account = scanned.merchant_account.unwrap();
    assert_eq!(
        (account.id.as_str(), account.institution.as_deref()),
        ("MD1", Some("890053"))
    );
    // DuitNow requires the name that PromptPay may leave out.
    duitnow.merchant_name = None;
    assert!(matches!(
        encode(&duitnow),
        Err(QrError::Missing { id: 59, .. })
    ));
    let mut other = sample();
    other.format_indicator = "02".into();
    assert!(matches!(
        encode(&other),
        Err(QrError::BadValue { id: 0, .. })
    ));
}

#[test]
fn a_country_or_currency_not_the_schemes_is_a_warning() {
    let code = bare(29, "A000000677010111", &[(2, "1111111111111")], "KH", "840");
    let scanned = parse(&encode(&code).unwrap()).unwrap();
    assert_eq!(scanned.currency, "USD");
    let codes: Vec<&str> = scanned.warnings.iter().map(Warning::code).collect();
    assert_eq!(
        codes,
        [
            "qr_field_omitted",
            "qr_field_omitted",
            "qr_field_omitted",
            "qr_unexpected_country",
            "qr_unexpected_currency"
        ]
    );
    assert!(scanned.warnings.iter().all(|w| !w.to_string().is_empty()));
}

#[test]
fn a_dynamic_code_may_leave_its_amount_to_pix_alone() {
    let mut pix = bare(
        26,
        "br.gov.bcb.pix",
        &[(25, "pix.example.com/abc")],
        "BR",
        "986",
    );
    pix.initiation = Some(Initiation::Dynamic);
    pix.category_code = Some("0000".into());
    pix.merchant_name = Some("Fulano de Tal".into());
    pix.city = Some("BRASILIA".into());
    let scanned = parse(&encode(&pix).unwrap()).unwrap();
    assert_eq!(scanned.warnings, [Warning::AmountElsewhere]);
    assert_eq!(scanned.merchant_account.unwrap().id, "pix.example.com/abc");
    let mut paynow = pix;
    paynow.accounts = vec![Account::Template {
        id: 26,
        network: "SG.PAYNOW".into(),
        fields: vec![(1, "2".into()), (2, "201403121W".into())],
    }];
    paynow.country = Some("SG".into());
    paynow.currency_numeric = "702".into();
    assert!(matches!(
        encode(&paynow),
        Err(QrError::Missing { id: 54, .. })
    ));
}

#[test]
fn khqr_is_a_bakong_account_in_a_cambodian_code() {
    let mut khqr = bare(29, "jonhsmith@nbcq", &[], "KH", "116");
    khqr.category_code = Some("5999".into());
    khqr.merchant_name = Some("Jonh Smith".into());
    khqr.city = Some("Phnom Penh".into());
    let scanned = parse(&encode(&khqr).unwrap()).unwrap();
    assert_eq!(scanned.scheme, Scheme::Khqr);
    assert_eq!(scanned.merchant_account.unwrap().id, "jonhsmith@nbcq");
    assert_eq!(scanned.currency, "KHR");
    khqr.country = Some("TH".into());
    let scanned = parse(&encode(&khqr).unwrap()).unwrap();
    assert_eq!(scanned.scheme, Scheme::Emvco);
    assert_eq!(scanned.merchant_account, None);
    assert_eq!(scanned.display_name, "Jonh Smith");
}

/// A field's value: printable ASCII without the characters that would make
/// the case trivial, 1 to `max` long.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9 .-]{{1,{max}}}")).unwrap()
}

fn decimal() -> impl Strategy<Value = String> {
    ("[1-9][0-9]{0,6}", proptest::option::of("[0-9]{1,2}")).prop_map(|(whole, fraction)| {
        match fraction {
            Some(f) => format!("{whole}.{f}"),
            None => whole,
        }
    })
}

fn account() -> impl Strategy<Value = Account> {
    prop_oneof![
        (2u8..=25, text(20)).prop_map(|(id, value)| Account::Primitive { id, value }),
        (
            26u8..=51,
            text(30),
            proptest::collection::btree_map(1u8..=99, text(10), 0..3)
        )
            .prop_map(|(id, network, fields)| Account::Template {
                id,
                network,
                fields: fields.into_iter().collect(),
            }),
    ]
}

fn merchant_qr() -> impl Strategy<Value = MerchantQr> {
    (
        proptest::collection::btree_map(2u8..=51, account(), 1..4),
        (
            "[0-9]{4}",
            proptest::sample::select(
                &[
                    "410", "360", "704", "764", "458", "702", "116", "986", "840",
                ][..],
            ),
            proptest::option::of(decimal()),
        ),
        prop_oneof![
            Just(None),
            Just(Some(Tip::Prompt)),
            decimal().prop_map(|d| Some(Tip::Fixed(d))),
            "[1-9]\\.[0-9]".prop_map(|p| Some(Tip::Percentage(p))),
        ],
        (
            "[A-Z]{2}",
            text(25),
            text(15),
            proptest::option::of("[0-9]{5}"),
        ),
        proptest::option::of((
            text(20),
            text(10),
            proptest::collection::btree_map(50u8..=99, text(10), 0..2),
        )),
        proptest::collection::btree_map(80u8..=99, text(20), 0..2),
    )
        .prop_map(
            |(accounts, (mcc, currency, amount), tip, place, refs, unreserved)| {
                let (country, merchant_name, city, postal_code) = place;
                MerchantQr {
                    format_indicator: "01".to_owned(),
                    initiation: Some(if amount.is_some() {
                        Initiation::Dynamic
                    } else {
                        Initiation::Static
                    }),
                    // One account per id: the map's key is the account's id.
                    accounts: accounts
                        .into_iter()
                        .map(|(id, a)| match a {
                            Account::Primitive { value, .. } if id <= 25 => {
                                Account::Primitive { id, value }
                            }
                            Account::Primitive { value, .. } => Account::Template {
                                id,
                                network: value,
                                fields: Vec::new(),
                            },
                            Account::Template {
                                network, fields, ..
                            } if id >= 26 => Account::Template {
                                id,
                                network,
                                fields,
                            },
                            Account::Template { network, .. } => {
                                Account::Primitive { id, value: network }
                            }
                        })
                        .collect(),
                    category_code: Some(mcc),
                    currency_numeric: currency.to_owned(),
                    amount,
                    tip,
                    country: Some(country),
                    merchant_name: Some(merchant_name),
                    city: Some(city),
                    postal_code,
                    additional: refs.map(|(bill, terminal, templates)| Additional {
                        bill_number: Some(bill),
                        terminal_label: Some(terminal),
                        payment_system: templates.into_iter().collect(),
                        ..Additional::default()
                    }),
                    language: None,
                    unreserved: unreserved.into_iter().collect(),
                }
            },
        )
}

proptest! {
    #[test]
    fn any_generated_payload_parses_back_to_its_fields(qr in merchant_qr()) {
        let text = encode(&qr).unwrap();
        prop_assert_eq!(parse(&text).unwrap().qr, qr);
    }

    #[test]
    fn any_text_is_an_answer_never_a_panic(text in "\\PC{0,300}") {
        let _ = parse(&text);
    }
}

/// How long each fuzz target runs (`FACEPAY_QR_FUZZ_SECONDS`, 3 by
/// default), and a seeded xorshift64 to pick mutations: fast, and the
/// printed seed replays a failure.
fn fuzz_budget(target: &str) -> (u64, std::time::Instant, impl FnMut(usize) -> usize) {
    let seconds: u64 = std::env::var("FACEPAY_QR_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("{target} fuzz seed {seed}");
    let mut state = seed;
    let next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound.max(1) as u64) as usize
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    (seed, deadline, next)
}

/// The parser's fuzz target, run for a bounded time in every test run:
/// valid payloads mutated at random, half of them with their CRC made
/// right again so the mutation reaches the field rules. No input may
/// panic, and whatever parses must write back and parse to the same
/// fields. Hand-written because cargo-fuzz needs a nightly toolchain.
#[test]
fn fuzz_mutations_for_a_bounded_time() {
    let (seed, deadline, mut next) = fuzz_budget("merchant-presented");
    let mut static_qr = sample();
    static_qr.initiation = Some(Initiation::Static);
    static_qr.amount = None;
    let seeds = [encode(&sample()).unwrap(), encode(&static_qr).unwrap()];
    let alphabet: Vec<char> = "0123456789ABCDEFabcdef .-/:한\u{0}\u{7f}".chars().collect();
    let (mut runs, mut parsed) = (0u64, 0u64);
    while std::time::Instant::now() < deadline {
        let mut chars: Vec<char> = seeds[next(seeds.len())].chars().collect();
        for _ in 0..1 + next(4) {
            let at = next(chars.len() + 1);
            match next(5) {
                0 if at < chars.len() => chars[at] = alphabet[next(alphabet.len())],
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                2 => chars.insert(at, alphabet[next(alphabet.len())]),
                3 => chars.truncate(at),
                _ => {
                    let len = next(12).min(chars.len() - at.min(chars.len()));
                    let copy: Vec<char> = chars[at.min(chars.len())..][..len].to_vec();
                    let to = next(chars.len() + 1);
                    chars.splice(to..to, copy);
                }
            }
        }
        let mut text: String = chars.into_iter().collect();
        if next(2) == 0 && text.chars().count() >= 8 {
            let body: String = text.chars().take(text.chars().count() - 8).collect();
            text = with_crc(&body);
        }
        runs += 1;
        if let Ok(qr) = parse(&text) {
            parsed += 1;
            let again = encode(&qr.qr)
                .unwrap_or_else(|e| panic!("seed {seed}: {text:?} parsed but does not write: {e}"));
            assert_eq!(parse(&again).unwrap(), qr, "seed {seed}: {text:?}");
        }
    }
    println!("{runs} mutated payloads, {parsed} still valid");
    assert!(runs > 1000, "too few runs to mean anything: {runs}");
}

/// The consumer-presented parser's fuzz target: the bytes under a valid
/// code's Base64 mutated (lengths, tags, values cut, grown or moved), and
/// sometimes the Base64 text itself. No input may panic; whatever parses
/// must write back and parse to the same code.
#[test]
fn fuzz_consumer_codes_for_a_bounded_time() {
    let (seed, deadline, mut next) = fuzz_budget("consumer-presented");
    let seed_code = encode_consumer(&crate::consumer::tests::sample());
    let bytes = BASE64.decode(&seed_code).unwrap();
    let (mut runs, mut parsed) = (0u64, 0u64);
    while std::time::Instant::now() < deadline {
        let mut b = bytes.clone();
        for _ in 0..1 + next(4) {
            let at = next(b.len() + 1);
            match next(4) {
                0 if at < b.len() => b[at] = next(256) as u8,
                1 if at < b.len() => {
                    b.remove(at);
                }
                2 => b.insert(at, next(256) as u8),
                _ => b.truncate(at),
            }
        }
        let mut text = BASE64.encode(&b);
        if next(8) == 0 && !text.is_empty() {
            let at = next(text.len());
            text.replace_range(at..=at, "*");
        }
        runs += 1;
        if let Ok(qr) = parse_consumer(&text) {
            parsed += 1;
            let again = encode_consumer(&qr);
            assert_eq!(parse_consumer(&again).unwrap(), qr, "seed {seed}: {text:?}");
        }
    }
    println!("{runs} mutated codes, {parsed} still valid");
    assert!(runs > 1000, "too few runs to mean anything: {runs}");
}
