//! Settings a server declares: the configuration (often an API key) its tools need, named by
//! the environment variable the server reads.
//!
//! A declaration says what a value is for; it never holds a secret value. Defaults are stored
//! in plain text with the server record, so a secret setting has none.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{EnvName, InstanceEnv, SecretValue, MAX_ENV_VALUE_LEN, REDACTED};
use crate::error::{Error, Result};

/// Most settings one server may declare.
pub const MAX_SETTINGS: usize = 64;
/// Longest description of a setting, in characters.
pub const MAX_SETTING_DESCRIPTION_LEN: usize = 500;

/// One setting a server declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingSpec {
    /// The environment variable the server reads.
    pub name: EnvName,
    /// What the value is for, as its publisher describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether a launch must give a value (or the declaration a default).
    #[serde(default)]
    pub required: bool,
    /// Whether the value is a secret: never stored in plain text, logged or returned.
    #[serde(default)]
    pub secret: bool,
    /// The value used when a launch gives none; never set on a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl SettingSpec {
    /// A validated declaration.
    ///
    /// # Errors
    /// `InvalidInput { field: "settings" }` for a description over
    /// [`MAX_SETTING_DESCRIPTION_LEN`] characters, a default over [`MAX_ENV_VALUE_LEN`] bytes or
    /// with NUL, and a default on a secret (it would be stored in plain text). Messages never
    /// contain the default's value.
    ///
    /// ```
    /// use toolshed_core::domain::{EnvName, SettingSpec};
    /// let key = SettingSpec::new(EnvName::new("API_KEY").unwrap(), None, true, true, None);
    /// assert!(key.is_ok());
    /// let leaky = SettingSpec::new(EnvName::new("API_KEY").unwrap(), None, true, true, Some("x".into()));
    /// assert!(leaky.is_err());
    /// ```
    pub fn new(
        name: EnvName,
        description: Option<String>,
        required: bool,
        secret: bool,
        default: Option<String>,
    ) -> Result<Self> {
        let description = description
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_SETTING_DESCRIPTION_LEN)
        {
            return Err(Error::invalid(
                "settings",
                format!(
                    "the description of {} is over {MAX_SETTING_DESCRIPTION_LEN} characters",
                    name.as_str()
                ),
            ));
        }
        if let Some(value) = &default {
            if secret {
                return Err(Error::invalid(
                    "settings",
                    format!(
                        "{} is secret and cannot have a default (it would be stored in plain text)",
                        name.as_str()
                    ),
                ));
            }
            if value.len() > MAX_ENV_VALUE_LEN || value.contains('\0') {
                return Err(Error::invalid(
                    "settings",
                    format!(
                        "the default of {} must be at most {MAX_ENV_VALUE_LEN} bytes without NUL",
                        name.as_str()
                    ),
                ));
            }
        }
        Ok(Self {
            name,
            description,
            required,
            secret,
            default,
        })
    }
}

