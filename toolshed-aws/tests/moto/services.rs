//! The core services wired to the AWS adapters on moto: verify end to end (CodeBuild → ECR via a
//! hand-written PutImage playing the push → check task → fake probe → DynamoDB), re-verify skip,
//! concurrent re-verify, launch / status / stop, and the sweep of expired and orphan tasks.

use std::time::Duration;

use toolshed_core::domain::{
    CommitSha, GitRef, ImageTag, RepoUrl, ServerId, ServerRegistration, SessionCaps, SessionId,
    SessionState, StopReason, TaskLabels, TaskPurpose, VerificationState,
};
use toolshed_core::ports::{Clock, ServerRepository, TaskRunner, TaskSpec, TaskState};
use toolshed_core::services::{
    ImportOptions, LaunchRequest, SweepLimits, VerifyOptions, VerifyOutcome,
};
use toolshed_core::Error;

use crate::MotoEnv;
use toolshed_aws::testing::MotoServices;

/// The commit every moto test server's repository is at.
pub(crate) const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Registers `id`, points its repo at COMMIT and plays the build's push of that commit's tag.
/// Also the status tests' set-up.
pub(crate) async fn registered(env: &MotoEnv, svc: &MotoServices, id: &str) -> (ServerId, String) {
    let server_id = ServerId::new(id).unwrap();
    let repo = RepoUrl::new(format!("https://github.com/example/{id}")).unwrap();
    let commit = CommitSha::new(COMMIT).unwrap();
    svc.source.set_commit(&repo, &GitRef::main(), &commit);
    svc.toolshed
        .register_server(ServerRegistration::new(server_id.clone(), repo))
        .await
        .unwrap();
    let digest = env
        .push_image(ImageTag::for_build(&server_id, &commit).as_str(), id)
        .await;
    (server_id, digest)
}

#[tokio::test]
async fn verify_end_to_end_then_skip_when_up_to_date() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps::default());
    let (id, digest) = registered(&env, &svc, "time").await;

    let outcome = svc
        .toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    let server = outcome.server().clone();
    assert!(
        matches!(outcome, VerifyOutcome::Verified { .. }),
        "{outcome:?}"
    );
    assert_eq!(server.state, VerificationState::Verified);
    let image = server.image.clone().expect("verified image");
    assert_eq!(
        image.image.digest().as_str(),
        digest,
        "the pushed digest is recorded"
    );
    assert_eq!(image.commit.as_str(), COMMIT);
    assert_eq!(
        server.tools.tools.len(),
        1,
        "the probe's tools are recorded"
    );
    assert_eq!(env.calls.count("CodeBuild.StartBuild"), 1);
    assert_eq!(env.calls.count("ECS.RegisterTaskDefinition"), 1);
    assert!(svc.probe.wait_ready_calls() >= 1);
    // The check task was stopped, and the record is in DynamoDB.
    assert!(env
        .adapters
        .tasks
        .list_managed(None, 100)
        .await
        .unwrap()
        .tasks
        .is_empty());
    assert_eq!(
        env.adapters.repository.get_server(&id).await.unwrap(),
        *svc.toolshed.get_server(&id).await.as_ref().unwrap()
    );

    env.calls.reset();
    let again = svc
        .toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    assert!(matches!(again, VerifyOutcome::UpToDate(_)), "{again:?}");
    assert_eq!(
        env.calls.count("CodeBuild.StartBuild"),
        0,
        "an up-to-date server is not rebuilt"
    );
    assert_eq!(env.calls.count("ECS.RunTask"), 0);
}

#[tokio::test]
async fn an_imported_pypi_server_is_built_by_codebuild_and_verified() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps::default());
    let document = serde_json::json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": "io.github.modelcontextprotocol/time",
        "description": "Time and time zone conversion",
        "version": "2026.10.19",
        "packages": [{
            "registryType": "pypi", "identifier": "mcp-server-time", "version": "2026.10.19",
            "transport": {"type": "stdio"}
        }]
    });
    let id = ServerId::new("pkg-time").unwrap();
    let imported = svc
        .toolshed
        .import_server(
            document.to_string().as_bytes(),
            ImportOptions {
                id: Some(id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let fingerprint = imported.server.origin.fingerprint().expect("a package pin");
    // moto's CodeBuild pushes nothing: the test plays the push of the fingerprint's tag.
    let digest = env
        .push_image(ImageTag::for_build(&id, &fingerprint).as_str(), "pkg-time")
        .await;

    let outcome = svc
        .toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, VerifyOutcome::Verified { .. }),
        "{outcome:?}"
    );
    let image = outcome.server().image.clone().expect("verified image");
    assert_eq!(image.image.digest().as_str(), digest);
    assert_eq!(
        image.commit, fingerprint,
        "the package pin stands for the commit"
    );
    assert_eq!(env.calls.count("CodeBuild.StartBuild"), 1);
}

