//! What an outside security review found, one test per finding: each failed before its fix.
//! (More findings are open; the README's security notes say what holds today.)

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::TestSystem;
use crate::support::mcp::{args, session, tool_names};
use crate::support::upstreams::everything_js;

/// A stdio upstream runs with a cleared environment: PATH and its configured `env`, never the
/// api's secrets (here `AVB_API_KEY`), which any tenant could read through the upstream's own
/// tools (server-everything's `get-env`). The api is a child process, so the secret is really
/// in its environment; the upstream is on the fast path, so that process starts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_upstream_never_sees_the_apis_environment() {
    let system = TestSystem::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("avb.toml");
    std::fs::write(
        &config,
        format!(
            "[mcp_servers.everything]\ncommand = \"node\"\nargs = [{js:?}, \"stdio\"]\n\
             durable = false\nallowed_tools = [\"get-env\"]\n\
             [mcp_servers.everything.env]\nUPSTREAM_SETTING = \"configured-for-it\"\n",
            js = everything_js()
        ),
    )
    .expect("write config");
    let addr = format!("127.0.0.1:{}", avb_testkit::free_port());
    let config_path = config.display().to_string();
    let _api = system.spawn_avb(
        &["serve", "--http", &addr],
        &[
            ("AVB_CONFIG", config_path.as_str()),
            ("AVB_UPSTREAM_CHECK_SECS", "1"),
            ("AVB_API_KEY", "secret-probe-never-shown"),
        ],
    );
    let mcp = format!("http://{addr}/mcp");
    let http = reqwest::Client::new();
    let call = |name: &'static str| {
        let http = http.clone();
        let mcp = mcp.clone();
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": name, "arguments": {}, "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}}}});
            let response = http
                .post(&mcp)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", name)
                .json(&body)
                .send()
                .await
                .ok()?;
            Some(crate::support::mcp::rpc_response(response, &json!(1)).await)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer: Value = loop {
        if let Some(a) = call("everything_get-env").await
            && a["result"]["content"][0]["text"].is_string()
        {
            break a;
        }
        assert!(Instant::now() < deadline, "the upstream never answered");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let env = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(env.contains("PATH"), "{env}");
    assert!(
        env.contains("configured-for-it"),
        "its own env reaches it: {env}"
    );
    assert!(
        !env.contains("secret-probe-never-shown"),
        "the api's secret leaked: {env}"
    );
    system.stop().await;
}

/// A store with two tenants: `home` (whose home it is) and `other`, an AGENT key each and a
/// HUMAN key for `other`; tokens in that order.
async fn two_tenants(system: &TestSystem) -> (String, String, String) {
    let store = system.store.as_ref().expect("store");
    let mut tokens = Vec::new();
    for (tenant, role, label) in [
        ("home", avb_store::Role::Agent, "home's assistant"),
        ("other", avb_store::Role::Agent, "other's assistant"),
        ("other", avb_store::Role::Human, "other's operator"),
    ] {
        let t = match store.tenant_by_name(tenant).await.expect("lookup") {
            Some(t) => t,
            None => store.create_tenant(tenant).await.expect("tenant"),
        };
        store
            .grant(&t.id, 100, &format!("{tenant}-{label}"), "test")
            .await
            .expect("grant");
        let key = store.create_key(&t.id, role, label).await.expect("key");
        tokens.push(key.token);
    }
    (tokens[0].clone(), tokens[1].clone(), tokens[2].clone())
}

