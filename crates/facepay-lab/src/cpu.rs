//! The CPU a benchmark's payments take: this process's (the server, the
//! terminals and the face work) and, when the store is a PostgreSQL server
//! on this machine, that server's (its postmaster and every backend, live
//! or already gone). Both together over the wall time say how many cores
//! were busy, and each over the payments what one payment costs.

use std::time::{Duration, Instant};

/// CPU read at one moment.
pub struct Mark {
    at: Instant,
    process: Duration,
    postgres: Option<Duration>,
}

/// Reads the CPU of this process and of one local PostgreSQL server.
pub struct CpuClock {
    /// Whether the run's store is a PostgreSQL server.
    on_postgres: bool,
    /// Its postmaster's process id, when it runs on this machine and its
    /// `/proc` entry can be read.
    postmaster: Option<u32>,
}

impl CpuClock {
    /// `database_url` names the PostgreSQL server the run uses, if any.
    /// Its CPU is counted only when it runs on this machine (a loopback
    /// address) and `/proc` shows its processes: a server elsewhere, or in
    /// a container whose process ids are its own, is not measured.
    pub async fn new(database_url: Option<&str>) -> Self {
        let postmaster = match database_url {
            Some(url) if is_loopback(url) => postmaster(url).await,
            _ => None,
        };
        Self {
            on_postgres: database_url.is_some(),
            postmaster,
        }
    }

    pub fn mark(&self) -> Mark {
        Mark {
            at: Instant::now(),
            process: process_cpu(),
            postgres: self.postmaster.and_then(postgres_cpu),
        }
    }

    /// The CPU taken between two marks, printed for `payments`.
    /// PostgreSQL's is the whole server's: other clients', autovacuum's and
    /// the checkpointer's time count too.
    pub fn print_between(&self, start: &Mark, end: &Mark, payments: usize) {
        let wall = end.at.duration_since(start.at).as_secs_f64();
        let per_payment_ms = |cpu: Duration| cpu.as_secs_f64() * 1e3 / payments.max(1) as f64;
        let process = end.process.saturating_sub(start.process);
        let postgres = match (start.postgres, end.postgres) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let total = process + postgres.unwrap_or_default();
        let postgres_text = match postgres {
            Some(cpu) => format!(", PostgreSQL {:.1} ms", per_payment_ms(cpu)),
            None if self.on_postgres => ", PostgreSQL not measured".to_owned(),
            None => String::new(),
        };
        println!(
            "CPU a payment: facepay {:.1} ms{postgres_text}, together {:.1} ms; {:.2} cores busy",
            per_payment_ms(process),
            per_payment_ms(total),
            total.as_secs_f64() / wall.max(1e-9),
        );
    }
}

fn is_loopback(database_url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(database_url) else {
        return false;
    };
    match parsed.host() {
        // A `postgres:` URL's host is opaque to the URL standard, so an
        // address comes back as a name.
        Some(url::Host::Domain(name)) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
        }
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

/// The parent of the backend serving a connection to `url`, when both are
/// PostgreSQL's processes in this machine's `/proc`: a server in a
/// container answers with a process id of its own namespace, which here
/// may name an unrelated process.
async fn postmaster(url: &str) -> Option<u32> {
    let backend = facepay_store::testing::OpenBackend::open(url).await.ok()?;
    let is_postgres = |stat: &Stat| stat.command == "postgres";
    let found = stat(backend.pid)
        .filter(is_postgres)
        .and_then(|b| stat(b.ppid).filter(is_postgres).map(|_| b.ppid));
    backend.close().await;
    found
}

/// This process's user and system time, all threads.
fn process_cpu() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Duration::new(t.tv_sec.unsigned_abs(), t.tv_nsec.unsigned_abs() as u32)
    }
    #[cfg(not(target_os = "linux"))]
    Duration::ZERO
}

/// The postmaster's own time, what its children that ended left it, and
/// the time of each child still running.
fn postgres_cpu(postmaster: u32) -> Option<Duration> {
    let own = stat(postmaster)?;
    let mut ticks = own.ticks + own.children_ticks;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(child) = stat(pid).filter(|s| s.ppid == postmaster) {
            ticks += child.ticks;
        }
    }
    Some(Duration::from_secs_f64(ticks as f64 / ticks_per_second()))
}

#[cfg(target_os = "linux")]
fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

#[cfg(not(target_os = "linux"))]
fn ticks_per_second() -> f64 {
    100.0
}

/// What `/proc/<pid>/stat` says of a process's CPU, in clock ticks.
struct Stat {
    /// The executable's name, as the kernel keeps it (at most 15 bytes).
    command: String,
    ppid: u32,
    /// User and system time.
    ticks: u64,
    /// User and system time of its children that ended and were waited for.
    children_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The fields after the command's name, which is in parentheses and may
/// hold spaces: state, ppid, then (counting from state as 0) utime at 11,
/// stime 12, cutime 13, cstime 14 (proc(5)).
fn parse_stat(text: &str) -> Option<Stat> {
    let (head, rest) = text.rsplit_once(')')?;
    let (_, command) = head.split_once('(')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        command: command.to_owned(),
        ppid: u32::try_from(number(1)?).ok()?,
        ticks: number(11)? + number(12)?,
        children_ticks: number(13)? + number(14)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_with_spaces_in_the_name() {
        let line = "4242 (postgres: user db) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 30 7 5 20 0 1 0 100 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.command, "postgres: user db");
        assert_eq!(stat.ppid, 17);
        assert_eq!(stat.ticks, 280);
        assert_eq!(stat.children_ticks, 12);
        assert!(parse_stat("4242 (cut short) S 17").is_none());
    }

    #[test]
    fn only_loopback_servers_are_counted() {
        assert!(is_loopback("postgres://u@127.0.0.1:5432/db"));
        assert!(is_loopback("postgres://localhost/db"));
        assert!(is_loopback("postgres://u:p@[::1]:5432/db"));
        assert!(!is_loopback("postgres://u@db.example.org:5432/db"));
        assert!(!is_loopback("postgres://127.0.0.1@db.example.org/db"));
        assert!(!is_loopback("postgres://localhost.example.org/db"));
    }
}
