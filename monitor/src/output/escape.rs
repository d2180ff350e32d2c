//! Turning attacker-controlled bytes into text safely.
use std::borrow::Cow;

/// Valid UTF-8 passes through unchanged; each byte of an invalid sequence becomes the
/// four characters `\xNN` (Python's `backslashreplace`), so nothing is lost and the
/// result is always valid UTF-8. JSON encoding then escapes control characters.
pub fn bytes_to_text(bytes: &[u8]) -> Cow<'_, str> {
    // Nearly every name and path is ASCII, which the word-at-a-time test settles in a
    // fraction of a full UTF-8 validation (this runs for each string a rule reads).
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for byte in chunk.invalid() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            }
            Cow::Owned(out)
        }
    }
}

/// The inverse of [`bytes_to_text`]: each `\xNN` is the byte it stands for (a
/// `\xNN` that was in valid text to begin with is read as that byte too).
pub fn text_to_bytes(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (
            b[i],
            b.get(i + 1),
            hex.and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'\\', Some(b'x'), Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Makes text safe for one line of a terminal or log: control characters (C0, DEL,
/// C1), and the Unicode line and paragraph separators become visible escapes (`\n`,
/// `\r`, `\t`, `\xNN`, `\u{NNNN}`), so an attacker's string can neither end the
/// line (forging another record) nor send terminal escape sequences (`ESC [ 31 m`).
/// Everything else, including backslashes already produced by [`bytes_to_text`], is
/// kept as it is.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && unsafe_char(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_line_keeps_plain_text() {
        assert!(matches!(
            escape_line("a \\xff ü /tmp"),
            Cow::Borrowed("a \\xff ü /tmp")
        ));
    }

    #[test]
    fn escape_line_escapes_controls() {
        assert_eq!(
            escape_line("a\nb\r\tc\x1b[31md\x7f\u{85}\u{2028}"),
            "a\\nb\\r\\tc\\x1b[31md\\x7f\\u{0085}\\u{2028}"
        );
    }

    #[test]
    fn valid_utf8_is_unchanged() {
        assert!(matches!(
            bytes_to_text("/tmp/ünïcode".as_bytes()),
            Cow::Borrowed("/tmp/ünïcode")
        ));
    }

    #[test]
    fn invalid_bytes_become_hex_escapes() {
        assert_eq!(bytes_to_text(b"a\xffb\xc3"), "a\\xffb\\xc3");
    }

    #[test]
    fn escaped_bytes_read_back() {
        let raw = b"\xca\xfe\xba\xbe GET / \x00";
        assert_eq!(text_to_bytes(&bytes_to_text(raw)), raw.to_vec());
        assert_eq!(text_to_bytes("\\xzz"), b"\\xzz".to_vec());
    }
}
