//! Index templates: settings, mappings and aliases that a new index takes when its name matches
//! a template's patterns, whether it is created explicitly or by a write (which is how the
//! rotated indices of delivery streams, `example-2026-12-01-13`, get their mapping).
//!
//! As in Elasticsearch 8, a new index takes the composable template (`_index_template`) of the
//! highest priority that matches it, alone; only when none matches do the legacy templates
//! (`_template`) apply, all that match, in ascending `order` (a higher order overrides). The
//! request's own settings, mappings and aliases then go over the template's. Component
//! templates (`composed_of`) are not built.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::aliases::{AliasMetadata, validate_alias_name};
use crate::error::{Result, SearchError};
use crate::mapping::Mappings;
use crate::pattern::simple_match;
use crate::settings::IndexSettings;

/// Templates the catalog holds, of both kinds together; beyond it, a new template is refused.
pub const TEMPLATES_MAX: usize = 1000;
/// Index patterns one template may have; beyond it, the template is refused.
pub const TEMPLATE_PATTERNS_MAX: usize = 100;

/// What a template gives a new index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateBody {
    /// Index settings, flat (`index.*` keys, string values) as the settings code keeps them.
    pub settings: Map<String, Value>,
    /// The mapping as given (checked by the mapping code), `None` when the template has none.
    pub mappings: Option<Value>,
    pub aliases: BTreeMap<String, AliasMetadata>,
}

impl TemplateBody {
    /// Checks settings and mappings with the code that reads them for an index, so a template
    /// never holds what an index would refuse.
    pub fn new(
        settings: Option<&Value>,
        mappings: Option<&Value>,
        aliases: BTreeMap<String, AliasMetadata>,
    ) -> Result<TemplateBody> {
        let settings = match settings {
            None => Map::new(),
            Some(value) => IndexSettings::from_json(value)?.flat,
        };
        let mappings = match mappings {
            None => None,
            Some(value) => {
                Mappings::from_json(value)?;
                Some(value.clone())
            }
        };
        for name in aliases.keys() {
            validate_alias_name(&name.replace("{index}", "index"))?;
        }
        Ok(TemplateBody {
            settings,
            mappings,
            aliases,
        })
    }

    /// The settings nested as Elasticsearch shows them (`{"index": {"number_of_shards": "1"}}`).
    pub fn settings_json(&self) -> Value {
        nest(&self.settings)
    }

    pub(crate) fn to_stored(&self) -> Value {
        let mut body = Map::new();
        body.insert("settings".into(), Value::Object(self.settings.clone()));
        if let Some(mappings) = &self.mappings {
            body.insert("mappings".into(), mappings.clone());
        }
        body.insert("aliases".into(), aliases_json(&self.aliases));
        Value::Object(body)
    }

    pub(crate) fn from_stored(value: &Value) -> Option<TemplateBody> {
        Some(TemplateBody {
            settings: value.get("settings")?.as_object()?.clone(),
            mappings: value.get("mappings").cloned(),
            aliases: aliases_from_stored(value.get("aliases")?)?,
        })
    }
}

/// `{alias: {...}}` as Elasticsearch shows a template's or an index's aliases.
pub fn aliases_json(aliases: &BTreeMap<String, AliasMetadata>) -> Value {
    Value::Object(
        aliases
            .iter()
            .map(|(name, alias)| (name.clone(), alias.to_json()))
            .collect(),
    )
}

fn aliases_from_stored(value: &Value) -> Option<BTreeMap<String, AliasMetadata>> {
    value
        .as_object()?
        .iter()
        .map(|(name, alias)| Some((name.clone(), AliasMetadata::from_stored(alias)?)))
        .collect()
}

/// A composable template (`PUT /_index_template/{name}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexTemplate {
    pub index_patterns: Vec<String>,
    pub template: TemplateBody,
    /// `None` when not given, which ranks as 0.
    pub priority: Option<u64>,
    pub version: Option<u64>,
    pub meta: Option<Value>,
    pub allow_auto_create: Option<bool>,
}

