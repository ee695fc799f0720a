//! Conformance checks of the instance methods of [`ServerRepository`]: insert with unique names,
//! reads by id and by name, paged listing by name, versioned updates and deletes.
//!
//! Each check uses fresh names (`cf-<8 hex>-…`), so the checks run against a table that already
//! holds instances.

use std::sync::Arc;

use super::{digest, fails, hex8, now, secs, Must};
use crate::domain::{
    Endpoint, ImageRef, ImageTag, Instance, InstanceEnv, InstanceId, InstanceName, InstanceState,
    PrincipalId, ServerId, TaskHandle, Timestamp,
};
use crate::error::{EntityKind, Error};
use crate::ports::ServerRepository;

type Repo = Arc<dyn ServerRepository>;

/// Runs every instance check.
pub async fn run_instances(repo: Repo) {
    check_insert_and_get_instance(repo.clone()).await;
    check_instance_names_unique(repo.clone()).await;
    check_concurrent_instance_names(repo.clone()).await;
    check_update_instance(repo.clone()).await;
    check_list_instances(repo.clone()).await;
    check_delete_instance(repo).await;
}

/// A fresh name prefix, `cf-<8 hex>`.
fn prefix() -> String {
    format!("cf-{}", hex8())
}

/// A new (unstored) instance named `name`, with an environment whose values exercise escaping.
pub fn sample_instance(name: &str, at: Timestamp) -> Instance {
    let server = ServerId::new("cf-instances").must("server id");
    Instance {
        id: InstanceId::random(),
        name: InstanceName::new(name).must("instance name"),
        image: ImageRef::new(
            "registry.test/conformance",
            ImageTag::new("instances-1").must("tag"),
            digest(&format!("instance/{name}")),
        )
        .must("image"),
        server_id: server,
        state: InstanceState::Requested,
        owner: PrincipalId::new("user:conformance@example.test").ok(),
        env: InstanceEnv::parse_assignments([
            "API_KEY=s3cr=t with spaces",
            "EMPTY=",
            "UNICODE=häß ✓ \"quoted\"",
        ])
        .must("env"),
        restart_count: 0,
        task: None,
        endpoint: None,
        failure: None,
        created_at: at,
        updated_at: at,
        stopped_at: None,
        version: 0,
    }
}

fn assert_kind(e: &Error, what: &str, want: &str) {
    let ok = match (want, e) {
        ("not_found", Error::NotFound { kind, .. }) => *kind == EntityKind::Instance,
        ("exists", Error::AlreadyExists { kind, .. }) => *kind == EntityKind::Instance,
        ("conflict", Error::Conflict { kind, .. }) => *kind == EntityKind::Instance,
        _ => false,
    };
    assert!(
        ok,
        "conformance: {what}: expected {want} (kind instance), got {e}"
    );
}

/// Insert stores version 1 and every field; reads by id and by name return it; missing ids and
/// names are `NotFound` of kind `Instance`.
pub async fn check_insert_and_get_instance(repo: Repo) {
    let at = now();
    let mut i = sample_instance(&format!("{}-get", prefix()), at);
    i.version = 42;
    let stored = repo.insert_instance(&i).await.must("insert_instance");
    assert_eq!(
        stored.version, 1,
        "conformance: insert_instance stores version 1"
    );
    let mut expected = i.clone();
    expected.version = 1;
    assert_eq!(
        stored, expected,
        "conformance: insert_instance returns what it stored"
    );
    let by_id = repo.get_instance(&i.id).await.must("get_instance");
    assert_eq!(
        by_id, expected,
        "conformance: get_instance returns every field as stored"
    );
    let by_name = repo
        .get_instance_by_name(&i.name)
        .await
        .must("get_instance_by_name");
    assert_eq!(
        by_name, expected,
        "conformance: get_instance_by_name returns the instance"
    );
    assert_eq!(
        by_id.env.exposed().collect::<Vec<_>>(),
        [
            ("API_KEY", "s3cr=t with spaces"),
            ("EMPTY", ""),
            ("UNICODE", "häß ✓ \"quoted\"")
        ],
        "conformance: environment values round-trip exactly"
    );

    let e = fails(
        repo.get_instance(&InstanceId::random()).await,
        "get_instance of an unknown id",
    );
    assert_kind(&e, "get_instance of an unknown id", "not_found");
    let e = fails(
        repo.get_instance_by_name(&InstanceName::new(format!("{}-none", prefix())).must("name"))
            .await,
        "get_instance_by_name of an unknown name",
    );
    assert_kind(&e, "get_instance_by_name of an unknown name", "not_found");
}

