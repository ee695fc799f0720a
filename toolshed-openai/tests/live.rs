//! One call to the real OpenAI API. Ignored by default (run it with `--ignored` and
//! `OPENAI_API_KEY` set, which it then requires); `TOOLSHED_OPENAI_MODEL` / `TOOLSHED_OPENAI_BASE_URL` are honoured. Costs well under
//! a cent.

mod support;

use support::time_server_request;
use toolshed_core::domain::ProvenanceSource;
use toolshed_openai::{OpenAiMetadataGenerator, Outcome, DEFAULT_INPUT_TOKEN_BUDGET};

#[tokio::test]
#[ignore = "calls the real OpenAI API (costs money, needs OPENAI_API_KEY): run with --ignored"]
async fn live_openai_generates_checked_metadata_for_the_time_server() {
    // Run on purpose (`--ignored`): a missing key is a failure, not a silent pass.
    assert!(
        std::env::var("OPENAI_API_KEY").is_ok_and(|k| !k.trim().is_empty()),
        "OPENAI_API_KEY is not set; the live OpenAI test needs it"
    );
    let generator =
        OpenAiMetadataGenerator::from_env().expect("configuration from the environment");
    let generation = generator
        .generate_detailed(&time_server_request())
        .await
        .expect("live generation");
    println!("{generation:#?}");
    assert_eq!(generation.outcome, Outcome::Generated);
    let m = &generation.metadata;
    assert_eq!(m.language.as_deref(), Some("Python"));
    let description = m.description.as_deref().expect("a description");
    assert!(description.to_lowercase().contains("time"), "{description}");
    assert!(m
        .docs_markdown
        .as_deref()
        .is_some_and(|d| d.contains("convert_time")));
    match &m.provenance.source {
        ProvenanceSource::Generated {
            input_tokens,
            output_tokens,
            ..
        } => {
            println!(
                "tokens: {input_tokens} in (local estimate {}), {output_tokens} out",
                generation.estimated_input_tokens
            );
            assert!(*input_tokens > 0 && *output_tokens > 0);
            // The server's count includes its own framing of the schema: allow a margin.
            assert!(
                (*input_tokens as usize) <= DEFAULT_INPUT_TOKEN_BUDGET + 400,
                "{input_tokens}"
            );
        }
        other => panic!("expected generated provenance, got {other:?}"),
    }
}
