//! A `redis-server` of a test (Debian `redis-server`): no persistence, on its own port.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A `redis-server` of one test: no persistence, on its own port, killed when dropped (also
/// when the test panics).
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// Serving TLS only, with a certificate of this CA (`rediss://`).
    tls_ca: Option<std::path::PathBuf>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[], None)
    }

    /// Serving only TLS (`rediss://localhost:PORT`), with `ca`'s server certificate; clients
    /// need not present one.
    pub fn start_tls(ca: &crate::tls::TestCa) -> Self {
        let cert = ca.server_cert_file().display().to_string();
        let key = ca.server_key_file().display().to_string();
        let ca_file = ca.ca_file().display().to_string();
        let tls = [
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca_file,
            "--tls-auth-clients",
            "no",
        ];
        Self::start_with(&tls, Some(ca.ca_file()))
    }

    fn start_with(tls: &[&str], tls_ca: Option<std::path::PathBuf>) -> Self {
        let port = free_port();
        let port_text = port.to_string();
        let port_args: Vec<&str> = if tls_ca.is_some() {
            vec!["--port", "0", "--tls-port", &port_text]
        } else {
            vec!["--port", &port_text]
        };
        let child = Command::new("redis-server")
            .args(&port_args)
            .args(tls)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian package redis-server; deploy/install-deps.sh)");
        let server = Self {
            child: Some(child),
            port,
            tls_ca,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn url(&self) -> String {
        match self.tls_ca {
            Some(_) => format!("rediss://localhost:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `redis-cli ARGS…` against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(ca) = &self.tls_ca {
            command.args(["--tls", "--cacert"]).arg(ca);
        }
        let out = command.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
