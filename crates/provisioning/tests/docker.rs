//! DockerBackend against a real dockerd (one private daemon per test, `avb_testkit::dockerd`)
//! with an image built from this crate's `avb-demo-mcp` binary (no registry).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use avb_provisioning::bollard::models::ContainerCreateBody;
use avb_provisioning::bollard::query_parameters::{
    CreateContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use avb_provisioning::{
    ContainerBackend, DockerBackend, DockerEndpoint, ListFilter, McpClient, ProvisionError,
    ReplicaHandle, ReplicaState, ServerSpec, TemplateSpec, Transport, build_image_from_binary,
    list_tool_names, wait_replica_ready, wait_until_mcp_ready,
};
use avb_testkit::dockerd::TestDockerd;
use serde_json::json;

const IMAGE: &str = "avb-demo-mcp:test";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn template(image: &str) -> TemplateSpec {
    TemplateSpec {
        name: "demo".into(),
        image: image.into(),
        command: vec![],
        args: vec!["--port".into(), "{port}".into()],
        container_port: 8000,
        transport: Transport::StreamableHttp {
            path: "/mcp".into(),
        },
        allowed_env: vec!["ECHO_PREFIX".into()],
        memory_mb: Some(64),
        cpus: Some(0.5),
        pids: Some(64),
        cap_add: Vec::new(),
        writable_root: false,
    }
}

fn spec(server_id: &str, tenant: &str, replicas: u32) -> ServerSpec {
    ServerSpec {
        server_id: server_id.into(),
        tenant: tenant.into(),
        template: template(IMAGE),
        env: BTreeMap::from([("ECHO_PREFIX".into(), "demo says: ".into())]),
        replicas,
    }
}

/// A daemon, a backend on it, and the demo image imported.
async fn setup() -> (TestDockerd, DockerBackend) {
    let daemon = TestDockerd::start();
    let backend = DockerBackend::new(DockerEndpoint::parse(&daemon.host()).expect("endpoint"));
    backend.ping().await.expect("ping");
    let started = Instant::now();
    let id = build_image_from_binary(
        &backend,
        Path::new(env!("CARGO_BIN_EXE_avb-demo-mcp")),
        IMAGE,
    )
    .await
    .expect("build image");
    eprintln!("image {IMAGE} ({id}) imported in {:?}", started.elapsed());
    (daemon, backend)
}

/// Ready, lists the demo tools, and calls them.
async fn assert_speaks_mcp(handle: &ReplicaHandle) {
    let started = Instant::now();
    let init = wait_until_mcp_ready(&handle.url, READY_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("replica {} not ready: {e}", handle.replica));
    eprintln!(
        "replica {} answered initialize after {:?}",
        handle.replica,
        started.elapsed()
    );
    assert_eq!(init["serverInfo"]["name"], "avb-demo-mcp", "{init}");
    let mut tools = list_tool_names(&handle.url, Duration::from_secs(5))
        .await
        .expect("tools/list");
    tools.sort();
    assert_eq!(tools, ["add", "echo"]);
    let mut client = McpClient::connect(&handle.url, Duration::from_secs(5))
        .await
        .expect("connect");
    let echoed = client
        .call_tool("echo", json!({"message": "hello"}))
        .await
        .expect("echo");
    assert_eq!(echoed["content"][0]["text"], "demo says: hello", "{echoed}");
    let sum = client
        .call_tool("add", json!({"a": 2, "b": 3}))
        .await
        .expect("add");
    assert_eq!(sum["content"][0]["text"], "5", "{sum}");
    client.close().await;
}

#[tokio::test]
async fn two_replicas_speak_mcp_and_leave_nothing_behind() {
    let (daemon, backend) = setup().await;
    let spec = spec("srv-two", "tenant-a", 2);

    let mut handles = Vec::new();
    for replica in 0..2 {
        let started = Instant::now();
        let handle = backend
            .create_replica(&spec, replica)
            .await
            .expect("create");
        eprintln!(
            "replica {replica} created+started in {:?}",
            started.elapsed()
        );
        assert_eq!(
            handle.url,
            format!("http://127.0.0.1:{}/mcp", handle.host_port)
        );
        handles.push(handle);
    }
    assert_ne!(handles[0].host_port, handles[1].host_port);
    for handle in &handles {
        assert_speaks_mcp(handle).await;
    }

    // Labels, limits, loopback publishing, init: as the engine sees them.
    let docker = backend.client().await.expect("client");
    for handle in &handles {
        let info = docker
            .inspect_container(&handle.id, None)
            .await
            .expect("inspect");
        assert_eq!(
            info.name.as_deref(),
            Some(format!("/avb-srv-two-{}", handle.replica).as_str())
        );
        let labels = info
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .expect("labels");
        assert_eq!(labels["avb.managed"], "true");
        assert_eq!(labels["avb.tenant"], "tenant-a");
        assert_eq!(labels["avb.server_id"], "srv-two");
        assert_eq!(labels["avb.replica"], handle.replica.to_string());
        assert_eq!(labels["avb.template"], "demo");
        assert_eq!(labels["avb.spec_hash"], spec.spec_hash());
        let env = info
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .expect("env");
        assert!(env.contains(&"PORT=8000".to_string()), "{env:?}");
        assert!(
            env.contains(&"ECHO_PREFIX=demo says: ".to_string()),
            "{env:?}"
        );
        let host = info.host_config.as_ref().expect("host config");
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.pids_limit, Some(64));
        assert_eq!(host.init, Some(true));
        // Hardened: no capabilities, no privilege gain, read-only root with an in-memory /tmp.
        assert_eq!(host.cap_drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert_eq!(host.cap_add, None);
        assert_eq!(
            host.security_opt.as_deref(),
            Some(&["no-new-privileges:true".to_string()][..])
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        // On the installation's own bridge, not Docker's default one.
        assert_eq!(
            host.network_mode.as_deref(),
            Some(backend.network_name().as_str())
        );
        assert!(
            host.tmpfs.as_ref().is_some_and(|t| t.contains_key("/tmp")),
            "{:?}",
            host.tmpfs
        );
        let binding = &info
            .network_settings
            .as_ref()
            .and_then(|n| n.ports.clone())
            .expect("ports")["8000/tcp"];
        let binding = &binding.as_ref().expect("8000/tcp published")[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            binding.host_port.as_deref(),
            Some(handle.host_port.to_string().as_str())
        );
    }

    let network = docker
        .inspect_network(&backend.network_name(), None)
        .await
        .expect("the installation's network exists");
    assert_eq!(network.driver.as_deref(), Some("bridge"));
    assert_eq!(
        network
            .labels
            .as_ref()
            .and_then(|l| l.get("avb.managed"))
            .map(String::as_str),
        Some("true")
    );

    let listed = backend
        .list_managed(&ListFilter::tenant("tenant-a"))
        .await
        .expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (r, handle) in listed.iter().zip(&handles) {
        assert_eq!(
            (r.server_id.as_str(), r.replica),
            ("srv-two", handle.replica)
        );
        assert_eq!(r.id, handle.id);
        assert_eq!(r.state, ReplicaState::Running);
        assert_eq!(r.host_port, Some(handle.host_port));
        assert_eq!(r.template, "demo");
        assert_eq!(r.name, format!("avb-srv-two-{}", handle.replica));
    }
    assert!(
        backend
            .list_managed(&ListFilter::tenant("tenant-b"))
            .await
            .expect("list")
            .is_empty()
    );
    let status = backend
        .replica_status("srv-two", 1)
        .await
        .expect("status")
        .expect("exists");
    assert!(status.state.is_running());
    assert_eq!(status.host_port, Some(handles[1].host_port));

    // Creating again is a no-op returning the same replica.
    let again = backend
        .create_replica(&spec, 0)
        .await
        .expect("create again");
    assert_eq!(again, handles[0]);

    for handle in &handles {
        let started = Instant::now();
        backend
            .remove_replica("srv-two", handle.replica)
            .await
            .expect("remove");
        eprintln!(
            "replica {} removed in {:?}",
            handle.replica,
            started.elapsed()
        );
    }
    assert!(
        backend
            .list_managed(&ListFilter::all())
            .await
            .expect("list")
            .is_empty()
    );
    assert!(daemon.container_ids().is_empty(), "containers left behind");
    // Removing again (a retried compensation) is fine.
    backend
        .remove_replica("srv-two", 0)
        .await
        .expect("remove twice");
    assert_eq!(
        backend
            .remove_server("srv-two")
            .await
            .expect("remove server"),
        0
    );
    assert!(
        backend
            .replica_status("srv-two", 0)
            .await
            .expect("status")
            .is_none()
    );
}

#[tokio::test]
async fn create_is_idempotent_replaces_stale_specs_and_refuses_foreign_names() {
    let (daemon, backend) = setup().await;
    let docker = backend.client().await.expect("client");
    let spec = spec("srv-idem", "tenant-a", 3);

    // A stopped replica is started again by a repeated create (same container).
    let first = backend.create_replica(&spec, 0).await.expect("create");
    docker
        .stop_container(
            &first.id,
            Some(StopContainerOptionsBuilder::default().t(5).build()),
        )
        .await
        .expect("stop");
    let stopped = backend
        .replica_status("srv-idem", 0)
        .await
        .expect("status")
        .expect("exists");
    assert_eq!(stopped.state, ReplicaState::Exited, "{stopped:?}");
    assert!(stopped.exit_code.is_some());
    let restarted = backend
        .create_replica(&spec, 0)
        .await
        .expect("create again");
    assert_eq!(restarted.id, first.id);
    wait_until_mcp_ready(&restarted.url, READY_TIMEOUT)
        .await
        .expect("ready after restart");

    // The same replica with another spec (env changed) replaces the leftover.
    let mut changed = spec.clone();
    changed.env.insert("ECHO_PREFIX".into(), "changed: ".into());
    let replaced = backend.create_replica(&changed, 0).await.expect("replace");
    assert_ne!(replaced.id, first.id);
    assert_eq!(daemon.container_ids(), vec![replaced.id.clone()]);

    // Another tenant's server with the same id, or an unmanaged container holding the name:
    // refused, untouched.
    let other_tenant = ServerSpec {
        tenant: "tenant-b".into(),
        ..spec.clone()
    };
    let err = backend
        .create_replica(&other_tenant, 0)
        .await
        .expect_err("name of another tenant's replica");
    assert!(matches!(err, ProvisionError::NameConflict { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("tenant \"tenant-a\""), "{err}");
    docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::default()
                    .name("avb-srv-idem-1")
                    .build(),
            ),
            ContainerCreateBody {
                image: Some(IMAGE.into()),
                ..Default::default()
            },
        )
        .await
        .expect("foreign container");
    let err = backend
        .create_replica(&spec, 1)
        .await
        .expect_err("unmanaged name");
    assert!(err.to_string().contains("does not manage"), "{err}");
    assert_eq!(daemon.container_ids().len(), 2);
    assert!(
        backend
            .replica_status("srv-idem", 1)
            .await
            .expect("status")
            .is_none(),
        "an unmanaged container is not a replica"
    );

    // Invalid requests create nothing.
    let err = backend
        .create_replica(&spec, 3)
        .await
        .expect_err("out of range");
    assert!(matches!(err, ProvisionError::Invalid(_)), "{err}");
    let mut forbidden = spec.clone();
    forbidden.env.insert("AWS_SECRET".into(), "x".into());
    let err = backend
        .create_replica(&forbidden, 2)
        .await
        .expect_err("env");
    assert!(err.to_string().contains("AWS_SECRET"), "{err}");
    assert_eq!(daemon.container_ids().len(), 2);

    // Compensation: every replica of the server goes; the foreign container stays.
    backend.create_replica(&spec, 2).await.expect("replica 2");
    assert_eq!(
        backend
            .remove_server("srv-idem")
            .await
            .expect("remove server"),
        2
    );
    assert!(
        backend
            .list_managed(&ListFilter::all())
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(daemon.container_ids().len(), 1);
}

#[tokio::test]
async fn unknown_image_is_a_non_retryable_error_naming_it() {
    let (daemon, backend) = setup().await;
    let mut spec = spec("srv-noimg", "tenant-a", 1);
    spec.template = template("avb-no-such-image:404");
    let err = backend
        .create_replica(&spec, 0)
        .await
        .expect_err("no such image");
    assert!(
        matches!(err, ProvisionError::ImageNotFound { .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(err.kind(), "ImageNotFound");
    assert!(err.to_string().contains("avb-no-such-image:404"), "{err}");
    assert!(daemon.container_ids().is_empty());
}

#[tokio::test]
async fn engine_outage_is_retryable_and_work_resumes_when_it_returns() {
    let (mut daemon, backend) = setup().await;
    let spec = spec("srv-outage", "tenant-a", 1);

    daemon.stop();
    let check = |err: ProvisionError, what: &str| {
        assert!(err.is_retryable(), "{what}: {err}");
        assert_eq!(err.kind(), "EngineUnavailable", "{what}: {err}");
        assert!(err.to_string().contains(&daemon.host()), "{what}: {err}");
    };
    check(backend.ping().await.expect_err("ping"), "ping");
    check(
        backend.create_replica(&spec, 0).await.expect_err("create"),
        "create",
    );
    check(
        backend
            .list_managed(&ListFilter::all())
            .await
            .expect_err("list"),
        "list",
    );
    check(
        backend
            .remove_replica("srv-outage", 0)
            .await
            .expect_err("remove"),
        "remove",
    );
    check(
        backend
            .replica_status("srv-outage", 0)
            .await
            .expect_err("status"),
        "status",
    );

    let started = Instant::now();
    daemon.start_again();
    eprintln!("engine back after {:?}", started.elapsed());
    // The same backend reconnects.
    backend.ping().await.expect("ping after restart");
    let handle = backend
        .create_replica(&spec, 0)
        .await
        .expect("create after restart");
    assert_speaks_mcp(&handle).await;
    backend
        .remove_replica("srv-outage", 0)
        .await
        .expect("remove");
    assert!(daemon.container_ids().is_empty());
}

#[tokio::test]
async fn a_replica_that_dies_at_start_fails_fast_with_its_output_and_leaves_nothing() {
    let (daemon, backend) = setup().await;

    // The entrypoint does not exist: tini (init) exits 127 at once.
    let mut spec = spec("srv-dies", "tenant-a", 1);
    spec.template.command = vec!["/nonexistent/server".into()];
    // Caught by create when it has exited already, else by the readiness wait (fast).
    let err = match backend.create_replica(&spec, 0).await {
        Err(e) => e,
        Ok(handle) => wait_replica_ready(&backend, &handle, READY_TIMEOUT)
            .await
            .expect_err("exits"),
    };
    assert!(
        matches!(
            err,
            ProvisionError::ReplicaExited {
                exit_code: Some(127),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("/nonexistent/server"), "{err}");
    // Compensation (the workflow's part) leaves nothing, whichever path caught it.
    backend.remove_server("srv-dies").await.expect("compensate");
    assert!(daemon.container_ids().is_empty());

    // The server rejects its arguments: caught by create (already exited) or by the readiness
    // wait (fails fast, well before its timeout), with the server's own message.
    spec.template.command = vec![];
    spec.template.args = vec!["--bogus".into()];
    let started = Instant::now();
    let err = match backend.create_replica(&spec, 0).await {
        Err(e) => e,
        Ok(handle) => wait_replica_ready(&backend, &handle, READY_TIMEOUT)
            .await
            .expect_err("exits"),
    };
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
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
    assert!(
        err.to_string().contains("unknown argument \"--bogus\""),
        "{err}"
    );
    backend.remove_server("srv-dies").await.expect("compensate");
    assert!(daemon.container_ids().is_empty());
}
