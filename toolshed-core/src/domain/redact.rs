//! Redaction of texts that reach users: failure reasons recorded on a server, error messages.
//!
//! Failure reasons come from builders, git, probes and cloud SDKs. What a user can act on is the
//! step, a summary and the repository's own build output; what they must not see is how the
//! deployment is wired: ARNs (account ids, role names), credentials embedded in URLs, internal
//! addresses and host names, secrets, and the Rust type names of SDK internals. The full text
//! stays in the logs.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Longest failure reason stored: the first line (the summary) and the tail of the text (where
/// a build log says what went wrong).
pub const MAX_FAILURE_REASON_LEN: usize = 4096;

/// Longest summary line kept in front of the tail.
const MAX_SUMMARY_LEN: usize = 300;

/// Patterns, in the order they are applied (credentials before hosts, so a URL's user part
/// never survives as a "host").
static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let rule = |pattern: &str, replacement: &'static str| {
        // The patterns are constants checked by the tests below.
        #[allow(clippy::expect_used)]
        let re = Regex::new(pattern).expect("redaction pattern");
        (re, replacement)
    };
    vec![
        // ARNs: `arn:aws:iam::123456789012:role/x`, any partition.
        rule(r"\barn:aws[a-z-]*:[^\s'\x22,;)\]}>]+", "<arn>"),
        // Credentials in URLs: `https://user:token@host/...`.
        rule(
            r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@'\x22]+@",
            "${1}<credentials>@",
        ),
        // Secrets with well-known shapes: AWS access keys, GitHub and OpenAI tokens, API keys
        // of this service.
        rule(
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{20,}\b|\bsk-[A-Za-z0-9_-]{20,}\b|\btsk_[A-Za-z0-9_-]{8,}\b",
            "<secret>",
        ),
        // Bearer tokens in echoed headers.
        rule(
            r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]{16,}",
            "${1} <secret>",
        ),
        // Internal IPv4 addresses (private, loopback, link-local, shared), with a port.
        rule(
            r"\b(?:10(?:\.\d{1,3}){3}|127(?:\.\d{1,3}){3}|169\.254(?:\.\d{1,3}){2}|192\.168(?:\.\d{1,3}){2}|172\.(?:1[6-9]|2\d|3[01])(?:\.\d{1,3}){2}|100\.(?:6[4-9]|[7-9]\d|1[01]\d|12[0-7])(?:\.\d{1,3}){2})(?::\d{1,5})?\b",
            "<internal-address>",
        ),
        // Internal IPv6 addresses (unique local, link-local, loopback), bracketed or not.
        rule(
            r"(?i)\[?(?:f[cd][0-9a-f]{2}|fe80):[0-9a-f:]*[0-9a-f]\]?(?::\d{1,5})?|\[::1\](?::\d{1,5})?",
            "<internal-address>",
        ),
        // Internal host names: EC2 and VPC names, `.internal`, `.local`, `localhost`.
        rule(
            r"(?i)\b(?:ip-\d{1,3}-\d{1,3}-\d{1,3}-\d{1,3}(?:\.[a-z0-9.-]+)?|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:internal|local|localdomain|lan)|localhost)(?::\d{1,5})?\b",
            "<internal-host>",
        ),
        // AWS account ids left outside ARNs (`account 123456789012`).
        rule(
            r"(?i)\b(account(?:[ _-]?id)?[ :=]*)\d{12}\b",
            "${1}<account>",
        ),
    ]
});

/// Rust paths of three or more segments (`a::b::C`), with their generic arguments.
static RUST_PATH: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    Regex::new(r"\b[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*){2,}").expect("path pattern")
});

/// `text` without ARNs, credentials in URLs, secrets, internal addresses and host names, or
/// Rust type paths of SDK internals (three or more `::` segments, generics included).
///
/// Two-segment paths (`crate::item`) are kept: they are common in a repository's own compiler
/// output, which users need to read.
pub fn redact(text: &str) -> String {
    let mut out = strip_rust_paths(text);
    for (re, replacement) in RULES.iter() {
        if re.is_match(&out) {
            out = re
                .replace_all(&out, |caps: &Captures<'_>| {
                    let mut s = String::new();
                    caps.expand(replacement, &mut s);
                    s
                })
                .into_owned();
        }
    }
    out
}

/// A failure reason as stored on a server: redacted, then cut to the first line and the tail
/// when longer than [`MAX_FAILURE_REASON_LEN`].
pub fn failure_reason(text: &str) -> String {
    let text = redact(text.trim());
    if text.len() <= MAX_FAILURE_REASON_LEN {
        return text;
    }
    let summary = text.lines().next().unwrap_or_default();
    let summary = cut_end(summary, MAX_SUMMARY_LEN);
    let budget = MAX_FAILURE_REASON_LEN.saturating_sub(summary.len() + 8);
    let tail = cut_start(&text, budget);
    format!("{summary}\n…\n{tail}")
}

fn strip_rust_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(m) = RUST_PATH.find(rest) {
        out.push_str(&rest[..m.start()]);
        out.push_str("<internal type>");
        rest = skip_generics(&rest[m.end()..]);
    }
    out.push_str(rest);
    out
}

