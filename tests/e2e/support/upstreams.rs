//! Real upstream MCP servers for the aggregator's tests: npm's reference servers
//! (`@modelcontextprotocol/server-everything`, `server-filesystem`), installed into the cache by
//! `deploy/upstream_servers.sh`, run on the machine's Node — over stdio (started by avb) or over
//! Streamable HTTP (started here, stoppable and restartable on the same port).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use avb_config::{UpstreamServer, UpstreamTransport};

pub use avb_testkit::system::{everything_js, node_modules};

pub fn filesystem_js() -> String {
    node_modules()
        .join("@modelcontextprotocol/server-filesystem/dist/index.js")
        .display()
        .to_string()
}

/// `[mcp_servers.x]` for server-everything over stdio.
pub fn everything_stdio() -> UpstreamServer {
    UpstreamServer {
        command: Some("node".into()),
        args: vec![everything_js(), "stdio".into()],
        ..UpstreamServer::default()
    }
}

/// `[mcp_servers.x]` for server-filesystem over stdio, serving `root`.
pub fn filesystem_stdio(root: &std::path::Path) -> UpstreamServer {
    UpstreamServer {
        command: Some("node".into()),
        args: vec![filesystem_js(), root.display().to_string()],
        ..UpstreamServer::default()
    }
}

/// server-everything over Streamable HTTP (or the legacy HTTP+SSE transport) on a fixed
/// loopback port; killed on drop.
pub struct EverythingHttp {
    pub port: u16,
    /// `streamableHttp` or `sse` (server-everything's own names).
    mode: &'static str,
    child: Option<Child>,
}

impl EverythingHttp {
    pub fn start() -> Self {
        Self::start_mode("streamableHttp")
    }

    /// Speaking only the legacy HTTP+SSE transport (GET /sse, POST /message).
    pub fn start_sse() -> Self {
        Self::start_mode("sse")
    }

    fn start_mode(mode: &'static str) -> Self {
        // A free port can be taken by a parallel test between choosing it and node binding it:
        // the first start tries a fresh port a few times; a restart must keep its port.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = avb_runtime::devserver::free_port().expect("port");
            let mut server = Self {
                port,
                mode,
                child: None,
            };
            match server.try_start() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("{last_error}");
    }

    pub fn url(&self) -> String {
        let path = if self.mode == "sse" { "sse" } else { "mcp" };
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// `[mcp_servers.x]` for this server.
    pub fn settings(&self) -> UpstreamServer {
        UpstreamServer {
            server_url: Some(self.url()),
            transport: (self.mode == "sse").then_some(UpstreamTransport::Sse),
            ..UpstreamServer::default()
        }
    }

    pub fn start_again(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("{e}");
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("node")
            .args([everything_js().as_str(), self.mode])
            .env("PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn node (Debian nodejs; deploy/install-deps.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Listening could be someone else on our port (taken while ours was down): ours must
            // still be running.
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() {
                self.child = None;
                return Err(format!(
                    "server-everything exited at start ({exited:?}): port {} taken?",
                    self.port
                ));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "server-everything did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for EverythingHttp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain TCP forwarder on a loopback port to `backend_port` that keeps every byte its clients
/// sent: what an upstream server receives, headers included.
pub struct RecordingProxy {
    pub port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    pub async fn start(backend_port: u16) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let Ok(backend) =
                        tokio::net::TcpStream::connect(("127.0.0.1", backend_port)).await
                    else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut backend_read, mut backend_write) = backend.into_split();
                    let upstream = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = client_read.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            if let Ok(mut r) = record.lock() {
                                r.extend_from_slice(&buf[..n]);
                            }
                            if backend_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = backend_write.shutdown().await;
                    };
                    let downstream = async {
                        let _ = tokio::io::copy(&mut backend_read, &mut client_write).await;
                        let _ = client_write.shutdown().await;
                    };
                    tokio::join!(upstream, downstream);
                });
            }
        });
        Self { port, seen, task }
    }

    /// Everything clients sent so far, as text.
    pub fn received(&self) -> String {
        let bytes = self.seen.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