/// A taken id or a taken name is `AlreadyExists`, and nothing of the refused insert is stored.
pub async fn check_instance_names_unique(repo: Repo) {
    let at = now();
    let name = format!("{}-uniq", prefix());
    let first = repo
        .insert_instance(&sample_instance(&name, at))
        .await
        .must("insert_instance");

    let same_name = sample_instance(&name, at);
    let e = fails(
        repo.insert_instance(&same_name).await,
        "insert_instance with a taken name",
    );
    assert_kind(&e, "insert_instance with a taken name", "exists");
    let e = fails(
        repo.get_instance(&same_name.id).await,
        "get_instance after a refused insert (taken name)",
    );
    assert_kind(&e, "a refused insert stores nothing", "not_found");

    let mut same_id = sample_instance(&format!("{}-other", prefix()), at);
    same_id.id = first.id.clone();
    let e = fails(
        repo.insert_instance(&same_id).await,
        "insert_instance with a taken id",
    );
    assert_kind(&e, "insert_instance with a taken id", "exists");
    let e = fails(
        repo.get_instance_by_name(&same_id.name).await,
        "get_instance_by_name after a refused insert (taken id)",
    );
    assert_kind(&e, "a refused insert claims no name", "not_found");
    assert_eq!(
        repo.get_instance(&first.id).await.must("get_instance"),
        first,
        "conformance: a refused insert leaves the existing instance unchanged"
    );
}

/// Eight concurrent inserts of one name: exactly one succeeds.
pub async fn check_concurrent_instance_names(repo: Repo) {
    let at = now();
    let name = format!("{}-race", prefix());
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let repo = repo.clone();
            let i = sample_instance(&name, at);
            tokio::spawn(async move { repo.insert_instance(&i).await })
        })
        .collect();
    let mut won = 0;
    for t in tries {
        match t.await.expect("conformance: insert task panicked") {
            Ok(_) => won += 1,
            Err(e) => assert_kind(&e, "concurrent insert_instance with one name", "exists"),
        }
    }
    assert_eq!(
        won, 1,
        "conformance: exactly one concurrent insert of a name succeeds"
    );
}

/// Updates compare the version, store `version + 1` and every changed field; identity fields
/// (name, server, creation time) never change; stale versions are `Conflict`, unknown ids
/// `NotFound`.
pub async fn check_update_instance(repo: Repo) {
    let at = now();
    let stored = repo
        .insert_instance(&sample_instance(&format!("{}-upd", prefix()), at))
        .await
        .must("insert_instance");

    let mut next = stored.clone();
    next.begin_creating(at + secs(1)).must("begin_creating");
    next.mark_created(
        TaskHandle::new("task/abc-1").must("task"),
        Some(Endpoint::new("10.0.0.7", 8000, "/mcp").must("endpoint")),
        at + secs(2),
    )
    .must("mark_created");
    next.env = InstanceEnv::parse_assignments(["ONLY=one"]).must("env");
    next.owner = None;
    // Identity changes are ignored by the repository.
    next.name = InstanceName::new(format!("{}-renamed", prefix())).must("name");
    next.created_at = at + secs(100);
    let updated = repo.update_instance(&next).await.must("update_instance");
    assert_eq!(
        updated.version, 2,
        "conformance: update_instance stores version + 1"
    );
    let read = repo.get_instance(&stored.id).await.must("get_instance");
    assert_eq!(
        read, updated,
        "conformance: update_instance returns what it stored"
    );
    assert_eq!(
        read.state,
        InstanceState::Starting,
        "conformance: update_instance stores the starting state"
    );
    assert_eq!(
        read.task.as_ref().map(TaskHandle::as_str),
        Some("task/abc-1")
    );
    assert_eq!(
        read.endpoint.as_ref().map(Endpoint::url).as_deref(),
        Some("http://10.0.0.7:8000/mcp")
    );
    assert_eq!(
        read.env.exposed().collect::<Vec<_>>(),
        [("ONLY", "one")],
        "conformance: update_instance replaces the environment"
    );
    assert_eq!(
        read.owner, None,
        "conformance: update_instance clears the owner"
    );
    assert_eq!(
        (read.name.clone(), read.created_at),
        (stored.name.clone(), stored.created_at),
        "conformance: update_instance never changes the name or creation time"
    );

    // Stale version: Conflict, nothing written.
    let mut stale = stored.clone();
    stale.failure = Some("stale".to_owned());
    let e = fails(
        repo.update_instance(&stale).await,
        "update_instance with a stale version",
    );
    assert_kind(&e, "update_instance with a stale version", "conflict");
    assert_eq!(
        repo.get_instance(&stored.id).await.must("get_instance"),
        updated,
        "conformance: a refused update writes nothing"
    );

    // Ready: the MCP endpoint answered.
    let mut ready = updated.clone();
    assert!(ready.mark_ready(at + secs(3)));
    let updated = repo.update_instance(&ready).await.must("update_instance");
    assert_eq!(
        repo.get_instance(&stored.id)
            .await
            .must("get_instance")
            .state,
        InstanceState::Created,
        "conformance: update_instance stores the ready (created) state"
    );

    // Stop with restart bookkeeping, from the returned record.
    let mut stopped = updated.clone();
    stopped.restart_count = 3;
    assert!(stopped.mark_stopped(at + secs(5)));
    let stopped = repo
        .update_instance(&stopped)
        .await
        .must("update_instance (stop)");
    let read = repo.get_instance(&stored.id).await.must("get_instance");
    assert_eq!(read, stopped);
    assert_eq!(
        (
            read.state,
            read.stopped_at,
            read.restart_count,
            read.version
        ),
        (InstanceState::Stopped, Some(at + secs(5)), 3, 4)
    );

    let unknown = sample_instance(&format!("{}-ghost", prefix()), at);
    let e = fails(
        repo.update_instance(&unknown).await,
        "update_instance of an unknown id",
    );
    assert_kind(&e, "update_instance of an unknown id", "not_found");
}