/// `text` after a balanced `<…>` at its start (the generic arguments of a type path).
fn skip_generics(text: &str) -> &str {
    if !text.starts_with('<') {
        return text;
    }
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return &text[i + 1..];
                }
            }
            _ => {}
        }
    }
    // Unbalanced: the rest is the type's arguments, cut off by whoever produced the text.
    ""
}

fn cut_end(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn cut_start(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_removed() {
        let s = redact(
            "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/toolshed-api/i-0abc is not authorized to perform: ecs:RunTask on resource: arn:aws:ecs:eu-west-1:123456789012:task-definition/time:3",
        );
        assert!(!s.contains("123456789012"), "{s}");
        assert!(!s.contains("arn:aws"), "{s}");
        assert!(s.contains("not authorized to perform: ecs:RunTask"), "{s}");
        assert_eq!(redact("arn:aws-cn:s3:::bucket/key"), "<arn>");
    }

    #[test]
    fn credentials_in_urls_are_removed() {
        let s = redact("fatal: unable to access 'https://x-access-token:ghs_abcdefghijklmnopqrstuv@github.com/a/b.git/': 403");
        assert!(!s.contains("ghs_"), "{s}");
        assert!(
            s.contains("https://<credentials>@github.com/a/b.git/"),
            "{s}"
        );
        assert_eq!(
            redact("git clone https://user@example.com/r"),
            "git clone https://<credentials>@example.com/r"
        );
    }

    #[test]
    fn secrets_are_removed() {
        for secret in [
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_0123456789abcdefghijABCDEFGHIJ",
            "sk-proj-abcdefghijklmnopqrstuvwxyz",
            "tsk_0123456789abcdef",
        ] {
            let s = redact(&format!("key {secret} refused"));
            assert!(!s.contains(secret), "{s}");
        }
        let s = redact("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln");
        assert!(!s.contains("eyJ"), "{s}");
    }

    #[test]
    fn internal_addresses_and_hosts_are_removed() {
        let s = redact("error sending request for url (http://10.0.3.17:8000/mcp): connection refused; also 172.20.0.2, 192.168.1.9:22, 127.0.0.1:5000, 169.254.169.254 and [fd00::1]:80");
        for leaked in [
            "10.0.3.17",
            "172.20.0.2",
            "192.168.1.9",
            "127.0.0.1",
            "169.254",
            "fd00",
        ] {
            assert!(!s.contains(leaked), "{leaked} in {s}");
        }
        assert!(s.contains("connection refused"), "{s}");
        let s = redact("ssh: connect to host ip-10-0-1-23.eu-west-1.compute.internal port 22; db.corp.internal; localhost:8080");
        assert!(!s.contains("ip-10"), "{s}");
        assert!(!s.contains("corp.internal"), "{s}");
        assert!(!s.contains("localhost"), "{s}");
        // Public addresses and names stay: they are what the user registered.
        assert_eq!(
            redact("could not resolve host: github.com (8.8.8.8)"),
            "could not resolve host: github.com (8.8.8.8)"
        );
    }

    #[test]
    fn rust_type_paths_are_removed_with_their_generics() {
        let s = redact("send failed: rmcp::transport::worker::WorkerTransport<rmcp::transport::streamable_http_client::StreamableHttpClientWorker<reqwest::async_impl::client::Client>> closed: channel closed");
        assert!(!s.contains("rmcp"), "{s}");
        assert!(!s.contains("reqwest"), "{s}");
        assert!(!s.contains("WorkerTransport"), "{s}");
        assert_eq!(s, "send failed: <internal type> closed: channel closed");
        // A repository's own compiler output keeps its two-segment paths.
        assert_eq!(
            redact("error[E0425]: cannot find value `x` in `foo::bar`"),
            "error[E0425]: cannot find value `x` in `foo::bar`"
        );
        assert_eq!(redact("unbalanced a::b::C<d"), "unbalanced <internal type>");
    }

    #[test]
    fn plain_build_output_is_kept() {
        let log = "Step 3/5 : RUN pip install .\nERROR: Could not find a version that satisfies the requirement mcp>=99\nThe command '/bin/sh -c pip install .' returned a non-zero code: 1";
        assert_eq!(redact(log), log);
    }

    #[test]
    fn long_reasons_keep_the_summary_and_the_tail() {
        let mut text = String::from("build failed in phase BUILD: exit status 1\n");
        for i in 0..2000 {
            text.push_str(&format!("line {i} of the build log é\n"));
        }
        text.push_str("FINAL: the error is here");
        let r = failure_reason(&text);
        assert!(r.len() <= MAX_FAILURE_REASON_LEN, "{}", r.len());
        assert!(r.starts_with("build failed in phase BUILD"), "{r}");
        assert!(r.ends_with("FINAL: the error is here"), "{r}");
        assert!(!r.contains("line 5 of"), "{r}");
        assert_eq!(failure_reason("  short  "), "short");
    }
}
