//! What every request handler shares.

use std::sync::Arc;

use avb_artifacts::ArtifactStore;
use avb_config::AvbConfig;
use avb_workflows::speech::VoiceInfo;
use temporalio_client::Client;

use crate::metrics::Metrics;

/// When the component health was taken, and what it was.
pub type StatusSnapshot = (std::time::Instant, Vec<crate::health::ComponentHealth>);

#[derive(Clone)]
pub struct ApiState {
    pub temporal: Client,
    pub artifacts: ArtifactStore,
    pub config: Arc<AvbConfig>,
    pub voices: Arc<Vec<VoiceInfo>>,
    pub metrics: Metrics,
    /// Last component health, reused for a second so status calls stay on the fast path.
    pub status_cache: Arc<tokio::sync::Mutex<Option<StatusSnapshot>>>,
    /// Last `/readyz` dependency check, likewise: an open probe polled hard costs at most one
    /// check of the dependencies a second.
    pub ready_cache: Arc<tokio::sync::Mutex<Option<StatusSnapshot>>>,
    /// Tenants and API keys (and the ledger); `None` only when authentication is off.
    pub store: Option<avb_store::Store>,
    /// Rate limits per API key and tool (in-process, or Redis when `redis.url` is set).
    pub limiter: crate::ratelimit::RateLimiter,
    /// JWT bearer tokens of an OIDC issuer, when `[auth.oidc]` is set.
    pub oidc: Option<Arc<crate::oidc::OidcVerifier>>,
    /// Upstream MCP servers and the tools mounted from them (`[mcp_servers]`); `run` keeps
    /// the catalog current.
    pub upstreams: Arc<avb_upstream::UpstreamHub>,
    /// The durable tools, by family (`crate::registry`).
    pub tools: Arc<crate::jobs::durable::Registry>,
    /// Names of AgentVoiceBox's own tools (an upstream tool never shadows one).
    pub own_tools: Arc<std::collections::HashSet<String>>,
    /// Seals and opens the `requestState` of multi round-trip calls (a client's approval).
    pub request_state: Arc<rmcp::model::RequestStateCodec>,
    /// Open MCP sessions (both transports) and their owners.
    pub sessions: Arc<crate::mcp::sessions::SessionBook>,
    /// Sessions shared with the other replicas (Redis, when `REDIS_URL` is set).
    pub shared_sessions: Option<Arc<crate::mcp::shared_sessions::SharedSessions>>,
}

impl ApiState {
    pub fn new(temporal: Client, config: AvbConfig) -> anyhow::Result<Self> {
        check_build_features(&config)?;
        // Outbound https (upstream MCP servers) trusts the platform roots and AVB_CA_FILE.
        avb_tls::init(config.tls.ca_file.as_deref()).map_err(anyhow::Error::msg)?;
        let artifacts = match config.artifact_location() {
            // Bound by `with_store`, which every api gets before it serves.
            avb_config::ArtifactLocation::Database => ArtifactStore::unavailable(
                "artifacts are kept in the database, which this api has not opened",
            ),
            _ => ArtifactStore::configured(&config, None)?,
        };
        let voices = load_voice_catalog(&config.assets_dir().join("voices"))?;
        let metrics = Metrics::new()?;
        let limiter =
            crate::ratelimit::RateLimiter::new(&config.rate_limits, &config.redis, &metrics)?;
        let oidc = match &config.auth.oidc {
            Some(s) => Some(Arc::new(crate::oidc::OidcVerifier::new(
                s.clone(),
                crate::core::resource_metadata::resources(&config),
            )?)),
            None => None,
        };
        let tools = Arc::new(crate::registry::durable_tools());
        let own_tools = crate::mcp::own_tool_names(&tools);
        let upstreams = crate::upstream::hub_for(&config, own_tools.clone());
        let request_state = Arc::new(request_state_codec(&config)?);
        let shared_sessions = match &config.redis.url {
            Some(url) => Some(Arc::new(crate::mcp::shared_sessions::SharedSessions::new(
                url,
                std::time::Duration::from_secs(config.mcp.session_idle_secs),
            )?)),
            None => None,
        };
        Ok(Self {
            shared_sessions,
            request_state,
            sessions: Arc::default(),
            tools,
            own_tools: Arc::new(own_tools),
            upstreams,
            oidc,
            temporal,
            artifacts,
            config: Arc::new(config),
            voices: Arc::new(voices),
            metrics,
            status_cache: Arc::default(),
            ready_cache: Arc::default(),
            store: None,
            limiter,
        })
    }

    pub fn voice(&self, id: &str) -> Option<&VoiceInfo> {
        self.voices.iter().find(|v| v.id == id)
    }

    /// With the store that holds tenants and API keys.
    pub fn with_store(mut self, store: avb_store::Store) -> Self {
        if self.config.artifact_location() == avb_config::ArtifactLocation::Database {
            self.artifacts = ArtifactStore::in_database(store.clone());
        }
        self.store = Some(store);
        self
    }
}

/// Fails when the configuration asks for something this build left out.
pub fn check_build_features(config: &AvbConfig) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.mcp.conformance_fixtures || cfg!(feature = "conformance-fixtures"),
        "mcp.conformance_fixtures (AVB_MCP_CONFORMANCE_FIXTURES) is set, but this build of \
         avb-api lacks the `conformance-fixtures` cargo feature (test-only fixtures for the MCP \
         conformance suite); unset it, or build with `--features avb-api/conformance-fixtures`"
    );
    Ok(())
}

/// The voice catalog, from the voice files the TTS workers load (the api never loads the model).
pub fn load_voice_catalog(dir: &std::path::Path) -> anyhow::Result<Vec<VoiceInfo>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot read voices in {}: {e}; run `python3 deploy/fetch_assets.py`",
            dir.display()
        )
    })?;
    let mut voices: Vec<VoiceInfo> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "bin").then_some(())?;
            VoiceInfo::from_id(p.file_stem()?.to_str()?)
        })
        .collect();
    voices.sort_by(|a, b| a.id.cmp(&b.id));
    anyhow::ensure!(
        !voices.is_empty(),
        "no voices in {}; run `python3 deploy/fetch_assets.py`",
        dir.display()
    );
    Ok(voices)
}

/// The configured `requestState` key, else one of this process (said once: a retry must then
/// reach the same api process).
fn request_state_codec(config: &AvbConfig) -> anyhow::Result<rmcp::model::RequestStateCodec> {
    if let Some(key) = &config.mcp.request_state_key {
        return rmcp::model::RequestStateCodec::try_new(key.expose().as_bytes().to_vec())
            .map_err(|e| anyhow::anyhow!("mcp.request_state_key: {e}"));
    }
    if config.devices.approver == avb_config::Approver::Client {
        tracing::info!(
            "client approvals are sealed with a key of this api process; set \
             AVB_REQUEST_STATE_KEY (the same on every replica) when more than one api runs"
        );
    }
    let key: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| u.as_bytes().to_vec())
        .collect();
    rmcp::model::RequestStateCodec::try_new(key)
        .map_err(|e| anyhow::anyhow!("request state key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_fixtures_need_the_feature() {
        let mut config = AvbConfig::default();
        assert!(check_build_features(&config).is_ok());
        config.mcp.conformance_fixtures = true;
        let checked = check_build_features(&config);
        if cfg!(feature = "conformance-fixtures") {
            assert!(checked.is_ok(), "{checked:?}");
        } else {
            let e = checked.expect_err("fixtures without the feature");
            assert!(e.to_string().contains("`conformance-fixtures`"), "{e}");
        }
    }
}
