//! ProcessBackend with this crate's `avb-demo-mcp` binary as the program.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use avb_provisioning::{
    ContainerBackend, ListFilter, McpClient, ProcessBackend, ProvisionError, ReplicaState,
    ServerSpec, TemplateSpec, Transport, list_tool_names, wait_replica_ready, wait_until_mcp_ready,
};
use serde_json::json;

const IMAGE: &str = "avb-demo-mcp:test";

fn demo_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_avb-demo-mcp"))
}

/// Tenants are unique per test process: tests (and parallel runs) see only their replicas.
fn tenant(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn spec(server_id: &str, tenant: &str, replicas: u32) -> ServerSpec {
    ServerSpec {
        server_id: server_id.into(),
        tenant: tenant.into(),
        template: TemplateSpec {
            name: "demo".into(),
            image: IMAGE.into(),
            command: vec![],
            args: vec![],
            container_port: 8000,
            transport: Transport::StreamableHttp {
                path: "/mcp".into(),
            },
            allowed_env: vec!["ECHO_PREFIX".into()],
            memory_mb: None,
            cpus: None,
            pids: None,
            cap_add: Vec::new(),
            writable_root: false,
        },
        env: BTreeMap::from([("ECHO_PREFIX".into(), "proc: ".into())]),
        replicas,
    }
}

/// Removes the tenant's replicas when the test ends, also when it panics.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let tenant = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let backend = ProcessBackend::new();
                for r in backend
                    .list_managed(&ListFilter::tenant(tenant))
                    .await
                    .unwrap_or_default()
                {
                    let _ = backend.remove_replica(&r.server_id, r.replica).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test]
async fn process_replicas_speak_mcp_and_are_found_and_removed_by_a_fresh_backend() {
    let tenant = tenant("proc-a");
    let _cleanup = Cleanup(tenant.clone());
    let backend = ProcessBackend::new().with_program(IMAGE, demo_binary());
    backend.ping().await.expect("ping");
    let server = format!("ps-{}", std::process::id());
    let spec = spec(&server, &tenant, 2);

    let mut handles = Vec::new();
    for replica in 0..2 {
        let handle = backend
            .create_replica(&spec, replica)
            .await
            .expect("create");
        wait_until_mcp_ready(&handle.url, Duration::from_secs(20))
            .await
            .expect("ready");
        let mut tools = list_tool_names(&handle.url, Duration::from_secs(5))
            .await
            .expect("tools/list");
        tools.sort();
        assert_eq!(tools, ["add", "echo"]);
        let mut client = McpClient::connect(&handle.url, Duration::from_secs(5))
            .await
            .expect("connect");
        let echoed = client
            .call_tool("echo", json!({"message": "hi"}))
            .await
            .expect("echo");
        assert_eq!(echoed["content"][0]["text"], "proc: hi", "{echoed}");
        client.close().await;
        handles.push(handle);
    }

    // Idempotent: the running replica is returned, not a second process.
    let again = backend
        .create_replica(&spec, 1)
        .await
        .expect("create again");
    assert_eq!(again, handles[1]);

    // A backend with no memory of them (a restarted worker) finds them by their environment.
    let fresh = ProcessBackend::new();
    let listed = fresh
        .list_managed(&ListFilter::tenant(&tenant))
        .await
        .expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (r, h) in listed.iter().zip(&handles) {
        assert_eq!(r.server_id, server);
        assert_eq!(r.replica, h.replica);
        assert_eq!(r.id, h.id);
        assert_eq!(r.host_port, Some(h.host_port));
        assert!(r.state.is_running());
        assert_eq!(r.template, "demo");
    }
    let status = fresh
        .replica_status(&server, 0)
        .await
        .expect("status")
        .expect("exists");
    assert_eq!(status.id, handles[0].id);

    fresh
        .remove_replica(&server, 0)
        .await
        .expect("remove by fresh backend");
    backend.remove_replica(&server, 1).await.expect("remove");
    for h in &handles {
        let pid: u32 = h.id.parse().expect("pid");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "process {pid} still runs: {stat}"
        );
    }
    assert!(
        backend
            .list_managed(&ListFilter::tenant(&tenant))
            .await
            .expect("list")
            .is_empty()
    );
    backend
        .remove_replica(&server, 0)
        .await
        .expect("remove twice");
    assert!(
        backend
            .replica_status(&server, 0)
            .await
            .expect("status")
            .is_none()
    );
}

