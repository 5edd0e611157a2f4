//! `ProcessBackend`: replicas as local subprocesses (the embedded default when no container
//! engine is there).
//!
//! Each replica is the template's program in its own process group, listening on a free
//! port given as `PORT` (and `{port}` in its arguments) on `HOST` (`127.0.0.1`, or the address
//! `with_address` names, for installations on several machines). Its
//! environment is cleared (only `PATH`, `LANG` and the template's allowed keys pass) and carries
//! the labels as `AVB_MANAGED`, `AVB_TENANT`, `AVB_SERVER_ID`, `AVB_REPLICA`, `AVB_TEMPLATE`,
//! `AVB_SPEC_HASH`, `AVB_PORT`. The backend keeps no state of record: it finds its replicas by
//! reading `/proc/<pid>/environ`, so a restarted worker still lists and removes the replicas an
//! earlier one started (like containers, they outlive the worker). Limits (memory, cpus, pids)
//! are not enforced here; use a container engine for that.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::backend::{ContainerBackend, sort_replicas};
use crate::error::ProvisionError;
use crate::spec::{
    LABEL_HOST, LABEL_INSTANCE, LABEL_MANAGED, LABEL_REPLICA, LABEL_SERVER_ID, LABEL_SPEC_HASH,
    LABEL_TEMPLATE, LABEL_TENANT, ListFilter, ManagedReplica, PORT_ENV, ReplicaHandle,
    ReplicaState, ServerSpec, replica_name, replica_url,
};

/// The port the process listens on, recorded in its environment.
const PORT_LABEL_ENV: &str = "AVB_PORT";

/// `avb.server_id` → `AVB_SERVER_ID`
fn label_env(label: &str) -> String {
    label.replace('.', "_").to_ascii_uppercase()
}

pub struct ProcessBackend {
    /// Image reference → local program, for templates without a `command`.
    programs: HashMap<String, PathBuf>,
    log_dir: Option<PathBuf>,
    stop_timeout: Duration,
    /// Children this instance spawned (by pid), kept to reap them and to report how they ended.
    children: Mutex<HashMap<u32, Tracked>>,
    /// Children of this instance that failed (ended with a non-zero code or a signal other
    /// than SIGTERM/SIGKILL), by server and replica: `replica_status` and `list_managed` report
    /// them as exited with their code until they are removed or created again.
    exited: Mutex<HashMap<(String, u32), ManagedReplica>>,
    /// One create at a time: the check-then-spawn of a replica name must not race.
    create_lock: tokio::sync::Mutex<()>,
    /// `AVB_INSTANCE` of the processes it starts and the only ones it sees.
    instance: Option<String>,
    /// The address replicas listen on (`HOST`) and are reached at (default `127.0.0.1`).
    address: String,
    /// `AVB_HOST` of the processes it starts; it sees only those with it (or without any, as
    /// replicas started before hosts were named).
    host: Option<String>,
}

impl Default for ProcessBackend {
    fn default() -> Self {
        Self::new()
    }
}

struct Tracked {
    child: tokio::process::Child,
    replica: ManagedReplica,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A managed process found in `/proc`.
#[derive(Debug, Clone)]
struct Found {
    pid: u32,
    ppid: u32,
    /// The `AVB_*` variables of its environment.
    labels: HashMap<String, String>,
}

impl Found {
    fn label(&self, label: &str) -> Option<&str> {
        self.labels.get(&label_env(label)).map(String::as_str)
    }

