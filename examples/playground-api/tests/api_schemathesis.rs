//! Schemathesis (PyPI `schemathesis`) against the API over the in-memory backend: every check
//! (`--checks all`) on cases generated from `/openapi.json`, bounded by `--max-examples`. The run
//! must end with 0 failures: the document describes every body, parameter and answer, and the
//! API keeps to it.
//!
//! The binary is `TOOLSHED_TEST_SCHEMATHESIS`, else `schemathesis` in `TOOLSHED_TEST_VENV_BIN`
//! (both exported by `scripts/test.sh`); without either the test is skipped, or fails under
//! `TOOLSHED_REQUIRE_BACKENDS=1`. `TOOLSHED_TEST_SCHEMATHESIS_HEADER` (`Name: value`, repeatable
//! with newlines) adds headers to every request; the run always sends an admin API key of its
//! own as `Authorization: Bearer` (an `X-Api-Key` that schemathesis adds takes precedence, so its
//! invalid-credential checks still see 401), since every route but `/healthz` and
//! `/openapi.json` requires credentials.
//! `TOOLSHED_TEST_SCHEMATHESIS_MAX_EXAMPLES` overrides the bound (default 25),
//! `TOOLSHED_TEST_SCHEMATHESIS_SEED` the seed.
//!
//! Two settings differ from schemathesis's defaults: a schema-valid launch may answer 412
//! `not_verified` (the server has no verified image yet — its state, not the request's data), so
//! 412 joins the statuses `positive_data_acceptance` accepts; and three operations whose rules a
//! JSON Schema cannot state (a setting name declared twice, a server.json's own rules, the
//! deployment's warm-pool cap) may also answer 422 to schema-valid data.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use support::{create_key, Served};
use toolshed_core::domain::{CommitSha, GitRef, RepoSnapshot, RepoUrl, Scope, ToolsOutcome};
use toolshed_core::services::{Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::{
    FakeImageBuilder, FakeMcpProbe, FakeTaskRunner, HeuristicMetadataGenerator, InMemoryDocsStore,
    InMemoryImageStore, InMemoryServerRepository, InMemorySourceRepository, ManualClock,
};

/// The schemathesis binary, or `None` (skip) when the environment has none.
fn schemathesis() -> Option<PathBuf> {
    let explicit = std::env::var("TOOLSHED_TEST_SCHEMATHESIS")
        .ok()
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let from_venv = std::env::var("TOOLSHED_TEST_VENV_BIN")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|d| PathBuf::from(d).join("schemathesis"));
    match explicit.or(from_venv).filter(|p| p.is_file()) {
        Some(p) => Some(p),
        None => {
            assert!(
                std::env::var("TOOLSHED_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                "schemathesis not found (TOOLSHED_TEST_SCHEMATHESIS or TOOLSHED_TEST_VENV_BIN/schemathesis) but TOOLSHED_REQUIRE_BACKENDS=1"
            );
            println!("skipped: no schemathesis (set TOOLSHED_TEST_SCHEMATHESIS or TOOLSHED_TEST_VENV_BIN)");
            None
        }
    }
}

/// The in-memory service with one verified server (`time`) whose source is known, so generated
/// requests also reach the paths behind a verified image.
async fn service() -> Toolshed {
    let clock = Arc::new(ManualClock::fixed());
    // A tool's arguments are checked against the tool's own input schema, which the document
    // cannot describe (it is the MCP server's): here the tool takes any object, so a call the
    // document allows is a call the tool accepts. Argument checks have HTTP tests of their own.
    let probe = FakeMcpProbe::new();
    let mut report = FakeMcpProbe::time_server_report();
    if let ToolsOutcome::Listed { tools } = &mut report.tools {
        for tool in tools {
            tool.input_schema = serde_json::json!({"type": "object"});
        }
    }
    probe.set_default_report(report);
    let images = Arc::new(InMemoryImageStore::default());
    let source = Arc::new(InMemorySourceRepository::new());
    let ports = Ports {
        repository: Arc::new(InMemoryServerRepository::new()),
        images: images.clone(),
        builder: Arc::new(FakeImageBuilder::new(images)),
        runner: Arc::new(FakeTaskRunner::new(clock.clone())),
        probe: Arc::new(probe),
        source: source.clone(),
        metadata: Arc::new(HeuristicMetadataGenerator::new(clock.clone())),
        docs: Arc::new(InMemoryDocsStore::new()),
        secrets: Arc::new(toolshed_core::testing::InMemorySecretStore::new()),
        clock,
    };
    let toolshed = Toolshed::new(
        ports,
        ToolshedConfig {
            worker_id: "schemathesis".to_owned(),
            ..ToolshedConfig::default()
        },
    )
    .unwrap();
    let repo = RepoUrl::new("https://github.com/example/time").unwrap();
    let sha = CommitSha::new("a".repeat(40)).unwrap();
    source.set_commit(&repo, &GitRef::main(), &sha);
    source.set_snapshot(
        &repo,
        &sha,
        RepoSnapshot {
            readme: Some("# time\n\nAn MCP server that tells the time.\n".to_owned()),
            files: vec!["pyproject.toml".into()],
            manifests: vec![],
            dockerfile: Some("FROM scratch\n".into()),
            truncated: false,
        },
    );
    toolshed
}

/// Schemathesis's account of the run: the phases with their counts, then the summary (test
/// cases generated, failures, warnings).
fn summary(output: &str) -> Vec<&str> {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("Examples ("))
        .unwrap_or(0);
    lines[start..]
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .take_while(|l| {
            !l.contains("=== ERRORS ===")
                && !l.contains("=== FAILURES ===")
                && !l.contains("=== WARNINGS ===")
                && !l.contains("=== SUMMARY ===")
        })
        .chain(
            lines
                .iter()
                .skip_while(|l| !l.contains("=== SUMMARY ==="))
                .copied()
                .filter(|l| !l.trim().is_empty()),
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_all_checks_end_with_zero_failures() {
    let Some(bin) = schemathesis() else {
        return;
    };
    let toolshed = service().await;
    let api = Served::start(toolshed.clone()).await;
    // A verified server and a live session: generated requests that name them get past 404.
    let (status, body) = api
        .post(
            "/api/servers",
            serde_json::json!({"id": "time", "repo": "https://github.com/example/time", "git_ref": "main"}),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{body}");
    let id = toolshed_core::domain::ServerId::new("time").unwrap();
    toolshed
        .verify_server(&id, toolshed_core::services::VerifyOptions::default())
        .await
        .unwrap();

    let max_examples = std::env::var("TOOLSHED_TEST_SCHEMATHESIS_MAX_EXAMPLES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(25);
    let seed = std::env::var("TOOLSHED_TEST_SCHEMATHESIS_SEED")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "20261129".to_owned());
    let report_dir =
        std::env::temp_dir().join(format!("toolshed-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&report_dir).unwrap();
    let config = report_dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        concat!(
            "[checks.positive_data_acceptance]\n",
            "expected-statuses = [\"2xx\", \"3xx\", \"401\", \"403\", \"404\", \"409\", \"412\", \"429\", \"5xx\"]\n",
            // Rules a JSON Schema cannot state answer 422 to schema-valid data here: a setting
            // name declared twice (names are fields of array items), a server.json's own rules,
            // a warm pool above the deployment's cap (configuration, not the document).
            "\n[[operations]]\n",
            "include-name-regex = \"^(POST /api/servers|POST /api/import|PUT /api/servers/\\\\{id\\\\}/warm-pool)$\"\n",
            "checks.positive_data_acceptance.expected-statuses = [\"2xx\", \"3xx\", \"401\", \"403\", \"404\", \"409\", \"412\", \"422\", \"429\", \"5xx\"]\n",
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", api.base))
        .args(["--checks", "all"])
        .args(["--max-examples", &max_examples.to_string()])
        .args(["--seed", &seed])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "30"])
        .args(["--workers", "2"])
        // A generated run would revoke the admin key it runs with (GET /api/api-keys lists it)
        // and lose the rest of its coverage; revocation is tested in `api_keys.rs`.
        .args(["--exclude-path-regex", "/revoke$"])
        .arg("--no-color")
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(&report_dir)
        .current_dir(std::env::temp_dir())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Generated requests authenticate as an admin, so they reach the handlers (401/403 are
    // still documented and accepted).
    let admin = create_key(&toolshed, "schemathesis", &[Scope::Admin]).await;
    // Both schemes carry the key: otherwise generated `X-Api-Key` values (which win over the
    // bearer header) turn whole operations into 401s.
    cmd.args(["-H", &format!("Authorization: Bearer {admin}")]);
    cmd.args(["-H", &format!("X-Api-Key: {admin}")]);
    if let Ok(headers) = std::env::var("TOOLSHED_TEST_SCHEMATHESIS_HEADER") {
        for h in headers.lines().map(str::trim).filter(|h| !h.is_empty()) {
            cmd.args(["-H", h]);
        }
    }
    let child = cmd.spawn().expect("schemathesis starts");
    let output = tokio::time::timeout(Duration::from_secs(600), child.wait_with_output())
        .await
        .expect("schemathesis finished within 10 minutes")
        .expect("schemathesis ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::remove_dir_all(&report_dir);
    println!("schemathesis summary:");
    for line in summary(&stdout) {
        println!("  {line}");
    }
    api.stop().await;
    assert!(
        output.status.success(),
        "schemathesis reported failures (exit {:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
    assert!(
        stdout.contains("passed") || stdout.contains("Test cases"),
        "schemathesis ran no case:\n{stdout}\n{stderr}"
    );
}
