//! `facepay bench flood`: what an enrolment flood does to payments. The
//! real server listens on loopback as `facepay serve` runs it (its
//! connection handling, limits and per-address rate limit); terminals pay
//! as in `bench pay`, first with nothing else going on, then while flood
//! clients send large multi-frame enrolments, needing no credential, as
//! fast as they are answered. Each flood request comes from the next of
//! `--flood-addresses` loopback addresses, so the flood is as many
//! clients as an attacker holds addresses. Prints both phases, the ratio
//! of their p99s, and how the flood was answered.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use facepay_config::Config;
use facepay_face::FaceEngine;
use facepay_models::ModelStore;
use facepay_server::root::App;
use facepay_terminal::{Client, TerminalFile, new_idempotency_key};
use image::ImageEncoder as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::bench_pay::{approving_env, parse_server_timing, payment_bodies};
use crate::engine_args::EngineArgs;
use crate::stats::median_p99;

const PAYMENTS_MAX: usize = 10_000;
const CONCURRENCY_MAX: usize = 64;
const FLOOD_CLIENTS_MAX: usize = 64;
/// Distinct source addresses: 127.1.0.1 up, 250 to each third octet.
const FLOOD_ADDRESSES_MAX: usize = 250 * 256;
const FLOOD_REQUESTS_MAX: usize = 100_000;
const FLOOD_SECONDS_MAX: u64 = 600;
const FRAME_SIDE_MAX: u32 = 8_192;
/// Payments made before the idle phase and not timed, so that neither
/// phase pays for lazy start-up (connections, the runtime's first runs).
const WARM_UP_PAYMENTS: usize = 10;
/// How long the flood runs before payments are timed under it, so that
/// its bodies are arriving and its queue is full.
const FLOOD_WARM_UP_MS: u64 = 2_000;
/// How often a paused flood, and whoever waits for it, looks again.
const PAUSE_POLL_MS: u64 = 20;
/// How long a flood client waits for one answer: the server's request
/// timeout and some.
const FLOOD_ANSWER_WAIT_MS: u64 = 75_000;
/// The most of an answer a flood client reads.
const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Phones of flood enrolments: clear of the demo's (+821055500000 up).
const FLOOD_PHONE_FIRST: usize = 70_000_000;
/// The flood's card, one of the simulated issuer's (not a payer's).
const FLOOD_CARD_INDEX: usize = 900;
/// The flood's face: a large sharp photo of a payer, so that every flood
/// enrolment does all its face work (each frame decoded, detected,
/// checked, embedded, liveness, the gallery searched) before it is
/// refused as a face already enrolled.
const FLOOD_PHOTO: &str = "face_recognition/obama3.jpg";

#[derive(clap::Args)]
pub struct FloodArgs {
    /// Payments timed in each phase.
    #[arg(long, default_value_t = 200)]
    pub payments: usize,
    /// Terminals paying at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Flood clients sending enrolments at once.
    #[arg(long, default_value_t = 4)]
    pub flood_clients: usize,
    /// Source addresses the flood takes in turn (1 shows the per-address
    /// rate limit at work; many, an attacker it cannot stop alone).
    #[arg(long, default_value_t = 1_000)]
    pub flood_addresses: usize,
    /// Frames in each flood enrolment.
    #[arg(long, default_value_t = 8)]
    pub flood_frames: usize,
    /// Each frame's width and height, as a PNG.
    #[arg(long, default_value_t = 1920)]
    pub frame_width: u32,
    #[arg(long, default_value_t = 1080)]
    pub frame_height: u32,
    /// Flood requests sent at most, all clients together.
    #[arg(long, default_value_t = 2_000)]
    pub flood_requests_max: usize,
    /// The longest the flood lasts from its start, pauses included.
    #[arg(long, default_value_t = 60)]
    pub flood_seconds: u64,
    /// Rounds of an idle block then a flood block, the payments shared
    /// between them, so that both phases meet the same load from the rest
    /// of the machine.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Folders of photos, one per person: the first photo enrols, the rest pay.
    #[arg(long, default_value = ".facepay/verify")]
    pub photos: PathBuf,
    /// Folder of the shared face photos (the flood's face is
    /// face_recognition/obama3.jpg).
    #[arg(
        long,
        env = "FACEPAY_FACES_DIR",
        default_value = "../shared/data/faces"
    )]
    pub faces: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl FloodArgs {
    fn bounded(mut self) -> Self {
        self.payments = self.payments.clamp(1, PAYMENTS_MAX);
        self.concurrency = self.concurrency.clamp(1, CONCURRENCY_MAX);
        self.flood_clients = self.flood_clients.clamp(1, FLOOD_CLIENTS_MAX);
        self.flood_addresses = self.flood_addresses.clamp(1, FLOOD_ADDRESSES_MAX);
        self.flood_frames = self
            .flood_frames
            .clamp(1, facepay_payments::face::FRAMES_MAX);
        self.frame_width = self.frame_width.clamp(1, FRAME_SIDE_MAX);
        self.frame_height = self.frame_height.clamp(1, FRAME_SIDE_MAX);
        self.flood_requests_max = self.flood_requests_max.clamp(1, FLOOD_REQUESTS_MAX);
        self.flood_seconds = self.flood_seconds.clamp(1, FLOOD_SECONDS_MAX);
        self.rounds = self.rounds.clamp(1, self.payments);
        self
    }
}

