//! The store against real databases: every test body runs once on a SQLite file and once on a
//! PostgreSQL server started for the test (`avb_testkit::pg`).

/// Generates `sqlite::NAME` and `postgres::NAME` tests running `async fn NAME(store: Store)`.
macro_rules! on_both_databases {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    crate::support::on_sqlite(super::$test).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    crate::support::on_postgres(super::$test).await;
                }
            )+
        }
    };
}

mod artifacts;
mod keys;
mod ledger;
mod servers;
mod support;
mod tenants;
