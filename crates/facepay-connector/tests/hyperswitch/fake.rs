//! A fake Hyperswitch on 127.0.0.1, for the connector's tests.
//!
//! It answers from the documented samples in `fixtures/` (see the README
//! there), filled in with the state of its own payments and refunds, and it
//! checks every request facepay sends: the `api-key` header, the JSON
//! content type, and the body against the documented request schemas
//! (`fixtures/schemas.json`: required fields, known fields, types, enum
//! values) and the router's own rules. A request that breaks the document
//! is answered with Hyperswitch's error and recorded as a violation; every
//! test ends by asserting there were none. Faults can be injected per route
//! to play a lost answer, a 5xx or a slow processor.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{Value, json};

pub const API_KEY: &str = "snd_fake_api_key_for_tests";

const HEAD_BYTES_MAX: usize = 16 * 1024;
const BODY_BYTES_MAX: usize = 64 * 1024;
const CONNECTIONS_MAX: usize = 256;
const SEEN_MAX: usize = 1_000;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Cards the fake's processor declines, as Stripe's test cards do.
pub const CARD_DECLINED: &str = "4000000000000002";
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
/// A card whose processor answers late: `processing` first, then an
/// authorisation on the next retrieve.
pub const CARD_SLOW_PROCESSOR: &str = "4000000000000077";
/// A card whose processor verifies it but gives no network transaction id,
/// as processors that do not take payments on file do.
pub const CARD_NO_NETWORK_ID: &str = "4000000000000101";
/// What the fake's processor says of a payment on file whose network
/// transaction id it did not give for that card.
pub const UNKNOWN_NETWORK_ID: &str = "message - The network transaction id does not belong to this card., decline_code - generic_decline";
/// Stands for the card of a payment on file the processor refuses.
const NETWORK_ID_REFUSED: &str = "network id refused";

macro_rules! fixture {
    ($path:literal) => {
        include_str!(concat!("fixtures/", $path))
    };
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Route {
    CreatePayment,
    RetrievePayment,
    CapturePayment,
    CancelPayment,
    CreateRefund,
    RetrieveRefund,
}

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Acts on the request, then answers this status with Hyperswitch's
    /// internal error body, as when the answer is lost after the write.
    ActThenFail(u16),
    /// Answers this status without acting.
    FailWithoutActing(u16),
    /// Acts, then holds its answer this long.
    ActThenStall(Duration),
}

struct Seen {
    route: Option<Route>,
    body: Value,
}

struct PaymentRecord {
    amount: i64,
    currency: String,
    capture_method: String,
    status: String,
    capturable: i64,
    received: Option<i64>,
    refunded: i64,
    decline_message: Option<&'static str>,
    profile_id: Option<String>,
    order_reference: Option<String>,
    setup_future_usage: Option<String>,
    network_transaction_id: Option<String>,
}

struct RefundRecord {
    payment_id: String,
    amount: i64,
    currency: String,
}

#[derive(Default)]
struct State {
    payments: HashMap<String, PaymentRecord>,
    refunds: HashMap<String, RefundRecord>,
    faults: Vec<(Route, Fault, usize)>,
    seen: Vec<Seen>,
    violations: Vec<String>,
    generated_ids: u64,
    /// The network transaction ids the fake's processor gave, with the card
    /// each was given for.
    network_ids: HashMap<String, String>,
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct Answer {
    status: u16,
    body: Value,
    stall: Option<Duration>,
}

pub struct FakeHyperswitch {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeHyperswitch {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            thread::spawn(move || accept(listener, state, stop))
        };
        FakeHyperswitch {
            address,
            state,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn inject(&self, route: Route, fault: Fault, times: usize) {
        lock(&self.state).faults.push((route, fault, times));
    }

    /// The bodies facepay sent on `route`, oldest first.
    pub fn bodies(&self, route: Route) -> Vec<Value> {
        let state = lock(&self.state);
        let on_route = state.seen.iter().filter(|seen| seen.route == Some(route));
        on_route.map(|seen| seen.body.clone()).collect()
    }

    pub fn count(&self, route: Route) -> usize {
        self.bodies(route).len()
    }

    pub fn violations(&self) -> Vec<String> {
        lock(&self.state).violations.clone()
    }

    /// (status, amount_capturable, amount_received) of a payment.
    pub fn payment(&self, payment_id: &str) -> Option<(String, i64, Option<i64>)> {
        let state = lock(&self.state);
        let record = state.payments.get(payment_id)?;
        Some((record.status.clone(), record.capturable, record.received))
    }

    /// The card number a network transaction id was given for.
    pub fn card_of_network_id(&self, network_transaction_id: &str) -> Option<String> {
        lock(&self.state)
            .network_ids
            .get(network_transaction_id)
            .cloned()
    }

    pub fn refund_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.state).refunds.keys().cloned().collect();
        ids.sort();
        ids
    }
}

