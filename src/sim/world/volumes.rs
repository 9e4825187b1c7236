//! Network volumes: create, grow, delete.

use serde_json::Value;

use super::{Billed, DATA_CENTERS, Mount, Outcome, Refusal, World, whole32};

/// A network volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Id: 10 lowercase alphanumerics.
    pub id: String,
    /// Name.
    pub name: String,
    /// GB.
    pub size: u32,
    /// Data centre.
    pub data_center: String,
    /// `STANDARD` or `HIGH_PERFORMANCE`.
    pub volume_type: String,
}

impl World {
    /// `POST /v2/network-volumes`.
    pub fn create_volume(&mut self, key: &str, body: &Value) -> Outcome<String> {
        let result = self.create_volume_unmetered(key, body);
        if let Ok(id) = &result {
            self.remeter(key, Billed::NetworkVolume, id);
        }
        result
    }

    /// [`World::create_volume`] before the meters are read again.
    fn create_volume_unmetered(&mut self, key: &str, body: &Value) -> Outcome<String> {
        self.account_mut(key)?;
        let dc = body["dataCenter"].as_str().unwrap_or_default().to_string();
        if !DATA_CENTERS.contains(&dc.as_str()) {
            return Err(Refusal::new(
                400,
                format!(
                    "data center {dc:?} does not support network volumes; use one of: {}",
                    DATA_CENTERS.join(", ")
                ),
            ));
        }
        let volume = Volume {
            id: self.ids.id(10),
            name: body["name"].as_str().unwrap_or_default().to_string(),
            size: whole32(body, "size", 10)?,
            data_center: dc,
            volume_type: body["type"].as_str().unwrap_or("STANDARD").to_string(),
        };
        let id = volume.id.clone();
        self.account_mut(key)?.volumes.insert(id.clone(), volume);
        Ok(id)
    }

    /// `PATCH /v2/network-volumes/{id}`: name, and size that only grows.
    pub fn update_volume(&mut self, key: &str, id: &str, body: &Value) -> Outcome<()> {
        let result = self.update_volume_unmetered(key, id, body);
        self.remeter(key, Billed::NetworkVolume, id);
        result
    }

    /// [`World::update_volume`] before the meters are read again.
    fn update_volume_unmetered(&mut self, key: &str, id: &str, body: &Value) -> Outcome<()> {
        let volume = self
            .account_mut(key)?
            .volumes
            .get_mut(id)
            .ok_or_else(|| Refusal::not_found("network volume"))?;
        let size = whole32(body, "size", volume.size)?;
        if body.get("size").is_some() {
            if size < volume.size {
                return Err(Refusal::new(
                    400,
                    format!(
                        "size can only grow: {size} GB is below the current {} GB",
                        volume.size
                    ),
                ));
            }
            volume.size = size;
        }
        if let Some(name) = body["name"].as_str() {
            volume.name = name.to_string();
        }
        Ok(())
    }

    /// `DELETE /v2/network-volumes/{id}`: refused while a pod or endpoint uses it.
    pub fn delete_volume(&mut self, key: &str, id: &str) -> Outcome<()> {
        let result = self.delete_volume_unmetered(key, id);
        self.remeter(key, Billed::NetworkVolume, id);
        result
    }

    /// [`World::delete_volume`] before the meters are read again.
    fn delete_volume_unmetered(&mut self, key: &str, id: &str) -> Outcome<()> {
        let account = self.account_mut(key)?;
        if !account.volumes.contains_key(id) {
            return Err(Refusal::not_found("network volume"));
        }
        let used_by_pod = account
            .pods
            .values()
            .any(|p| matches!(&p.mount, Some(Mount::Network { volume_id, .. }) if volume_id == id));
        let used_by_endpoint = account
            .endpoints
            .values()
            .any(|e| e.network_volumes.iter().any(|v| v == id));
        if used_by_pod || used_by_endpoint {
            return Err(Refusal::new(
                400,
                "You must remove this network volume from all pods before deleting it.",
            ));
        }
        account.volumes.remove(id);
        Ok(())
    }
}
