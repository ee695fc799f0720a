//! Tests on local `file://` repositories created by the tests themselves.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;
use crate::domain::RepoUrlPolicy;
use crate::Error;

struct TempRepo {
    dir: PathBuf,
}

impl Drop for TempRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl TempRepo {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("toolshed-git-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        Self { dir }
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn commit(&self, msg: &str) -> CommitSha {
        git(&self.dir, &["add", "-A"]);
        git(&self.dir, &["commit", "-q", "-m", msg]);
        CommitSha::new(git(&self.dir, &["rev-parse", "HEAD"])).unwrap()
    }

    fn url(&self) -> RepoUrl {
        RepoUrl::parse(
            &format!("file://{}", self.dir.display()),
            RepoUrlPolicy::ALLOW_FILE,
        )
        .unwrap()
    }
}

#[tokio::test]
async fn resolves_branches_and_tags_like_ls_remote() {
    let repo = TempRepo::new();
    repo.write("README.md", "# one");
    let first = repo.commit("one");
    git(&repo.dir, &["tag", "-a", "v1", "-m", "annotated"]);
    git(&repo.dir, &["tag", "light"]);
    repo.write("README.md", "# two");
    let second = repo.commit("two");
    git(&repo.dir, &["branch", "release/1.x", first.as_str()]);

    let src = GitCliSource::new();
    let url = repo.url();
    assert_eq!(
        src.resolve_commit(&url, &GitRef::main()).await.unwrap(),
        second
    );
    // The annotated tag resolves to its commit, not to the tag object.
    let v1 = src
        .resolve_commit(&url, &GitRef::new("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(v1, first);
    let light = src
        .resolve_commit(&url, &GitRef::new("light").unwrap())
        .await
        .unwrap();
    assert_eq!(light, first);
    let rel = src
        .resolve_commit(&url, &GitRef::new("release/1.x").unwrap())
        .await
        .unwrap();
    assert_eq!(rel, first);

    let err = src
        .resolve_commit(&url, &GitRef::new("nope").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "git_ref",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn missing_repository_is_invalid_repo_url() {
    let url = RepoUrl::parse(
        "file:///nonexistent/toolshed/repo",
        RepoUrlPolicy::ALLOW_FILE,
    )
    .unwrap();
    let err = GitCliSource::new()
        .resolve_commit(&url, &GitRef::main())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "repo_url",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_remote_times_out() {
    // A TCP listener that never answers: git hangs on it until our timeout kills it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = RepoUrl::parse(
        &format!("https://127.0.0.1:{port}/x/y"),
        RepoUrlPolicy::LOCAL,
    )
    .unwrap();
    let src = GitCliSource::new().with_timeout(Duration::from_millis(700));
    let err = src.resolve_commit(&url, &GitRef::main()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                operation: "git",
                ..
            }
        ),
        "{err}"
    );
    drop(listener);
}

#[tokio::test]
async fn snapshot_reads_readme_manifests_dockerfile_within_limits() {
    let repo = TempRepo::new();
    repo.write("README.md", &"x".repeat(100));
    repo.write("Dockerfile", "FROM scratch\nCOPY server /server\n");
    repo.write("Cargo.toml", "[package]\nname = \"demo\"\n");
    repo.write("sub/package.json", "{\"name\":\"demo\"}");
    repo.write("src/main.rs", "fn main() {}");
    let first = repo.commit("one");
    repo.write("later.txt", "not in the first commit");
    repo.commit("two");

    let src = GitCliSource::new();
    let snap = src
        .snapshot(&repo.url(), &first, SnapshotLimits::default())
        .await
        .unwrap();
    assert_eq!(snap.readme.as_deref(), Some("x".repeat(100).as_str()));
    assert_eq!(
        snap.files,
        [
            "Cargo.toml",
            "Dockerfile",
            "README.md",
            "src/main.rs",
            "sub/package.json"
        ]
    );
    assert_eq!(snap.manifests.len(), 2);
    assert_eq!(snap.manifests[0].0, "Cargo.toml");
    assert_eq!(snap.manifests[1].0, "sub/package.json");
    assert!(snap.dockerfile.unwrap().starts_with("FROM scratch"));
    assert!(!snap.truncated);

    let tight = SnapshotLimits {
        max_files: 2,
        max_readme_bytes: 10,
        max_file_bytes: 5,
    };
    let snap = src.snapshot(&repo.url(), &first, tight).await.unwrap();
    assert!(snap.truncated);
    assert_eq!(snap.files.len(), 2);
    assert_eq!(snap.readme.unwrap().len(), 10);
    assert_eq!(snap.dockerfile.unwrap(), "FROM ");
}

#[tokio::test]
async fn unknown_commit_is_invalid_commit() {
    let repo = TempRepo::new();
    repo.write("README.md", "x");
    repo.commit("one");
    let ghost = CommitSha::new("0123456789012345678901234567890123456789").unwrap();
    let err = GitCliSource::new()
        .snapshot(&repo.url(), &ghost, SnapshotLimits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "commit",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn archive_is_the_commit_tree() {
    let repo = TempRepo::new();
    repo.write("Dockerfile", "FROM scratch\n");
    let sha = repo.commit("one");
    let checkout = GitCliSource::new()
        .checkout(&repo.url(), &sha)
        .await
        .unwrap();
    let dir = checkout.path().to_owned();
    let tar = checkout.archive().await.unwrap();
    // A tar archive: 512-byte blocks, the first header naming a file of the tree.
    assert_eq!(tar.len() % 512, 0);
    assert!(String::from_utf8_lossy(&tar).contains("Dockerfile"));
    drop(checkout);
    assert!(!dir.exists(), "checkout directory removed on drop");
}

#[tokio::test]
async fn token_never_appears_in_errors() {
    // Something that is not a TLS server: git fails during the handshake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::Write;
            let mut s = stream;
            let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let url = RepoUrl::parse(
        &format!("https://127.0.0.1:{port}/x/y"),
        RepoUrlPolicy::LOCAL,
    )
    .unwrap();
    let src = GitCliSource::new()
        .with_token("tok-SECRET-123")
        .with_timeout(Duration::from_secs(10));
    assert!(!format!("{src:?}").contains("SECRET"));
    let err = src.resolve_commit(&url, &GitRef::main()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(
        !shown.contains(&super::cli::base64_for_tests(
            "x-access-token:tok-SECRET-123"
        )),
        "{shown}"
    );
}

/// A fake git host: records the headers of every request and answers 404 (or a redirect to
/// `redirect_to`).
struct FakeGitHost {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeGitHost {
    fn start(redirect_to: Option<u16>) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = requests.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                recorded
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let answer = match redirect_to {
                    Some(to) => format!(
                        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{to}/elsewhere/info/refs?service=git-upload-pack\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                    None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned(),
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        Self { port, requests }
    }

    fn url(&self) -> RepoUrl {
        RepoUrl::parse(
            &format!("http://127.0.0.1:{}/org/repo", self.port),
            RepoUrlPolicy::HTTPS_ONLY.with_plain_http_for_tests(),
        )
        .unwrap()
    }

    fn prefix(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn authorizations(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .flat_map(|r| r.lines())
        .filter(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_token_goes_only_to_its_host() {
    let configured = FakeGitHost::start(None);
    let other = FakeGitHost::start(None);
    let redirecting = FakeGitHost::start(Some(other.port));
    let token = "tok-SCOPED-456";
    let expected = format!(
        "Basic {}",
        cli::base64_for_tests(&format!("x-access-token:{token}"))
    );
    let src = GitCliSource::new()
        .with_token_for_url_prefix(token, &configured.prefix())
        .with_timeout(Duration::from_secs(20));

    // A repository on another host: it is asked, but never sees the token.
    let err = src.resolve_commit(&other.url(), &GitRef::main()).await;
    assert!(err.is_err());
    let seen = other.requests();
    assert!(!seen.is_empty(), "git did not reach the other host");
    assert!(
        authorizations(&seen).is_empty(),
        "token sent to another host: {seen:?}"
    );

    // The configured host gets it.
    let err = src.resolve_commit(&configured.url(), &GitRef::main()).await;
    assert!(err.is_err());
    let auth = authorizations(&configured.requests());
    assert!(
        auth.iter().any(|a| a.contains(&expected)),
        "configured host saw {auth:?}"
    );

    // A configured host that redirects: the redirect is not followed with the token attached.
    let src = GitCliSource::new()
        .with_token_for_url_prefix(token, &redirecting.prefix())
        .with_timeout(Duration::from_secs(20));
    let before = other.requests().len();
    let _ = src
        .resolve_commit(&redirecting.url(), &GitRef::main())
        .await;
    assert!(!redirecting.requests().is_empty());
    let after = other.requests();
    assert!(
        authorizations(&after[before..]).is_empty(),
        "token followed a redirect: {after:?}"
    );
}

#[test]
fn token_hosts_are_bare_host_names() {
    assert_eq!(validate_token_host("GitHub.com").unwrap(), "github.com");
    assert_eq!(
        validate_token_host("git.example.com:8443").unwrap(),
        "git.example.com:8443"
    );
    for bad in [
        "",
        "https://github.com",
        "github.com/x",
        "u@github.com",
        "a b",
    ] {
        assert!(validate_token_host(bad).is_err(), "{bad:?}");
    }
    // The default scope is github.com over https.
    let src = GitCliSource::new().with_token("t");
    assert_eq!(
        src.git.token.as_ref().map(|t| t.prefix.as_str()),
        Some("https://github.com/")
    );
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test]
async fn a_one_gib_file_is_never_read_whole() {
    let repo = TempRepo::new();
    // 1 GiB of zeros (sparse on disk; git stores it deflated to about 1 MiB): the README a
    // snapshot reads and part of the build context. One checkout serves both reads (each
    // fetch of it costs git tens of seconds on a loaded machine).
    let huge = std::fs::File::create(repo.dir.join("README.md")).unwrap();
    huge.set_len(1 << 30).unwrap();
    drop(huge);
    repo.write("Dockerfile", "FROM scratch\n");
    let commit = repo.commit("huge");
    let src = GitCliSource::new()
        .with_timeout(Duration::from_secs(300))
        .with_max_archive_bytes(64 << 20);
    let before = peak_rss();

    let checkout = src.checkout(&repo.url(), &commit).await.unwrap();
    assert_eq!(
        checkout.list_files().await.unwrap(),
        ["Dockerfile", "README.md"]
    );
    // What a snapshot does with a README: the first bytes, flagged as cut.
    let limits = SnapshotLimits::default();
    let (text, cut) = checkout
        .read_file("README.md", limits.max_readme_bytes)
        .await
        .unwrap();
    assert!(cut);
    assert_eq!(text.len(), limits.max_readme_bytes);
    // The build context: refused at the limit with a typed error.
    let err = checkout.archive().await.unwrap_err();
    assert!(
        matches!(err, Error::LimitExceeded { limit, .. } if limit == 64 << 20),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("exceeds the limit"), "{err}");

    let grown = peak_rss().saturating_sub(before);
    println!("peak RSS grew by {} MiB", grown >> 20);
    assert!(grown < 200 << 20, "peak RSS grew by {} MiB", grown >> 20);
}

impl TempRepo {
    fn link(&self, path: &str, target: &str) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }
}

fn spec(context: &str, dockerfile: &str) -> crate::domain::BuildSpec {
    crate::domain::BuildSpec {
        context: context.into(),
        dockerfile: dockerfile.into(),
        args: Default::default(),
    }
    .checked()
    .unwrap()
}

/// The names of a tar archive's regular files.
fn tar_files(tar: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at] != 0 {
        let header = &tar[at..at + 512];
        let name = String::from_utf8_lossy(&header[..100])
            .trim_end_matches('\0')
            .to_owned();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&header[124..135])
                .trim_end_matches('\0')
                .trim(),
            8,
        )
        .unwrap_or(0);
        if header[156] == b'0' || header[156] == 0 {
            names.push(name);
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    names.sort();
    names
}

/// A monorepo with two servers, links inside and links leading out.
fn monorepo() -> (TempRepo, CommitSha) {
    let repo = TempRepo::new();
    repo.write("Dockerfile.root", "FROM scratch\n");
    repo.write("servers/a/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    repo.write("servers/a/a.txt", "a\n");
    repo.write("servers/a/docker/Dockerfile.prod", "FROM scratch\n");
    repo.write("servers/b/Dockerfile", "FROM scratch\nCOPY b.txt /\n");
    repo.write("servers/b/b.txt", "b\n");
    // Inside the repository: followed.
    repo.link("servers/alias", "a");
    repo.link("aliases/deep", "../servers/./b");
    repo.link("servers/a/Dockerfile.link", "docker/Dockerfile.prod");
    // Leading out.
    repo.link("servers/up", "../..");
    repo.link("servers/abs", "/etc");
    repo.link("servers/a/Dockerfile.passwd", "/etc/passwd");
    repo.link("servers/a/Dockerfile.climb", "../../../../etc/passwd");
    repo.link("servers/a/Dockerfile.root", "../../Dockerfile.root");
    // Loops and wrong kinds.
    repo.link("loop/x", "y");
    repo.link("loop/y", "x");
    let sha = repo.commit("monorepo");
    (repo, sha)
}

#[tokio::test]
async fn build_context_is_a_subfolder_of_the_commit() {
    let (repo, sha) = monorepo();
    let checkout = GitCliSource::new()
        .checkout(&repo.url(), &sha)
        .await
        .unwrap();
    for (context, dockerfile, want_ctx, want_file) in [
        (".", "Dockerfile.root", None, "Dockerfile.root"),
        (".", "servers/a/Dockerfile", None, "servers/a/Dockerfile"),
        ("servers/a", "Dockerfile", Some("servers/a"), "Dockerfile"),
        (
            "servers/a",
            "Dockerfile.link",
            Some("servers/a"),
            "docker/Dockerfile.prod",
        ),
        (
            "servers/alias",
            "Dockerfile",
            Some("servers/a"),
            "Dockerfile",
        ),
        (
            "aliases/deep",
            "Dockerfile",
            Some("servers/b"),
            "Dockerfile",
        ),
    ] {
        let resolved = checkout
            .resolve_build(&spec(context, dockerfile))
            .await
            .unwrap_or_else(|e| panic!("{context} {dockerfile}: {e}"));
        assert_eq!(resolved.context.as_deref(), want_ctx, "{context}");
        assert_eq!(resolved.dockerfile, want_file, "{context} {dockerfile}");
    }
    // The context archive holds the subfolder's files at its root, and nothing else.
    let tar = checkout.archive_dir(Some("servers/b")).await.unwrap();
    assert_eq!(tar_files(&tar), ["Dockerfile", "b.txt"]);
    let all = tar_files(&checkout.archive().await.unwrap());
    assert!(all.contains(&"servers/a/a.txt".to_owned()), "{all:?}");
}

#[tokio::test]
async fn build_paths_leading_out_of_the_repository_are_refused() {
    let (repo, sha) = monorepo();
    let checkout = GitCliSource::new()
        .checkout(&repo.url(), &sha)
        .await
        .unwrap();
    for (context, dockerfile, want_field, want_scope) in [
        ("servers/up", "Dockerfile", "build.context", "repository"),
        ("servers/up/x", "Dockerfile", "build.context", "repository"),
        ("servers/abs", "Dockerfile", "build.context", "repository"),
        (
            "servers/a",
            "Dockerfile.passwd",
            "build.dockerfile",
            "repository",
        ),
        (
            "servers/a",
            "Dockerfile.climb",
            "build.dockerfile",
            "repository",
        ),
        // Inside the repository but outside the context the engine is sent.
        (
            "servers/a",
            "Dockerfile.root",
            "build.dockerfile",
            "build context",
        ),
    ] {
        let err = checkout
            .resolve_build(&spec(context, dockerfile))
            .await
            .unwrap_err();
        match &err {
            Error::BuildPathEscape { field, scope, .. } => {
                assert_eq!(
                    (*field, *scope),
                    (want_field, want_scope),
                    "{context} {dockerfile}"
                )
            }
            other => panic!("{context} {dockerfile}: expected BuildPathEscape, got {other:?}"),
        }
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("resolves outside"), "{err}");
    }
    for (context, dockerfile, field) in [
        ("servers/c", "Dockerfile", "build.context"),
        ("servers/a/a.txt", "Dockerfile", "build.context"),
        ("servers/a", "docker", "build.dockerfile"),
        ("servers/a", "missing", "build.dockerfile"),
        ("loop/x", "Dockerfile", "build.context"),
    ] {
        match checkout.resolve_build(&spec(context, dockerfile)).await {
            Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{context}"),
            other => panic!("{context} {dockerfile}: expected InvalidInput, got {other:?}"),
        }
    }
}
