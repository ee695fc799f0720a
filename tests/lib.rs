//! Shared fixtures of the workspace integration tests: backend gating, a tiny static test
//! program in a `FROM scratch` image (traps SIGTERM, writes escape sequences), and a local
//! backend in a temporary data directory.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use toolshed_core::domain::{ImageDigest, ImageRef, ImageTag};

/// Whether a backend-gated test may run: `true` when `var` is set; otherwise prints
/// `skipped: <reason>` and returns `false`, or panics under `TOOLSHED_REQUIRE_BACKENDS=1`.
pub fn backend(var: &str, test: &str) -> bool {
    let set = std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0");
    if set {
        return true;
    }
    let reason = format!("{test}: {var} is not set");
    if std::env::var("TOOLSHED_REQUIRE_BACKENDS").is_ok_and(|v| v == "1") {
        panic!("required backend missing: {reason}");
    }
    println!("skipped: {reason}");
    false
}

/// Whether the Docker engine tests may run.
pub fn docker(test: &str) -> bool {
    backend("TOOLSHED_TEST_DOCKER", test)
}

/// A fresh temporary directory (removed by [`TempDir`]'s drop).
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates one.
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test program: `trap` mode prints a few lines (some with ANSI escapes and control
/// characters), then on SIGTERM prints `got SIGTERM`, drains for one second, prints `drained` and
/// exits 0; `ignore` mode ignores SIGTERM (the engine must SIGKILL it).
const PROGRAM: &str = r#"
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t term = 0;
static void on_term(int s) { (void)s; term = 1; }
static void say(const char *s) { write(1, s, strlen(s)); }
static void nap(long ms) { struct timespec t = { ms / 1000, (ms % 1000) * 1000000L }; nanosleep(&t, 0); }
int main(int argc, char **argv) {
    int ignore = argc > 1 && strcmp(argv[1], "ignore") == 0;
    if (ignore) signal(SIGTERM, SIG_IGN); else signal(SIGTERM, on_term);
    say("started\n");
    say("\x1b[31mred alert\x1b[0m\n");
    say("bell\x07 and \x1b]0;evil title\x07title gone\n");
    say("fake\rforged: admin logged in\n");
    for (;;) {
        if (term) {
            say("got SIGTERM\n");
            nap(1000);
            say("drained\n");
            return 0;
        }
        nap(20);
    }
}
"#;

/// Repository of the test image in the engine.
pub const TEST_IMAGE_REPO: &str = "toolshed-test/sigterm";

/// Builds the test program statically with `cc` and an image `FROM scratch` around it, and
/// returns the image pinned by its id.
///
/// # Errors
/// When `cc` or the engine fail.
pub async fn test_image(docker: &Docker) -> anyhow::Result<ImageRef> {
    let dir = TempDir::new("toolshed-test-image");
    let src = dir.0.join("prog.c");
    std::fs::write(&src, PROGRAM)?;
    let bin = dir.0.join("prog");
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .context("cannot run cc (a C compiler with static libc is needed for the test image)")?;
    if !out.status.success() {
        bail!("cc failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut tar = tar::Builder::new(Vec::new());
    let dockerfile = b"FROM scratch\nCOPY prog /prog\nENTRYPOINT [\"/prog\"]\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", &dockerfile[..])?;
    tar.append_path_with_name(&bin, "prog")?;
    let context = tar.into_inner()?;
    let tag = "latest";
    let name = format!("{TEST_IMAGE_REPO}:{tag}");
    let options = BuildImageOptionsBuilder::default()
        .t(&name)
        .rm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item?;
        if let Some(e) = info.error_detail {
            bail!("test image build failed: {:?}", e.message);
        }
    }
    let id = docker.inspect_image(&name).await?.id.context("image id")?;
    Ok(ImageRef::new(
        TEST_IMAGE_REPO,
        ImageTag::new(tag)?,
        ImageDigest::new(id)?,
    )?)
}

/// A minimal stdio MCP server (one line of JSON-RPC per message) with one tool, `ping` → `pong`:
/// a stdio-only server for the stdio-bridge build.
const STDIO_SERVER: &str = r#"
#include <stdio.h>
#include <string.h>
static char line[1 << 16];
static void field(const char *key, char *out, size_t cap, const char *dflt) {
    const char *p = strstr(line, key);
    size_t n = 0;
    if (!p) { snprintf(out, cap, "%s", dflt); return; }
    p += strlen(key);
    int in_str = 0;
    while (*p && n + 1 < cap) {
        if (*p == '"') in_str = !in_str;
        if (!in_str && (*p == ',' || *p == '}')) break;
        out[n++] = *p++;
    }
    out[n] = 0;
}
int main(void) {
    char id[128], method[128], version[128];
    while (fgets(line, sizeof line, stdin)) {
        if (!strstr(line, "\"id\":")) continue; /* notifications */
        field("\"id\":", id, sizeof id, "null");
        field("\"method\":", method, sizeof method, "\"\"");
        if (!strcmp(method, "\"initialize\"")) {
            field("\"protocolVersion\":", version, sizeof version, "\"2025-06-18\"");
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"protocolVersion\":%s,\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"c-stdio\",\"version\":\"1.0\"}}}\n", id, version);
        } else if (!strcmp(method, "\"tools/list\"")) {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"tools\":[{\"name\":\"ping\",\"description\":\"Answers pong.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{}}}]}}\n", id);
        } else if (!strcmp(method, "\"tools/call\"")) {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"pong\"}],\"isError\":false}}\n", id);
        } else if (!strcmp(method, "\"ping\"")) {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\n", id);
        } else {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":-32601,\"message\":\"method not found\"}}\n", id);
        }
        fflush(stdout);
    }
    return 0;
}
"#;

