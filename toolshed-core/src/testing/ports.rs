//! Every port wired to its in-memory double, in one place.

use std::sync::Arc;

use super::{
    FakeImageBuilder, FakeMcpProbe, FakeTaskRunner, HeuristicMetadataGenerator, InMemoryDocsStore,
    InMemoryImageStore, InMemorySecretStore, InMemoryServerRepository, InMemorySourceRepository,
    ManualClock,
};
use crate::services::Ports;

/// The in-memory composition: one double per port, kept with their concrete types so a test can
/// script them (push commits, fail builds, end tasks, move the clock) while the services use the
/// same instances through [`InMemoryPorts::ports`].
///
/// The builder pushes into [`Self::images`] and the runner stamps tasks with [`Self::clock`], as
/// they would against real backends.
#[derive(Debug, Clone)]
pub struct InMemoryPorts {
    /// Servers, leases, sessions.
    pub repository: Arc<InMemoryServerRepository>,
    /// Built images.
    pub images: Arc<InMemoryImageStore>,
    /// Builds that follow queued scripts (default: succeed at once).
    pub builder: Arc<FakeImageBuilder>,
    /// Check tasks and sessions.
    pub runner: Arc<FakeTaskRunner>,
    /// Scripted MCP answers.
    pub probe: Arc<FakeMcpProbe>,
    /// Git commits and snapshots the test sets.
    pub source: Arc<InMemorySourceRepository>,
    /// Offline metadata.
    pub metadata: Arc<HeuristicMetadataGenerator>,
    /// Long docs.
    pub docs: Arc<InMemoryDocsStore>,
    /// Secret values.
    pub secrets: Arc<InMemorySecretStore>,
    /// Time, moved by the test.
    pub clock: Arc<ManualClock>,
}

impl InMemoryPorts {
    /// Fresh, empty doubles around `clock`.
    pub fn new(clock: Arc<ManualClock>) -> Self {
        let images = Arc::new(InMemoryImageStore::default());
        Self {
            repository: Arc::new(InMemoryServerRepository::new()),
            builder: Arc::new(FakeImageBuilder::new(images.clone())),
            images,
            runner: Arc::new(FakeTaskRunner::new(clock.clone())),
            probe: Arc::new(FakeMcpProbe::new()),
            source: Arc::new(InMemorySourceRepository::new()),
            metadata: Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
            docs: Arc::new(InMemoryDocsStore::new()),
            secrets: Arc::new(InMemorySecretStore::new()),
            clock,
        }
    }

    /// The doubles as the services' [`Ports`] (the same instances, shared).
    pub fn ports(&self) -> Ports {
        Ports {
            repository: self.repository.clone(),
            images: self.images.clone(),
            builder: self.builder.clone(),
            runner: self.runner.clone(),
            probe: self.probe.clone(),
            source: self.source.clone(),
            metadata: self.metadata.clone(),
            docs: self.docs.clone(),
            secrets: self.secrets.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl From<&InMemoryPorts> for Ports {
    fn from(doubles: &InMemoryPorts) -> Self {
        doubles.ports()
    }
}

impl From<InMemoryPorts> for Ports {
    fn from(doubles: InMemoryPorts) -> Self {
        doubles.ports()
    }
}

impl Ports {
    /// Every port on its in-memory double (feature `testing`); see [`InMemoryPorts`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
    /// use toolshed_core::testing::ManualClock;
    ///
    /// let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
    /// let toolshed = Toolshed::new(doubles.ports(), ToolshedConfig::default()).unwrap();
    /// # let _ = toolshed;
    /// ```
    pub fn in_memory(clock: Arc<ManualClock>) -> InMemoryPorts {
        InMemoryPorts::new(clock)
    }
}
