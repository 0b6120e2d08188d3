//! JSON request bodies, parsed in one place for every API family and every future parser (the
//! Query DSL and aggregations included): [`parse`] bounds nesting at [`JSON_DEPTH_MAX`] while it
//! parses, and can refuse duplicate keys as Elasticsearch does (`{"q":1,"q":2}` is an error, not
//! a silent "last one wins", so a client bug never loses a value unseen). Each API family turns
//! a [`JsonError`] into its own error shape.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// How deeply a JSON body may nest arrays and objects (`[[1]]` nests 2 levels). Beyond it the
/// body is refused before anything reads it, with the position of the first level too deep.
/// Elasticsearch limits object mappings to 20 levels and bool queries to 30; 100 is far beyond
/// any real body, and below the 127 levels at which serde_json's own recursion guard answers
/// with a less useful message. Every internal re-read of an accepted body (translog replay, the
/// source of `_update`) goes through serde_json with that guard, so whatever is accepted here
/// always reads back.
pub const JSON_DEPTH_MAX: usize = 100;

/// What to do with a key that appears twice in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// An error, as Elasticsearch answers.
    Refuse,
    /// The last one wins, as AWS services parse.
    KeepLast,
}

/// Why a JSON body was refused; line and column are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Nested deeper than [`JSON_DEPTH_MAX`].
    #[error("nesting depth ({depth}) exceeds the maximum allowed ({JSON_DEPTH_MAX})", depth = JSON_DEPTH_MAX + 1)]
    TooDeep { line: usize, column: usize },
    /// Not JSON, or a duplicate key when refused.
    #[error("{message}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
}

impl JsonError {
    pub fn line(&self) -> usize {
        match self {
            JsonError::TooDeep { line, .. } | JsonError::Syntax { line, .. } => *line,
        }
    }

    pub fn column(&self) -> usize {
        match self {
            JsonError::TooDeep { column, .. } | JsonError::Syntax { column, .. } => *column,
        }
    }
}

/// Parses `bytes` into a `Value`, refusing nesting beyond [`JSON_DEPTH_MAX`] and, with
/// [`Duplicates::Refuse`], duplicate keys in any object.
pub fn parse(bytes: &[u8], duplicates: Duplicates) -> Result<Value, JsonError> {
    let too_deep = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let seed = Seed {
        depth: 0,
        duplicates,
        too_deep: &too_deep,
    };
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| {
        if too_deep.get() {
            JsonError::TooDeep {
                line: error.line(),
                column: error.column(),
            }
        } else {
            let message = error.to_string();
            // serde_json appends " at line L column C"; the position is reported apart.
            let message = match message.rfind(" at line ") {
                Some(cut) => message.get(..cut).unwrap_or_default().to_owned(),
                None => message,
            };
            JsonError::Syntax {
                message,
                line: error.line(),
                column: error.column(),
            }
        }
    })
}

