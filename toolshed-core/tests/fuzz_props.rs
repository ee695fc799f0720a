//! Property tests ("fuzz targets") of the parsers that see untrusted input: repository URLs,
//! git refs, tool-argument validation, the stdio bridge's JSON-RPC line framing and the docs
//! Markdown sanitiser.
//!
//! Under `cargo nextest` each target runs a modest number of cases (`PROPTEST_CASES`, default
//! 64). `scripts/fuzz.sh` runs each for a bounded time instead (`TOOLSHED_FUZZ_SECONDS`) and
//! prints the executions. Failing inputs are persisted to
//! `tests/proptest-regressions/fuzz_props.txt` and replayed first on every run.
#![cfg(feature = "mcp-server")]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use toolshed_core::adapters::mcp::validate_arguments;
use toolshed_core::domain::markdown::{is_safe_url, sanitize_markdown};
use toolshed_core::domain::{GitRef, RepoUrl, RepoUrlPolicy};
use toolshed_core::Error;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/fuzz_props.txt",
        ))),
        ..Config::default()
    }
}

/// Runs `test` over `strategy`: `PROPTEST_CASES` cases (default 64), or, with
/// `TOOLSHED_FUZZ_SECONDS`, batches of cases until that time is up; prints the executions.
fn run<S: Strategy>(target: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let seconds: Option<u64> = std::env::var("TOOLSHED_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let started = Instant::now();
    let mut executions: u64 = 0;
    loop {
        let batch = if seconds.is_some() { 2000 } else { cases };
        let mut runner = TestRunner::new(config(batch));
        if let Err(failure) = runner.run(&strategy, &test) {
            println!("fuzz target={target} executions={executions} failures=1");
            panic!("{target}: {failure}");
        }
        executions += u64::from(batch);
        match seconds {
            Some(s) if started.elapsed() < Duration::from_secs(s) => continue,
            _ => break,
        }
    }
    println!(
        "fuzz target={target} executions={executions} failures=0 seconds={:.1}",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------- RepoUrl

/// Hosts: public and private literals, names, odd forms.
fn host() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        // (host text, whether it is known to be private)
        (any::<[u8; 4]>()).prop_map(|o| {
            let private = o[0] == 127
                || o[0] == 10
                || o[0] == 0
                || (o[0] == 169 && o[1] == 254)
                || (o[0] == 192 && o[1] == 168)
                || (o[0] == 172 && (16..32).contains(&o[1]));
            (format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]), private)
        }),
        Just(("localhost".to_owned(), true)),
        Just(("LOCALHOST.".to_owned(), true)),
        Just(("[::1]".to_owned(), true)),
        Just(("[fe80::1%25eth0]".to_owned(), true)),
        Just(("[fd12:3456::1]".to_owned(), true)),
        Just(("[::ffff:10.0.0.1]".to_owned(), true)),
        Just(("0x7f.1".to_owned(), true)),
        Just(("2130706433".to_owned(), true)),
        "[a-z][a-z0-9-]{0,12}(\\.[a-z]{2,5}){1,2}".prop_map(|h| (h, false)),
        "\\PC{0,12}".prop_map(|h| (h, false)),
    ]
}

fn url_like() -> impl Strategy<Value = (String, bool)> {
    (
        prop_oneof![
            Just("https"),
            Just("http"),
            Just("file"),
            Just("ssh"),
            Just("HTTPS"),
            Just("git"),
        ],
        prop::option::of("[a-z]{1,6}(:[a-z]{1,6})?@"),
        host(),
        prop::option::of(0u16..),
        "(/[A-Za-z0-9._%~-]{0,10}){0,4}",
        prop::option::of("[?#][a-z=]{0,6}"),
    )
        .prop_map(|(scheme, user, (host, private), port, path, tail)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            (
                format!(
                    "{scheme}://{}{host}{port}{path}{}",
                    user.unwrap_or_default(),
                    tail.unwrap_or_default()
                ),
                private,
            )
        })
}

