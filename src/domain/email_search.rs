//! Substring search on email addresses by index ranges.
//!
//! `filter[email]=like:<s>` is a case-insensitive substring match, which no
//! B-tree index can answer in general. But a valid address has exactly one
//! `@` (the local part's allowed characters exclude it, see
//! [`crate::domain::identity::Email`]), so a substring that contains the
//! `@` splits at it: `<a>@<b>` occurs in `<local>@<domain>` exactly when the
//! local part ends with `<a>` and the domain starts with `<b>`. Both are
//! prefix tests once the local part is stored reversed, and a prefix test is
//! a range of an ordered index. That covers the searches people actually
//! run on addresses: `@publicmint.com` (the reference's own example),
//! `@mail7.`, `john.doe@`, `ana@beta.com`.
//!
//! Every identity row stores the two keys ([`EmailKeys`]); list queries turn
//! a pattern into ranges over them ([`EmailLike`]). A substring without `@`
//! stays a plain `LIKE` over the whole address.

/// What an identity row stores so that `@`-patterns are index ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailKeys {
    /// The lowercased domain: the part after the `@`.
    pub domain: String,
    /// The lowercased local part, reversed character by character, so that
    /// "the local part ends with `a`" is "this starts with `a` reversed".
    pub local_reversed: String,
}

impl EmailKeys {
    /// Keys of an address. Lowercasing is Rust's (Unicode) on both sides of
    /// the comparison, so both backends compare the same strings. Lowercasing
    /// the whole address and then splitting gives the same parts as
    /// lowercasing the parts: `@` is neither cased nor case-ignorable, so no
    /// letter's lowercase form depends on what lies across it.
    pub fn of(email: &str) -> Self {
        let lowered = email.to_lowercase();
        let (local, domain) = lowered.split_once('@').unwrap_or((lowered.as_str(), ""));
        EmailKeys {
            domain: domain.to_string(),
            local_reversed: local.chars().rev().collect(),
        }
    }
}

/// A `like:` pattern on emails, as the query layer runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailLike {
    /// No `@`: a substring of the local part or of the domain; only a scan
    /// (or PostgreSQL's trigram index) finds it.
    Substring,
    /// Exactly `@`: every address matches.
    Anything,
    /// More than one `@`: no valid address matches.
    Nothing,
    /// `<a>@<b>`: the local part ends with `a` and the domain starts with `b`
    /// (either may be empty, but not both). Both are lowercased; `a` is
    /// stored reversed, like [`EmailKeys::local_reversed`].
    Parts {
        local_reversed_prefix: String,
        domain_prefix: String,
    },
}

impl EmailLike {
    pub fn parse(substring: &str) -> Self {
        let lowered = substring.to_lowercase();
        let mut halves = lowered.splitn(3, '@');
        let (Some(local_suffix), Some(domain_prefix)) = (halves.next(), halves.next()) else {
            return EmailLike::Substring;
        };
        if halves.next().is_some() {
            return EmailLike::Nothing;
        }
        if local_suffix.is_empty() && domain_prefix.is_empty() {
            return EmailLike::Anything;
        }
        EmailLike::Parts {
            local_reversed_prefix: local_suffix.chars().rev().collect(),
            domain_prefix: domain_prefix.to_string(),
        }
    }
}

/// The strings that start with `prefix`, as a range `start <= s < end` in
/// code point order, which is the byte order of UTF-8: the order of SQLite's
/// BINARY collation and of PostgreSQL's `COLLATE "C"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRange {
    pub start: String,
    /// `None`: no upper bound (a prefix of only `char::MAX`, or empty).
    pub end: Option<String>,
}

impl PrefixRange {
    pub fn of(prefix: &str) -> Self {
        let mut end = prefix.to_string();
        // The smallest string above every string with the prefix: the
        // prefix with its last character stepped to the next one. A last
        // character with no next one is dropped and the one before stepped.
        let end = loop {
            match end.pop() {
                None => break None,
                Some(last) => {
                    if let Some(next) = next_char(last) {
                        end.push(next);
                        break Some(end);
                    }
                }
            }
        };
        PrefixRange {
            start: prefix.to_string(),
            end,
        }
    }

    /// True when the range holds every string.
    pub fn is_everything(&self) -> bool {
        self.start.is_empty()
    }
}