impl IndexTemplate {
    pub(crate) fn to_stored(&self) -> Value {
        let mut body = Map::new();
        body.insert("index_patterns".into(), strings_json(&self.index_patterns));
        body.insert("template".into(), self.template.to_stored());
        if let Some(priority) = self.priority {
            body.insert("priority".into(), priority.into());
        }
        if let Some(version) = self.version {
            body.insert("version".into(), version.into());
        }
        if let Some(meta) = &self.meta {
            body.insert("_meta".into(), meta.clone());
        }
        if let Some(allow) = self.allow_auto_create {
            body.insert("allow_auto_create".into(), allow.into());
        }
        Value::Object(body)
    }

    pub(crate) fn from_stored(value: &Value) -> Option<IndexTemplate> {
        Some(IndexTemplate {
            index_patterns: strings_from(value.get("index_patterns")?)?,
            template: TemplateBody::from_stored(value.get("template")?)?,
            priority: value.get("priority").and_then(Value::as_u64),
            version: value.get("version").and_then(Value::as_u64),
            meta: value.get("_meta").cloned(),
            allow_auto_create: value.get("allow_auto_create").and_then(Value::as_bool),
        })
    }

    fn matches(&self, index: &str) -> bool {
        self.index_patterns.iter().any(|p| simple_match(p, index))
    }
}

/// A legacy template (`PUT /_template/{name}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegacyTemplate {
    pub index_patterns: Vec<String>,
    pub order: i64,
    pub version: Option<u64>,
    pub template: TemplateBody,
}

impl LegacyTemplate {
    pub(crate) fn to_stored(&self) -> Value {
        let mut body = Map::new();
        body.insert("index_patterns".into(), strings_json(&self.index_patterns));
        body.insert("order".into(), self.order.into());
        if let Some(version) = self.version {
            body.insert("version".into(), version.into());
        }
        body.insert("template".into(), self.template.to_stored());
        Value::Object(body)
    }

    pub(crate) fn from_stored(value: &Value) -> Option<LegacyTemplate> {
        Some(LegacyTemplate {
            index_patterns: strings_from(value.get("index_patterns")?)?,
            order: value.get("order").and_then(Value::as_i64).unwrap_or(0),
            version: value.get("version").and_then(Value::as_u64),
            template: TemplateBody::from_stored(value.get("template")?)?,
        })
    }

    fn matches(&self, index: &str) -> bool {
        self.index_patterns.iter().any(|p| simple_match(p, index))
    }
}