/// A home belongs to the tenants it names: another tenant's agent neither sees the device
/// tools nor reaches the devices, over MCP or REST, and its operator has nothing to approve.
/// (Before: any tenant's agent listed and switched the home.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_home_is_invisible_and_out_of_reach() {
    use crate::support::mcp::{call, keyed_session, text_of};
    use crate::support::mosquitto::Mosquitto;

    const PLUG: &str = "kitchen/coffee_plug";
    let broker = Mosquitto::start();
    let sim = avb_devices::sim::Simulator::demo("zigbee2mqtt");
    let _sim_task = sim.connect(&broker.url()).expect("simulator");
    let ha = avb_devices::ha_sim::HaSimulator::demo("ha-token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ha_url = format!("http://{}", listener.local_addr().expect("addr"));
    let _ha_task = ha.clone().serve(listener);
    let url = broker.url();
    let system = TestSystem::start_with(|c| {
        c.auth.required = true;
        c.devices.mqtt_url = Some(url);
        c.devices.home_assistant.url = Some(ha_url);
        c.devices.home_assistant.token = Some("ha-token".into());
        c.devices.zigbee2mqtt.tenants = avb_config::ServedTenants::new(["home"]);
        c.devices.home_assistant.tenants = avb_config::ServedTenants::new(["home"]);
    })
    .await;
    let (home, other, other_human) = two_tenants(&system).await;
    let device_tools = [
        "list_devices",
        "get_device_state",
        "smart_home_control",
        "call_service",
    ];

    // The home's tenant sees and uses it.
    let home_mcp = keyed_session(system.mcp_url(), &home).await;
    let names = tool_names(&home_mcp).await;
    for t in device_tools {
        assert!(
            names.iter().any(|n| n == t),
            "{t} missing for home: {names:?}"
        );
    }
    let r = call(&home_mcp, "list_devices", json!({})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));

    // The other tenant: no device tool listed, none callable, nothing reaches a device.
    for token in [&other, &other_human] {
        let mcp = keyed_session(system.mcp_url(), token).await;
        let names = tool_names(&mcp).await;
        for t in device_tools {
            assert!(
                !names.iter().any(|n| n == t),
                "{t} listed for other: {names:?}"
            );
        }
        for (tool, arguments) in [
            (
                "smart_home_control",
                json!({"action": "turn_off", "device": PLUG}),
            ),
            (
                "call_service",
                json!({"domain": "light", "service": "turn_off", "entity_id": "light.porch"}),
            ),
            ("list_devices", json!({})),
            ("get_device_state", json!({"device": "light.porch"})),
        ] {
            let answer = mcp
                .call_tool(
                    rmcp::model::CallToolRequestParams::new(tool).with_arguments(args(arguments)),
                )
                .await;
            let e = answer.expect_err("another tenant's home is no tool of its");
            assert!(e.to_string().contains("tool not found"), "{tool}: {e}");
        }
        let search = call(&mcp, "search_tools", json!({"query": "lights home device"})).await;
        for t in device_tools {
            assert!(
                !text_of(&search).contains(t),
                "{t} found: {}",
                text_of(&search)
            );
        }
    }
    let http = reqwest::Client::new();
    let base = system.base_url.clone();
    for (method, path, body) in [
        ("GET", "/api/v2/devices", None),
        ("GET", "/api/v2/devices/state?device=light.porch", None),
        (
            "POST",
            "/api/v2/devices/control",
            Some(json!({"action": "turn_off", "device": PLUG})),
        ),
        (
            "POST",
            "/api/v2/devices/services",
            Some(json!({"domain": "light", "service": "turn_off", "entity_id": "light.porch"})),
        ),
    ] {
        let mut req = http
            .request(method.parse().expect("method"), format!("{base}{path}"))
            .bearer_auth(&other);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req.send().await.expect("REST answers");
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sim.sets_received(PLUG),
        0,
        "another tenant's command reached the plug"
    );
    assert!(
        ha.calls()
            .iter()
            .all(|(path, _)| !path.contains("turn_off")),
        "another tenant's service call reached Home Assistant: {:?}",
        ha.calls()
    );
    system.stop().await;
}

