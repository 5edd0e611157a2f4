//! TLS for every outbound HTTP call: upstream MCP servers (Streamable HTTP and legacy SSE),
//! Home Assistant, provisioned servers. One crypto provider (rustls on ring) for the process,
//! and one trust store: the platform's roots (the OS certificate store, through
//! rustls-platform-verifier) plus the PEM bundle an operator names in `tls.ca_file`
//! (`AVB_CA_FILE`) for a private or corporate CA. `rediss://` connections trust the same.
//!
//! [`init`] runs once at start (the api and the workers call it with their config) and refuses
//! a CA file that cannot be read or holds no certificate; [`client_builder`] is where every
//! outbound reqwest client starts.

use std::path::Path;
use std::sync::OnceLock;

/// The extra roots of this process, set once by [`init`].
static EXTRA_ROOTS: OnceLock<Vec<reqwest::Certificate>> = OnceLock::new();
/// The same roots as PEM, for clients that take a bundle (redis).
static EXTRA_PEM: OnceLock<Vec<u8>> = OnceLock::new();
/// Debian's bundle of the platform's roots (package `ca-certificates`).
const PLATFORM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Installs the process's crypto provider (rustls needs exactly one; a second call is a no-op).
pub fn install_provider() {
    // Err means a provider is installed already: ours, from an earlier call.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Sets up TLS for this process: the provider, and the CA bundle at `ca_file` as extra roots.
/// The error names the setting and the file. A second call keeps the first call's roots.
pub fn init(ca_file: Option<&Path>) -> Result<(), String> {
    install_provider();
    let roots = match ca_file {
        Some(path) => {
            let (pem, roots) = read_bundle(path)?;
            let _ = EXTRA_PEM.set(pem);
            roots
        }
        None => Vec::new(),
    };
    if let Some(path) = ca_file {
        tracing::info!(ca_file = %path.display(), roots = roots.len(), "trusting extra CA roots");
    }
    let _ = EXTRA_ROOTS.set(roots);
    Ok(())
}

/// The bundle at `path` as read, and its certificates.
fn read_bundle(path: &Path) -> Result<(Vec<u8>, Vec<reqwest::Certificate>), String> {
    let what = || format!("tls.ca_file (AVB_CA_FILE) {}", path.display());
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", what()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{}: not a PEM certificate bundle: {e}", what()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", what()));
    }
    Ok((pem, certs))
}

/// An outbound call's error with what caused it, innermost last: "error sending request"
/// alone does not say that the certificate's issuer is unknown or the connection was refused.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their cause in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A reqwest client builder that speaks https with the process's trust store.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_provider();
    let extra = EXTRA_ROOTS.get().cloned().unwrap_or_default();
    reqwest::Client::builder().tls_certs_merge(extra)
}

/// A redis client for `url`: `rediss://` trusts the platform's roots and, when set, the
/// operator's CA bundle (as https does).
pub fn redis_client(url: &str) -> redis::RedisResult<redis::Client> {
    install_provider();
    match EXTRA_PEM.get() {
        Some(extra) if url.starts_with("rediss://") => {
            // The redis client takes one bundle, which replaces the platform's: give it both.
            let mut pem = std::fs::read(PLATFORM_BUNDLE).unwrap_or_default();
            pem.push(b'\n');
            pem.extend_from_slice(extra);
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(url, certs)
        }
        _ => redis::Client::open(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_refused_naming_the_setting() {
        let dir = std::env::temp_dir().join(format!("avb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let missing = dir.join("missing.pem");
        let e = read_bundle(&missing).expect_err("missing");
        assert!(
            e.contains("AVB_CA_FILE") && e.contains("missing.pem"),
            "{e}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = read_bundle(&empty).expect_err("empty");
        assert!(
            e.contains("no PEM certificate") || e.contains("not a PEM"),
            "{e}"
        );
    }
}