fn strings_json(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn strings_from(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Checks a template's name and patterns as Elasticsearch does, with its reason texts
/// (`invalid_index_template_exception`).
pub fn validate_template(name: &str, index_patterns: &[String]) -> Result<()> {
    let invalid = |cause: String| {
        Err(SearchError::InvalidIndexTemplate {
            name: name.to_string(),
            reason: format!("Validation Failed: 1: {cause};"),
        })
    };
    if name.is_empty() || name.contains(' ') || name.contains(',') || name.contains('*') {
        return invalid(format!(
            "name must not be empty or contain a space, ',' or '*', got [{name}]"
        ));
    }
    if index_patterns.is_empty() {
        return Err(SearchError::Validation {
            reason: "index patterns are missing".into(),
        });
    }
    if index_patterns.len() > TEMPLATE_PATTERNS_MAX {
        return invalid(format!(
            "a template may have at most [{TEMPLATE_PATTERNS_MAX}] index patterns"
        ));
    }
    for pattern in index_patterns {
        if pattern.contains(' ') {
            return invalid(format!(
                "index_pattern [{pattern}] must not contain a space"
            ));
        }
        if pattern.contains(',') {
            return invalid(format!("index_pattern [{pattern}] must not contain a ','"));
        }
        if pattern.contains('#') {
            return invalid(format!("index_pattern [{pattern}] must not contain a '#'"));
        }
        if pattern.contains(':') {
            return invalid(format!("index_pattern [{pattern}] must not contain a ':'"));
        }
        if pattern.starts_with('_') {
            return invalid(format!("index_pattern [{pattern}] must not start with '_'"));
        }
        if pattern
            .chars()
            .any(|c| matches!(c, '\\' | '/' | '?' | '"' | '<' | '>' | '|'))
        {
            return invalid(format!(
                r#"index_pattern [{pattern}] must not contain the following characters [ , ", \, <, |, ,, >, /, ?]"#
            ));
        }
    }
    Ok(())
}

/// Whether some name matches both patterns (`*` matching any run): a walk over both patterns at
/// once, where a star may absorb the other pattern's characters or end.
pub fn patterns_overlap(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // reachable[i][j]: some string takes pattern a to position i and pattern b to position j.
    let mut reachable = vec![vec![false; b.len() + 1]; a.len() + 1];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        let Some(seen) = reachable.get_mut(i).and_then(|row| row.get_mut(j)) else {
            continue;
        };
        if *seen {
            continue;
        }
        *seen = true;
        let (x, y) = (a.get(i).copied(), b.get(j).copied());
        if x.is_none() && y.is_none() {
            return true;
        }
        if x == Some('*') {
            stack.push((i + 1, j));
            if y.is_some() {
                stack.push((i, j + 1));
            }
        }
        if y == Some('*') {
            stack.push((i, j + 1));
            if x.is_some() {
                stack.push((i + 1, j));
            }
        }
        if let (Some(x), Some(y)) = (x, y)
            && x != '*'
            && y != '*'
            && x == y
        {
            stack.push((i + 1, j + 1));
        }
    }
    false
}

/// The composable templates that would share a priority and a name with `candidate`, as
/// Elasticsearch refuses: `(name, patterns)` of each.
pub fn conflicting_templates<'a>(
    name: &str,
    candidate: &IndexTemplate,
    existing: &'a BTreeMap<String, IndexTemplate>,
) -> Vec<(&'a str, &'a [String])> {
    existing
        .iter()
        .filter(|(other, template)| {
            other.as_str() != name
                && template.priority.unwrap_or(0) == candidate.priority.unwrap_or(0)
                && template.index_patterns.iter().any(|p| {
                    candidate
                        .index_patterns
                        .iter()
                        .any(|q| patterns_overlap(p, q))
                })
        })
        .map(|(other, template)| (other.as_str(), template.index_patterns.as_slice()))
        .collect()
}

/// What a new index takes from the templates that match its name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub settings: Map<String, Value>,
    pub mappings: Option<Value>,
    pub aliases: BTreeMap<String, AliasMetadata>,
    /// Names of the templates applied, in the order applied.
    pub templates: Vec<String>,
}

/// The templates for a new index named `index`: the best composable template, else the legacy
/// ones in ascending order.
pub fn templates_for(
    index: &str,
    composable: &BTreeMap<String, IndexTemplate>,
    legacy: &BTreeMap<String, LegacyTemplate>,
) -> Applied {
    let mut applied = Applied::default();
    let best =
        composable
            .iter()
            .filter(|(_, t)| t.matches(index))
            .max_by(|(name_a, a), (name_b, b)| {
                // Equal priorities cannot overlap (refused at PUT); the name breaks ties anyway.
                a.priority
                    .unwrap_or(0)
                    .cmp(&b.priority.unwrap_or(0))
                    .then_with(|| name_b.cmp(name_a))
            });
    if let Some((name, template)) = best {
        apply(&mut applied, name, &template.template, index);
        return applied;
    }
    let mut matching: Vec<(&String, &LegacyTemplate)> =
        legacy.iter().filter(|(_, t)| t.matches(index)).collect();
    matching.sort_by(|(name_a, a), (name_b, b)| a.order.cmp(&b.order).then(name_a.cmp(name_b)));
    for (name, template) in matching {
        apply(&mut applied, name, &template.template, index);
    }
    applied
}

fn apply(applied: &mut Applied, name: &str, body: &TemplateBody, index: &str) {
    for (key, value) in &body.settings {
        applied.settings.insert(key.clone(), value.clone());
    }
    if let Some(mappings) = &body.mappings {
        let merged = applied
            .mappings
            .get_or_insert_with(|| Value::Object(Map::new()));
        merge_mappings(merged, mappings);
    }
    for (alias, metadata) in &body.aliases {
        applied
            .aliases
            .insert(alias.replace("{index}", index), metadata.clone());
    }
    applied.templates.push(name.to_string());
}