/// `call_service` calls only the services the home allows, on the one entity named: a target
/// inside `data` (`area_id`, `device_id`, …), a service outside `allowed_services` (locks by
/// default) and an allowed service aimed at another domain's entity are refused before any
/// request. (Before: any domain/service, and `data` could widen the target to a whole area.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_service_stays_inside_the_allow_list_and_the_named_entity() {
    use crate::support::mcp::{call, error_of, text_of};

    let ha = avb_devices::ha_sim::HaSimulator::demo("ha-token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ha_url = format!("http://{}", listener.local_addr().expect("addr"));
    let _ha_task = ha.clone().serve(listener);
    let system = TestSystem::start_with(|c| {
        c.devices.home_assistant.url = Some(ha_url);
        c.devices.home_assistant.token = Some("ha-token".into());
    })
    .await;
    let client = session(system.mcp_url()).await;
    for (arguments, field, needle) in [
        (
            json!({"domain": "light", "service": "turn_off", "entity_id": "light.porch",
                   "data": {"area_id": "all"}}),
            "data",
            "area_id is a target",
        ),
        (
            json!({"domain": "light", "service": "turn_off", "entity_id": "light.porch",
                   "data": {"device_id": "abc"}}),
            "data",
            "device_id is a target",
        ),
        (
            json!({"domain": "lock", "service": "unlock", "entity_id": "lock.front_door"}),
            "",
            "lock.unlock is not in devices.home_assistant.allowed_services",
        ),
        (
            json!({"domain": "light", "service": "turn_on", "entity_id": "lock.front_door"}),
            "entity_id",
            "is not a light entity",
        ),
    ] {
        let r = call(&client, "call_service", arguments.clone()).await;
        assert_eq!(r.is_error, Some(true), "{arguments}: {}", text_of(&r));
        assert!(text_of(&r).contains(needle), "{arguments}: {}", text_of(&r));
        if !field.is_empty() {
            assert_eq!(error_of(&r)["field"], field, "{arguments}");
        }
    }
    assert!(
        ha.calls().is_empty(),
        "refused calls reached Home Assistant: {:?}",
        ha.calls()
    );
    // The allowed call on the named entity still works.
    let r = call(
        &client,
        "call_service",
        json!({"domain": "light", "service": "turn_on", "entity_id": "light.porch"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    system.stop().await;
}

/// Deleting a server while it is still being created: the create is cancelled, the record ends
/// `deleted` and stays so after the create's workflow finished, and no replica is left running
/// or billed. (Before: the create finished after the delete and wrote the server back as
/// `running`, its replica alive and prepaid blocks accruing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_wins_over_a_create_in_flight() {
    use crate::support::mcp::{call, text_of};
    use avb_provisioning::{ContainerBackend, ListFilter, ProcessBackend};

    crate::provisioning::demo_binary();
    let system = TestSystem::start_with(|c| c.mcp.wait_budget_secs = 1).await;
    let client = session(system.mcp_url()).await;
    // The replica takes 4 s to answer: the create is mid-flight when the delete comes.
    let r = call(
        &client,
        "create_mcp_server",
        json!({"service_name": "racy", "template": "demo",
               "environment": {"DEMO_STARTUP_DELAY_MS": "4000"}}),
    )
    .await;
    let created = r.structured_content.clone().expect("structured");
    assert_eq!(created["status"], "creating", "{created}");
    let id = created["server_id"].as_str().expect("id").to_owned();
    let r = call(&client, "delete_mcp_server", json!({"server_id": id})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));

    let status = || async {
        call(&client, "get_mcp_server", json!({"server_id": id}))
            .await
            .structured_content
            .expect("structured")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status().await;
        if s["status"] == "deleted" {
            break;
        }
        assert!(Instant::now() < deadline, "never deleted: {s}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Past the replica's start-up: a create that went on would have finished by now.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let s = status().await;
    assert_eq!(s["status"], "deleted", "{s}");
    let kinds: Vec<&str> = s["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(!kinds.contains(&"mcp.server.created"), "{kinds:?}");
    assert!(
        kinds.contains(&"mcp.server.failed"),
        "the cancelled create compensated (removed its replica, released its hold): {kinds:?}"
    );
    let leftovers = ProcessBackend::new()
        .list_managed(&ListFilter::server(id.clone()))
        .await
        .expect("list processes");
    assert!(
        leftovers.is_empty(),
        "a replica outlived its deleted server: {leftovers:?}"
    );
    client.cancel().await.ok();
    system.stop().await;
}

/// Opens a Streamable HTTP session of protocol 2025-06-18 with `token`: its id, or the refusal.
async fn open_session(mcp: &str, token: &str) -> Result<String, (u16, String)> {
    let response = reqwest::Client::new()
        .post(mcp)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"}}}),
        )
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    match response.headers().get("mcp-session-id") {
        Some(id) => Ok(id.to_str().expect("ascii").to_string()),
        None => Err((status, response.text().await.unwrap_or_default())),
    }
}

/// What `method` on session `id` with `token` answers (the HTTP status).
async fn on_session(mcp: &str, token: &str, id: &str, method: reqwest::Method) -> u16 {
    let mut request = reqwest::Client::new()
        .request(method.clone(), mcp)
        .bearer_auth(token)
        .header("mcp-session-id", id)
        .header("mcp-protocol-version", "2025-06-18")
        .header("accept", "application/json, text/event-stream");
    if method == reqwest::Method::POST {
        request = request.json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }
    let response = request.send().await.expect("answer");
    response.status().as_u16()
}

/// A session is the key's that opened it: another key — of the same tenant — gets "not found"
/// for every request on it, Streamable HTTP (POST, GET stream, DELETE) and legacy SSE (POST).
/// Sessions are capped per key; one the client deleted or walked away from frees its place.
/// (Before: sessions were checked by tenant only, unbounded, and a legacy SSE session of a
/// client that left was never reclaimed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_belong_to_their_key_are_capped_and_reclaimed() {
    let system = TestSystem::start_with(|c| {
        c.auth.required = true;
        c.mcp.max_sessions_per_key = 2;
    })
    .await;
    let store = system.store.as_ref().expect("store");
    let tenant = store.create_tenant("home").await.expect("tenant");
    let mut keys = Vec::new();
    for label in ["first agent", "second agent"] {
        let key = store
            .create_key(&tenant.id, avb_store::Role::Agent, label)
            .await
            .expect("key");
        keys.push(key.token);
    }
    let (a, b) = (keys[0].as_str(), keys[1].as_str());
    let mcp = system.mcp_url();

    // Legacy SSE: a's stream; b cannot post to it, a can.
    let mut stream = reqwest::Client::new()
        .get(system.sse_url())
        .bearer_auth(a)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    let mut seen = String::new();
    while !seen.contains("sessionId=")
        || !seen[seen.find("sessionId=").unwrap_or(0)..].contains('\n')
    {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("endpoint event in time")
            .expect("chunk")
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let at = seen.find("/api/v2/mcp/messages").expect("endpoint");
    let endpoint = seen[at..].lines().next().expect("line").trim().to_string();
    let post = |token: &str| {
        reqwest::Client::new()
            .post(format!("{}{endpoint}", system.base_url))
            .bearer_auth(token)
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2024-11-05", "capabilities": {},
                "clientInfo": {"name": "probe", "version": "1"}}}),
            )
            .send()
    };
    assert_eq!(
        post(b).await.expect("answer").status(),
        404,
        "another key's session"
    );
    assert_eq!(post(a).await.expect("answer").status(), 202);

    // Streamable HTTP: a's second session; a third is over the cap, b's first is not.
    let s1 = open_session(&mcp, a).await.expect("second session of a");
    let (status, why) = open_session(&mcp, a).await.expect_err("over the cap");
    assert_eq!(status, 429, "{why}");
    assert!(why.contains("mcp.max_sessions_per_key"), "{why}");
    let sb = open_session(&mcp, b).await.expect("b's own session");
    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        assert_eq!(
            on_session(&mcp, b, &s1, method.clone()).await,
            404,
            "{method} by b"
        );
    }
    assert_eq!(
        on_session(&mcp, a, &s1, reqwest::Method::POST).await,
        202,
        "still a's"
    );

    // a's legacy client walks away: its place is free again.
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    let s2 = loop {
        match open_session(&mcp, a).await {
            Ok(id) => break id,
            Err((429, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the departed legacy session still counts: {e:?}"),
        }
    };
    // Deleting a session frees its place too.
    let deleted = on_session(&mcp, a, &s2, reqwest::Method::DELETE).await;
    assert!((200..300).contains(&deleted), "DELETE answered {deleted}");
    open_session(&mcp, a).await.expect("a place after DELETE");
    assert_eq!(on_session(&mcp, b, &sb, reqwest::Method::POST).await, 202);
    system.stop().await;
}

/// Audio is never multiplied in memory per request: a speech result over the inline limit is a
/// link (no base64 copy of the WAV in the JSON result), and the download is streamed from the
/// store with `Range` (206, `Content-Range`), `If-None-Match` (304) and a clear 416. (Before: a
/// 98 s job's result was a 6.3 MB JSON document, loaded and encoded on every read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_audio_is_linked_and_downloads_stream_by_range() {
    use crate::support::mcp::{call, text_of};

    let system = TestSystem::start_with(|c| c.mcp.max_inline_audio_bytes = 1_000).await;
    let client = session(system.mcp_url()).await;
    let r = call(
        &client,
        "generate_speech",
        json!({"text": "Hello there.", "voice_id": "af_heart"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let inline = r
        .content
        .iter()
        .any(|c| matches!(c, rmcp::model::ContentBlock::Audio(_)));
    assert!(!inline, "audio over the limit came inline");
    let link = r
        .content
        .iter()
        .find_map(|c| match c {
            rmcp::model::ContentBlock::ResourceLink(l) => Some(l.clone()),
            _ => None,
        })
        .expect("a resource link to the audio");
    assert_eq!(link.mime_type.as_deref(), Some("audio/wav"));
    let size = link.size.expect("size");
    assert!(size > 1_000, "{size}");
    assert!(
        text_of(&r).contains("mcp.max_inline_audio_bytes"),
        "{}",
        text_of(&r)
    );
    let whole_result = serde_json::to_string(&r).expect("json").len() as u64;
    assert!(
        whole_result < size,
        "the result ({whole_result} B) carries the audio ({size} B)"
    );

    // The link is the audio resource: resources/read gives the WAV itself, as a blob.
    let job_id = r.structured_content.as_ref().expect("structured")["job_id"]
        .as_str()
        .expect("job id")
        .to_owned();
    assert_eq!(link.uri, format!("avb://audio/{job_id}"));
    let read = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            link.uri.clone(),
        ))
        .await
        .expect("resources/read of the audio");
    let (blob, mime) = match &read.contents[0] {
        rmcp::model::ResourceContents::BlobResourceContents {
            blob, mime_type, ..
        } => (blob.clone(), mime_type.clone()),
        other => panic!("not a blob: {other:?}"),
    };
    assert_eq!(mime.as_deref(), Some("audio/wav"));
    use base64::Engine as _;
    let from_resource = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .expect("base64");
    assert_eq!(from_resource.len() as u64, size);
    let unknown = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "avb://audio/job_nobody".to_string(),
        ))
        .await;
    assert!(unknown.is_err(), "{unknown:?}");
    let download = r.structured_content.as_ref().expect("structured")["audio_url"]
        .as_str()
        .expect("audio_url")
        .to_owned();
    assert!(text_of(&r).contains(&download), "{}", text_of(&r));

    let http = reqwest::Client::new();
    let full = http.get(&download).send().await.expect("download");
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    let etag = full.headers()["etag"].to_str().expect("etag").to_string();
    let wav = full.bytes().await.expect("body");
    assert_eq!(wav.len() as u64, size);
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(
        wav.as_ref(),
        from_resource.as_slice(),
        "the resource is the download"
    );

    let part = http
        .get(&download)
        .header("range", "bytes=100-199")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{size}").as_str()
    );
    assert_eq!(part.bytes().await.expect("part"), wav.slice(100..200));
    let tail = http
        .get(&download)
        .header("range", "bytes=-44")
        .send()
        .await
        .expect("suffix");
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.bytes().await.expect("tail"),
        wav.slice(wav.len() - 44..)
    );
    let bad = http
        .get(&download)
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .expect("416");
    assert_eq!(bad.status(), 416);
    assert_eq!(
        bad.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );
    let cached = http
        .get(&download)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("304");
    assert_eq!(cached.status(), 304);
    client.cancel().await.ok();
    system.stop().await;
}