    fn to_managed(&self) -> Option<ManagedReplica> {
        let server_id = self.label(LABEL_SERVER_ID)?.to_string();
        let replica: u32 = self.label(LABEL_REPLICA)?.parse().ok()?;
        Some(ManagedReplica {
            name: replica_name(&server_id, replica),
            server_id,
            tenant: self.label(LABEL_TENANT)?.to_string(),
            replica,
            template: self.label(LABEL_TEMPLATE).unwrap_or_default().to_string(),
            id: self.pid.to_string(),
            state: ReplicaState::Running,
            exit_code: None,
            host_port: self.labels.get(PORT_LABEL_ENV).and_then(|p| p.parse().ok()),
        })
    }
}

impl ProcessBackend {
    pub fn new() -> Self {
        Self {
            programs: HashMap::new(),
            log_dir: None,
            stop_timeout: Duration::from_secs(5),
            children: Mutex::new(HashMap::new()),
            exited: Mutex::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
            instance: None,
            address: "127.0.0.1".into(),
            host: None,
        }
    }

    /// Replicas listen on `address` (their `HOST`) and are reached there: an address of this
    /// host that other hosts reach, for installations on several machines.
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// Starts processes with `AVB_INSTANCE=<instance>` and sees only processes that have it.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Starts processes with `AVB_HOST=<host>` and leaves those of other hosts alone.
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Whether a found process belongs to this backend: its installation, and its host or none.
    fn sees(&self, f: &Found) -> bool {
        self.instance
            .as_deref()
            .is_none_or(|i| f.label(LABEL_INSTANCE) == Some(i))
            && self
                .host
                .as_deref()
                .is_none_or(|h| f.label(LABEL_HOST).is_none_or(|l| l == h))
    }

    /// Runs `program` for templates whose image is `image` (and that have no `command`).
    pub fn with_program(mut self, image: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        self.programs.insert(image.into(), program.into());
        self
    }

    /// Appends each replica's stdout and stderr to `<dir>/avb-<server_id>-<replica>.log`
    /// (default: discarded).
    pub fn with_log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// How long a replica gets between SIGTERM and SIGKILL (default 5 s).
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Managed processes (`AVB_MANAGED=true` in their environment), without the processes
    /// they started themselves (which inherit the variables).
    async fn scan() -> Result<Vec<Found>, ProvisionError> {
        let found = tokio::task::spawn_blocking(scan_proc)
            .await
            .map_err(|e| ProvisionError::io("scanning /proc", std::io::Error::other(e)))??;
        let key = |f: &Found| {
            (
                f.label(LABEL_SERVER_ID).map(str::to_string),
                f.label(LABEL_REPLICA).map(str::to_string),
            )
        };
        let by_pid: HashMap<u32, &Found> = found.iter().map(|f| (f.pid, f)).collect();
        Ok(found
            .iter()
            .filter(|f| {
                by_pid
                    .get(&f.ppid)
                    .is_none_or(|parent| key(parent) != key(f))
            })
            .cloned()
            .collect())
    }

    /// Moves children that ended on their own to `exited`.
    fn reap(&self) {
        let mut children = lock(&self.children);
        let mut ended = Vec::new();
        children.retain(|_, tracked| match tracked.child.try_wait() {
            Ok(None) => true,
            // Ended cleanly or by SIGTERM/SIGKILL: most likely removed (by another backend
            // instance, e.g. a restarted worker); only failures are worth reporting.
            Ok(Some(status)) if status.success() || stopped_by_signal(status) => false,
            Ok(Some(status)) => {
                let code = status
                    .code()
                    .map(i64::from)
                    .or_else(|| status.signal().map(|s| 128 + i64::from(s)));
                ended.push(ManagedReplica {
                    state: ReplicaState::Exited,
                    exit_code: code,
                    ..tracked.replica.clone()
                });
                false
            }
            Err(_) => false,
        });
        drop(children);
        let mut exited = lock(&self.exited);
        for r in ended {
            tracing::info!(
                replica = %r.name,
                pid = %r.id,
                code = ?r.exit_code,
                "process replica exited"
            );
            exited.insert((r.server_id.clone(), r.replica), r);
        }
    }

