//! A hub with simulated members, for the demo, the embedded server and the
//! tests: four networks with a few accounts each, and posted rates. Every
//! party here is simulated and named so.

use std::sync::Arc;

use facepay_fx::Posted;
use facepay_money::Currency;
use facepay_qr::{Account, Additional, Initiation, MerchantQr, QrError};
use facepay_store::Store;

use crate::AliasKind;
use crate::service::{ATM_ACCOUNT, Hub, HubError};
use crate::settlement::{BankFailure, SimulatedSettlementBank};
use crate::simulator::{Failure, Rules, SimulatedNetwork};

/// The hub's fee on each principal.
pub const HUB_FEE_BPS: u32 = 20;
/// What the demo's wallets hold at the start.
pub const KIM_KRW: i64 = 1_000_000;
pub const BUDI_IDR: i64 = 5_000_000 * 100;
pub const LAN_VND: i64 = 20_000_000;
/// The demo's aliases: the Thai market's PromptPay phone number and the
/// Hanoi pho shop's VietQR account id.
pub const SIAM_MARKET_PHONE: &str = "+66812345678";
pub const PHO_HANOI_QR_ID: &str = "970436-0011000123456";
/// Posted rates hold this long.
pub const RATES_VALID_MS: i64 = 3_600_000;

pub struct Members {
    pub korea: Arc<SimulatedNetwork>,
    pub indonesia: Arc<SimulatedNetwork>,
    pub vietnam: Arc<SimulatedNetwork>,
    pub thailand: Arc<SimulatedNetwork>,
}

impl Members {
    /// Four simulated networks, Indonesia's failing as `indonesia_failure`
    /// says: wallets (Kim in Korea, Budi in Indonesia, Lan in Vietnam),
    /// merchants, and each network's ATM operators.
    pub fn simulated(indonesia_failure: Failure) -> Self {
        Self {
            korea: simulated_member(Country::Korea, Failure::None),
            indonesia: simulated_member(Country::Indonesia, indonesia_failure),
            vietnam: simulated_member(Country::Vietnam, Failure::None),
            thailand: simulated_member(Country::Thailand, Failure::None),
        }
    }

    /// A hub over these members with the demo's rates posted at `now_ms`,
    /// settling through a simulated settlement bank.
    pub fn hub(&self, store: Store, now_ms: i64) -> Result<Hub, HubError> {
        let mut hub = Hub::new(store, HUB_FEE_BPS);
        hub.set_settlement_bank(Arc::new(SimulatedSettlementBank::new(BankFailure::None)));
        hub.add_network(self.korea.clone());
        hub.add_network(self.indonesia.clone());
        hub.add_network(self.vietnam.clone());
        hub.add_network(self.thailand.clone());
        for rate in rates(now_ms) {
            hub.post_rate(rate)?;
        }
        Ok(hub)
    }
}

/// The countries the hub has a simulated network of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Country {
    Korea,
    Indonesia,
    Vietnam,
    Thailand,
}

impl Country {
    /// The simulated network's rules: its id, currency, limits and hours.
    pub fn rules(self) -> Rules {
        match self {
            Country::Korea => Rules::korea(),
            Country::Indonesia => Rules::indonesia(),
            Country::Vietnam => Rules::vietnam(),
            Country::Thailand => Rules::thailand(),
        }
    }
}

/// A simulated network of `country` with the demo's accounts: Kim's
/// wallet and a cafe in Korea, Budi's wallet and a warung in Indonesia,
/// Lan's wallet and a pho shop in Vietnam, a market and a noodle shop in
/// Thailand, and the
/// ATM operators of Korea, Indonesia and Thailand.
pub fn simulated_member(country: Country, failure: Failure) -> Arc<SimulatedNetwork> {
    let network = Arc::new(SimulatedNetwork::new(country.rules(), failure));
    let accounts: &[(&str, &str, i64)] = match country {
        Country::Korea => &[
            ("kim", "Kim Minji", KIM_KRW),
            ("seoul-cafe", "Seoul Cafe", 0),
            (ATM_ACCOUNT, "Seoul ATM operator", 0),
        ],
        Country::Indonesia => &[
            ("budi", "Budi Santoso", BUDI_IDR),
            ("warung-01", "Warung Makan", 0),
            (ATM_ACCOUNT, "Jakarta ATM operator", 0),
        ],
        Country::Vietnam => &[
            ("lan", "Nguyen Lan", LAN_VND),
            ("pho-hanoi", "Pho Hanoi", 0),
        ],
        Country::Thailand => &[
            ("siam-market", "Siam Market", 0),
            ("bangkok-noodles", "Bangkok Noodles", 0),
            (ATM_ACCOUNT, "Bangkok ATM operator", 0),
        ],
    };
    for (account, name, balance_minor) in accounts {
        network.open_account(account, name, *balance_minor);
    }
    let aliases: &[(AliasKind, &str, &str)] = match country {
        Country::Thailand => &[(AliasKind::Phone, SIAM_MARKET_PHONE, "siam-market")],
        Country::Vietnam => &[(AliasKind::QrId, PHO_HANOI_QR_ID, "pho-hanoi")],
        Country::Korea | Country::Indonesia => &[],
    };
    for (kind, alias, account) in aliases {
        network.add_alias(*kind, alias, account);
    }
    network
}