/// What goes into Temporal's history is bounded, each refusal naming the limit: a
/// `durable_echo` message over 16 KiB, tool arguments over 256 KiB, a cancel reason over 500
/// characters. (Before: up to 4 MB per call into history, and `durable_echo` is free.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_free_text_is_refused_by_name() {
    use crate::support::mcp::{call, error_of, text_of};

    let system = TestSystem::start().await;
    let client = session(system.mcp_url()).await;
    let r = call(
        &client,
        "durable_echo",
        json!({"message": "x".repeat(avb_api::echo::MAX_ECHO_BYTES + 1)}),
    )
    .await;
    assert_eq!(error_of(&r)["field"], "message", "{}", text_of(&r));
    assert!(text_of(&r).contains("at most 16384"), "{}", text_of(&r));
    let e = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("durable_echo")
                .with_arguments(args(json!({"message": "y".repeat(300 * 1024)}))),
        )
        .await
        .expect_err("too large for any tool");
    assert!(e.to_string().contains("at most 262144"), "{e}");
    let r = call(
        &client,
        "cancel_job",
        json!({"job_id": format!("job_{}", "0".repeat(32)), "reason": "z".repeat(501)}),
    )
    .await;
    assert_eq!(error_of(&r)["field"], "reason", "{}", text_of(&r));
    let http = reqwest::Client::new();
    let response = http
        .post(format!(
            "{}/api/v2/jobs/job_{}/cancel",
            system.base_url,
            "0".repeat(32)
        ))
        .json(&json!({"reason": "z".repeat(501)}))
        .send()
        .await
        .expect("REST");
    assert_eq!(response.status(), 400);
    client.cancel().await.ok();
    system.stop().await;
}

