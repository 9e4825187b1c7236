//! The CRDs' simplest rules, checked in Rust: patterns (`self.matches('...')`, whose regular
//! expression the CEL interpreter compiles on every call: a third of the CPU of reading a
//! thousand manifests), ranges, non-empty and prefix rules (each a CEL evaluation of its own
//! for one comparison). A rule in any other form stays with CEL. The rules stay in the
//! published CRD, so the API server checks them too; the tests run every accept/reject case
//! through both.

use kube::core::cel::CompiledSchema;
use serde_json::Value;

/// A pattern the CRDs use, checked natively.
type Pattern = fn(&str) -> bool;

fn digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `^[0-9]{1,7}([.][0-9]{1,6})?$`
fn usd(s: &str) -> bool {
    match s.split_once('.') {
        None => digits(s, 1, 7),
        Some((whole, fraction)) => digits(whole, 1, 7) && digits(fraction, 1, 6),
    }
}

/// `^[0-9]{1,5}/(http|tcp)$`
fn port(s: &str) -> bool {
    s.split_once('/').is_some_and(|(number, protocol)| {
        digits(number, 1, 5) && matches!(protocol, "http" | "tcp")
    })
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`
fn env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `^[0-9]{1,3}[.][0-9]{1,3}$`
fn cuda(s: &str) -> bool {
    s.split_once('.')
        .is_some_and(|(major, minor)| digits(major, 1, 3) && digits(minor, 1, 3))
}

const PATTERNS: [(&str, Pattern); 4] = [
    ("^[0-9]{1,7}([.][0-9]{1,6})?$", usd),
    ("^[0-9]{1,5}/(http|tcp)$", port),
    ("^[A-Za-z_][A-Za-z0-9_]*$", env_name),
    ("^[0-9]{1,3}[.][0-9]{1,3}$", cuda),
];

/// A rule the CRDs use, in a form checked natively.
enum Shape {
    /// `self.matches('p')`: the string itself.
    One(Pattern),
    /// `self.all(x, x.matches('p'))`: every string of a list.
    All(Pattern),
    /// `self >= a`, `self >= a && self <= b`: a number in range.
    Range(f64, Option<f64>),
    /// `size(self) > 0`, `size(self) >= 1`: a string, list or map that is not empty.
    NotEmpty,
    /// `self.startsWith('a') || self.startsWith('b') ...`: a string with one of these
    /// beginnings.
    Prefix(Vec<String>),
    /// One of the CRDs' rules across fields, written out in Rust (see [`EXPRESSIONS`]).
    Expr(Expression),
}

/// A rule across fields: whether it holds, `None` when a field it reads is missing or of
/// another type (CEL then decides, errors and all).
type Expression = fn(&Value) -> Option<bool>;

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

fn has(v: &Value, key: &str) -> Option<bool> {
    Some(v.as_object()?.contains_key(key))
}

fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key)?.as_i64()
}

fn size(v: &Value, key: &str) -> Option<usize> {
    Some(v.get(key)?.as_array()?.len())
}

/// `self.type != 'Serverless' || !has(self.<key>)`
fn not_on_endpoint(v: &Value, key: &str) -> Option<bool> {
    Some(text(v, "type")? != "Serverless" || !has(v, key)?)
}

/// The rules across fields of the CRDs, exactly as written there, each with its Rust form.
/// A rule not listed (or written differently) stays with CEL.
const EXPRESSIONS: [(&str, Expression); 15] = [
    ("self.type != 'Pod' || !has(self.serverless)", |v| {
        Some(text(v, "type")? != "Pod" || !has(v, "serverless")?)
    }),
    ("self.type == 'Pod' || has(self.serverless)", |v| {
        Some(text(v, "type")? == "Pod" || has(v, "serverless")?)
    }),
    ("self.type == 'Pod' || !has(self.volume)", |v| {
        Some(text(v, "type")? == "Pod" || !has(v, "volume")?)
    }),
    ("self.type != 'Serverless' || !has(self.state)", |v| {
        not_on_endpoint(v, "state")
    }),
    (
        "self.type != 'Serverless' || !has(self.stoppedVolumePolicy)",
        |v| not_on_endpoint(v, "stoppedVolumePolicy"),
    ),
    ("self.type != 'Serverless' || !has(self.gpu.cloud)", |v| {
        if text(v, "type")? != "Serverless" {
            return Some(true);
        }
        Some(!has(v.get("gpu")?, "cloud")?)
    }),
    (
        "self.type == 'Serverless' || (has(self.volume) ? 1 : 0) + (has(self.networkVolumes) ? size(self.networkVolumes) : 0) <= 1",
        |v| {
            if text(v, "type")? == "Serverless" {
                return Some(true);
            }
            let volume = usize::from(has(v, "volume")?);
            let network = if has(v, "networkVolumes")? {
                size(v, "networkVolumes")?
            } else {
                0
            };
            Some(volume + network <= 1)
        },
    ),
    (
        "self.type != 'Serverless' || !has(self.networkVolumes) || self.networkVolumes.all(v, !has(v.mountPath))",
        |v| {
            if text(v, "type")? != "Serverless" || !has(v, "networkVolumes")? {
                return Some(true);
            }
            v["networkVolumes"]
                .as_array()?
                .iter()
                .map(|m| has(m, "mountPath").map(|h| !h))
                .collect::<Option<Vec<bool>>>()
                .map(|all| all.into_iter().all(|ok| ok))
        },
    ),
    ("self.maxWorkers >= self.activeWorkers", |v| {
        Some(int(v, "maxWorkers")? >= int(v, "activeWorkers")?)
    }),
    (
        "self.workerClass != 'Flex' || self.activeWorkers == 0",
        |v| Some(text(v, "workerClass")? != "Flex" || int(v, "activeWorkers")? == 0),
    ),
    (
        "self.workerClass != 'Active' || self.activeWorkers >= 1",
        |v| Some(text(v, "workerClass")? != "Active" || int(v, "activeWorkers")? >= 1),
    ),
    (
        "self.workerClass != 'Auto' || self.activeWorkers == 0",
        |v| Some(text(v, "workerClass")? != "Auto" || int(v, "activeWorkers")? == 0),
    ),
    (
        "!has(self.idleTimeoutSeconds) || !has(self.scaler) || self.scaler.type != 'RequestCount'",
        |v| {
            if !has(v, "idleTimeoutSeconds")? || !has(v, "scaler")? {
                return Some(true);
            }
            Some(text(v.get("scaler")?, "type")? != "RequestCount")
        },
    ),
    (
        "!has(self.allowedCudaVersions) || size(self.allowedCudaVersions) == 0 || !has(self.minCudaVersion)",
        |v| {
            if !has(v, "allowedCudaVersions")? {
                return Some(true);
            }
            Some(size(v, "allowedCudaVersions")? == 0 || !has(v, "minCudaVersion")?)
        },
    ),
    ("has(self.value) != has(self.valueFrom)", |v| {
        Some(has(v, "value")? != has(v, "valueFrom")?)
    }),
];

fn number(text: &str) -> Option<f64> {
    let text = text.trim();
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn quoted(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.contains(['\'', '\\'])).then(|| inner.to_string())
}

fn simple(rule: &str) -> Option<Shape> {
    if matches!(rule, "size(self) > 0" | "size(self) >= 1") {
        return Some(Shape::NotEmpty);
    }
    if let Some(rest) = rule.strip_prefix("self >= ") {
        return match rest.split_once(" && self <= ") {
            Some((low, high)) => Some(Shape::Range(number(low)?, Some(number(high)?))),
            None => Some(Shape::Range(number(rest)?, None)),
        };
    }
    let prefixes = rule
        .split(" || ")
        .map(|part| {
            part.strip_prefix("self.startsWith(")
                .and_then(|p| p.strip_suffix(')'))
                .and_then(quoted)
        })
        .collect::<Option<Vec<String>>>()?;
    Some(Shape::Prefix(prefixes))
}

fn pattern(regex: &str) -> Option<Pattern> {
    PATTERNS.iter().find(|(r, _)| *r == regex).map(|(_, p)| *p)
}

/// The native form of a rule, if it has one.
fn shape(rule: &str) -> Option<Shape> {
    let rule = rule.trim();
    if let Some((_, expr)) = EXPRESSIONS.iter().find(|(text, _)| *text == rule) {
        return Some(Shape::Expr(*expr));
    }
    if let Some(shape) = simple(rule) {
        return Some(shape);
    }
    if let Some(regex) = rule
        .strip_prefix("self.matches('")
        .and_then(|r| r.strip_suffix("')"))
    {
        return pattern(regex).map(Shape::One);
    }
    let inner = rule.strip_prefix("self.all(")?.strip_suffix(')')?;
    let (var, body) = inner.split_once(", ")?;
    let regex = body
        .strip_prefix(&format!("{var}.matches('"))?
        .strip_suffix("')")?;
    pattern(regex).map(Shape::All)
}

/// One rule checked natively, with its message, and the rule compiled alone for when the
/// native check cannot decide.
pub(super) struct Check {
    shape: Shape,
    pub(super) message: String,
    pub(super) fallback: CompiledSchema,
}

impl Check {
    /// The native check of a rule (`{rule, message}`), if it has one.
    pub(super) fn of(rule: &Value, compile: impl FnOnce() -> CompiledSchema) -> Option<Self> {
        let shape = shape(rule["rule"].as_str()?)?;
        Some(Self {
            shape,
            message: rule["message"].as_str().unwrap_or_default().to_string(),
            fallback: compile(),
        })
    }

    /// Whether the rule holds for `value`; `None` when it cannot be decided here.
    pub(super) fn holds(&self, value: &Value) -> Option<bool> {
        match (&self.shape, value) {
            (Shape::One(p), Value::String(s)) => Some(p(s)),
            (Shape::All(p), Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(p))
                .collect::<Option<Vec<bool>>>()
                .map(|all| all.into_iter().all(|ok| ok)),
            (Shape::Range(low, high), Value::Number(n)) => {
                let n = n.as_f64()?;
                Some(n >= *low && high.is_none_or(|high| n <= high))
            }
            (Shape::NotEmpty, Value::String(s)) => Some(!s.is_empty()),
            (Shape::NotEmpty, Value::Array(items)) => Some(!items.is_empty()),
            (Shape::NotEmpty, Value::Object(map)) => Some(!map.is_empty()),
            (Shape::Prefix(prefixes), Value::String(s)) => {
                Some(prefixes.iter().any(|p| s.starts_with(p.as_str())))
            }
            (Shape::Expr(expr), value) => expr(value),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_of_the_crds_but_transitions_is_checked_natively() {
        use kube::CustomResourceExt;
        let mut found = 0;
        for crd in [
            crate::api::GpuWorkload::crd(),
            crate::api::NetworkVolume::crd(),
            crate::api::RunPodAccount::crd(),
        ] {
            let text = serde_json::to_string(&crd).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            let mut stack = vec![&value];
            while let Some(v) = stack.pop() {
                match v {
                    Value::Object(map) => {
                        // Every rule but the transition rules (which run on updates
                        // only) is checked natively: a new rule written in a form the
                        // native checks do not know makes reading manifests slow again.
                        if let Some(rule) = map.get("rule").and_then(Value::as_str)
                            && !rule.contains("oldSelf")
                        {
                            assert!(shape(rule).is_some(), "no native check for {rule}");
                            found += 1;
                        }
                        stack.extend(map.values());
                    }
                    Value::Array(items) => stack.extend(items),
                    _ => {}
                }
            }
        }
        assert!(found >= 40, "found {found} rules");
    }

    #[test]
    fn simple_rules_are_read_exactly_or_left_to_cel() {
        assert!(matches!(shape("self >= 1"), Some(Shape::Range(l, None)) if l == 1.0));
        assert!(matches!(
            shape("self >= 5 && self <= 604800"),
            Some(Shape::Range(l, Some(h))) if l == 5.0 && h == 604800.0
        ));
        assert!(matches!(shape("size(self) > 0"), Some(Shape::NotEmpty)));
        assert!(matches!(
            shape("self.startsWith('https://') || self.startsWith('http://')"),
            Some(Shape::Prefix(p)) if p == ["https://", "http://"]
        ));
        for cel in [
            "self >= oldSelf",
            "self == oldSelf",
            "self >= -1",
            "self >= 1.5",
            "self.startsWith('a') && self.startsWith('b')",
            "self.startsWith('it\\'s')",
        ] {
            assert!(shape(cel).is_none(), "{cel} is left to CEL");
        }
    }

    #[test]
    fn the_patterns_hold_at_their_edges() {
        assert!(usd("1234567.123456") && usd("0") && usd("1.5"));
        assert!(!usd("12345678") && !usd("1.1234567") && !usd("1.") && !usd(".5"));
        assert!(!usd("-1") && !usd("1e3") && !usd("") && !usd("١"));
        assert!(port("8888/http") && port("22/tcp") && port("65535/tcp"));
        assert!(!port("123456/tcp") && !port("22/udp") && !port("/tcp") && !port("22/tcp/"));
        assert!(env_name("_A1") && env_name("a") && !env_name("1A") && !env_name(""));
        assert!(!env_name("A-B") && !env_name("É"));
        assert!(cuda("12.4") && cuda("123.456") && !cuda("12") && !cuda("1.2.3"));
        assert!(!cuda("1234.1") && !cuda("v12.4") && !cuda("12.4\n"));
    }
}