#[test]
fn fuzz_repo_url() {
    let inputs = prop_oneof![
        url_like(),
        "\\PC{0,80}".prop_map(|s| (s, false)),
        any::<String>().prop_map(|s| (s, false)),
    ];
    run("repo_url", inputs, |(raw, private)| {
        let strict = RepoUrl::parse(&raw, RepoUrlPolicy::HTTPS_ONLY);
        let file = RepoUrl::parse(&raw, RepoUrlPolicy::ALLOW_FILE);
        let local = RepoUrl::parse(&raw, RepoUrlPolicy::LOCAL);
        // Every refusal is the typed error of the field.
        for r in [&strict, &file, &local] {
            if let Err(e) = r {
                prop_assert!(
                    matches!(
                        e,
                        Error::InvalidInput {
                            field: "repo_url",
                            ..
                        }
                    ),
                    "{e:?}"
                );
                // A refusal never echoes embedded credentials.
                if raw.contains('@') && raw.contains(':') {
                    let shown = e.to_string();
                    let user = raw.split("://").nth(1).and_then(|r| r.split('@').next());
                    if let Some(user) = user.filter(|u| u.len() > 3 && !u.contains('/')) {
                        prop_assert!(!shown.contains(user), "{shown}");
                    }
                }
            }
        }
        // Wider policies accept at least what narrower ones do.
        prop_assert!(strict.is_err() || file.is_ok());
        prop_assert!(file.is_err() || local.is_ok());
        if let Ok(url) = &strict {
            prop_assert!(url.as_str().starts_with("https://"));
            prop_assert!(!url.is_file());
            prop_assert!(!private, "private host accepted: {raw}");
            // Normal form is stable, and deserialising agrees with the strict policy.
            let again =
                RepoUrl::new(url.as_str()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&again, url);
            let de: RepoUrl = serde_json::from_value(Value::String(url.as_str().to_owned()))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&de, url);
        }
        let de = serde_json::from_value::<RepoUrl>(Value::String(raw.clone()));
        prop_assert_eq!(de.is_ok(), strict.is_ok(), "deserialise vs parse: {}", raw);
        Ok(())
    });
}

// ---------------------------------------------------------------- GitRef

