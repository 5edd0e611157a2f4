use avb_store::{Role, Store, StoreError};

on_both_databases!(
    tenant_names_are_checked_and_unique,
    migrations_are_idempotent
);

async fn tenant_names_are_checked_and_unique(store: Store) {
    let acme = store.create_tenant("acme-1").await.expect("valid name");
    assert!(
        acme.id.starts_with("tnt_") && acme.id.len() == 36,
        "{}",
        acme.id
    );
    assert_eq!(
        store.tenant_by_name("acme-1").await.expect("lookup"),
        Some(acme.clone())
    );
    assert_eq!(
        store.tenant_by_id(&acme.id).await.expect("lookup"),
        Some(acme.clone())
    );
    assert_eq!(store.tenant_by_name("acme-2").await.expect("lookup"), None);
    assert_eq!(
        store
            .balance(&acme.id)
            .await
            .expect("new account")
            .available,
        0
    );
    store
        .create_tenant(&"a".repeat(64))
        .await
        .expect("64 characters are fine");
    store
        .create_tenant("0-9")
        .await
        .expect("digits and dashes are fine");

    match store.create_tenant("acme-1").await {
        Err(StoreError::Conflict(msg)) => {
            assert!(msg.contains("\"acme-1\"") && msg.contains("taken"), "{msg}")
        }
        other => panic!("duplicate name: expected Conflict, got {other:?}"),
    }
    let long = "a".repeat(65);
    for (name, needles) in [
        ("", &["empty"][..]),
        (long.as_str(), &["65", "64"][..]),
        ("Acme", &["'A'", "position 1"][..]),
        ("acme_corp", &["'_'", "position 5"][..]),
        ("acme corp", &["' '"][..]),
        ("café", &["'é'"][..]),
    ] {
        match store.create_tenant(name).await {
            Err(StoreError::Invalid(msg)) => {
                assert!(msg.starts_with("invalid tenant name"), "{msg}");
                for needle in needles {
                    assert!(msg.contains(needle), "{name:?}: {msg:?} lacks {needle:?}");
                }
            }
            other => panic!("{name:?}: expected Invalid, got {other:?}"),
        }
    }
    let names: Vec<_> = store
        .tenants()
        .await
        .expect("tenants")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        ["acme-1".to_owned(), "a".repeat(64), "0-9".to_owned()]
    );
}

async fn migrations_are_idempotent(store: Store) {
    let tenant = store.create_tenant("kept").await.expect("tenant");
    store.migrate().await.expect("migrate again");
    store.migrate().await.expect("and again");
    assert_eq!(
        store.tenant_by_name("kept").await.expect("lookup"),
        Some(tenant)
    );
}

#[tokio::test]
async fn sqlite_file_survives_reconnect_in_wal_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("a/b/avb.db");
    let url = Store::sqlite_url(&path);
    let store = Store::connect(&url).await.expect("connect");
    let tenant = store.create_tenant("durable").await.expect("tenant");
    let key = store
        .create_key(&tenant.id, Role::Agent, "")
        .await
        .expect("key");
    assert!(
        path.with_file_name("avb.db-wal").exists(),
        "no WAL file next to {}",
        path.display()
    );
    store.close().await;

    let store = Store::connect(&url).await.expect("reconnect");
    assert_eq!(
        store.tenant_by_name("durable").await.expect("lookup"),
        Some(tenant)
    );
    assert!(
        store
            .authenticate(&key.token)
            .await
            .expect("auth")
            .is_some()
    );
    store.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    match Store::connect("mysql://root:secret@localhost/avb").await {
        Err(StoreError::Invalid(msg)) => {
            assert!(msg.contains("mysql") && !msg.contains("secret"), "{msg}")
        }
        other => panic!("expected Invalid, got {:?}", other.map(|_| "a store")),
    }
}

#[test]
fn roles_parse_print_and_serialize() {
    assert_eq!("HUMAN".parse::<Role>(), Ok(Role::Human));
    assert_eq!("agent".parse::<Role>(), Ok(Role::Agent));
    let err = "admin".parse::<Role>().expect_err("not a role");
    assert_eq!(
        err.to_string(),
        "unknown role \"admin\": expected HUMAN or AGENT"
    );
    assert_eq!(Role::Agent.to_string(), "AGENT");
    assert_eq!(
        serde_json::to_string(&Role::Human).expect("json"),
        "\"HUMAN\""
    );
    assert_eq!(
        serde_json::from_str::<Role>("\"AGENT\"").expect("json"),
        Role::Agent
    );
}
