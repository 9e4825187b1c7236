//! The one error of the RunPod client. It keeps the route, the HTTP status and RunPod's
//! problem body, and says what the caller may do about it ([`ErrorClass`]). It never holds
//! the API key: the key travels only in a sensitive `Authorization` header.

use std::time::Duration;

use serde::Deserialize;

/// RunPod's RFC 9457 problem body (`ErrorResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Problem {
    /// Short summary.
    #[serde(default)]
    pub title: String,
    /// The explanation.
    #[serde(default)]
    pub detail: String,
    /// Validation failures (422).
    #[serde(default)]
    pub errors: Vec<String>,
}

/// What kind of failure, and so what the caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 5xx, 429 or transport: safe to retry a read, PATCH, DELETE or action.
    Transient,
    /// 400 with RunPod's capacity message: try the next GPU type or data centre.
    Capacity,
    /// 402: not enough credit or past the spend limit; no candidate will succeed.
    InsufficientBalance,
    /// 409: not legal in the object's current state.
    Conflict,
    /// 422 (or another 400): the request is wrong; a bug or a bad spec, never retried.
    InvalidRequest,
    /// 404.
    NotFound,
    /// 401 or 403.
    Unauthorized,
    /// A create failed in a way that may have created the object (5xx or transport after
    /// the request was sent): look it up before creating again.
    OutcomeUnknown,
}

impl ErrorClass {
    /// A stable lowercase name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Capacity => "capacity",
            Self::InsufficientBalance => "insufficient_balance",
            Self::Conflict => "conflict",
            Self::InvalidRequest => "invalid_request",
            Self::NotFound => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::OutcomeUnknown => "outcome_unknown",
        }
    }
}

/// RunPod's capacity message starts with this.
const CAPACITY_PREFIX: &str = "There are no longer any instances available";
/// The message when a stopped pod's host has no free GPU.
const HOST_CAPACITY_PREFIX: &str = "There are not enough free GPUs on the host machine";

/// A failed RunPod call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RunPod answered with an error status.
    #[error("{route}: {status} {}: {}{}", .problem.title, .problem.detail, errors_suffix(&.problem.errors))]
    Api {
        /// e.g. `POST /v2/pods`.
        route: String,
        /// HTTP status.
        status: u16,
        /// The problem body.
        problem: Problem,
        /// `Retry-After`, on 429.
        retry_after: Option<Duration>,
    },
    /// The request did not get an answer.
    #[error("{route}: {message}")]
    Transport {
        /// e.g. `GET /v2/pods`.
        route: String,
        /// What went wrong (no URL query, no headers).
        message: String,
    },
    /// The answer was not what the spec promises.
    #[error("{route}: failed to decode the answer: {message}")]
    Decode {
        /// e.g. `GET /v2/pods`.
        route: String,
        /// The decoder's message.
        message: String,
    },
    /// A GraphQL error (HTTP 200 with `errors[]`).
    #[error("{route}: GraphQL error: {message}")]
    GraphQl {
        /// `POST /graphql`.
        route: String,
        /// The first error message.
        message: String,
    },
    /// The operator held a create back to protect the account: what RunPod listed cannot
    /// prove the object does not exist already (a create made earlier and not yet seen gone,
    /// or lists whose objects lack the names or owner markers identity needs).
    #[error("{route}: held back: {message}")]
    Held {
        /// e.g. `POST /v2/pods`.
        route: String,
        /// Why, and what would release it.
        message: String,
    },
    /// A create failed after it was sent: the object may exist.
    #[error(
        "{route}: outcome unknown ({cause}); look the object up by its name before creating it again"
    )]
    OutcomeUnknown {
        /// e.g. `POST /v2/pods`.
        route: String,
        /// What happened.
        cause: Box<Error>,
    },
}

fn errors_suffix(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" ({})", errors.join("; "))
    }
}

impl Error {
    /// What kind of failure it is.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api {
                status, problem, ..
            } => match status {
                429 | 500..=599 => ErrorClass::Transient,
                402 => ErrorClass::InsufficientBalance,
                409 => ErrorClass::Conflict,
                404 => ErrorClass::NotFound,
                401 | 403 => ErrorClass::Unauthorized,
                400 if problem.detail.starts_with(CAPACITY_PREFIX)
                    || problem.detail.starts_with(HOST_CAPACITY_PREFIX) =>
                {
                    ErrorClass::Capacity
                }
                _ => ErrorClass::InvalidRequest,
            },
            Self::Transport { .. } => ErrorClass::Transient,
            Self::Decode { .. } | Self::GraphQl { .. } => ErrorClass::InvalidRequest,
            Self::Held { .. } => ErrorClass::Conflict,
            Self::OutcomeUnknown { .. } => ErrorClass::OutcomeUnknown,
        }
    }

    /// The HTTP status, when RunPod answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::OutcomeUnknown { cause, .. } => cause.status(),
            _ => None,
        }
    }

    /// The route, e.g. `POST /v2/pods`.
    pub fn route(&self) -> &str {
        match self {
            Self::Api { route, .. }
            | Self::Transport { route, .. }
            | Self::Decode { route, .. }
            | Self::GraphQl { route, .. }
            | Self::Held { route, .. }
            | Self::OutcomeUnknown { route, .. } => route,
        }
    }

    /// Whether repeating the same call is safe and may succeed.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// RunPod's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, detail: &str) -> Error {
        Error::Api {
            route: "POST /v2/pods".into(),
            status,
            problem: Problem {
                title: "x".into(),
                detail: detail.into(),
                errors: vec![],
            },
            retry_after: None,
        }
    }

    #[test]
    fn statuses_map_to_what_the_caller_may_do() {
        assert_eq!(api(503, "").class(), ErrorClass::Transient);
        assert_eq!(api(429, "").class(), ErrorClass::Transient);
        assert_eq!(
            api(402, "Insufficient balance").class(),
            ErrorClass::InsufficientBalance
        );
        assert_eq!(api(409, "").class(), ErrorClass::Conflict);
        assert_eq!(
            api(422, "Request validation failed.").class(),
            ErrorClass::InvalidRequest
        );
        assert_eq!(api(404, "").class(), ErrorClass::NotFound);
        assert_eq!(api(401, "").class(), ErrorClass::Unauthorized);
        assert_eq!(
            api(400, "mounts: the mount kind is fixed").class(),
            ErrorClass::InvalidRequest
        );
        let capacity =
            "There are no longer any instances available with the requested specifications.";
        assert_eq!(api(400, capacity).class(), ErrorClass::Capacity);
    }

    #[test]
    fn the_message_keeps_route_status_and_problem() {
        let e = Error::Api {
            route: "POST /v2/pods".into(),
            status: 422,
            problem: Problem {
                title: "Unprocessable Entity".into(),
                detail: "Request validation failed.".into(),
                errors: vec!["$: additional properties 'bogus' not allowed".into()],
            },
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "POST /v2/pods: 422 Unprocessable Entity: Request validation failed. ($: additional properties 'bogus' not allowed)"
        );
    }
}
