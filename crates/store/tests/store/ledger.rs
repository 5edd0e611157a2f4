use avb_store::{Balance, EntryKind, LedgerEntry, Store, StoreError, Usage};

on_both_databases!(
    concurrent_holds_never_overdraw,
    same_key_twice_changes_nothing,
    hold_closes_exactly_once,
    settle_charges_actual_and_records_usage,
    insufficient_credits_hold_nothing,
    bad_amounts_keys_and_ids,
);

async fn funded_tenant(store: &Store, name: &str, credits: i64) -> String {
    let tenant = store.create_tenant(name).await.expect("create tenant");
    store
        .grant(&tenant.id, credits, &format!("grant-{name}"), "test funds")
        .await
        .expect("grant");
    tenant.id
}

fn usage(quantity: i64) -> Usage {
    Usage {
        tool: "generate_speech".into(),
        unit: "character".into(),
        quantity,
        price: 2,
    }
}

fn kinds(entries: &[LedgerEntry]) -> Vec<EntryKind> {
    entries.iter().rev().map(|e| e.kind).collect()
}

async fn balance(store: &Store, tenant: &str) -> Balance {
    store.balance(tenant).await.expect("balance")
}

/// 50 holds at once against a balance that covers 10 of them: exactly 10 succeed.
async fn concurrent_holds_never_overdraw(store: Store) {
    const PRICE: i64 = 7;
    // Covers 10 holds with 6 credits to spare (not enough for an 11th).
    let tenant = funded_tenant(&store, "acme", 10 * PRICE + PRICE - 1).await;
    let holds: Vec<_> = (0..50)
        .map(|i| {
            let (store, tenant) = (store.clone(), tenant.clone());
            tokio::spawn(async move {
                store
                    .hold(&tenant, PRICE, &format!("wf-{i}/hold"), &format!("job-{i}"))
                    .await
            })
        })
        .collect();
    let (mut held, mut refused) = (0, 0);
    for hold in holds {
        match hold.await.expect("hold task") {
            Ok(entry) => {
                assert_eq!((entry.kind, entry.amount), (EntryKind::Hold, PRICE));
                held += 1;
            }
            Err(StoreError::InsufficientCredits { balance, needed }) => {
                assert_eq!(needed, PRICE);
                assert!((0..PRICE).contains(&balance), "balance {balance}");
                refused += 1;
            }
            Err(e) => panic!("hold failed with something else than InsufficientCredits: {e}"),
        }
    }
    assert_eq!((held, refused), (10, 40));
    assert_eq!(
        balance(&store, &tenant).await,
        Balance {
            available: PRICE - 1,
            held: 10 * PRICE
        }
    );
    let entries = store.entries(&tenant, 100).await.expect("entries");
    assert_eq!(entries.len(), 11, "one grant and 10 holds: {entries:#?}");
}

/// Every operation applied twice (and a burst of ten at once) with the same key: one entry,
/// the same balance.
async fn same_key_twice_changes_nothing(store: Store) {
    let tenant = store.create_tenant("twice").await.expect("tenant").id;
    let t = tenant.as_str();

    let grant = store.grant(t, 100, "g1", "first").await.expect("grant");
    assert_eq!(
        store.grant(t, 100, "g1", "again").await.expect("regrant"),
        grant
    );
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 100,
            held: 0
        }
    );

    let burst: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            let t = tenant.clone();
            tokio::spawn(async move { store.grant(&t, 1, "burst", "concurrent").await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in burst {
        ids.push(task.await.expect("join").expect("burst grant").id);
    }
    ids.dedup();
    assert_eq!(
        ids.len(),
        1,
        "ten concurrent grants with one key gave {ids:?}"
    );
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 101,
            held: 0
        }
    );

    let hold = store.hold(t, 30, "h1", "job-1").await.expect("hold");
    assert_eq!(
        store.hold(t, 30, "h1", "job-1").await.expect("rehold"),
        hold
    );
    store.hold(t, 20, "h2", "job-2").await.expect("hold 2");
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 51,
            held: 50
        }
    );

    let settle = store
        .settle("h1", 25, "s1", &usage(12_500))
        .await
        .expect("settle");
    assert_eq!(
        store
            .settle("h1", 25, "s1", &usage(12_500))
            .await
            .expect("resettle"),
        settle
    );
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 56,
            held: 20
        }
    );
    assert_eq!(store.usage(t, 10).await.expect("usage").len(), 1);

    let release = store.release("h2", "r2").await.expect("release");
    assert_eq!(release.amount, 20);
    assert_eq!(store.release("h2", "r2").await.expect("rerelease"), release);
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 76,
            held: 0
        }
    );

    let refund = store.refund(t, 10, "f1", "sorry").await.expect("refund");
    assert_eq!(
        store.refund(t, 10, "f1", "sorry").await.expect("rerefund"),
        refund
    );
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 86,
            held: 0
        }
    );

    let entries = store.entries(t, 100).await.expect("entries");
    use EntryKind::*;
    assert_eq!(
        kinds(&entries),
        [Grant, Grant, Hold, Hold, Settle, Release, Refund]
    );

    // A key reused for another operation is a conflict naming the key, not a silent replay.
    for result in [
        store.grant(t, 5, "h1", "reuse").await,
        store.hold(t, 5, "g1", "job-x").await,
        store.release("h1", "s1").await,
    ] {
        match result {
            Err(StoreError::Conflict(msg)) => assert!(msg.contains("already used"), "{msg}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 86,
            held: 0
        }
    );
    assert_eq!(store.entries(t, 100).await.expect("entries").len(), 7);
}