impl Drop for FakeHyperswitch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor out of accept().
        let _ = TcpStream::connect(self.address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept(listener: TcpListener, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        connections.retain(|connection| !connection.is_finished());
        if connections.len() >= CONNECTIONS_MAX {
            continue;
        }
        let state = Arc::clone(&state);
        connections.push(thread::spawn(move || serve(stream, &state)));
    }
    for connection in connections {
        let _ = connection.join();
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let answer = handle(state, &request);
    if let Some(stall) = answer.stall {
        thread::sleep(stall);
    }
    let body = answer.body.to_string();
    let head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.status,
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut head_bytes = reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        head_bytes += reader.read_line(&mut header).ok()?;
        if head_bytes > HEAD_BYTES_MAX {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(Some(0), |value| value.parse().ok())?;
    if length > BODY_BYTES_MAX {
        return None;
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target
        .split_once('?')
        .map_or((target.clone(), String::new()), |(path, query)| {
            (path.to_owned(), query.to_owned())
        });
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn route_of(method: &str, path: &str) -> Option<(Route, Option<String>)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let id = |index: usize| segments.get(index).map(|id| (*id).to_owned());
    match (method, segments.as_slice()) {
        ("POST", ["payments"]) => Some((Route::CreatePayment, None)),
        ("GET", ["payments", _]) => Some((Route::RetrievePayment, id(1))),
        ("POST", ["payments", _, "capture"]) => Some((Route::CapturePayment, id(1))),
        ("POST", ["payments", _, "cancel"]) => Some((Route::CancelPayment, id(1))),
        ("POST", ["refunds"]) => Some((Route::CreateRefund, None)),
        ("GET", ["refunds", _]) => Some((Route::RetrieveRefund, id(1))),
        _ => None,
    }
}

fn handle(shared: &Mutex<State>, request: &Request) -> Answer {
    let mut state = lock(shared);
    let routed = route_of(&request.method, &request.path);
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    if state.seen.len() < SEEN_MAX {
        state.seen.push(Seen {
            route: routed.as_ref().map(|(route, _)| *route),
            body: body.clone(),
        });
    }
    if request.headers.get("api-key").map(String::as_str) != Some(API_KEY) {
        state.violations.push(format!(
            "{} {} without the api-key",
            request.method, request.path
        ));
        return error(fixture!("errors/unauthorized.json"), None);
    }
    let Some((route, id)) = routed else {
        state.violations.push(format!(
            "undocumented route {} {}",
            request.method, request.path
        ));
        return error(fixture!("errors/unrecognized_url.json"), None);
    };
    if request.method == "POST" {
        let json_typed = request
            .headers
            .get("content-type")
            .is_some_and(|value| value.starts_with("application/json"));
        if !json_typed || !body.is_object() {
            state
                .violations
                .push(format!("{route:?}: the body is not a JSON object"));
            return error(
                fixture!("errors/json_deserialize.json"),
                Some("expected a JSON object"),
            );
        }
    }
    let fault = state.take_fault(route);
    if let Some(Fault::FailWithoutActing(status)) = fault {
        return internal_error(status);
    }
    let id = id.unwrap_or_default();
    let answer = match route {
        Route::CreatePayment => state.create_payment(&body),
        Route::RetrievePayment => state.retrieve_payment(&id, &request.query),
        Route::CapturePayment => state.capture(&id, &body),
        Route::CancelPayment => state.cancel(&id, &body),
        Route::CreateRefund => state.create_refund(&body),
        Route::RetrieveRefund => state.retrieve_refund(&id),
    };
    match fault {
        Some(Fault::ActThenFail(status)) => internal_error(status),
        Some(Fault::ActThenStall(stall)) => Answer {
            stall: Some(stall),
            ..answer
        },
        _ => answer,
    }
}

impl State {
    fn take_fault(&mut self, route: Route) -> Option<Fault> {
        let index = self
            .faults
            .iter()
            .position(|(faulty, _, times)| *faulty == route && *times > 0)?;
        let (_, fault, times) = &mut self.faults[index];
        *times -= 1;
        Some(*fault)
    }

    /// A body that breaks the document: recorded, and answered as the
    /// router answers a body it cannot read.
    fn shape_violation(&mut self, schema: &str, body: &Value) -> Option<Answer> {
        let problems = check_shape(schema, body);
        if problems.is_empty() {
            return None;
        }
        let reason = problems.join("; ");
        self.violations.push(format!("{schema}: {reason}"));
        Some(error(
            fixture!("errors/json_deserialize.json"),
            Some(&reason),
        ))
    }

    fn create_payment(&mut self, body: &Value) -> Answer {
        if let Some(refused) = self.shape_violation("PaymentsCreateRequest", body) {
            return refused;
        }
        if let Some(refused) = self.create_rules(body) {
            return refused;
        }
        let payment_id = match body["payment_id"].as_str() {
            Some(id) if valid_id(id) => id.to_owned(),
            Some(id) => {
                self.violations
                    .push(format!("payment_id {id:?} is not a valid id"));
                return error(
                    fixture!("errors/json_deserialize.json"),
                    Some("invalid payment_id"),
                );
            }
            None => {
                self.generated_ids += 1;
                format!("pay_fake{:022}", self.generated_ids)
            }
        };
        if self.payments.contains_key(&payment_id) {
            return error(fixture!("errors/duplicate_payment.json"), None);
        }
        let pan = self.card_number(body);
        let mut record = new_payment(body, &pan);
        let saves_card = record.setup_future_usage.as_deref() == Some("off_session")
            && record.status != "failed"
            && pan != CARD_NO_NETWORK_ID;
        if saves_card {
            let network_id = self.next_network_id();
            self.network_ids.insert(network_id.clone(), pan);
            record.network_transaction_id = Some(network_id);
        }
        let answer = payment_answer(&payment_id, &record);
        self.payments.insert(payment_id, record);
        answer
    }

    /// The router's and the documents' rules for a create's card and for
    /// what it may hold together.
    fn create_rules(&mut self, body: &Value) -> Option<Answer> {
        let card = &body["payment_method_data"]["card"];
        let on_file = &body["recurring_details"];
        if !card.is_null() && body["payment_method"].is_null() {
            self.violations
                .push("payment_method_data without payment_method".into());
            return Some(error(
                fixture!("errors/missing_required_field.json"),
                Some("payment_method"),
            ));
        }
        // The router checks the card before the rest (cypress
        // `InvalidCardCvv` is answered about the code, not its customer).
        let checked = match (card.is_null(), on_file.is_null()) {
            (false, _) => card_rules(card),
            (true, false) => expiry_rules(&on_file["data"]),
            (true, true) => Ok(()),
        };
        if let Err(message) = checked {
            return Some(error(
                fixture!("errors/precondition_failed.json"),
                Some(message),
            ));
        }
        let violation = combination_violation(body)?;
        self.violations.push(violation.to_owned());
        Some(error(
            fixture!("errors/precondition_failed.json"),
            Some(violation),
        ))
    }

    /// The card a create pays with, in the card or on file; for a payment
    /// on file whose network id the processor did not give for that card,
    /// nothing the processor will take.
    fn card_number(&self, body: &Value) -> String {
        let card = &body["payment_method_data"]["card"];
        if let Some(pan) = card["card_number"].as_str() {
            return pan.to_owned();
        }
        let on_file = &body["recurring_details"]["data"];
        let pan = on_file["card_number"].as_str().unwrap_or_default();
        let network_id = on_file["network_transaction_id"]
            .as_str()
            .unwrap_or_default();
        match self.network_ids.get(network_id) {
            Some(given_for) if given_for == pan => pan.to_owned(),
            _ => NETWORK_ID_REFUSED.to_owned(),
        }
    }

    /// A network transaction id of the length Visa's have.
    fn next_network_id(&mut self) -> String {
        self.generated_ids += 1;
        format!("{:015}", 483_297_487_000_000 + self.generated_ids)
    }

    fn retrieve_payment(&mut self, payment_id: &str, query: &str) -> Answer {
        if !query.split('&').any(|pair| pair == "force_sync=true") {
            self.violations
                .push(format!("retrieve of {payment_id} without force_sync=true"));
        }
        let Some(record) = self.payments.get_mut(payment_id) else {
            return error(fixture!("errors/payment_not_found.json"), None);
        };
        // The slow processor has answered by the time anyone asks again.
        if record.status == "processing" {
            record.status = "requires_capture".into();
        }
        payment_answer(payment_id, record)
    }

    fn capture(&mut self, payment_id: &str, body: &Value) -> Answer {
        if let Some(refused) = self.shape_violation("PaymentsCaptureRequest", body) {
            return refused;
        }
        let Some(record) = self.payments.get_mut(payment_id) else {
            return error(fixture!("errors/payment_not_found.json"), None);
        };
        if !["requires_capture", "partially_captured_and_capturable"]
            .contains(&record.status.as_str())
        {
            let message = format!(
                "This Payment could not be captured because it has a payment.status of {}. The expected state is requires_capture, partially_captured_and_capturable, processing",
                record.status
            );
            return error(
                fixture!("errors/payment_unexpected_state.json"),
                Some(&message),
            );
        }
        let amount = body["amount_to_capture"]
            .as_i64()
            .unwrap_or(record.capturable);
        if amount <= 0 || amount > record.capturable {
            return error(
                fixture!("errors/invalid_request_data.json"),
                Some("amount_to_capture is greater than amount"),
            );
        }
        record.received = Some(amount);
        record.capturable = 0;
        record.status = if amount == record.amount {
            "succeeded"
        } else {
            "partially_captured"
        }
        .into();
        payment_answer(payment_id, record)
    }

    fn cancel(&mut self, payment_id: &str, body: &Value) -> Answer {
        if let Some(refused) = self.shape_violation("PaymentsCancelRequest", body) {
            return refused;
        }
        let Some(record) = self.payments.get_mut(payment_id) else {
            return error(fixture!("errors/payment_not_found.json"), None);
        };
        let not_allowed = [
            "failed",
            "succeeded",
            "cancelled",
            "processing",
            "requires_merchant_action",
        ];
        if not_allowed.contains(&record.status.as_str()) {
            let message = format!(
                "You cannot cancel this payment because it has status {}",
                record.status
            );
            return error(fixture!("errors/precondition_failed.json"), Some(&message));
        }
        record.status = "cancelled".into();
        record.capturable = 0;
        payment_answer(payment_id, record)
    }

    fn create_refund(&mut self, body: &Value) -> Answer {
        if let Some(refused) = self.shape_violation("RefundRequest", body) {
            return refused;
        }
        let payment_id = body["payment_id"].as_str().unwrap_or_default().to_owned();
        let Some(payment) = self.payments.get_mut(&payment_id) else {
            return error(fixture!("errors/payment_not_found.json"), None);
        };
        if !["succeeded", "partially_captured"].contains(&payment.status.as_str()) {
            let message = format!(
                "This Payment could not be refund because it has a status of {}. The expected state is succeeded, partially_captured",
                payment.status
            );
            return error(
                fixture!("errors/payment_unexpected_state.json"),
                Some(&message),
            );
        }
        let refundable = payment.received.unwrap_or(0) - payment.refunded;
        let amount = body["amount"].as_i64().unwrap_or(refundable);
        let refund_id = match body["refund_id"].as_str() {
            Some(id) => id.to_owned(),
            None => {
                self.generated_ids += 1;
                format!("ref_fake{:022}", self.generated_ids)
            }
        };
        if self.refunds.contains_key(&refund_id) {
            return error(fixture!("errors/duplicate_refund.json"), None);
        }
        if amount <= 0 {
            return error(
                fixture!("errors/invalid_request_data.json"),
                Some("amount must be positive"),
            );
        }
        if amount > refundable {
            return error(fixture!("errors/refund_exceeds_payment.json"), None);
        }
        payment.refunded += amount;
        let record = RefundRecord {
            payment_id,
            amount,
            currency: payment.currency.clone(),
        };
        let answer = refund_answer(&refund_id, &record);
        self.refunds.insert(refund_id, record);
        answer
    }

    fn retrieve_refund(&mut self, refund_id: &str) -> Answer {
        match self.refunds.get(refund_id) {
            Some(record) => refund_answer(refund_id, record),
            None => error(fixture!("errors/refund_not_found.json"), None),
        }
    }
}

/// A card, or a card on file, not both; a payment on file is
/// `off_session`; a card is saved for a customer, with consent; a zero
/// amount is only the documented zero amount authorization.
fn combination_violation(body: &Value) -> Option<&'static str> {
    let card = &body["payment_method_data"]["card"];
    let on_file = &body["recurring_details"];
    let saves_off_session = body["setup_future_usage"] == json!("off_session");
    if !card.is_null() && !on_file.is_null() {
        Some("payment_method_data and recurring_details together")
    } else if !on_file.is_null() && body["off_session"] != json!(true) {
        Some("recurring_details without off_session: true")
    } else if !body["setup_future_usage"].is_null() && body["customer_id"].is_null() {
        Some("customer_id is mandatory when setup_future_usage is given")
    } else if saves_off_session && body["customer_acceptance"].is_null() {
        Some("setup_future_usage: off_session without the customer_acceptance")
    } else if body["amount"] == json!(0)
        && (body["payment_type"] != json!("setup_mandate") || !saves_off_session)
    {
        Some(
            "a zero amount without payment_type: setup_mandate and setup_future_usage: off_session",
        )
    } else {
        None
    }
}

/// What the fake's processor does with a confirmed card payment (`pan`
/// as [`State::card_number`] found it). A zero amount verifies the card.
fn new_payment(body: &Value, pan: &str) -> PaymentRecord {
    let amount = body["amount"].as_i64().unwrap_or(0);
    let capture_method = body["capture_method"]
        .as_str()
        .unwrap_or("automatic")
        .to_owned();
    let confirmed = body["confirm"].as_bool().unwrap_or(false);
    let (status, decline_message) = match (confirmed, pan) {
        (false, _) => ("requires_confirmation", None),
        (true, CARD_DECLINED) => (
            "failed",
            Some("message - Your card was declined., decline_code - generic_decline"),
        ),
        (true, CARD_INSUFFICIENT_FUNDS) if amount > 0 => (
            "failed",
            Some("message - Your card has insufficient funds., decline_code - insufficient_funds"),
        ),
        (true, NETWORK_ID_REFUSED) => ("failed", Some(UNKNOWN_NETWORK_ID)),
        (true, CARD_SLOW_PROCESSOR) => ("processing", None),
        (true, _) if amount == 0 => ("succeeded", None),
        (true, _) if capture_method == "manual" => ("requires_capture", None),
        (true, _) => ("succeeded", None),
    };
    let captured = status == "succeeded" && amount > 0;
    PaymentRecord {
        amount,
        currency: body["currency"].as_str().unwrap_or_default().to_owned(),
        capture_method,
        status: status.into(),
        capturable: if status == "succeeded" || status == "failed" {
            0
        } else {
            amount
        },
        received: captured.then_some(amount),
        refunded: 0,
        decline_message,
        profile_id: body["profile_id"].as_str().map(str::to_owned),
        order_reference: body["merchant_order_reference_id"]
            .as_str()
            .map(str::to_owned),
        setup_future_usage: body["setup_future_usage"].as_str().map(str::to_owned),
        network_transaction_id: None,
    }
}

fn payment_answer(payment_id: &str, record: &PaymentRecord) -> Answer {
    let template = match record.status.as_str() {
        "requires_capture" | "requires_confirmation" => {
            fixture!("responses/payment_requires_capture.json")
        }
        "processing" => fixture!("responses/payment_processing.json"),
        "failed" => fixture!("responses/payment_failed.json"),
        "partially_captured" => fixture!("responses/payment_partially_captured.json"),
        "cancelled" => fixture!("responses/payment_cancelled.json"),
        _ => fixture!("responses/payment_succeeded.json"),
    };
    let mut body: Value = serde_json::from_str(template).expect("response fixture is JSON");
    body["payment_id"] = json!(payment_id);
    body["status"] = json!(record.status);
    body["amount"] = json!(record.amount);
    body["net_amount"] = json!(record.amount);
    body["currency"] = json!(record.currency);
    body["capture_method"] = json!(record.capture_method);
    body["amount_capturable"] = json!(record.capturable);
    body["amount_received"] = json!(record.received);
    body["client_secret"] = json!(format!("{payment_id}_secret_fake"));
    if let Some(profile_id) = &record.profile_id {
        body["profile_id"] = json!(profile_id);
    }
    body["merchant_order_reference_id"] = json!(record.order_reference);
    if let Some(message) = record.decline_message {
        body["error_message"] = json!(message);
    }
    body["setup_future_usage"] = json!(record.setup_future_usage);
    body["network_transaction_id"] = json!(record.network_transaction_id);
    Answer {
        status: 200,
        body,
        stall: None,
    }
}

fn refund_answer(refund_id: &str, record: &RefundRecord) -> Answer {
    let mut body: Value = serde_json::from_str(fixture!("responses/refund_succeeded.json"))
        .expect("refund fixture is JSON");
    body["refund_id"] = json!(refund_id);
    body["payment_id"] = json!(record.payment_id);
    body["amount"] = json!(record.amount);
    body["currency"] = json!(record.currency);
    Answer {
        status: 200,
        body,
        stall: None,
    }
}

/// An error fixture, its `{placeholder}` message replaced when `detail`
/// is given.
fn error(fixture: &str, detail: Option<&str>) -> Answer {
    let pair: Value = serde_json::from_str(fixture).expect("error fixture is JSON");
    let mut body = pair["body"].clone();
    if let Some(detail) = detail {
        let message = body["error"]["message"].as_str().unwrap_or_default();
        let replaced = match (message.find('{'), message.find('}')) {
            (Some(start), Some(end)) if start < end => {
                format!("{}{detail}{}", &message[..start], &message[end + 1..])
            }
            _ => message.to_owned(),
        };
        body["error"]["message"] = json!(replaced);
    }
    Answer {
        status: u16::try_from(pair["status"].as_u64().unwrap_or(500)).unwrap_or(500),
        body,
        stall: None,
    }
}

fn internal_error(status: u16) -> Answer {
    Answer {
        status,
        ..error(fixture!("errors/internal_server_error.json"), None)
    }
}

/// Hyperswitch's ids: 1 to 64 letters, digits, `_` and `-`.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The router's card checks (`validate_card_data`).
fn card_rules(card: &Value) -> Result<(), &'static str> {
    let cvc = card["card_cvc"].as_str().unwrap_or_default();
    if !(3..=4).contains(&cvc.len()) {
        return Err("Invalid card_cvc length");
    }
    if !cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Invalid card_cvc");
    }
    expiry_rules(card)
}

