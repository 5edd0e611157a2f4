//! Fresh databases for each test: a SQLite file in a temp dir, or a PostgreSQL server of our own.

use std::future::Future;

use avb_store::Store;
use avb_testkit::pg;

/// Runs `body` on a new SQLite database (in a directory that does not exist yet, with a space
/// in its name: `connect` must create it).
pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state dir").join("avb.db");
    let store = Store::connect(&Store::sqlite_url(&path))
        .await
        .expect("connect to SQLite");
    assert_eq!(store.backend_name(), "sqlite");
    body(store.clone()).await;
    store.close().await;
}

/// Runs `body` on a new database of a PostgreSQL server started for this test (stopped after).
pub async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let server = pg::PgServer::start().await;
    let store = Store::connect(&server.url)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL at {}: {e}", server.url));
    assert_eq!(store.backend_name(), "postgres");
    body(store.clone()).await;
    // Close first: SIGTERM is a smart shutdown, which waits for open sessions. `close` can miss
    // a connection that was being returned to the pool at that moment (sqlx 0.8.6), so drop
    // the pool too, and stop off the runtime's threads: sqlx returns connections in tasks it
    // spawned, which a blocked worker thread would starve.
    store.close().await;
    drop(store);
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .expect("stop PostgreSQL");
}
