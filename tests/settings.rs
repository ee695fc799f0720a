//! A server that needs configuration, on the real engine: the Python MCP SDK server of
//! `mcp_servers/gated_server.py` answers `tools/list` only when `GATED_API_KEY` is set. Declared
//! as a required secret setting, it is verified with a test value (its tools are listed; without
//! one, "tools gated"), launched with the value (its tool answers), refused before any container
//! starts when the value is missing — and afterwards the secret value is nowhere in the data
//! directory (SQLite database included), the captured logs or the answers' JSON.
//!
//! Gated on `TOOLSHED_TEST_DOCKER` and `TOOLSHED_TEST_PYTHON_IMAGE` (see `python_servers.rs`).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use toolshed_core::domain::{
    EnvName, InstanceEnv, InstanceName, InstanceRequest, RepoUrl, ServerId, ServerRegistration,
    SettingSpec,
};
use toolshed_core::local::{LocalBackend, LocalConfig};
use toolshed_core::ports::TaskRunner;
use toolshed_core::services::{LaunchRequest, VerifyOptions};
use toolshed_tests::{backend, call_when_running, git_repo, TempDir};

const SECRET: &str = "gk-needle-4e1f9b0c77";
const TEST_SECRET: &str = "gk-test-needle-51d2e8";
const GATED_SERVER: &str = include_str!("mcp_servers/gated_server.py");

/// Log lines of the whole test binary, to scan for values.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn registration(id: &ServerId, repo: &RepoUrl) -> ServerRegistration {
    ServerRegistration {
        settings: vec![SettingSpec::new(
            EnvName::new("GATED_API_KEY").unwrap(),
            Some("Unlocks the tools".into()),
            true,
            true,
            None,
        )
        .unwrap()],
        ..ServerRegistration::new(id.clone(), repo.clone())
    }
}

fn key(value: &str) -> InstanceEnv {
    InstanceEnv::parse_assignments([format!("GATED_API_KEY={value}")]).unwrap()
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_python_server_with_a_secret_setting() {
    const TEST: &str = "a_gated_python_server_with_a_secret_setting";
    if !backend("TOOLSHED_TEST_DOCKER", TEST) || !backend("TOOLSHED_TEST_PYTHON_IMAGE", TEST) {
        return;
    }
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "toolshed_core=trace,toolshed_tests=trace",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let image = std::env::var("TOOLSHED_TEST_PYTHON_IMAGE").unwrap();
    let data = TempDir::new("toolshed-settings");
    let dockerfile = format!(
        "FROM {image}\nCOPY gated_server.py /app/server.py\n\
         CMD [\"python3\", \"/app/server.py\", \"--host\", \"0.0.0.0\", \"--port\", \"8000\", \"--path\", \"/mcp\"]\n"
    );
    let repo = git_repo(
        &data.0.join("repo"),
        &[
            ("Dockerfile", &dockerfile),
            ("gated_server.py", GATED_SERVER),
        ],
    );
    let state = data.0.join("state");
    let backend = LocalBackend::connect(LocalConfig::new(state.clone()))
        .await
        .unwrap();
    let ts = &backend.toolshed;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut answers: Vec<String> = Vec::new();

    // Verified with a test value: the tools are listed.
    let id = ServerId::new(format!("py-gated-{suffix}")).unwrap();
    let server = ts
        .register_server_with_test_values(registration(&id, &repo), key(TEST_SECRET))
        .await
        .unwrap();
    answers.push(serde_json::to_string(&server).unwrap());
    let outcome = ts
        .verify_server(&id, VerifyOptions::default())
        .await
        .expect("the gated server verifies with its test value");
    let server = outcome.server().clone();
    answers.push(serde_json::to_string(&server).unwrap());
    let mut tools: Vec<&str> = server.tools.tools.iter().map(|t| t.name.as_str()).collect();
    tools.sort_unstable();
    assert_eq!(tools, ["divide", "greet", "wait"], "{:?}", server.tools);
    assert_eq!(server.tools.gated_reason, None);

    // The same server without a test value: verified, tools gated.
    let bare = ServerId::new(format!("py-gated-bare-{suffix}")).unwrap();
    ts.register_server(registration(&bare, &repo))
        .await
        .unwrap();
    let outcome = ts
        .verify_server(&bare, VerifyOptions::default())
        .await
        .expect("a gated server still verifies");
    let gated = &outcome.server().tools;
    assert!(gated.tools.is_empty(), "{gated:?}");
    assert!(
        gated
            .gated_reason
            .as_deref()
            .is_some_and(|r| r.contains("GATED_API_KEY")),
        "{gated:?}"
    );

    // A launch without the required value is refused before a container starts.
    let before = backend
        .runner
        .list_managed(None, 1000)
        .await
        .unwrap()
        .tasks
        .len();
    let err = ts
        .launch_session(&id, LaunchRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, toolshed_core::Error::InvalidInput { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("GATED_API_KEY"), "{err}");
    answers.push(err.to_string());
    let after = backend
        .runner
        .list_managed(None, 1000)
        .await
        .unwrap()
        .tasks
        .len();
    assert_eq!(before, after, "no container was started");

    // A session with the value: its tool answers.
    let session = ts
        .launch_session(
            &id,
            LaunchRequest {
                settings: key(SECRET),
                ..LaunchRequest::default()
            },
        )
        .await
        .unwrap();
    answers.push(format!("{session:?}"));
    let mut arguments = serde_json::Map::new();
    arguments.insert("name".into(), "Ada".into());
    let output = call_when_running(
        ts,
        &session.id,
        "greet",
        arguments,
        Duration::from_secs(120),
    )
    .await;
    assert!(!output.is_error, "{output:?}");
    answers.push(serde_json::to_string(&output.content).unwrap());
    assert!(
        serde_json::to_string(&output.content)
            .unwrap()
            .contains("Hello, Ada!"),
        "{output:?}"
    );
    let stopped = ts.stop_session(&session.id).await.unwrap();
    answers.push(format!("{stopped:?}"));

    // An instance with the value: the record keeps the name only; removal deletes the value.
    let instance = ts
        .create_instance(
            &id,
            InstanceRequest {
                name: InstanceName::new(format!("gated-{suffix}")).unwrap(),
                env: key(SECRET),
                owner: None,
            },
        )
        .await
        .unwrap();
    answers.push(serde_json::to_string(&instance.view()).unwrap());
    let status = ts.instance_status(&instance.id).await.unwrap();
    answers.push(serde_json::to_string(&status.view()).unwrap());
    assert!(files_containing(&state, SECRET).is_empty());
    assert!(ts
        .remove_instance(&instance.id, Some(Duration::from_secs(1)))
        .await
        .unwrap());

    // Nowhere: the data directory (database, WAL, secret files), the logs, the answers.
    for needle in [SECRET, TEST_SECRET] {
        let found = files_containing(&state, needle);
        assert!(
            found.is_empty(),
            "a value is stored in plain text: {found:?}"
        );
        let captured = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
        assert!(!captured.is_empty(), "nothing was logged");
        assert!(!captured.contains(needle), "a value was logged");
        for answer in &answers {
            assert!(
                !answer.contains(needle),
                "an answer holds a value: {answer}"
            );
        }
    }
    // The secret store did keep the test value, encrypted.
    assert!(state.join("secrets").join("key").exists());
}
