//! Checks alert documents against the OCSF and ECS field lists in `tests/schemas/`
//! (facts taken from the published schema files; see its README).
use std::path::Path;

use serde_json::{Map, Value};

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/schemas")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// OCSF 1.8.0: the four classes the formats write and every object they reach.
pub struct Ocsf {
    schema: Value,
}

impl Ocsf {
    pub fn load() -> Ocsf {
        Ocsf {
            schema: load("ocsf-1.8.0.json"),
        }
    }

    /// What is wrong with `doc`, one line each; empty when it validates.
    pub fn errors(&self, doc: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let class_uid = doc["class_uid"].as_u64();
        let class = self.schema["classes"]
            .as_object()
            .unwrap()
            .values()
            .find(|c| c["class_uid"].as_u64() == class_uid);
        let Some(class) = class else {
            return vec![format!("unknown class_uid {}", doc["class_uid"])];
        };
        if doc["category_uid"] != class["category_uid"] {
            errors.push(format!(
                "category_uid {} is not the class's",
                doc["category_uid"]
            ));
        }
        let type_uid = class_uid.unwrap() * 100 + doc["activity_id"].as_u64().unwrap_or(999);
        if doc["type_uid"].as_u64() != Some(type_uid) {
            errors.push(format!("type_uid {} is not {type_uid}", doc["type_uid"]));
        }
        if doc["metadata"]["version"] != self.schema["version"] {
            errors.push(format!("metadata.version {}", doc["metadata"]["version"]));
        }
        self.check(class, doc, "", &mut errors);
        errors
    }

    fn check(&self, spec: &Value, doc: &Value, path: &str, errors: &mut Vec<String>) {
        let Some(doc) = doc.as_object() else {
            errors.push(format!("{path}: not an object"));
            return;
        };
        let attributes = spec["attributes"].as_object().unwrap();
        for (key, value) in doc {
            let at = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let Some(attribute) = attributes.get(key) else {
                errors.push(format!("{at}: no such attribute"));
                continue;
            };
            if let Some(since) = attribute.get("deprecated") {
                errors.push(format!("{at}: deprecated since {since}"));
            }
            let items: Vec<&Value> = if attribute["array"] == true {
                match value.as_array() {
                    Some(items) => items.iter().collect(),
                    None => {
                        errors.push(format!("{at}: must be an array"));
                        continue;
                    }
                }
            } else {
                vec![value]
            };
            for item in items {
                self.check_value(attribute, item, &at, errors);
            }
        }
        for (key, attribute) in attributes {
            if attribute["req"] == "required" && !doc.contains_key(key) {
                errors.push(format!("{path}: required `{key}` missing"));
            }
        }
        let constraints = &spec["constraints"];
        if let Some(any) = constraints["at_least_one"].as_array()
            && !any.iter().any(|k| doc.contains_key(k.as_str().unwrap()))
        {
            errors.push(format!("{path}: needs one of {any:?}"));
        }
        if let Some(one) = constraints["just_one"].as_array()
            && one
                .iter()
                .filter(|k| doc.contains_key(k.as_str().unwrap()))
                .count()
                != 1
        {
            errors.push(format!("{path}: needs exactly one of {one:?}"));
        }
    }

    fn check_value(&self, attribute: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(allowed) = attribute["enum"].as_array()
            && !allowed.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        match attribute["object"].as_str() {
            // `object` is OCSF's free-form object (`unmapped`, `xattributes`).
            Some("object") => {
                if !value.is_object() {
                    errors.push(format!("{at}: must be an object"));
                }
            }
            Some(object) => self.check(&self.schema["objects"][object], value, at, errors),
            None => {
                let ok = match attribute["type"].as_str().unwrap() {
                    "integer_t" | "long_t" | "timestamp_t" => value.is_i64() || value.is_u64(),
                    "port_t" => value.as_u64().is_some_and(|p| p <= 65535),
                    "boolean_t" => value.is_boolean(),
                    "float_t" => value.is_number(),
                    "json_t" => true,
                    // Every other scalar type is a string with a meaning (ip_t,
                    // file_path_t, datetime_t, ...).
                    _ => value.is_string(),
                };
                if !ok {
                    errors.push(format!(
                        "{at}: {value} is not a {}",
                        attribute["type"].as_str().unwrap()
                    ));
                }
            }
        }
    }
}