/// Deserializes one value `depth` containers down.
#[derive(Clone, Copy)]
struct Seed<'a> {
    depth: usize,
    duplicates: Duplicates,
    too_deep: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Seed<'_> {
    /// The seed for the values of a container opened at this level, or the too-deep error.
    fn enter<E: de::Error>(self) -> Result<Self, E> {
        let depth = self.depth + 1;
        if depth > JSON_DEPTH_MAX {
            self.too_deep.set(true);
            return Err(E::custom("nesting too deep"));
        }
        Ok(Seed { depth, ..self })
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if inner.duplicates == Duplicates::Refuse && object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("Duplicate field '{key}'")));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The deepest nesting of arrays and objects in a value, without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0)];
    while let Some((value, above)) = pending.pop() {
        let depth = above + 1;
        match value {
            Value::Array(items) => pending.extend(items.iter().map(|item| (item, depth))),
            Value::Object(map) => pending.extend(map.values().map(|item| (item, depth))),
            _ => continue,
        }
        deepest = deepest.max(depth);
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn duplicates_are_refused_at_any_depth_when_asked() {
        let error = parse(br#"{"q":1,"q":2}"#, Duplicates::Refuse).unwrap_err();
        assert!(
            error.to_string().starts_with("Duplicate field 'q'"),
            "{error}"
        );
        assert_eq!((error.line(), error.column()), (1, 10));
        assert!(parse(br#"{"a":[{"b":1,"b":1}]}"#, Duplicates::Refuse).is_err());
        assert_eq!(
            parse(br#"{"q":1,"q":2}"#, Duplicates::KeepLast).unwrap(),
            serde_json::json!({"q": 2})
        );
        let value = parse(
            br#"{"a":[1,2.5,"x",null,true,{"b":{}}],"c":-3}"#,
            Duplicates::Refuse,
        )
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a":[1,2.5,"x",null,true,{"b":{}}],"c":-3})
        );
        assert!(parse(b"{} trailing", Duplicates::Refuse).is_err());
    }

    #[test]
    fn nesting_up_to_the_limit_parses_and_deeper_is_too_deep() {
        let value = parse(nested(JSON_DEPTH_MAX).as_bytes(), Duplicates::Refuse).unwrap();
        assert_eq!(depth(&value), JSON_DEPTH_MAX);
        for too_deep in [JSON_DEPTH_MAX + 1, 10 * JSON_DEPTH_MAX, 1_000_000] {
            let error = parse(nested(too_deep).as_bytes(), Duplicates::KeepLast).unwrap_err();
            assert_eq!(
                error,
                JsonError::TooDeep {
                    line: 1,
                    column: JSON_DEPTH_MAX + 1
                }
            );
        }
        let objects = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        assert!(matches!(
            parse(objects.as_bytes(), Duplicates::Refuse),
            Err(JsonError::TooDeep { .. })
        ));
        assert_eq!(
            JsonError::TooDeep { line: 1, column: 1 }.to_string(),
            "nesting depth (101) exceeds the maximum allowed (100)"
        );
    }

    /// Nested arrays and objects around scalars, up to `levels_max` deep, as JSON text.
    fn nested_json(levels_max: u32) -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            Just("1".to_owned()),
            Just("-2.5e3".to_owned()),
            Just("null".to_owned()),
            Just(r#""[{\"]""#.to_owned()),
        ];
        scalar.prop_recursive(levels_max, 4 * levels_max, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec(inner, 0..3).prop_map(|values| {
                    let fields: Vec<String> = values
                        .iter()
                        .enumerate()
                        .map(|(n, value)| format!(r#""k{n}":{value}"#))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic_and_never_pass_the_limit(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            for duplicates in [Duplicates::Refuse, Duplicates::KeepLast] {
                if let Ok(value) = parse(&bytes, duplicates) {
                    prop_assert!(depth(&value) <= JSON_DEPTH_MAX);
                    let expected = serde_json::from_slice::<Value>(&bytes).ok();
                    prop_assert_eq!(Some(value), expected);
                }
            }
        }

        #[test]
        fn bracket_soup_never_panics(text in "[\\[\\]{}\\\\\":,a1 ]{0,400}") {
            if let Ok(value) = parse(text.as_bytes(), Duplicates::KeepLast) {
                prop_assert!(depth(&value) <= JSON_DEPTH_MAX);
            }
        }

        #[test]
        fn nesting_is_accepted_exactly_up_to_the_limit(
            inner in nested_json(6),
            wrapping in 0..(JSON_DEPTH_MAX + 20),
        ) {
            let text = format!("{}{inner}{}", "[".repeat(wrapping), "]".repeat(wrapping));
            let expected = serde_json::from_str::<Value>(&text).ok();
            match parse(text.as_bytes(), Duplicates::Refuse) {
                Ok(value) => {
                    prop_assert!(depth(&value) <= JSON_DEPTH_MAX);
                    prop_assert_eq!(Some(value), expected);
                }
                Err(JsonError::TooDeep { line, .. }) => {
                    prop_assert_eq!(line, 1);
                    prop_assert!(wrapping + 1 > JSON_DEPTH_MAX - 6);
                    if let Some(expected) = expected {
                        prop_assert!(depth(&expected) > JSON_DEPTH_MAX);
                    }
                }
                Err(other) => prop_assert!(false, "{other} for {text}"),
            }
        }
    }
}
