//! Settings on the command line: declarations (`--setting NAME[:required][:secret][=DEFAULT]`)
//! and values (`NAME=VALUE`, or read from an environment variable so a secret stays out of the
//! shell's history). Errors name settings and variables, never values.

use anyhow::{bail, Context};
use toolshed_core::domain::{EnvName, InstanceEnv, SecretValue, SettingSpec};

/// Parses one `--setting`: `NAME`, then any of `:required` and `:secret`, then an optional
/// `=DEFAULT` (not on a secret), e.g. `API_KEY:required:secret` or `REGION=eu-west-1`.
pub fn parse_setting(raw: &str) -> Result<SettingSpec, String> {
    let (head, default) = match raw.split_once('=') {
        Some((head, default)) => (head, Some(default.to_owned())),
        None => (raw, None),
    };
    let mut parts = head.split(':');
    let name = EnvName::new(parts.next().unwrap_or_default()).map_err(|e| e.to_string())?;
    let (mut required, mut secret) = (false, false);
    for flag in parts {
        match flag {
            "required" => required = true,
            "secret" => secret = true,
            other => {
                return Err(format!(
                    "{other:?} is not a setting flag (use :required and/or :secret)"
                ))
            }
        }
    }
    SettingSpec::new(name, None, required, secret, default).map_err(|e| e.to_string())
}

/// Values from `NAME=VALUE` assignments and from `NAME[=VARIABLE]` references to this
/// process's environment (`VARIABLE` defaults to `NAME`).
///
/// # Errors
/// A malformed assignment, an unset variable, a name given twice.
pub fn values(assignments: &[String], from_env: &[String]) -> anyhow::Result<InstanceEnv> {
    let mut env = InstanceEnv::parse_assignments(assignments)?;
    for reference in from_env {
        let (name, variable) = reference
            .split_once('=')
            .unwrap_or((reference.as_str(), reference.as_str()));
        let name = EnvName::new(name)?;
        if env.get(name.as_str()).is_some() {
            bail!("{name} is given twice");
        }
        let value = std::env::var(variable)
            .with_context(|| format!("the environment variable {variable} is not set"))?;
        env.insert(name, SecretValue::new(value)?)?;
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations() {
        let s = parse_setting("API_KEY:required:secret").unwrap();
        assert!(s.required && s.secret && s.default.is_none());
        let s = parse_setting("REGION=eu-west-1").unwrap();
        assert!(!s.required && !s.secret);
        assert_eq!(s.default.as_deref(), Some("eu-west-1"));
        assert!(
            parse_setting("A:secret=x").is_err(),
            "a secret has no default"
        );
        assert!(parse_setting("A:optional").is_err());
        assert!(parse_setting("1A").is_err());
    }

    #[test]
    fn values_from_assignments_and_the_environment() {
        std::env::set_var("TOOLSHED_CLI_TEST_SECRET", "from-env-value");
        let env = values(
            &["MODE=fast".into()],
            &["API_KEY=TOOLSHED_CLI_TEST_SECRET".into()],
        )
        .unwrap();
        assert_eq!(
            env.exposed().collect::<Vec<_>>(),
            [("API_KEY", "from-env-value"), ("MODE", "fast")]
        );
        let err = values(&[], &["TOOLSHED_CLI_TEST_UNSET_VAR".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("TOOLSHED_CLI_TEST_UNSET_VAR"));
        assert!(values(&["A=1".into()], &["A=TOOLSHED_CLI_TEST_SECRET".into()]).is_err());
    }
}
