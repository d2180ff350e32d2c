//! Turning attacker-controlled bytes into text safely.
use std::borrow::Cow;

/// Valid UTF-8 passes through unchanged; each byte of an invalid sequence becomes the
/// four characters `\xNN` (Python's `backslashreplace`), so nothing is lost and the
/// result is always valid UTF-8. JSON encoding then escapes control characters.
pub fn bytes_to_text(bytes: &[u8]) -> Cow<'_, str> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