    async fn find(&self, server_id: &str, replica: u32) -> Result<Vec<Found>, ProvisionError> {
        let replica = replica.to_string();
        let found = Self::scan().await?;
        // After the scan: a child that ended meanwhile is then in `exited`, not missing.
        self.reap();
        Ok(found
            .into_iter()
            .filter(|f| {
                self.sees(f)
                    && f.label(LABEL_SERVER_ID) == Some(server_id)
                    && f.label(LABEL_REPLICA) == Some(replica.as_str())
            })
            .collect())
    }

    fn program_for(&self, spec: &ServerSpec, port: u16) -> Result<Vec<String>, ProvisionError> {
        let t = &spec.template;
        let mut argv = if !t.command.is_empty() {
            spec.command_for_port(port)
        } else if let Some(program) = self.programs.get(&t.image) {
            vec![program.to_string_lossy().into_owned()]
        } else {
            return Err(ProvisionError::Invalid(format!(
                "the process backend cannot run template {}: it has no command and no local \
                 program is configured for image {:?}",
                t.name, t.image
            )));
        };
        argv.extend(spec.args_for_port(port));
        Ok(argv)
    }

    fn log_file(&self, name: &str) -> Result<(Stdio, Stdio), ProvisionError> {
        let Some(dir) = &self.log_dir else {
            return Ok((Stdio::null(), Stdio::null()));
        };
        let path = dir.join(format!("{name}.log"));
        std::fs::create_dir_all(dir)
            .map_err(|e| ProvisionError::io(format!("creating {}", dir.display()), e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ProvisionError::io(format!("opening {}", path.display()), e))?;
        let err = file
            .try_clone()
            .map_err(|e| ProvisionError::io(format!("opening {}", path.display()), e))?;
        Ok((Stdio::from(file), Stdio::from(err)))
    }

    async fn spawn(
        &self,
        spec: &ServerSpec,
        replica: u32,
    ) -> Result<ReplicaHandle, ProvisionError> {
        let port = free_port(&self.address)?;
        let argv = self.program_for(spec, port)?;
        let name = replica_name(&spec.server_id, replica);
        let (stdout, stderr) = self.log_file(&name)?;
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(
                ["PATH", "LANG", "LC_ALL"]
                    .into_iter()
                    .filter_map(|k| std::env::var(k).ok().map(|v| (k, v))),
            )
            .envs(&spec.env)
            .env(PORT_ENV, port.to_string())
            .env("HOST", &self.address)
            .env(PORT_LABEL_ENV, port.to_string())
            .envs(
                spec.labels(replica)
                    .into_iter()
                    .chain(
                        self.instance
                            .clone()
                            .map(|i| (LABEL_INSTANCE.to_string(), i)),
                    )
                    .chain(self.host.clone().map(|h| (LABEL_HOST.to_string(), h)))
                    .map(|(k, v)| (label_env(&k), v)),
            )
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| ProvisionError::Spawn {
            program: argv[0].clone(),
            retryable: !matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            message: e.to_string(),
        })?;
        let pid = child.id().ok_or_else(|| ProvisionError::Spawn {
            program: argv[0].clone(),
            message: "exited at once".into(),
            retryable: true,
        })?;
        let tracked = Tracked {
            child,
            replica: ManagedReplica {
                server_id: spec.server_id.clone(),
                tenant: spec.tenant.clone(),
                replica,
                template: spec.template.name.clone(),
                id: pid.to_string(),
                name: name.clone(),
                state: ReplicaState::Running,
                exit_code: None,
                host_port: Some(port),
            },
        };
        lock(&self.children).insert(pid, tracked);
        lock(&self.exited).remove(&(spec.server_id.clone(), replica));
        tracing::info!(replica = %name, pid, port, program = %argv[0], "started process replica");
        Ok(ReplicaHandle {
            server_id: spec.server_id.clone(),
            replica,
            id: pid.to_string(),
            host_port: port,
            url: replica_url(&self.address, port, &spec.template.transport),
        })
    }

