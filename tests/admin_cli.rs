//! `avb admin`: tenants and API keys from the command line, against the real SQLite store in a
//! temporary data directory (no Temporal needed). Tokens are printed once and never listed.

use std::process::{Command, Output};

fn avb(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_avb"))
        .arg("admin")
        .args(args)
        .env("AVB_DATA_DIR", data)
        .env_remove("DATABASE_URL")
        .env_remove("AVB_DATABASE_URL")
        .output()
        .expect("run avb admin")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "avb admin failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn admin_creates_tenants_and_keys_and_revokes_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();

    assert!(ok(&avb(data, &["create-tenant", "acme"])).contains("created tenant acme"));
    let err = failed(&avb(data, &["create-tenant", "acme"]));
    assert!(err.contains("acme"), "duplicate tenant: {err}");
    let err = failed(&avb(data, &["create-tenant", "Bad Name"]));
    assert!(err.contains("Bad Name"), "invalid name: {err}");
    assert!(ok(&avb(data, &["tenants"])).contains("acme"));

    let out = ok(&avb(
        data,
        &[
            "create-key",
            "--tenant",
            "acme",
            "--role",
            "AGENT",
            "--label",
            "ci",
        ],
    ));
    let token = out
        .split_whitespace()
        .find(|w| w.starts_with("avb_"))
        .unwrap_or_else(|| panic!("no token printed: {out}"))
        .to_string();
    let key_id = out
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .unwrap_or_else(|| panic!("no key id printed: {out}"))
        .to_string();
    let err = failed(&avb(
        data,
        &["create-key", "--tenant", "nobody", "--role", "AGENT"],
    ));
    assert!(err.contains("no tenant named \"nobody\""), "{err}");
    let err = failed(&avb(
        data,
        &["create-key", "--tenant", "acme", "--role", "ROBOT"],
    ));
    assert!(err.contains("HUMAN or AGENT"), "{err}");

    // Listings show the prefix, never the secret.
    let listed = ok(&avb(data, &["keys", "--tenant", "acme"]));
    let secret = token.rsplit('_').next().expect("secret part");
    assert!(
        listed.contains(&key_id) && listed.contains("active"),
        "{listed}"
    );
    assert!(
        !listed.contains(secret),
        "the secret must not be listed: {listed}"
    );

    // The printed token authenticates against the same database, as the api would check it.
    let url = format!("sqlite://{}?mode=rwc", data.join("avb.db").display());
    let store = avb_store::Store::connect(&url).await.expect("store");
    let who = store
        .authenticate(&token)
        .await
        .expect("authenticate")
        .expect("a valid key");
    assert_eq!(
        (who.tenant_name.as_str(), who.role),
        ("acme", avb_store::Role::Agent)
    );

    assert!(ok(&avb(data, &["revoke-key", &key_id])).contains("revoked"));
    assert!(
        store
            .authenticate(&token)
            .await
            .expect("authenticate")
            .is_none(),
        "a revoked key no longer authenticates"
    );
    assert!(ok(&avb(data, &["keys", "--tenant", "acme"])).contains("revoked"));
    let err = failed(&avb(data, &["revoke-key", "key_nonexistent"]));
    assert!(err.contains("key_nonexistent"), "{err}");
    store.close().await;
}
