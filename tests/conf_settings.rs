//! `conf/bess.toml`, `conf/dists.list` and `conf/archs.list`: read by
//! bess's own loader, the active lines hold the defaults, the commented
//! examples are valid too, and every key the settings accept is named.
//!
//! The accepted keys are not listed here: they come from the settings'
//! `Deserialize` implementation itself (see [`accepted_keys`]), so a key
//! added to `src/config/settings.rs` fails this test until `conf/bess.toml`
//! documents it.

use bess::config::{RepoConfig, Settings};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn conf(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conf").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_example_loads_and_holds_the_defaults() {
    let config = RepoConfig::load(&conf("")).unwrap_or_else(|e| panic!("conf/: {e}"));
    assert_eq!(
        format!("{:#?}", config.settings),
        format!("{:#?}", Settings::default()),
        "an active line of conf/bess.toml differs from bess's default: write the default, \
         or comment the line out as `#key = example`"
    );
    assert_eq!(
        config.dists.names(),
        ["bookworm", "trixie", "jammy", "noble"]
    );
    assert_eq!(config.archs.names(), ["amd64", "arm64"]);
}

#[test]
fn the_commented_examples_are_valid_settings_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bess.toml"), example_uncommented()).unwrap();
    for list in ["dists.list", "archs.list"] {
        std::fs::copy(conf(list), dir.path().join(list)).unwrap();
    }
    let config = RepoConfig::load(dir.path())
        .unwrap_or_else(|e| panic!("conf/bess.toml with its `#key` lines uncommented: {e}"));
    assert!(!config.settings.dist_rules.is_empty() && !config.settings.prune.is_empty());
}

#[test]
fn the_example_names_every_key_the_settings_accept() {
    let example: toml::Value = toml::from_str(&example_uncommented()).unwrap();
    let (keys, walked) = accepted_keys(&example);
    assert!(keys.contains_key("serve.listen"), "{keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|(_, named)| !**named)
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && walked.is_ok(),
        "conf/bess.toml does not name {missing:?} ({walked:?}). Add each key with a comment \
         saying what it does, its unit and when to change it: `key = default`, or \
         `#key = example` when it has no default (`*` is any table name)."
    );
}

#[test]
fn every_key_of_the_example_has_a_comment() {
    let text = read(&conf("bess.toml"));
    let lines: Vec<&str> = text.lines().collect();
    for (at, line) in lines.iter().enumerate() {
        if !is_setting(line) || at == 0 || is_setting(lines[at - 1]) {
            continue;
        }
        let above = lines[..at].iter().rev().find(|l| **l != "#");
        assert!(
            above.is_some_and(|l| l.starts_with("# ") || is_setting(l)),
            "conf/bess.toml line {}: `{line}` has no comment above it",
            at + 1
        );
    }
}
/// `key = …`, `"quoted.key" = …`, `[table]`, or the same commented out
/// (`#key = …`, `#[table]`).
fn is_setting(line: &str) -> bool {
    let line = line.strip_prefix('#').unwrap_or(line);
    line.starts_with(|c: char| c.is_ascii_lowercase() || c == '[' || c == '"')
}

