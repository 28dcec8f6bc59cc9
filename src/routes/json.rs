//! JSON request bodies read as a `serde_json::Value` that refuses duplicate
//! object keys. serde_json keeps the last of two equal keys, so a proxy or
//! WAF that reads the first would see a different request than the server
//! (`"email"` twice in one create); every JSON body goes through here.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A parsed body and the path of its first duplicate key, if any.
pub struct CheckedValue {
    pub value: Value,
    pub duplicate: Option<String>,
}

impl<'de> serde::Deserialize<'de> for CheckedValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut duplicate = None;
        let value = Node {
            path: String::new(),
            duplicate: &mut duplicate,
        }
        .deserialize(deserializer)?;
        Ok(CheckedValue { value, duplicate })
    }
}

/// One value at `path`, noting the first duplicate key below it.
struct Node<'a> {
    path: String,
    duplicate: &'a mut Option<String>,
}

impl Node<'_> {
    fn child(&mut self, step: &str) -> Node<'_> {
        let path = if self.path.is_empty() || step.starts_with('[') {
            format!("{}{step}", self.path)
        } else {
            format!("{}.{step}", self.path)
        };
        Node {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child(&format!("[{}]", items.len())))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self.child(&key))?;
            if !seen.insert(key.clone()) && self.duplicate.is_none() {
                *self.duplicate = Some(self.child(&key).path);
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(body: &str) -> CheckedValue {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn the_first_duplicate_key_is_named_by_its_path() {
        assert_eq!(check(r#"{"a": 1, "a": 2}"#).duplicate.as_deref(), Some("a"));
        assert_eq!(
            check(r#"{"address": {"city": "x", "city": "y"}}"#)
                .duplicate
                .as_deref(),
            Some("address.city")
        );
        assert_eq!(
            check(r#"{"documents": [{}, {"url": 1, "url": 2}]}"#)
                .duplicate
                .as_deref(),
            Some("documents[1].url")
        );
        assert_eq!(check(r#"{"a": {"b": 1}, "b": 1}"#).duplicate, None);
    }

    proptest! {
        /// Without duplicates the value is exactly what serde_json reads.
        #[test]
        fn reads_what_serde_json_reads(value in any_json()) {
            let text = value.to_string();
            let checked = check(&text);
            prop_assert_eq!(checked.duplicate, None);
            let plain: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(checked.value, plain);
        }
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            any::<u64>().prop_map(|n| Value::Number(n.into())),
            (-1e9f64..1e9).prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