    /// SIGTERM to the process group, SIGKILL after the stop timeout; returns when it is gone.
    async fn stop(&self, pid: u32) -> Result<(), ProvisionError> {
        let group = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        for (signal, wait) in [
            (Signal::SIGTERM, self.stop_timeout),
            (Signal::SIGKILL, Duration::from_secs(5)),
        ] {
            match killpg(group, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => {
                    return Err(ProvisionError::io(
                        format!("sending {signal} to process group {pid}"),
                        std::io::Error::from(e),
                    ));
                }
            }
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                if self.gone(pid) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if self.gone(pid) {
            Ok(())
        } else {
            Err(ProvisionError::io(
                format!("process {pid} survived SIGKILL"),
                std::io::Error::other("still running"),
            ))
        }
    }

    /// Exited (reaped when it is our child) or a zombie of someone else.
    fn gone(&self, pid: u32) -> bool {
        let mut children = lock(&self.children);
        if let Some(tracked) = children.get_mut(&pid) {
            return match tracked.child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    children.remove(&pid);
                    true
                }
                Ok(None) => false,
            };
        }
        drop(children);
        match read_stat(pid) {
            Some((state, _)) => state == 'Z' || state == 'X',
            None => true,
        }
    }
}

#[async_trait]
impl ContainerBackend for ProcessBackend {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn host_local(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), ProvisionError> {
        Ok(())
    }

    async fn create_replica(
        &self,
        spec: &ServerSpec,
        replica: u32,
    ) -> Result<ReplicaHandle, ProvisionError> {
        spec.check_replica(replica)?;
        // Resolve the program before touching anything (a bad template changes nothing).
        self.program_for(spec, 0)?;
        let _guard = self.create_lock.lock().await;
        let name = replica_name(&spec.server_id, replica);
        let hash = spec.spec_hash();
        for existing in self.find(&spec.server_id, replica).await? {
            if existing.label(LABEL_TENANT) != Some(spec.tenant.as_str())
                || existing.label(LABEL_MANAGED) != Some("true")
            {
                return Err(ProvisionError::NameConflict {
                    name,
                    owner: format!(
                        "process {} of tenant {:?}",
                        existing.pid,
                        existing.label(LABEL_TENANT).unwrap_or("?")
                    ),
                });
            }
            let port = existing
                .labels
                .get(PORT_LABEL_ENV)
                .and_then(|p| p.parse::<u16>().ok());
            match port {
                Some(port) if existing.label(LABEL_SPEC_HASH) == Some(hash.as_str()) => {
                    return Ok(ReplicaHandle {
                        server_id: spec.server_id.clone(),
                        replica,
                        id: existing.pid.to_string(),
                        host_port: port,
                        url: replica_url(&self.address, port, &spec.template.transport),
                    });
                }
                _ => {
                    tracing::info!(
                        replica = %name,
                        pid = existing.pid,
                        "replacing a replica started from another spec"
                    );
                    self.stop(existing.pid).await?;
                }
            }
        }
        self.spawn(spec, replica).await
    }

    async fn remove_replica(&self, server_id: &str, replica: u32) -> Result<(), ProvisionError> {
        let mut pids: Vec<u32> = self
            .find(server_id, replica)
            .await?
            .iter()
            .map(|f| f.pid)
            .collect();
        // Also a child of ours so new that the scan could not see its labels yet.
        for (pid, tracked) in lock(&self.children).iter() {
            let r = &tracked.replica;
            if r.server_id == server_id && r.replica == replica && !pids.contains(pid) {
                pids.push(*pid);
            }
        }
        for pid in pids {
            self.stop(pid).await?;
        }
        lock(&self.exited).remove(&(server_id.to_string(), replica));
        Ok(())
    }

