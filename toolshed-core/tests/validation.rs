//! Bad input is rejected with clear messages: ids, URLs, SHAs, digests, TTLs, registrations,
//! tool calls and configuration.

mod common;

use std::time::Duration;

use common::Harness;
use toolshed_core::domain::{
    CommitSha, GitRef, IdempotencyKey, ImageDigest, ImageTag, RepoUrl, ServerId,
    ServerRegistration, SessionId, TaskResources, ToolCall, Transport, TtlBounds,
};
use toolshed_core::services::{LaunchRequest, Toolshed, ToolshedConfig};
use toolshed_core::Error;

fn message(r: Result<impl std::fmt::Debug, Error>) -> String {
    let e = r.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
    assert!(!e.is_retryable());
    e.to_string()
}

#[test]
fn server_ids() {
    for bad in ["", "Time", "-time", "time_server", "tïme", &"a".repeat(64)] {
        let m = message(ServerId::new(bad));
        assert!(m.starts_with("invalid server_id:"), "{m}");
        assert!(m.contains("a-z, 0-9 and '-'"), "{m}");
    }
}

#[test]
fn session_ids_and_keys() {
    let m = message(SessionId::new("short"));
    assert!(m.contains("8-64 characters"), "{m}");
    assert!(message(SessionId::new("x".repeat(65))).contains("session_id"));
    let m = message(IdempotencyKey::new("has space"));
    assert!(m.contains("printable ASCII"), "{m}");
    assert!(message(IdempotencyKey::new("k".repeat(129))).contains("idempotency_key"));
}

#[test]
fn repo_urls() {
    let cases = [
        ("http://github.com/a/b", "use https://"),
        (
            "https://user:token@github.com/a/b",
            "must not embed credentials",
        ),
        ("ftp://example.com/a", "scheme \"ftp\""),
        ("file:///srv/repo", "not allowed here"),
        ("https://github.com", "no repository path"),
        ("not a url", "not a URL"),
    ];
    for (raw, needle) in cases {
        let m = message(RepoUrl::new(raw));
        assert!(m.starts_with("invalid repo_url:"), "{raw}: {m}");
        assert!(m.contains(needle), "{raw}: {m}");
        assert!(!m.contains("token"), "credential echoed: {m}");
    }
    let m = message(RepoUrl::new(format!(
        "https://github.com/{}",
        "x".repeat(3000)
    )));
    assert!(m.contains("2048"), "{m}");
}

#[test]
fn commit_shas() {
    for bad in [
        "",
        "abc123",
        &"g".repeat(40),
        &"a".repeat(39),
        &"a".repeat(41),
    ] {
        let m = message(CommitSha::new(bad));
        assert!(
            m.contains("not a full 40-digit hexadecimal commit id"),
            "{m}"
        );
    }
    let m = message(GitRef::new("a..b"));
    assert!(m.contains("not a valid branch or tag name"), "{m}");
}

#[test]
fn digests_and_tags() {
    for bad in [
        "sha256:abc".to_owned(),
        format!("sha256:{}", "A".repeat(64)),
        format!("md5:{}", "a".repeat(64)),
        "a".repeat(64),
    ] {
        let m = message(ImageDigest::new(bad.clone()));
        assert!(m.contains("sha256:<64 lowercase hex digits>"), "{bad}: {m}");
    }
    assert!(message(ImageTag::new(":latest")).contains("not a valid image tag"));
}

#[test]
fn ttls() {
    let b = TtlBounds::default();
    for bad in [
        Duration::from_secs(0),
        Duration::from_secs(59),
        Duration::from_secs(86_401),
    ] {
        let m = message(b.resolve(Some(bad)));
        assert!(m.contains("outside 60-86400 s"), "{m}");
    }
    assert!(message(TtlBounds::new(
        Duration::from_secs(120),
        Duration::from_secs(60),
        Duration::from_secs(100_000)
    ))
    .contains("<= 24h"));
}

#[tokio::test]
async fn registrations() {
    let h = Harness::new();
    let base = ServerRegistration::new(
        ServerId::new("time").unwrap(),
        RepoUrl::new("https://github.com/a/b").unwrap(),
    );
    let mut bad = base.clone();
    bad.transport = Transport::Http {
        port: 0,
        path: "/mcp".into(),
    };
    assert!(message(h.toolshed.register_server(bad).await).contains("port"));
    let mut bad = base.clone();
    bad.transport = Transport::Http {
        port: 8000,
        path: "mcp".into(),
    };
    assert!(message(h.toolshed.register_server(bad).await).contains("must start with '/'"));
    let mut bad = base.clone();
    bad.transport = Transport::Stdio { command: vec![] };
    assert!(message(h.toolshed.register_server(bad).await).contains("needs a command"));
    let mut bad = base.clone();
    bad.resources = TaskResources {
        cpu_units: 1,
        memory_mib: 512,
        ..TaskResources::default()
    };
    assert!(message(h.toolshed.register_server(bad).await).contains("256-16384"));
    let mut bad = base.clone();
    bad.description = Some("x".repeat(3000));
    assert!(message(h.toolshed.register_server(bad).await).contains("at most 2000 characters"));

    h.toolshed.register_server(base.clone()).await.unwrap();
    let e = h.toolshed.register_server(base).await.unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(e.to_string(), "server time already exists");
}

#[tokio::test]
async fn launches_with_bad_ttls_start_nothing() {
    let h = Harness::new();
    h.verified("time").await;
    let starts = h.runner.start_calls();
    let m = message(
        h.toolshed
            .launch_session(
                &h.id("time"),
                LaunchRequest {
                    ttl: Some(Duration::from_secs(1)),
                    idempotency_key: None,
                    settings: Default::default(),
                },
            )
            .await,
    );
    assert!(m.contains("invalid ttl"), "{m}");
    assert_eq!(h.runner.start_calls(), starts);
}

#[test]
fn tool_calls() {
    assert!(message(ToolCall::new("", Default::default())).contains("not a tool name"));
    assert!(message(ToolCall::new("a b", Default::default())).contains("not a tool name"));
}

type ConfigChange = Box<dyn Fn(&mut ToolshedConfig)>;

#[test]
fn configuration() {
    let h = Harness::new();
    let cases: Vec<(ConfigChange, &str)> = vec![
        (Box::new(|c| c.worker_id = " ".into()), "worker_id"),
        (
            Box::new(|c| c.lease_heartbeat = c.lease_ttl),
            "lease_heartbeat",
        ),
        (
            Box::new(|c| c.build_poll_interval = c.lease_ttl * 2),
            "build_poll_interval",
        ),
        (Box::new(|c| c.session_caps.total = 0), "session_caps"),
    ];
    for (change, field) in cases {
        let mut c = ToolshedConfig::default();
        change(&mut c);
        let m = message(Toolshed::new(h.ports.clone(), c));
        assert!(m.contains(field), "{m}");
    }
    assert!(ToolshedConfig::default().validate().is_ok());
}
