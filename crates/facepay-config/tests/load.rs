//! Loading, overrides, defaults and every kind of refusal. Each error test
//! checks the key path (and where it was set) appears in the message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use facepay_config::{
    Backend, Config, ConfigError, Connector, Country, Face, FxSourceKind, Gallery, GalleryKind,
    KeyParts, KeyProvider, Limits, Liveness, Location, NetworkKind, Rate, Retention, Risk,
    RiskPreset, Secret, Server, Store, StoreKind, Vault, WebhookDestinations, check,
};
use facepay_money::Currency;

const SIMULATOR: &str = "\n[connector]\nkind = \"simulated_issuer\"\n";

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn example() -> PathBuf {
    manifest("../../facepay.example.toml")
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml(text, Some(Path::new("facepay.toml")), env(pairs))
}

fn refused(text: &str, pairs: &[(&str, &str)]) -> ConfigError {
    match load(text, pairs) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error) => error,
    }
}

/// The error has `code`, names `key`, and its message holds every piece.
fn assert_error(error: &ConfigError, code: &str, key: &str, pieces: &[&str]) {
    let message = error.to_string();
    assert_eq!(error.code(), code, "{message}");
    assert_eq!(error.key(), Some(key), "{message}");
    assert!(message.contains(key), "{message:?} does not name {key}");
    for piece in pieces {
        assert!(message.contains(piece), "{message:?} lacks {piece:?}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_example_loads_and_checks_with_no_secrets_present() {
    let config = Config::load(Some(&example()), env(&[])).unwrap();
    assert!(matches!(config.connector, Connector::SimulatedIssuer(ref s) if s.latency_ms == 0));
    assert_eq!(config.simulated_parts(), ["issuer: simulated_issuer"]);
    let summary = check(&example()).unwrap();
    assert_eq!(summary.simulated, ["issuer: simulated_issuer"]);
    let printed = summary.to_string();
    assert!(
        printed.contains("connector: simulated_issuer (a simulator"),
        "{printed}"
    );
    assert!(printed.contains("SIMULATED"), "{printed}");
    assert!(printed.contains("DEVELOPMENT ONLY"), "{printed}");
    assert!(
        printed.contains("store: sqlite in .facepay/data"),
        "{printed}"
    );
}

#[test]
fn the_example_writes_down_the_defaults() {
    let example = Config::load(Some(&example()), env(&[])).unwrap();
    let defaults = load(SIMULATOR, &[]).unwrap();
    assert_eq!(example.server, defaults.server);
    assert_eq!(example.store, defaults.store);
    assert_eq!(example.keys, defaults.keys);
    assert_eq!(example.vault, defaults.vault);
    assert_eq!(example.face, defaults.face);
    assert_eq!(example.gallery, defaults.gallery);
    assert_eq!(example.hub, defaults.hub);
    assert_eq!(example.fx, defaults.fx);
    assert_eq!(example.risk, defaults.risk);
    assert_eq!(example.retention, defaults.retention);
    assert_eq!(example.limits, defaults.limits);
    assert_eq!(example.webhooks, defaults.webhooks);
}

#[test]
fn the_demo_names_its_simulators() {
    let config = Config::demo(env(&[])).unwrap();
    assert_eq!(
        config.simulated_parts(),
        [
            "issuer: simulated_issuer",
            "hub network: kr.wallet.sim",
            "hub network: id.co.qris.sim",
            "hub network: vn.napas.sim",
            "hub network: th.promptpay.sim",
            "hub settlement bank: simulated",
            "fx: simulated",
        ]
    );
    assert_eq!(config.face.liveness, Liveness::Lenient);
    let countries: Vec<Country> = config.hub.networks.iter().map(|n| n.country).collect();
    let expected = [
        Country::Korea,
        Country::Indonesia,
        Country::Vietnam,
        Country::Thailand,
    ];
    assert_eq!(countries, expected);
    assert!(
        config
            .hub
            .networks
            .iter()
            .all(|n| n.kind == NetworkKind::Simulated)
    );
    let summary = config.summary().to_string();
    assert!(summary.contains("liveness is lenient"), "{summary}");
    // The file itself, as `facepay config check` would read it.
    let from_file = check(&manifest("src/demo.toml")).unwrap();
    assert_eq!(from_file.simulated, config.simulated_parts());
}

#[test]
fn defaults_are_todays_behaviour() {
    let config = Config::load(
        None,
        env(&[("FACEPAY_CONNECTOR__KIND", "simulated_issuer")]),
    )
    .unwrap();
    let server = &config.server;
    assert_eq!(
        server.address,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(server.public_url, None);
    assert!(server.trusted_proxies.is_empty() && server.tls.is_none());
    assert_eq!(server.json_body_bytes_max, 24 * 1024 * 1024);
    assert_eq!(server.image_bytes_max, 8 * 1024 * 1024);
    assert_eq!(config.store.data_dir, Path::new(".facepay/data"));
    assert_eq!(config.store.url, None);
    assert_eq!(config.store.kind(), StoreKind::Sqlite);
    let KeyProvider::File { dir } = &config.keys.provider;
    assert_eq!(dir, Path::new(".facepay/data/keys"));
    assert_eq!(
        config.keys.transforms_dir,
        Path::new(".facepay/data/transforms")
    );
    let Vault::Embedded(vault) = &config.vault else {
        panic!("{:?}", config.vault)
    };
    assert_eq!(vault.dir, Path::new(".facepay/data/vault"));
    assert_eq!(vault.database_url, None);
    assert_eq!(vault.key_parts, KeyParts::Embedded);
    let face = Face {
        backend: Backend::Ort,
        threads: 1,
        models_dir: None,
        liveness: Liveness::Strict,
        inference_concurrency: 2,
        enrolment_inference_concurrency: 1,
        enrolment_waiting_max: 16,
        pad: false,
    };
    assert_eq!(config.face, face);
    assert_eq!(config.gallery.kind, GalleryKind::Exact);
    assert_eq!(
        (config.gallery.threads, config.gallery.snapshot_file.clone()),
        (1, None)
    );
    let hub = &config.hub;
    assert!(hub.enabled && hub.facepay_member && hub.networks.is_empty());
    assert_eq!((hub.fee_bps, hub.home_currency), (20, Currency::KRW));
    assert!(config.fx.sources.is_empty());
    assert_eq!(config.risk.rules_file, None);
    let r = &config.retention;
    let retention = (
        r.idempotency_hours,
        r.authorisation_hold_hours,
        r.abandoned_after_minutes,
    );
    assert_eq!(retention, (48, 168, 15));
    let l = &config.limits;
    assert_eq!(l.idempotency_lease_ms, 30_000);
    assert_eq!((l.step_up_attempts_max, l.terminal_attempts_max), (3, 20));
    assert_eq!((l.factor_failures_max, l.factor_lock_minutes), (5, 15));
    let face_work = (
        l.enrolments_per_address_per_minute,
        l.enrolment_burst_per_address,
        l.photo_analyses_per_address_per_minute,
        l.photo_analysis_burst_per_address,
        l.face_work_addresses_max,
    );
    assert_eq!(face_work, (10, 10, 60, 20, 65_536));
    // Nothing but the connector it was told of is simulated.
    assert_eq!(config.simulated_parts(), ["issuer: simulated_issuer"]);
    // And every section equals its type's default.
    assert_eq!(config.server, Server::default());
    assert_eq!(config.store, Store::default());
    assert_eq!(config.gallery, Gallery::default());
    assert_eq!(config.risk, Risk::default());
    assert_eq!(config.retention, Retention::default());
    assert_eq!(config.limits, Limits::default());
}

#[test]
fn no_connector_is_named_by_default() {
    let error = Config::load(None, env(&[])).unwrap_err();
    assert_error(
        &error,
        "config_missing_key",
        "connector.kind",
        &["simulated_issuer", "hyperswitch"],
    );
    let error = refused("[connector.simulated_issuer]\nlatency_ms = 5\n", &[]);
    assert_error(
        &error,
        "config_missing_key",
        "connector.kind",
        &["facepay.toml:1: "],
    );
}

#[test]
fn environment_overrides_every_kind_of_value() {
    let file = "[server]\naddress = \"0.0.0.0:80\"\n[face]\nthreads = 4\n";
    let vars = [
        ("FACEPAY_SERVER__ADDRESS", "127.0.0.1:9000"),
        ("FACEPAY_FACE__THREADS", "2"),
        ("FACEPAY_FACE__PAD", "true"),
        ("FACEPAY_FACE__LIVENESS", "lenient"),
        (
            "FACEPAY_SERVER__TRUSTED_PROXIES",
            r#"["10.0.0.1", "192.168.0.0/16"]"#,
        ),
        ("FACEPAY_CONNECTOR__SIMULATED_ISSUER__LATENCY_MS", "5"),
        ("FACEPAY_GALLERY__KIND", "prefilter"),
        ("FACEPAY_GALLERY__PREFILTER__BITS", "128"),
        ("FACEPAY_HUB__HOME_CURRENCY", "THB"),
        (
            "FACEPAY_HUB__NETWORKS",
            r#"[{ id = "th.promptpay.sim", kind = "simulated", country = "TH" }]"#,
        ),
        ("FACEPAY_STORE__DATA_DIR", "/var/lib/facepay"),
        // Not configuration: no double underscore.
        ("FACEPAY_MODELS_DIR", "/nowhere"),
        ("FACEPAY_TEST_POSTGRES_URL", "postgres://x"),
        ("PATH", "/usr/bin"),
    ];
    let config = load(&format!("{file}{SIMULATOR}"), &vars).unwrap();
    assert_eq!(
        config.server.address,
        "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.face.threads, 2);
    assert!(config.face.pad);
    assert_eq!(config.face.liveness, Liveness::Lenient);
    let proxies: Vec<String> = config
        .server
        .trusted_proxies
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(proxies, ["10.0.0.1/32", "192.168.0.0/16"]);
    assert!(matches!(config.connector, Connector::SimulatedIssuer(ref s) if s.latency_ms == 5));
    assert_eq!(config.gallery.kind, GalleryKind::Prefilter);
    assert_eq!(config.gallery.prefilter.bits, 128);
    assert_eq!(config.hub.home_currency, Currency::THB);
    assert_eq!(config.hub.networks[0].id, "th.promptpay.sim");
    assert_eq!(config.store.data_dir, Path::new("/var/lib/facepay"));
    let KeyProvider::File { dir } = &config.keys.provider;
    assert_eq!(dir, Path::new("/var/lib/facepay/keys"));
}

#[test]
fn an_override_that_parses_as_another_kind_is_taken_as_a_string() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "hook.secret", "whsec\n");
    let file = format!(
        "[connector]\nkind = \"hyperswitch\"\n[connector.hyperswitch]\nbase_url = \"https://hs.test\"\n\
         api_key = {{ env = \"HS_KEY\" }}\nwebhook_secret = {{ file = {:?} }}\n",
        secret.display().to_string()
    );
    let vars = [
        ("HS_KEY", "snd_123"),
        ("FACEPAY_CONNECTOR__HYPERSWITCH__PROFILE_ID", "12345"),
        ("FACEPAY_CONNECTOR__HYPERSWITCH__TIMEOUT_MS", "5000"),
    ];
    let config = load(&file, &vars).unwrap();
    let Connector::Hyperswitch(hs) = &config.connector else {
        panic!("{:?}", config.connector)
    };
    assert_eq!(hs.profile_id.as_deref(), Some("12345"));
    assert_eq!(hs.timeout_ms, 5_000);
    assert_eq!(hs.api_key.expose(), "snd_123");
    assert_eq!(hs.webhook_secret.expose(), "whsec");
    assert!(config.simulated_parts().is_empty());
}

#[test]
fn an_unknown_key_in_the_file_is_named_with_its_line() {
    let error = refused(
        &format!("[server]\nadress = \"127.0.0.1:1\"\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_unknown_key",
        "server.adress",
        &[
            "facepay.toml:2: ",
            "unknown key; expected one of address, public_url",
        ],
    );
    let error = refused(&format!("[serve]\naddress = 1\n{SIMULATOR}"), &[]);
    assert_error(
        &error,
        "config_unknown_key",
        "serve",
        &["facepay.toml:1: ", "server"],
    );
    let error = refused(
        &format!(
            "[[hub.networks]]\nid = \"kr.wallet.sim\"\nkind = \"simulated\"\ncountry = \"KR\"\nfee = 1\n{SIMULATOR}"
        ),
        &[],
    );
    assert_error(
        &error,
        "config_unknown_key",
        "hub.networks[0].fee",
        &["facepay.toml:5: "],
    );
}

#[test]
fn an_unknown_variable_is_named() {
    let error = refused(SIMULATOR, &[("FACEPAY_SERVER__ADRESS", "127.0.0.1:1")]);
    assert_error(
        &error,
        "config_unknown_key",
        "server.adress",
        &["FACEPAY_SERVER__ADRESS: ", "expected one of address"],
    );
    let error = refused(SIMULATOR, &[("FACEPAY_SERVR__ADDRESS", "127.0.0.1:1")]);
    assert_error(
        &error,
        "config_unknown_key",
        "servr",
        &["FACEPAY_SERVR__ADDRESS: "],
    );
    let error = refused(SIMULATOR, &[("FACEPAY_SERVER____ADDRESS", "x")]);
    assert!(
        error.to_string().contains("FACEPAY_SERVER____ADDRESS"),
        "{error}"
    );
    let error = refused(SIMULATOR, &[("FACEPAY_SERVER__ADDRESS__PORT", "1")]);
    assert_error(
        &error,
        "config_wrong_type",
        "server.address",
        &["FACEPAY_SERVER__ADDRESS__PORT: ", "found a table"],
    );
    let file = format!("[server]\naddress = \"127.0.0.1:1\"\n{SIMULATOR}");
    let error = refused(&file, &[("FACEPAY_SERVER__ADDRESS__PORT", "1")]);
    assert_error(
        &error,
        "config_invalid_value",
        "server.address",
        &["FACEPAY_SERVER__ADDRESS__PORT: ", "not a table"],
    );
}

#[test]
fn a_wrong_type_names_the_key_and_both_kinds() {
    let error = refused(&format!("[face]\nthreads = \"two\"\n{SIMULATOR}"), &[]);
    assert_error(
        &error,
        "config_wrong_type",
        "face.threads",
        &[
            "facepay.toml:2: ",
            "expected a non-negative integer, found a string",
        ],
    );
    let error = refused(SIMULATOR, &[("FACEPAY_FACE__THREADS", "two")]);
    assert_error(
        &error,
        "config_wrong_type",
        "face.threads",
        &["FACEPAY_FACE__THREADS: "],
    );
    let error = refused(&format!("[face]\npad = 1\n{SIMULATOR}"), &[]);
    assert_error(
        &error,
        "config_wrong_type",
        "face.pad",
        &["expected a boolean, found the integer 1"],
    );
    let error = refused(&format!("server = 3\n{SIMULATOR}"), &[]);
    assert_error(&error, "config_wrong_type", "server", &["expected a table"]);
    let error = refused(&format!("[face]\nthreads = -1\n{SIMULATOR}"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "face.threads",
        &["found the integer -1"],
    );
}

#[test]
fn a_bad_value_names_the_choices() {
    let error = refused("[connector]\nkind = \"foo\"\n", &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "connector.kind",
        &["unknown connector \"foo\"; use simulated_issuer or hyperswitch"],
    );
    let error = refused(&format!("[gallery]\nkind = \"flat\"\n{SIMULATOR}"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "gallery.kind",
        &["use exact, prefilter, hnsw or ivf"],
    );
    let error = refused(
        &format!("[gallery]\nkind = \"hnsw\"\nkeep_floats = false\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "gallery.keep_floats",
        &["needs the floats kept"],
    );
    let error = refused(&format!("[hub]\nhome_currency = \"XYZ\"\n{SIMULATOR}"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "hub.home_currency",
        &["unknown currency"],
    );
    let error = refused(
        &format!("[server]\ntrusted_proxies = [\"10.0.0.300\"]\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "server.trusted_proxies",
        &["10.0.0.300"],
    );
    let error = refused(
        &format!("[server]\npublic_url = \"ftp://x\"\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "server.public_url",
        &["http"],
    );
    let error = refused(
        &format!("[server]\naddress = \"localhost\"\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "server.address",
        &["\"localhost\" is not an IP address and port"],
    );
    let error = refused(&format!("[store]\nurl = \"mysql://x\"\n{SIMULATOR}"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "store.url",
        &["sqlite: or postgres://"],
    );
}

#[test]
fn zero_and_oversized_limits_are_refused() {
    for (section, key) in [
        ("server", "connections_max"),
        ("server", "requests_in_flight_max"),
        ("server", "header_timeout_ms"),
        ("server", "json_body_bytes_max"),
        ("face", "inference_concurrency"),
        ("face", "enrolment_inference_concurrency"),
        ("face", "enrolment_waiting_max"),
        ("limits", "enrolments_per_address_per_minute"),
        ("limits", "enrolment_burst_per_address"),
        ("limits", "photo_analyses_per_address_per_minute"),
        ("limits", "photo_analysis_burst_per_address"),
        ("limits", "face_work_addresses_max"),
        ("gallery", "threads"),
        ("retention", "idempotency_hours"),
        ("limits", "step_up_attempts_max"),
        ("limits", "idempotency_lease_ms"),
    ] {
        let error = refused(&format!("[{section}]\n{key} = 0\n{SIMULATOR}"), &[]);
        let path = format!("{section}.{key}");
        assert_error(
            &error,
            "config_invalid_value",
            &path,
            &["facepay.toml:2: ", "must be at least 1"],
        );
    }
    let error = refused(
        &format!("[server]\nimage_bytes_max = 9000000\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "server.image_bytes_max",
        &["at most 8388608"],
    );
    let error = refused(&format!("[hub]\nfee_bps = 5000\n{SIMULATOR}"), &[]);
    assert_error(&error, "config_invalid_value", "hub.fee_bps", &["at most"]);
    let error = refused(
        &format!("[gallery]\nkind = \"prefilter\"\n[gallery.prefilter]\nbits = 100\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "gallery.prefilter.bits",
        &["multiple of 64"],
    );
}

#[test]
fn webhooks_are_read_checked_and_overridden() {
    let config = load(SIMULATOR, &[]).unwrap();
    assert_eq!(config.webhooks.destinations, WebhookDestinations::Public);
    assert_eq!(
        (
            config.webhooks.timeout_ms,
            config.webhooks.retry_window_hours
        ),
        (10_000, 24)
    );
    let config = load(
        SIMULATOR,
        &[
            ("FACEPAY_WEBHOOKS__DESTINATIONS", "loopback"),
            ("FACEPAY_WEBHOOKS__RETRY_DELAY_FIRST_MS", "200"),
        ],
    )
    .unwrap();
    assert_eq!(config.webhooks.destinations, WebhookDestinations::Loopback);
    assert_eq!(config.webhooks.retry_delay_first_ms, 200);
    assert!(
        config
            .summary()
            .to_string()
            .contains("webhooks: to loopback addresses")
    );
    let error = refused(
        &format!("[webhooks]\ndestinations = \"lan\"\n{SIMULATOR}"),
        &[],
    );
    assert_eq!(error.key(), Some("webhooks.destinations"), "{error}");
    assert!(
        error.to_string().contains("public, any or loopback"),
        "{error}"
    );
    for (key, value, piece) in [
        ("timeout_ms", "60001", "at most 60000"),
        ("concurrency", "0", "at least 1"),
        ("retry_window_hours", "73", "at most 72"),
        ("retention_hours", "24", "at least 25"),
    ] {
        let error = refused(&format!("[webhooks]\n{key} = {value}\n{SIMULATOR}"), &[]);
        let path = format!("webhooks.{key}");
        assert_error(&error, "config_invalid_value", &path, &[piece]);
    }
    let any = load(SIMULATOR, &[("FACEPAY_WEBHOOKS__DESTINATIONS", "any")]).unwrap();
    assert!(
        any.summary()
            .warnings
            .iter()
            .any(|w| w.contains("private networks")),
        "{:?}",
        any.summary()
    );
}

fn hyperswitch(api_key: &str, webhook_secret: &str) -> String {
    format!(
        "[connector]\nkind = \"hyperswitch\"\n\n[connector.hyperswitch]\nbase_url = \"https://hs.test\"\n\
         api_key = {api_key}\nwebhook_secret = {webhook_secret}\n"
    )
}

#[test]
fn a_missing_secret_file_or_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.key");
    let file = hyperswitch(
        &format!("{{ file = {:?} }}", missing.display().to_string()),
        "{ env = \"HS_HOOK\" }",
    );
    let error = refused(&file, &[("HS_HOOK", "x")]);
    let reason = format!("the file {} does not exist", missing.display());
    assert_error(
        &error,
        "config_secret_unavailable",
        "connector.hyperswitch.api_key",
        &[&reason, "facepay.toml:6: "],
    );

    let key = write(dir.path(), "api.key", "snd_abc\n");
    let file = hyperswitch(
        &format!("{{ file = {:?} }}", key.display().to_string()),
        "{ env = \"HS_HOOK\" }",
    );
    let error = refused(&file, &[]);
    assert_error(
        &error,
        "config_secret_unavailable",
        "connector.hyperswitch.webhook_secret",
        &["the environment variable HS_HOOK is not set"],
    );
    let empty = write(dir.path(), "empty.key", "\n");
    let file = hyperswitch(
        &format!("{{ file = {:?} }}", empty.display().to_string()),
        "{ env = \"HS_HOOK\" }",
    );
    let error = refused(&file, &[("HS_HOOK", "x")]);
    assert_error(
        &error,
        "config_secret_unavailable",
        "connector.hyperswitch.api_key",
        &["is empty"],
    );
}

#[test]
fn a_secret_is_never_written_in_the_file_nor_printed() {
    let error = refused(
        &hyperswitch("\"snd_live_0123\"", "{ env = \"HS_HOOK\" }"),
        &[("HS_HOOK", "x")],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "connector.hyperswitch.api_key",
        &["never written in the file"],
    );
    assert!(!error.to_string().contains("snd_live_0123"), "{error}");
    let error = refused(
        &hyperswitch("{ file = \"a\", env = \"B\" }", "{ env = \"HS_HOOK\" }"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "connector.hyperswitch.api_key",
        &["exactly one"],
    );
    let error = refused(
        &hyperswitch("{ env = \"FACEPAY_HS__KEY\" }", "{ env = \"HS_HOOK\" }"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "connector.hyperswitch.api_key",
        &["double underscore"],
    );

    let vars = [("HS_KEY", "snd_live_0123"), ("HS_HOOK", "whsec_4567")];
    let config = load(
        &hyperswitch("{ env = \"HS_KEY\" }", "{ env = \"HS_HOOK\" }"),
        &vars,
    )
    .unwrap();
    let printed = format!("{config:?} {:#?} {}", config, config.summary());
    assert!(
        !printed.contains("snd_live_0123") && !printed.contains("whsec_4567"),
        "{printed}"
    );
    assert!(printed.contains("Secret(**)"));
    let Connector::Hyperswitch(hs) = &config.connector else {
        panic!("{:?}", config.connector)
    };
    assert_eq!(format!("{:?}", hs.api_key), "Secret(**)");
    assert_eq!(
        (hs.api_key.expose(), hs.webhook_secret.expose()),
        ("snd_live_0123", "whsec_4567")
    );
    let _: &Secret = &hs.api_key;
}

#[test]
fn a_connector_block_must_match_the_connector_named() {
    let error = refused("[connector]\nkind = \"hyperswitch\"\n", &[]);
    assert_error(
        &error,
        "config_missing_key",
        "connector.hyperswitch",
        &["[connector.hyperswitch]"],
    );
    let file = format!(
        "{SIMULATOR}[connector.hyperswitch]\nbase_url = \"https://hs.test\"\n\
         api_key = {{ env = \"A\" }}\nwebhook_secret = {{ env = \"B\" }}\n"
    );
    let error = refused(&file, &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "connector.hyperswitch",
        &["simulated_issuer"],
    );
    let error = refused(
        &(hyperswitch("{ env = \"A\" }", "{ env = \"B\" }") + "timeout_ms = 0\n"),
        &[("A", "a"), ("B", "b")],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "connector.hyperswitch.timeout_ms",
        &["at least 50"],
    );
    let vars = [("A", "a"), ("B", "b")];
    let plain = |url: &str| {
        hyperswitch("{ env = \"A\" }", "{ env = \"B\" }").replace("https://hs.test", url)
    };
    let error = refused(&plain("http://hs.test"), &vars);
    assert_error(
        &error,
        "config_invalid_value",
        "connector.hyperswitch.base_url",
        &["loopback"],
    );
    let error = refused(&plain("https://user@hs.test"), &vars);
    assert_error(
        &error,
        "config_invalid_value",
        "connector.hyperswitch.base_url",
        &["no user"],
    );
    assert!(load(&plain("http://127.0.0.1:8080"), &vars).is_ok());
    let error = refused(
        &(plain("https://hs.test") + "profile_id = \"pro 1\"\n"),
        &vars,
    );
    assert_error(
        &error,
        "config_invalid_value",
        "connector.hyperswitch.profile_id",
        &["letters"],
    );
    let file = "[connector]\nkind = \"hyperswitch\"\n[connector.hyperswitch]\nbase_url = \"https://hs.test\"\n";
    let error = refused(file, &[]);
    assert_error(
        &error,
        "config_missing_key",
        "connector.hyperswitch.api_key",
        &["required"],
    );
}

#[test]
fn a_remote_vault_needs_its_address_and_channel_secret() {
    let error = refused(
        &format!("[vault]\nmode = \"remote\"\nurl = \"http://10.0.0.5:8090\"\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_missing_key",
        "vault.channel_secret_file",
        &["secret", "facepay.toml:1: "],
    );
    let error = refused(&format!("[vault]\nmode = \"remote\"\n{SIMULATOR}"), &[]);
    assert_error(&error, "config_missing_key", "vault.url", &["address"]);
    let file = "[vault]\nmode = \"remote\"\nurl = \"http://10.0.0.5:8090\"\nchannel_secret_file = \"/no/such.secret\"\n";
    let error = refused(&format!("{file}{SIMULATOR}"), &[]);
    assert_error(
        &error,
        "config_file_unusable",
        "vault.channel_secret_file",
        &["/no/such.secret does not exist"],
    );
    let error = refused(&format!("{file}dir = \"/x\"\n{SIMULATOR}"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "vault.dir",
        &["only for mode = \"embedded\""],
    );

    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "channel.secret", &"ab".repeat(32));
    let vars = [
        ("FACEPAY_VAULT__MODE", "remote"),
        ("FACEPAY_VAULT__URL", "https://vault.test"),
        (
            "FACEPAY_VAULT__CHANNEL_SECRET_FILE",
            secret.to_str().unwrap(),
        ),
    ];
    let config = load(SIMULATOR, &vars).unwrap();
    let Vault::Remote(remote) = &config.vault else {
        panic!("{:?}", config.vault)
    };
    assert_eq!(
        (remote.url.as_str(), remote.channel_secret_file.as_path()),
        ("https://vault.test", secret.as_path())
    );
}

#[test]
fn custodian_parts_are_none_or_two_files() {
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), "1.part", "00");
    let two = write(dir.path(), "2.part", "00");
    let parts = |files: &[&Path]| {
        let files: Vec<String> = files
            .iter()
            .map(|f| format!("{:?}", f.display().to_string()))
            .collect();
        format!("[vault]\ncustodian_part_files = [{}]\n", files.join(", "))
    };
    let config = load(&format!("{}{SIMULATOR}", parts(&[&one, &two])), &[]).unwrap();
    let Vault::Embedded(vault) = &config.vault else {
        panic!("{:?}", config.vault)
    };
    assert_eq!(vault.key_parts, KeyParts::Files([one.clone(), two.clone()]));
    assert!(
        config.summary().warnings.is_empty(),
        "{:?}",
        config.summary()
    );

    let error = refused(&format!("{}{SIMULATOR}", parts(&[&one])), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "vault.custodian_part_files",
        &["none or both"],
    );
    let absent = dir.path().join("3.part");
    let error = refused(&format!("{}{SIMULATOR}", parts(&[&one, &absent])), &[]);
    assert_error(
        &error,
        "config_file_unusable",
        "vault.custodian_part_files",
        &["does not exist"],
    );
    let error = refused(
        &format!("{}embedded_parts = true\n{SIMULATOR}", parts(&[&one, &two])),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "vault.embedded_parts",
        &["custodian_part_files"],
    );

    let config = load(
        &format!("[vault]\nembedded_parts = false\n{SIMULATOR}"),
        &[],
    )
    .unwrap();
    let Vault::Embedded(vault) = &config.vault else {
        panic!("{:?}", config.vault)
    };
    assert_eq!(vault.key_parts, KeyParts::FromCustodians);
}

#[test]
fn simulated_networks_are_named_as_such() {
    let network = |id: &str| {
        format!(
            "[[hub.networks]]\nid = \"{id}\"\nkind = \"simulated\"\ncountry = \"KR\"\n{SIMULATOR}"
        )
    };
    let error = refused(&network("kr.wallet"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "hub.networks[0].id",
        &[".sim", "facepay.toml:2: "],
    );
    let error = refused(&network("kr.facepay"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "hub.networks[0].id",
        &["facepay_member"],
    );
    let error = refused(&network("KR Wallet.sim"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "hub.networks[0].id",
        &["a-z"],
    );
    let twice = format!(
        "[[hub.networks]]\nid = \"a.sim\"\nkind = \"simulated\"\ncountry = \"ID\"\n{}",
        network("a.sim")
    );
    let error = refused(&twice, &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "hub.networks[1].id",
        &["named twice"],
    );

    // A hub that is off runs none of its simulators.
    let config = load(
        &network("kr.wallet.sim"),
        &[("FACEPAY_HUB__ENABLED", "false")],
    )
    .unwrap();
    assert_eq!(config.simulated_parts(), ["issuer: simulated_issuer"]);
    assert_eq!(config.hub.networks[0].country.currency(), Currency::KRW);
}

#[test]
fn fixed_rates_are_decimal_strings() {
    let rates = |rate: &str| {
        format!(
            "[[fx.sources]]\nkind = \"fixed\"\nrates = [\n  {{ provider = \"bank_a\", source = \"KRW\", destination = \"IDR\", \
             mid_rate = {rate}, spread_bps = 50, valid_for_s = 3600 }},\n]\n{SIMULATOR}"
        )
    };
    let config = load(&rates("\"11.5\""), &[]).unwrap();
    let source = &config.fx.sources[0];
    assert_eq!(source.kind, FxSourceKind::Fixed);
    assert_eq!(source.rates[0].mid_rate.scaled(), 11_500_000_000);
    assert_eq!(
        (source.rates[0].source, source.rates[0].destination),
        (Currency::KRW, Currency::IDR)
    );
    assert!(
        config
            .simulated_parts()
            .iter()
            .all(|p| !p.starts_with("fx"))
    );

    let error = refused(&rates("11.5"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "fx.sources[0].rates[0].mid_rate",
        &["decimal string", "facepay.toml:4: "],
    );
    let error = refused(&rates("\"1,5\""), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "fx.sources[0].rates[0].mid_rate",
        &["\"1,5\""],
    );
    let error = refused(&rates("\"11.5\"").replace("\"IDR\"", "\"KRW\""), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "fx.sources[0].rates[0].destination",
        &["source currency"],
    );
    let error = refused(
        &format!("[[fx.sources]]\nkind = \"fixed\"\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "fx.sources[0].rates",
        &["1 to"],
    );
    let error = refused(
        &format!(
            "[[fx.sources]]\nkind = \"simulated\"\n[[fx.sources]]\nkind = \"simulated\"\n{SIMULATOR}"
        ),
        &[],
    );
    assert_error(&error, "config_invalid_value", "fx.sources[1]", &["twice"]);
}

#[test]
fn rates_parse_exactly() {
    let scaled = |text: &str| Rate::parse(text).map(Rate::scaled);
    assert_eq!(scaled("11.5"), Some(11_500_000_000));
    assert_eq!(scaled("0.0255"), Some(25_500_000));
    assert_eq!(scaled("39.215686275"), Some(39_215_686_275));
    assert_eq!(scaled("1"), Some(1_000_000_000));
    for bad in [
        "",
        "0",
        "0.000",
        "-1",
        "1.",
        ".5",
        "1.0000000001",
        "1e3",
        "1,5",
        " 1",
        "nan",
    ] {
        assert_eq!(scaled(bad), None, "{bad:?}");
    }
    assert_eq!(
        Rate::parse("39.215686275").unwrap().to_string(),
        "39.215686275"
    );
    assert_eq!(Rate::parse("11.50").unwrap().to_string(), "11.5");
    assert_eq!(Rate::parse("7").unwrap().to_string(), "7");
}

#[test]
fn named_files_must_exist_and_risk_rules_must_parse() {
    let error = refused(
        &format!(
            "[server.tls]\ncert_file = \"/no/cert.pem\"\nkey_file = \"/no/key.pem\"\n{SIMULATOR}"
        ),
        &[],
    );
    assert_error(
        &error,
        "config_file_unusable",
        "server.tls.cert_file",
        &["/no/cert.pem does not exist", "facepay.toml:2: "],
    );
    let error = refused(
        &format!("[server.tls]\ncert_file = \"/no/cert.pem\"\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_missing_key",
        "server.tls.key_file",
        &["required"],
    );

    let error = refused(
        &format!("[risk]\nrules_file = \"/no/rules.toml\"\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_file_unusable",
        "risk.rules_file",
        &["does not exist"],
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = write(
        dir.path(),
        "broken.toml",
        "[decision]\nstep_up_from = \"high\"\n",
    );
    let file = format!(
        "[risk]\nrules_file = {:?}\n{SIMULATOR}",
        broken.display().to_string()
    );
    let error = refused(&file, &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "risk.rules_file",
        &["broken.toml"],
    );
    let rules = manifest("../facepay-risk/src/default_rules.toml");
    let file = format!(
        "[risk]\nrules_file = {:?}\n{SIMULATOR}",
        rules.display().to_string()
    );
    assert_eq!(load(&file, &[]).unwrap().risk.rules_file, Some(rules));
}

#[test]
fn a_database_password_comes_from_the_environment_only() {
    let error = refused(
        &format!("[store]\nurl = \"postgres://fp:hunter2@db/facepay\"\n{SIMULATOR}"),
        &[],
    );
    assert_error(
        &error,
        "config_invalid_value",
        "store.url",
        &["FACEPAY_STORE__URL", "facepay.toml:2: "],
    );
    assert!(!error.to_string().contains("hunter2"));
    let config = load(
        SIMULATOR,
        &[("FACEPAY_STORE__URL", "postgres://fp:hunter2@db/facepay")],
    )
    .unwrap();
    assert_eq!(config.store.kind(), StoreKind::Postgres);
    assert_eq!(
        config.store.url.as_ref().unwrap().as_str(),
        "postgres://fp:hunter2@db/facepay"
    );
    let printed = format!("{config:?} {}", config.summary());
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("postgres://fp:**@db/facepay"), "{printed}");
}

#[test]
fn syntax_errors_and_unreadable_files_point_at_the_file() {
    let error = refused("[server]\naddress = \n", &[]);
    assert_eq!(error.code(), "config_syntax");
    assert!(
        matches!(
            &error,
            ConfigError::Syntax {
                at: Location::File { line: Some(2), .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("facepay.toml:2: "), "{error}");
    let error = Config::load(Some(Path::new("/no/facepay.toml")), env(&[])).unwrap_err();
    assert_eq!(error.code(), "config_unreadable");
    assert!(error.to_string().contains("/no/facepay.toml"), "{error}");
}

#[test]
fn a_risk_preset_gives_its_rules_and_a_rules_file_replaces_it() {
    let demo = Config::demo(env(&[])).unwrap();
    assert_eq!(demo.risk.preset, RiskPreset::Demo);
    assert_eq!(demo.risk.rules_text().unwrap(), facepay_risk::DEMO_RULES);
    let plain = load(SIMULATOR, &[]).unwrap();
    assert_eq!(
        plain.risk.rules_text().unwrap(),
        facepay_risk::DEFAULT_RULES
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = write(dir.path(), "rules.toml", facepay_risk::APPROVE_ALL);
    let both = format!(
        "{SIMULATOR}[risk]\npreset = \"demo\"\nrules_file = {:?}\n",
        rules.display().to_string()
    );
    let error = refused(&both, &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "risk.preset",
        &["rules_file"],
    );
    let error = refused(&format!("{SIMULATOR}[risk]\npreset = \"lax\"\n"), &[]);
    assert_error(
        &error,
        "config_invalid_value",
        "risk.preset",
        &["default", "demo"],
    );
}
