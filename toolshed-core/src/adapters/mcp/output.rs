//! Capping the size of a tool's output.

use serde_json::Value;

use crate::domain::ToolCallOutput;

/// Serialized size of a JSON value in bytes.
fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// Cuts `content` then `structured` so their serialized size stays within `cap` bytes.
///
/// Content items are kept in order; the first text item that does not fit is shortened (at a
/// character boundary) to the bytes left, later items are dropped. Structured content is kept only
/// if it fits whole in what remains, because half a JSON document is useless to a caller.
pub(crate) fn cap_output(
    content: Vec<Value>,
    structured: Option<Value>,
    is_error: bool,
    cap: usize,
) -> ToolCallOutput {
    let mut budget = cap;
    let mut truncated = false;
    let mut kept = Vec::with_capacity(content.len());
    for item in content {
        if truncated {
            break;
        }
        let len = json_len(&item);
        if len <= budget {
            budget -= len;
            kept.push(item);
            continue;
        }
        truncated = true;
        if let Some(cut) = shorten_text_item(item, budget) {
            budget = budget.saturating_sub(json_len(&cut));
            kept.push(cut);
        }
    }
    let structured = match structured {
        Some(value) if !truncated && json_len(&value) <= budget => Some(value),
        Some(_) => {
            truncated = true;
            None
        }
        None => None,
    };
    ToolCallOutput {
        content: kept,
        structured,
        is_error,
        truncated,
    }
}

/// A text content item whose text is cut so the whole item fits in `budget` bytes, if possible.
fn shorten_text_item(mut item: Value, budget: usize) -> Option<Value> {
    let overhead = {
        let mut empty = item.clone();
        empty
            .as_object_mut()?
            .insert("text".into(), Value::String(String::new()));
        json_len(&empty)
    };
    let text = item.get("text")?.as_str()?;
    let mut room = budget.checked_sub(overhead)?;
    // JSON escaping can only grow the text, so cut by bytes then shrink until it fits.
    loop {
        let mut end = room.min(text.len());
        while end > 0 && !text.is_char_boundary(end) {
            end -= 1;
        }
        let candidate = Value::String(text[..end].to_owned());
        let len = json_len(&candidate) - 2;
        if len <= room || end == 0 {
            if end == 0 {
                return None;
            }
            item.as_object_mut()?.insert("text".into(), candidate);
            return Some(item);
        }
        room = room.saturating_sub(len - room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_output_is_untouched() {
        let out = cap_output(
            vec![json!({"type":"text","text":"hi"})],
            Some(json!({"a":1})),
            false,
            1024,
        );
        assert!(!out.truncated);
        assert_eq!(out.content.len(), 1);
        assert_eq!(out.structured, Some(json!({"a":1})));
    }

    #[test]
    fn long_text_is_cut_to_the_cap() {
        let text = "é".repeat(10_000);
        let out = cap_output(
            vec![
                json!({"type":"text","text":text}),
                json!({"type":"text","text":"later"}),
            ],
            Some(json!({"big": "x".repeat(100)})),
            true,
            1000,
        );
        assert!(out.truncated);
        assert!(out.is_error);
        assert_eq!(out.content.len(), 1);
        assert!(out.structured.is_none());
        let size: usize = out.content.iter().map(json_len).sum();
        assert!(size <= 1000, "{size}");
        assert!(size > 900, "{size}");
    }
}
