//! Every Kubernetes permission the controller uses, and nothing more. The Helm chart's RBAC
//! must grant exactly these (a test renders the chart and compares), and every call the
//! controller makes in its tests must be covered by them (a test checks the recorded calls).

/// Where a permission applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Cluster-wide (ClusterRole).
    Cluster,
    /// In the release namespace only (Role): the leader-election Lease.
    ReleaseNamespace,
}

/// One permission: API group, resource (with subresource), verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource, e.g. `gpuworkloads/status`.
    pub resource: &'static str,
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Where.
    pub scope: Scope,
}

const GROUP: &str = "runpod-operator.dev";

/// The controller's permissions:
/// - the three kinds: watched (list, watch); workloads and volumes also patched (finalizer);
/// - their status: patched (server-side apply);
/// - Secrets: read (API keys, `env[].valueFrom`) and watched (a change reconciles the
///   workloads that read them);
/// - Events: created and patched (the recorder folds repeats into a series);
/// - the Lease: read, created, patched (leader election).
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        group: GROUP,
        resource: "gpuworkloads",
        verbs: &["list", "watch", "patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: GROUP,
        resource: "gpuworkloads/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: GROUP,
        resource: "networkvolumes",
        verbs: &["list", "watch", "patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: GROUP,
        resource: "networkvolumes/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: GROUP,
        resource: "runpodaccounts",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: GROUP,
        resource: "runpodaccounts/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "",
        resource: "secrets",
        verbs: &["get", "list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "patch"],
        scope: Scope::ReleaseNamespace,
    },
];

/// Whether a request (HTTP method and API path) is covered by [`PERMISSIONS`].
pub fn allows(method: &str, path: &str) -> bool {
    let verb = match method {
        "GET" => "get",
        "POST" => "create",
        "PATCH" => "patch",
        "PUT" => "update",
        "DELETE" => "delete",
        _ => return false,
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/v1/... (core) or /apis/<group>/<version>/...
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return false,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] => rest,
        rest => rest,
    };
    let resource = match rest {
        [resource] => resource.to_string(),
        [resource, _name] => resource.to_string(),
        [resource, _name, sub] => format!("{resource}/{sub}"),
        _ => return false,
    };
    // A GET of a collection is a list.
    let verb = if verb == "get" && rest.len() == 1 {
        "list"
    } else {
        verb
    };
    PERMISSIONS
        .iter()
        .any(|p| p.group == group && p.resource == resource && p.verbs.contains(&verb))
}

#[cfg(test)]
mod tests {
    use super::allows;

    #[test]
    fn paths_map_to_the_permissions_they_need() {
        assert!(allows(
            "PATCH",
            "/apis/runpod-operator.dev/v1alpha1/namespaces/ml/gpuworkloads/w/status"
        ));
        assert!(allows(
            "GET",
            "/api/v1/namespaces/runpod-operator/secrets/runpod-api-key"
        ));
        assert!(allows(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/ml/events"
        ));
        assert!(!allows(
            "DELETE",
            "/apis/runpod-operator.dev/v1alpha1/namespaces/ml/gpuworkloads/w"
        ));
        assert!(!allows("GET", "/api/v1/namespaces/ml/pods"));
        assert!(!allows(
            "PATCH",
            "/apis/runpod-operator.dev/v1alpha1/runpodaccounts/default"
        ));
    }
}
