//! ISO 20022 renderings of a hub transfer, for member networks that speak
//! it: the credit transfer as pacs.008 (FIToFICustomerCreditTransfer) and
//! its status as pacs.002 (FIToFIPaymentStatusReport). Written with
//! `format!` and escaped text: the two messages have fixed shapes, and a
//! schema-bound XML library would be larger than the messages.

use facepay_fx::RATE_SCALE;
use facepay_money::Currency;
use facepay_store::hub::{State, Transfer};
use quick_xml::escape::escape;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const PACS_008: &str = "pacs.008.001.08";
pub const PACS_002: &str = "pacs.002.001.10";

pub(crate) fn timestamp(unix_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

pub(crate) fn amount(currency: &str, minor: i64) -> String {
    match Currency::from_code(currency) {
        Ok(c) => c.format(minor),
        Err(_) => minor.to_string(),
    }
}

/// A 10^9-scaled rate as a decimal with no trailing zeros.
pub fn decimal_rate(scaled: &str) -> String {
    let Ok(value) = scaled.parse::<i128>() else {
        return "0".to_owned();
    };
    let fraction = format!("{:09}", value % RATE_SCALE);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{}", value / RATE_SCALE)
    } else {
        format!("{}.{fraction}", value / RATE_SCALE)
    }
}

fn agent(network: &str) -> String {
    format!(
        "<FinInstnId><Othr><Id>{}</Id></Othr></FinInstnId>",
        escape(network)
    )
}

fn account(id: &str) -> String {
    format!("<Id><Othr><Id>{}</Id></Othr></Id>", escape(id))
}

/// The transfer as a pacs.008 credit transfer from the payer's network
/// to the payee's, through the hub.
pub fn pacs008(t: &Transfer) -> String {
    let q = &t.quote;
    let end_to_end = q.reference.as_deref().unwrap_or(&t.id);
    let remittance = q
        .reference
        .as_deref()
        .map(|r| format!("<RmtInf><Ustrd>{}</Ustrd></RmtInf>", escape(r)))
        .unwrap_or_default();
    let created = timestamp(t.created_at_ms);
    let date = &created[..10];
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:{PACS_008}\">\
         <FIToFICstmrCdtTrf>\
         <GrpHdr><MsgId>{id}</MsgId><CreDtTm>{created}</CreDtTm><NbOfTxs>1</NbOfTxs>\
         <SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>\
         <CdtTrfTxInf>\
         <PmtId><InstrId>{id}</InstrId><EndToEndId>{end_to_end}</EndToEndId><TxId>{id}</TxId></PmtId>\
         <IntrBkSttlmAmt Ccy=\"{dcur}\">{damt}</IntrBkSttlmAmt>\
         <IntrBkSttlmDt>{date}</IntrBkSttlmDt>\
         <InstdAmt Ccy=\"{scur}\">{samt}</InstdAmt>\
         <XchgRate>{rate}</XchgRate>\
         <ChrgBr>DEBT</ChrgBr>\
         <ChrgsInf><Amt Ccy=\"{scur}\">{fee}</Amt><Agt>{hub}</Agt></ChrgsInf>\
         <Dbtr><Id><PrvtId><Othr><Id>{payer}</Id></Othr></PrvtId></Id></Dbtr>\
         <DbtrAcct>{payer_account}</DbtrAcct>\
         <DbtrAgt>{payer_agent}</DbtrAgt>\
         <CdtrAgt>{payee_agent}</CdtrAgt>\
         <Cdtr><Nm>{payee_name}</Nm></Cdtr>\
         <CdtrAcct>{payee_account}</CdtrAcct>\
         {remittance}\
         </CdtTrfTxInf></FIToFICstmrCdtTrf></Document>\n",
        id = escape(&t.id),
        end_to_end = escape(end_to_end),
        dcur = escape(&q.destination_currency),
        damt = amount(&q.destination_currency, q.destination_minor),
        scur = escape(&q.source_currency),
        samt = amount(&q.source_currency, q.source_minor),
        rate = decimal_rate(&q.customer_rate),
        fee = amount(&q.source_currency, q.fee_minor),
        hub = agent("facepay.hub"),
        payer = escape(&q.payer_account),
        payer_account = account(&q.payer_account),
        payer_agent = agent(&q.payer_network),
        payee_agent = agent(&q.payee_network),
        payee_name = escape(&q.payee_name),
        payee_account = account(&q.payee_account),
    )
}

/// ISO 20022 status codes for the transfer's state: settled at the
/// creditor (ACCC), settlement in process (ACSP: the payee was paid or the
/// cash dispensed, the rest follows), pending (PDNG), or
/// rejected (RJCT) with the network's reason.
pub fn status_code(state: State) -> &'static str {
    match state {
        State::Committed => "ACCC",
        State::PayerCommitPending | State::Dispensed => "ACSP",
        State::Pending | State::Held | State::Reserved => "PDNG",
        State::Reversed => "RJCT",
    }
}

/// The transfer's status as a pacs.002 report on its pacs.008.
pub fn pacs002(t: &Transfer) -> String {
    let q = &t.quote;
    let reason = match (t.state, t.reason.as_deref()) {
        (State::Reversed, Some(r)) => format!(
            "<StsRsnInf><Rsn><Prtry>{}</Prtry></Rsn></StsRsnInf>",
            escape(r)
        ),
        _ => String::new(),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:{PACS_002}\">\
         <FIToFIPmtStsRpt>\
         <GrpHdr><MsgId>{id}-sts</MsgId><CreDtTm>{updated}</CreDtTm></GrpHdr>\
         <TxInfAndSts>\
         <OrgnlGrpInf><OrgnlMsgId>{id}</OrgnlMsgId><OrgnlMsgNmId>{PACS_008}</OrgnlMsgNmId></OrgnlGrpInf>\
         <OrgnlEndToEndId>{end_to_end}</OrgnlEndToEndId><OrgnlTxId>{id}</OrgnlTxId>\
         <TxSts>{status}</TxSts>{reason}\
         </TxInfAndSts></FIToFIPmtStsRpt></Document>\n",
        id = escape(&t.id),
        updated = timestamp(t.updated_at_ms),
        end_to_end = escape(q.reference.as_deref().unwrap_or(&t.id)),
        status = status_code(t.state),
    )
}
