//! The `Idempotency-Key` request header: the client's name for one attempt
//! at a change, so that a retry of it changes nothing and answers the same.

use std::fmt;

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A valid key: 1 to 255 printable ASCII characters. Sent bare (Stripe's
/// style) or as a structured-field string (`"..."`, the IETF draft's
/// style); both name the same key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Reads a header value, or says what is wrong with it.
    pub fn parse(header: &[u8]) -> Result<IdempotencyKey, &'static str> {
        let text = std::str::from_utf8(header).map_err(|_| PRINTABLE)?.trim();
        let key = match text.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None => text.to_owned(),
        };
        if key.is_empty() {
            return Err("must not be empty");
        }
        if key.len() > MAX_KEY_LEN {
            return Err("must be at most 255 characters");
        }
        if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(PRINTABLE);
        }
        Ok(IdempotencyKey(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const PRINTABLE: &str = "must be printable ASCII characters";

/// The rest of a structured-field string after its opening quote: `\"`
/// and `\\` escapes, a closing quote at the very end.
fn unquote(rest: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => out.push(escaped),
                _ => return Err("has an invalid escape in its quoted form"),
            },
            '"' => {
                return if chars.next().is_none() {
                    Ok(out)
                } else {
                    Err("has characters after its closing quote")
                }
            }
            c => out.push(c),
        }
    }
    Err("has no closing quote")
}

/// Keys are the client's and may be guessable; they are not secrets, but
/// logs show only their length.
impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({} characters)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bare_and_quoted_forms_name_the_same_key() {
        let bare = IdempotencyKey::parse(b"8e03978e-40d5-43e8-bc93-6894a57f9324").unwrap();
        let quoted = IdempotencyKey::parse(b"\"8e03978e-40d5-43e8-bc93-6894a57f9324\"").unwrap();
        assert_eq!(bare, quoted);
        assert_eq!(
            IdempotencyKey::parse(br#""a \"b\" \\ c""#)
                .unwrap()
                .as_str(),
            r#"a "b" \ c"#
        );
        assert_eq!(IdempotencyKey::parse(b"  k 1  ").unwrap().as_str(), "k 1");
    }

    #[test]
    fn bad_keys_are_refused() {
        let long = "k".repeat(256);
        for bad in [
            &b""[..],
            b"   ",
            b"\"\"",
            long.as_bytes(),
            b"tab\there",
            b"caf\xc3\xa9",
            b"\xff",
            b"\"open",
            b"\"a\"b",
            b"\"bad \\n escape\"",
        ] {
            assert!(
                IdempotencyKey::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(IdempotencyKey::parse("k".repeat(255).as_bytes()).is_ok());
    }

    proptest! {
        /// Any printable key round-trips through both forms.
        #[test]
        fn printable_keys_round_trip(key in "[!-~][ -~]{0,253}[!-~]") {
            let parsed = IdempotencyKey::parse(key.as_bytes());
            // A bare key that itself starts with a quote is read as quoted.
            if !key.starts_with('"') {
                prop_assert_eq!(parsed.unwrap().as_str().to_owned(), key.clone());
            }
            let quoted = format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""));
            let unquoted = IdempotencyKey::parse(quoted.as_bytes()).unwrap();
            prop_assert_eq!(unquoted.as_str(), key.as_str());
        }

        /// Arbitrary bytes never panic, and whatever is accepted is valid.
        #[test]
        fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(key) = IdempotencyKey::parse(&bytes) {
                prop_assert!(!key.as_str().is_empty() && key.as_str().len() <= MAX_KEY_LEN);
                prop_assert!(key.as_str().bytes().all(|b| (0x20..=0x7e).contains(&b)));
            }
        }
    }
}