/// Reads that cost the server a Temporal call each are rate-limited per key like tool calls:
/// `resources/read` past its bucket is refused, naming the limit. (Before: unlimited.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_reads_are_rate_limited() {
    use crate::support::mcp::{call, text_of};

    let system = TestSystem::start_with(|c| {
        c.rate_limits.tools.insert("resources/read".into(), 2);
    })
    .await;
    let client = session(system.mcp_url()).await;
    call(&client, "durable_echo", json!({"message": "watched"})).await;
    let r = call(&client, "list_jobs", json!({})).await;
    let job = r.structured_content.clone().expect("structured")["jobs"][0]["job_id"]
        .as_str()
        .map(str::to_string);
    let uri = match job {
        Some(id) => format!("avb://jobs/{id}"),
        None => panic!("no job id: {}", text_of(&r)),
    };
    for _ in 0..2 {
        client
            .read_resource(rmcp::model::ReadResourceRequestParams::new(uri.clone()))
            .await
            .expect("within the limit");
    }
    let e = client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri.clone()))
        .await
        .expect_err("over the limit");
    assert!(
        e.to_string()
            .contains("at most 2 resources/read requests per minute"),
        "{e}"
    );
    client.cancel().await.ok();
    system.stop().await;
}

/// A configured upstream serves the tenants it names: another tenant neither lists nor calls
/// its tools. (Before: `[mcp_servers]` upstreams and their sessions were every tenant's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_upstream_serves_only_its_tenants() {
    use crate::support::mcp::{call, keyed_session, text_of};
    use crate::support::upstreams::EverythingHttp;

    let upstream = EverythingHttp::start();
    let mut settings = upstream.settings();
    settings.tenants = avb_config::ServedTenants::new(["home"]);
    let system = TestSystem::start_with(move |c| {
        c.auth.required = true;
        c.mcp.upstream_check_secs = 1;
        c.mcp_servers.insert("everything".into(), settings);
    })
    .await;
    let (home, other, _) = two_tenants(&system).await;
    let home_mcp = keyed_session(system.mcp_url(), &home).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tool_names(&home_mcp)
        .await
        .iter()
        .any(|n| n == "everything_echo")
    {
        assert!(
            Instant::now() < deadline,
            "the upstream never mounted for home"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = call(&home_mcp, "everything_echo", json!({"message": "mine"})).await;
    assert!(text_of(&r).contains("mine"), "{}", text_of(&r));

    let other_mcp = keyed_session(system.mcp_url(), &other).await;
    let names = tool_names(&other_mcp).await;
    assert!(
        !names.iter().any(|n| n.starts_with("everything_")),
        "listed for another tenant: {names:?}"
    );
    let e = other_mcp
        .call_tool(
            rmcp::model::CallToolRequestParams::new("everything_echo")
                .with_arguments(args(json!({"message": "theirs"}))),
        )
        .await
        .expect_err("not its tool");
    assert!(e.to_string().contains("tool not found"), "{e}");
    let status = call(&other_mcp, "get_server_status", json!({})).await;
    assert!(
        !text_of(&status).contains("everything"),
        "its status names the upstream: {}",
        text_of(&status)
    );
    system.stop().await;
}

/// The open `/readyz` says whether the api is ready and which components it checks, but their
/// details (addresses, versions, errors) only to a caller with a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_details_need_a_key() {
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let (home, _, _) = two_tenants(&system).await;
    let http = reqwest::Client::new();
    let url = format!("{}/readyz", system.base_url);
    let open: Value = http
        .get(&url)
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(open["ready"], true, "{open}");
    let components = open["components"].as_array().expect("components");
    assert!(!components.is_empty());
    assert!(
        components.iter().all(|c| c.get("detail").is_none()),
        "{open}"
    );
    let keyed: Value = http
        .get(&url)
        .bearer_auth(&home)
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert!(
        keyed["components"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&system.config.temporal.address)),
        "{keyed}"
    );
    system.stop().await;
}

