//! An S3-compatible object store of a test: moto's server (PyPI `moto[server]`, installed into
//! the tools venv by deploy/install-deps.sh), in memory, on its own loopback port, with one
//! bucket made at start. Put a [`crate::tls::TlsFront`] before it for https.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The credentials a test store accepts (moto accepts any; these are what clients sign with).
pub const ACCESS_KEY_ID: &str = "avb-test-access";
pub const SECRET_ACCESS_KEY: &str = "avb-test-secret";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    child: Child,
    pub port: u16,
    pub bucket: String,
}

/// `$AVB_CACHE_DIR/venv/bin/moto_server` (default cache `~/.cache/avb`).
fn moto_server() -> PathBuf {
    let cache = std::env::var_os("AVB_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/avb")
        });
    let bin = cache.join("venv/bin/moto_server");
    assert!(
        bin.exists(),
        "{} missing: run deploy/install-deps.sh (pip install moto[server])",
        bin.display()
    );
    bin
}

impl S3Server {
    /// A server with the bucket `bucket`, answering plain http on a free loopback port.
    pub fn start(bucket: &str) -> Self {
        let port = free_port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs");
        let server = Self {
            child,
            port,
            bucket: bucket.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = server.request("PUT", &format!("/{bucket}"));
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "create bucket: {status}"
        );
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The keys a test's object's are under, as S3 lists them (`GET /BUCKET?list-type=2`):
    /// what a test checks to see that artifacts really went to the bucket.
    pub fn keys(&self) -> Vec<String> {
        let body = self.request("GET", &format!("/{}?list-type=2", self.bucket));
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect()
    }

    /// One unsigned request (moto does not check signatures); the whole response as text.
    fn request(&self, method: &str, path: &str) -> String {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut response = String::new();
        conn.read_to_string(&mut response).expect("read");
        response
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