/// Lays `later` over `base`: root parameters replaced, properties merged by name. A field in
/// both is merged further only when both are objects with properties; otherwise the later
/// definition replaces the earlier one whole, as a template's request mapping does.
pub fn merge_mappings(base: &mut Value, later: &Value) {
    if !base.is_object() {
        *base = Value::Object(Map::new());
    }
    let (Some(base), Some(later)) = (base.as_object_mut(), later.as_object()) else {
        return;
    };
    for (key, value) in later {
        if key == "properties" {
            let properties = base
                .entry("properties")
                .or_insert_with(|| Value::Object(Map::new()));
            merge_properties(properties, value);
        } else {
            base.insert(key.clone(), value.clone());
        }
    }
}

fn is_object_field(field: &Value) -> bool {
    field.get("properties").is_some()
        && matches!(
            field.get("type").and_then(Value::as_str),
            None | Some("object")
        )
}

fn merge_properties(base: &mut Value, later: &Value) {
    let (Some(base), Some(later)) = (base.as_object_mut(), later.as_object()) else {
        return;
    };
    for (name, field) in later {
        match base.get_mut(name) {
            Some(existing) if is_object_field(existing) && is_object_field(field) => {
                merge_mappings(existing, field);
            }
            _ => {
                base.insert(name.clone(), field.clone());
            }
        }
    }
}