#[tokio::test]
async fn changed_spec_replaces_the_process_and_remove_server_clears_all() {
    let tenant = tenant("proc-b");
    let _cleanup = Cleanup(tenant.clone());
    let backend = ProcessBackend::new().with_program(IMAGE, demo_binary());
    let server = format!("pr-{}", std::process::id());
    let spec = spec(&server, &tenant, 2);
    let first = backend.create_replica(&spec, 0).await.expect("create");
    let mut changed = spec.clone();
    changed.env.insert("ECHO_PREFIX".into(), "new: ".into());
    let second = backend.create_replica(&changed, 0).await.expect("replace");
    assert_ne!(first.id, second.id);
    wait_until_mcp_ready(&second.url, Duration::from_secs(20))
        .await
        .expect("ready");
    backend
        .create_replica(&changed, 1)
        .await
        .expect("replica 1");
    let listed = backend
        .list_managed(&ListFilter::server(&server))
        .await
        .expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].id, second.id);
    assert_eq!(
        backend.remove_server(&server).await.expect("remove server"),
        2
    );
    assert!(
        backend
            .list_managed(&ListFilter::server(&server))
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn bad_templates_fail_clearly_and_start_nothing() {
    let tenant = tenant("proc-c");
    let _cleanup = Cleanup(tenant.clone());
    let backend = ProcessBackend::new();
    let spec = spec("pc-x", &tenant, 1);
    let err = backend
        .create_replica(&spec, 0)
        .await
        .expect_err("no program for the image");
    assert!(matches!(err, ProvisionError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("avb-demo-mcp:test"), "{err}");

    let mut missing = spec.clone();
    missing.template.command = vec!["/nonexistent/avb-server".into()];
    let err = backend
        .create_replica(&missing, 0)
        .await
        .expect_err("program missing");
    assert!(matches!(err, ProvisionError::Spawn { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("/nonexistent/avb-server"), "{err}");
    assert!(
        backend
            .list_managed(&ListFilter::tenant(&tenant))
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn a_process_that_dies_at_start_is_reported_with_its_code_and_output() {
    let tenant = tenant("proc-d");
    let _cleanup = Cleanup(tenant.clone());
    let logs = tempfile::tempdir().expect("log dir");
    let backend = ProcessBackend::new()
        .with_program(IMAGE, demo_binary())
        .with_log_dir(logs.path());
    let server = format!("pd-{}", std::process::id());
    let mut spec = spec(&server, &tenant, 1);
    spec.template.args = vec!["--bogus".into()];
    let handle = backend.create_replica(&spec, 0).await.expect("spawned");
    let err = wait_replica_ready(&backend, &handle, Duration::from_secs(20))
        .await
        .expect_err("exits");
    assert!(
        matches!(
            err,
            ProvisionError::ReplicaExited {
                exit_code: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("unknown argument \"--bogus\""),
        "{err}"
    );
    let status = backend
        .replica_status(&server, 0)
        .await
        .expect("status")
        .expect("known to the backend that started it");
    assert_eq!(status.state, ReplicaState::Exited);
    assert_eq!(
        backend
            .list_managed(&ListFilter::server(&server))
            .await
            .expect("list"),
        vec![status]
    );
    backend.remove_replica(&server, 0).await.expect("remove");
    assert!(
        backend
            .replica_status(&server, 0)
            .await
            .expect("status")
            .is_none()
    );
    assert!(
        backend
            .list_managed(&ListFilter::server(&server))
            .await
            .expect("list")
            .is_empty()
    );
}
