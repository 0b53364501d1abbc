use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn key(text: &str) -> DesKey {
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    DesKey::new(out)
}

/// The examples published with pyemv 1.5 (an independent implementation),
/// one per step.
#[test]
fn each_step_gives_the_published_values() {
    let issuer = key("0123456789ABCDEFFEDCBA9876543210");
    let card = icc_master_key(&issuer, "12345678901234567", "01").unwrap();
    assert_eq!(hex(card.bytes()), "73AD54688CEF2934B0979857E3C719F1");

    let session = session_key(&key("0123456789ABCDEFFEDCBA9876543210"), 0x001C);
    assert_eq!(hex(session.bytes()), "E9FB384AF807B940FEDCEA613461B0C4");

    let data = TransactionData {
        amount_minor: 2000,
        other_amount_minor: 0,
        terminal_country: 124,
        tvr: [0, 0, 0, 0x80, 0],
        currency: 124,
        date: (11, 3, 9),
        transaction_type: 0,
        unpredictable_number: 0x3804_823E,
        aip: [0x58, 0x00],
        atc: 1,
    };
    let bytes = data.bytes().unwrap();
    assert_eq!(
        hex(&bytes),
        concat!(
            "000000002000",
            "000000000000",
            "0124",
            "0000008000",
            "0124",
            "110309",
            "00",
            "3804823E",
            "5800",
            "0001"
        )
    );
    let session = key("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB");
    let arqc = cryptogram(&session, &bytes);
    assert_eq!(hex(&arqc), "3B76CF10FECD8789");

    let arqc = [0x12, 0x34, 0x56, 0x78, 0x90, 0xAB, 0xCD, 0xEF];
    assert_eq!(hex(&arpc(&session, &arqc, [0, 0])), "F5E6F44147E2F1B0");
}

fn payment(amount_minor: u64, unpredictable_number: u32) -> TransactionData {
    TransactionData {
        amount_minor,
        other_amount_minor: 0,
        terminal_country: 410,
        tvr: [0; 5],
        currency: 410,
        date: (26, 11, 22),
        transaction_type: 0,
        unpredictable_number,
        aip: [0; 2],
        atc: 0,
    }
}

#[test]
fn a_tap_verifies_once_for_its_own_amount_and_card() {
    let issuer_key = key("0123456789ABCDEFFEDCBA9876543210");
    let issuer = Issuer::new(issuer_key.clone());
    let mut card = SimulatedCard::issue(&issuer_key, "4000001234567899", "00").unwrap();
    let mut other = SimulatedCard::issue(&issuer_key, "4000001234567881", "00").unwrap();

    let (tap, arqc) = card.tap(&payment(4500, 0x1111_1111)).unwrap();
    let answer = issuer
        .verify("4000001234567899", "00", &tap, &arqc)
        .unwrap();
    let card_session = session_key(
        &icc_master_key(&issuer_key, "4000001234567899", "00").unwrap(),
        tap.atc,
    );
    assert_eq!(answer, arpc(&card_session, &arqc, APPROVED));

    // The same tap again: refused, the counter did not move.
    assert_eq!(
        issuer.verify("4000001234567899", "00", &tap, &arqc),
        Err(EmvError::CounterReplay { atc: 1, last: 1 })
    );

    // A tap for 4,500 presented for a payment of 45,000: refused.
    let (tap, arqc) = card.tap(&payment(4500, 0x2222_2222)).unwrap();
    let bigger = TransactionData {
        amount_minor: 45_000,
        ..tap.clone()
    };
    assert_eq!(
        issuer.verify("4000001234567899", "00", &bigger, &arqc),
        Err(EmvError::Cryptogram)
    );
    // Nor for another unpredictable number, or as another card's tap.
    let stale = TransactionData {
        unpredictable_number: 0x1111_1111,
        ..tap.clone()
    };
    assert_eq!(
        issuer.verify("4000001234567899", "00", &stale, &arqc),
        Err(EmvError::Cryptogram)
    );
    assert_eq!(
        issuer.verify("4000001234567881", "00", &tap, &arqc),
        Err(EmvError::Cryptogram)
    );
    // Failures moved nothing: the genuine tap still passes.
    issuer
        .verify("4000001234567899", "00", &tap, &arqc)
        .unwrap();

    // A counter that goes back: two taps made, the later one presented
    // first, then the earlier one.
    let (first, first_arqc) = card.tap(&payment(100, 3)).unwrap();
    let (second, second_arqc) = card.tap(&payment(100, 4)).unwrap();
    issuer
        .verify("4000001234567899", "00", &second, &second_arqc)
        .unwrap();
    assert_eq!(
        issuer.verify("4000001234567899", "00", &first, &first_arqc),
        Err(EmvError::CounterReplay {
            atc: first.atc,
            last: second.atc
        })
    );

    // Cards keep their own counters.
    let (tap, arqc) = other.tap(&payment(100, 5)).unwrap();
    issuer
        .verify("4000001234567881", "00", &tap, &arqc)
        .unwrap();
}

#[test]
fn bad_fields_are_refused_not_truncated() {
    let issuer_key = key("0123456789ABCDEFFEDCBA9876543210");
    for (pan, psn) in [
        ("40000012345", "00"),
        ("40000012345678991234", "00"),
        ("4000001234567a99", "00"),
        ("4000001234567899", "0"),
    ] {
        assert_eq!(
            icc_master_key(&issuer_key, pan, psn).err(),
            Some(EmvError::CardNumber),
            "{pan} {psn}"
        );
    }
    let mut huge = payment(AMOUNT_MINOR_MAX + 1, 1);
    assert_eq!(huge.bytes(), Err(EmvError::Field));
    huge.amount_minor = AMOUNT_MINOR_MAX;
    assert!(huge.bytes().is_ok());
    huge.date = (26, 13, 1);
    assert_eq!(huge.bytes(), Err(EmvError::Field));
    assert_eq!(EmvError::Cryptogram.code(), "card_cryptogram_invalid");
}
