//! Token counting with the model's real BPE tokenizer (`tiktoken-rs`; tables compiled in, no
//! download at runtime).

use std::fmt;

use tiktoken_rs::CoreBPE;

/// Tokens the chat format adds per message (role and separators), as OpenAI documents it.
pub const TOKENS_PER_MESSAGE: usize = 3;
/// Tokens that prime the assistant's reply.
pub const REPLY_PRIMING_TOKENS: usize = 3;

/// Counts and cuts text in tokens of a model's encoding.
#[derive(Clone, Copy)]
pub struct TokenCounter {
    encoding: &'static str,
    bpe: &'static CoreBPE,
}

impl fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCounter")
            .field("encoding", &self.encoding)
            .finish()
    }
}

impl TokenCounter {
    /// The encoding of `model`: `cl100k_base` for the GPT-4 / GPT-3.5 generation, `o200k_base`
    /// for everything else (GPT-4o, GPT-4.1, o-series, GPT-5, and unknown models of
    /// OpenAI-compatible servers, whose tokenizers land in the same range).
    pub fn for_model(model: &str) -> Self {
        let m = model.to_ascii_lowercase();
        let legacy = m.starts_with("gpt-3.5")
            || (m.starts_with("gpt-4") && !m.starts_with("gpt-4o") && !m.starts_with("gpt-4."));
        if legacy {
            Self {
                encoding: "cl100k_base",
                bpe: tiktoken_rs::cl100k_base_singleton(),
            }
        } else {
            Self::o200k()
        }
    }

    /// The `o200k_base` encoding.
    pub fn o200k() -> Self {
        Self {
            encoding: "o200k_base",
            bpe: tiktoken_rs::o200k_base_singleton(),
        }
    }

    /// The encoding's name.
    pub fn encoding(&self) -> &'static str {
        self.encoding
    }

    /// Tokens in `text` (special-token markers are counted as plain text).
    pub fn count(&self, text: &str) -> usize {
        self.bpe.encode_ordinary(text).len()
    }

    /// The longest prefix of `text` of at most `max` tokens, preferring to end at a line break
    /// when one is near. Returns the prefix and whether anything was cut.
    pub fn truncate<'a>(&self, text: &'a str, max: usize) -> (&'a str, bool) {
        if max == 0 {
            return (&text[..0], !text.is_empty());
        }
        // Tokenise a growing window rather than the whole text: a giant README must not cost
        // time proportional to its size. Every token is at least one byte, most are 3-5.
        let mut window = floor_char_boundary(text, max.saturating_mul(6));
        let tokens = loop {
            let tokens = self.bpe.encode_ordinary(&text[..window]);
            if tokens.len() > max || window == text.len() {
                break tokens;
            }
            window = floor_char_boundary(text, window.saturating_mul(2));
        };
        if tokens.len() <= max {
            return (text, false);
        }
        // Decoding a prefix of an ordinary encoding gives back a byte prefix of the text.
        let bytes = self.bpe.decode_bytes(&tokens[..max]).map_or(0, |b| b.len());
        let end = floor_char_boundary(text, bytes);
        let cut = &text[..end];
        let end = match cut.rfind('\n') {
            Some(nl) if nl >= end - end / 6 => nl,
            _ => end,
        };
        (&text[..end], true)
    }
}

/// The largest char boundary at or below `i`.
fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_real_encoding() {
        let c = TokenCounter::o200k();
        assert_eq!(c.count(""), 0);
        assert_eq!(c.count("hello world"), 2);
        assert_eq!(
            TokenCounter::for_model("gpt-4o-mini").encoding(),
            "o200k_base"
        );
        assert_eq!(
            TokenCounter::for_model("gpt-4-turbo").encoding(),
            "cl100k_base"
        );
        assert_eq!(
            TokenCounter::for_model("llama3.1:8b").encoding(),
            "o200k_base"
        );
    }

    #[test]
    fn truncates_to_at_most_max_tokens_on_char_boundaries() {
        let c = TokenCounter::o200k();
        let text = "héllo wörld, ünïcödé täxt\n".repeat(500);
        for max in [1, 7, 100, 1000] {
            let (cut, was_cut) = c.truncate(&text, max);
            assert!(was_cut);
            assert!(c.count(cut) <= max, "{max}");
            assert!(text.starts_with(cut));
            // Close to the limit, not a tiny fraction of it.
            assert!(
                c.count(cut) * 6 >= max * 5 || max < 10,
                "{} of {max}",
                c.count(cut)
            );
        }
        let (all, was_cut) = c.truncate("short", 10);
        assert_eq!((all, was_cut), ("short", false));
    }
}