/// The next Unicode scalar value, skipping the surrogate gap.
fn next_char(c: char) -> Option<char> {
    match c {
        '\u{D7FF}' => Some('\u{E000}'),
        char::MAX => None,
        c => char::from_u32(c as u32 + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the database does with a range: `start <= s < end`.
    fn contains(range: &PrefixRange, s: &str) -> bool {
        s >= range.start.as_str() && range.end.as_deref().is_none_or(|end| s < end)
    }

    /// Whether an address with these keys matches, as the SQL ranges
    /// compute it; `None` for a pattern that is not answered by ranges.
    fn matches(like: &EmailLike, keys: &EmailKeys) -> Option<bool> {
        match like {
            EmailLike::Substring => None,
            EmailLike::Anything => Some(true),
            EmailLike::Nothing => Some(false),
            EmailLike::Parts {
                local_reversed_prefix,
                domain_prefix,
            } => Some(
                contains(
                    &PrefixRange::of(local_reversed_prefix),
                    &keys.local_reversed,
                ) && contains(&PrefixRange::of(domain_prefix), &keys.domain),
            ),
        }
    }

    #[test]
    fn patterns_split_at_the_at_sign() {
        assert_eq!(EmailLike::parse("alpha"), EmailLike::Substring);
        assert_eq!(EmailLike::parse("@"), EmailLike::Anything);
        assert_eq!(EmailLike::parse("a@b@c"), EmailLike::Nothing);
        assert_eq!(EmailLike::parse("@@"), EmailLike::Nothing);
        assert_eq!(
            EmailLike::parse("@PublicMint.com"),
            EmailLike::Parts {
                local_reversed_prefix: String::new(),
                domain_prefix: "publicmint.com".into()
            }
        );
        assert_eq!(
            EmailLike::parse("John.D@"),
            EmailLike::Parts {
                local_reversed_prefix: "d.nhoj".into(),
                domain_prefix: String::new()
            }
        );
    }

    #[test]
    fn keys_are_lowercased_and_the_local_part_reversed() {
        assert_eq!(
            EmailKeys::of("Ana.Lima@Alpha.COM"),
            EmailKeys {
                domain: "alpha.com".into(),
                local_reversed: "amil.ana".into()
            }
        );
        assert_eq!(EmailKeys::of("x@MÜNCHEN.de").domain, "münchen.de");
    }

    #[test]
    fn prefix_ranges_step_the_last_character() {
        assert_eq!(PrefixRange::of("mail7.").end.as_deref(), Some("mail7/"));
        assert_eq!(
            PrefixRange::of("a\u{D7FF}").end.as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(
            PrefixRange::of(&format!("a{}", char::MAX)).end.as_deref(),
            Some("b")
        );
        assert_eq!(PrefixRange::of(&char::MAX.to_string()).end, None);
        assert!(PrefixRange::of("").is_everything());
        let r = PrefixRange::of("ab");
        let max = format!("ab{}", char::MAX);
        assert!(contains(&r, "ab") && contains(&r, "abz") && contains(&r, &max));
        assert!(!contains(&r, "aa") && !contains(&r, "ac") && !contains(&r, "a"));
    }

    fn local_part() -> impl Strategy<Value = String> {
        // The characters the email validator allows before the @, weighted
        // towards a few letters so that patterns often match.
        prop::collection::vec(
            prop_oneof![
                4 => prop::sample::select(vec!['a', 'B', 'c', 'A', '7']),
                1 => prop::sample::select(".!#$%&'*+/=?^_`{|}~-".chars().collect::<Vec<_>>()),
            ],
            1..8,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    fn domain_part() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!['a', 'B', '.', '7', '-', 'Ü', 'ü', 'Σ', 'ß', 'İ']),
            1..8,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        /// The ranges find exactly what a case-insensitive substring match
        /// finds, for every pattern that contains an `@`.
        #[test]
        fn ranges_match_the_substring_semantics(
            local in local_part(),
            domain in domain_part(),
            cut in (0usize..16, 0usize..16),
            pattern_noise in prop::sample::select(vec!["", "@", "x", "A", "ü"]),
        ) {
            let email = format!("{local}@{domain}");
            let chars: Vec<char> = email.chars().collect();
            let (a, b) = (cut.0.min(chars.len()), cut.1.min(chars.len()));
            let (a, b) = (a.min(b), a.max(b));
            // A substring of the address (matching) or with noise added at
            // either end (mostly not matching).
            let sub: String = chars[a..b].iter().collect();
            for pattern in [sub.clone(), format!("{sub}{pattern_noise}"), format!("{pattern_noise}{sub}")] {
                let expected = email.to_lowercase().contains(&pattern.to_lowercase());
                match matches(&EmailLike::parse(&pattern), &EmailKeys::of(&email)) {
                    Some(found) => prop_assert_eq!(found, expected, "{} in {}", pattern, email),
                    None => prop_assert!(!pattern.contains('@')),
                }
            }
        }

        #[test]
        fn prefix_range_is_starts_with(prefix in "\\PC{0,4}", s in "\\PC{0,6}") {
            prop_assert_eq!(contains(&PrefixRange::of(&prefix), &s), s.starts_with(&prefix));
            let extended = format!("{prefix}{s}");
            prop_assert!(contains(&PrefixRange::of(&prefix), &extended));
        }
    }
}