pub fn run(args: FloodArgs, models: &ModelStore) -> anyhow::Result<()> {
    let args = args.bounded();
    let data_dir = std::env::temp_dir().join(format!("facepay-bench-{}", new_idempotency_key()?));
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(measure(&args, models, &data_dir));
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

async fn measure(args: &FloodArgs, models: &ModelStore, data_dir: &Path) -> anyhow::Result<()> {
    let env = approving_env(&args.engine, data_dir)?;
    let config = Config::demo(env.into_iter().map(|(k, v)| (k.to_owned(), v)))?;
    let app = App::build(config, models, Arc::new(facepay_store::SystemClock)).await?;
    let bursts = crate::demo::enrol_people(&app, data_dir, &args.photos, usize::MAX).await?;
    anyhow::ensure!(
        !bursts.is_empty(),
        "no photo to pay with in {}",
        args.photos.display()
    );
    let (terminal_id, key) = TerminalFile::load(&facepay_server::seed::terminal_file(data_dir))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let url = format!("http://{address}");
    let payments = Payments {
        bodies: Arc::new(payment_bodies(&bursts)?),
        clients: (0..args.concurrency)
            .map(|_| Arc::new(Client::new(&url, terminal_id.clone(), key.clone())))
            .collect(),
    };
    let flood_body = Arc::new(FloodBody::new(args, &app.engine)?);
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(facepay_server::serve_on(&app, listener, async {
        let _ = stopped.await;
    }));
    payments.run(WARM_UP_PAYMENTS).await?;
    let flood = Flood::start(address, Arc::clone(&flood_body), args);
    let measured = rounds(args, &payments, &flood).await;
    let answers = flood.stop().await;
    let _ = stop_server.send(());
    let _ = server.await;
    let (phases, flood_outlasted) = measured?;
    print_report(args, &flood_body, phases, &answers, flood_outlasted);
    app.services.store().close().await;
    Ok(())
}

/// Each round's idle block, then its flood block once the flood is under
/// way; the flood drained before the next idle block. Also whether the
/// flood lasted through every flood block.
async fn rounds(
    args: &FloodArgs,
    payments: &Payments,
    flood: &Flood,
) -> anyhow::Result<([Phase; 2], bool)> {
    let [mut idle, mut flooded] = [Phase::default(), Phase::default()];
    let mut outlasted = true;
    for round in 0..args.rounds {
        // The payments shared as evenly as they go.
        let count =
            (args.payments * (round + 1)) / args.rounds - (args.payments * round) / args.rounds;
        idle.absorb(payments.run(count).await?);
        flood.resume().await;
        flooded.absorb(payments.run(count).await?);
        outlasted &= !flood.is_over();
        flood.pause().await;
    }
    Ok(([idle, flooded], outlasted))
}

/// Payments as terminals make them, timed: one client per terminal paying
/// at once.
struct Payments {
    bodies: Arc<Vec<Vec<u8>>>,
    clients: Vec<Arc<Client>>,
}

const STAGES: [&str; facepay_payments::api::PAY_STAGES.len()] = facepay_payments::api::PAY_STAGES;

/// One phase's payments.
#[derive(Default)]
struct Phase {
    latency_ms: Vec<f64>,
    /// The server's time per stage (`Server-Timing`), by `STAGES`.
    stages_ms: [Vec<f64>; STAGES.len()],
    /// Answered for good: approved, or declined by the issuer.
    answered: usize,
    /// Refused, or no answer at all.
    refused: usize,
    elapsed: Duration,
}

impl Phase {
    fn absorb(&mut self, other: Phase) {
        self.latency_ms.extend(other.latency_ms);
        for (mine, theirs) in self.stages_ms.iter_mut().zip(other.stages_ms) {
            mine.extend(theirs);
        }
        self.answered += other.answered;
        self.refused += other.refused;
        self.elapsed += other.elapsed;
    }

    fn record_stages(&mut self, server_timing: &str) {
        for (stage, ms) in parse_server_timing(server_timing) {
            if let Some(index) = STAGES.iter().position(|s| *s == stage) {
                self.stages_ms[index].push(ms);
            }
        }
    }
}

impl Payments {
    async fn run(&self, payments: usize) -> anyhow::Result<Phase> {
        let phase = Arc::new(Mutex::new(Phase::default()));
        let started = Instant::now();
        let concurrency = self.clients.len();
        let mut workers = Vec::with_capacity(concurrency);
        for (worker, client) in self.clients.iter().enumerate() {
            let (phase, bodies) = (Arc::clone(&phase), Arc::clone(&self.bodies));
            let client = Arc::clone(client);
            workers.push(tokio::task::spawn_blocking(move || {
                for i in (worker..payments).step_by(concurrency) {
                    let body = &bodies[i % bodies.len()];
                    let start = Instant::now();
                    let answer = new_idempotency_key()
                        .and_then(|key| client.post("/v1/terminal/payments", &key, body));
                    let latency_ms = start.elapsed().as_secs_f64() * 1e3;
                    let mut phase = phase.lock().unwrap_or_else(|e| e.into_inner());
                    match answer {
                        Ok(answer) if matches!(answer.status, 201 | 402) => {
                            phase.answered += 1;
                            phase.latency_ms.push(latency_ms);
                            phase.record_stages(&answer.server_timing);
                        }
                        _ => phase.refused += 1,
                    }
                }
            }));
        }
        for worker in workers {
            worker.await?;
        }
        let mut phase = std::mem::take(&mut *phase.lock().unwrap_or_else(|e| e.into_inner()));
        phase.elapsed = started.elapsed();
        Ok(phase)
    }
}

/// A flood enrolment's body around its phone number, which each request
/// changes (an enrolment's idempotency is scoped by phone, and a phone
/// enrols once).
struct FloodBody {
    before_phone: Arc<[u8]>,
    after_phone: Arc<[u8]>,
}

/// A phone number's length: "+8210" and eight digits.
const PHONE_LEN: usize = 13;

impl FloodBody {
    fn new(args: &FloodArgs, engine: &FaceEngine) -> anyhow::Result<Self> {
        let path = args.faces.join(FLOOD_PHOTO);
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}; run scripts/faces.sh", path.display()))?;
        let photo = facepay_face::decode(&bytes)?;
        let centre = crate::bench::face_centre(engine, &photo)?;
        let frame = crate::bench::cover(&photo, args.frame_width, args.frame_height, centre);
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(Cursor::new(&mut png)).write_image(
            frame.as_raw(),
            frame.width(),
            frame.height(),
            image::ExtendedColorType::Rgb8,
        )?;
        let frame = BASE64.encode(&png);
        let card = crate::demo::demo_card(FLOOD_CARD_INDEX);
        let placeholder = "P".repeat(PHONE_LEN);
        let text = serde_json::json!({
            "phone": placeholder,
            "pin": "123456",
            "frames": vec![frame; args.flood_frames],
            "card": {
                "number": card,
                "expiry_month": 12,
                "expiry_year": 2030,
                "security_code": facepay_connector::simulator::printed_security_code(&card),
            },
        })
        .to_string();
        let (before, after) = text
            .split_once(&placeholder)
            .ok_or_else(|| anyhow::anyhow!("the phone's place is not in the body"))?;
        Ok(Self {
            before_phone: before.as_bytes().into(),
            after_phone: after.as_bytes().into(),
        })
    }

    fn len(&self) -> usize {
        self.before_phone.len() + PHONE_LEN + self.after_phone.len()
    }
}