#[tokio::test]
async fn concurrent_reverify_starts_one_build() {
    // Concurrent conditional writes need a moto that applies them atomically.
    let Some(env) = MotoEnv::serialized().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps::default());
    let (id, _) = registered(&env, &svc, "busy").await;
    svc.toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();
    // Verification moved the image to its verified tag; the forced rebuild pushes its candidate
    // tag again (moto's CodeBuild pushes nothing, so the test plays the push).
    let commit = CommitSha::new(COMMIT).unwrap();
    env.push_image(ImageTag::for_build(&id, &commit).as_str(), "busy")
        .await;
    env.calls.reset();
    let force = VerifyOptions { force: true };
    let (a, b) = tokio::join!(
        svc.toolshed.verify_server(&id, force),
        svc.toolshed.verify_server(&id, force)
    );
    let results = [a, b];
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(Error::VerificationInProgress { .. })))
        .count();
    assert_eq!((ok, busy), (1, 1), "{results:?}");
    assert_eq!(env.calls.count("CodeBuild.StartBuild"), 1);
}

#[tokio::test]
async fn launch_status_stop_within_the_call_budget() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps::default());
    let (id, digest) = registered(&env, &svc, "play").await;
    svc.toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap();

    env.calls.reset();
    let session = svc
        .toolshed
        .launch_session(&id, LaunchRequest::default())
        .await
        .unwrap();
    assert_eq!(session.state, SessionState::Starting);
    assert_eq!(session.image.digest().as_str(), digest);
    assert!(
        env.calls.sequential_round_trips() <= 3,
        "{:?}",
        env.calls.calls()
    );
    assert_eq!(env.calls.count("ECS.RegisterTaskDefinition"), 0);
    assert_eq!(env.calls.count("ECS.RunTask"), 1);

    let running = svc.toolshed.session_status(&session.id).await.unwrap();
    assert_eq!(running.state, SessionState::Running);
    let host = &running.endpoint.as_ref().expect("endpoint").host;
    assert!(host.parse::<std::net::Ipv4Addr>().is_ok(), "{host}");

    let stopped = svc.toolshed.stop_session(&session.id).await.unwrap();
    assert_eq!(stopped.state, SessionState::Stopped);
    assert_eq!(stopped.stop_reason, Some(StopReason::Requested));
    let counts = env
        .adapters
        .repository
        .count_live_sessions(&id)
        .await
        .unwrap();
    assert_eq!(counts.server, 0);
    assert!(env
        .adapters
        .tasks
        .list_managed(None, 100)
        .await
        .unwrap()
        .tasks
        .is_empty());
}

#[tokio::test]
async fn sweep_stops_expired_sessions_and_orphans() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps::default());
    let (id, _) = registered(&env, &svc, "sweep").await;
    let server = svc
        .toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap()
        .server()
        .clone();

    let short = svc
        .toolshed
        .launch_session(
            &id,
            LaunchRequest {
                ttl: Some(Duration::from_secs(60)),
                idempotency_key: None,
                settings: Default::default(),
            },
        )
        .await
        .unwrap();
    let long = svc
        .toolshed
        .launch_session(
            &id,
            LaunchRequest {
                ttl: Some(Duration::from_secs(3600)),
                idempotency_key: None,
                settings: Default::default(),
            },
        )
        .await
        .unwrap();
    // An orphan: our labels, but no session record. moto reports no task creation time, so the
    // sweep judges its age by the label expiry, which has passed after the clock moves.
    let ghost = SessionId::new("s-ghost-0001").unwrap();
    let mut spec = TaskSpec::for_session(
        &server,
        &ghost,
        svc.clock.now() + chrono::Duration::seconds(60),
    )
    .unwrap();
    spec.labels = TaskLabels {
        server_id: id.clone(),
        purpose: TaskPurpose::Playground { session_id: ghost },
        expires_at: spec.labels.expires_at,
    };
    let orphan = env.adapters.tasks.start(&spec).await.unwrap();

    svc.clock.advance(Duration::from_secs(120));
    let report = svc
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.expired_stopped, 1, "{report:?}");
    assert_eq!(report.orphans_stopped, 1, "{report:?}");
    let ended = env
        .adapters
        .repository
        .get_session(&short.id)
        .await
        .unwrap();
    assert_eq!(ended.stop_reason, Some(StopReason::Expired));
    assert!(env
        .adapters
        .repository
        .get_session(&long.id)
        .await
        .unwrap()
        .state
        .is_live());
    let live: Vec<_> = env
        .adapters
        .tasks
        .list_managed(None, 100)
        .await
        .unwrap()
        .tasks
        .into_iter()
        .map(|t| t.handle)
        .collect();
    assert_eq!(
        live,
        vec![long.task.clone()],
        "only the long session's task still runs"
    );
    assert!(!live.contains(&orphan));

    // Idempotent: a second sweep finds nothing to do.
    let again = svc
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert!(again.is_noop(), "{again:?}");
}

