use avb_store::{ServerRecord, Store};

on_both_databases!(running_servers_are_found_however_many_newer_records_there_are);

fn record(id: usize, status: &str, created_at_ms: i64) -> ServerRecord {
    ServerRecord {
        id: format!("srv_{id:032x}"),
        tenant: if id == 0 { "victim" } else { "attacker" }.into(),
        service_name: format!("s{id}"),
        template: "demo".into(),
        replicas: 1,
        status: status.into(),
        endpoints: "[]".into(),
        error: None,
        created_at_ms,
        updated_at_ms: created_at_ms,
        running_since_ms: None,
    }
}

/// One tenant's old running server, then a thousand newer failed records of another tenant (a
/// flood of bad creates): the running one still mounts.
async fn running_servers_are_found_however_many_newer_records_there_are(store: Store) {
    store
        .upsert_server(&record(0, "running", 1_000))
        .await
        .expect("running");
    for i in 1..=1_001 {
        store
            .upsert_server(&record(i, "failed", 10_000 + i as i64))
            .await
            .expect("failed");
    }
    let newest = store.servers(None, false, 1_000).await.expect("newest");
    assert!(
        newest.iter().all(|r| r.status == "failed"),
        "the newest thousand are the flood"
    );
    let running = store.running_servers().await.expect("running");
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].tenant, "victim");
}
