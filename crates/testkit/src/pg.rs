//! A real PostgreSQL server per test: `initdb` into a temp dir (a copy of the first test's
//! `initdb`, cached in the system temp dir), `postgres` on a free port with its socket in that dir, a
//! fresh database, SIGTERM (then kill) when dropped. As root it runs as
//! the `postgres` user the Debian package creates. Fails, never skips, when it cannot start.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

use sqlx::{AnyConnection, Connection, Executor};

const DATABASE: &str = "avb_test";
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PgServer {
    /// `postgres://postgres@127.0.0.1:PORT/avb_test`
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

/// Who runs initdb and postgres: the current user, or `postgres` when we are root.
#[derive(Clone, Copy)]
struct RunAs(Option<(u32, u32)>);

impl RunAs {
    fn detect() -> RunAs {
        if command_output("id", &["-u"]) != "0" {
            return RunAs(None);
        }
        let id = |flag: &str| {
            let out = command_output("id", &[flag, "postgres"]);
            out.parse::<u32>().unwrap_or_else(|_| {
                panic!(
                    "running as root and there is no `postgres` user to run PostgreSQL as \
                     (`id {flag} postgres` said {out:?}); run ./deploy/install-deps.sh"
                )
            })
        };
        RunAs(Some((id("-u"), id("-g"))))
    }

    fn command(self, program: &Path, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir).env_remove("PGDATA");
        if let Some((uid, gid)) = self.0 {
            // The equivalent of `runuser -u postgres --`, but the child is postgres itself, so
            // the PID we signal is the server's.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn own(self, path: &Path) {
        if let Some((uid, gid)) = self.0 {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
        }
    }
}

impl PgServer {
    pub async fn start() -> PgServer {
        let bin = bin_dir();
        let run_as = RunAs::detect();
        let dir = tempfile::Builder::new()
            .prefix("avb-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        run_as.own(dir.path());
        let data = dir.path().join("data");

        init_data_dir(&bin, run_as, dir.path(), &data);

        // A port freed just before use can be taken by a parallel test: try a few.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match try_start(&bin, run_as, dir.path(), &data).await {
                Ok((child, port)) => {
                    let mut server = PgServer {
                        url: format!("postgres://postgres@127.0.0.1:{port}/{DATABASE}"),
                        child,
                        dir,
                    };
                    server.create_database(port).await;
                    return server;
                }
                Err(why) => failures.push(why),
            }
        }
        panic!("PostgreSQL did not start:\n{}", failures.join("\n---\n"));
    }

    async fn create_database(&mut self, port: u16) {
        let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let mut conn = AnyConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("connect to {admin}: {e}"));
        conn.execute(&*format!("CREATE DATABASE {DATABASE}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {DATABASE}: {e}"));
        conn.close().await.ok();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

/// A fresh cluster in `data`: a copy of a cached `initdb` result (in the system temp dir), or `initdb`
/// itself the first time (about 2 s of mostly system time, per test otherwise).
fn init_data_dir(bin: &Path, run_as: RunAs, dir: &Path, data: &Path) {
    let version = bin
        .parent()
        .and_then(Path::file_name)
        .map_or_else(|| "custom".into(), |v| v.to_string_lossy().into_owned());
    let template = std::env::temp_dir().join(format!("avb-pg-template-{version}"));
    if template.join("PG_VERSION").is_file() {
        if copy_tree(&template, data).is_ok() {
            return;
        }
        let _ = std::fs::remove_dir_all(data);
    }
    let out = run_as
        .command(&bin.join("initdb"), dir)
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.join("initdb").display()));
    assert!(
        out.status.success(),
        "initdb failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Publish the template atomically; a parallel test may win the race (then ours goes).
    let staging = template.with_extension(format!("tmp{}", std::process::id()));
    if copy_tree(data, &staging).is_ok() && std::fs::rename(&staging, &template).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
}

/// `cp -a from to` (keeps owner and the 0700 mode PostgreSQL insists on).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("cp -a: {status}"))
}

/// Starts `postgres` on a free port and waits until it accepts connections.
async fn try_start(
    bin: &Path,
    run_as: RunAs,
    dir: &Path,
    data: &Path,
) -> Result<(Child, u16), String> {
    sqlx::any::install_default_drivers();
    let port = free_port();
    let log_path = dir.join("postgres.log");
    let log = File::create(&log_path).map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = run_as
        .command(&bin.join("postgres"), dir)
        .arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        // Throwaway data: skip the flushes.
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.join("postgres").display()))?;
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "postgres exited with {status} on port {port}:\n{log}"
            ));
        }
        match AnyConnection::connect(&admin).await {
            Ok(conn) => {
                conn.close().await.ok();
                return Ok((child, port));
            }
            Err(e) if started.elapsed() > START_TIMEOUT => {
                stop(&mut child);
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!(
                    "postgres did not accept connections on port {port} within {START_TIMEOUT:?} \
                     (last error: {e}):\n{log}"
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if !stop(&mut self.child) {
            eprintln!(
                "PostgreSQL did not stop on SIGTERM; its log:\n{}",
                self.log()
            );
        }
    }
}

/// SIGTERM (smart shutdown: waits for sessions to end) for up to 5 s, then SIGINT (fast
/// shutdown: ends them) for 5 s, then SIGKILL. `true` if it stopped on SIGTERM.
fn stop(child: &mut Child) -> bool {
    for (signal, patience) in [("-TERM", 5), ("-INT", 5)] {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(patience);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return signal == "-TERM";
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "PostgreSQL still running {patience} s after {signal}; its processes:\n{}",
            command_output("ps", &["-o", "pid,args", "--ppid", &child.id().to_string()])
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and `postgres` (or
/// `$AVB_PG_BIN`).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AVB_PG_BIN") {
        return PathBuf::from(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed: no {}/<version>/bin/initdb; run ./deploy/install-deps.sh \
             (Debian package `postgresql`) or set AVB_PG_BIN",
            root.display()
        ),
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
