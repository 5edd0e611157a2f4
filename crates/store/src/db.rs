//! Connecting (SQLite file or PostgreSQL), migrations, and write transactions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::StoreError;

/// The repository's `migrations/`, embedded at build time. Migrations are expand/contract: a
/// migration only adds (tables, columns with defaults, indexes) and a later release removes what
/// no running release reads, so a binary one release older keeps working on the newer schema.
/// It therefore starts on a database whose newest migrations it does not know, instead of
/// refusing (which would stop a rolling deploy or a rollback); the ones it knows must match.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// How long a SQLite connection waits for another process's write lock before failing.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
const MAX_CONNECTIONS: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The migrations a database has, against the ones this binary embeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied: usize,
    pub known: usize,
    /// This binary's migrations the database lacks (applied at the next start).
    pub pending: Vec<i64>,
    /// Applied migrations this binary does not know: a newer release ran (expand/contract
    /// keeps this binary working).
    pub newer: Vec<i64>,
}

/// The database: a connection pool plus, on SQLite, the in-process writer lock. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// SQLite allows one writer at a time; queueing writers here (fairly) instead of in SQLite's
    /// busy handler (sleep and poll) keeps 50 concurrent holds fast. Other processes writing
    /// the same file are still handled by `busy_timeout`.
    write_lock: Option<Arc<Mutex<()>>>,
}

/// A write transaction: `BEGIN IMMEDIATE` (SQLite, under the writer lock) or `BEGIN`
/// (PostgreSQL). Dropped without `commit` it rolls back.
pub(crate) struct WriteTx {
    pub(crate) tx: Transaction<'static, Any>,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }

    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.tx.rollback().await?)
    }
}

/// Passes over the WAL switch and the migrations when concurrent starters race on a SQLite file.
const SQLITE_RACE_ATTEMPTS: u64 = 10;

/// Runs `op` until it succeeds, `lost_race` says its error is not another starter of the same
/// SQLite file getting there first, or `SQLITE_RACE_ATTEMPTS` passes are spent (backing off).
async fn retry_sqlite_race<T, E, Fut>(
    mut op: impl FnMut() -> Fut,
    lost_race: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if attempt < SQLITE_RACE_ATTEMPTS && lost_race(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            outcome => return outcome,
        }
    }
}

impl Store {
    /// The database of an installation: `database.url` (`DATABASE_URL`), or the SQLite file
    /// `$AVB_DATA_DIR/avb.db` (the data folder is created), migrations applied. What `avb serve`,
    /// the workers and `avb admin` open.
    pub async fn open(config: &avb_config::AvbConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StoreError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        Store::connect(&config.database_url()).await
    }

