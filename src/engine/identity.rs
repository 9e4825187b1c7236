//! Who owns what on RunPod. Every object the operator creates gets a deterministic name from
//! the Kubernetes namespace, name and UID, and (pods and endpoints) carries the owner UID in
//! an environment variable. Before any create the inventory is searched for that owner, so a
//! crash or a 500-after-create never makes a duplicate.

/// The environment variable that marks a pod or endpoint with its owner's UID.
pub const OWNER_ENV: &str = "RUNPOD_OPERATOR_OWNER";

/// The annotation that adopts an existing RunPod object by id.
pub const ADOPT_ANNOTATION: &str = "runpod-operator.dev/adopt";

/// The annotation that approves a data-destroying replace by the plan's hash.
pub const APPROVE_REPLACE_ANNOTATION: &str = "runpod-operator.dev/approve-replace";

/// RunPod's name limit.
const MAX_NAME: usize = 191;

/// Who a RunPod object belongs to: the Kubernetes object's namespace, name and UID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl Owner {
    /// The deterministic RunPod name: `rpo-<namespace>-<name>-<UID part>`. The UID part keeps
    /// a deleted-and-recreated object from claiming its predecessor's pod, and two owners
    /// whose names read alike (`a-b`/`c` and `a`/`b-c`, or long names cut to one prefix)
    /// apart: the first 8 characters of a cluster UID (random), or all 16 hex digits (64 bits)
    /// of a local one; a name cut to RunPod's limit keeps 16 characters of any UID. Among
    /// 100,000 owners whose names all collide, 64 bits leave a chance of about 3 in 10^10
    /// that two share a name.
    pub fn runpod_name(&self) -> String {
        let uid: String = self
            .uid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let short: String = match self.uid.strip_prefix("local-") {
            Some(hex) => hex.chars().filter(char::is_ascii_alphanumeric).collect(),
            None => uid.chars().take(8).collect(),
        };
        let whole = "rpo-".len()
            + self.namespace.len()
            + usize::from(!self.namespace.is_empty())
            + self.name.len()
            + 1
            + short.len();
        if whole <= MAX_NAME {
            return self.name_with(&short);
        }
        let long: String = match self.uid.strip_prefix("local-") {
            Some(_) => short,
            None => uid.chars().take(16).collect(),
        };
        self.name_with(&long)
    }

    /// The name versions before 0.2 gave (8 characters of the UID, `local` + 3 hex digits for
    /// a local one), when it differs: what they made is found by it and renamed, never lost.
    pub fn legacy_runpod_name(&self) -> Option<String> {
        let uid: String = self
            .uid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        let legacy = self.name_with(&uid);
        (legacy != self.runpod_name()).then_some(legacy)
    }

    /// `rpo-<namespace>-<name>-<uid>`, cut to RunPod's limit keeping the UID part whole.
    fn name_with(&self, uid: &str) -> String {
        let mut name = if self.namespace.is_empty() {
            format!("rpo-{}-{uid}", self.name)
        } else {
            format!("rpo-{}-{}-{uid}", self.namespace, self.name)
        };
        if name.len() > MAX_NAME {
            let tail = format!("-{uid}");
            // On a character boundary: a name may be any UTF-8 (the CLI reads it from disk).
            let mut cut = MAX_NAME - tail.len();
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
            name.push_str(&tail);
        }
        name
    }

    /// The owner of a Kubernetes object. Without a UID (a manifest on disk, not yet in a
    /// cluster) a stable one is derived from namespace and name, so the CLI finds its objects
    /// again with no state file.
    pub fn of(namespace: Option<&str>, name: &str, uid: Option<&str>) -> Self {
        let namespace = namespace.unwrap_or_default().to_string();
        let uid = match uid {
            Some(uid) if !uid.is_empty() => uid.to_string(),
            _ => {
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for byte in format!("{namespace}/{name}").bytes() {
                    hash ^= u64::from(byte);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
                format!("local-{hash:016x}")
            }
        };
        Self {
            namespace,
            name: name.to_string(),
            uid,
        }
    }

    /// `namespace/name`, for messages.
    pub fn key(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(name: &str) -> Owner {
        Owner {
            namespace: "vision".into(),
            name: name.into(),
            uid: "3f1c9a2e-77aa-4b1e-9c1d-0a1b2c3d4e5f".into(),
        }
    }

    #[test]
    fn the_name_is_deterministic_and_carries_the_uid() {
        assert_eq!(
            owner("matting").runpod_name(),
            "rpo-vision-matting-3f1c9a2e"
        );
        assert_eq!(
            owner("matting").runpod_name(),
            owner("matting").runpod_name()
        );
    }

    #[test]
    fn an_object_without_a_uid_gets_a_stable_one() {
        let a = Owner::of(Some("ml"), "trainer", None);
        assert_eq!(a, Owner::of(Some("ml"), "trainer", None));
        assert_ne!(a.uid, Owner::of(Some("ml"), "other", None).uid);
        assert_eq!(Owner::of(Some("ml"), "trainer", Some("u-1")).uid, "u-1");
    }

    #[test]
    fn a_long_name_is_cut_but_keeps_64_bits_of_the_uid() {
        let name = owner(&"x".repeat(300)).runpod_name();
        assert_eq!(name.len(), 191);
        assert!(name.ends_with("-3f1c9a2e77aa4b1e"), "{name}");
    }

    #[test]
    fn a_hundred_thousand_local_owners_with_one_long_prefix_get_distinct_names() {
        let prefix = "p".repeat(250);
        let mut names = std::collections::HashSet::new();
        for i in 0..100_000 {
            let owner = Owner::of(Some("ml"), &format!("{prefix}{i}"), None);
            let name = owner.runpod_name();
            assert!(name.len() <= MAX_NAME);
            assert!(names.insert(name.clone()), "{name} twice");
        }
        // Short local names carry all 16 hex digits too (not `local` and 3 of them).
        let name = Owner::of(Some("ml"), "trainer", None).runpod_name();
        assert!(
            name.starts_with("rpo-ml-trainer-") && name.len() == "rpo-ml-trainer-".len() + 16,
            "{name}"
        );
    }

    #[test]
    fn the_legacy_name_is_known_where_it_differs() {
        let local = Owner::of(Some("ml"), "trainer", None);
        let legacy = local.legacy_runpod_name().expect("local names changed");
        assert!(legacy.starts_with("rpo-ml-trainer-local"), "{legacy}");
        assert_eq!(owner("matting").legacy_runpod_name(), None);
    }

    #[test]
    fn a_long_name_of_any_utf8_is_cut_on_a_character_and_keeps_the_uid() {
        // Every cut point of multi-byte text, around RunPod's 191-byte limit.
        for pad in 0..4 {
            let name = format!("{}{}", "x".repeat(pad), "é名🚀".repeat(80));
            let runpod = owner(&name).runpod_name();
            assert!(runpod.len() <= MAX_NAME, "{} bytes", runpod.len());
            assert!(runpod.ends_with("-3f1c9a2e77aa4b1e"), "{runpod}");
            assert!(runpod.starts_with("rpo-vision-"), "{runpod}");
        }
    }
}
