//! Making container output safe to show: ANSI escape sequences and control characters removed,
//! so a server cannot forge log lines, move the cursor or retitle the terminal.

/// Removes ANSI escape sequences (CSI, OSC, and two-byte escapes) and every control character
/// except tab. Newlines are removed too: callers split into lines first.
///
/// ```
/// use toolshed_core::adapters::docker::sanitize::sanitize_line;
/// assert_eq!(sanitize_line("\x1b[31mred\x1b[0m\x07 \x1b]0;title\x07ok\r"), "red ok");
/// ```
pub fn sanitize_line(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    for n in chars.by_ref() {
                        if ('@'..='~').contains(&n) {
                            break;
                        }
                    }
                }
                // OSC, DCS, SOS, PM, APC: up to BEL or ST (ESC \).
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(n) = chars.next() {
                        if n == '\u{7}' {
                            break;
                        }
                        if n == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                // Two-byte escapes (ESC c, ESC 7, …): drop both.
                _ => {}
            },
            // C1 CSI as a single code point.
            '\u{9b}' => {
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            // Bidirectional overrides can make a line read differently from what it is.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Splits raw output into sanitised lines (`\n`, `\r\n` and lone `\r` all end a line).
pub fn sanitize_lines(raw: &str) -> Vec<String> {
    raw.split(['\n', '\r'])
        .filter(|l| !l.is_empty())
        .map(sanitize_line)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_and_controls() {
        assert_eq!(sanitize_line("plain text"), "plain text");
        assert_eq!(sanitize_line("\x1b[1;32mOK\x1b[0m"), "OK");
        assert_eq!(sanitize_line("a\x1b[2Kb\x1b[10;5Hc"), "abc");
        assert_eq!(
            sanitize_line("x\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\y"),
            "xlinky"
        );
        assert_eq!(sanitize_line("nul\0bell\x07bs\x08del\x7f"), "nulbellbsdel");
        assert_eq!(sanitize_line("c1\u{9b}31mred"), "c1red");
        assert_eq!(sanitize_line("tab\tkept"), "tab\tkept");
        assert_eq!(sanitize_line("bidi\u{202e}txt"), "biditxt");
        assert_eq!(sanitize_line("ünïcödé ✓"), "ünïcödé ✓");
        assert_eq!(sanitize_line("dangling\x1b"), "dangling");
    }

    #[test]
    fn forged_lines_are_split_not_joined() {
        let lines = sanitize_lines("real\r\nfake: admin logged in\rthird\n\n");
        assert_eq!(lines, ["real", "fake: admin logged in", "third"]);
    }
}
