//! Golden tests of the pure prompt builder. Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p toolshed-openai --test prompt_golden` and review the diff.

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;

use support::time_server_request;
use toolshed_core::domain::RepoSnapshot;
use toolshed_core::ports::MetadataRequest;
use toolshed_openai::{build_prompt, Prompt, TokenCounter, DEFAULT_INPUT_TOKEN_BUDGET};

fn render(prompt: &Prompt) -> String {
    let mut out = format!("# input_tokens: {}\n", prompt.input_tokens);
    for s in &prompt.sections {
        let _ = writeln!(
            out,
            "# section {:?}: {} tokens{}",
            s.section,
            s.tokens,
            if s.truncated { ", truncated" } else { "" }
        );
    }
    let _ = write!(
        out,
        "===== system =====\n{}\n===== user =====\n{}",
        prompt.system, prompt.user
    );
    out
}

fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        // Rewriting makes every golden test pass whatever the prompt says: a person reviews the
        // diff locally; CI must compare.
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty() || v == "false" || v == "0"),
            "UPDATE_GOLDEN is set while CI is: refusing to rewrite {} (unset UPDATE_GOLDEN)",
            path.display()
        );
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "length".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "prompt {name} differs from {} at {line}\n--- actual ---\n{actual}",
            path.display()
        );
    }
}

fn empty_request() -> MetadataRequest {
    let mut r = time_server_request();
    r.tools.clear();
    r.snapshot = RepoSnapshot::default();
    r
}

fn giant_request() -> MetadataRequest {
    let mut r = time_server_request();
    let body: String = (0..3000)
        .map(|i| {
            format!("## Section {i}\n\nThe server keeps clocks in sync across {i} regions.\n\n")
        })
        .collect();
    r.snapshot.readme = Some(format!(
        "# Giant README\n\nIntro paragraph that matters most.\n\n{body}"
    ));
    r.snapshot.files = (0..500)
        .map(|i| format!("pkg/sub{}/file_{i}.py", i % 7))
        .collect();
    r.snapshot.files.push("main.py".into());
    r.snapshot.truncated = true;
    r
}

#[test]
fn time_server_prompt_matches_golden() {
    let prompt = build_prompt(
        &time_server_request(),
        &TokenCounter::o200k(),
        DEFAULT_INPUT_TOKEN_BUDGET,
    );
    assert!(!prompt.truncated());
    check_golden("time_server", &render(&prompt));
}

#[test]
fn empty_repository_prompt_matches_golden() {
    let prompt = build_prompt(
        &empty_request(),
        &TokenCounter::o200k(),
        DEFAULT_INPUT_TOKEN_BUDGET,
    );
    check_golden("empty_repository", &render(&prompt));
}

#[test]
fn giant_readme_prompt_matches_golden_within_a_small_budget() {
    let prompt = build_prompt(&giant_request(), &TokenCounter::o200k(), 1_200);
    assert!(prompt.input_tokens <= 1_200, "{}", prompt.input_tokens);
    assert!(prompt.truncated());
    check_golden("giant_readme_1200", &render(&prompt));
}

#[test]
fn every_budget_is_respected_and_the_builder_is_deterministic() {
    let counter = TokenCounter::o200k();
    let request = giant_request();
    for budget in [600, 900, 1_500, 2_500, 4_000, 8_000] {
        let a = build_prompt(&request, &counter, budget);
        let b = build_prompt(&request, &counter, budget);
        assert_eq!(a, b);
        assert!(a.input_tokens <= budget, "{} > {budget}", a.input_tokens);
        // The count is what the tokenizer says about the text actually produced.
        let recount = counter.count(&a.system)
            + counter.count(&a.user)
            + counter.count(&toolshed_openai::response_format_text())
            + 9;
        assert_eq!(a.input_tokens, recount);
        // Tools come first and survive every budget that leaves room for material.
        assert!(a.user.contains("### get_current_time"), "budget {budget}");
        if budget >= 1_500 {
            assert!(
                a.user.contains("Intro paragraph that matters most."),
                "budget {budget}"
            );
        }
    }
}
