//! Reading a JSON request body field by field, collecting every violation
//! with its path instead of stopping at the first (which is all serde's
//! derive can do).
//!
//! Each reader takes the fields it knows; `finish` reports the rest as
//! unknown. Values are trimmed and length-bounded as they are read.

use serde_json::{Map, Value};

use crate::domain::errors::FieldError;

pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

impl Default for Errors {
    fn default() -> Self {
        Self::new()
    }
}

pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Names a JSON value's type the way an API user would.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field that may be absent, explicitly null, or set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<T> {
    Absent,
    Null,
    /// Present but wrong; the error is already recorded.
    Invalid,
    Value(T),
}

impl<T> Field<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_present(&self) -> bool {
        !matches!(self, Field::Absent)
    }
}

pub struct ObjectReader<'a> {
    object: Option<&'a Map<String, Value>>,
    path: String,
    taken: Vec<&'static str>,
}

impl<'a> ObjectReader<'a> {
    /// `value` must be an object; otherwise the error is recorded and every
    /// read returns `Absent`.
    pub fn new(value: &'a Value, path: &str, errors: &mut Errors) -> Self {
        let object = match value {
            Value::Object(map) => Some(map),
            other => {
                let at = if path.is_empty() { "body" } else { path };
                errors.add(at, format!("must be an object, not {}", type_name(other)));
                None
            }
        };
        Self {
            object,
            path: path.to_string(),
            taken: Vec::new(),
        }
    }

    pub fn path_of(&self, field: &str) -> String {
        join(&self.path, field)
    }

    /// The raw value of a field; marks the field as known.
    pub fn raw(&mut self, field: &'static str) -> Field<&'a Value> {
        self.taken.push(field);
        match self.object.and_then(|o| o.get(field)) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(v) => Field::Value(v),
        }
    }

    pub fn has(&self, field: &str) -> bool {
        self.object.is_some_and(|o| o.contains_key(field))
    }

    /// A trimmed string of 1..=max characters.
    pub fn string(
        &mut self,
        field: &'static str,
        max: usize,
        errors: &mut Errors,
    ) -> Field<String> {
        let path = self.path_of(field);
        match self.raw(field) {
            Field::Value(Value::String(s)) => match bounded_text(s, max) {
                Ok(s) => Field::Value(s),
                Err(message) => {
                    errors.add(path, message);
                    Field::Invalid
                }
            },
            Field::Value(other) => {
                errors.add(path, format!("must be a string, not {}", type_name(other)));
                Field::Invalid
            }
            Field::Null => Field::Null,
            Field::Absent | Field::Invalid => Field::Absent,
        }
    }

    pub fn boolean(&mut self, field: &'static str, errors: &mut Errors) -> Field<bool> {
        let path = self.path_of(field);
        match self.raw(field) {
            Field::Value(Value::Bool(b)) => Field::Value(*b),
            Field::Value(other) => {
                errors.add(path, format!("must be a boolean, not {}", type_name(other)));
                Field::Invalid
            }
            Field::Null => Field::Null,
            Field::Absent | Field::Invalid => Field::Absent,
        }
    }

    /// Reports every field of the object that no read asked for.
    pub fn finish(self, errors: &mut Errors) {
        if let Some(object) = self.object {
            for key in object.keys() {
                if !self.taken.contains(&key.as_str()) {
                    errors.add(join(&self.path, key), "is not a known field");
                }
            }
        }
    }
}

/// Trims and bounds a string; the message says what is wrong.
pub fn bounded_text(s: &str, max: usize) -> Result<String, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_string())
}

/// Turns a presence problem into an error: `required` fields must be set.
pub fn required<T>(field: Field<T>, path: &str, errors: &mut Errors) -> Option<T> {
    match field {
        Field::Value(v) => Some(v),
        Field::Null => {
            errors.add(path, "must not be null");
            None
        }
        Field::Absent => {
            errors.add(path, "is required");
            None
        }
        Field::Invalid => None,
    }
}

impl<T> Field<T> {
    /// The parsed value of a present field, keeping the other states.
    pub fn and_then_parse<U>(self, parse: impl FnOnce(T) -> Option<U>) -> Field<U> {
        match self {
            Field::Value(v) => parse(v).map_or(Field::Invalid, Field::Value),
            Field::Null => Field::Null,
            Field::Absent => Field::Absent,
            Field::Invalid => Field::Invalid,
        }
    }

    /// Set to a value, or absent/null: a present-but-invalid field is
    /// neither, so presence rules do not report it twice.
    pub fn is_missing(&self) -> bool {
        matches!(self, Field::Absent | Field::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_problem_with_its_path() {
        let body = json!({"name": "  ", "age": 3, "extra": true, "nested": {"x": 1}});
        let mut errors = Errors::new();
        let mut r = ObjectReader::new(&body, "", &mut errors);
        assert_eq!(r.string("name", 10, &mut errors), Field::Invalid);
        assert_eq!(r.string("age", 10, &mut errors), Field::Invalid);
        assert_eq!(r.string("missing", 10, &mut errors), Field::Absent);
        let nested = r.raw("nested").value().unwrap();
        let n = ObjectReader::new(nested, "nested", &mut errors);
        n.finish(&mut errors);
        r.finish(&mut errors);
        let fields: Vec<_> = errors.into_vec().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "age", "nested.x", "extra"]);
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(bounded_text("  a b ", 3).unwrap(), "a b");
        assert!(bounded_text("abcd", 3).is_err());
        assert!(bounded_text("a\u{0}b", 3).is_err());
        assert!(
            bounded_text("ééé", 3).is_ok(),
            "counts characters, not bytes"
        );
    }
}