/// Whether git itself accepts `name` as a branch name.
fn git_accepts(name: &str) -> bool {
    std::process::Command::new("git")
        .args(["check-ref-format", "--branch", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn fuzz_git_ref() {
    let inputs = prop_oneof![
        "[a-zA-Z0-9._/@{}~^:?*\\[\\\\ -]{1,24}",
        "(v?[0-9]{1,2}\\.){0,2}[0-9]{1,2}",
        "[a-z]{1,6}(/[a-z.]{1,6}){0,3}(\\.lock)?",
        any::<String>(),
    ];
    run("git_ref", inputs, |raw| {
        match GitRef::new(raw.clone()) {
            Ok(r) => {
                prop_assert_eq!(r.as_str(), raw.as_str());
                // Soundness against git: what we accept, git accepts as a branch name.
                prop_assert!(git_accepts(&raw), "git refuses {:?}", raw);
            }
            Err(e) => {
                let typed = matches!(
                    e,
                    Error::InvalidInput {
                        field: "git_ref",
                        ..
                    }
                );
                prop_assert!(typed, "{:?}", e);
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------- tool arguments

/// A JSON value of bounded depth.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A schema fragment built from keywords a server may send, hostile ones included.
fn schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        prop_oneof![
            Just("string"),
            Just("number"),
            Just("integer"),
            Just("boolean"),
            Just("null"),
            Just("array"),
            Just("object"),
            Just("nonsense"),
        ]
        .prop_map(|t| json!({ "type": t })),
        "\\PC{0,10}".prop_map(|p| json!({ "type": "string", "pattern": p })),
        Just(json!({ "type": "string", "pattern": "^(a+)+$" })),
        Just(json!({ "$ref": "#" })),
        Just(
            json!({ "$ref": "#/definitions/x", "definitions": { "x": { "$ref": "#/definitions/x" } } })
        ),
        Just(json!({ "$ref": "http://169.254.169.254/latest/meta-data" })),
        Just(json!({ "format": "email" })),
        (0u64..5).prop_map(|n| json!({ "maxLength": n, "minItems": n })),
        json_value(),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            (
                prop::collection::btree_map("[a-z]{1,4}", inner.clone(), 0..4),
                prop::collection::vec("[a-z]{1,4}", 0..3)
            )
                .prop_map(|(props, required)| json!({
                    "type": "object",
                    "properties": props.into_iter().collect::<Map<_, _>>(),
                    "required": required,
                })),
            inner
                .clone()
                .prop_map(|items| json!({ "type": "array", "items": items })),
            prop::collection::vec(inner, 1..3).prop_map(|s| json!({ "anyOf": s })),
        ]
    })
}

/// A flat object schema and arguments that conform to it.
fn conforming() -> impl Strategy<Value = (Value, Map<String, Value>, String)> {
    prop::collection::btree_map(
        "[a-z]{1,6}",
        prop_oneof![
            "\\PC{0,8}".prop_map(|s| ("string", Value::String(s))),
            any::<i32>().prop_map(|n| ("integer", Value::from(n))),
            any::<bool>().prop_map(|b| ("boolean", Value::Bool(b))),
        ],
        1..5,
    )
    .prop_map(|fields| {
        let properties: Map<String, Value> = fields
            .iter()
            .map(|(k, (t, _))| (k.clone(), json!({ "type": t })))
            .collect();
        let required: Vec<&String> = fields.keys().collect();
        let schema = json!({"type": "object", "properties": properties, "required": required});
        let first = fields.keys().next().cloned().unwrap_or_default();
        let args = fields.into_iter().map(|(k, (_, v))| (k, v)).collect();
        (schema, args, first)
    })
}

#[test]
fn fuzz_tool_arguments() {
    run(
        "tool_arguments",
        (schema(), json_value()),
        |(schema, args)| {
            let args = match args {
                Value::Object(map) => map,
                other => Map::from_iter([("value".to_owned(), other)]),
            };
            match validate_arguments("tool", &schema, &args) {
                Ok(_) => {}
                Err(Error::InvalidToolArguments { tool, pointer, .. }) => {
                    prop_assert_eq!(tool, "tool");
                    // The pointer names a place in the arguments.
                    let instance = Value::Object(args.clone());
                    prop_assert!(
                        pointer.is_empty() || instance.pointer(&pointer).is_some(),
                        "pointer {:?} not in {}",
                        pointer,
                        instance
                    );
                }
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
            Ok(())
        },
    );
    run(
        "tool_arguments_conforming",
        conforming(),
        |(schema, mut args, first)| {
            prop_assert_eq!(validate_arguments("t", &schema, &args).ok(), Some(true));
            // One field of the wrong type is refused, at that field.
            args.insert(first.clone(), json!([{"wrong": "type"}]));
            match validate_arguments("t", &schema, &args) {
                Err(Error::InvalidToolArguments { pointer, .. }) => {
                    prop_assert_eq!(pointer, format!("/{first}"))
                }
                other => prop_assert!(false, "expected a refusal, got {other:?}"),
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------- bridge framing

/// One line a stdio server may print: a JSON-RPC message, garbage, or a partial message.
fn line() -> impl Strategy<Value = (Vec<u8>, Option<i64>)> {
    prop_oneof![
        (0i64..1_000_000).prop_map(|id| {
            let text = json!({"jsonrpc": "2.0", "id": id, "result": {}}).to_string();
            (text.into_bytes(), Some(id))
        }),
        "\\PC{0,40}".prop_map(|s| (s.replace('\n', " ").into_bytes(), None)),
        prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..64)
            .prop_map(|b| (b, None)),
        Just((br#"{"jsonrpc":"2.0","id":"#.to_vec(), None)),
        Just((br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#.to_vec(), None)),
        (1usize..4).prop_map(|n| (vec![b'{'; n * 1000], None)),
    ]
}

#[test]
fn fuzz_bridge_framing() {
    use rmcp::transport::async_rw::AsyncRwTransport;
    use rmcp::transport::Transport;
    use rmcp::RoleClient;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let inputs = (
        prop::collection::vec((line(), prop_oneof![Just("\n"), Just("\r\n")]), 0..12),
        any::<bool>(),
    );
    run("bridge_framing", inputs, |(lines, trailing_newline)| {
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        let count = lines.len();
        for (i, ((line, id), end)) in lines.into_iter().enumerate() {
            bytes.extend_from_slice(&line);
            let last = i + 1 == count;
            if !last || trailing_newline {
                bytes.extend_from_slice(end.as_bytes());
            }
            if let Some(id) = id {
                // A final message without its newline may be lost at EOF; never misread.
                if !last || trailing_newline {
                    expected.push(id);
                }
            }
        }
        // What the bridge does with its child's stdout: a client-side line transport with a
        // small line cap, so oversized lines are exercised too.
        let received: Vec<i64> = runtime.block_on(async {
            let mut transport = AsyncRwTransport::<RoleClient, _, _>::new_client(
                std::io::Cursor::new(bytes),
                tokio::io::sink(),
            )
            .with_max_line_length(2048);
            let mut ids = Vec::new();
            let deadline = tokio::time::sleep(Duration::from_secs(10));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    message = transport.receive() => match message {
                        Some(message) => {
                            let value = serde_json::to_value(&message).unwrap_or(Value::Null);
                            if value.get("result").is_some() {
                                if let Some(id) = value.get("id").and_then(Value::as_i64) {
                                    ids.push(id);
                                }
                            }
                        }
                        None => break,
                    },
                    _ = &mut deadline => { ids.push(-1); break; }
                }
            }
            ids
        });
        prop_assert!(
            !received.contains(&-1),
            "the transport did not reach the end"
        );
        // Every well-formed message line is delivered, in order; garbage never shifts framing.
        let delivered: Vec<i64> = received.iter().copied().filter(|id| *id >= 0).collect();
        for id in &expected {
            prop_assert!(
                delivered.contains(id),
                "message {} lost: {:?} vs {:?}",
                id,
                delivered,
                expected
            );
        }
        prop_assert!(
            delivered
                .iter()
                .all(|id| expected.contains(id) || !expected.is_empty() || delivered.is_empty()),
            "phantom message {:?}",
            delivered
        );
        Ok(())
    });
}

// ---------------------------------------------------------------- docs Markdown

/// Pieces of Markdown and HTML that attacks are made of; joined in any order and number.
const MARKDOWN_PIECES: &[&str] = &[
    "<script>",
    "</script>",
    "<SCRIPT type=x>",
    "alert(1)",
    "<img src=x onerror=alert(1)>",
    "<img",
    " src=x",
    " onerror=",
    "<svg onload=alert(1)>",
    "<a href=\"javascript:alert(1)\">",
    "</a>",
    "<div>",
    "</div>",
    "<!--",
    "-->",
    "<?",
    "?>",
    "<![CDATA[",
    "]]>",
    "<",
    ">",
    "/",
    "`",
    "``",
    "```",
    "~~~",
    "    ",
    "   ",
    "  ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "[",
    "]",
    "(",
    ")",
    "![",
    "](",
    "]: ",
    "[x]",
    "[x]: ",
    "javascript:alert(1)",
    "JaVaScRiPt:",
    "java\tscript:",
    "&#106;avascript:",
    "&#x09;",
    "vbscript:",
    "data:text/html,<script>x</script>",
    "https://ok.test/",
    "mailto:a@b.c",
    "<https://x.test>",
    "<javascript:alert(1)>",
    "\"",
    "'",
    "&lt;",
    "&amp;",
    "&",
    "\\",
    "*",
    "**",
    "_",
    "|",
    "|---|",
    "-",
    "- ",
    "+ ",
    "1. ",
    "> ",
    "#",
    "## ",
    "=",
    "---",
    "- [ ] ",
    "- [x]",
    "{#id onclick=alert(1)}",
    "{",
    "}",
    "[[",
    "]]",
    "$",
    "[^1]",
    "[^1]: ",
    "^",
    ":",
    "\n: ",
    "+++",
    "~~",
    "text",
    " ",
    "é",
    "\u{0}",
    "\u{202e}",
];

fn markdown_input() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(prop::sample::select(MARKDOWN_PIECES), 0..48)
            .prop_map(|pieces| pieces.concat()),
        1 => "\\PC{0,200}",
        1 => any::<String>(),
    ]
}

/// Tags pulldown-cmark itself writes for Markdown (with every extension); any other tag came
/// from raw HTML.
const MARKDOWN_TAGS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "code",
    "pre",
    "ul",
    "ol",
    "li",
    "a",
    "img",
    "em",
    "strong",
    "del",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "blockquote",
    "hr",
    "br",
    "input",
    "div",
    "span",
    "sup",
    "sub",
    "dl",
    "dt",
    "dd",
];

/// Checks every tag of rendered HTML: a Markdown tag, no `on…` attribute, no unsafe URL.
fn check_tags(html: &str) -> Result<(), String> {
    let lower = html.to_ascii_lowercase();
    if lower.contains("<script") {
        return Err("<script".to_owned());
    }
    let mut rest = lower.as_str();
    while let Some(start) = rest.find('<') {
        let tag = &rest[start + 1..];
        let end = tag.find('>').unwrap_or(tag.len());
        let tag = &tag[..end];
        rest = &rest[start + 1 + end..];
        let tag = tag.trim_start_matches('/');
        let name_end = tag
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(tag.len());
        let name = &tag[..name_end];
        if !MARKDOWN_TAGS.contains(&name) {
            return Err(format!("tag <{name}> in {html}"));
        }
        // Attributes: a name, optionally `=` and a value, quoted or not.
        let mut attrs = &tag[name_end..];
        loop {
            attrs = attrs.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if attrs.is_empty() {
                break;
            }
            let n = attrs
                .find(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or(attrs.len());
            let attr = &attrs[..n];
            attrs = &attrs[n..];
            let mut value = "";
            if let Some(after) = attrs.strip_prefix('=') {
                if let Some(quoted) = after.strip_prefix('"') {
                    let close = quoted.find('"').unwrap_or(quoted.len());
                    value = &quoted[..close];
                    attrs = quoted.get(close + 1..).unwrap_or("");
                } else {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    value = &after[..end];
                    attrs = &after[end..];
                }
            }
            if attr.starts_with("on") {
                return Err(format!("attribute {attr} in {html}"));
            }
            if matches!(attr, "href" | "src") && !is_safe_url(value) {
                return Err(format!("{attr}={value:?} in {html}"));
            }
        }
    }
    Ok(())
}

fn render(markdown: &str, options: pulldown_cmark::Options) -> String {
    let mut html = String::new();
    pulldown_cmark::html::push_html(
        &mut html,
        pulldown_cmark::Parser::new_ext(markdown, options),
    );
    html
}

#[test]
fn fuzz_markdown() {
    use pulldown_cmark::{Event, Options, Parser};
    // The docs' own dialect, GitHub's, plain CommonMark and every extension pulldown-cmark has:
    // a viewer may render with any of them.
    let docs =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_HEADING_ATTRIBUTES;
    let gfm = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM;
    let dialects = [docs, gfm, Options::empty(), Options::all()];
    run("markdown", markdown_input(), |input| {
        let out = sanitize_markdown(&input);
        // Rendered in every dialect: no HTML but Markdown's own, no event handler, no script
        // URL.
        for options in dialects {
            let html = render(&out, options);
            check_tags(&html).map_err(|finding| {
                TestCaseError::fail(format!("{finding}\ninput: {input:?}\noutput: {out:?}"))
            })?;
        }
        for event in Parser::new_ext(&out, docs) {
            let raw = matches!(event, Event::Html(_) | Event::InlineHtml(_));
            prop_assert!(!raw, "raw HTML {:?} in {:?} from {:?}", event, out, input);
        }
        let again = sanitize_markdown(&out);
        prop_assert_eq!(&again, &out, "not idempotent for {:?}", input);
        Ok(())
    });
}
