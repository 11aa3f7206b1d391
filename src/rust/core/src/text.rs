//! Untrusted text made safe to show: output lines, error messages, calls and
//! class names that came from the sandbox reach the operator's terminal, logs
//! and cli. One pass, linear in the input, over the decoded characters:
//!
//! - invalid UTF-8 becomes U+FFFD;
//! - terminal control sequences are removed whole: CSI (`ESC [` or U+009B,
//!   parameters, intermediates, final byte), OSC (`ESC ]` or U+009D, up to BEL
//!   or ST), DCS, SOS, PM and APC strings (`ESC P`, `ESC X`, `ESC ^`,
//!   `ESC _` or their C1 forms, up to ST), and every other `ESC` sequence;
//! - the remaining C0 controls except newline and tab, DEL and the C1
//!   controls U+0080 to U+009F are dropped (NUL included).
//!
//! A string that was never terminated ends at the next newline, so a lost
//! terminator cannot swallow the rest of a message. Cleaning is idempotent.

/// Longest output line kept whole, in bytes; longer lines are split.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

const ESC: char = '\u{1b}';
const BEL: char = '\u{07}';
const CAN: char = '\u{18}';
const SUB: char = '\u{1a}';
const C1_DCS: char = '\u{90}';
const C1_SOS: char = '\u{98}';
const C1_CSI: char = '\u{9b}';
const C1_ST: char = '\u{9c}';
const C1_OSC: char = '\u{9d}';
const C1_PM: char = '\u{9e}';
const C1_APC: char = '\u{9f}';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Escape,
    /// ESC followed by intermediate bytes, waiting for the final byte.
    EscapeIntermediate,
    /// Inside a control sequence (CSI).
    Csi,
    /// Inside a string (OSC when `bel_ends`, else DCS/SOS/PM/APC).
    Str {
        bel_ends: bool,
    },
    /// ESC inside a string: `\` ends it (ST), anything else starts a new
    /// escape sequence.
    StrEscape,
}

