//! The service's own secrets on Secrets Manager (moto).

use std::time::Duration;

use crate::MotoEnv;

#[tokio::test]
async fn a_secret_is_read_by_arn_cached_and_rotation_is_picked_up() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let raw = env.secretsmanager();
    let created = raw
        .create_secret()
        .name("toolshed/openai")
        .secret_string("sk-test-FIRST")
        .send()
        .await
        .unwrap();
    let arn = created.arn.unwrap();

    let cached = env.adapters.secret(arn.clone());
    assert_eq!(cached.value().await.unwrap().expose(), "sk-test-FIRST");
    let fresh = env
        .adapters
        .secret(arn.clone())
        .with_max_age(Duration::ZERO);

    raw.put_secret_value()
        .secret_id(&arn)
        .secret_string("sk-test-SECOND")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cached.value().await.unwrap().expose(),
        "sk-test-FIRST",
        "within its max age the read value is reused"
    );
    assert_eq!(fresh.value().await.unwrap().expose(), "sk-test-SECOND");
    assert_eq!(env.calls.count("Secrets Manager.GetSecretValue"), 2);

    let shown = format!("{cached:?} {:?}", fresh.value().await.unwrap());
    assert!(
        !shown.contains("sk-test") && !shown.contains(&arn),
        "{shown}"
    );
}

#[tokio::test]
async fn a_missing_secret_is_a_clear_error_without_sdk_types() {
    let Some(env) = MotoEnv::new().await else {
        return;
    };
    let err = env
        .adapters
        .secret("arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf")
        .value()
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(text.contains("does not exist"), "{text}");
    assert!(
        !text.contains("GetSecretValueError") && !text.contains("ResourceNotFound"),
        "{text}"
    );
}