/// The expiry checks of `validate_card_data`, which a card on file meets
/// too.
fn expiry_rules(card: &Value) -> Result<(), &'static str> {
    let text = |field: &str| card[field].as_str().unwrap_or_default();
    let month: u8 = text("card_exp_month")
        .parse()
        .map_err(|_| "Invalid Expiry Month")?;
    if !(1..=12).contains(&month) {
        return Err("Invalid Expiry Month");
    }
    let year = text("card_exp_year");
    let year: u16 = match year.len() {
        2 => format!("20{year}")
            .parse()
            .map_err(|_| "Invalid Expiry Year")?,
        _ => year.parse().map_err(|_| "Invalid Expiry Year")?,
    };
    let (this_year, this_month) = facepay_connector::card::today_utc();
    if (year, month) < (this_year, this_month) {
        return Err("Card Expired");
    }
    Ok(())
}

fn schemas() -> &'static Value {
    static SCHEMAS: OnceLock<Value> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        serde_json::from_str(fixture!("schemas.json")).expect("schemas fixture is JSON")
    })
}

/// Problems of `body` against one documented request schema; empty when it
/// conforms.
pub fn check_shape(schema_name: &str, body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check_object(schema_name, body, schema_name, &mut problems);
    problems
}

fn check_object(schema_name: &str, body: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = &schemas()["schemas"][schema_name];
    let Some(fields) = body.as_object() else {
        problems.push(format!("{at} is not an object"));
        return;
    };
    let exempt = &schemas()["not_enforced_by_hyperswitch"][schema_name];
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if exempt.get(name).is_none() && fields.get(name).is_none_or(Value::is_null) {
            problems.push(format!("{at}.{name} is required"));
        }
    }
    for (name, value) in fields {
        match schema["properties"].get(name) {
            Some(property) => check_value(property, value, &format!("{at}.{name}"), problems),
            None => problems.push(format!("{at}.{name} is not a documented field")),
        }
    }
}

