//! Untrusted servers stay contained on the Docker engine: builds are bounded (memory, CPU) and
//! stop in the engine when they time out or are cancelled; a server with egress `none` cannot
//! connect out while its endpoint stays reachable from the host.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListContainersOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use toolshed_core::adapters::docker::{
    BuilderConfig, DockerImageBuilder, DockerTaskRunner, InstanceSpec, RunnerConfig,
};
use toolshed_core::adapters::git::GitCliSource;
use toolshed_core::domain::{
    CommitSha, Egress, GitRef, ImageDigest, ImageRef, ImageTag, ServerId, ServerRegistration,
    TaskHandle, TaskResources, Transport, VerificationStep,
};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::ports::{BuildRequest, BuildStatus, ImageBuilder, SourceRepository};
use toolshed_core::services::VerifyOptions;
use toolshed_core::testing::fixtures;
use toolshed_core::Error;
use toolshed_tests::{docker as docker_enabled, TempDir};

/// A stand-in for `/bin/sh`: `sh -c "sleep N"` sleeps N seconds, anything else exits 0. Enough
/// for a `RUN sleep 600` step in an image that has nothing else.
const SLEEP_SH: &str = r#"
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "-c") == 0 && strncmp(argv[2], "sleep ", 6) == 0) {
        struct timespec t = { atol(argv[2] + 6), 0 };
        nanosleep(&t, 0);
    }
    return 0;
}
"#;

fn compile(dir: &Path, name: &str, source: &str) -> anyhow::Result<std::path::PathBuf> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source)?;
    let bin = dir.join(name);
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .context("cannot run cc (a C compiler with static libc is needed)")?;
    if !out.status.success() {
        bail!("cc failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(bin)
}

/// Builds `FROM scratch` + `files` (name, path, mode) as `tag`, returns the image id.
async fn scratch_image(
    docker: &Docker,
    tag: &str,
    dockerfile: &str,
    files: &[(&Path, &str)],
) -> anyhow::Result<String> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    for (path, name) in files {
        tar.append_path_with_name(path, name)?;
    }
    let context = tar.into_inner()?;
    let options = BuildImageOptionsBuilder::default().t(tag).rm(true).build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        if let Some(e) = item?.error_detail {
            bail!("image build failed: {:?}", e.message);
        }
    }
    docker
        .inspect_image(tag)
        .await?
        .id
        .context("image without id")
}

/// A base image whose `/bin/sh` can only sleep: a `RUN sleep 600` on it runs for 10 minutes.
struct SleepBase {
    docker: Docker,
    tag: String,
    id: String,
}

impl SleepBase {
    async fn build(docker: &Docker, dir: &Path) -> Self {
        let sh = compile(dir, "sleep-sh", SLEEP_SH).expect("compile the sleeping shell");
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let tag = format!("toolshed-test/sleep-sh:{}", &unique[..12]);
        // The label makes the image id this test's own: the same content would otherwise give
        // every test the same id, and `containers()` (by ancestor) would see the others' steps.
        let id = scratch_image(
            docker,
            &tag,
            &format!("FROM scratch\nCOPY sleep-sh /bin/sh\nLABEL toolshed.test.base={unique}\n"),
            &[(&sh, "sleep-sh")],
        )
        .await
        .expect("base image");
        Self {
            docker: docker.clone(),
            tag,
            id,
        }
    }

    /// Containers (any state) created from the base image: the build step containers.
    async fn containers(&self) -> Vec<String> {
        let filters = HashMap::from([("ancestor", vec![self.id.clone()])]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(opts))
            .await
            .expect("list containers")
            .into_iter()
            .filter_map(|c| c.id)
            .collect()
    }

