//! The schema's `default`s, applied before the rules as the API server applies them: the same
//! result as `kube::core::cel::apply_defaults` (missing declared fields filled, existing
//! children walked through `properties`, `items` and `additionalProperties`, a filled default
//! not walked), read from a tree compiled once per kind that holds only the nodes with a
//! default at or below them, and applied in place (no copy of the object).

use serde_json::Value;

/// The defaults of one schema node and below.
pub(super) struct Defaults {
    /// Declared fields with a default: filled when missing.
    fill: Vec<(String, Value)>,
    /// Declared fields with defaults below them.
    properties: Vec<(String, Defaults)>,
    items: Option<Box<Defaults>>,
    /// Map values (fields not declared), with every declared name to tell them apart.
    additional: Option<(Box<Defaults>, Vec<String>)>,
}

impl Defaults {
    /// The defaults of `schema`, or `None` when it has none at any depth.
    pub(super) fn of(schema: &Value) -> Option<Self> {
        let properties = schema.get("properties").and_then(Value::as_object);
        let fill: Vec<(String, Value)> = properties
            .into_iter()
            .flatten()
            .filter_map(|(name, child)| Some((name.clone(), child.get("default")?.clone())))
            .collect();
        let below: Vec<(String, Defaults)> = properties
            .into_iter()
            .flatten()
            .filter_map(|(name, child)| Some((name.clone(), Self::of(child)?)))
            .collect();
        let preserve_unknown =
            schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        let additional = schema
            .get("additionalProperties")
            .filter(|a| a.is_object() && !preserve_unknown)
            .and_then(Self::of)
            .map(|d| {
                let declared = properties.into_iter().flatten().map(|(n, _)| n.clone());
                (Box::new(d), declared.collect())
            });
        let items = schema.get("items").and_then(Self::of).map(Box::new);
        let empty = fill.is_empty() && below.is_empty() && items.is_none() && additional.is_none();
        (!empty).then_some(Self {
            fill,
            properties: below,
            items,
            additional,
        })
    }

    /// Fills the defaults into `value`.
    pub(super) fn apply(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                // Existing children first: a default filled here is not walked.
                for (name, below) in &self.properties {
                    if let Some(child) = map.get_mut(name) {
                        below.apply(child);
                    }
                }
                if let Some((below, declared)) = &self.additional {
                    for (key, child) in map.iter_mut() {
                        if !declared.iter().any(|d| d == key) {
                            below.apply(child);
                        }
                    }
                }
                for (name, default) in &self.fill {
                    if !map.contains_key(name) {
                        map.insert(name.clone(), default.clone());
                    }
                }
            }
            Value::Array(items) => {
                if let Some(below) = &self.items {
                    for item in items {
                        below.apply(item);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::{CustomResourceExt, core::cel::apply_defaults};
    use serde_json::{Value, json};

    use super::Defaults;
    use crate::api::{GpuWorkload, NetworkVolume, RunPodAccount};

    fn schema<K: CustomResourceExt>() -> Value {
        serde_json::to_value(
            K::crd().spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap(),
        )
        .unwrap()
    }

    /// Every example manifest, and objects with fields left out at every level: the compiled,
    /// in-place defaults give what kube's `apply_defaults` gives.
    #[test]
    fn the_same_defaults_as_kube_cel_on_every_example_and_partial_objects() {
        let schemas = [
            ("GpuWorkload", schema::<GpuWorkload>()),
            ("NetworkVolume", schema::<NetworkVolume>()),
            ("RunPodAccount", schema::<RunPodAccount>()),
        ];
        let mut values: Vec<Value> = Vec::new();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                values.extend(serde_saphyr::from_multiple::<Value>(&text).unwrap());
            }
        }
        values.extend([
            json!({"kind": "GpuWorkload", "spec": {}}),
            json!({"kind": "GpuWorkload", "spec": {"type": "Serverless", "serverless": {}}}),
            json!({"kind": "GpuWorkload", "spec": {"env": [{"name": "A"}, {"name": "B", "valueFrom": {"secretKeyRef": {}}}], "volume": {}, "ports": [{}]}}),
            json!({"kind": "GpuWorkload", "spec": {"gpu": {}, "spendingCap": {}, "serverless": {"scaler": {}}}}),
            json!({"kind": "NetworkVolume", "spec": {}}),
            json!({"kind": "RunPodAccount", "spec": {"creditPolicy": {}}}),
            json!({"kind": "RunPodAccount", "spec": {}}),
        ]);
        let (mut compared, mut filled) = (0, 0);
        for value in values {
            let Some((_, schema)) = schemas.iter().find(|(k, _)| value["kind"] == *k) else {
                continue;
            };
            let mut ours = value.clone();
            if let Some(d) = Defaults::of(schema) {
                d.apply(&mut ours);
            }
            let theirs = apply_defaults(schema, &value);
            assert_eq!(ours, theirs, "{value}");
            compared += 1;
            filled += usize::from(theirs != value);
        }
        assert!(compared >= 10, "{compared} objects compared");
        assert!(filled >= 8, "only {filled} objects had a default to fill");
    }
}