/// Listing is ordered by name and pages with the last name of the previous page.
pub async fn check_list_instances(repo: Repo) {
    let at = now();
    let p = prefix();
    let names = [format!("{p}-c"), format!("{p}-a"), format!("{p}-b")];
    for n in &names {
        repo.insert_instance(&sample_instance(n, at))
            .await
            .must("insert_instance");
    }
    let ours = |v: Vec<Instance>| -> Vec<String> {
        v.into_iter()
            .map(|i| i.name.to_string())
            .filter(|n| n.starts_with(&p))
            .collect()
    };
    let all = repo
        .list_instances(None, 100_000)
        .await
        .must("list_instances");
    let sorted = all.windows(2).all(|w| w[0].name < w[1].name);
    assert!(sorted, "conformance: list_instances is ordered by name");
    assert_eq!(
        ours(all),
        [format!("{p}-a"), format!("{p}-b"), format!("{p}-c")],
        "conformance: list_instances lists every instance"
    );
    let start = InstanceName::new(format!("{p}-a")).must("name");
    let page = repo
        .list_instances(Some(start.clone()), 1)
        .await
        .must("list_instances page");
    assert_eq!(
        page.iter().map(|i| i.name.to_string()).collect::<Vec<_>>(),
        [format!("{p}-b")],
        "conformance: list_instances starts after `after` and returns at most `limit`"
    );
    let rest = repo
        .list_instances(Some(start), 2)
        .await
        .must("list_instances page");
    assert_eq!(
        ours(rest),
        [format!("{p}-b"), format!("{p}-c")],
        "conformance: list_instances pages continue in name order"
    );
    assert!(
        repo.list_instances(None, 0)
            .await
            .must("list_instances")
            .is_empty(),
        "conformance: list_instances with limit 0 is empty"
    );
}

/// Delete removes the instance and frees its name; repeating it returns `false`.
pub async fn check_delete_instance(repo: Repo) {
    let at = now();
    let name = format!("{}-del", prefix());
    let stored = repo
        .insert_instance(&sample_instance(&name, at))
        .await
        .must("insert_instance");
    assert!(
        repo.delete_instance(&stored.id)
            .await
            .must("delete_instance"),
        "conformance: delete_instance of a stored instance returns true"
    );
    let e = fails(
        repo.get_instance(&stored.id).await,
        "get_instance after delete",
    );
    assert_kind(&e, "get_instance after delete", "not_found");
    let e = fails(
        repo.get_instance_by_name(&stored.name).await,
        "get_instance_by_name after delete",
    );
    assert_kind(&e, "get_instance_by_name after delete", "not_found");
    assert!(
        !repo
            .delete_instance(&stored.id)
            .await
            .must("delete_instance again"),
        "conformance: delete_instance of a missing instance returns false"
    );
    let again = repo
        .insert_instance(&sample_instance(&name, at))
        .await
        .must("insert_instance with a freed name");
    assert_ne!(again.id, stored.id);
}
