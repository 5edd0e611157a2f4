//! https for tests: a CA made at test time with the `openssl` command (Debian `openssl`), a
//! server certificate it signs for `localhost` and `127.0.0.1`, and a TLS front that terminates
//! TLS on a loopback port and forwards the bytes to a plain loopback server. An upstream behind
//! it is what an https MCP server is to a client, with a CA nobody trusts unless told to.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

/// A CA and the server and client certificates it signed, in a temporary directory.
pub struct TestCa {
    dir: tempfile::TempDir,
}

/// `openssl` with `args` (split at spaces) in `dir`.
fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian openssl; deploy/install-deps.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a certificate `name`.pem that the CA in `dir` signed, with `extensions`.
fn issue(dir: &Path, name: &str, subject: &str, extensions: &str) {
    openssl(
        dir,
        &format!("req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr -subj {subject}"),
    );
    std::fs::write(dir.join(format!("{name}.ext")), extensions).expect("write extensions");
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {name}.pem \
             -days 2 -extfile {name}.ext"
        ),
    );
}

impl TestCa {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        openssl(
            d,
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
             -subj /CN=avb-test-CA -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign",
        );
        issue(
            d,
            "server",
            "/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        );
        // A client certificate of the same CA, for mTLS.
        issue(
            d,
            "client",
            "/CN=avb-test-client",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        );
        Self { dir }
    }

    /// The CA certificate (PEM): what `AVB_CA_FILE` names to trust it.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM, for `localhost` and `127.0.0.1`) and its key.
    pub fn server_cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// A client certificate this CA signed (mTLS), and its key.
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    pub fn client_key_file(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }

    fn server_config(&self, require_client_cert: bool) -> rustls::ServerConfig {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.dir.path().join("server.pem"))
                .expect("server.pem")
                .collect::<Result<_, _>>()
                .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(self.dir.path().join("server.key")).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(self.ca_file()).expect("ca.pem") {
                roots.add(ca.expect("CA certificate")).expect("root");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        builder
            .with_single_cert(certs, key)
            .expect("server certificate")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// TLS on its own loopback port in front of a plain server on `backend_port`; stops when
/// dropped.
pub struct TlsFront {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// In front of an HTTP/1.1 server: offers only `http/1.1` (ALPN), as a terminator that
    /// knows its backend would; a client able to speak HTTP/2 must not pick it here.
    pub async fn start(ca: &TestCa, backend_port: u16) -> Self {
        Self::start_with(ca, backend_port, false, &[b"http/1.1"]).await
    }

    /// In front of a gRPC (HTTP/2 cleartext) server, accepting only clients with a certificate
    /// of `ca` (mTLS); offers `h2`.
    pub async fn start_mtls(ca: &TestCa, backend_port: u16) -> Self {
        Self::start_with(ca, backend_port, true, &[b"h2", b"http/1.1"]).await
    }

    async fn start_with(ca: &TestCa, backend_port: u16, mtls: bool, alpn: &[&[u8]]) -> Self {
        let mut config = ca.server_config(mtls);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses our certificate ends its own connection here.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut backend) = TcpStream::connect(("127.0.0.1", backend_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
                });
            }
        });
        Self { port, task }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