fn check_value(property: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if value.is_null() {
        if property["nullable"] != json!(true) {
            problems.push(format!("{at} may not be null"));
        }
        return;
    }
    let typed = match property["type"].as_str().unwrap_or("any") {
        "string" => value.is_string(),
        "integer" => value.is_i64(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    };
    if !typed {
        problems.push(format!("{at} must be a {}", property["type"]));
        return;
    }
    if let Some(allowed) = property["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!(
            "{at} = {value} is not one of the documented values"
        ));
    }
    if property["format"] == json!("date-time") && !is_date_time(value) {
        problems.push(format!("{at} = {value} is not an ISO 8601 date and time"));
    }
    match property["schema"].as_str() {
        Some("PaymentMethodDataRequest") => check_payment_method_data(value, at, problems),
        Some("RecurringDetails") => check_recurring_details(value, at, problems),
        // Every other schema the fixtures describe is checked in full.
        Some(name) if schemas()["schemas"].get(name).is_some() => {
            check_object(name, value, at, problems);
        }
        _ => {}
    }
}

/// `2022-09-10T10:11:12Z`, with optional fractions of a second.
fn is_date_time(value: &Value) -> bool {
    let text = value.as_str().unwrap_or_default().as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        text.get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let fraction = text
        .get(19..text.len().saturating_sub(1))
        .unwrap_or_default();
    text.len() >= 20
        && digits(0..4)
        && text[4] == b'-'
        && digits(5..7)
        && text[7] == b'-'
        && digits(8..10)
        && text[10] == b'T'
        && digits(11..13)
        && text[13] == b':'
        && digits(14..16)
        && text[16] == b':'
        && digits(17..19)
        && text.ends_with(b"Z")
        && (fraction.is_empty()
            || (fraction[0] == b'.' && fraction[1..].iter().all(u8::is_ascii_digit)))
}

