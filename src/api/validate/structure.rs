//! What the API server checks before any CEL rule: the schema's size limits (`maxLength`,
//! `maxItems`, ...) and Kubernetes' rules for object names. The CLI applies them so that a
//! manifest the API server would refuse is refused without a cluster too, with the same
//! field path.

use serde_json::Value;

use super::{FieldError, path::Path};

fn bound(schema: &Value, keyword: &str) -> Option<usize> {
    schema
        .get(keyword)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

/// Checks every size limit of `schema` on `value`, children included. Values of the wrong
/// type are left to the type check, which names them better.
pub(super) fn limits(schema: &Value, value: &Value, path: Path<'_>, errors: &mut Vec<FieldError>) {
    let mut fail = |message: String| {
        errors.push(FieldError {
            path: path.to_string(),
            message,
        });
    };
    match value {
        Value::String(text) => {
            // The API server counts characters (Unicode code points), not bytes.
            let max = bound(schema, "maxLength");
            let min = bound(schema, "minLength");
            if max.is_some() || min.is_some() {
                // Counting stops just past the limit: a 50 MB value costs no more than a short one.
                let cap = max.map_or(usize::MAX, |m| m.saturating_add(1));
                let count = text.chars().take(cap).count();
                if let Some(max) = max
                    && count > max
                {
                    fail(format!(
                        "too long: at most {max} characters, this has {}: shorten it",
                        text.chars().count()
                    ));
                }
                if let Some(min) = min
                    && count < min
                {
                    fail(format!(
                        "too short: at least {min} characters, this has {count}"
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = bound(schema, "maxItems")
                && items.len() > max
            {
                fail(format!(
                    "too many items: at most {max}, this has {}: remove some",
                    items.len()
                ));
            }
            if let Some(min) = bound(schema, "minItems")
                && items.len() < min
            {
                fail(format!(
                    "too few items: at least {min}, this has {}",
                    items.len()
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    limits(item_schema, item, path.index(i), errors);
                }
            }
        }
        Value::Object(map) => {
            if let Some(max) = bound(schema, "maxProperties")
                && map.len() > max
            {
                fail(format!(
                    "too many entries: at most {max}, this has {}: remove some",
                    map.len()
                ));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                // The CRD schema leaves the object's type and metadata to the API server.
                if path.is_root() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    limits(child_schema, child, path.key(key), errors);
                }
            }
        }
        _ => {}
    }
}

/// Up to 64 characters of untrusted text, quoted, for a message.
fn shown(text: &str) -> String {
    let mut cut: String = text.chars().take(64).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// A DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with
/// a letter or digit.
fn is_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A DNS-1123 subdomain: at most 253 characters, labels joined by '.'.
fn is_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_label)
}

/// Kubernetes' rules for `metadata.name` (a DNS-1123 subdomain, as for every custom resource
/// and Secret) and `metadata.namespace` (a DNS-1123 label).
pub(super) fn metadata(value: &Value, errors: &mut Vec<FieldError>) {
    let metadata = &value["metadata"];
    if let Some(name) = metadata["name"].as_str()
        && !is_subdomain(name)
    {
        errors.push(FieldError {
            path: "metadata.name".to_string(),
            message: format!(
                "{} is not a valid Kubernetes name: use at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (e.g. llama-finetune)",
                shown(name)
            ),
        });
    }
    match &metadata["namespace"] {
        Value::Null => {}
        Value::String(namespace) if is_label(namespace) => {}
        other => errors.push(FieldError {
            path: "metadata.namespace".to_string(),
            message: format!(
                "{} is not a valid namespace: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit (e.g. research)",
                other.as_str().map_or_else(|| "a value that is not text".to_string(), shown)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "llama-finetune", "a.b-c.d", &"a".repeat(63)] {
            assert!(is_subdomain(good), "{good}");
        }
        for bad in [
            "",
            "Llama",
            "a b",
            "a/b",
            "-a",
            "a-",
            "a..b",
            "é",
            &"a".repeat(64),
            &format!("{}.{}", "a".repeat(200), "b".repeat(60)),
        ] {
            assert!(!is_subdomain(bad), "{bad}");
        }
        assert!(!is_label("a.b"));
        assert_eq!(shown(&"é".repeat(100)).chars().count(), 64 + 3);
    }
}
