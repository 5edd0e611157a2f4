//! Billing tools and REST (`get_balance`, `get_usage`, `grant_credits`; `/api/v2/billing`)
//! against the real api and store (SQLite), with API keys: HUMAN keys grant to their own tenant,
//! AGENT keys cannot; each tenant sees only its own account; an idempotency key grants once; bad
//! input names the field and grants nothing.

use crate::support;
use crate::support::TestSystem;
use crate::support::mcp::{call, keyed_session, text_of};
use avb_store::Role;
use rmcp::model::CallToolResult;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

type Session = RunningService<RoleClient, ()>;

async fn session(system: &TestSystem, token: &str) -> Session {
    keyed_session(system.mcp_url(), token).await
}

fn store(system: &TestSystem) -> &avb_store::Store {
    system.store.as_ref().expect("the system has a store")
}

/// A new tenant and one key per role: (tenant id, HUMAN token, AGENT token).
async fn tenant(system: &TestSystem, name: &str) -> (String, String, String) {
    let store = store(system);
    let tenant = store.create_tenant(name).await.expect("tenant");
    let human = store
        .create_key(&tenant.id, Role::Human, "test")
        .await
        .expect("human key");
    let agent = store
        .create_key(&tenant.id, Role::Agent, "test")
        .await
        .expect("agent key");
    (tenant.id, human.token, agent.token)
}

fn structured(r: &CallToolResult) -> Value {
    assert_ne!(r.is_error, Some(true), "{}", text_of(r));
    r.structured_content.clone().expect("structured content")
}

fn assert_tool_error(r: &CallToolResult, needles: &[&str]) {
    assert_eq!(r.is_error, Some(true), "expected isError: {}", text_of(r));
    let text = text_of(r);
    for n in needles {
        assert!(text.contains(n), "error lacks {n:?}: {text}");
    }
}

async fn mcp_available(s: &Session) -> i64 {
    let b = structured(&call(s, "get_balance", json!({})).await);
    assert_eq!(b["held"], 0, "{b}");
    b["available"].as_i64().expect("available")
}

struct Rest {
    http: reqwest::Client,
    base: String,
}

impl Rest {
    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json body"))
    }

    async fn grant(&self, token: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v2/billing/grants", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json body"))
    }

    async fn available(&self, token: &str) -> i64 {
        let (status, b) = self.get("/api/v2/billing/balance", token).await;
        assert_eq!(status, 200, "{b}");
        b["available"].as_i64().expect("available")
    }
}

