//! Settings values: a server's verification test values, kept in the [`SecretStore`] by
//! owner, and the environment a check task or an instance starts with.
//!
//! Values never go into the repository's records: the server record holds declarations only,
//! an instance record holds its non-secret values and the names of its secret ones.

use tracing::{info, warn};

use super::access::Caller;
use super::Toolshed;
use crate::domain::{
    has_secret_settings, resolve_test_values, Instance, InstanceEnv, Scope, Server,
    ServerRegistration,
};
use crate::error::Result;
use crate::ports::{SecretOwner, SecretStore};

impl Toolshed {
    /// Registers a server with the test values its verification runs with (see
    /// [`Toolshed::register_server`]). The values are checked against the registration's
    /// declared settings before anything is stored, then kept in the [`SecretStore`] under
    /// [`SecretOwner::ServerTestValues`], never in the server record.
    ///
    /// # Errors
    /// `InvalidInput { field: "test_values" }` naming an undeclared setting (never a value);
    /// as [`Toolshed::register_server`]; `Backend` when the secret store fails (the server is
    /// then registered without test values, and the error says so).
    pub async fn register_server_with_test_values(
        &self,
        registration: ServerRegistration,
        test_values: InstanceEnv,
    ) -> Result<Server> {
        resolve_test_values(&registration.settings, &test_values)?;
        let server = self.register_server(registration).await?;
        if !test_values.is_empty() {
            let owner = SecretOwner::ServerTestValues(server.id.clone());
            self.ports.secrets.put(&owner, &test_values).await?;
            info!(server = %server.id, values = test_values.len(), "test values stored");
        }
        Ok(server)
    }

    /// [`Toolshed::register_server_with_test_values`] for a caller (scope `servers:write`).
    ///
    /// # Errors
    /// `Forbidden`; see [`Toolshed::register_server_with_test_values`].
    pub async fn register_server_with_test_values_as(
        &self,
        caller: &Caller,
        registration: ServerRegistration,
        test_values: InstanceEnv,
    ) -> Result<Server> {
        caller.principal.require(Scope::ServersWrite)?;
        self.register_server_with_test_values(registration, test_values)
            .await
    }

    /// The environment of a verification's check task: the server's stored test values plus
    /// its declared defaults. Every verification (re-verifications included) reads them again.
    pub(super) async fn check_env(&self, server: &Server) -> Result<InstanceEnv> {
        let stored = self
            .ports
            .secrets
            .get(&SecretOwner::ServerTestValues(server.id.clone()))
            .await?
            .unwrap_or_default();
        resolve_test_values(&server.settings, &stored)
    }

    /// Keeps the values of a new instance of `server`: when the server declares secret
    /// settings, the whole environment goes to the secret store (the record keeps the secret
    /// ones as names only, see [`crate::domain::without_secret_values`]).
    pub(super) async fn keep_instance_values(
        &self,
        server: &Server,
        instance: &Instance,
        env: &InstanceEnv,
    ) -> Result<()> {
        if has_secret_settings(&server.settings) && !env.is_empty() {
            self.ports
                .secrets
                .put(&SecretOwner::Instance(instance.id.clone()), env)
                .await?;
        }
        Ok(())
    }

    /// The environment an instance's task starts with: its values from the secret store when
    /// there are any, else its record's (instances without secret settings, and records from
    /// before the secret store, which kept every value).
    pub(super) async fn instance_env(&self, instance: &Instance) -> Result<InstanceEnv> {
        let stored = self
            .ports
            .secrets
            .get(&SecretOwner::Instance(instance.id.clone()))
            .await?;
        Ok(stored.unwrap_or_else(|| instance.env.clone()))
    }

    /// Forgets an instance's stored values (after its record is deleted). A failure is logged,
    /// not returned: the instance is gone either way.
    pub(super) async fn forget_instance_values(&self, instance: &crate::domain::InstanceId) {
        forget(
            self.ports.secrets.as_ref(),
            &SecretOwner::Instance(instance.clone()),
        )
        .await;
    }
}

async fn forget(store: &dyn SecretStore, owner: &SecretOwner) {
    if let Err(e) = store.delete(owner).await {
        warn!(%owner, error = %e, "could not delete stored setting values");
    }
}
