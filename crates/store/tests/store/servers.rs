use avb_store::{CreateLimits, CreateRefused, ServerRecord, Store, now_ms};

on_both_databases!(
    running_servers_are_found_however_many_newer_records_there_are,
    concurrent_creates_never_pass_the_quota_or_share_a_name,
    failed_creates_count_toward_the_create_rate,
    delete_wins_over_a_late_create,
    records_are_found_by_engine_ids_and_old_dead_ones_purged,
    a_servers_host_is_kept_by_writes_that_do_not_know_it,
);

/// The create records the host its replicas run on; a later write without one (a deletion
/// started from an older record, a reconciliation's status change) keeps it.
async fn a_servers_host_is_kept_by_writes_that_do_not_know_it(store: Store) {
    let first = new_server("t", "hosted");
    store
        .insert_new_server(&first, LIMITS)
        .await
        .expect("insert");
    let read = |store: Store, id: String| async move {
        store.server("t", &id).await.expect("read").expect("there")
    };
    assert_eq!(read(store.clone(), first.id.clone()).await.host, None);
    let placed = ServerRecord {
        host: Some("node-a".into()),
        status: "running".into(),
        ..first.clone()
    };
    store.upsert_server(&placed).await.expect("placed");
    assert_eq!(
        read(store.clone(), first.id.clone()).await.host.as_deref(),
        Some("node-a")
    );
    let unaware = ServerRecord {
        status: "deleting".into(),
        ..first.clone()
    };
    store.upsert_server(&unaware).await.expect("deleting");
    let got = read(store.clone(), first.id.clone()).await;
    assert_eq!(got.status, "deleting");
    assert_eq!(got.host.as_deref(), Some("node-a"), "{got:?}");
}

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
        host: None,
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

fn new_server(tenant: &str, name: &str) -> ServerRecord {
    let now = now_ms();
    ServerRecord {
        id: format!("srv_{}", uuid::Uuid::now_v7().simple()),
        tenant: tenant.into(),
        service_name: name.into(),
        template: "demo".into(),
        replicas: 1,
        status: "creating".into(),
        endpoints: "[]".into(),
        error: None,
        created_at_ms: now,
        updated_at_ms: now,
        running_since_ms: None,
        host: None,
    }
}

const LIMITS: CreateLimits = CreateLimits {
    quota: 3,
    per_hour: 0,
};

/// Twenty creates of distinct names at once against a quota of three, then ten creates of one
/// name at once: three and one pass. (Checked before the insert, all of them passed.)
async fn concurrent_creates_never_pass_the_quota_or_share_a_name(store: Store) {
    let creates = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .insert_new_server(&new_server("busy", &format!("s{i}")), LIMITS)
                .await
        })
    });
    let mut results = Vec::new();
    for c in creates.collect::<Vec<_>>() {
        results.push(c.await);
    }
    let passed = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    assert_eq!(passed, 3, "the quota is three");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(Ok(()) | Err(CreateRefused::Quota { live: 3 }))))
    );

    let same = (0..10).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .insert_new_server(
                    &new_server("named", "notes"),
                    CreateLimits {
                        quota: 100,
                        per_hour: 0,
                    },
                )
                .await
        })
    });
    let mut results = Vec::new();
    for c in same.collect::<Vec<_>>() {
        results.push(c.await);
    }
    let passed = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    assert_eq!(passed, 1, "one server per name");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(Ok(()) | Err(CreateRefused::NameTaken))))
    );
}

/// A failed create frees its quota place and its name, but still counts toward the hourly
/// create rate: failing creates without end is not free.
async fn failed_creates_count_toward_the_create_rate(store: Store) {
    let limits = CreateLimits {
        quota: 1,
        per_hour: 3,
    };
    for _ in 0..3 {
        let mut r = new_server("flaky", "notes");
        store
            .insert_new_server(&r, limits)
            .await
            .expect("within the rate");
        r.status = "failed".into();
        store.upsert_server(&r).await.expect("failed");
    }
    let refused = store
        .insert_new_server(&new_server("flaky", "notes"), limits)
        .await
        .expect_err("over the rate");
    assert!(
        matches!(refused, CreateRefused::Rate { recent: 3 }),
        "{refused}"
    );
    store
        .insert_new_server(&new_server("other", "notes"), limits)
        .await
        .expect("another tenant's rate is its own");
}

/// A create that finishes after its server was deleted cannot bring it back as `running`.
async fn delete_wins_over_a_late_create(store: Store) {
    let mut r = new_server("t", "racy");
    store.insert_new_server(&r, LIMITS).await.expect("created");
    r.status = "deleting".into();
    store.upsert_server(&r).await.expect("deleting");
    r.status = "running".into();
    r.running_since_ms = Some(now_ms());
    store.upsert_server(&r).await.expect("late create");
    let got = store
        .server("t", &r.id)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(got.status, "deleting");
    assert_eq!(
        got.running_since_ms, None,
        "never ran as far as billing knows"
    );
    r.status = "deleted".into();
    store.upsert_server(&r).await.expect("deleted");
    r.status = "failed".into();
    store.upsert_server(&r).await.expect("late failure");
    let got = store
        .server("t", &r.id)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(got.status, "deleted");
    assert!(store.running_servers().await.expect("running").is_empty());
}

/// Reconciliation's reads: records by the ids the engine reports (more than one query's worth),
/// live servers by status; old failed and deleted records are purged, nothing else.
async fn records_are_found_by_engine_ids_and_old_dead_ones_purged(store: Store) {
    let mut ids = Vec::new();
    for i in 0..600 {
        let status = match i % 3 {
            0 => "running",
            1 => "failed",
            _ => "deleted",
        };
        let r = record(10_000 + i, status, 1_000 + i as i64);
        store.upsert_server(&r).await.expect("record");
        ids.push(r.id);
    }
    ids.push("srv_unknown".into());
    let found = store.servers_by_ids(&ids).await.expect("by ids");
    assert_eq!(found.len(), 600);
    assert_eq!(store.live_servers().await.expect("live").len(), 200);
    let expired = store.expired_servers(1_300, 1_000).await.expect("expired");
    assert_eq!(expired.len(), 200, "failed and deleted before 1300");
    assert!(expired.iter().all(|r| r.status != "running"));
    for r in &expired {
        assert!(store.purge_server(&r.id).await.expect("purge"));
    }
    assert!(
        !store.purge_server(&ids[0]).await.expect("no purge"),
        "a running record is never purged"
    );
    assert_eq!(store.servers_by_ids(&ids).await.expect("by ids").len(), 400);
    assert_eq!(store.live_servers().await.expect("live").len(), 200);
}
