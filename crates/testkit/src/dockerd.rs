//! A private, real `dockerd` per test (Debian `docker.io`; needs root). Tests run in parallel,
//! so each daemon gets its own bridge `avbt<N>` (10.214.N.1/24, created here; N claimed
//! atomically by creating the link), no iptables/masquerading (loopback-published ports work
//! through docker-proxy), and its own data and exec roots in `/tmp/avbd<N>` (short: containerd's
//! socket lives under the exec root and unix socket paths must stay under 108 bytes). Networks
//! a daemon creates (the installation's own bridge) take their subnets from 10.215.N.0/24, so
//! parallel daemons never hand out the same subnet to two host bridges.
//!
//! `stop()` / `start_again()` simulate an engine outage. Dropping the guard (also on panic)
//! force-removes every container, stops the daemon (SIGTERM, SIGKILL after 20 s), kills what it
//! left running under its directory (containerd, shims, proxies), unmounts everything below it
//! (dockerd bind-mounts its data root onto itself), deletes the bridge and the directory.
//! Fails, never skips, when it cannot start.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

static STARTED: AtomicU32 = AtomicU32::new(0);

pub struct TestDockerd {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub bridge: String,
    child: Option<Child>,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl TestDockerd {
    /// Claims a bridge, starts dockerd on it, waits for `/_ping`.
    pub fn start() -> TestDockerd {
        assert!(
            Path::new("/usr/sbin/dockerd").exists() || which("dockerd"),
            "dockerd is not installed (apt-get install docker.io; see deploy/install-deps.sh)"
        );
        let seed = std::process::id() + STARTED.fetch_add(1, Ordering::SeqCst) * 37;
        let mut claimed = None;
        let mut last_error = String::new();
        for i in 0..250 {
            let n = (seed + i) % 250 + 1;
            let bridge = format!("avbt{n}");
            match run("ip", &["link", "add", "name", &bridge, "type", "bridge"]) {
                Ok(()) => {
                    claimed = Some((n, bridge));
                    break;
                }
                Err(e) => last_error = e,
            }
        }
        let (n, bridge) =
            claimed.unwrap_or_else(|| panic!("no free bridge avbt1-250 ({last_error}); root?"));
        let dir = PathBuf::from(format!("/tmp/avbd{n}"));
        let mut daemon = TestDockerd {
            socket: dir.join("d.sock"),
            dir,
            bridge: bridge.clone(),
            child: None,
        };
        // From here on, Drop cleans up whatever happens.
        if let Err(e) = run(
            "ip",
            &["addr", "add", &format!("10.214.{n}.1/24"), "dev", &bridge],
        )
        .and_then(|()| run("ip", &["link", "set", &bridge, "up"]))
        {
            panic!("setting up bridge {bridge}: {e}");
        }
        // A directory of this number can only be a leftover of a killed run (the bridge was
        // free): clear it.
        daemon.sweep();
        let _ = std::fs::remove_dir_all(&daemon.dir);
        daemon.remove_network_bridges();
        std::fs::create_dir_all(&daemon.dir).expect("daemon directory");
        daemon.start_again();
        daemon
    }

    /// `unix:///tmp/avbdN/d.sock`
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Starts the daemon (again, after `stop`) and waits until it answers `/_ping`.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "dockerd already running");
        let _ = std::fs::remove_file(self.dir.join("d.pid"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("dockerd log");
        let started = Instant::now();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("x"))
            .arg("--pidfile")
            .arg(self.dir.join("d.pid"))
            .args(["--storage-driver", "overlay2", "--bridge", &self.bridge])
            .args(["--iptables=false", "--ip-masq=false"])
            .arg("--default-address-pool")
            .arg(format!("base={},size=28", self.network_pool()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        self.child = Some(child);
        while started.elapsed() < START_TIMEOUT {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!("dockerd exited ({status}) while starting:\n{}", self.log());
            }
            if self
                .request("GET", "/_ping")
                .is_ok_and(|(s, b)| s == 200 && b == "OK")
            {
                eprintln!(
                    "dockerd on {} ({}) ready in {:?}",
                    self.host(),
                    self.bridge,
                    started.elapsed()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dockerd not ready after {START_TIMEOUT:?}:\n{}", self.log());
    }

    /// SIGTERM, wait until it exits, unmount its data root: the engine is gone (the socket
    /// file too) until `start_again`.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("dockerd did not stop in {STOP_TIMEOUT:?}: SIGKILL");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = std::fs::remove_file(self.dir.join("d.pid"));
        let _ = Command::new("umount").arg(self.dir.join("data")).output();
    }

    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A plain HTTP/1.0 request over the socket (no chunking): status and body.
    fn request(&self, method: &str, path: &str) -> Result<(u16, String), String> {
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad response {response:?}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Ids of every container the daemon has (any state).
    pub fn container_ids(&self) -> Vec<String> {
        let Ok((200, body)) = self.request("GET", "/containers/json?all=1") else {
            return Vec::new();
        };
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect()
    }

    /// Kills processes still running from our directory (containerd, shims, docker-proxy
    /// after a SIGKILLed daemon) and unmounts everything below it, deepest first.
    fn sweep(&self) {
        let needle = self.dir.to_string_lossy().into_owned();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<i32>().ok())
                else {
                    continue;
                };
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if cmdline.contains(&format!("{needle}/")) && pid != std::process::id() as i32 {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| *m == needle || m.starts_with(&format!("{needle}/")))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let ok = Command::new("umount")
                .arg(mount)
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(mount).output();
            }
        }
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

impl TestDockerd {
    /// This daemon's number N (of its bridge `avbtN`).
    fn number(&self) -> u32 {
        self.bridge
            .trim_start_matches("avbt")
            .parse()
            .expect("bridge avbtN")
    }

    /// Where this daemon's own networks take their subnets.
    fn network_pool(&self) -> String {
        format!("10.215.{}.0/24", self.number())
    }

    /// Deletes the host bridges of networks the daemon created (they outlive it).
    fn remove_network_bridges(&self) {
        let Ok(out) = Command::new("ip")
            .args(["-o", "addr", "show", "to", &self.network_pool()])
            .output()
        else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = line.split_whitespace().nth(1) {
                let _ = run("ip", &["link", "del", name]);
            }
        }
    }
}

impl Drop for TestDockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            for id in self.container_ids() {
                let _ = self.request("DELETE", &format!("/containers/{id}?force=1&v=1"));
            }
        }
        self.stop();
        self.sweep();
        self.remove_network_bridges();
        let _ = run("ip", &["link", "del", &self.bridge]);
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("removing {}: {e}", self.dir.display());
        }
    }
}