/// An answer's status and error code; (0, "") when none came.
type Answer = (u16, String);
/// How many answers of each kind the flood had.
type Answers = BTreeMap<Answer, usize>;

/// The flood's clients, running until stopped, out of time or out of
/// requests, on a thread of their own at the lowest CPU priority: what an
/// attacker spends on sending is spent on its own machines, so here it
/// takes only the CPU the server leaves.
struct Flood {
    stop: Arc<AtomicBool>,
    /// Set while the flood sends nothing (an idle block).
    paused: Arc<AtomicBool>,
    /// Flood requests awaiting their answer.
    in_flight: Arc<AtomicUsize>,
    answers: tokio::sync::oneshot::Receiver<Answers>,
    ends_at: Instant,
    sent: Arc<AtomicUsize>,
    requests_max: usize,
}

impl Flood {
    fn start(server: SocketAddr, body: Arc<FloodBody>, args: &FloodArgs) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(true));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicUsize::new(0));
        let ends_at = Instant::now() + Duration::from_secs(args.flood_seconds);
        let clients: Vec<FloodClient> = (0..args.flood_clients)
            .map(|_| FloodClient {
                server,
                body: Arc::clone(&body),
                stop: Arc::clone(&stop),
                paused: Arc::clone(&paused),
                in_flight: Arc::clone(&in_flight),
                sent: Arc::clone(&sent),
                requests_max: args.flood_requests_max,
                addresses: args.flood_addresses,
                ends_at,
            })
            .collect();
        let (report, answers) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            lowest_priority();
            let _ = report.send(run_clients(clients));
        });
        Self {
            stop,
            paused,
            in_flight,
            answers,
            ends_at,
            sent,
            requests_max: args.flood_requests_max,
        }
    }

    fn is_over(&self) -> bool {
        Instant::now() >= self.ends_at || self.sent.load(Ordering::Acquire) >= self.requests_max
    }

    /// Lets the flood send, and gives it time to be under way.
    async fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(FLOOD_WARM_UP_MS)).await;
    }

    /// Stops the flood sending, and waits for the answers to what it sent.
    async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        let started = Instant::now();
        while self.in_flight.load(Ordering::SeqCst) > 0
            && started.elapsed() < Duration::from_millis(FLOOD_ANSWER_WAIT_MS)
        {
            tokio::time::sleep(Duration::from_millis(PAUSE_POLL_MS)).await;
        }
    }

    async fn stop(self) -> Answers {
        self.stop.store(true, Ordering::SeqCst);
        self.answers.await.unwrap_or_default()
    }
}

