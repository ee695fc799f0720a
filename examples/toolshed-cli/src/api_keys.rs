//! `toolshed api-keys create|list|revoke`: keys for the playground API, on the local state.

use std::collections::BTreeSet;

use clap::Subcommand;
use toolshed_core::domain::{ApiKey, ApiKeyId, NewApiKey, PrincipalId, Scope};
use toolshed_core::local::LocalBackend;

use crate::output::{print, Format};

/// `api-keys …`
#[derive(Debug, Subcommand)]
pub enum ApiKeys {
    /// Create a key; its secret is printed once and never stored.
    Create {
        /// A name to recognise it by (`ci`, `web-app`).
        #[arg(long)]
        name: String,
        /// Scopes: `servers:write`, `sessions`, `read`, `admin` (repeat, or separate by commas).
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// The principal the key acts as (owner of the sessions it launches).
        #[arg(long, default_value = "local")]
        owner: String,
    },
    /// List keys (never their secrets).
    List {
        /// Only the keys of this principal.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Revoke a key: it stops working at once.
    Revoke {
        /// Key id (the 16 hex characters after `tsk_`).
        id: String,
    },
}

fn view(k: &ApiKey) -> serde_json::Value {
    serde_json::json!({
        "id": k.id, "name": k.name, "owner": k.owner,
        "scopes": k.scopes, "created_at": k.created_at,
        "last_used_at": k.last_used_at, "revoked_at": k.revoked_at,
    })
}

fn line(k: &ApiKey) -> String {
    let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
    let state = match (k.revoked_at, k.last_used_at) {
        (Some(at), _) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
        (None, Some(at)) => format!("last used {}", at.format("%Y-%m-%d %H:%M")),
        (None, None) => "never used".to_owned(),
    };
    format!(
        "{}  {:<16} owner={} scopes={} ({state})",
        k.id,
        k.name,
        k.owner,
        scopes.join(",")
    )
}

/// Runs an `api-keys` command.
pub async fn run(b: &LocalBackend, f: Format, c: ApiKeys) -> anyhow::Result<()> {
    let toolshed = &b.toolshed;
    match c {
        ApiKeys::Create {
            name,
            scopes,
            owner,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| s.trim().parse::<Scope>())
                .collect::<Result<BTreeSet<_>, _>>()?;
            let (key, secret) = toolshed
                .create_api_key(NewApiKey {
                    name,
                    scopes,
                    owner: PrincipalId::new(owner)?,
                })
                .await?;
            let mut v = view(&key);
            v["key"] = serde_json::Value::from(secret.expose());
            print(f, &v, || {
                format!(
                    "{}\n\n{}\nThis is the only time the key is shown: store it now.",
                    line(&key),
                    secret.expose()
                )
            });
        }
        ApiKeys::List { owner } => {
            let owner = owner.map(PrincipalId::new).transpose()?;
            let keys = toolshed.list_api_keys(owner).await?;
            let v: Vec<_> = keys.iter().map(view).collect();
            print(f, &v, || {
                if keys.is_empty() {
                    "no API keys".to_owned()
                } else {
                    keys.iter().map(line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        ApiKeys::Revoke { id } => {
            let key = toolshed.revoke_api_key(&ApiKeyId::new(id)?).await?;
            print(f, &view(&key), || format!("revoked: {}", line(&key)));
        }
    }
    Ok(())
}