/// `RecurringDetails`: `{"type": ..., "data": ...}`, the data of the
/// documented shape for its type.
fn check_recurring_details(value: &Value, at: &str, problems: &mut Vec<String>) {
    let variants = &schemas()["schemas"]["RecurringDetails"]["one_of"];
    let fields = value.as_object().cloned().unwrap_or_default();
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort();
    let kind = fields
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(data_schema) = variants[kind].as_str().filter(|_| keys == ["data", "type"]) else {
        problems.push(format!(
            "{at} must be {{\"type\": one of the documented types, \"data\": ...}}"
        ));
        return;
    };
    let data = &fields["data"];
    match data_schema {
        "string" if data.is_string() => {}
        "string" => problems.push(format!("{at}.data must be a string")),
        name => check_object(name, data, &format!("{at}.data"), problems),
    }
}

/// `PaymentMethodDataRequest`: one payment method's data, plus `billing`.
fn check_payment_method_data(value: &Value, at: &str, problems: &mut Vec<String>) {
    let methods = schemas()["schemas"]["PaymentMethodData"]["one_of_keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let fields = value.as_object().cloned().unwrap_or_default();
    let chosen: Vec<&String> = fields
        .keys()
        .filter(|key| key.as_str() != "billing")
        .collect();
    if chosen.len() != 1 || !methods.contains(&json!(chosen[0])) {
        problems.push(format!(
            "{at} must hold exactly one documented payment method"
        ));
        return;
    }
    if chosen[0] == "card" {
        check_object("Card", &fields["card"], &format!("{at}.card"), problems);
    }
}
