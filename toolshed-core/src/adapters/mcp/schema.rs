//! Checking tool arguments against the tool's input JSON schema before a call is sent.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Validates `arguments` against `schema` (the tool's `inputSchema`).
///
/// Returns the first violation as [`Error::InvalidToolArguments`] with the JSON pointer of the
/// offending field (`""` for the arguments object itself). A schema that does not compile is
/// reported as `Ok(false)`: the server, not the probe, is the authority on its own tool, so the
/// call is sent unchecked rather than made impossible. `Ok(true)` means the arguments passed.
///
/// # Errors
/// [`Error::InvalidToolArguments`] when the arguments violate the schema.
pub fn validate_arguments(
    tool: &str,
    schema: &Value,
    arguments: &Map<String, Value>,
) -> Result<bool> {
    let validator = match jsonschema::validator_for(schema) {
        Ok(validator) => validator,
        Err(err) => {
            tracing::warn!(tool, error = %err, "tool input schema does not compile; sending the call unchecked");
            return Ok(false);
        }
    };
    let instance = Value::Object(arguments.clone());
    if let Some(violation) = validator.iter_errors(&instance).next() {
        return Err(Error::InvalidToolArguments {
            tool: tool.to_owned(),
            pointer: violation.instance_path().to_string(),
            reason: violation.to_string(),
        });
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn names_the_offending_field() {
        let schema = json!({"type":"object","properties":{"a":{"type":"number"}},"required":["a"]});
        let err = validate_arguments("add", &schema, &args(json!({"a":"x"}))).unwrap_err();
        match err {
            Error::InvalidToolArguments { pointer, tool, .. } => {
                assert_eq!(pointer, "/a");
                assert_eq!(tool, "add");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_required_field_points_at_root() {
        let schema = json!({"type":"object","properties":{"a":{"type":"number"}},"required":["a"]});
        let err = validate_arguments("add", &schema, &Map::new()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidToolArguments { ref pointer, .. } if pointer.is_empty()),
            "{err:?}"
        );
    }

    #[test]
    fn valid_arguments_pass_and_broken_schema_is_skipped() {
        let schema = json!({"type":"object","properties":{"a":{"type":"number"}}});
        assert!(validate_arguments("add", &schema, &args(json!({"a":1}))).unwrap());
        let broken = json!({"type": 12});
        assert!(!validate_arguments("add", &broken, &Map::new()).unwrap());
    }
}
