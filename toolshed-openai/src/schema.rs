//! The response schema (strict structured output) and the parser of the model's answer.

use serde_json::{json, Map, Value};

use crate::error::OpenAiError;

/// Name of the schema in the request.
const SCHEMA_NAME: &str = "server_metadata";

/// The fields of the answer, all required (strict mode requires every property to be listed).
const FIELDS: [&str; 4] = [
    "enough_information",
    "description",
    "primary_language",
    "docs_markdown",
];

/// The `response_format` of the request.
pub fn response_format() -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": SCHEMA_NAME,
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "enough_information": {
                        "type": "boolean",
                        "description": "false when the material does not show what the server does"
                    },
                    "description": {
                        "type": ["string", "null"],
                        "description": "2-3 plain sentences on what the server does"
                    },
                    "primary_language": {
                        "type": ["string", "null"],
                        "description": "main programming language of the server's code"
                    },
                    "docs_markdown": {
                        "type": ["string", "null"],
                        "description": "Markdown documentation of the tools / API"
                    }
                },
                "required": FIELDS,
                "additionalProperties": false
            }
        }
    })
}

/// The schema as counted for the input budget (OpenAI bills it as input), in a canonical key
/// order so the count is the same in every build.
pub fn response_format_text() -> String {
    canonical_json(&response_format()["json_schema"])
}

/// The model's answer, checked against the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelAnswer {
    pub enough_information: bool,
    pub description: Option<String>,
    pub primary_language: Option<String>,
    pub docs_markdown: Option<String>,
}

/// Parses the message content. A strict schema should make violations impossible on OpenAI,
/// but compatible servers may not enforce it, so every rule is checked here.
pub(crate) fn parse_answer(content: &str) -> Result<ModelAnswer, OpenAiError> {
    let value: Value = serde_json::from_str(content.trim())
        .map_err(|e| OpenAiError::MalformedAnswer(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(violation("the answer is not a JSON object"));
    };
    if let Some(extra) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(violation(&format!("unexpected property {extra:?}")));
    }
    let enough_information = match obj.get("enough_information") {
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(violation("enough_information must be a boolean")),
        None => return Err(violation("enough_information is missing")),
    };
    Ok(ModelAnswer {
        enough_information,
        description: nullable_string(&obj, "description")?,
        primary_language: nullable_string(&obj, "primary_language")?,
        docs_markdown: nullable_string(&obj, "docs_markdown")?,
    })
}

fn nullable_string(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, OpenAiError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Null) => Ok(None),
        Some(_) => Err(violation(&format!("{field} must be a string or null"))),
        None => Err(violation(&format!("{field} is missing"))),
    }
}

fn violation(msg: &str) -> OpenAiError {
    OpenAiError::SchemaViolation(msg.to_owned())
}

/// Serialises `value` with object keys sorted at every level. Prompts and their token counts must
/// not depend on whether some other crate in the build turns on `serde_json/preserve_order`
/// (which changes the key order of `json!` objects and of parsed schemas).
pub(crate) fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_strict_and_lists_every_property() {
        let f = response_format();
        assert_eq!(f["json_schema"]["strict"], true);
        let schema = &f["json_schema"]["schema"];
        assert_eq!(schema["additionalProperties"], false);
        let props: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(props.len(), FIELDS.len());
        for p in props {
            assert!(FIELDS.contains(&p.as_str()));
        }
    }

    #[test]
    fn parses_good_answers_and_rejects_violations() {
        let ok = parse_answer(
            r#"{"enough_information":true,"description":"D.","primary_language":null,"docs_markdown":"- T"}"#,
        )
        .unwrap();
        assert!(ok.enough_information);
        assert_eq!(ok.description.as_deref(), Some("D."));
        assert_eq!(ok.primary_language, None);

        assert!(matches!(
            parse_answer("{not json"),
            Err(OpenAiError::MalformedAnswer(_))
        ));
        for bad in [
            r#"[]"#,
            r#"{"enough_information":true,"description":"D.","primary_language":null}"#,
            r#"{"enough_information":"yes","description":null,"primary_language":null,"docs_markdown":null}"#,
            r#"{"enough_information":true,"description":3,"primary_language":null,"docs_markdown":null}"#,
            r#"{"enough_information":true,"description":null,"primary_language":null,"docs_markdown":null,"x":1}"#,
        ] {
            assert!(
                matches!(parse_answer(bad), Err(OpenAiError::SchemaViolation(_))),
                "{bad}"
            );
        }
    }
}