    /// Connects to `url` (`sqlite://PATH[?…]`, `sqlite::memory:`, `postgres://…`) and applies
    /// pending migrations. For SQLite the file and its parent directories are created
    /// (`mode=rwc` is added unless the URL names a mode) and the journal is switched to WAL.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let store = Self::connect_as_is(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Like [`connect`](Self::connect), without applying migrations: for looking at a database
    /// as it is (`avb doctor`).
    pub async fn connect_as_is(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let mut pool_options = AnyPoolOptions::new().max_connections(MAX_CONNECTIONS);
        let url = match backend {
            Backend::Postgres => url.to_owned(),
            Backend::Sqlite => {
                let target = SqliteTarget::parse(url);
                if target.in_memory {
                    // Each connection to `:memory:` is its own database: keep exactly one.
                    pool_options = pool_options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                } else {
                    target.create_parent_dir()?;
                }
                let url = target.url;
                if !target.in_memory {
                    // WAL is a property of the file; switching needs an exclusive lock that
                    // busy_timeout cannot wait for, so do it once, before the pool exists —
                    // and again when another starter held the file at that moment.
                    retry_sqlite_race(|| enable_wal(&url), is_sqlite_busy).await?;
                }
                pool_options = pool_options.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute(&*format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
                            .await?;
                        Ok(())
                    })
                });
                url
            }
        };
        let pool = pool_options.connect(&url).await?;
        Ok(Store {
            pool,
            backend,
            write_lock: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
        })
    }

    /// Which of this binary's migrations the database has, and which it has that this binary
    /// does not know (applied by a newer release).
    pub async fn migration_report(&self) -> Result<MigrationReport, StoreError> {
        use sqlx::Row as _;
        let applied: Vec<i64> = match sqlx::query(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(rows) => rows
                .iter()
                .map(|r| r.try_get::<i64, _>("version"))
                .collect::<Result<_, _>>()?,
            // No table: nothing was ever applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let known: Vec<i64> = migrator().iter().map(|m| m.version).collect();
        Ok(MigrationReport {
            pending: known
                .iter()
                .filter(|v| !applied.contains(v))
                .copied()
                .collect(),
            newer: applied
                .iter()
                .filter(|v| !known.contains(v))
                .copied()
                .collect(),
            applied: applied.len(),
            known: known.len(),
        })
    }

    /// Applies the embedded migrations that have not run yet (idempotent; PostgreSQL takes an
    /// advisory lock so concurrent starts are safe).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // SQLite has no migration lock: another process (or pool) starting at the same moment
        // may apply a migration first, and ours then fails on it (rolled back). The next pass
        // sees it applied; with several migrations and several starters that can take a few.
        let sqlite = self.backend == Backend::Sqlite;
        let migrator = migrator();
        retry_sqlite_race(|| migrator.run(&self.pool), |_| sqlite).await?;
        Ok(())
    }

    /// The URL of a SQLite database file at `path` (created on connect).
    pub fn sqlite_url(path: &Path) -> String {
        const ESCAPE: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#').add(b' ');
        let path = path.to_string_lossy();
        format!("sqlite://{}?mode=rwc", utf8_percent_encode(&path, ESCAPE))
    }

    /// "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// One round trip to the database (health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; pending calls fail. For orderly shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let Some(lock) = &self.write_lock else {
            return Ok(WriteTx {
                tx: self.pool.begin().await?,
                _writer: None,
            });
        };
        let writer = Arc::clone(lock).lock_owned().await;
        // busy_timeout covers other processes; a short retry covers the rare busy answer that
        // SQLite gives without waiting.
        let mut attempt = 0u64;
        loop {
            match self.pool.begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => {
                    return Ok(WriteTx {
                        tx,
                        _writer: Some(writer),
                    });
                }
                Err(e) if attempt < 5 && is_sqlite_busy(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn backend_of(url: &str) -> Result<Backend, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        // Never echo the URL: it may carry a password.
        let scheme = url.split_once(':').map_or("(none)", |(scheme, _)| scheme);
        Err(StoreError::Invalid(format!(
            "unsupported database URL scheme '{scheme}': use sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }
}

/// Switches the SQLite file at `url` to WAL journaling.
async fn enable_wal(url: &str) -> Result<(), sqlx::Error> {
    let options: AnyConnectOptions = url.parse()?;
    let mut conn = options.connect().await?;
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.close().await
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), including their extended codes.
fn is_sqlite_busy(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// A SQLite URL taken apart the way sqlx reads it: `sqlite:` or `sqlite://`, a percent-encoded
/// path, then `?` query parameters.
struct SqliteTarget {
    url: String,
    path: Option<PathBuf>,
    in_memory: bool,
}

impl SqliteTarget {
    fn parse(url: &str) -> SqliteTarget {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let params = || query.into_iter().flat_map(|q| q.split('&'));
        let in_memory =
            path.is_empty() || path == ":memory:" || params().any(|kv| kv == "mode=memory");
        let url = if in_memory || params().any(|kv| kv.starts_with("mode=")) {
            url.to_owned()
        } else if query.is_some() {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        let path = (!in_memory)
            .then(|| PathBuf::from(percent_decode_str(path).decode_utf8_lossy().into_owned()));
        SqliteTarget {
            url,
            path,
            in_memory,
        }
    }

    fn create_parent_dir(&self) -> Result<(), StoreError> {
        let Some(dir) = self.path.as_deref().and_then(Path::parent) else {
            return Ok(());
        };
        if dir.as_os_str().is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })
    }
}

/// Milliseconds since the Unix epoch: the store's timestamps.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `<kind>_` + 32 hex digits, time-ordered (UUIDv7) so ids break ties between equal timestamps.
pub(crate) fn new_id(kind: &str) -> String {
    format!("{kind}_{}", uuid::Uuid::now_v7().simple())
}

/// `limit` as a SQL LIMIT value.
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        let url = Store::sqlite_url(Path::new("/tmp/a dir/x?#%.db"));
        assert_eq!(url, "sqlite:///tmp/a%20dir/x%3F%23%25.db?mode=rwc");
        let target = SqliteTarget::parse(&url);
        assert_eq!(target.url, url);
        assert_eq!(
            target.path.as_deref(),
            Some(Path::new("/tmp/a dir/x?#%.db"))
        );

        let target = SqliteTarget::parse("sqlite://data/avb.db");
        assert_eq!(target.url, "sqlite://data/avb.db?mode=rwc");
        assert_eq!(target.path.as_deref(), Some(Path::new("data/avb.db")));
        assert_eq!(
            SqliteTarget::parse("sqlite:x.db?cache=shared").url,
            "sqlite:x.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            SqliteTarget::parse("sqlite:x.db?mode=ro").url,
            "sqlite:x.db?mode=ro"
        );
        assert!(SqliteTarget::parse("sqlite::memory:").in_memory);
    }

    /// A binary one release older starts on a database a newer release migrated (rolling
    /// deploys and rollbacks), while its own migrations are still checked.
    #[tokio::test]
    async fn an_older_binary_starts_on_a_newer_schema() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::connect(&Store::sqlite_url(&dir.path().join("avb.db")))
            .await
            .expect("migrated");
        sqlx::query(
            "INSERT INTO _sqlx_migrations \
             (version, description, success, checksum, execution_time) \
             VALUES (99991231000000, 'from a newer release', true, x'00', 1)",
        )
        .execute(&store.pool)
        .await
        .expect("a newer release's migration");
        store.migrate().await.expect("starts anyway");
        let again = Store::connect(&Store::sqlite_url(&dir.path().join("avb.db")))
            .await
            .expect("and reconnects");
        again.ping().await.expect("works");
        let report = again.migration_report().await.expect("report");
        assert_eq!(report.newer, vec![99_991_231_000_000]);
        assert!(report.pending.is_empty());
        assert_eq!(report.applied, report.known + 1);
    }

    #[tokio::test]
    async fn an_unmigrated_database_reports_every_migration_pending() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::connect_as_is(&Store::sqlite_url(&dir.path().join("avb.db")))
            .await
            .expect("opened as is");
        let report = store.migration_report().await.expect("report");
        assert_eq!(report.applied, 0);
        assert_eq!(report.pending.len(), report.known);
    }

    #[test]
    fn unsupported_scheme_is_named_without_the_url() {
        let e = backend_of("mysql://root:hunter2@db/x").expect_err("mysql is not supported");
        let msg = e.to_string();
        assert!(msg.contains("'mysql'") && !msg.contains("hunter2"), "{msg}");
    }
}
