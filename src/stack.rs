//! The stack of a data folder — the Temporal dev server, the workers and the demo home that
//! `avb dev` runs — shared by every `avb mcp --transport stdio` of that folder. An IDE's MCP
//! config names only a command: the first stdio process with nothing to talk to starts the
//! stack (`avb dev --serve-stdio-clients`, no HTTP, in its own process group), later ones and a
//! running `avb dev` are used as they are, and a stack started for stdio clients stops once the
//! last of them has exited.
//!
//! Three files in the data folder decide it: `avb-dev.lock` (held by the process running the
//! stack, see [`crate::data_lock`]), `stack.json` (where that stack's Temporal listens, written
//! once it answers) and `stdio-clients.lock` (every stdio process holds it shared while it runs;
//! the stack holds it exclusively to stop, so a client that arrives then waits and starts a new
//! stack). Locks are the operating system's: a process killed any way lets go of them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Where a running stack's Temporal listens, and who runs it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StackInfo {
    pub pid: u32,
    pub temporal_address: String,
    /// The api of an `avb dev` (none for a stack run for stdio clients).
    pub http: Option<String>,
}

fn info_path(data_dir: &Path) -> PathBuf {
    data_dir.join("stack.json")
}

fn clients_path(data_dir: &Path) -> PathBuf {
    data_dir.join("stdio-clients.lock")
}

fn open_lock(path: &Path) -> anyhow::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Says, for the stdio clients of the folder, where the stack's Temporal listens (written by
/// the process that holds the folder, once Temporal answers), and takes it back at exit.
pub struct Published {
    path: PathBuf,
}

impl Published {
    pub fn write(data_dir: &Path, info: &StackInfo) -> anyhow::Result<Self> {
        let path = info_path(data_dir);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(info)?)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Held (shared) by a stdio client while it runs.
pub struct ClientHold {
    _file: File,
}

impl ClientHold {
    /// Waits while a stack is stopping (it holds the file exclusively), then holds it shared.
    pub async fn take(data_dir: &Path) -> anyhow::Result<Self> {
        let file = open_lock(&clients_path(data_dir))?;
        let file = tokio::task::spawn_blocking(move || file.lock_shared().map(|()| file))
            .await?
            .context("cannot hold stdio-clients.lock")?;
        Ok(Self { _file: file })
    }
}

/// The stack running on `data_dir`, if a process holds the folder: its `stack.json`, waited for
/// while the holder is still starting.
pub async fn running(data_dir: &Path) -> anyhow::Result<Option<StackInfo>> {
    if !crate::data_lock::is_held(data_dir) {
        return Ok(None);
    }
    let deadline = Instant::now() + STACK_START;
    loop {
        if let Ok(text) = std::fs::read_to_string(info_path(data_dir))
            && let Ok(info) = serde_json::from_str::<StackInfo>(&text)
        {
            return Ok(Some(info));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "a process holds the data folder {} but its Temporal did not answer within {} s \
             (see {})",
            data_dir.display(),
            STACK_START.as_secs(),
            data_dir.join("logs/stack.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long a stack may take to answer (the dev server's first start creates its database).
const STACK_START: Duration = Duration::from_secs(90);

/// Starts the folder's stack for stdio clients (unless another client did so meanwhile) and
/// returns where its Temporal listens.
pub async fn start(data_dir: &Path) -> anyhow::Result<StackInfo> {
    // One starter at a time; the others wait and find the stack it started.
    let starting = open_lock(&data_dir.join("stack-start.lock"))?;
    let starting = tokio::task::spawn_blocking(move || starting.lock().map(|()| starting))
        .await?
        .context("cannot hold stack-start.lock")?;
    if let Some(info) = running(data_dir).await? {
        return Ok(info);
    }
    let log_path = data_dir.join("logs/stack.log");
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let exe = std::env::current_exe().context("where is the avb program")?;
    let mut child = {
        use std::os::unix::process::CommandExt as _;
        std::process::Command::new(exe)
            .args(["dev", "--serve-stdio-clients"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: the IDE stopping one client's group leaves the stack to
            // the others; it stops itself when the last client has gone.
            .process_group(0)
            .spawn()
            .context("starting the stack (avb dev --serve-stdio-clients)")?
    };
    eprintln!(
        "avb: nothing serves {} yet; started its Temporal dev server and workers (pid {}, log {})",
        data_dir.display(),
        child.id(),
        log_path.display()
    );
    let deadline = Instant::now() + STACK_START;
    loop {
        if let Ok(text) = std::fs::read_to_string(info_path(data_dir))
            && let Ok(info) = serde_json::from_str::<StackInfo>(&text)
            && info.pid == child.id()
        {
            drop(starting);
            return Ok(info);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            anyhow::bail!(
                "the stack exited at start ({status}): {last} (see {})",
                log_path.display()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the stack did not answer within {} s (see {})",
            STACK_START.as_secs(),
            log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// For a stack run for stdio clients: resolves once no stdio client has held the folder for a
/// moment, and then keeps `stdio-clients.lock` exclusively (returned) until the stack has
/// stopped, so a client arriving meanwhile waits and starts a new stack instead of using this
/// one.
pub async fn no_clients_left(data_dir: &Path) -> anyhow::Result<File> {
    const GRACE: Duration = Duration::from_secs(2);
    let path = clients_path(data_dir);
    let mut idle_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let file = open_lock(&path)?;
        match file.try_lock() {
            Ok(()) => match idle_since {
                Some(t) if t.elapsed() >= GRACE => return Ok(file),
                Some(_) => {}
                None => idle_since = Some(Instant::now()),
            },
            Err(_) => idle_since = None,
        }
    }
}
