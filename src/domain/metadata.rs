//! `metadata`: the client's own key-value pairs on an identity (Stripe's
//! limits: 50 keys of up to 40 characters, string values of up to 500).

use std::collections::BTreeMap;

use serde_json::Value;

use super::input::Errors;

pub const MAX_KEYS: usize = 50;
pub const MAX_KEY_CHARS: usize = 40;
pub const MAX_VALUE_CHARS: usize = 500;

/// The pairs of one identity, ordered by key.
pub type Metadata = BTreeMap<String, String>;

/// What a body sends: a key set to a value, or (`null`) deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataChanges(pub BTreeMap<String, Option<String>>);

/// A key: 1 to 40 characters, no control characters and no brackets (it
/// names a list filter, `filter[metadata.<key>]`).
pub fn check_key(key: &str) -> Result<(), &'static str> {
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS {
        return Err("keys must be 1 to 40 characters");
    }
    if key.chars().any(|c| c.is_control() || c == '[' || c == ']') {
        return Err("keys may not hold control characters or brackets");
    }
    Ok(())
}

/// A value: a string of up to 500 characters, no control characters.
pub fn check_value(value: &str) -> Result<(), &'static str> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err("must be at most 500 characters");
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

/// Reads `metadata` (an object of strings, `null` deleting a key); each
/// problem is named `metadata` or `metadata.<key>`.
pub fn parse(value: &Value, errors: &mut Errors) -> Option<MetadataChanges> {
    let Some(object) = value.as_object() else {
        errors.add("metadata", "must be an object of strings");
        return None;
    };
    let mut problems = false;
    if object.len() > MAX_KEYS {
        errors.add("metadata", "may hold at most 50 keys");
        problems = true;
    }
    let mut changes = BTreeMap::new();
    for (key, value) in object {
        let field = format!("metadata.{key}");
        if let Err(why) = check_key(key) {
            errors.add(
                format!(
                    "metadata.{}",
                    key.chars().take(MAX_KEY_CHARS).collect::<String>()
                ),
                why,
            );
            problems = true;
            continue;
        }
        match value {
            Value::Null => {
                changes.insert(key.clone(), None);
            }
            Value::String(text) => match check_value(text) {
                Ok(()) => {
                    changes.insert(key.clone(), Some(text.clone()));
                }
                Err(why) => {
                    errors.add(field, why);
                    problems = true;
                }
            },
            _ => {
                errors.add(field, "must be a string (or null to delete the key)");
                problems = true;
            }
        }
    }
    (!problems).then_some(MetadataChanges(changes))
}

impl MetadataChanges {
    /// `current` with these changes, or a refusal when the result holds
    /// more than 50 keys.
    pub fn applied_to(&self, current: &Metadata) -> Result<Metadata, &'static str> {
        let mut next = current.clone();
        for (key, value) in &self.0 {
            match value {
                Some(value) => {
                    next.insert(key.clone(), value.clone());
                }
                None => {
                    next.remove(key);
                }
            }
        }
        if next.len() > MAX_KEYS {
            return Err("may hold at most 50 keys");
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(value: Value) -> Result<MetadataChanges, Vec<String>> {
        let mut errors = Errors::new();
        match parse(&value, &mut errors) {
            Some(changes) if errors.is_empty() => Ok(changes),
            _ => Err(errors.into_vec().into_iter().map(|e| e.field).collect()),
        }
    }

    #[test]
    fn limits_are_stripes() {
        assert!(parsed(json!({"tier": "gold", "gone": null})).is_ok());
        let fifty: serde_json::Map<String, Value> =
            (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(parsed(Value::Object(fifty.clone())).is_ok());
        let mut fifty_one = fifty;
        fifty_one.insert("k50".into(), json!("v"));
        assert_eq!(parsed(Value::Object(fifty_one)).unwrap_err(), ["metadata"]);
        assert!(parsed(json!({"k".repeat(40): "v"})).is_ok());
        assert_eq!(parsed(json!({"k".repeat(41): "v"})).unwrap_err().len(), 1);
        assert!(parsed(json!({"k": "v".repeat(500)})).is_ok());
        assert_eq!(
            parsed(json!({"k": "v".repeat(501)})).unwrap_err(),
            ["metadata.k"]
        );
        assert_eq!(parsed(json!({"k": 1})).unwrap_err(), ["metadata.k"]);
        assert_eq!(
            parsed(json!({"k": {"a": "b"}})).unwrap_err(),
            ["metadata.k"]
        );
        assert_eq!(parsed(json!({"a[b]": "v"})).unwrap_err(), ["metadata.a[b]"]);
        assert_eq!(parsed(json!({"": "v"})).unwrap_err(), ["metadata."]);
        assert_eq!(parsed(json!(["a"])).unwrap_err(), ["metadata"]);
    }

    #[test]
    fn changes_merge_key_by_key() {
        let current: Metadata = [("a", "1"), ("b", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let changes = parsed(json!({"b": null, "c": "3", "a": "one"})).unwrap();
        let next = changes.applied_to(&current).unwrap();
        assert_eq!(
            next.into_iter().collect::<Vec<_>>(),
            [("a".into(), "one".into()), ("c".into(), "3".into())]
        );
        let many: Metadata = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(parsed(json!({"extra": "v"}))
            .unwrap()
            .applied_to(&many)
            .is_err());
        assert!(parsed(json!({"k0": null, "extra": "v"}))
            .unwrap()
            .applied_to(&many)
            .is_ok());
    }
}
