use super::*;

/// A regular at their usual shop, paying their usual amount at noon.
fn usual() -> Signals {
    Signals {
        user_id: "usr_1".into(),
        card_fingerprint: "fp_1".into(),
        terminal_id: "trm_1".into(),
        merchant_id: "mer_1".into(),
        country: "KR".into(),
        match_score: 0.78,
        match_margin: 0.5,
        liveness_score: 0.95,
        amount_minor: 4_500,
        amount_z_score: Some(0.3),
        user_payments_1h: 1,
        card_payments_1h: 1,
        terminal_payments_10m: 3,
        merchant_payments_1m: 1,
        card_accounts: 1,
        travel_speed_kmh: Some(3.0),
        first_at_merchant: false,
        first_at_terminal: false,
        terminal_failures_10m: 0,
        local_hour: 12,
        account_age_days: 200,
        pin_failures_24h: 0,
        blocked: None,
    }
}

fn engine() -> RiskEngine {
    RiskEngine::from_toml(DEFAULT_RULES).unwrap()
}

fn fired(a: &Assessment) -> Vec<&str> {
    a.fired.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn the_usual_payment_is_approved_with_nothing_fired() {
    let a = engine().assess(&usual());
    assert_eq!((a.decision, a.score), (Decision::Approve, 0));
    assert!(a.fired.is_empty());
}

/// A change to the usual payment.
type Change = fn(&mut Signals);

#[test]
fn each_default_rule_fires_on_its_signal_and_says_why() {
    let cases: Vec<(&str, Change)> = vec![
        ("weak_match", |s| s.match_score = 0.45),
        ("close_second", |s| s.match_margin = 0.05),
        ("weak_liveness", |s| s.liveness_score = 0.3),
        ("unusual_amount", |s| s.amount_z_score = Some(5.0)),
        ("user_velocity", |s| s.user_payments_1h = 7),
        ("card_testing", |s| s.card_payments_1h = 11),
        ("card_shared", |s| s.card_accounts = 2),
        ("terminal_burst", |s| s.terminal_payments_10m = 61),
        ("terminal_under_attack", |s| s.terminal_failures_10m = 9),
        ("impossible_travel", |s| s.travel_speed_kmh = Some(1_500.0)),
        ("first_at_merchant", |s| s.first_at_merchant = true),
        ("small_hours", |s| s.local_hour = 3),
        ("new_account", |s| s.account_age_days = 0),
        ("pin_failures", |s| s.pin_failures_24h = 3),
    ];
    let engine = engine();
    for (rule, change) in cases {
        let mut s = usual();
        change(&mut s);
        let a = engine.assess(&s);
        assert_eq!(fired(&a), vec![rule], "{rule}");
        assert!(a.fired[0].reason.starts_with(rule), "{:?}", a.fired[0]);
        assert_eq!(a.score, a.fired[0].weight);
    }
    // Far from the habit fires both amount rules.
    let mut s = usual();
    s.amount_z_score = Some(13.0);
    assert_eq!(
        fired(&engine.assess(&s)),
        vec!["unusual_amount", "far_unusual_amount"]
    );
    // A signal that is not a number fires the rule that reads it.
    let mut s = usual();
    s.match_score = f64::NAN;
    assert_eq!(fired(&engine.assess(&s)), vec!["weak_match"]);
    // Unknown history fires nothing: a first payment has no z-score.
    let mut s = usual();
    s.amount_z_score = None;
    s.travel_speed_kmh = None;
    assert!(engine.assess(&s).fired.is_empty());
    // Between is inclusive.
    for (hour, fires) in [(0, false), (1, true), (5, true), (6, false)] {
        let mut s = usual();
        s.local_hour = hour;
        assert_eq!(!engine.assess(&s).fired.is_empty(), fires, "{hour}h");
    }
}

#[test]
fn the_score_chooses_the_decision_and_the_factor() {
    let engine = engine();
    // 30: the last four phone digits.
    let mut s = usual();
    s.match_score = 0.45;
    assert_eq!(
        engine.assess(&s).decision,
        Decision::StepUp(Factor::PhoneLast4)
    );
    // 30 + 20: all the digits.
    s.amount_z_score = Some(5.0);
    assert_eq!(
        engine.assess(&s).decision,
        Decision::StepUp(Factor::PhoneFull)
    );
    // 30 + 30 + 20 = 80: authorised, capture held for review.
    s.match_margin = 0.01;
    assert_eq!(engine.assess(&s).decision, Decision::Review);
    // 110: declined.
    s.user_payments_1h = 9;
    let a = engine.assess(&s);
    assert_eq!((a.decision, a.score), (Decision::Decline, 110));
    assert_eq!(a.fired.len(), 4);

    // A rule can ask for a stronger factor than its score: a PIN that was
    // being guessed is not asked for again.
    let mut s = usual();
    s.pin_failures_24h = 5;
    assert_eq!(
        engine.assess(&s).decision,
        Decision::StepUp(Factor::CardTap)
    );
    // A stolen photo far away: impossible travel asks for the card.
    let mut s = usual();
    s.travel_speed_kmh = Some(5_000.0);
    s.first_at_merchant = true;
    let a = engine.assess(&s);
    assert_eq!(
        (a.decision, a.score),
        (Decision::StepUp(Factor::CardTap), 70)
    );
}

#[test]
fn lists_come_before_rules_and_blocks_before_allows() {
    let text = format!(
        "{DEFAULT_RULES}\n[block]\ncards = [\"fp_stolen\"]\ncountries = [\"XX\"]\n\
         [allow]\nusers = [\"usr_vip\", \"usr_both\"]\n"
    );
    let engine = RiskEngine::from_toml(&text).unwrap();
    let mut s = usual();
    s.card_fingerprint = "fp_stolen".into();
    let a = engine.assess(&s);
    assert_eq!(a.decision, Decision::Decline);
    assert_eq!(a.fired[0].reason, "blocked: card:fp_stolen");
    let mut s = usual();
    s.country = "XX".into();
    assert_eq!(engine.assess(&s).decision, Decision::Decline);
    let mut s = usual();
    s.user_id = "usr_vip".into();
    s.match_score = 0.4;
    s.travel_speed_kmh = Some(5_000.0);
    let a = engine.assess(&s);
    assert_eq!(a.decision, Decision::Approve);
    assert_eq!(a.fired[0].reason, "allowed: user:usr_vip");
    let mut s = usual();
    s.user_id = "usr_both".into();
    s.card_fingerprint = "fp_stolen".into();
    assert_eq!(engine.assess(&s).decision, Decision::Decline);
    // The run-time blocklist the caller looked up wins over an allow entry.
    let mut s = usual();
    s.user_id = "usr_vip".into();
    s.blocked = Some("terminal:trm_1 (two accepted fraud claims)".into());
    let a = engine.assess(&s);
    assert_eq!(a.decision, Decision::Decline);
    assert_eq!(
        a.fired[0].reason,
        "blocked: terminal:trm_1 (two accepted fraud claims)"
    );
}

#[test]
fn a_reload_replaces_the_rules_and_a_bad_file_changes_nothing() {
    let engine = engine();
    let mut s = usual();
    s.first_at_merchant = true;
    s.local_hour = 3;
    s.account_age_days = 0;
    assert_eq!(
        engine.assess(&s).decision,
        Decision::StepUp(Factor::PhoneLast4)
    );

    let stricter = DEFAULT_RULES
        .replace("step_up_from = 30", "step_up_from = 20")
        .replace(
            "{ from = 30, factor = \"phone_last4\" }",
            "{ from = 20, factor = \"phone_last4\" }",
        );
    engine.reload(&stricter).unwrap();
    s.account_age_days = 100;
    assert_eq!(
        engine.assess(&s).decision,
        Decision::StepUp(Factor::PhoneLast4)
    );

    for bad in [
        "not toml at all [".to_string(),
        DEFAULT_RULES.replace("review_from = 80", "review_from = 10"),
        DEFAULT_RULES.replace("signal = \"match_score\"", "signal = \"shoe_size\""),
        DEFAULT_RULES.replace(
            "below = 0.5\nweight = 30\n\n[[rule]]\nname = \"close_second\"",
            "weight = 30\n\n[[rule]]\nname = \"close_second\"",
        ),
        DEFAULT_RULES.replace("name = \"close_second\"", "name = \"weak_match\""),
        DEFAULT_RULES.replace("weight = 60", "weight = 60000"),
        DEFAULT_RULES.replace("between = [1, 5]", "between = [5, 1]"),
        DEFAULT_RULES.replace(
            "{ from = 60, factor = \"pin\" }",
            "{ from = 60, factor = \"phone_last4\" }",
        ),
        format!("{DEFAULT_RULES}\nsurprise = 1\n"),
    ] {
        assert!(engine.reload(&bad).is_err(), "{bad}");
        assert_eq!(
            engine.assess(&s).decision,
            Decision::StepUp(Factor::PhoneLast4),
            "the stricter rules stay"
        );
    }
}

#[test]
fn robust_z_scores_shrug_off_outliers() {
    let usual_coffee = [4_500, 4_800, 4_500, 5_000, 4_600, 4_500, 250_000];
    assert_eq!(
        robust_z_score(&usual_coffee[..4], 4_500),
        None,
        "too little history"
    );
    let z = robust_z_score(&usual_coffee, 4_700).unwrap();
    assert!(z.abs() < 1.0, "{z}");
    let z = robust_z_score(&usual_coffee, 90_000).unwrap();
    assert!(z > 100.0, "{z}");
    // One repeated amount: any other amount is far, the same one is not.
    let same = [10_000; 8];
    assert_eq!(robust_z_score(&same, 10_000), Some(0.0));
    assert_eq!(robust_z_score(&same, 11_000), Some(10.0));
}

#[test]
fn travel_speed_is_distance_over_time() {
    let seoul = Seen {
        latitude_e6: 37_566_535,
        longitude_e6: 126_977_969,
        at_ms: 0,
    };
    let busan = Seen {
        latitude_e6: 35_179_554,
        longitude_e6: 129_075_642,
        at_ms: 3_600_000,
    };
    // About 325 km in an hour.
    let kmh = travel_speed_kmh(seoul, busan);
    assert!((315.0..335.0).contains(&kmh), "{kmh}");
    let ten_minutes = Seen {
        at_ms: 600_000,
        ..busan
    };
    assert!(travel_speed_kmh(seoul, ten_minutes) > 1_800.0);
    assert_eq!(travel_speed_kmh(seoul, Seen { at_ms: 5, ..seoul }), 0.0);
    assert_eq!(
        travel_speed_kmh(busan, seoul),
        f64::INFINITY,
        "out of order"
    );
    let at_once = Seen { at_ms: 0, ..busan };
    assert_eq!(travel_speed_kmh(seoul, at_once), f64::INFINITY);
}

/// The demo's first payment: a new account, paying somewhere for the
/// first time, at three in the morning.
fn demo_first_payment() -> Signals {
    Signals {
        first_at_merchant: true,
        first_at_terminal: true,
        account_age_days: 0,
        amount_z_score: None,
        travel_speed_kmh: None,
        local_hour: 3,
        ..usual()
    }
}

#[test]
fn the_demo_rules_approve_a_first_payment_at_any_hour_and_step_up_a_large_one() {
    let demo = RiskEngine::from_toml(DEMO_RULES).unwrap();
    for hour in 0..24 {
        let payment = Signals {
            local_hour: hour,
            ..demo_first_payment()
        };
        let a = demo.assess(&payment);
        assert_eq!(
            a.decision,
            Decision::Approve,
            "at {hour}:00: {:?}",
            fired(&a)
        );
    }
    let large = Signals {
        amount_minor: 150_000,
        ..demo_first_payment()
    };
    let a = demo.assess(&large);
    assert_eq!(a.decision, Decision::StepUp(Factor::PhoneLast4));
    assert!(fired(&a).contains(&"large_amount"));
    // The default rules step the same first payment up in the small hours.
    assert_eq!(
        engine().assess(&demo_first_payment()).decision,
        Decision::StepUp(Factor::PhoneLast4)
    );
}

#[test]
fn counts_are_counted_one_past_the_highest_bound_a_rule_compares_them_with() {
    let rules = engine().rules();
    assert_eq!(rules.count_limit(Signal::UserPayments1h), 7, "above 6");
    assert_eq!(
        rules.count_limit(Signal::TerminalPayments10m),
        61,
        "above 60"
    );
    assert_eq!(
        rules.count_limit(Signal::MerchantPayments1m),
        0,
        "no default rule reads it"
    );
}

#[test]
fn a_count_stopped_at_its_limit_decides_every_rule_as_the_whole_count() {
    let text = format!(
        "{}\n[[rule]]\nname = \"rush\"\nsignal = \"merchant_payments_1m\"\nabove = 40.5\nweight = 10\n\
         [[rule]]\nname = \"quiet\"\nsignal = \"merchant_payments_1m\"\nbelow = 3\nweight = 5\n\
         [[rule]]\nname = \"middle\"\nsignal = \"merchant_payments_1m\"\nbetween = [10, 20]\nweight = 7\n",
        APPROVE_ALL
    );
    let rules = RiskEngine::from_toml(&text).unwrap().rules();
    let limit = rules.count_limit(Signal::MerchantPayments1m);
    assert_eq!(limit, 42);
    for whole in 0..200 {
        let at = |n: u32| {
            let mut s = usual();
            s.merchant_payments_1m = n;
            fired(&rules.assess(&s))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(at(whole), at(whole.min(limit)), "{whole} payments");
    }
    let reason = |n: u32| {
        let mut s = usual();
        s.merchant_payments_1m = n;
        let a = rules.assess(&s);
        let rush = a.fired.iter().find(|f| f.rule == "rush").unwrap();
        rush.reason.clone()
    };
    assert_eq!(reason(41), "rush: 41 above 40.5");
    assert_eq!(
        reason(limit),
        "rush: at least 42 above 40.5",
        "a count stopped at its limit says so"
    );
}

#[test]
fn a_count_compared_with_more_than_a_million_is_refused() {
    let text = format!(
        "{}\n[[rule]]\nname = \"huge\"\nsignal = \"merchant_payments_1m\"\nabove = 2000000\nweight = 1\n",
        APPROVE_ALL
    );
    let e = RiskEngine::from_toml(&text).err().unwrap();
    assert!(e.to_string().contains("at most"), "{e}");
}
