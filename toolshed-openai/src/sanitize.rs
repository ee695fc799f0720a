//! Cleaning what the model wrote before it is stored: no raw HTML or script in Markdown, plain
//! text for the description, bounded lengths.

/// Elements removed together with their content (their text is code or styling, not prose).
const DANGEROUS_ELEMENTS: [&str; 9] = [
    "script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math",
];

/// URL schemes that run code or smuggle content when a link is clicked.
const DANGEROUS_SCHEMES: [&str; 3] = ["javascript:", "vbscript:", "data:"];

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

/// Markdown safe to render: fenced and inline code kept verbatim (renderers escape it), raw
/// HTML elsewhere escaped, script-like elements and comments removed, `javascript:` / `data:`
/// link targets dropped.
pub(crate) fn sanitize_markdown(text: &str) -> String {
    let text = strip_controls(text);
    let mut out = String::with_capacity(text.len());
    let mut prose = String::new();
    let mut fence: Option<(char, usize)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        match (fence, marker) {
            (None, Some(m)) if run >= 3 => {
                out.push_str(&clean_prose(&prose));
                prose.clear();
                fence = Some((m, run));
                out.push_str(line);
            }
            (Some((m, n)), Some(c)) if c == m && run >= n && trimmed[run..].trim().is_empty() => {
                fence = None;
                out.push_str(line);
            }
            (Some(_), _) => out.push_str(line),
            (None, _) => prose.push_str(line),
        }
    }
    out.push_str(&clean_prose(&prose));
    out.trim().to_owned()
}

/// Cleans Markdown prose (outside code fences).
fn clean_prose(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let text = remove_dangerous_elements(&remove_html_comments(text));
    let text = drop_dangerous_links(&text);
    escape_html_outside_code_spans(&text)
}

/// Replaces dangerous inline link targets by `#` and drops dangerous reference definitions.
fn drop_dangerous_links(text: &str) -> String {
    let is_dangerous = |target: &str| {
        let t = target.trim_start_matches(|c: char| c.is_whitespace() || c == '<');
        let lower = t.to_ascii_lowercase();
        DANGEROUS_SCHEMES.iter().any(|s| lower.starts_with(s))
    };
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            if let Some(close) = t.find("]:") {
                if is_dangerous(&t[close + 2..]) {
                    continue;
                }
            }
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            out.push_str(&rest[..i + 2]);
            rest = &rest[i + 2..];
            if is_dangerous(rest) {
                let end = rest.find(')').unwrap_or(rest.len());
                out.push('#');
                rest = &rest[end..];
            }
        }
        out.push_str(rest);
    }
    out
}

/// Escapes `<` that would open raw HTML, except inside inline code spans and in autolinks
/// (`<https://…>`).
fn escape_html_outside_code_spans(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with('`') {
            let run = rest.chars().take_while(|c| *c == '`').count();
            let ticks = &rest[..run];
            // A code span closes at the next run of exactly the same length.
            let mut search = run;
            let mut closed = None;
            while let Some(j) = rest[search..].find(ticks) {
                let at = search + j;
                let after = rest[at + run..].chars().next();
                if after != Some('`') {
                    closed = Some(at + run);
                    break;
                }
                search = at + run + rest[at + run..].chars().take_while(|c| *c == '`').count();
            }
            let end = closed.unwrap_or(run);
            out.push_str(&rest[..end]);
            i += end;
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        if c == '<' {
            let next = rest[1..].chars().next();
            let opens_tag =
                next.is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?'));
            if opens_tag && !is_autolink(rest) {
                out.push_str("&lt;");
                i += 1;
                continue;
            }
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn is_autolink(rest: &str) -> bool {
    let Some(end) = rest.find('>') else {
        return false;
    };
    let inner = &rest[1..end];
    let lower = inner.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:"))
        && !inner.contains(|c: char| c.is_whitespace() || c == '<')
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
    fn markdown_loses_raw_html_and_scripts_but_keeps_code() {
        let md = "# Tools\n<script>alert('x')</script>Hi <b>there</b> <!-- hidden -->\n\
                  <SCRIPT type=x>evil()\n</Script >\n\
                  [click](javascript:alert(1)) and [ok](https://example.com) <https://a.b/c>\n\
                  [ref]: javascript:alert(2)\n\
                  Use `Vec<String>` here; a < b.\n\
                  ```html\n<div>kept in code</div>\n```\n<img src=x onerror=alert(1)>\n";
        let out = sanitize_markdown(md);
        let lower = out.to_ascii_lowercase();
        assert!(!lower.contains("<script"), "{out}");
        assert!(
            !lower.contains("alert('x')") && !lower.contains("evil()"),
            "{out}"
        );
        assert!(!lower.contains("javascript:"), "{out}");
        assert!(!out.contains("hidden"), "{out}");
        assert!(!out.contains("<b>") && !out.contains("<img"), "{out}");
        assert!(out.contains("&lt;b>there"), "{out}");
        assert!(out.contains("[click](#)"), "{out}");
        assert!(out.contains("[ok](https://example.com)"), "{out}");
        assert!(out.contains("<https://a.b/c>"), "{out}");
        assert!(out.contains("`Vec<String>`"), "{out}");
        assert!(out.contains("a < b."), "{out}");
        assert!(out.contains("<div>kept in code</div>"), "{out}");
    }

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