/// Every client to its end, on this thread; each answer's kind counted.
fn run_clients(clients: Vec<FloodClient>) -> Answers {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("the flood's runtime did not start: {e}");
            return Answers::new();
        }
    };
    runtime.block_on(async {
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|client| tokio::spawn(client.run()))
            .collect();
        let mut answers = Answers::new();
        for task in tasks {
            for (answer, count) in task.await.unwrap_or_default() {
                *answers.entry(answer).or_default() += count;
            }
        }
        answers
    })
}

/// The calling thread's CPU priority, lowered as far as it goes (a nice
/// value is per thread on Linux; elsewhere the flood keeps its priority).
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, NICE_LOWEST) {
        eprintln!("the flood runs at the server's priority: {e}");
    }
}

#[cfg(target_os = "linux")]
const NICE_LOWEST: i32 = 19;

struct FloodClient {
    server: SocketAddr,
    body: Arc<FloodBody>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    /// Requests sent by every client: the next one's number.
    sent: Arc<AtomicUsize>,
    requests_max: usize,
    addresses: usize,
    ends_at: Instant,
}

impl FloodClient {
    async fn run(self) -> Answers {
        let mut answers = BTreeMap::new();
        while !self.stop.load(Ordering::SeqCst) && Instant::now() < self.ends_at {
            // Counted in flight before the pause is looked at, so that a
            // pause waiting for none in flight cannot miss this one.
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            if self.paused.load(Ordering::SeqCst) {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(PAUSE_POLL_MS)).await;
                continue;
            }
            let n = self.sent.fetch_add(1, Ordering::SeqCst);
            if n < self.requests_max {
                let answer = self.enrol(n).await.unwrap_or_default();
                *answers.entry(answer).or_default() += 1;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if n >= self.requests_max {
                break;
            }
        }
        answers
    }

    /// The `n`th enrolment of the flood, from its turn's source address:
    /// the status of its answer. The body is sent while the answer is
    /// awaited, since the server may answer (429, 413) before reading it.
    async fn enrol(&self, n: usize) -> anyhow::Result<Answer> {
        let source = flood_address(n % self.addresses);
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        let stream = socket.connect(self.server).await?;
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST /v1/users HTTP/1.1\r\nhost: facepay\r\ncontent-type: application/json\r\n\
             idempotency-key: flood-{n}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.body.len()
        );
        let phone = format!("+8210{:08}", FLOOD_PHONE_FIRST + n);
        let body = Arc::clone(&self.body);
        let sender = tokio::spawn(async move {
            writer.write_all(head.as_bytes()).await?;
            writer.write_all(&body.before_phone).await?;
            writer.write_all(phone.as_bytes()).await?;
            writer.write_all(&body.after_phone).await?;
            std::io::Result::Ok(writer)
        });
        let answer = tokio::time::timeout(
            Duration::from_millis(FLOOD_ANSWER_WAIT_MS),
            read_answer(&mut reader),
        )
        .await;
        sender.abort();
        answer?
    }
}

