//! REST v2 routes: each request turned into a call on the world and its answer.

use axum::http::Uri;
use serde_json::{Value, json};

use super::Answer;
use super::{
    pipeline::{Route, outcome},
    reports::{billing, catalog_dcs, catalog_gpus},
};
use crate::sim::world::{Billed, World};

pub(super) fn handle(
    world: &mut World,
    key: &str,
    method: &str,
    route: &Route,
    uri: &Uri,
    body: &Value,
) -> Answer {
    let id = route.id.as_str();
    fn account<'w>(world: &'w World, key: &str) -> &'w crate::sim::world::Account {
        world.account(key).expect("authenticated")
    }
    match (method, route.template) {
        ("GET", "/v2/pods") => {
            // The inventory refresh of a big account: serialized straight from typed views.
            let pods: Vec<_> = account(world, key)
                .pods
                .values()
                .map(|p| world.pod_view(p))
                .collect();
            match serde_json::to_string(&json_list("pods", &pods)) {
                Ok(text) => Answer::raw(200, text),
                Err(e) => Answer::problem(500, format!("failed to render pods: {e}")),
            }
        }
        ("POST", "/v2/pods") => outcome(
            world
                .create_pod(key, body)
                .map(|id| world.pod_json(&world.account(key).expect("authenticated").pods[&id])),
            201,
        ),
        ("GET", "/v2/pods/{id}") => match world.account(key).and_then(|a| a.pods.get(id)) {
            Some(pod) => Answer::json(200, world.pod_json(pod)),
            None => Answer::problem(404, "pod not found"),
        },
        ("PATCH", "/v2/pods/{id}") => outcome(
            world
                .update_pod(key, id, body)
                .map(|()| world.pod_json(&world.account(key).expect("authenticated").pods[id])),
            200,
        ),
        ("DELETE", "/v2/pods/{id}") => match world.delete_pod(key, id) {
            Ok(()) => Answer::empty(204),
            Err(r) => Answer::refusal(r),
        },
        ("POST", "/v2/pods/{id}/action") => {
            let action = body["action"].as_str().unwrap_or_default();
            match world.pod_action(key, id, action) {
                Ok(true) => Answer::json(
                    200,
                    world.pod_json(&world.account(key).expect("authenticated").pods[id]),
                ),
                Ok(false) => Answer::empty(204),
                Err(r) => Answer::refusal(r),
            }
        }
        ("GET", "/v2/serverless") => {
            // Serialized straight from typed views, as the pods are.
            let endpoints: Vec<_> = account(world, key)
                .endpoints
                .values()
                .map(World::endpoint_view)
                .collect();
            match serde_json::to_string(&json_list("endpoints", &endpoints)) {
                Ok(text) => Answer::raw(200, text),
                Err(e) => Answer::problem(500, format!("failed to render endpoints: {e}")),
            }
        }
        ("POST", "/v2/serverless") => outcome(
            world.create_endpoint(key, body).map(|id| {
                world.endpoint_json(&world.account(key).expect("authenticated").endpoints[&id])
            }),
            201,
        ),
        ("GET", "/v2/serverless/{id}") => {
            match world.account(key).and_then(|a| a.endpoints.get(id)) {
                Some(e) => Answer::json(200, world.endpoint_json(e)),
                None => Answer::problem(404, "endpoint not found"),
            }
        }
        ("PATCH", "/v2/serverless/{id}") => outcome(
            world.update_endpoint(key, id, body).map(|()| {
                world.endpoint_json(&world.account(key).expect("authenticated").endpoints[id])
            }),
            200,
        ),
        ("DELETE", "/v2/serverless/{id}") => match world.delete_endpoint(key, id) {
            Ok(()) => Answer::empty(204),
            Err(r) => Answer::refusal(r),
        },
        ("GET", "/v2/serverless/{id}/workers") => {
            match world.account(key).and_then(|a| a.endpoints.get(id)) {
                Some(e) => Answer::json(200, world.workers_json(e)),
                None => Answer::problem(404, "endpoint not found"),
            }
        }
        ("GET", "/v2/network-volumes") => {
            let volumes: Vec<Value> = account(world, key)
                .volumes
                .values()
                .map(World::volume_json)
                .collect();
            Answer::json(200, json!({ "networkVolumes": volumes }))
        }
        ("POST", "/v2/network-volumes") => outcome(
            world.create_volume(key, body).map(|id| {
                World::volume_json(&world.account(key).expect("authenticated").volumes[&id])
            }),
            201,
        ),
        ("GET", "/v2/network-volumes/{id}") => {
            match world.account(key).and_then(|a| a.volumes.get(id)) {
                Some(v) => Answer::json(200, World::volume_json(v)),
                None => Answer::problem(404, "network volume not found"),
            }
        }
        ("PATCH", "/v2/network-volumes/{id}") => outcome(
            world.update_volume(key, id, body).map(|()| {
                World::volume_json(&world.account(key).expect("authenticated").volumes[id])
            }),
            200,
        ),
        ("DELETE", "/v2/network-volumes/{id}") => match world.delete_volume(key, id) {
            Ok(()) => Answer::empty(204),
            Err(r) => Answer::refusal(r),
        },
        ("GET", "/v2/registries") => {
            let list: Vec<Value> = account(world, key)
                .registries
                .values()
                .map(|r| json!({"id": r.id, "name": r.name}))
                .collect();
            Answer::json(200, json!({ "registries": list }))
        }
        ("POST", "/v2/registries") => outcome(
            world
                .create_registry(key, body)
                .map(|id| json!({"id": id, "name": body["name"]})),
            201,
        ),
        ("GET", "/v2/registries/{id}") => {
            match world.account(key).and_then(|a| a.registries.get(id)) {
                Some(r) => Answer::json(200, json!({"id": r.id, "name": r.name})),
                None => Answer::problem(404, "registry not found"),
            }
        }
        ("DELETE", "/v2/registries/{id}") => match world.delete_registry(key, id) {
            Ok(()) => Answer::empty(204),
            Err(r) => Answer::refusal(r),
        },
        ("GET", "/v2/catalog/gpus") => Answer::json(200, json!({ "gpus": catalog_gpus(world) })),
        ("GET", "/v2/catalog/gpus/{id}") => {
            let id = id.replace("%20", " ");
            match catalog_gpus(world)
                .into_iter()
                .find(|g| g["id"] == id.as_str())
            {
                Some(g) => Answer::json(200, g),
                None => Answer::problem(404, "GPU type not found"),
            }
        }
        ("GET", "/v2/catalog/datacenters") => {
            Answer::json(200, json!({ "dataCenters": catalog_dcs() }))
        }
        ("GET", "/v2/catalog/datacenters/{id}") => {
            match catalog_dcs().into_iter().find(|d| d["id"] == id) {
                Some(d) => Answer::json(200, d),
                None => Answer::problem(404, "data center not found"),
            }
        }
        ("GET", "/v2/billing/pods") => {
            world.settle_ledger(key);
            billing(world, key, uri, Billed::Pod)
        }
        ("GET", "/v2/billing/serverless") => {
            world.settle_ledger(key);
            billing(world, key, uri, Billed::Serverless)
        }
        ("GET", "/v2/billing/network-volumes") => {
            world.settle_ledger(key);
            billing(world, key, uri, Billed::NetworkVolume)
        }
        _ => Answer::problem(404, "resource not found"),
    }
}

/// `{"<field>": [items]}` without building a `Value`.
pub(super) fn json_list<'a, T: serde::Serialize>(
    field: &'static str,
    items: &'a [T],
) -> impl serde::Serialize + 'a {
    std::collections::BTreeMap::from([(field, items)])
}