/// An api at its default log level never writes a session id (the handle to someone's
/// session) to its log. (Before: rmcp logged each new session's id at INFO.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ids_stay_out_of_the_log() {
    let system = TestSystem::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let log_path = dir.path().join("api.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let addr = format!("127.0.0.1:{}", avb_testkit::free_port());
    let mut cmd = tokio::process::Command::new(crate::support::avb_bin());
    cmd.args(["serve", "--http", &addr]).kill_on_drop(true);
    for (k, v) in system.child_env() {
        cmd.env(k, v);
    }
    // The default filter, as an operator runs it.
    cmd.env_remove("AVB_LOG").env_remove("RUST_LOG");
    cmd.stderr(log.try_clone().expect("log")).stdout(log);
    let mut api = cmd.spawn().expect("spawn avb serve");
    let mcp = format!("http://{addr}/mcp");
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        match reqwest::Client::new()
            .post(&mcp)
            .header("accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "probe", "version": "1"}}}),
            )
            .send()
            .await
        {
            Ok(r) if r.headers().contains_key("mcp-session-id") => {
                break r.headers()["mcp-session-id"]
                    .to_str()
                    .expect("ascii")
                    .to_string();
            }
            _ => {
                assert!(Instant::now() < deadline, "the api never answered");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let _ = reqwest::Client::new()
        .delete(&mcp)
        .header("mcp-session-id", &id)
        .send()
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.kill().await.ok();
    let written = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        written.contains("api listening"),
        "the log is captured: {written}"
    );
    assert!(
        !written.contains(&id),
        "the session id was logged: {written}"
    );
    system.stop().await;
}
