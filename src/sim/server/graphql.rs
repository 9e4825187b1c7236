//! GraphQL: `myself` (balance, spend, spend limit), as the SDKs ask for it.

use axum::{
    body::Bytes,
    http::{HeaderMap, Uri},
};
use serde_json::{Value, json};

use super::{Answer, Sim, bearer, query_param, reports::money};

/// The GraphQL subset: `myself { clientBalance currentSpendPerHr spendLimit }`. Anything else
/// is a GraphQL error (HTTP 200 with `errors[]`), as RunPod answers.
pub(super) fn graphql(sim: &Sim, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Answer {
    let Some(key) = bearer(headers).or_else(|| query_param(uri, "api_key")) else {
        return Answer::problem(401, "missing bearer token");
    };
    let world = sim.world();
    let Some(account) = world.account(&key) else {
        return Answer::problem(401, "invalid api key");
    };
    let error = |message: String| {
        Answer::json(
            200,
            json!({"errors": [{"message": message, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}),
        )
    };
    let query = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["query"].as_str().map(String::from))
        .unwrap_or_default();
    let Some(start) = query.find("myself") else {
        return error("only the myself query is simulated".to_string());
    };
    let rest = &query[start + "myself".len()..];
    let (Some(open), Some(close)) = (rest.find('{'), rest.find('}')) else {
        return error("myself needs a selection set".to_string());
    };
    let mut myself = serde_json::Map::new();
    for field in rest[open + 1..close].split_whitespace() {
        let value = match field {
            "clientBalance" => money(account.balance),
            "currentSpendPerHr" => money(world.spend_per_hour(&key)),
            "spendLimit" => money(account.spend_limit),
            "id" => json!("user_simulated"),
            other => return error(format!("Cannot query field \"{other}\" on type \"User\".")),
        };
        myself.insert(field.to_string(), value);
    }
    Answer::json(200, json!({"data": {"myself": myself}}))
}
