//! Settings a server declares: the configuration (often an API key) its tools need, named by
//! the environment variable the server reads.
//!
//! A declaration says what a value is for; it never holds a secret value. Defaults are stored
//! in plain text with the server record, so a secret setting has none.

use serde::{Deserialize, Serialize};

use super::{EnvName, MAX_ENV_VALUE_LEN};
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

    #[test]
    fn a_name_declared_twice_is_refused() {
        let a = SettingSpec::new(name("A"), None, false, false, None).unwrap();
        assert!(validate_settings(std::slice::from_ref(&a)).is_ok());
        let err = validate_settings(&[a.clone(), a]).unwrap_err();
        assert!(err.to_string().contains("declared twice"));
    }
}
