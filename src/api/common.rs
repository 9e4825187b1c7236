//! Types shared by the three custom resources: money, references, policies and the names of
//! the status conditions.

use std::{borrow::Cow, fmt, str::FromStr};

use rust_decimal::Decimal;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Condition type: the object matches RunPod and needs nothing (kstatus `Ready`).
pub const CONDITION_READY: &str = "Ready";
/// Condition type: the operator is working towards the declared state (kstatus `Reconciling`).
pub const CONDITION_RECONCILING: &str = "Reconciling";
/// Condition type: progress needs a human: a bad spec, a refused money rule (kstatus `Stalled`).
pub const CONDITION_STALLED: &str = "Stalled";
/// Condition type: RunPod differs from the spec; `status.drift` lists the fields.
pub const CONDITION_DRIFTED: &str = "Drifted";
/// Condition type: the worst-case hourly cost would pass a workload or account cap.
pub const CONDITION_SPEND_CAP_EXCEEDED: &str = "SpendCapExceeded";
/// Condition type: the balance is below one hour of spend or below the account's runway.
pub const CONDITION_INSUFFICIENT_CREDIT: &str = "InsufficientCredit";
/// RunPodAccount: RunPod's lists lack what identity needs (names, owner markers), so creates
/// on the account wait rather than risk a duplicate.
pub const CONDITION_CREATES_HELD: &str = "CreatesHeld";
/// RunPodAccount: the last read of RunPod's price catalogue failed, or the prices in use are
/// older than two refresh intervals; the money rules use the last prices read (or the built-in
/// snapshot).
pub const CONDITION_PRICES_STALE: &str = "PricesStale";
/// GpuWorkload, informational: True when measured use says another configuration is cheaper
/// (the message has the configuration and the monthly saving); never blocks `Ready`.
pub const CONDITION_COST_ADVICE: &str = "CostAdvice";

/// The CEL rule and message every amount of money in a spec is held to.
const USD_RULE: &str = "self.matches('^[0-9]{1,7}([.][0-9]{1,6})?$')";
const USD_MESSAGE: &str = "must be an amount of US dollars written as a decimal string with at most 6 decimals, such as \"1.89\"; quote it in YAML";

/// An amount of US dollars. Written in manifests as a decimal string (`"1.89"`), never as a
/// float, so what the user wrote is exactly what the operator compares against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(pub Decimal);

impl Usd {
    /// The amount as a decimal number.
    pub fn amount(self) -> Decimal {
        self.0
    }
}

/// Why a string is not an amount of money.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{value:?} {}", USD_MESSAGE)]
pub struct UsdParseError {
    value: String,
}

impl FromStr for Usd {
    type Err = UsdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UsdParseError {
            value: s.to_string(),
        };
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        let shape_ok = (1..=7).contains(&whole.len())
            && digits(whole)
            && frac.len() <= 6
            && digits(frac)
            && !(s.contains('.') && frac.is_empty());
        if !shape_ok {
            return Err(err());
        }
        Decimal::from_str(s).map(Usd).map_err(|_| err())
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Usd;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount of US dollars as a quoted decimal string, such as \"1.89\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Usd, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl JsonSchema for Usd {
    fn schema_name() -> Cow<'static, str> {
        "Usd".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 14,
            "x-kubernetes-validations": [{ "rule": USD_RULE, "message": USD_MESSAGE }],
        })
    }
}

/// A reference to an object by name. What kind of object it names is said by the field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalObjectRef {
    /// The object's `metadata.name`.
    pub name: String,
}

/// A key in a Secret in the same namespace as the object that refers to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeySelector {
    /// The Secret's name.
    pub name: String,
    /// The key inside the Secret's `data`.
    pub key: String,
}

/// What happens on RunPod when the Kubernetes object is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the RunPod object too (for a pod, its pod volume is destroyed).
    #[default]
    Delete,
    /// Leave the RunPod object running and billing; it then shows among the account's orphans.
    Orphan,
}

/// How much the operator may do to the RunPod object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, change and delete the RunPod object to match the spec.
    #[default]
    Manage,
    /// Never write to RunPod: only observe, report drift and cost.
    ObserveOnly,
    /// Do nothing at all, not even observe, until the policy changes.
    Paused,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_parses_decimal_strings_exactly() {
        assert_eq!(
            "1.89".parse::<Usd>().unwrap().amount(),
            Decimal::new(189, 2)
        );
        assert_eq!("80".parse::<Usd>().unwrap().amount(), Decimal::from(80));
        assert_eq!("0.000760".parse::<Usd>().unwrap().to_string(), "0.000760");
    }

    #[test]
    fn usd_rejects_what_the_cel_rule_rejects() {
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1.2345678",
            "1e3",
            "12345678",
            " 1",
            "1,5",
            "NaN",
        ] {
            assert!(bad.parse::<Usd>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn usd_round_trips_as_a_json_string_and_refuses_numbers() {
        let usd: Usd = serde_json::from_str("\"2.50\"").unwrap();
        assert_eq!(serde_json::to_string(&usd).unwrap(), "\"2.50\"");
        let err = serde_json::from_str::<Usd>("2.5").unwrap_err().to_string();
        assert!(err.contains("quoted decimal string"), "{err}");
    }
}