/// Flat `index.*` settings nested by their dots.
fn nest(flat: &Map<String, Value>) -> Value {
    let mut root = Map::new();
    for (key, value) in flat {
        let mut node = &mut root;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_string(), value.clone());
                break;
            }
            let child = node
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            let Some(next) = child.as_object_mut() else {
                break;
            };
            node = next;
        }
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn composable(patterns: &[&str], priority: Option<u64>, mappings: Value) -> IndexTemplate {
        IndexTemplate {
            index_patterns: patterns.iter().map(|p| p.to_string()).collect(),
            template: TemplateBody::new(None, Some(&mappings), BTreeMap::new()).unwrap(),
            priority,
            ..IndexTemplate::default()
        }
    }

    #[test]
    fn overlapping_patterns() {
        assert!(patterns_overlap("logs-*", "logs-*"));
        assert!(patterns_overlap("logs-*", "*-2026"));
        assert!(patterns_overlap("*", "anything"));
        assert!(patterns_overlap("a*b", "ab"));
        assert!(patterns_overlap("a*", "*b"));
        assert!(!patterns_overlap("logs-*", "metrics-*"));
        assert!(!patterns_overlap("a*b", "a*c"));
        assert!(!patterns_overlap("abc", "abd"));
        assert!(patterns_overlap("x*y*z", "*y*"));
    }

    #[test]
    fn the_best_composable_template_applies_alone() {
        let mut templates = BTreeMap::new();
        templates.insert(
            "low".to_string(),
            composable(
                &["example-*"],
                Some(1),
                json!({"properties": {"a": {"type": "keyword"}}}),
            ),
        );
        templates.insert(
            "high".to_string(),
            composable(
                &["example-2026-*"],
                Some(5),
                json!({"properties": {"b": {"type": "long"}}}),
            ),
        );
        let mut legacy = BTreeMap::new();
        legacy.insert(
            "old".to_string(),
            LegacyTemplate {
                index_patterns: vec!["*".into()],
                ..LegacyTemplate::default()
            },
        );
        let applied = templates_for("example-2026-12-01-13", &templates, &legacy);
        assert_eq!(applied.templates, ["high"]);
        assert_eq!(
            applied.mappings,
            Some(json!({"properties": {"b": {"type": "long"}}}))
        );
        assert_eq!(
            templates_for("example-2025", &templates, &legacy).templates,
            ["low"]
        );
        assert_eq!(
            templates_for("other", &templates, &legacy).templates,
            ["old"]
        );
        assert_eq!(
            templates_for("other", &templates, &BTreeMap::new()),
            Applied::default()
        );
    }

    #[test]
    fn legacy_templates_apply_in_ascending_order() {
        let body = |settings: Value, mappings: Value| {
            TemplateBody::new(Some(&settings), Some(&mappings), BTreeMap::new()).unwrap()
        };
        let mut legacy = BTreeMap::new();
        legacy.insert(
            "b-first".to_string(),
            LegacyTemplate {
                index_patterns: vec!["logs*".into()],
                order: 0,
                version: None,
                template: body(
                    json!({"number_of_replicas": 2, "refresh_interval": "5s"}),
                    json!({"properties": {"user": {"properties": {"name": {"type": "text"}}}, "n": {"type": "long"}}}),
                ),
            },
        );
        legacy.insert(
            "a-second".to_string(),
            LegacyTemplate {
                index_patterns: vec!["logs-*".into()],
                order: 3,
                version: None,
                template: body(
                    json!({"index": {"number_of_replicas": "0"}}),
                    json!({"properties": {"user": {"properties": {"id": {"type": "keyword"}}}, "n": {"type": "integer"}}}),
                ),
            },
        );
        let applied = templates_for("logs-1", &BTreeMap::new(), &legacy);
        assert_eq!(applied.templates, ["b-first", "a-second"]);
        assert_eq!(
            Value::Object(applied.settings),
            json!({"index.number_of_replicas": "0", "index.refresh_interval": "5s"})
        );
        assert_eq!(
            applied.mappings,
            Some(json!({"properties": {
                "user": {"properties": {"name": {"type": "text"}, "id": {"type": "keyword"}}},
                "n": {"type": "integer"}
            }}))
        );
    }

    #[test]
    fn template_aliases_may_name_their_index() {
        let mut aliases = BTreeMap::new();
        aliases.insert("{index}-alias".to_string(), AliasMetadata::default());
        let mut legacy = BTreeMap::new();
        legacy.insert(
            "t".to_string(),
            LegacyTemplate {
                index_patterns: vec!["x*".into()],
                template: TemplateBody::new(None, None, aliases).unwrap(),
                ..LegacyTemplate::default()
            },
        );
        let applied = templates_for("x1", &BTreeMap::new(), &legacy);
        assert!(applied.aliases.contains_key("x1-alias"));
    }

    #[test]
    fn bad_templates_are_refused_with_elasticsearch_reasons() {
        assert!(
            TemplateBody::new(
                None,
                Some(&json!({"properties": {"a": {"type": "bogus"}}})),
                BTreeMap::new()
            )
            .is_err()
        );
        assert!(
            TemplateBody::new(
                Some(&json!({"number_of_shards": "x"})),
                None,
                BTreeMap::new()
            )
            .is_err()
        );
        let reason = |patterns: &[&str]| {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
            validate_template("t", &patterns).unwrap_err().to_string()
        };
        assert_eq!(
            reason(&[]),
            "Validation Failed: 1: index patterns are missing;"
        );
        assert_eq!(
            reason(&["a b"]),
            "index_template [t] invalid, cause [Validation Failed: 1: index_pattern [a b] must not contain a space;]"
        );
        assert!(reason(&["_x"]).contains("must not start with '_'"));
        assert!(validate_template("t", &["logs-*".to_string()]).is_ok());
    }

    #[test]
    fn equal_priorities_with_overlapping_patterns_conflict() {
        let mut existing = BTreeMap::new();
        existing.insert("a".to_string(), composable(&["logs-*"], None, json!({})));
        existing.insert("b".to_string(), composable(&["metrics-*"], None, json!({})));
        let candidate = composable(&["*-prod"], Some(0), json!({}));
        let conflicts = conflicting_templates("c", &candidate, &existing);
        assert_eq!(conflicts.len(), 2);
        let candidate = composable(&["*-prod"], Some(1), json!({}));
        assert!(conflicting_templates("c", &candidate, &existing).is_empty());
        // A template replacing itself never conflicts with its old version.
        let candidate = composable(&["logs-*"], None, json!({}));
        assert!(conflicting_templates("a", &candidate, &existing).is_empty());
    }

    #[test]
    fn settings_nest_by_their_dots() {
        let body = TemplateBody::new(
            Some(&json!({"index.number_of_shards": 1, "refresh_interval": "1s"})),
            None,
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            body.settings_json(),
            json!({"index": {"number_of_shards": "1", "refresh_interval": "1s"}})
        );
        assert_eq!(TemplateBody::from_stored(&body.to_stored()), Some(body));
    }
}
