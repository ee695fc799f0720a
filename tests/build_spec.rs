//! Build specs on the real engine: one git repository holding two servers in subfolders
//! (`servers/a`, `servers/b`), each with its own Dockerfile, verified as two servers of the same
//! commit into two distinct images; a build argument reaching the build (a label of the image,
//! with a value a shell would have run); and a context that is a symbolic link leading out of
//! the repository refused before anything is built.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use toolshed_core::domain::{
    BuildSpec, RepoUrl, RepoUrlPolicy, ServerId, ServerRegistration, VerificationState,
    VerificationStep,
};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::services::{VerifyOptions, VerifyOutcome};
use toolshed_core::testing::fixtures;
use toolshed_core::Error;
use toolshed_tests::{docker as docker_enabled, TempDir};

/// A value that would create a file if any shell ever interpolated it.
const HOSTILE: &str = "$(touch /tmp/toolshed-build-arg-ran); a; rm -rf / `id`";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// The monorepo: the example server binary in both subfolders, different Dockerfiles, and a
/// link `servers/escape` → `../../..` (outside the repository).
fn monorepo(dir: &Path, binary: &Path) -> RepoUrl {
    for (server, dockerfile) in [
        (
            "a",
            "FROM scratch\nARG FLAVOUR=plain\nLABEL toolshed.test.flavour=\"$FLAVOUR\"\n\
             COPY server /server\nEXPOSE 8000\nENTRYPOINT [\"/server\", \"--port\", \"8000\"]\n",
        ),
        (
            "b",
            "FROM scratch\nCOPY server /server\nCOPY b.txt /b.txt\nEXPOSE 8000\n\
             ENTRYPOINT [\"/server\", \"--port\", \"8000\"]\n",
        ),
    ] {
        let sub = dir.join("servers").join(server);
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::copy(binary, sub.join("server")).unwrap();
        std::fs::write(sub.join("Dockerfile"), dockerfile).unwrap();
    }
    std::fs::write(dir.join("servers/b/b.txt"), "server b\n").unwrap();
    std::os::unix::fs::symlink("../../..", dir.join("servers/escape")).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "two servers"]);
    RepoUrl::parse(
        &format!("file://{}", dir.display()),
        RepoUrlPolicy::ALLOW_FILE,
    )
    .unwrap()
}

fn registration(id: &ServerId, repo: &RepoUrl, build: BuildSpec) -> ServerRegistration {
    ServerRegistration {
        build,
        ..ServerRegistration::new(id.clone(), repo.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_of_one_monorepo_build_from_their_subfolders() {
    if !docker_enabled("two_servers_of_one_monorepo_build_from_their_subfolders") {
        return;
    }
    let data = TempDir::new("toolshed-build-spec");
    let binary =
        tokio::task::spawn_blocking(|| fixtures::ensure_static_binary("mcp-example-server"))
            .await
            .unwrap()
            .expect("example server binary");
    let repo = monorepo(&data.0.join("repo"), &binary);
    let backend = LocalBackend::connect(LocalConfig::new(data.0.join("state")))
        .await
        .unwrap();
    let ts = &backend.toolshed;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let id = |name: &str| ServerId::new(format!("{name}-{suffix}")).unwrap();
    let spec = |context: &str, args: &[(&str, &str)]| BuildSpec {
        context: context.into(),
        args: args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        ..BuildSpec::default()
    };
    let (a, b, escape) = (id("mono-a"), id("mono-b"), id("mono-escape"));
    for (server, build) in [
        (&a, spec("servers/a", &[("FLAVOUR", HOSTILE)])),
        (&b, spec("./servers/b/", &[])),
        (&escape, spec("servers/escape/tmp", &[])),
    ] {
        ts.register_server(registration(server, &repo, build))
            .await
            .unwrap();
    }
    assert_eq!(ts.get_server(&b).await.unwrap().build.context, "servers/b");

    let mut images = Vec::new();
    for server in [&a, &b] {
        let outcome = ts
            .verify_server(server, VerifyOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{server}: {e}"));
        let VerifyOutcome::Verified { server: s, .. } = outcome else {
            panic!("{server} must build: {outcome:?}")
        };
        assert_eq!(s.state, VerificationState::Verified);
        assert!(
            s.tools.tools.iter().any(|t| t.name == "echo"),
            "the example server answered: {:?}",
            s.tools.tools
        );
        images.push(s.image.unwrap());
    }
    let (image_a, image_b) = (&images[0].image, &images[1].image);
    assert_eq!(images[0].commit, images[1].commit, "one commit");
    assert_ne!(image_a.digest(), image_b.digest(), "two distinct images");
    assert_ne!(image_a.tag(), image_b.tag());
    println!(
        "servers/a → {}\nservers/b → {}",
        image_a.pinned(),
        image_b.pinned()
    );

    // The build argument reached the build verbatim: the label holds the value, nothing ran it.
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let inspect = docker.inspect_image(&image_a.tagged()).await.unwrap();
    let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(
        labels.get("toolshed.test.flavour").map(String::as_str),
        Some(HOSTILE),
        "{labels:?}"
    );
    assert!(!Path::new("/tmp/toolshed-build-arg-ran").exists());

    // A context leading out of the repository through a link: refused, not retryable, and the
    // engine never saw a build.
    let err = ts
        .verify_server(&escape, VerifyOptions::default())
        .await
        .unwrap_err();
    match &err {
        Error::VerificationFailed {
            step,
            reason,
            retryable,
            ..
        } => {
            assert_eq!(*step, VerificationStep::Build, "{err}");
            assert!(
                reason.contains("resolves outside the repository"),
                "{reason}"
            );
            assert!(!retryable, "{err}");
        }
        other => panic!("expected a refused build, got {other}"),
    }
    let s = ts.get_server(&escape).await.unwrap();
    assert_eq!(s.state, VerificationState::Failed);
    assert!(s.image.is_none());
}