/// The `index`th source address of the flood: 127.1.0.1 and up.
fn flood_address(index: usize) -> IpAddr {
    let (high, low) = (index / 250, index % 250);
    IpAddr::V4(Ipv4Addr::new(127, 1, (high % 256) as u8, (low + 1) as u8))
}

/// An answer's status and error code (empty for a success), read to the
/// close the request asked for.
async fn read_answer(reader: &mut tokio::net::tcp::OwnedReadHalf) -> anyhow::Result<Answer> {
    let mut bytes = Vec::new();
    (&mut *reader)
        .take(ANSWER_BYTES_MAX as u64)
        .read_to_end(&mut bytes)
        .await?;
    let text = String::from_utf8_lossy(&bytes);
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP answer"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok((status, code))
}

/// The server's own time per stage in each phase.
fn print_stages(phases: &mut [Phase; 2]) {
    println!("| server stage | idle median ms | idle p99 ms | flood median ms | flood p99 ms |");
    println!("|---|---|---|---|---|");
    for (index, stage) in STAGES.iter().enumerate() {
        let [idle, flood] = phases;
        let (idle_median, idle_p99) = median_p99(&mut idle.stages_ms[index]);
        let (flood_median, flood_p99) = median_p99(&mut flood.stages_ms[index]);
        println!(
            "| {stage} | {idle_median:.1} | {idle_p99:.1} | {flood_median:.1} | {flood_p99:.1} |"
        );
    }
}

fn print_report(
    args: &FloodArgs,
    body: &FloodBody,
    mut phases: [Phase; 2],
    answers: &Answers,
    flood_outlasted: bool,
) {
    println!(
        "facepay bench flood: {} terminals paying, {} payments a phase in {} rounds; flood of \
         {} clients from {} addresses, {} frames of {}x{} PNG each ({:.1} MiB a request)",
        args.concurrency,
        args.payments,
        args.rounds,
        args.flood_clients,
        args.flood_addresses,
        args.flood_frames,
        args.frame_width,
        args.frame_height,
        body.len() as f64 / (1024.0 * 1024.0)
    );
    println!("| phase | payments | refused | payments/s | median ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let mut p99s = [f64::NAN; 2];
    for (index, (name, phase)) in ["idle", "flood"].iter().zip(phases.iter_mut()).enumerate() {
        let (median, p99) = median_p99(&mut phase.latency_ms);
        p99s[index] = p99;
        println!(
            "| {name} | {} | {} | {:.1} | {median:.1} | {p99:.1} |",
            phase.answered,
            phase.refused,
            phase.answered as f64 / phase.elapsed.as_secs_f64()
        );
    }
    println!("p99 flood / idle: {:.2}", p99s[1] / p99s[0]);
    print_stages(&mut phases);
    let counts: Vec<String> = answers
        .iter()
        .map(|((status, code), count)| match status {
            0 => format!("no answer: {count}"),
            _ if code.is_empty() => format!("{status}: {count}"),
            _ => format!("{status} {code}: {count}"),
        })
        .collect();
    println!("flood answers: {}", counts.join(", "));
    if !flood_outlasted {
        println!(
            "note: the flood ended before the payments did; raise --flood-seconds or --flood-requests-max"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flood_address_is_a_loopback_address_of_its_own() {
        let addresses: std::collections::BTreeSet<IpAddr> =
            (0..FLOOD_ADDRESSES_MAX).map(flood_address).collect();
        assert_eq!(addresses.len(), FLOOD_ADDRESSES_MAX);
        assert!(addresses.iter().all(IpAddr::is_loopback));
        assert!(!addresses.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[tokio::test]
    async fn an_answer_is_read_to_its_status_and_code() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let body = r#"{"error":{"code":"rate_limited","message":"later"}}"#;
            let answer = format!(
                "HTTP/1.1 429 Too Many Requests\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut reader, _writer) = stream.into_split();
        let answer = read_answer(&mut reader).await.unwrap();
        assert_eq!(answer, (429, "rate_limited".to_owned()));
        server.await.unwrap();
    }
}
