//! Conformance checks of [`SecretStore`]: put, get, replace, delete, missing owners, and that
//! owners never see each other's values. Every store runs them: in memory, encrypted files,
//! AWS Secrets Manager.
//!
//! Owners use fresh random ids, so the checks run against a store that already holds values.

use super::{hex8, Must};
use crate::domain::{InstanceEnv, InstanceId, ServerId};
use crate::ports::{SecretOwner, SecretStore};

fn env(pairs: &[(&str, &str)]) -> InstanceEnv {
    InstanceEnv::from_exposed(pairs.iter().copied()).must("environment")
}

/// Runs every secret store check on `store`.
pub async fn check_secret_store(store: &dyn SecretStore) {
    let server =
        SecretOwner::ServerTestValues(ServerId::new(format!("cf-{}", hex8())).must("server id"));
    let instance = SecretOwner::Instance(InstanceId::random());

    assert_eq!(
        store.get(&server).await.must("get of a missing owner"),
        None,
        "conformance: get of an owner with no values returns None"
    );
    store
        .delete(&instance)
        .await
        .must("conformance: delete of an owner with no values succeeds");

    // Values that exercise escaping: '=', quotes, newlines, non-ASCII, an empty value.
    let first = env(&[
        ("API_KEY", "s3cr=t \"quoted\"\nline ünï"),
        ("EMPTY", ""),
        ("MODE", "fast"),
    ]);
    store.put(&server, &first).await.must("put");
    assert_eq!(
        store.get(&server).await.must("get"),
        Some(first.clone()),
        "conformance: get returns exactly what put stored"
    );
    assert_eq!(
        store.get(&instance).await.must("get of another owner"),
        None,
        "conformance: one owner's values are not another's"
    );

    let second = env(&[("API_KEY", "rotated")]);
    store.put(&server, &second).await.must("put again");
    assert_eq!(
        store.get(&server).await.must("get after replace"),
        Some(second.clone()),
        "conformance: put replaces every earlier value (no merge)"
    );

    store
        .put(&instance, &first)
        .await
        .must("put for an instance");
    store.delete(&server).await.must("delete");
    assert_eq!(
        store.get(&server).await.must("get after delete"),
        None,
        "conformance: get after delete returns None"
    );
    store
        .delete(&server)
        .await
        .must("conformance: deleting twice succeeds");
    assert_eq!(
        store.get(&instance).await.must("get of the other owner"),
        Some(first),
        "conformance: deleting one owner keeps the others"
    );

    let empty = InstanceEnv::new();
    store.put(&instance, &empty).await.must("put of no values");
    assert_eq!(
        store.get(&instance).await.must("get of no values"),
        Some(empty),
        "conformance: an empty set of values is stored as such"
    );
    store
        .delete(&instance)
        .await
        .must("delete the instance's values");

    // Debug output of the store never shows a value.
    let secret = env(&[("TOKEN", "needle-debug-9132")]);
    store.put(&instance, &secret).await.must("put");
    assert!(
        !format!("{store:?}").contains("needle-debug-9132"),
        "conformance: the store's Debug shows no value"
    );
    store.delete(&instance).await.must("delete");
}
