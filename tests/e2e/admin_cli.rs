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

#[tokio::test]
async fn admin_grants_credits_once_per_idempotency_key_and_shows_the_balance() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path();
    ok(&avb(data, &["create-tenant", "acme"]));
    let grant = |credits: &str, key: &str| {
        avb(
            data,
            &[
                "grant",
                "--tenant",
                "acme",
                "--credits",
                credits,
                "--idempotency-key",
                key,
            ],
        )
    };
    let out = ok(&grant("50", "first"));
    assert!(out.contains("granted 50 credits to acme"), "{out}");
    assert!(out.contains("available 50, held 0"), "{out}");
    // The same key again grants nothing new.
    let out = ok(&grant("50", "first"));
    assert!(
        out.contains("was already used") && out.contains("nothing added"),
        "{out}"
    );
    assert!(out.contains("available 50, held 0"), "{out}");
    ok(&grant("7", "second"));
    let out = ok(&avb(data, &["balance", "--tenant", "acme"]));
    assert_eq!(out.trim(), "acme: available 57, held 0");

    let err = failed(&grant("0", "third"));
    assert!(
        err.contains("--credits must be a positive whole number"),
        "{err}"
    );
    let err = failed(&avb(
        data,
        &["grant", "--tenant", "nobody", "--credits", "5"],
    ));
    assert!(err.contains("no tenant named \"nobody\""), "{err}");
    let err = failed(&avb(data, &["balance", "--tenant", "nobody"]));
    assert!(err.contains("nobody"), "{err}");
}
