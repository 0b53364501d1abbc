//! facepay's database. One schema, two engines: SQLite in a single WAL file
//! for the embedded default, PostgreSQL for production. Queries go through
//! sqlx's `Any` driver with `$n` placeholders, which both engines accept, so
//! every query is written once; each engine has its own migrations because
//! their DDL differs.
//!
//! This crate owns SQL and nothing else: no HTTP, no face models, no
//! connector calls. Every write that must be atomic takes a transaction
//! (`&mut AnyConnection`) from the caller, who decides where it begins and
//! commits.

pub mod access;
pub mod audit;
pub mod changes;
pub mod clock;
pub mod connector_events;
pub mod files;
pub mod fraud;
pub mod hub;
pub mod hub_members;
pub mod hub_settlement;
pub mod idempotency;
pub mod keys;
pub mod leases;
pub mod ledger;
pub mod loyalty;
pub mod maintenance;
pub mod onboarding;
pub mod parties;
pub mod payments;
pub mod rate_windows;
pub mod risk;
#[cfg(test)]
mod tests;
pub mod vault;
pub mod wallet;
pub mod webhooks;
#[cfg(test)]
mod webhooks_tests;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use clock::{Clock, ManualClock, SystemClock, now_ms};
pub use sqlx::AnyConnection as Connection;
pub type Transaction = sqlx::Transaction<'static, sqlx::Any>;
pub type PooledConnection = sqlx::pool::PoolConnection<sqlx::Any>;

/// Connections to PostgreSQL; SQLite gets exactly one (see [`Store::open`]).
const POSTGRES_CONNECTIONS_MAX: u32 = 16;
/// How long a query waits for a connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// What both backends' pools share. Closing idle or old connections is
/// off: with either on, sqlx 0.8 runs a maintenance task whose sweep
/// counts on a number of idle connections that a race in the pool can
/// wrap to `usize::MAX` (launchbadge/sqlx#3645, mended after 0.8.6). The
/// task then spins on a runtime thread without yielding, takes the idle
/// connections from requests until their acquire times out, and keeps the
/// pool's close from ending. A ten-million-payer import here met it. A
/// connection is still checked when acquired, and replaced if it died.
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    Duplicate(&'static str),
    #[error("the store holds an impossible value: {0}")]
    Corrupt(String),
    /// A write the store's rules do not allow (a caller's mistake).
    #[error("refused: {0}")]
    Refused(String),
    /// The operating system's random generator failed: no id can be drawn.
    #[error("the operating system's random generator failed: {0}")]
    Random(getrandom::Error),
}