/// Settle after release and release after settle never return credits twice.
async fn hold_closes_exactly_once(store: Store) {
    let t = &funded_tenant(&store, "once", 100).await;

    store.hold(t, 40, "a", "job-a").await.expect("hold a");
    assert_eq!(
        store
            .release("a", "a/release")
            .await
            .expect("release")
            .amount,
        40
    );
    match store.settle("a", 10, "a/settle", &usage(5_000)).await {
        Err(StoreError::Conflict(msg)) => {
            assert!(msg.contains("\"a\"") && msg.contains("released"), "{msg}")
        }
        other => panic!("settle after release: expected a conflict, got {other:?}"),
    }
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 100,
            held: 0
        }
    );

    store.hold(t, 40, "b", "job-b").await.expect("hold b");
    store
        .settle("b", 30, "b/settle", &usage(15_000))
        .await
        .expect("settle b");
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 70,
            held: 0
        }
    );
    for key in ["b/release", "b/release-again"] {
        let noop = store.release("b", key).await.expect("release after settle");
        assert_eq!((noop.kind, noop.amount), (EntryKind::Release, 0));
        assert!(noop.note.contains("settled"), "{}", noop.note);
    }
    assert!(matches!(
        store
            .settle("b", 30, "b/settle-again", &usage(15_000))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 70,
            held: 0
        }
    );

    // Settle and release racing for one hold: exactly one of them returns credits.
    for round in 0..5 {
        let hold_key = format!("race-{round}");
        store
            .hold(t, 10, &hold_key, "job-race")
            .await
            .expect("hold");
        let (settle_key, release_key) =
            (format!("{hold_key}/settle"), format!("{hold_key}/release"));
        let used = usage(2_000);
        let (settle, release) = tokio::join!(
            store.settle(&hold_key, 4, &settle_key, &used),
            store.release(&hold_key, &release_key),
        );
        let release = release.expect("release never fails on a known hold");
        match settle {
            Ok(_) => assert_eq!(release.amount, 0, "settled first: release returns nothing"),
            Err(StoreError::Conflict(_)) => assert_eq!(release.amount, 10),
            Err(e) => panic!("settle: {e}"),
        }
        let b = balance(&store, t).await;
        assert_eq!(b.held, 0);
    }
    let b = balance(&store, t).await;
    let settled = store.usage(t, 100).await.expect("usage");
    let charged: i64 = settled.iter().map(|u| u.credits).sum();
    assert_eq!(b.available, 100 - charged, "{settled:#?}");
}

async fn settle_charges_actual_and_records_usage(store: Store) {
    let t = &funded_tenant(&store, "usage", 1_000).await;
    store
        .hold(t, 100, "wf-1/hold", "job-1")
        .await
        .expect("hold");
    match store
        .settle("wf-1/hold", 101, "wf-1/settle", &usage(1))
        .await
    {
        Err(StoreError::Invalid(msg)) => {
            assert!(msg.contains("101") && msg.contains("100"), "{msg}")
        }
        other => panic!("settling more than held: expected Invalid, got {other:?}"),
    }
    let entry = store
        .settle("wf-1/hold", 37, "wf-1/settle", &usage(18_500))
        .await
        .expect("settle");
    assert_eq!(
        (
            entry.kind,
            entry.amount,
            entry.job_id.as_deref(),
            entry.hold_key.as_deref()
        ),
        (EntryKind::Settle, 37, Some("job-1"), Some("wf-1/hold"))
    );
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 963,
            held: 0
        }
    );

    store
        .hold(t, 10, "wf-2/hold", "job-2")
        .await
        .expect("hold 2");
    store
        .settle("wf-2/hold", 0, "wf-2/settle", &usage(0))
        .await
        .expect("free settle");

    let records = store.usage(t, 10).await.expect("usage");
    assert_eq!(records.len(), 2);
    let (newest, oldest) = (&records[0], &records[1]);
    assert_eq!((newest.job_id.as_str(), newest.credits), ("job-2", 0));
    assert_eq!(
        (
            oldest.job_id.as_str(),
            oldest.hold_key.as_str(),
            oldest.tool.as_str(),
            oldest.unit.as_str(),
            oldest.quantity,
            oldest.price,
            oldest.credits,
            oldest.tenant_id.as_str()
        ),
        (
            "job-1",
            "wf-1/hold",
            "generate_speech",
            "character",
            18_500,
            2,
            37,
            t.as_str()
        )
    );
    assert_eq!(store.usage(t, 1).await.expect("usage")[0], *newest);
    assert_eq!(store.entries(t, 2).await.expect("entries").len(), 2);
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 963,
            held: 0
        }
    );
}