/// The simulated members' network ids.
pub fn member_ids() -> [&'static str; 4] {
    [
        Rules::korea().id,
        Rules::indonesia().id,
        Rules::vietnam().id,
        Rules::thailand().id,
    ]
}

/// Two simulated FX providers' rates: destination major units per source
/// major unit, times 10^9.
pub fn rates(now_ms: i64) -> Vec<Posted> {
    let (kr, id, vn, th) = (
        Rules::korea().currency,
        Rules::indonesia().currency,
        Rules::vietnam().currency,
        Rules::thailand().currency,
    );
    let post = |provider: &str, source, destination, mid_rate, spread_bps| Posted {
        provider: provider.to_owned(),
        source,
        destination,
        mid_rate,
        spread_bps,
        valid_until_ms: now_ms + RATES_VALID_MS,
    };
    vec![
        // 1 KRW = 11.5 IDR, 18.2 VND, 0.0255 THB.
        post("bank_a", kr, id, 11_500_000_000, 50),
        post("bank_b", kr, id, 11_480_000_000, 30),
        post("bank_a", id, kr, 86_956_522, 50),
        post("bank_a", kr, vn, 18_200_000_000, 60),
        post("bank_a", vn, kr, 54_945_055, 60),
        post("bank_b", kr, th, 25_500_000, 40),
        post("bank_b", th, kr, 39_215_686_275, 40),
    ]
}

/// A merchant-presented QR code for `merchant` in `network`: dynamic with
/// an `amount` (major units, such as "55000"), static without.
pub fn merchant_qr(
    (network, merchant): (&str, &str),
    (name, city, country): (&str, &str, &str),
    currency_numeric: u16,
    amount: Option<&str>,
    bill_number: &str,
) -> Result<String, QrError> {
    facepay_qr::encode(&MerchantQr {
        format_indicator: "01".to_owned(),
        initiation: Some(if amount.is_some() {
            Initiation::Dynamic
        } else {
            Initiation::Static
        }),
        accounts: vec![Account::Template {
            id: 26,
            network: network.to_owned(),
            fields: vec![(1, merchant.to_owned())],
        }],
        category_code: Some("5812".to_owned()),
        currency_numeric: format!("{currency_numeric:03}"),
        amount: amount.map(str::to_owned),
        tip: None,
        country: Some(country.to_owned()),
        merchant_name: Some(name.to_owned()),
        city: Some(city.to_owned()),
        postal_code: None,
        additional: Some(Additional {
            bill_number: Some(bill_number.to_owned()),
            ..Additional::default()
        }),
        language: None,
        unreserved: Vec::new(),
    })
}

/// A PromptPay-style code as Thai apps print it: the proxy's template
/// (PromptPay's AID and a mobile number), the member network's template
/// naming `merchant`, and no merchant name, city or category code, which
/// PromptPay leaves out. Static: the payer gives the amount.
pub fn promptpay_qr(mobile: &str, (network, merchant): (&str, &str)) -> Result<String, QrError> {
    static_code(
        vec![
            Account::Template {
                id: 29,
                network: "A000000677010111".to_owned(),
                fields: vec![(1, mobile.to_owned())],
            },
            Account::Template {
                id: 31,
                network: network.to_owned(),
                fields: vec![(1, merchant.to_owned())],
            },
        ],
        Currency::THB,
        "TH",
    )
}

/// A VietQR-style code as Vietnamese banks print it: NAPAS's template
/// (its AID, the beneficiary's bank BIN and account, the transfer service
/// code), the member network's template naming `merchant`, and no
/// merchant name, city or category code, which VietQR leaves out.
/// Static: the payer gives the amount.
pub fn vietqr_qr(
    (bin, account): (&str, &str),
    (network, merchant): (&str, &str),
) -> Result<String, QrError> {
    let beneficiary = format!("00{:02}{bin}01{:02}{account}", bin.len(), account.len());
    static_code(
        vec![
            Account::Template {
                id: 38,
                network: "A000000727".to_owned(),
                fields: vec![(1, beneficiary), (2, "QRIBFTTA".to_owned())],
            },
            Account::Template {
                id: 39,
                network: network.to_owned(),
                fields: vec![(1, merchant.to_owned())],
            },
        ],
        Currency::VND,
        "VN",
    )
}

/// A static code (the payer gives the amount) naming only `accounts`,
/// the currency and the country: no merchant name, city or category
/// code, as the national schemes that omit them print it.
fn static_code(
    accounts: Vec<Account>,
    currency: Currency,
    country: &str,
) -> Result<String, QrError> {
    facepay_qr::encode(&MerchantQr {
        format_indicator: "01".to_owned(),
        initiation: Some(Initiation::Static),
        accounts,
        category_code: None,
        currency_numeric: format!("{:03}", currency.numeric()),
        amount: None,
        tip: None,
        country: Some(country.to_owned()),
        merchant_name: None,
        city: None,
        postal_code: None,
        additional: None,
        language: None,
        unreserved: Vec::new(),
    })
}