/// Compiles the stdio MCP server statically into `dir/stdio-server`.
///
/// # Errors
/// When `cc` fails.
pub fn stdio_server_binary(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let src = dir.join("stdio-server.c");
    std::fs::write(&src, STDIO_SERVER)?;
    let bin = dir.join("stdio-server");
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .context("cannot run cc")?;
    if !out.status.success() {
        bail!("cc failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(bin)
}

/// A git repository at `dir` with one commit (on `main`) holding `files`, as a `file://` URL.
///
/// # Panics
/// When a file cannot be written or git fails: a test set-up error.
pub fn git_repo(dir: &std::path::Path, files: &[(&str, &str)]) -> toolshed_core::domain::RepoUrl {
    std::fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "-m",
            "server",
        ],
    ] {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
    toolshed_core::domain::RepoUrl::parse(
        &format!("file://{}", dir.canonicalize().unwrap().display()),
        toolshed_core::domain::RepoUrlPolicy::ALLOW_FILE,
    )
    .unwrap()
}

/// Calls `tool` with `arguments` on a playground session once its status says running, polling
/// every 250 ms: a hardened container starts a Python server in seconds on a loaded machine, so
/// the deadline is generous. Panics when the session ends, or with the last error after
/// `deadline`.
pub async fn call_when_running(
    ts: &toolshed_core::services::Toolshed,
    session: &toolshed_core::domain::SessionId,
    tool: &str,
    arguments: serde_json::Map<String, serde_json::Value>,
    deadline: std::time::Duration,
) -> toolshed_core::domain::ToolCallOutput {
    use toolshed_core::domain::{SessionState, ToolCall};
    let started = std::time::Instant::now();
    loop {
        let status = ts.session_status(session).await.unwrap();
        assert!(status.state.is_live(), "session ended: {status:?}");
        let attempt = if status.state == SessionState::Running {
            ts.execute_tool(session, ToolCall::new(tool, arguments.clone()).unwrap())
                .await
        } else {
            Err(toolshed_core::Error::invalid("state", "not running yet"))
        };
        match attempt {
            Ok(output) => return output,
            Err(e) if started.elapsed() > deadline => {
                panic!("no answer from {tool} within {deadline:?}: {e}")
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
}