#[tokio::test]
async fn humans_grant_agents_read_tenants_see_only_their_own_account() {
    let system = TestSystem::start_with(|c| c.auth.required = true).await;
    let rest = Rest {
        http: reqwest::Client::new(),
        base: system.base_url.clone(),
    };
    let (a_id, a_human, a_agent) = tenant(&system, "billing-a").await;
    let (_b_id, b_human, b_agent) = tenant(&system, "billing-b").await;
    let ah = session(&system, &a_human).await;
    let aa = session(&system, &a_agent).await;
    let ba = session(&system, &b_agent).await;

    // A HUMAN key grants 100 to its tenant: MCP and REST, both roles, see 100.
    let g = structured(
        &call(
            &ah,
            "grant_credits",
            json!({"credits": 100, "note": "start"}),
        )
        .await,
    );
    assert_eq!(
        (&g["tenant"], &g["credits"], &g["available"], &g["replayed"]),
        (&json!("billing-a"), &json!(100), &json!(100), &json!(false)),
        "{g}"
    );
    assert_eq!(g["note"], "start");
    let b = structured(&call(&ah, "get_balance", json!({})).await);
    assert_eq!(
        b,
        json!({"tenant": "billing-a", "available": 100, "held": 0})
    );
    assert_eq!(mcp_available(&aa).await, 100, "the AGENT reads its balance");
    assert_eq!(rest.available(&a_human).await, 100);
    assert_eq!(rest.available(&a_agent).await, 100);

    // The AGENT cannot grant: an isError naming the role (MCP), 403 (REST); nothing granted.
    let r = call(&aa, "grant_credits", json!({"credits": 5})).await;
    assert_tool_error(&r, &["Forbidden", "HUMAN", "AGENT"]);
    let (status, body) = rest.grant(&a_agent, r#"{"credits": 5}"#).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("HUMAN") && m.contains("AGENT")),
        "{body}"
    );
    assert_eq!(rest.available(&a_agent).await, 100);

    // Tenant B sees its own account (empty), not A's.
    let b = structured(&call(&ba, "get_balance", json!({})).await);
    assert_eq!(b, json!({"tenant": "billing-b", "available": 0, "held": 0}));
    assert_eq!(rest.available(&b_agent).await, 0);
    let (status, usage) = rest.get("/api/v2/billing/usage", &b_agent).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["records"], json!([]), "{usage}");

    // The same idempotency key grants once, over MCP and REST alike.
    let grant = json!({"credits": 25, "idempotency_key": "topup-1"});
    let first = structured(&call(&ah, "grant_credits", grant.clone()).await);
    let again = structured(&call(&ah, "grant_credits", grant.clone()).await);
    assert_eq!(first["replayed"], false, "{first}");
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(first["entry_id"], again["entry_id"]);
    assert_eq!(again["available"], 125, "{again}");
    let (status, body) = rest.grant(&a_human, &grant.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["replayed"], &body["entry_id"], &body["available"]),
        (&json!(true), &first["entry_id"], &json!(125)),
        "{body}"
    );
    // Reusing a key for another amount is refused, not silently ignored.
    let (status, body) = rest
        .grant(&a_human, r#"{"credits": 30, "idempotency_key": "topup-1"}"#)
        .await;
    assert_eq!(status, 409, "{body}");
    // Keys are per tenant: B's HUMAN may use the same key for its own grant.
    let (status, body) = rest
        .grant(&b_human, r#"{"credits": 7, "idempotency_key": "topup-1"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["tenant"], &body["replayed"], &body["available"]),
        (&json!("billing-b"), &json!(false), &json!(7)),
        "{body}"
    );
    assert_eq!(mcp_available(&ah).await, 125);
    assert_eq!(mcp_available(&ba).await, 7);

    // Bad input names the field (or the problem) and grants nothing.
    for (args, needle) in [
        (json!({"credits": 0}), "credits"),
        (json!({"credits": -5}), "credits"),
        (json!({"credits": 5, "bogus": 1}), "bogus"),
        (json!({}), "credits"),
        (
            json!({"credits": 5, "idempotency_key": ""}),
            "idempotency_key",
        ),
    ] {
        let r = call(&ah, "grant_credits", args.clone()).await;
        assert_tool_error(&r, &[needle]);
    }
    for (body, needle) in [
        (r#"{"credits": 0}"#, "credits"),
        (r#"{"credits": -3}"#, "credits"),
        (r#"{"credits": 5, "bogus": 1}"#, "bogus"),
        (r#"{"credits": "ten"}"#, "credits"),
        (r#"{}"#, "credits"),
        (r#"{"credits": 5"#, ""),
    ] {
        let (status, reply) = rest.grant(&a_human, body).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message}");
    }
    assert_eq!(rest.available(&a_human).await, 125);
    let grants = store(&system)
        .entries(&a_id, 100)
        .await
        .expect("ledger entries");
    let amounts: Vec<i64> = grants.iter().map(|e| e.amount).collect();
    assert_eq!(amounts, vec![25, 100], "A's ledger: one entry per grant");

    // Usage: what a settled job used, newest first, only the tenant's own.
    let ledger = store(&system);
    ledger
        .hold(&a_id, 10, "test-hold-1", "job_test1")
        .await
        .expect("hold");
    let usage = avb_store::Usage {
        tool: "generate_speech".into(),
        unit: "character".into(),
        quantity: 350,
        price: 20,
    };
    ledger
        .settle("test-hold-1", 7, "test-settle-1", &usage)
        .await
        .expect("settle");
    let page = structured(&call(&aa, "get_usage", json!({})).await);
    assert_eq!(page["limit"], 50, "{page}");
    let records = page["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{page}");
    assert_eq!(
        (
            &records[0]["job_id"],
            &records[0]["tool"],
            &records[0]["quantity"],
            &records[0]["credits"]
        ),
        (
            &json!("job_test1"),
            &json!("generate_speech"),
            &json!(350),
            &json!(7)
        ),
        "{page}"
    );
    assert_eq!(mcp_available(&aa).await, 118, "125 - 7 charged");
    let (status, page) = rest.get("/api/v2/billing/usage?limit=1", &a_agent).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["records"].as_array().map(Vec::len), Some(1), "{page}");
    let b_page = structured(&call(&ba, "get_usage", json!({"limit": 500})).await);
    assert_eq!(b_page["records"], json!([]), "B sees none of A's usage");
    for limit in [0, 501] {
        let r = call(&aa, "get_usage", json!({ "limit": limit })).await;
        assert_tool_error(&r, &["limit"]);
        let (status, body) = rest
            .get(&format!("/api/v2/billing/usage?limit={limit}"), &a_agent)
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("limit"), "{body}");
    }
    let r = call(&aa, "get_usage", json!({"page": 2})).await;
    assert_tool_error(&r, &["page"]);

    // Without a key: 401, as everywhere under /api/v2.
    let r = rest
        .http
        .get(format!("{}/api/v2/billing/balance", rest.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 401);

    for s in [ah, aa, ba] {
        s.cancel().await.ok();
    }
    system.stop().await;
}

/// With authentication off every caller is the operator of the `local` tenant.
#[tokio::test]
async fn with_auth_off_the_local_tenant_is_billed() {
    let system = TestSystem::start().await;
    let rest = Rest {
        http: reqwest::Client::new(),
        base: system.base_url.clone(),
    };
    let client =
        ().serve(StreamableHttpClientTransport::from_uri(system.mcp_url()))
            .await
            .expect("connect");
    // The harness grants the local tenant its test credits, as `avb dev` grants its first-run
    // credits.
    let start = support::TEST_CREDITS;
    let b = structured(&call(&client, "get_balance", json!({})).await);
    assert_eq!(b, json!({"tenant": "local", "available": start, "held": 0}));
    let g = structured(&call(&client, "grant_credits", json!({"credits": 40})).await);
    assert_eq!(g["available"], start + 40, "{g}");
    let (status, body) = rest.grant("ignored", r#"{"credits": 2}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rest.available("ignored").await, start + 42);
    client.cancel().await.ok();
    system.stop().await;
}