impl StoreError {
    /// The database is overloaded or unreachable for now; a retry may work.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
        )
    }

    /// Maps a unique-constraint violation to `Duplicate(what)`.
    fn duplicate_as(self, what: &'static str) -> Self {
        match &self {
            StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                StoreError::Duplicate(what)
            }
            _ => self,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Whether `conn` talks to PostgreSQL: the one place that spells how
/// sqlx's `Any` driver names it.
pub fn on_postgres(conn: &Connection) -> bool {
    conn.backend_name() == "PostgreSQL"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Which database a store holds. The card vault has a database of its own,
/// so that the core's database never holds more than one share of a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Core,
    Vault,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Kept for connections outside the pool (a LISTEN).
    url: String,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and runs its
    /// migrations. `sqlite:PATH` or `postgres://...`.
    ///
    /// SQLite gets one connection: writes are serialised in-process, so no
    /// transaction ever meets `SQLITE_BUSY` half-way, and a commit in WAL
    /// mode costs well under a millisecond next to a face inference.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_schema(url, Schema::Core).await
    }

    /// Opens the card vault's database (see [`Schema::Vault`]).
    pub async fn open_vault(url: &str) -> Result<Self> {
        Self::open_schema(url, Schema::Vault).await
    }

    async fn open_schema(url: &str, schema: Schema) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.chars().take(16).collect()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                pool_options()
                    .max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // FULL: an acknowledged payment survives power
                            // loss, not only a killed process. secure_delete:
                            // what is deleted or overwritten (a destroyed data
                            // key, a cleared phone number) is zeroed in the
                            // file, not left in free space.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA secure_delete = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                pool_options()
                    .max_connections(POSTGRES_CONNECTIONS_MAX)
                    .connect_with(options)
                    .await?
            }
        };
        match (backend, schema) {
            (Backend::Sqlite, Schema::Core) => {
                sqlx::migrate!("migrations/sqlite").run(&pool).await?
            }
            (Backend::Postgres, Schema::Core) => {
                sqlx::migrate!("migrations/postgres").run(&pool).await?
            }
            (Backend::Sqlite, Schema::Vault) => {
                sqlx::migrate!("migrations/vault-sqlite").run(&pool).await?
            }
            (Backend::Postgres, Schema::Vault) => {
                sqlx::migrate!("migrations/vault-postgres")
                    .run(&pool)
                    .await?
            }
        }
        Ok(Self {
            pool,
            backend,
            url: url.to_owned(),
        })
    }

    /// The URL of the embedded store in `data_dir`, creating the directory.
    pub fn sqlite_url(data_dir: &Path) -> std::io::Result<String> {
        sqlite_file_url(data_dir, "facepay.db")
    }

    /// The URL of the embedded vault store in `vault_dir`.
    pub fn vault_sqlite_url(vault_dir: &Path) -> std::io::Result<String> {
        sqlite_file_url(vault_dir, "vault.db")
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn acquire(&self) -> Result<PooledConnection> {
        Ok(self.pool.acquire().await?)
    }

    pub async fn begin(&self) -> Result<Transaction> {
        Ok(self.pool.begin().await?)
    }

    /// Leaves no old copy of anything overwritten or deleted in the SQLite
    /// files: rebuilds the database (`VACUUM`, so free pages and the free
    /// space of pages written before `secure_delete` was on go too), then
    /// copies the log into it and empties the log. It takes as long as
    /// copying the database; for a one-off clean-up (the start that
    /// converts phone numbers stored in clear, through
    /// [`maintenance::SCRUB`]). Nothing on PostgreSQL,
    /// whose old row versions go with `VACUUM FULL` (docs/operations.md).
    /// False when a reader kept the log from being emptied.
    pub async fn scrub(&self) -> Result<bool> {
        if self.backend != Backend::Sqlite {
            return Ok(true);
        }
        let mut conn = self.pool.acquire().await?;
        conn.execute("VACUUM").await?;
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await?;
        Ok(busy == 0)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The database file and its directory are made private before SQLite
/// opens them, so that its WAL and shared-memory files are private too.
fn sqlite_file_url(dir: &Path, file: &str) -> std::io::Result<String> {
    files::private_dir(dir)?;
    let path = dir.join(file);
    files::private_file(&path)?;
    for companion in ["-wal", "-shm"] {
        let mut name = path.clone().into_os_string();
        name.push(companion);
        files::restrict_if_present(Path::new(&name), files::FILE_MODE)?;
    }
    Ok(format!("sqlite://{}?mode=rwc", path.display()))
}

/// Stores for tests of this crate and the crates above it.
pub mod testing {
    use super::*;

    /// Stores to run a test on: a fresh SQLite file always, and PostgreSQL
    /// when `FACEPAY_TEST_POSTGRES_URL` names one (CI sets it), on a schema
    /// of its own so tests do not see each other's rows.
    pub async fn stores(dir: &Path) -> Result<Vec<Store>> {
        let mut stores =
            vec![Store::open(&Store::sqlite_url(dir).map_err(sqlx::Error::Io)?).await?];
        match std::env::var("FACEPAY_TEST_POSTGRES_URL") {
            Ok(url) => stores.push(fresh_postgres(&url).await?),
            Err(_) => eprintln!("FACEPAY_TEST_POSTGRES_URL not set: PostgreSQL skipped"),
        }
        Ok(stores)
    }

    /// A vault store: SQLite in `dir` always, plus PostgreSQL on a new
    /// schema when `FACEPAY_TEST_POSTGRES_URL` is set, in the same order as
    /// [`stores`].
    pub async fn vault_stores(dir: &Path) -> Result<Vec<Store>> {
        let mut stores =
            vec![Store::open_vault(&Store::vault_sqlite_url(dir).map_err(sqlx::Error::Io)?).await?];
        if let Ok(url) = std::env::var("FACEPAY_TEST_POSTGRES_URL") {
            stores.push(Store::open_vault(&fresh_postgres_url(&url).await?).await?);
        }
        Ok(stores)
    }

    /// A vault store beside `core`: SQLite in `dir` for a SQLite core, a
    /// PostgreSQL schema of its own for a PostgreSQL core. The same `dir`
    /// gives the same vault, as it would to a restarted server.
    pub async fn vault_beside(core: &Store, dir: &Path) -> Result<Store> {
        match core.backend() {
            Backend::Sqlite => {
                Store::open_vault(&Store::vault_sqlite_url(dir).map_err(sqlx::Error::Io)?).await
            }
            Backend::Postgres => {
                let remembered = dir.join("postgres-url");
                let url = match std::fs::read_to_string(&remembered) {
                    Ok(url) => url,
                    Err(_) => {
                        let server = std::env::var("FACEPAY_TEST_POSTGRES_URL").map_err(|_| {
                            StoreError::UnsupportedUrl("FACEPAY_TEST_POSTGRES_URL".into())
                        })?;
                        let url = fresh_postgres_url(&server).await?;
                        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
                        std::fs::write(&remembered, &url).map_err(sqlx::Error::Io)?;
                        url
                    }
                };
                Store::open_vault(&url).await
            }
        }
    }

    /// Every row of every table of a PostgreSQL store as text (binary
    /// columns as `\\x` hex), the way a stolen dump would show it.
    pub async fn postgres_dump(store: &Store) -> Result<String> {
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(store.pool())
        .await?;
        let mut dump = String::new();
        for (table,) in tables {
            let sql = format!("SELECT CAST(t AS TEXT) FROM \"{table}\" t");
            let rows: Vec<(String,)> = sqlx::query_as(&sql).fetch_all(store.pool()).await?;
            for (row,) in rows {
                dump.push_str(&table);
                dump.push(' ');
                dump.push_str(&row);
                dump.push('\n');
            }
        }
        Ok(dump)
    }

    /// A store on a new, empty schema of the PostgreSQL server at `url`.
    pub async fn fresh_postgres(url: &str) -> Result<Store> {
        Store::open(&fresh_postgres_url(url).await?).await
    }

    /// The URL of a new, empty schema of the PostgreSQL server at `url`.
    pub async fn fresh_postgres_url(url: &str) -> Result<String> {
        sqlx::any::install_default_drivers();
        let schema = format!("t{}_{}", std::process::id(), super::ids::random_hex(6)?);
        let admin = AnyPool::connect(url).await?;
        admin
            .execute(format!("CREATE SCHEMA {schema}").as_str())
            .await?;
        admin.close().await;
        let separator = if url.contains('?') { '&' } else { '?' };
        Ok(format!("{url}{separator}{SCHEMA_OPTION}{schema}"))
    }

    const SCHEMA_OPTION: &str = "options=-csearch_path%3D";

    /// One connection to the PostgreSQL server at `url`, held open, and
    /// the process id of the backend that serves it: its parent is the
    /// server's postmaster. The backend ends when the connection closes,
    /// so its process is read while this is alive.
    pub struct OpenBackend {
        pub pid: u32,
        conn: Connection,
    }

    impl OpenBackend {
        pub async fn open(url: &str) -> Result<Self> {
            use sqlx::Connection as _;
            sqlx::any::install_default_drivers();
            let mut conn = Connection::connect(url).await?;
            let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
                .fetch_one(&mut conn)
                .await?;
            Ok(Self {
                pid: pid.unsigned_abs(),
                conn,
            })
        }

        pub async fn close(self) {
            use sqlx::Connection as _;
            // Closed politely or dropped, the backend ends either way.
            let _ = self.conn.close().await;
        }
    }

    /// Drops, on the server at `url`, the schema a URL from
    /// [`fresh_postgres_url`] names, with everything in it.
    pub async fn drop_schema_of(url: &str, fresh_url: &str) -> Result<()> {
        let Some((_, schema)) = fresh_url.rsplit_once(SCHEMA_OPTION) else {
            return Ok(());
        };
        assert!(
            schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "a schema fresh_postgres_url made"
        );
        sqlx::any::install_default_drivers();
        let admin = AnyPool::connect(url).await?;
        // Without the notice that lists every table the cascade drops,
        // which the driver would log at the end of every benchmark.
        let drop =
            format!("SET client_min_messages = warning; DROP SCHEMA IF EXISTS {schema} CASCADE");
        admin.execute(drop.as_str()).await?;
        admin.close().await;
        Ok(())
    }
}

/// The most values a hand-built statement binds (a payment's ledger legs
/// and moves, webhook events, PostgreSQL's audit entries), all numbered
/// placeholders (`$n`, which both stores accept). Far below SQLite's limit
/// (32,766) because binding them costs the square of the count on SQLite:
/// sqlx finds each value's place by asking SQLite for the parameter's
/// name, which SQLite looks up by walking the statement's list of names.
/// [`insert_rows`] binds more (see [`INSERT_BINDS_MAX`]).
pub(crate) const BINDS_MAX: usize = 512;

/// The rows of `columns` values each that one hand-built statement may
/// insert, within [`BINDS_MAX`].
pub(crate) const fn rows_per_statement(columns: usize) -> usize {
    BINDS_MAX / columns
}

/// The most values one [`insert_rows`] statement binds, so that a bulk
/// import sends a few large statements instead of many small ones. On
/// SQLite it writes anonymous `?` placeholders: sqlx binds those in order
/// without asking for a name, so binding costs the count, not its square.
/// Below SQLite's limit of 32,766 and PostgreSQL's of 65,535.
const INSERT_BINDS_MAX: usize = 8_192;

/// A query of the `Any` driver, as [`insert_rows`] hands it to its binder.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Inserts `rows` with `insert` (`INSERT INTO t (a, b) VALUES`, with no
/// placeholder of its own), a value for each of its columns bound by
/// `bind`, as many rows a statement as [`INSERT_BINDS_MAX`] allows.
pub(crate) async fn insert_rows<T: Sync>(
    conn: &mut Connection,
    insert: &str,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q> + Send,
) -> Result<()> {
    // sqlx counts anonymous placeholders apart from numbered ones, so the
    // two never meet in one statement.
    assert!(
        insert.trim_end().ends_with("VALUES") && !insert.contains(['$', '?']),
        "{insert:?}: insert_rows writes every placeholder"
    );
    let columns = column_count(insert);
    let anonymous = !on_postgres(conn);
    for chunk in rows.chunks(INSERT_BINDS_MAX / columns) {
        let values = if anonymous {
            anonymous_placeholders(chunk.len(), columns)
        } else {
            numbered_placeholders(0, chunk.len(), columns)
        };
        let sql = format!("{insert} {values}");
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// How many columns `insert` (`INSERT INTO t (a, b) VALUES`) names.
fn column_count(insert: &str) -> usize {
    let names = insert
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(names, _)| names);
    let names = names.unwrap_or_else(|| panic!("no column list in {insert:?}"));
    names.split(',').count()
}

/// `rows` rows of `columns` placeholders for a multi-row `VALUES`, numbered
/// from `$1`: `($1, $2), ($3, $4)`. Hand-written because sqlx's query
/// builder writes `?` for the `Any` driver, which PostgreSQL refuses.
pub(crate) fn values_placeholders(rows: usize, columns: usize) -> String {
    values_placeholders_after(0, rows, columns)
}

/// `rows` rows of `columns` anonymous placeholders, `(?, ?), (?, ?)`: for
/// SQLite only (PostgreSQL refuses `?`), where sqlx binds them in order
/// with no lookup of a name, unlike `$n`.
fn anonymous_placeholders(rows: usize, columns: usize) -> String {
    assert!(rows >= 1 && columns >= 1 && rows * columns <= INSERT_BINDS_MAX);
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// [`values_placeholders`] numbered after the `first` binds a statement
/// has already: several `VALUES` lists in one statement.
pub(crate) fn values_placeholders_after(first: usize, rows: usize, columns: usize) -> String {
    assert!(
        first + rows * columns <= BINDS_MAX,
        "{first} binds and {rows} rows of {columns}"
    );
    numbered_placeholders(first, rows, columns)
}

/// `$n` placeholders for `rows` rows of `columns`, numbered after `first`.
fn numbered_placeholders(first: usize, rows: usize, columns: usize) -> String {
    assert!(rows >= 1 && columns >= 1 && first + rows * columns <= INSERT_BINDS_MAX);
    let row = |r: usize| {
        let cells: Vec<String> = (1..=columns)
            .map(|c| format!("${}", first + r * columns + c))
            .collect();
        format!("({})", cells.join(", "))
    };
    let all: Vec<String> = (0..rows).map(row).collect();
    all.join(", ")
}

pub mod ids {
    use super::StoreError;

    /// An identifier with a type prefix, such as `usr_019af3…`, made by
    /// [`time_ordered`].
    pub fn new(prefix: &str) -> Result<String, StoreError> {
        time_ordered(&format!("{prefix}_")).map_err(StoreError::Random)
    }

    /// `prefix`, the time ([`millis_hex`]), then 80 bits from the
    /// operating system's generator, so ids cannot be guessed. The
    /// generator's own error, for callers (the data keys' ids) that answer
    /// it with an error type of their own.
    pub fn time_ordered(prefix: &str) -> Result<String, getrandom::Error> {
        let mut random = [0u8; 10];
        getrandom::fill(&mut random)?;
        Ok(format!("{prefix}{}{}", millis_hex(), hex::encode(random)))
    }

    /// The milliseconds since the Unix epoch as 12 hex digits (48 bits,
    /// enough until the year 10889), to begin an id with. Ids made one
    /// after another then sort together, as UUIDv7's do (RFC 9562): a new
    /// row's key lands beside the last one's in each index on it, where a
    /// wholly random key lands on a page of its own, so that storing a
    /// million rows rewrites a million pages of each index. Hand-written
    /// rather than the `uuid` crate's v7, which panics when the generator
    /// fails; here that is an error the caller answers.
    fn millis_hex() -> String {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        format!("{:012x}", millis & 0xffff_ffff_ffff)
    }

    /// `bytes` random bytes in hex. The generator failing is an error the
    /// caller answers (503), never a panic and never a fallback: no id
    /// drawn from a weaker source would be safe.
    pub fn random_hex(bytes: usize) -> Result<String, StoreError> {
        assert!(bytes <= 64);
        let mut buf = [0u8; 64];
        let buf = &mut buf[..bytes];
        getrandom::fill(buf).map_err(StoreError::Random)?;
        Ok(hex::encode(buf))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn ids_made_later_sort_later_and_keep_their_length() {
            let first = super::new("usr").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
            let second = super::new("usr").unwrap();
            let twin = super::new("usr").unwrap();
            assert!(first < second, "{first} {second}");
            assert_ne!(second, twin);
            assert_eq!(first.len(), "usr_".len() + 32);
            assert!(first[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}
