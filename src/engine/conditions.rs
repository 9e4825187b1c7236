//! Status conditions: computed fresh each pass, then merged with the previous ones so that
//! `lastTransitionTime` moves only when a condition's status flips (kstatus and kubectl
//! rely on it). Every condition carries the generation it describes.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// A condition as a pass computes it, before merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The condition type, e.g. `Ready`.
    pub kind: &'static str,
    /// True or false.
    pub status: bool,
    /// A CamelCase reason, stable for alerting.
    pub reason: &'static str,
    /// What a person should know.
    pub message: String,
}

impl Verdict {
    /// A condition that holds.
    pub fn yes(kind: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: true,
            reason,
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn no(kind: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: false,
            reason,
            message: message.into(),
        }
    }
}

fn status(value: bool) -> String {
    if value { "True" } else { "False" }.to_string()
}

/// Merges this pass's verdicts into the previous conditions. A condition whose status did not
/// change keeps its `lastTransitionTime`; reason, message and generation are refreshed.
/// Conditions not in `verdicts` are dropped.
pub fn merge(
    previous: &[Condition],
    verdicts: &[Verdict],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    verdicts
        .iter()
        .map(|v| {
            let old = previous.iter().find(|c| c.type_ == v.kind);
            let new_status = status(v.status);
            let last_transition_time = match old {
                Some(old) if old.status == new_status => old.last_transition_time.clone(),
                _ => Time(now),
            };
            Condition {
                type_: v.kind.to_string(),
                status: new_status,
                reason: v.reason.to_string(),
                message: v.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + seconds).unwrap()
    }

    #[test]
    fn a_new_condition_starts_now() {
        let merged = merge(
            &[],
            &[Verdict::yes("Ready", "InSync", "ok")],
            Some(3),
            at(10),
        );
        assert_eq!(merged[0].last_transition_time, Time(at(10)));
        assert_eq!(merged[0].status, "True");
        assert_eq!(merged[0].observed_generation, Some(3));
    }

    #[test]
    fn an_unchanged_status_keeps_its_transition_time_but_takes_the_new_message() {
        let first = merge(
            &[],
            &[Verdict::no("Ready", "Creating", "creating")],
            Some(1),
            at(10),
        );
        let second = merge(
            &first,
            &[Verdict::no("Ready", "Waiting", "waiting for capacity")],
            Some(2),
            at(20),
        );
        assert_eq!(second[0].last_transition_time, Time(at(10)));
        assert_eq!(second[0].message, "waiting for capacity");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn a_flip_moves_the_transition_time() {
        let first = merge(
            &[],
            &[Verdict::no("Ready", "Creating", "")],
            Some(1),
            at(10),
        );
        let second = merge(
            &first,
            &[Verdict::yes("Ready", "InSync", "")],
            Some(1),
            at(20),
        );
        assert_eq!(second[0].last_transition_time, Time(at(20)));
    }

    proptest! {
        /// Over any sequence of verdicts, the transition time changes exactly when the status does.
        #[test]
        fn transition_time_moves_only_on_flips(statuses in proptest::collection::vec(any::<bool>(), 1..20)) {
            let mut conditions = Vec::new();
            let mut last: Option<bool> = None;
            let mut flipped_at = 0;
            for (i, s) in statuses.iter().enumerate() {
                let now = at(i as i64);
                conditions = merge(&conditions, &[Verdict { kind: "Ready", status: *s, reason: "R", message: String::new() }], Some(1), now);
                if last != Some(*s) {
                    flipped_at = i as i64;
                }
                last = Some(*s);
                prop_assert_eq!(&conditions[0].last_transition_time, &Time(at(flipped_at)));
            }
        }
    }
}
