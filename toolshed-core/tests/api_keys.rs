//! The API-key check an HTTP layer calls on every request: live keys prove their principal,
//! unknown ids, wrong secrets and revoked keys do not, and a use is recorded.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use toolshed_core::domain::{NewApiKey, PresentedApiKey, PrincipalId, Scope};
use toolshed_core::ports::ServerRepository;
use toolshed_core::services::{ApiKeyCheck, Ports, Toolshed, ToolshedConfig};
use toolshed_core::testing::ManualClock;

fn new_key(owner: &str) -> NewApiKey {
    NewApiKey {
        name: "ci".to_owned(),
        scopes: BTreeSet::from([Scope::Sessions]),
        owner: PrincipalId::new(owner).unwrap(),
    }
}

#[tokio::test]
async fn a_presented_key_proves_its_principal_until_revoked() {
    let doubles = Ports::in_memory(Arc::new(ManualClock::fixed()));
    let toolshed = Toolshed::new(doubles.ports(), ToolshedConfig::default()).unwrap();
    let (key, secret) = toolshed.create_api_key(new_key("alice")).await.unwrap();
    let presented = PresentedApiKey::parse(secret.expose()).unwrap();

    match toolshed.check_api_key(&presented).await.unwrap() {
        ApiKeyCheck::Valid(p) => {
            assert_eq!(p.id.as_str(), "alice");
            assert!(p.may(Scope::Sessions));
            assert!(!p.is_admin());
        }
        other => panic!("expected a valid key, got {other:?}"),
    }
    // The use is recorded off the caller's path.
    let mut used = None;
    for _ in 0..500 {
        used = doubles
            .repository
            .get_api_key(&key.id)
            .await
            .unwrap()
            .last_used_at;
        if used.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(used.is_some(), "the key's use was never recorded");

    // The same id with another secret is rejected; an id never issued is unknown.
    let wrong = PresentedApiKey::parse(&format!("tsk_{}_{}", key.id, "ab".repeat(32))).unwrap();
    assert_eq!(
        toolshed.check_api_key(&wrong).await.unwrap(),
        ApiKeyCheck::Rejected
    );
    let (other_key, other_secret) = toolshed.create_api_key(new_key("bob")).await.unwrap();
    toolshed.revoke_api_key(&other_key.id).await.unwrap();
    let unknown =
        PresentedApiKey::parse(&format!("tsk_{}_{}", "0".repeat(16), "ab".repeat(32))).unwrap();
    assert_eq!(
        toolshed.check_api_key(&unknown).await.unwrap(),
        ApiKeyCheck::Unknown
    );
    let revoked = PresentedApiKey::parse(other_secret.expose()).unwrap();
    assert_eq!(
        toolshed.check_api_key(&revoked).await.unwrap(),
        ApiKeyCheck::Rejected,
        "a revoked key stops working at once"
    );
}
