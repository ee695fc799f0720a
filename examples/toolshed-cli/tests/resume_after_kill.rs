//! Crash recovery with a real process: `toolshed servers verify` is killed with SIGKILL while
//! its image build runs, and `toolshed servers resume` (after the short lease has expired)
//! continues the run to a verified server with a digest-pinned image. Prints the time from the
//! kill to the completed run.
//!
//! Needs the Docker engine (`TOOLSHED_TEST_DOCKER=1`) and a C compiler (`cc -static`) for the
//! tiny sleeper that makes the build slow.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use toolshed_core::testing::fixtures;

/// Seconds the slow build step sleeps.
const BUILD_SLEEP_SECS: u32 = 15;
/// The lease of the test: short, so the resume can start soon after the kill.
const LEASE_TTL_SECS: &str = "3";

fn docker_enabled() -> bool {
    let set = std::env::var("TOOLSHED_TEST_DOCKER").is_ok_and(|v| !v.is_empty() && v != "0");
    if !set {
        if std::env::var("TOOLSHED_REQUIRE_BACKENDS").is_ok_and(|v| v == "1") {
            panic!("required backend missing: TOOLSHED_TEST_DOCKER is not set");
        }
        println!("skipped: resume_after_kill: TOOLSHED_TEST_DOCKER is not set");
    }
    set
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A static program that prints a marker, sleeps, and exits 0: a build step that takes a while
/// in a `FROM scratch` stage (no shell there, so `RUN` uses the exec form).
const SLEEPER: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("sleeper-started %s\n", argc > 2 ? argv[2] : "");
    fflush(stdout);
    sleep(argc > 1 ? (unsigned)atoi(argv[1]) : 10);
    printf("sleeper-done\n");
    return 0;
}
"#;

fn compile_sleeper(dir: &Path) -> PathBuf {
    let src = dir.join("sleeper.c");
    std::fs::write(&src, SLEEPER).unwrap();
    let out = dir.join("sleeper");
    let status = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc must be installed for this test");
    assert!(status.success(), "cc -static failed");
    out
}

fn toolshed(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_toolshed"));
    cmd.env("TOOLSHED_DATA_DIR", data_dir)
        .env("TOOLSHED_LEASE_TTL_SECS", LEASE_TTL_SECS)
        .env_remove("TOOLSHED_REGISTRY")
        .env("RUST_LOG", "warn,toolshed::build=info");
    cmd
}

fn json_of(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("run toolshed");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{cmd:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn a_verification_killed_during_its_build_is_resumed() {
    if !docker_enabled() {
        return;
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let tmp = TempDir(std::env::temp_dir().join(format!("toolshed-resume-{nonce}")));
    let data_dir = tmp.0.join("data");
    let repo_dir = tmp.0.join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let server = fixtures::ensure_static_binary("mcp-example-server").expect("example server");
    std::fs::copy(compile_sleeper(&tmp.0), repo_dir.join("sleeper")).unwrap();
    // The nonce in the RUN makes the slow step miss the engine's build cache on every run.
    let dockerfile = format!(
        "FROM scratch AS slow\nCOPY sleeper /sleeper\n\
         RUN [\"/sleeper\", \"{BUILD_SLEEP_SECS}\", \"{nonce}\"]\n\
         FROM scratch\nCOPY --from=slow /sleeper /slept\nCOPY server /server\nEXPOSE 8000\n\
         ENTRYPOINT [\"/server\", \"--port\", \"8000\"]\n"
    );
    let repo = fixtures::write_server_repo(&repo_dir, &server, &dockerfile).unwrap();
    let id = format!("kill-{}", &nonce[..8]);
    json_of(
        toolshed(&data_dir)
            .args(["-o", "json", "servers", "add", &id, "--repo"])
            .arg(repo.to_string()),
    );

    // Start the verification and kill it once the slow build step runs.
    let mut verify = toolshed(&data_dir)
        .args(["servers", "verify", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = verify.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let started = line.contains(&format!("sleeper-started {nonce}"));
                seen.push(line);
                if started {
                    break;
                }
            }
            Err(_) => {
                let _ = verify.kill();
                panic!(
                    "the build did not reach the slow step within 300 s; stderr:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    // Child::kill sends SIGKILL on Unix: no clean-up code of the CLI runs.
    verify.kill().unwrap();
    let killed_at = Instant::now();
    let status = verify.wait().unwrap();
    assert!(
        !status.success(),
        "the killed verify must not report success"
    );

    // The run is left in progress; resume it once its lease has expired.
    let deadline = Instant::now() + Duration::from_secs(600);
    let rows = loop {
        let rows = json_of(toolshed(&data_dir).args(["-o", "json", "servers", "resume"]));
        if rows.as_array().is_some_and(|r| !r.is_empty()) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no verification became resumable within 600 s of the kill"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let elapsed = killed_at.elapsed();
    let row = &rows[0];
    assert_eq!(row["server_id"], id.as_str(), "{rows}");
    assert_eq!(row["status"], "verified", "{rows}");
    println!(
        "kill -> completed run: {:.1} s (lease {LEASE_TTL_SECS} s, slow build step {BUILD_SLEEP_SECS} s)",
        elapsed.as_secs_f64()
    );

    let shown = json_of(toolshed(&data_dir).args(["-o", "json", "servers", "show", &id]));
    assert_eq!(shown["state"], "verified", "{shown}");
    let digest = shown["image"]["image"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(digest.starts_with("sha256:"), "no digest in {shown}");
    assert_eq!(shown["verification_count"], 1, "{shown}");
    // Nothing is left to resume.
    let again = json_of(toolshed(&data_dir).args(["-o", "json", "servers", "resume"]));
    assert_eq!(again, serde_json::json!([]));
}