    async fn replica_logs(
        &self,
        server_id: &str,
        replica: u32,
        tail: usize,
    ) -> Result<String, ProvisionError> {
        let Some(dir) = &self.log_dir else {
            return Ok(String::new());
        };
        let path = dir.join(format!("{}.log", replica_name(server_id, replica)));
        let text = match tokio::fs::read(&path).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
            Err(e) => return Err(ProvisionError::io(format!("reading {}", path.display()), e)),
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut out = lines[lines.len().saturating_sub(tail)..].join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        Ok(out)
    }

    async fn list_managed(
        &self,
        filter: &ListFilter,
    ) -> Result<Vec<ManagedReplica>, ProvisionError> {
        let found = Self::scan().await?;
        self.reap();
        let mut out: Vec<ManagedReplica> = found
            .iter()
            .filter(|f| self.sees(f))
            .filter_map(Found::to_managed)
            .collect();
        // A child spawned a moment ago may not have exec'd yet: its /proc environ is still ours,
        // without the labels the scan looks for. Our own running children are listed anyway.
        for tracked in lock(&self.children).values() {
            let r = &tracked.replica;
            if !out
                .iter()
                .any(|o| o.server_id == r.server_id && o.replica == r.replica)
            {
                out.push(r.clone());
            }
        }
        for exited in lock(&self.exited).values() {
            if !out
                .iter()
                .any(|r| r.server_id == exited.server_id && r.replica == exited.replica)
            {
                out.push(exited.clone());
            }
        }
        out.retain(|r| filter.matches(&r.tenant, &r.server_id));
        sort_replicas(&mut out);
        Ok(out)
    }

    async fn replica_status(
        &self,
        server_id: &str,
        replica: u32,
    ) -> Result<Option<ManagedReplica>, ProvisionError> {
        let running = self
            .find(server_id, replica)
            .await?
            .iter()
            .find_map(Found::to_managed);
        Ok(running
            .or_else(|| {
                lock(&self.exited)
                    .get(&(server_id.to_string(), replica))
                    .cloned()
            })
            .or_else(|| {
                // A child of ours that is ending (its /proc entry no longer readable) but not
                // yet reapable: still there; the next look reports how it ended.
                lock(&self.children)
                    .values()
                    .find(|t| t.replica.server_id == server_id && t.replica.replica == replica)
                    .map(|t| t.replica.clone())
            }))
    }
}

/// Ended by SIGTERM or SIGKILL (what `remove_replica` sends).
fn stopped_by_signal(status: std::process::ExitStatus) -> bool {
    status
        .signal()
        .is_some_and(|s| s == Signal::SIGTERM as i32 || s == Signal::SIGKILL as i32)
}

/// A port free on `address` right now.
fn free_port(address: &str) -> Result<u16, ProvisionError> {
    std::net::TcpListener::bind((address, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ProvisionError::io(format!("finding a free port on {address}"), e))
}

/// State letter and parent pid from `/proc/<pid>/stat`.
fn read_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn scan_proc() -> Result<Vec<Found>, ProvisionError> {
    let proc_dir = Path::new("/proc");
    let entries = std::fs::read_dir(proc_dir)
        .map_err(|e| ProvisionError::io("listing /proc (the process backend needs Linux)", e))?;
    let managed = format!("{}=true", label_env(LABEL_MANAGED));
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go, and other users' are unreadable: skip what cannot be read.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        if !vars.contains(&managed.as_bytes()) {
            continue;
        }
        let Some((state, ppid)) = read_stat(pid) else {
            continue;
        };
        if state == 'Z' || state == 'X' {
            continue;
        }
        let labels = vars
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok())
            .filter(|v| v.starts_with("AVB_"))
            .filter_map(|v| v.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        found.push(Found { pid, ppid, labels });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_become_env_names() {
        assert_eq!(label_env(LABEL_SERVER_ID), "AVB_SERVER_ID");
        assert_eq!(label_env(LABEL_MANAGED), "AVB_MANAGED");
    }

    #[test]
    fn stat_of_self() {
        let (state, ppid) = read_stat(std::process::id()).expect("own stat");
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(ppid > 0);
    }
}
