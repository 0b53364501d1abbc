//! The fields of a merchant-presented payload, as read and as written.

/// Static codes are printed once and reused; dynamic ones carry the amount
/// of one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiation {
    Static,
    Dynamic,
}

/// How a network can pay the merchant: a primitive value (ids 02-25, card
/// schemes' merchant ids) or a template (26-51) naming its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    Primitive {
        id: u8,
        value: String,
    },
    Template {
        id: u8,
        /// Sub-id 00: the network's globally unique id (a reverse domain
        /// name or an AID; KHQR puts the Bakong account there).
        network: String,
        /// Sub-ids 01-99, such as the merchant's id in that network.
        fields: Vec<(u8, String)>,
    },
}

impl Account {
    pub fn id(&self) -> u8 {
        match self {
            Account::Primitive { id, .. } | Account::Template { id, .. } => *id,
        }
    }

    /// A template's sub-field `sub`, if this is a template that has it.
    pub fn sub(&self, sub: u8) -> Option<&str> {
        match self {
            Account::Template { fields, .. } => fields
                .iter()
                .find(|(id, _)| *id == sub)
                .map(|(_, value)| value.as_str()),
            Account::Primitive { .. } => None,
        }
    }
}

/// The tip or convenience fee the payer's app adds (ids 55-57).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tip {
    /// The app asks the payer for a tip.
    Prompt,
    /// A fixed fee, in the transaction currency (56).
    Fixed(String),
    /// A percentage of the amount, such as "3.5" (57).
    Percentage(String),
}

/// Additional data (62): references a payment carries back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Additional {
    pub bill_number: Option<String>,
    pub mobile_number: Option<String>,
    pub store_label: Option<String>,
    pub loyalty_number: Option<String>,
    pub reference_label: Option<String>,
    pub customer_label: Option<String>,
    pub terminal_label: Option<String>,
    pub purpose: Option<String>,
    pub consumer_data_request: Option<String>,
    /// Sub-ids 50-99: templates a payment system defines (SGQR puts its
    /// schemes' references there), kept as they came.
    pub payment_system: Vec<(u8, String)>,
}

/// The merchant's name and city in another language (64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// ISO 639 two-letter code, such as "ko" (KHQR prints "KM", "ZH").
    pub preference: String,
    pub merchant_name: String,
    pub city: Option<String>,
}

/// A merchant-presented QR payload, every field read and checked. Which
/// of the optional fields a code must carry is its scheme's to say
/// (`Scheme::profile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantQr {
    /// "01" in EMVCo's specification; DuitNow codes print "02".
    pub format_indicator: String,
    pub initiation: Option<Initiation>,
    pub accounts: Vec<Account>,
    /// ISO 18245, four digits.
    pub category_code: Option<String>,
    /// ISO 4217 numeric, three digits.
    pub currency_numeric: String,
    /// Decimal in major units, such as "4500" or "12.50".
    pub amount: Option<String>,
    pub tip: Option<Tip>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub merchant_name: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub additional: Option<Additional>,
    pub language: Option<Language>,
    /// Templates 80-99, for the parties that agree on them.
    pub unreserved: Vec<(u8, String)>,
}

impl MerchantQr {
    pub(crate) fn empty() -> Self {
        Self {
            format_indicator: String::new(),
            initiation: None,
            accounts: Vec::new(),
            category_code: None,
            currency_numeric: String::new(),
            amount: None,
            tip: None,
            country: None,
            merchant_name: None,
            city: None,
            postal_code: None,
            additional: None,
            language: None,
            unreserved: Vec::new(),
        }
    }

    /// Whether root field `id` is in the code: what a scheme's profile
    /// asks of it.
    pub fn has(&self, id: u8) -> bool {
        match id {
            0 => !self.format_indicator.is_empty(),
            1 => self.initiation.is_some(),
            52 => self.category_code.is_some(),
            53 => !self.currency_numeric.is_empty(),
            54 => self.amount.is_some(),
            55 => self.tip.is_some(),
            56 => matches!(self.tip, Some(Tip::Fixed(_))),
            57 => matches!(self.tip, Some(Tip::Percentage(_))),
            58 => self.country.is_some(),
            59 => self.merchant_name.is_some(),
            60 => self.city.is_some(),
            61 => self.postal_code.is_some(),
            62 => self.additional.is_some(),
            64 => self.language.is_some(),
            2..=51 => self.accounts.iter().any(|a| a.id() == id),
            80..=99 => self.unreserved.iter().any(|(u, _)| *u == id),
            // The CRC is written with the payload, never held here.
            _ => false,
        }
    }
}
