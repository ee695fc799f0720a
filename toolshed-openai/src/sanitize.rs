//! Cleaning what the model wrote before it is stored: plain text for the description, bounded
//! lengths. Markdown (the docs) is cleaned by the core's sanitiser,
//! [`toolshed_core::domain::markdown`].

/// Elements removed together with their content (their text is code or styling, not prose).
const DANGEROUS_ELEMENTS: [&str; 9] = [
    "script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math",
];

/// Removes `<!-- … -->` comments (an unterminated one runs to the end).
pub(crate) fn remove_html_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start + 4..].find("-->") {
            Some(end) => rest = &rest[start + 4 + end + 3..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// Removes dangerous elements (`<script>` …) with their content, case-insensitively. An
/// unclosed one runs to the end of the text.
fn remove_dangerous_elements(text: &str) -> String {
    let mut text = text.to_owned();
    for tag in DANGEROUS_ELEMENTS {
        let open = format!("<{tag}");
        let close = format!("</{tag}");
        loop {
            // ASCII lowercasing keeps byte offsets valid for the original text.
            let lower = text.to_ascii_lowercase();
            let Some(start) = find_tag(&lower, &open, 0) else {
                break;
            };
            let end = match find_tag(&lower, &close, start + open.len()) {
                Some(c) => lower[c..].find('>').map_or(text.len(), |g| c + g + 1),
                None => text.len(),
            };
            text.replace_range(start..end, "");
        }
    }
    text
}

/// Finds `<tag` followed by a non-name character (so `<scripts` is not `<script`).
fn find_tag(lower: &str, open: &str, from: usize) -> Option<usize> {
    let mut from = from;
    while let Some(i) = lower[from..].find(open) {
        let at = from + i;
        let next = lower[at + open.len()..].chars().next();
        if next.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-') {
            return Some(at);
        }
        from = at + open.len();
    }
    None
}

fn strip_controls(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

/// Plain text: tags and comments removed, Markdown emphasis and code marks dropped, whitespace
/// collapsed.
pub(crate) fn plain_text(text: &str) -> String {
    let text = remove_dangerous_elements(&remove_html_comments(&strip_controls(text)));
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_tag {
            in_tag = c != '>';
            continue;
        }
        let opens_tag = c == '<'
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?'));
        if opens_tag {
            in_tag = true;
            continue;
        }
        if matches!(c, '`' | '*') {
            continue;
        }
        out.push(c);
    }
    // Heading marks go, a '#' inside words ("C#") stays.
    out.lines()
        .map(|line| {
            let t = line.trim_start();
            let hashes = t.chars().take_while(|c| *c == '#').count();
            if hashes > 0 && t[hashes..].starts_with(' ') {
                &t[hashes..]
            } else {
                line
            }
        })
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first `n` sentences. A sentence ends at `.`, `!` or `?` followed by a space and a
/// capital letter or digit (so "e.g. this" does not split).
pub(crate) fn first_sentences(text: &str, n: usize) -> &str {
    let mut count = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let at_end = k + 1 == chars.len();
        let boundary = at_end
            || (chars.get(k + 1).is_some_and(|&(_, s)| s == ' ')
                && chars
                    .get(k + 2)
                    .is_some_and(|&(_, u)| u.is_uppercase() || u.is_ascii_digit()));
        if boundary {
            count += 1;
            if count == n {
                return &text[..i + c.len_utf8()];
            }
        }
    }
    text
}

/// At most `max` characters, cut at a word (or line, for `by_line`) boundary with `…`.
pub(crate) fn bound(text: &str, max: usize, by_line: bool) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let end = text
        .char_indices()
        .nth(max.saturating_sub(1))
        .map_or(text.len(), |(i, _)| i);
    let head = &text[..end];
    let sep = if by_line { '\n' } else { ' ' };
    let cut = match head.rfind(sep) {
        Some(i) if i > end / 2 => &head[..i],
        _ => head,
    };
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_bounds() {
        assert_eq!(
            plain_text("A **bold** <em>claim</em>\n about `time`.<script>x()</script>"),
            "A bold claim about time."
        );
        assert_eq!(
            plain_text("## Title\nA C# server for #tags."),
            "Title A C# server for #tags."
        );
        let text = "One. Two e.g. two. Three! Four? Five.";
        assert_eq!(first_sentences(text, 3), "One. Two e.g. two. Three!");
        assert_eq!(first_sentences("No end", 3), "No end");
        assert_eq!(bound("short", 10, false), "short");
        let b = bound("alpha beta gamma delta", 12, false);
        assert_eq!(b, "alpha beta…");
        assert!(b.chars().count() <= 12);
    }
}