/// ECS 9.4.0: every field of `ecs_flat.yml`.
pub struct Ecs {
    fields: Map<String, Value>,
    version: String,
}

/// The one top-level field set of this agent's own (ECS asks custom fields to live in
/// a namespace of their own).
const CUSTOM: &str = "monitor";

impl Ecs {
    pub fn load() -> Ecs {
        let schema = load("ecs-9.4.0.json");
        Ecs {
            fields: schema["fields"].as_object().unwrap().clone(),
            version: schema["version"].as_str().unwrap().to_string(),
        }
    }

    /// What is wrong with `doc`, one line each; empty when it validates.
    pub fn errors(&self, doc: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.walk(doc, "", &mut errors);
        for (name, field) in &self.fields {
            if field["required"] == true && self.at(doc, name).is_none() {
                errors.push(format!("required `{name}` missing"));
            }
        }
        if doc["ecs"]["version"] != self.version.as_str() {
            errors.push(format!("ecs.version {}", doc["ecs"]["version"]));
        }
        // Each event.type must be one some event.category of the document expects.
        let expected = &self.fields["event.category"]["expected_event_types"];
        let categories = doc["event"]["category"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for kind in doc["event"]["type"].as_array().cloned().unwrap_or_default() {
            let fits = categories.iter().any(|c| {
                expected[c.as_str().unwrap_or("")]
                    .as_array()
                    .is_some_and(|types| types.contains(&kind))
            });
            if !fits {
                errors.push(format!(
                    "event.type {kind} fits no category of {categories:?}"
                ));
            }
        }
        errors
    }

    fn at<'a>(&self, doc: &'a Value, dotted: &str) -> Option<&'a Value> {
        // `@timestamp` and the like are top-level keys; nested keys never hold dots.
        if let Some(value) = doc.get(dotted) {
            return Some(value);
        }
        dotted.split('.').try_fold(doc, |v, key| v.get(key))
    }

    fn walk(&self, value: &Value, path: &str, errors: &mut Vec<String>) {
        if path == CUSTOM {
            return;
        }
        if let Some(field) = self.fields.get(path) {
            self.check_field(field, value, path, errors);
            return;
        }
        match value.as_object() {
            Some(object) => {
                for (key, value) in object {
                    let at = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    self.walk(value, &at, errors);
                }
            }
            None => errors.push(format!("{path}: no such field")),
        }
    }

    fn check_field(&self, field: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let kind = field["type"].as_str().unwrap();
        if matches!(kind, "object" | "flattened" | "nested") {
            if !value.is_object() {
                errors.push(format!("{path}: a {kind} field must be an object"));
            }
            return;
        }
        let items: Vec<&Value> = match (value.as_array(), field["array"] == true) {
            (Some(items), true) => items.iter().collect(),
            (None, false) => vec![value],
            (Some(_), false) => {
                errors.push(format!("{path}: not an array field"));
                return;
            }
            (None, true) => {
                errors.push(format!("{path}: must be an array"));
                return;
            }
        };
        for item in items {
            let ok = match kind {
                "long" | "integer" | "short" | "byte" | "unsigned_long" => {
                    item.is_u64() || item.is_i64()
                }
                "float" | "double" | "scaled_float" | "half_float" => item.is_number(),
                "boolean" => item.is_boolean(),
                _ => item.is_string(),
            };
            if !ok {
                errors.push(format!("{path}: {item} is not a {kind}"));
            }
            if let Some(allowed) = field["allowed"].as_array()
                && !allowed.contains(item)
            {
                errors.push(format!("{path}: {item} is not one of {allowed:?}"));
            }
        }
    }
}