async fn insufficient_credits_hold_nothing(store: Store) {
    let t = &funded_tenant(&store, "poor", 5).await;
    let err = store.hold(t, 8, "h", "job").await.expect_err("8 > 5");
    assert!(
        matches!(
            err,
            StoreError::InsufficientCredits {
                balance: 5,
                needed: 8
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("balance 5") && msg.contains("needed 8") && msg.contains("short 3"),
        "{msg}"
    );
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 5,
            held: 0
        }
    );
    assert_eq!(store.entries(t, 10).await.expect("entries").len(), 1);
    assert!(matches!(
        store.release("h", "r").await,
        Err(StoreError::NotFound(_))
    ));
    // The refused key is not burnt: once funded, the same hold goes through.
    store.grant(t, 3, "top-up", "").await.expect("top up");
    store
        .hold(t, 8, "h", "job")
        .await
        .expect("hold after top-up");
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 0,
            held: 8
        }
    );
}

async fn bad_amounts_keys_and_ids(store: Store) {
    let t = &funded_tenant(&store, "strict", 10).await;
    let invalid = |r: Result<LedgerEntry, StoreError>, needle: &str| match r {
        Err(StoreError::Invalid(msg)) => assert!(msg.contains(needle), "{msg} lacks {needle}"),
        other => panic!("expected Invalid ({needle}), got {other:?}"),
    };
    invalid(store.grant(t, 0, "k0", "").await, "positive");
    invalid(store.grant(t, -5, "k1", "").await, "-5");
    invalid(store.refund(t, 0, "k2", "").await, "positive");
    invalid(store.hold(t, -1, "k3", "job").await, "-1");
    invalid(store.grant(t, 1, "", "").await, "idempotency key");
    invalid(
        store.grant(t, 1, &"k".repeat(300), "").await,
        "idempotency key",
    );
    // Amounts near i64::MAX: refused by name, never an overflow inside the database.
    invalid(store.grant(t, i64::MAX, "k4", "").await, "at most");
    let rich = &funded_tenant(&store, "rich", 1).await;
    for i in 0..1_000 {
        let r = store
            .grant(rich, avb_store::MAX_CREDITS, &format!("big{i}"), "")
            .await;
        if let Err(StoreError::Invalid(msg)) = &r {
            assert!(msg.contains("the most an account holds"), "{msg}");
            break;
        }
        r.expect("below the ceiling");
    }
    let b = store.balance(rich).await.expect("balance");
    assert!(b.available <= avb_store::MAX_BALANCE, "{b:?}");
    assert!(
        b.available > avb_store::MAX_BALANCE - avb_store::MAX_CREDITS,
        "{b:?}"
    );

    let not_found = |r: Result<LedgerEntry, StoreError>| match r {
        Err(StoreError::NotFound(msg)) => assert!(msg.contains("nope"), "{msg}"),
        other => panic!("expected NotFound, got {other:?}"),
    };
    not_found(store.grant("nope", 1, "n1", "").await);
    not_found(store.refund("nope", 1, "n2", "").await);
    not_found(store.hold("nope", 1, "n3", "job").await);
    not_found(store.settle("nope", 1, "n4", &usage(1)).await);
    not_found(store.release("nope", "n5").await);
    assert!(matches!(
        store.balance("nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.entries("nope", 10).await.expect("entries").is_empty());
    assert_eq!(
        balance(&store, t).await,
        Balance {
            available: 10,
            held: 0
        }
    );
    assert_eq!(store.entries(t, 10).await.expect("entries").len(), 1);
}