/// conf/bess.toml with its commented-out keys and tables made active.
fn example_uncommented() -> String {
    let text = read(&conf("bess.toml"));
    let mut out = String::new();
    for line in text.lines() {
        let setting = line.strip_prefix('#').filter(|rest| is_setting(rest));
        out.push_str(setting.unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Every key path `Settings` accepts (`serve.listen`, `prune.*.keep`), each
/// with whether `example` has it, and how the walk ended.
///
/// `Settings` is deserialized from `example` through [`KeyWalk`], which
/// notes the field names serde's derived code declares for every struct on
/// the way. Containers the example leaves empty get one made-up element,
/// so the fields of their element structs are found too.
fn accepted_keys(example: &toml::Value) -> (BTreeMap<String, bool>, Result<(), String>) {
    let keys = RefCell::new(BTreeMap::new());
    let walk = KeyWalk {
        path: String::new(),
        value: Some(example),
        keys: &keys,
    };
    let walked = <Settings as de::Deserialize>::deserialize(walk)
        .map(drop)
        .map_err(|e| e.to_string());
    (keys.into_inner(), walked)
}

type WalkError = de::value::Error;

/// A deserializer over one value of the example (`None`: made up), at `path`.
struct KeyWalk<'a> {
    path: String,
    value: Option<&'a toml::Value>,
    keys: &'a RefCell<BTreeMap<String, bool>>,
}

impl<'a> KeyWalk<'a> {
    fn at(&self, path: String, value: Option<&'a toml::Value>) -> KeyWalk<'a> {
        KeyWalk {
            path,
            value,
            keys: self.keys,
        }
    }

    fn child_path(&self, key: &str) -> String {
        match self.path.as_str() {
            "" => key.to_string(),
            path => format!("{path}.{key}"),
        }
    }

    /// Leaves and enums are read from the example's own value.
    fn leaf(&self) -> Result<toml::Value, WalkError> {
        self.value
            .cloned()
            .ok_or_else(|| de::Error::custom(format!("no example value for `{}`", self.path)))
    }
}

fn walk_error(e: toml::de::Error) -> WalkError {
    de::Error::custom(e)
}

impl<'de, 'a> Deserializer<'de> for KeyWalk<'a> {
    type Error = WalkError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        self.leaf()?.deserialize_any(visitor).map_err(walk_error)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        let leaf = self.leaf()?;
        leaf.deserialize_enum(name, variants, visitor)
            .map_err(walk_error)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        match self.value {
            Some(_) => visitor.visit_some(self),
            None => visitor.visit_none(),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        let table = self.value.and_then(toml::Value::as_table);
        let mut present = Vec::new();
        for field in fields {
            let value = table.and_then(|t| t.get(*field));
            let path = self.child_path(field);
            *self.keys.borrow_mut().entry(path.clone()).or_default() |= value.is_some();
            present.extend(value.map(|v| (*field, self.at(path, Some(v)))));
        }
        visitor.visit_map(Entries::new(present))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        let path = self.child_path("*");
        let entries: Vec<(&str, KeyWalk<'a>)> = match self.value.and_then(toml::Value::as_table) {
            Some(table) if !table.is_empty() => table
                .iter()
                .map(|(k, v)| (k.as_str(), self.at(path.clone(), Some(v))))
                .collect(),
            _ => vec![("*", self.at(path, None))],
        };
        visitor.visit_map(Entries::new(entries))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        let items = match self.value.and_then(toml::Value::as_array) {
            Some(items) if !items.is_empty() => items
                .iter()
                .map(|v| self.at(self.path.clone(), Some(v)))
                .collect(),
            _ => vec![self.at(self.path.clone(), None)],
        };
        visitor.visit_seq(Elements(items.into_iter()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

/// The entries of a struct or a table, as the example (or a made-up entry) has them.
struct Entries<'a> {
    rest: std::vec::IntoIter<(&'a str, KeyWalk<'a>)>,
    value: Option<KeyWalk<'a>>,
}

impl<'a> Entries<'a> {
    fn new(entries: Vec<(&'a str, KeyWalk<'a>)>) -> Entries<'a> {
        Entries {
            rest: entries.into_iter(),
            value: None,
        }
    }
}

impl<'de, 'a> de::MapAccess<'de> for Entries<'a> {
    type Error = WalkError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        let Some((key, value)) = self.rest.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(IntoDeserializer::<WalkError>::into_deserializer(key))
            .map(Some)
    }

    fn next_value_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, WalkError> {
        seed.deserialize(self.value.take().expect("serde asks for a key first"))
    }
}

/// The elements of an array: the example's, or one made up whose failure
/// (a leaf the example gives no value for) ends the array.
struct Elements<'a>(std::vec::IntoIter<KeyWalk<'a>>);

impl<'de, 'a> de::SeqAccess<'de> for Elements<'a> {
    type Error = WalkError;

    fn next_element_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, WalkError> {
        let Some(item) = self.0.next() else {
            return Ok(None);
        };
        let made_up = item.value.is_none();
        match seed.deserialize(item) {
            Ok(value) => Ok(Some(value)),
            Err(_) if made_up => Ok(None),
            Err(e) => Err(e),
        }
    }
}
