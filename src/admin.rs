//! `avb admin …`: tenants and API keys, and the first-run keys of `avb dev`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use avb_config::AvbConfig;
use avb_store::{NewKey, Role, Store};

#[derive(clap::Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Apply database migrations (also done by every command that opens the database).
    Migrate,
    /// Create a tenant.
    CreateTenant { name: String },
    /// List tenants.
    Tenants,
    /// Create an API key for a tenant; the token is printed once.
    CreateKey {
        #[arg(long)]
        tenant: String,
        /// HUMAN (operators: grant credits, approve, see the tenant's jobs) or AGENT (call tools).
        #[arg(long)]
        role: Role,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List a tenant's keys (prefixes only; secrets are never stored) and how many jobs each
    /// started.
    Keys {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key by id.
    RevokeKey { key_id: String },
    /// Grant credits to a tenant.
    Grant {
        #[arg(long)]
        tenant: String,
        /// A positive whole number.
        #[arg(long)]
        credits: i64,
        #[arg(long, default_value = "granted with avb admin")]
        note: String,
        /// Makes a repeated command safe: a key already used grants nothing new.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Show a tenant's balance (available and held credits).
    Balance {
        #[arg(long)]
        tenant: String,
    },
}

/// Opens (and migrates) the database named by the configuration, saying which setting names it
/// when that fails.
pub async fn open_store(config: &AvbConfig) -> anyhow::Result<Store> {
    Store::open(config)
        .await
        .context("opening the database (DATABASE_URL, default $AVB_DATA_DIR/avb.db)")
}

async fn tenant_id(store: &Store, name: &str) -> anyhow::Result<String> {
    Ok(store
        .tenant_by_name(name)
        .await?
        .with_context(|| {
            format!("no tenant named {name:?}; create it with `avb admin create-tenant`")
        })?
        .id)
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let config = AvbConfig::load()?;
    let store = open_store(&config).await?;
    match args.command {
        AdminCommand::Migrate => println!("database is up to date ({})", store.backend_name()),
        AdminCommand::CreateTenant { name } => {
            let t = store.create_tenant(&name).await?;
            println!("created tenant {} (id {})", t.name, t.id);
        }
        AdminCommand::Tenants => {
            for t in store.tenants().await? {
                println!("{}\t{}", t.id, t.name);
            }
        }
        AdminCommand::CreateKey {
            tenant,
            role,
            label,
        } => {
            let id = tenant_id(&store, &tenant).await?;
            let key = store.create_key(&id, role, &label).await?;
            println!("created {role} key {} for tenant {tenant}", key.key_id);
            println!("token (shown once, store it now): {}", key.token);
        }
        AdminCommand::Keys { tenant } => {
            let id = tenant_id(&store, &tenant).await?;
            let temporal = avb_runtime::temporal::connect(&config.temporal, "avb-admin").await;
            if let Err(e) = &temporal {
                eprintln!("job counts unknown (`?`): {e}");
            }
            println!("KEY\tTOKEN\tROLE\tSTATE\tJOBS\tLABEL");
            for k in store.list_keys(&id).await? {
                let state = if k.revoked_at_ms.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let jobs = match &temporal {
                    Ok(client) => {
                        let scope = avb_api::jobs::JobScope {
                            tenant: tenant.clone(),
                            owner: Some(k.key_id.clone()),
                        };
                        match avb_api::jobs::list::count_jobs(client, &scope).await {
                            Ok(n) => n.to_string(),
                            Err(e) => {
                                eprintln!("jobs of {}: {e}", k.key_id);
                                "?".into()
                            }
                        }
                    }
                    Err(_) => "?".into(),
                };
                println!(
                    "{}\tavb_{}_…\t{}\t{state}\t{jobs}\t{}",
                    k.key_id, k.prefix, k.role, k.label
                );
            }
        }
        AdminCommand::RevokeKey { key_id } => {
            anyhow::ensure!(store.revoke_key(&key_id).await?, "no key with id {key_id}");
            println!("revoked key {key_id}");
        }
        AdminCommand::Grant {
            tenant,
            credits,
            note,
            idempotency_key,
        } => {
            anyhow::ensure!(
                credits > 0,
                "--credits must be a positive whole number, got {credits}"
            );
            let id = tenant_id(&store, &tenant).await?;
            let key = idempotency_key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            // The same namespace as grants over the api: a key is the tenant's own.
            let ledger_key = format!("grant:{id}:{key}");
            let replayed = store.entry_by_key(&ledger_key).await?.is_some();
            let entry = store.grant(&id, credits, &ledger_key, &note).await?;
            let b = store.balance(&id).await?;
            if replayed {
                println!(
                    "idempotency key {key:?} was already used (entry {}, {} credits): nothing \
                     added; available {}, held {}",
                    entry.id, entry.amount, b.available, b.held
                );
            } else {
                println!(
                    "granted {} credits to {tenant} (entry {}); available {}, held {}",
                    entry.amount, entry.id, b.available, b.held
                );
            }
        }
        AdminCommand::Balance { tenant } => {
            let id = tenant_id(&store, &tenant).await?;
            let b = store.balance(&id).await?;
            println!("{tenant}: available {}, held {}", b.available, b.held);
        }
    }
    store.close().await;
    Ok(())
}

/// The keys `avb dev` makes on its first run, kept in `$AVB_DATA_DIR/dev-keys.json`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct DevKeys {
    pub tenant: String,
    pub human: String,
    pub agent: String,
    #[serde(skip)]
    path: PathBuf,
    #[serde(skip)]
    created: bool,
}

impl DevKeys {
    pub fn print(&self) {
        if self.created {
            println!("  Tenant `{}` created with two API keys:", self.tenant);
            println!("    HUMAN (operator): {}", self.human);
            println!("    AGENT:            {}", self.agent);
            println!(
                "    (saved in {}; send as `Authorization: Bearer <key>`)",
                self.path.display()
            );
        } else {
            println!("  API keys:              {}", self.path.display());
        }
    }
}

/// On the first `avb dev`: the `local` tenant with one HUMAN and one AGENT key, written to
/// `dev-keys.json` (owner-only). Later runs reuse the file if its keys still work.
pub async fn ensure_dev_keys(store: &Store, data_dir: &Path) -> anyhow::Result<DevKeys> {
    let path = data_dir.join("dev-keys.json");
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(mut keys) = serde_json::from_str::<DevKeys>(&text)
        && store.authenticate(&keys.human).await?.is_some()
        && store.authenticate(&keys.agent).await?.is_some()
    {
        // Owner-only on every start, not only when first written: a copy or a restore may
        // have widened it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} owner-only", path.display()))?;
        keys.path = path;
        return Ok(keys);
    }
    let tenant_name = avb_api::auth::LOCAL_TENANT;
    let tenant = match store.tenant_by_name(tenant_name).await? {
        Some(t) => t,
        None => store.create_tenant(tenant_name).await?,
    };
    let make = |role| store.create_key(&tenant.id, role, "avb dev");
    let (human, agent): (NewKey, NewKey) = (make(Role::Human).await?, make(Role::Agent).await?);
    let keys = DevKeys {
        tenant: tenant.name,
        human: human.token,
        agent: agent.token,
        path: path.clone(),
        created: true,
    };
    write_private(&path, &serde_json::to_string_pretty(&keys)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(keys)
}

/// On the first `avb dev`: `credits` for the `local` tenant (created if needed), granted once
/// (a fixed idempotency key); returns its available balance.
pub async fn ensure_dev_credits(store: &Store, credits: i64) -> anyhow::Result<i64> {
    let name = avb_api::auth::LOCAL_TENANT;
    let tenant = match store.tenant_by_name(name).await? {
        Some(t) => t,
        None => store.create_tenant(name).await?,
    };
    if credits > 0 {
        store
            .grant(
                &tenant.id,
                credits,
                &format!("dev-starter-credits:{}", tenant.id),
                "first-run credits of avb dev",
            )
            .await?;
    }
    Ok(store.balance(&tenant.id).await?.available)
}

/// Writes a file only its owner can read (it holds secrets); an existing file is narrowed too
/// (`mode` applies only when a file is created).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod dev_keys_tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// `dev-keys.json` holds secrets: owner-only after every start, also when it was widened.
    #[tokio::test]
    async fn dev_keys_are_owner_only_on_every_start() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::connect(&Store::sqlite_url(&dir.path().join("avb.db")))
            .await
            .expect("store");
        let keys = ensure_dev_keys(&store, dir.path()).await.expect("keys");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&keys.path), 0o600);
        std::fs::set_permissions(&keys.path, std::fs::Permissions::from_mode(0o644))
            .expect("widen");
        let again = ensure_dev_keys(&store, dir.path()).await.expect("reuse");
        assert!(!again.created, "the same keys are reused");
        assert_eq!(mode(&again.path), 0o600, "narrowed again");
        store.close().await;
    }
}
