//! Registering and reading servers.

use super::Toolshed;
use crate::domain::{Server, ServerId, ServerRegistration};
use crate::error::Result;

impl Toolshed {
    /// Registers a new, unverified server.
    ///
    /// # Errors
    /// `InvalidInput` for a bad registration (a repository URL outside
    /// [`ToolshedConfig::repo_policy`](super::ToolshedConfig::repo_policy) included),
    /// `AlreadyExists` if the id is taken.
    pub async fn register_server(&self, registration: ServerRegistration) -> Result<Server> {
        registration.repo.check(self.config.repo_policy)?;
        let server = Server::register(registration, self.ports.clock.now())?;
        self.ports.repository.insert_server(&server).await
    }

    /// Reads a server.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get_server(&self, id: &ServerId) -> Result<Server> {
        self.ports.repository.get_server(id).await
    }

    /// Lists servers by id, after `after`, at most `limit` (capped at 1000).
    pub async fn list_servers(&self, after: Option<ServerId>, limit: usize) -> Result<Vec<Server>> {
        self.ports
            .repository
            .list_servers(after, limit.min(1000))
            .await
    }
}