/// Checks a list of declarations: at most [`MAX_SETTINGS`], each name once.
///
/// # Errors
/// `InvalidInput { field: "settings" }`.
pub fn validate_settings(settings: &[SettingSpec]) -> Result<()> {
    if settings.len() > MAX_SETTINGS {
        return Err(Error::invalid(
            "settings",
            format!("at most {MAX_SETTINGS} settings"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for setting in settings {
        if !seen.insert(setting.name.as_str()) {
            return Err(Error::invalid(
                "settings",
                format!("{} is declared twice", setting.name.as_str()),
            ));
        }
    }
    Ok(())
}

/// Whether values for required settings must all be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requirement {
    /// A launch: every required setting needs a value or a default.
    Enforced,
    /// Verification test values: whatever the publisher gave (the check runs with them).
    Relaxed,
}

/// The environment a launch (playground session or instance) starts with: `given` checked
/// against the server's declarations, with declared defaults filled in.
///
/// A server that declares no settings takes any environment (as before settings existed);
/// one that declares settings takes only those.
///
/// # Errors
/// `InvalidInput { field: "settings" }` naming every unknown setting, or every required setting
/// without a value or default. Messages name settings, never values.
///
/// ```
/// use toolshed_core::domain::{resolve_settings, EnvName, InstanceEnv, SettingSpec};
/// let key = SettingSpec::new(EnvName::new("API_KEY").unwrap(), None, true, true, None).unwrap();
/// let missing = resolve_settings(&[key.clone()], &InstanceEnv::new()).unwrap_err();
/// assert!(missing.to_string().contains("API_KEY"));
/// let given = InstanceEnv::parse_assignments(["API_KEY=s3cret"]).unwrap();
/// assert_eq!(resolve_settings(&[key], &given).unwrap().len(), 1);
/// ```
pub fn resolve_settings(declared: &[SettingSpec], given: &InstanceEnv) -> Result<InstanceEnv> {
    resolve(declared, given, Requirement::Enforced)
}

/// The environment a verification's check task starts with: the stored test values (checked
/// against the declarations: no unknown name) plus declared defaults. Required settings
/// without a test value are allowed: the check then sees the server as a launch without it
/// would.
///
/// # Errors
/// `InvalidInput { field: "test_values" }` naming every unknown setting.
pub fn resolve_test_values(declared: &[SettingSpec], given: &InstanceEnv) -> Result<InstanceEnv> {
    resolve(declared, given, Requirement::Relaxed).map_err(|e| match e {
        Error::InvalidInput { reason, .. } => Error::invalid("test_values", reason),
        other => other,
    })
}

fn resolve(
    declared: &[SettingSpec],
    given: &InstanceEnv,
    requirement: Requirement,
) -> Result<InstanceEnv> {
    if declared.is_empty() {
        return Ok(given.clone());
    }
    let known: BTreeSet<&str> = declared.iter().map(|s| s.name.as_str()).collect();
    let unknown: Vec<&str> = given.names().filter(|n| !known.contains(n)).collect();
    if !unknown.is_empty() {
        return Err(Error::invalid(
            "settings",
            format!(
                "unknown settings: {} (the server declares: {})",
                unknown.join(", "),
                known.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let mut env = given.clone();
    let mut missing = Vec::new();
    for setting in declared {
        if env.get(setting.name.as_str()).is_some() {
            continue;
        }
        match &setting.default {
            Some(default) => {
                env.insert(setting.name.clone(), SecretValue::new(default.clone())?)?
            }
            None if setting.required && requirement == Requirement::Enforced => {
                missing.push(setting.name.as_str());
            }
            None => {}
        }
    }
    if !missing.is_empty() {
        return Err(Error::invalid(
            "settings",
            format!("missing required settings: {}", missing.join(", ")),
        ));
    }
    Ok(env)
}

/// What a record may keep of a resolved environment: non-secret values as they are, secret
/// values replaced by [`REDACTED`] (the names stay, so views list them). The values themselves
/// go to the [`SecretStore`](crate::ports::SecretStore).
pub fn without_secret_values(declared: &[SettingSpec], env: &InstanceEnv) -> InstanceEnv {
    let mut kept = env.clone();
    for setting in declared.iter().filter(|s| s.secret) {
        if kept.get(setting.name.as_str()).is_some() {
            // Replacing an existing variable never exceeds the size limit, and REDACTED is a
            // valid value: neither call can fail.
            if let Ok(placeholder) = SecretValue::new(REDACTED) {
                let _ = kept.insert(setting.name.clone(), placeholder);
            }
        }
    }
    kept
}

/// Whether any declared setting is secret.
pub fn has_secret_settings(declared: &[SettingSpec]) -> bool {
    declared.iter().any(|s| s.secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> EnvName {
        EnvName::new(raw).unwrap()
    }

    #[test]
    fn a_secret_default_is_refused_without_echoing_it() {
        let err =
            SettingSpec::new(name("TOKEN"), None, false, true, Some("hunter2".into())).unwrap_err();
        assert!(err.to_string().contains("TOKEN"));
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn descriptions_are_trimmed_and_bounded() {
        let s =
            SettingSpec::new(name("A"), Some("  the key  ".into()), false, false, None).unwrap();
        assert_eq!(s.description.as_deref(), Some("the key"));
        let blank = SettingSpec::new(name("A"), Some("  ".into()), false, false, None).unwrap();
        assert_eq!(blank.description, None);
        let long = "x".repeat(MAX_SETTING_DESCRIPTION_LEN + 1);
        assert!(SettingSpec::new(name("A"), Some(long), false, false, None).is_err());
    }

    fn spec(n: &str, required: bool, secret: bool, default: Option<&str>) -> SettingSpec {
        SettingSpec::new(name(n), None, required, secret, default.map(Into::into)).unwrap()
    }

    fn declared() -> Vec<SettingSpec> {
        vec![
            spec("API_KEY", true, true, None),
            spec("REGION", true, false, Some("eu-west-1")),
            spec("DEBUG", false, false, None),
        ]
    }

    #[test]
    fn a_missing_required_value_is_named_and_nothing_else() {
        let given = InstanceEnv::parse_assignments(["DEBUG=1"]).unwrap();
        let err = resolve_settings(&declared(), &given).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "settings",
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("API_KEY"), "{msg}");
        // REGION has a default: it is not missing.
        assert!(!msg.contains("REGION"), "{msg}");
    }

    #[test]
    fn an_unknown_name_is_named_without_its_value() {
        let given = InstanceEnv::parse_assignments(["API_KEY=k", "APIKEY=hunter2-typo"]).unwrap();
        let err = resolve_settings(&declared(), &given).unwrap_err();
        assert!(
            err.to_string().contains("unknown settings: APIKEY"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = resolve_test_values(&declared(), &given).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "test_values",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn defaults_are_filled_in_and_given_values_win() {
        let given = InstanceEnv::parse_assignments(["API_KEY=k"]).unwrap();
        let env = resolve_settings(&declared(), &given).unwrap();
        assert_eq!(
            env.exposed().collect::<Vec<_>>(),
            [("API_KEY", "k"), ("REGION", "eu-west-1")]
        );
        let given = InstanceEnv::parse_assignments(["API_KEY=k", "REGION=us-east-1"]).unwrap();
        let env = resolve_settings(&declared(), &given).unwrap();
        assert_eq!(
            env.get("REGION").map(SecretValue::expose),
            Some("us-east-1")
        );
    }

    #[test]
    fn test_values_may_leave_required_settings_out() {
        let env = resolve_test_values(&declared(), &InstanceEnv::new()).unwrap();
        assert_eq!(env.exposed().collect::<Vec<_>>(), [("REGION", "eu-west-1")]);
    }

    #[test]
    fn a_secret_is_kept_out_of_records_and_required_only_when_declared() {
        let declared = vec![
            spec("TOKEN", false, true, None),
            spec("MODE", false, false, None),
        ];
        // Not required: a launch without it is fine.
        assert!(resolve_settings(&declared, &InstanceEnv::new())
            .unwrap()
            .is_empty());
        let env = InstanceEnv::parse_assignments(["TOKEN=hunter2", "MODE=fast"]).unwrap();
        let kept = without_secret_values(&declared, &env);
        assert_eq!(
            kept.exposed().collect::<Vec<_>>(),
            [("MODE", "fast"), ("TOKEN", REDACTED)]
        );
        assert!(has_secret_settings(&declared));
    }

    #[test]
    fn a_server_without_declarations_takes_any_environment() {
        let env = InstanceEnv::parse_assignments(["ANY=1"]).unwrap();
        assert_eq!(resolve_settings(&[], &env).unwrap(), env);
    }

    #[test]
    fn a_name_declared_twice_is_refused() {
        let a = SettingSpec::new(name("A"), None, false, false, None).unwrap();
        assert!(validate_settings(std::slice::from_ref(&a)).is_ok());
        let err = validate_settings(&[a.clone(), a]).unwrap_err();
        assert!(err.to_string().contains("declared twice"));
    }
}
