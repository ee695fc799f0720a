//! A wired `Toolshed` over the in-memory doubles, shared by the service tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use toolshed_core::domain::{
    CommitSha, GitRef, RepoSnapshot, RepoUrl, Server, ServerId, ServerRegistration, SessionId,
    StopReason, VerificationLease,
};
use toolshed_core::ports::{Clock, MetadataGenerator, ServerRepository};
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig, VerifyOptions, VerifyOutcome};
use toolshed_core::testing::{
    FakeImageBuilder, FakeMcpProbe, FakeTaskRunner, InMemoryDocsStore, InMemoryImageStore,
    InMemoryPorts, InMemoryServerRepository, InMemorySourceRepository, ManualClock,
};

pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub repo: Arc<InMemoryServerRepository>,
    pub images: Arc<InMemoryImageStore>,
    pub builder: Arc<FakeImageBuilder>,
    pub runner: Arc<FakeTaskRunner>,
    pub probe: Arc<FakeMcpProbe>,
    pub source: Arc<InMemorySourceRepository>,
    pub docs: Arc<InMemoryDocsStore>,
    pub metadata: Arc<dyn MetadataGenerator>,
    pub ports: Ports,
    pub config: ToolshedConfig,
    pub toolshed: Toolshed,
}

pub fn config() -> ToolshedConfig {
    ToolshedConfig {
        worker_id: "worker-a".to_owned(),
        ..ToolshedConfig::default()
    }
}

pub fn sha(c: char) -> CommitSha {
    CommitSha::new(c.to_string().repeat(40)).unwrap()
}

pub fn repo_url(id: &str) -> RepoUrl {
    RepoUrl::new(format!("https://github.com/example/{id}")).unwrap()
}

impl Harness {
    pub fn new() -> Self {
        Self::build(config(), None)
    }

    pub fn with_config(f: impl FnOnce(&mut ToolshedConfig)) -> Self {
        let mut c = config();
        f(&mut c);
        Self::build(c, None)
    }

    pub fn with_metadata(generator: Arc<dyn MetadataGenerator>) -> Self {
        Self::build(config(), Some(generator))
    }

    fn build(config: ToolshedConfig, metadata: Option<Arc<dyn MetadataGenerator>>) -> Self {
        let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
        let metadata: Arc<dyn MetadataGenerator> =
            metadata.unwrap_or_else(|| doubles.metadata.clone());
        let mut ports = doubles.ports();
        ports.metadata = metadata.clone();
        let toolshed = Toolshed::new(ports.clone(), config.clone()).unwrap();
        let InMemoryPorts {
            repository: repo,
            images,
            builder,
            runner,
            probe,
            source,
            docs,
            clock,
            ..
        } = doubles;
        Self {
            clock,
            repo,
            images,
            builder,
            runner,
            probe,
            source,
            docs,
            metadata,
            ports,
            config,
            toolshed,
        }
    }

    /// Another service instance (another worker) over the same doubles.
    pub fn toolshed_as(&self, config: ToolshedConfig) -> Toolshed {
        Toolshed::new(self.ports.clone(), config).unwrap()
    }

    pub fn worker(&self, id: &str) -> Toolshed {
        self.toolshed_as(ToolshedConfig {
            worker_id: id.to_owned(),
            ..self.config.clone()
        })
    }

    /// Registers `id` with a README and manifests, its `main` at commit `a…a`.
    pub async fn register(&self, id: &str, description: Option<&str>) -> Server {
        let server = self
            .toolshed
            .register_server(ServerRegistration {
                description: description.map(str::to_owned),
                ..ServerRegistration::new(ServerId::new(id).unwrap(), repo_url(id))
            })
            .await
            .unwrap();
        self.push_commit(id, 'a');
        server
    }

    /// Moves `main` of `id` to commit `c…c` (with a snapshot).
    pub fn push_commit(&self, id: &str, c: char) {
        let url = repo_url(id);
        self.source.set_commit(&url, &GitRef::main(), &sha(c));
        self.source.set_snapshot(
            &url,
            &sha(c),
            RepoSnapshot {
                readme: Some(format!(
                    "# {id}\n\n[![CI](https://ci.test/b.svg)](https://ci.test)\n\nAn MCP server that tells the time in any timezone.\n"
                )),
                files: vec!["pyproject.toml".into(), "src/server.py".into()],
                manifests: vec![("pyproject.toml".into(), "[project]\nname = \"x\"\n".into())],
                dockerfile: Some("FROM scratch\n".into()),
                truncated: false,
            },
        );
    }

    pub fn id(&self, id: &str) -> ServerId {
        ServerId::new(id).unwrap()
    }

    /// Registers and verifies `id`.
    pub async fn verified(&self, id: &str) -> Server {
        self.register(id, None).await;
        match self
            .toolshed
            .verify_server(&self.id(id), VerifyOptions::default())
            .await
            .unwrap()
        {
            VerifyOutcome::Verified { server, .. } => server,
            other => panic!("expected Verified, got {other:?}"),
        }
    }

    /// Verifies an already registered server.
    pub async fn verified_existing(&self, id: &str) -> Server {
        match self
            .toolshed
            .verify_server(&self.id(id), VerifyOptions::default())
            .await
            .unwrap()
        {
            VerifyOutcome::Verified { server, .. } => server,
            other => panic!("expected Verified, got {other:?}"),
        }
    }

    pub fn id_static(id: &str) -> ServerId {
        ServerId::new(id).unwrap()
    }

    pub async fn repo_get(&self, id: &str) -> Server {
        self.repo.get_server(&self.id(id)).await.unwrap()
    }

    pub async fn repo_lease(&self, id: &str) -> Option<VerificationLease> {
        self.repo.get_lease(&self.id(id)).await.unwrap()
    }

    pub async fn repo_update(&self, server: Server) -> Server {
        self.repo.update_server(&server).await.unwrap()
    }

    pub async fn repo_end(&self, id: &SessionId) {
        self.repo
            .end_session(id, StopReason::Requested, self.clock.now())
            .await
            .unwrap();
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }
}