/// True for characters that are never shown: C0 controls other than newline
/// and tab, DEL, and C1 controls.
fn is_hidden_control(c: char) -> bool {
    (c < ' ' && c != '\n' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// Removes control sequences and controls from `s` (see the module doc).
pub fn strip_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut state = State::Ground;
    for c in s.chars() {
        // A character that ends a sequence without belonging to it is seen
        // again in the ground state: at most twice per character.
        let mut again = true;
        while again {
            again = false;
            state = match state {
                State::Ground => match c {
                    ESC => State::Escape,
                    C1_CSI => State::Csi,
                    C1_OSC => State::Str { bel_ends: true },
                    C1_DCS | C1_SOS | C1_PM | C1_APC => State::Str { bel_ends: false },
                    c if is_hidden_control(c) => State::Ground,
                    c => {
                        out.push(c);
                        State::Ground
                    }
                },
                State::Escape => match c {
                    '[' => State::Csi,
                    ']' => State::Str { bel_ends: true },
                    'P' | 'X' | '^' | '_' => State::Str { bel_ends: false },
                    ESC => State::Escape,
                    ' '..='/' => State::EscapeIntermediate,
                    '0'..='~' => State::Ground,
                    _ => {
                        again = true;
                        State::Ground
                    }
                },
                State::EscapeIntermediate => match c {
                    ' '..='/' => State::EscapeIntermediate,
                    '0'..='~' => State::Ground,
                    ESC => State::Escape,
                    _ => {
                        again = true;
                        State::Ground
                    }
                },
                State::Csi => match c {
                    ' '..='?' => State::Csi,
                    '@'..='~' => State::Ground,
                    ESC => State::Escape,
                    _ => {
                        again = true;
                        State::Ground
                    }
                },
                State::Str { bel_ends } => match c {
                    BEL if bel_ends => State::Ground,
                    C1_ST | CAN | SUB => State::Ground,
                    ESC => State::StrEscape,
                    '\n' => {
                        out.push('\n');
                        State::Ground
                    }
                    _ => State::Str { bel_ends },
                },
                State::StrEscape => match c {
                    '\\' => State::Ground,
                    _ => {
                        again = true;
                        State::Escape
                    }
                },
            };
        }
    }
    out
}

/// Cleans raw bytes: invalid UTF-8 becomes U+FFFD, then `strip_controls`.
pub fn clean(bytes: &[u8]) -> String {
    strip_controls(&String::from_utf8_lossy(bytes))
}

/// Cleans `bytes` and keeps at most `max_chars` characters, followed by a
/// marker saying how many were cut.
pub fn clean_chars(bytes: &[u8], max_chars: usize) -> String {
    truncate_chars(clean(bytes), max_chars)
}

/// Keeps the first `max_chars` characters of `s`, followed by a marker
/// saying how many more there were.
pub fn truncate_chars(s: String, max_chars: usize) -> String {
    let Some((cut, _)) = s.char_indices().nth(max_chars) else {
        return s;
    };
    let more = s[cut..].chars().count();
    let mut out = s;
    out.truncate(cut);
    out.push_str(&format!("[... truncated: {more} more characters]"));
    out
}

/// Keeps at most `max_bytes` bytes of `s`, cut at a character boundary,
/// followed by a marker saying how many bytes were cut.
pub fn truncate_bytes(s: String, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s;
    }
    let mut cut = max_bytes;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = s.len() - cut;
    let mut out = s;
    out.truncate(cut);
    out.push_str(&format!("[... truncated: {more} more bytes]"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept() {
        let s = "caf\u{e9} \t{x} [1] 42 \u{1F600}\nnext";
        assert_eq!(clean(s.as_bytes()), s);
    }

    #[test]
    fn nul_and_c0_controls_are_dropped() {
        assert_eq!(clean(b"a\0b\r\x07\x08c\x7f\n"), "abc\n");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(clean(b"a\xffb\xc3"), "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn csi_sequences_are_removed() {
        assert_eq!(clean(b"\x1b[1;31mred\x1b[0m \x1b[2J\x1b[?25l"), "red ");
        assert_eq!(clean("a\u{9b}31mb".as_bytes()), "ab");
    }

    #[test]
    fn osc_strings_are_removed_up_to_bel_or_st() {
        // Clipboard write (OSC 52) and window title.
        assert_eq!(clean(b"x\x1b]52;c;ZXZpbA==\x07y"), "xy");
        assert_eq!(clean(b"x\x1b]0;owned\x1b\\y"), "xy");
        assert_eq!(clean("x\u{9d}0;t\u{9c}y".as_bytes()), "xy");
        // Hyperlinks hide their target.
        assert_eq!(
            clean(b"\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\"),
            "click"
        );
    }

    #[test]
    fn dcs_sos_pm_apc_strings_are_removed() {
        assert_eq!(clean(b"a\x1bPq#0;2;0;0;0\x1b\\b"), "ab");
        assert_eq!(
            clean(b"a\x1bXsos\x1b\\b\x1b^pm\x1b\\c\x1b_apc\x1b\\d"),
            "abcd"
        );
        // BEL does not end a DCS string.
        assert_eq!(clean(b"a\x1bPx\x07y\x1b\\b"), "ab");
    }

    #[test]
    fn other_escape_sequences_are_removed() {
        assert_eq!(clean(b"a\x1bcb\x1b7c\x1b(Bd\x1b#8e"), "abcde");
    }

    #[test]
    fn unterminated_sequences_end_at_a_newline() {
        assert_eq!(clean(b"a\x1b]0;title\nvisible"), "a\nvisible");
        assert_eq!(clean(b"a\x1b[12\nb"), "a\nb");
        assert_eq!(clean(b"tail\x1b"), "tail");
    }

    #[test]
    fn an_escape_inside_a_string_starts_a_new_sequence() {
        assert_eq!(clean(b"\x1b]0;t\x1b[31mred"), "red");
    }

    #[test]
    fn cleaning_is_idempotent() {
        let once = clean(b"\x1b[31m\x00a\xff\x1b]0;x\x07b\xc2\x9b1mc");
        assert_eq!(clean(once.as_bytes()), once);
    }

    #[test]
    fn truncation_keeps_whole_characters_and_says_how_much() {
        assert_eq!(
            truncate_chars("h\u{e9}llo".into(), 2),
            "h\u{e9}[... truncated: 3 more characters]"
        );
        assert_eq!(truncate_chars("abc".into(), 3), "abc");
        assert_eq!(
            truncate_bytes("h\u{e9}llo".into(), 2),
            "h[... truncated: 5 more bytes]"
        );
        assert_eq!(truncate_bytes("abc".into(), 3), "abc");
        assert_eq!(
            clean_chars(b"\x1b[1mabcdef", 3),
            "abc[... truncated: 3 more characters]"
        );
    }
}
