use avb_store::{Principal, Role, Store, StoreError};

on_both_databases!(
    key_authenticates_as_its_tenant_and_role,
    bad_tokens_do_not_authenticate,
    revoked_keys_stop_working,
    listed_keys_never_show_the_secret,
);

async fn key_authenticates_as_its_tenant_and_role(store: Store) {
    let acme = store.create_tenant("acme").await.expect("tenant");
    let human = store
        .create_key(&acme.id, Role::Human, "ops laptop")
        .await
        .expect("human key");
    let agent = store
        .create_key(&acme.id, Role::Agent, "claude")
        .await
        .expect("agent key");
    for key in [&human, &agent] {
        assert!(
            key.token.starts_with(&format!("avb_{}_", key.prefix)),
            "{}",
            key.token
        );
        assert_eq!(key.prefix.len(), 8);
        assert!(key.token.len() >= "avb_".len() + 8 + 1 + 32);
        assert_eq!(key.tenant_id, acme.id);
        let debug = format!("{key:?}");
        let secret = key.token.rsplit('_').next().expect("secret part");
        assert!(!debug.contains(secret), "Debug shows the secret: {debug}");
        assert!(debug.contains(&key.prefix), "{debug}");
    }
    assert_ne!(human.prefix, agent.prefix);
    assert_eq!(
        store
            .authenticate(&human.token)
            .await
            .expect("authenticate"),
        Some(Principal {
            tenant_id: acme.id.clone(),
            tenant_name: "acme".into(),
            role: Role::Human,
            key_id: human.key_id.clone(),
            label: "ops laptop".into(),
        })
    );
    let principal = store
        .authenticate(&agent.token)
        .await
        .expect("authenticate")
        .expect("agent key is valid");
    assert_eq!(
        (principal.role, principal.key_id, principal.tenant_name),
        (Role::Agent, agent.key_id.clone(), "acme".to_owned())
    );

    // Another tenant's key names that tenant.
    let other = store.create_tenant("other").await.expect("tenant");
    let key = store
        .create_key(&other.id, Role::Agent, "")
        .await
        .expect("key");
    let principal = store
        .authenticate(&key.token)
        .await
        .expect("auth")
        .expect("valid");
    assert_eq!(principal.tenant_id, other.id);

    match store.create_key("tnt_missing", Role::Agent, "x").await {
        Err(StoreError::NotFound(msg)) => assert!(msg.contains("tnt_missing"), "{msg}"),
        other => panic!("key for an unknown tenant: expected NotFound, got {other:?}"),
    }
}

async fn bad_tokens_do_not_authenticate(store: Store) {
    let tenant = store.create_tenant("acme").await.expect("tenant");
    let key = store
        .create_key(&tenant.id, Role::Human, "")
        .await
        .expect("key");
    let (head, secret) = key.token.rsplit_once('_').expect("token shape");
    let mut wrong = secret.to_owned();
    let last = wrong.pop().expect("nonempty secret");
    wrong.push(if last == 'a' { 'b' } else { 'a' });
    let candidates = [
        format!("{head}_{wrong}"),                         // wrong secret
        format!("avb_zzzzzzzz_{secret}"),                  // unknown prefix
        format!("{head}_{}", &secret[..secret.len() - 1]), // truncated
        format!("{}_{secret}", head.to_uppercase()),       // mangled prefix
        format!("Bearer {}", key.token),                   // header, not token
        format!("{} ", key.token),                         // trailing space
        String::new(),
        "avb_".into(),
        "not a token at all".into(),
        key.prefix.clone(),
        secret.to_owned(),
    ];
    for token in candidates {
        assert_eq!(
            store.authenticate(&token).await.expect("authenticate"),
            None,
            "{token:?} authenticated"
        );
    }
    assert!(
        store
            .authenticate(&key.token)
            .await
            .expect("auth")
            .is_some()
    );
}

async fn revoked_keys_stop_working(store: Store) {
    let tenant = store.create_tenant("acme").await.expect("tenant");
    let kept = store
        .create_key(&tenant.id, Role::Human, "kept")
        .await
        .expect("key");
    let gone = store
        .create_key(&tenant.id, Role::Agent, "gone")
        .await
        .expect("key");
    assert!(store.revoke_key(&gone.key_id).await.expect("revoke"));
    assert!(!store.revoke_key(&gone.key_id).await.expect("revoke again"));
    assert!(
        !store
            .revoke_key("key_unknown")
            .await
            .expect("revoke unknown")
    );
    assert_eq!(store.authenticate(&gone.token).await.expect("auth"), None);
    assert!(
        store
            .authenticate(&kept.token)
            .await
            .expect("auth")
            .is_some()
    );
    let keys = store.list_keys(&tenant.id).await.expect("list");
    let revoked: Vec<_> = keys
        .iter()
        .map(|k| (k.label.as_str(), k.revoked_at_ms.is_some()))
        .collect();
    assert_eq!(revoked, [("kept", false), ("gone", true)]);
}

async fn listed_keys_never_show_the_secret(store: Store) {
    let acme = store.create_tenant("acme").await.expect("tenant");
    let other = store.create_tenant("other").await.expect("tenant");
    let a = store
        .create_key(&acme.id, Role::Human, "first")
        .await
        .expect("key");
    let b = store
        .create_key(&acme.id, Role::Agent, "second")
        .await
        .expect("key");
    store
        .create_key(&other.id, Role::Agent, "theirs")
        .await
        .expect("key");

    let keys = store.list_keys(&acme.id).await.expect("list");
    let summary: Vec<_> = keys
        .iter()
        .map(|k| {
            (
                k.key_id.as_str(),
                k.prefix.as_str(),
                k.role,
                k.label.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (a.key_id.as_str(), a.prefix.as_str(), Role::Human, "first"),
            (b.key_id.as_str(), b.prefix.as_str(), Role::Agent, "second"),
        ]
    );
    let json = serde_json::to_string(&keys).expect("json");
    for key in [&a, &b] {
        let secret = key.token.rsplit('_').next().expect("secret");
        assert!(!json.contains(secret), "listing shows a secret: {json}");
    }
    assert!(
        !json.contains("sha256") && !json.contains("token"),
        "{json}"
    );
    assert!(
        json.contains("\"role\":\"HUMAN\"") && json.contains("\"role\":\"AGENT\""),
        "{json}"
    );
    assert!(
        store
            .list_keys("tnt_nobody")
            .await
            .expect("list")
            .is_empty()
    );
}
