//! The Secrets Manager `SecretStore` on moto: put, get, replace, delete, missing owners, and
//! what a stored secret looks like.

use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretError;
use toolshed_core::domain::{InstanceEnv, InstanceId, ServerId};
use toolshed_core::ports::{SecretOwner, SecretStore};
use toolshed_core::Error;

use crate::MotoEnv;

fn env_of(pairs: &[(&str, &str)]) -> InstanceEnv {
    InstanceEnv::from_exposed(pairs.iter().map(|(k, v)| (*k, *v))).unwrap()
}

/// The conformance suite every `SecretStore` passes (memory and encrypted files run it too).
#[tokio::test]
async fn the_store_passes_the_secret_store_conformance_suite() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    toolshed_core::testing::conformance::check_secret_store(&env.adapters.secret_store).await;
}

#[tokio::test]
async fn values_are_put_read_replaced_and_deleted_by_owner() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let store = &env.adapters.secret_store;
    let server = SecretOwner::ServerTestValues(ServerId::new("time").unwrap());
    let instance = SecretOwner::Instance(InstanceId::new("i-0123456789").unwrap());

    // Nothing stored yet: None, and deleting nothing is fine.
    assert_eq!(store.get(&server).await.unwrap(), None);
    store.delete(&server).await.unwrap();

    // Values with quotes, newlines, '=' and non-ASCII survive the JSON round trip.
    let first = env_of(&[
        ("API_TOKEN", "tok-\"quoted\"\nline2=x"),
        ("REGION_NAME", "zürich ✓"),
        ("EMPTY", ""),
    ]);
    store.put(&server, &first).await.unwrap();
    assert_eq!(store.get(&server).await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.get(&instance).await.unwrap(),
        None,
        "owners are apart"
    );

    // The secret is named by the owner's path and holds a JSON object of name → value.
    let raw = env.secretsmanager();
    let stored = raw
        .get_secret_value()
        .secret_id("toolshed/servers/time/test-values")
        .send()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(json["REGION_NAME"], "zürich ✓");
    let described = raw
        .describe_secret()
        .secret_id("toolshed/servers/time/test-values")
        .send()
        .await
        .unwrap();
    assert!(
        described
            .tags()
            .iter()
            .any(|t| t.key() == Some("toolshed.deployment") && t.value() == Some("toolshed")),
        "the secret carries the deployment tag: {:?}",
        described.tags()
    );

    // Replacing: a second put overwrites every value (a dropped name is gone).
    let second = env_of(&[("API_TOKEN", "tok-2")]);
    store.put(&server, &second).await.unwrap();
    assert_eq!(store.get(&server).await.unwrap(), Some(second));

    store.put(&instance, &first).await.unwrap();
    assert_eq!(
        raw.describe_secret()
            .secret_id("toolshed/instances/i-0123456789")
            .send()
            .await
            .unwrap()
            .name(),
        Some("toolshed/instances/i-0123456789")
    );

    // Deleting: gone at once (no recovery window), the other owner untouched, twice is fine.
    store.delete(&server).await.unwrap();
    assert_eq!(store.get(&server).await.unwrap(), None);
    let gone = raw
        .describe_secret()
        .secret_id("toolshed/servers/time/test-values")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            gone.as_service_error(),
            Some(DescribeSecretError::ResourceNotFoundException(_))
        ),
        "deleted without a recovery window: {gone:?}"
    );
    store.delete(&server).await.unwrap();
    assert_eq!(store.get(&instance).await.unwrap(), Some(first));

    // Put after delete creates the secret again.
    let third = env_of(&[("X", "3")]);
    store.put(&server, &third).await.unwrap();
    assert_eq!(store.get(&server).await.unwrap(), Some(third));
}

#[tokio::test]
async fn a_stored_secret_that_is_not_an_environment_is_a_typed_error_without_its_text() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let store = &env.adapters.secret_store;
    let raw = env.secretsmanager();
    for (i, junk) in [
        "not json sekret-JUNK",
        r#"["sekret-JUNK"]"#,
        r#"{"A": 1, "B": "sekret-JUNK"}"#,
        r#"{"bad name": "sekret-JUNK"}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("s{i}-junk");
        raw.create_secret()
            .name(format!("toolshed/servers/{id}/test-values"))
            .secret_string(junk)
            .send()
            .await
            .unwrap();
        let owner = SecretOwner::ServerTestValues(ServerId::new(&id).unwrap());
        let err = store.get(&owner).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Backend {
                    retryable: false,
                    ..
                }
            ),
            "{err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("sekret-JUNK"), "{junk}: {shown}");
        assert!(shown.contains(&owner.path()), "names the owner: {shown}");
    }
}

#[tokio::test]
async fn values_too_large_for_one_secret_are_refused_before_any_call() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let store = &env.adapters.secret_store;
    let big = "v".repeat(30 * 1024);
    let env_big = env_of(&[("A", &big), ("B", &big), ("C", &big)]);
    env.calls.reset();
    let err = store
        .put(
            &SecretOwner::Instance(InstanceId::new("i-0123456789").unwrap()),
            &env_big,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(!err.to_string().contains(&big));
    assert_eq!(env.calls.total(), 0, "{:?}", env.calls.counts());
}