#[tokio::test]
async fn two_deployments_on_one_cluster_never_sweep_each_others_tasks() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps::default());
    let (id, _) = registered(&env, &svc, "owners").await;
    let server = svc
        .toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap()
        .server()
        .clone();
    // Another deployment on the same cluster (same account, same task definitions).
    let mut other_settings = env.settings.ecs();
    other_settings.deployment = toolshed_core::domain::DeploymentId::new("production").unwrap();
    assert_ne!(other_settings.deployment, env.settings.deployment_id);
    let other = toolshed_aws::EcsTaskRunner::new(env.ecs(), other_settings);

    // Two tasks that look like orphans to anyone (labels of sessions nobody recorded, expiring
    // before the clock moves): one of each deployment.
    let orphan_spec = |session: &str| {
        TaskSpec::for_session(
            &server,
            &SessionId::new(session).unwrap(),
            svc.clock.now() + chrono::Duration::seconds(60),
        )
        .unwrap()
    };
    let ours = env
        .adapters
        .tasks
        .start(&orphan_spec("s-ours-0001"))
        .await
        .unwrap();
    let theirs = other.start(&orphan_spec("s-theirs-0001")).await.unwrap();

    // Each lists only its own, even though both run the same family in the same cluster.
    let mine: Vec<_> = env
        .adapters
        .tasks
        .list_managed(None, 100)
        .await
        .unwrap()
        .tasks
        .into_iter()
        .map(|t| t.handle)
        .collect();
    assert_eq!(mine, vec![ours.clone()]);
    let listed_by_other: Vec<_> = other
        .list_managed(None, 100)
        .await
        .unwrap()
        .tasks
        .into_iter()
        .map(|t| t.handle)
        .collect();
    assert_eq!(listed_by_other, vec![theirs.clone()]);
    assert_eq!(
        env.adapters.tasks.describe(&theirs).await.unwrap().state,
        TaskState::Missing,
        "another deployment's task is unknown to this one"
    );

    svc.clock.advance(Duration::from_secs(120));
    let report = svc
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.orphans_stopped, 1, "only our orphan: {report:?}");
    // A direct stop of the other deployment's task is a no-op too.
    env.adapters
        .tasks
        .stop(&theirs, "test: not ours")
        .await
        .unwrap();
    assert!(matches!(
        env.adapters.tasks.describe(&ours).await.unwrap().state,
        TaskState::Stopped { .. }
    ));
    assert_eq!(
        other.describe(&theirs).await.unwrap().state,
        TaskState::Running,
        "the other deployment's task survived the sweep and the stop"
    );
}

/// A sweep over unchanged live sessions reads them in pages and batches and writes nothing: at
/// most 0.05 repository calls per session, one `DescribeTasks` per page of 100 tasks. Counts,
/// not timings: the calls a sweep makes are deterministic.
#[tokio::test]
async fn sweep_of_unchanged_sessions_costs_a_few_batched_calls() {
    const N: usize = 300;
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    env.manual_task_transitions().await;
    let svc = env.services(SessionCaps {
        per_server: 10_000,
        total: 10_000,
    });
    let (id, _) = registered(&env, &svc, "sweep-count").await;
    let server = svc
        .toolshed
        .verify_server(&id, VerifyOptions::default())
        .await
        .unwrap()
        .server()
        .clone();
    let seeded = env
        .seed_live_sessions(
            &server,
            N,
            16,
            svc.clock.now(),
            |_| Duration::from_secs(3600),
            std::time::Instant::now() + Duration::from_secs(600),
        )
        .await;
    assert_eq!(seeded.len(), N);
    // Past the orphan grace: every task is judged, none is spared for being young.
    svc.clock.advance(Duration::from_secs(120));

    env.calls.reset();
    let report = svc
        .toolshed
        .sweep_expired_sessions(SweepLimits::default())
        .await;
    let counts = env.calls.counts();
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(report.is_noop(), "nothing changed: {report:?}");
    assert_eq!(report.tasks_seen as usize, N, "{report:?}");
    let repository_calls: usize = counts
        .iter()
        .filter(|(op, _)| op.starts_with("DynamoDB."))
        .map(|(_, n)| n)
        .sum();
    println!(
        "sweep of {N} unchanged sessions: {repository_calls} repository calls ({:.3} per session), {counts:?}",
        repository_calls as f64 / N as f64
    );
    assert!(
        repository_calls * 20 <= N,
        "{repository_calls} repository calls for {N} unchanged sessions (> 0.05 each): {counts:?}"
    );
    for write in [
        "DynamoDB.PutItem",
        "DynamoDB.UpdateItem",
        "DynamoDB.TransactWriteItems",
        "DynamoDB.BatchWriteItem",
        "ECS.StopTask",
    ] {
        assert_eq!(env.calls.count(write), 0, "no write expected: {counts:?}");
    }
    // Every task's session came with the live listing: no record is read again.
    assert!(env.calls.count("DynamoDB.GetItem") <= N / 100, "{counts:?}");
    assert_eq!(env.calls.count("DynamoDB.BatchGetItem"), 0, "{counts:?}");
    assert_eq!(
        env.calls.count("ECS.DescribeTasks"),
        N.div_ceil(100),
        "{counts:?}"
    );
}
