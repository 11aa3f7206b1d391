//! Rules for the bytes of one string (a CHARSXP).
//!
//! R strings cannot hold a NUL byte: `unserialize()` fails on one
//! ("embedded nul in string"), which the host would meet only after the
//! check said yes. A string flagged UTF-8 (or unflagged, from a writer
//! whose native encoding is UTF-8) that is not valid UTF-8 makes the
//! host's `nchar()`, `substr()`, regular expressions and cli fail later,
//! so values from the sandbox may not carry one either.

/// Encoding bits of a CHARSXP's gp field (Defn.h).
const LATIN1_MASK: i32 = 1 << 2;
const UTF8_MASK: i32 = 1 << 3;
const BYTES_MASK: i32 = 1 << 1;

/// Whether a string holds a control character other than newline and
/// tab: C0 controls and DEL, and C1 controls (`U+0080`-`U+009F` in UTF-8,
/// bytes `0x80`-`0x9F` in Latin-1). Print methods that `cat()` strings
/// send them to the terminal as they are (escape sequences that set the
/// clipboard or the window title, or move the cursor to rewrite a line).
pub fn has_control(bytes: &[u8], levels: i32) -> bool {
    let latin1 = levels & LATIN1_MASK != 0;
    bytes.iter().enumerate().any(|(i, &b)| match b {
        b'\t' | b'\n' => false,
        0x00..=0x1f | 0x7f => true,
        0x80..=0x9f if latin1 => true,
        0x80..=0x9f => i > 0 && bytes[i - 1] == 0xc2,
        _ => false,
    })
}

/// What is wrong with a string, if anything. `utf8` asks for the UTF-8
/// rule (values from the sandbox); `native_utf8` says the writer's
/// native encoding is UTF-8.
pub fn problem(bytes: &[u8], levels: i32, utf8: bool, native_utf8: bool) -> Option<&'static str> {
    if bytes.contains(&0) {
        return Some("a string holds a NUL byte, which R strings cannot contain");
    }
    if !utf8 || bytes.is_ascii() {
        return None;
    }
    let claims_utf8 = if levels & UTF8_MASK != 0 {
        true
    } else if levels & (LATIN1_MASK | BYTES_MASK) != 0 {
        false
    } else {
        native_utf8
    };
    if claims_utf8 && std::str::from_utf8(bytes).is_err() {
        return Some("a string in UTF-8 is not valid UTF-8");
    }
    None
}

#[cfg(test)]
#[path = "strings_tests.rs"]
mod tests;