    /// Waits (generously) until no container of the base image remains; the message lists them.
    async fn assert_no_container_remains(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = self.containers().await;
            if left.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "build containers still exist {} s after the build was stopped: {left:?}",
                    within.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn remove(self) {
        for id in self.containers().await {
            let _ = self
                .docker
                .remove_container(
                    &id,
                    Some(
                        bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                            .force(true)
                            .build(),
                    ),
                )
                .await;
        }
        let opts = RemoveImageOptionsBuilder::new().force(true).build();
        let _ = self.docker.remove_image(&self.tag, Some(opts), None).await;
    }
}

/// A git repository whose Dockerfile sleeps ten minutes on `base`.
fn sleeping_repo(dir: &Path, base: &str, filler: &Path) -> toolshed_core::domain::RepoUrl {
    fixtures::write_server_repo(dir, filler, &format!("FROM {base}\nRUN sleep 600\n"))
        .expect("repository")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_are_bounded_and_a_cancelled_build_leaves_no_container() {
    if !docker_enabled("builds_are_bounded_and_a_cancelled_build_leaves_no_container") {
        return;
    }
    let docker = toolshed_core::adapters::docker::connect().await.unwrap();
    let tmp = TempDir::new("toolshed-build-bounds");
    let base = SleepBase::build(&docker, &tmp.0).await;
    let repo = sleeping_repo(&tmp.0.join("repo"), &base.tag, &tmp.0.join("sleep-sh"));
    let git = GitCliSource::new();
    let commit: CommitSha = git
        .resolve_commit(&repo, &GitRef::main())
        .await
        .expect("resolve main");
    let config = BuilderConfig {
        memory_mib: 256,
        cpus: 0.5,
        timeout: Duration::from_secs(600),
    };
    let builder = DockerImageBuilder::new(docker.clone(), git).with_config(config);
    let server = ServerId::new("bounded").unwrap();
    let build = builder
        .start_build(&BuildRequest {
            dockerfile: None,
            build: Default::default(),
            tag: ImageTag::for_build(&server, &commit),
            server_id: server,
            repo,
            commit,
            repository: "toolshed-test/bounded".to_owned(),
            transport: Transport::default(),
            idempotency_token: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap();

    // The `RUN sleep 600` step's container appears, with the configured limits.
    let deadline = Instant::now() + Duration::from_secs(60);
    let step = loop {
        if let Some(id) = base.containers().await.into_iter().next() {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the build step never started: {:?}",
            builder.build_status(&build).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let host = docker
        .inspect_container(&step, None)
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(host.memory, Some(256 * 1024 * 1024), "memory of {step}");
    assert_eq!(host.memory_swap, Some(256 * 1024 * 1024), "no swap on top");
    assert_eq!(host.cpu_period, Some(100_000));
    assert_eq!(host.cpu_quota, Some(50_000), "half a CPU");

    builder.cancel_build(&build).await.unwrap();
    base.assert_no_container_remains(Duration::from_secs(30))
        .await;
    assert!(
        matches!(
            builder.build_status(&build).await.unwrap(),
            BuildStatus::Failed { ref reason, .. } if reason.contains("cancelled")
        ),
        "a cancelled build reads as failed"
    );
    base.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_whose_build_times_out_leaves_no_build_container() {
    if !docker_enabled("a_verification_whose_build_times_out_leaves_no_build_container") {
        return;
    }
    let docker = toolshed_core::adapters::docker::connect().await.unwrap();
    let tmp = TempDir::new("toolshed-build-timeout");
    let base = SleepBase::build(&docker, &tmp.0).await;
    let repo = sleeping_repo(&tmp.0.join("repo"), &base.tag, &tmp.0.join("sleep-sh"));
    let mut config = LocalConfig::new(tmp.0.join("data"));
    config.service.build_timeout = Duration::from_secs(2);
    let backend = LocalBackend::connect(config).await.unwrap();
    let id = ServerId::new(format!(
        "sleepy-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))
    .unwrap();
    backend
        .toolshed
        .register_server(ServerRegistration::new(id.clone(), repo))
        .await
        .unwrap();

    let e = backend
        .toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::VerificationFailed { step: VerificationStep::Build, ref reason, .. }
                if reason.contains("did not finish within 2 s")
        ),
        "{e}"
    );
    base.assert_no_container_remains(Duration::from_secs(30))
        .await;
    base.remove().await;
}

/// `egress-probe PORT TARGET_IP TARGET_PORT`: serves PORT; on each connection it tries to connect
/// to TARGET (3 s at most) and answers one line, `connected` or `failed: <reason>`.
const EGRESS_PROBE: &str = r#"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
static const char *try_connect(const char *ip, int port) {
    static char why[128];
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(port);
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) return "failed: bad address";
    fcntl(c, F_SETFL, O_NONBLOCK);
    if (connect(c, (struct sockaddr *)&a, sizeof a) == 0) { close(c); return "connected"; }
    if (errno != EINPROGRESS) { snprintf(why, sizeof why, "failed: %s", strerror(errno)); close(c); return why; }
    struct pollfd p = { c, POLLOUT, 0 };
    if (poll(&p, 1, 3000) != 1) { close(c); return "failed: timed out"; }
    int err = 0; socklen_t len = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len);
    close(c);
    if (err) { snprintf(why, sizeof why, "failed: %s", strerror(err)); return why; }
    return "connected";
}
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 8)) return 1;
    for (;;) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        char line[160];
        int n = snprintf(line, sizeof line, "%s\n", try_connect(argv[2], atoi(argv[3])));
        write(c, line, n);
        close(c);
    }
}
"#;

/// Starts an instance of the egress probe and waits (generously) for its endpoint.
async fn probe_instance(
    runner: &DockerTaskRunner,
    image: &ImageRef,
    name: &str,
    egress: Egress,
    target: (&str, u16),
) -> (TaskHandle, String) {
    let spec = InstanceSpec {
        instance_id: name.to_owned(),
        server_id: ServerId::new("egress").unwrap(),
        image: image.clone(),
        container_port: 8000,
        mcp_path: "/mcp".to_owned(),
        resources: TaskResources {
            egress,
            ..TaskResources::default()
        },
        env: Vec::new(),
        args: vec!["8000".to_owned(), target.0.to_owned(), target.1.to_string()],
    };
    let handle = runner.start_instance(&spec).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((_, status)) = runner.inspect(&handle).await.unwrap() {
            if let Some(endpoint) = status.endpoint {
                return (handle, format!("{}:{}", endpoint.host, endpoint.port));
            }
            assert!(status.state.is_live(), "{name} ended: {status:?}");
        }
        assert!(Instant::now() < deadline, "{name} never got an endpoint");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connects to the probe's endpoint (the path the MCP probe takes) and reads its answer.
async fn ask(addr: &str) -> String {
    use tokio::io::AsyncReadExt;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(mut stream) => {
                let mut answer = String::new();
                let read = tokio::time::timeout(
                    Duration::from_secs(20),
                    stream.read_to_string(&mut answer),
                )
                .await;
                if matches!(read, Ok(Ok(_))) && !answer.is_empty() {
                    return answer.trim().to_owned();
                }
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "the endpoint {addr} stayed unreachable: {e}"
            ),
        }
        assert!(Instant::now() < deadline, "no answer from {addr}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_none_blocks_outbound_connections_but_keeps_the_endpoint_reachable() {
    if !docker_enabled("egress_none_blocks_outbound_connections_but_keeps_the_endpoint_reachable") {
        return;
    }
    let docker = toolshed_core::adapters::docker::connect().await.unwrap();
    let tmp = TempDir::new("toolshed-egress");
    let bin = compile(&tmp.0, "egress-probe", EGRESS_PROBE).expect("compile the egress probe");
    let tag = format!(
        "toolshed-test/egress-probe:{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let id = scratch_image(
        &docker,
        &tag,
        "FROM scratch\nCOPY egress-probe /egress-probe\nENTRYPOINT [\"/egress-probe\"]\n",
        &[(&bin, "egress-probe")],
    )
    .await
    .expect("probe image");
    let image = ImageRef::new(
        "toolshed-test/egress-probe",
        ImageTag::new("t").unwrap(),
        ImageDigest::new(id).unwrap(),
    )
    .unwrap();
    let runner = DockerTaskRunner::new(
        docker.clone(),
        RunnerConfig::new(
            toolshed_core::domain::DeploymentId::new(format!(
                "containment-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ))
            .unwrap(),
        ),
    );
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];

    // Somewhere "outside" to connect to: another container on the engine's default network.
    let (outside, _) = probe_instance(
        &runner,
        &image,
        &format!("egress-outside-{run}"),
        Egress::Internet,
        ("127.0.0.1", 1),
    )
    .await;
    let outside_ip = docker
        .inspect_container(outside.as_str(), None)
        .await
        .unwrap()
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.get("bridge").and_then(|b| b.ip_address.clone()))
        .filter(|ip| !ip.is_empty())
        .expect("the outside container's address");

    // Control: with internet egress the same connection succeeds.
    let (open, open_addr) = probe_instance(
        &runner,
        &image,
        &format!("egress-open-{run}"),
        Egress::Internet,
        (&outside_ip, 8000),
    )
    .await;
    assert_eq!(ask(&open_addr).await, "connected", "internet egress");

    // Egress none: the endpoint answers (the probe's path works), the connection out fails.
    let (sealed, sealed_addr) = probe_instance(
        &runner,
        &image,
        &format!("egress-none-{run}"),
        Egress::None,
        (&outside_ip, 8000),
    )
    .await;
    let answer = ask(&sealed_addr).await;
    assert!(
        answer.starts_with("failed"),
        "egress none connected out: {answer}"
    );
    let network = docker
        .inspect_network(
            &RunnerConfig::new(
                toolshed_core::domain::DeploymentId::new(format!(
                    "containment-{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                ))
                .unwrap(),
            )
            .no_egress_network,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        network.internal,
        Some(true),
        "the no-egress network is internal"
    );

    for handle in [sealed, open, outside] {
        runner
            .stop_with_drain(&handle, Duration::ZERO)
            .await
            .unwrap();
    }
    let opts = RemoveImageOptionsBuilder::new().force(true).build();
    let _ = docker.remove_image(&tag, Some(opts), None).await;
}
