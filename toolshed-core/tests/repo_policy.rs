//! Registration applies the deployment's repository policy, whatever policy the caller parsed
//! the URL with: by default (the AWS composition's) no `file://` and no private hosts.

mod common;

use common::Harness;
use toolshed_core::domain::{RepoUrl, RepoUrlPolicy, ServerId, ServerRegistration};
use toolshed_core::Error;

fn registration(id: &str, repo: RepoUrl) -> ServerRegistration {
    ServerRegistration::new(ServerId::new(id).unwrap(), repo)
}

#[tokio::test]
async fn the_default_policy_refuses_private_hosts_and_local_paths() {
    let h = Harness::new();
    for (i, raw) in [
        "https://169.254.169.254/latest/meta-data",
        "https://127.0.0.1/a/b",
        "https://[::1]/a/b",
        "https://10.1.2.3/a/b",
        "https://localhost/a/b",
        "file:///etc",
    ]
    .into_iter()
    .enumerate()
    {
        // A library user parsed it permissively; the service still refuses.
        let repo = RepoUrl::parse(raw, RepoUrlPolicy::LOCAL).unwrap();
        let err = h
            .toolshed
            .register_server(registration(&format!("s{i}"), repo))
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
            "{raw}: {err:?}"
        );
        assert!(h
            .toolshed
            .get_server(&ServerId::new(format!("s{i}")).unwrap())
            .await
            .is_err());
    }
    h.toolshed
        .register_server(registration(
            "public",
            RepoUrl::new("https://github.com/a/b").unwrap(),
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_local_policy_accepts_them() {
    let h = Harness::with_config(|c| c.repo_policy = RepoUrlPolicy::LOCAL);
    for (i, raw) in ["https://127.0.0.1/a/b", "file:///tmp/repo"]
        .into_iter()
        .enumerate()
    {
        let repo = RepoUrl::parse(raw, RepoUrlPolicy::LOCAL).unwrap();
        h.toolshed
            .register_server(registration(&format!("l{i}"), repo))
            .await
            .unwrap();
    }
}

#[test]
fn a_registration_deserialised_from_input_is_strict() {
    let err = serde_json::from_value::<ServerRegistration>(serde_json::json!({
        "id": "x", "repo": "file:///etc", "git_ref": "main"
    }))
    .unwrap_err();
    assert!(err.to_string().contains("repo_url"), "{err}");
}
