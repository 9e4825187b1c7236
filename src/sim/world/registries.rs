//! Container registry credentials.

use serde_json::Value;

use super::{Outcome, Refusal, World};

/// A registry credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    /// Id, cuid-like.
    pub id: String,
    /// Unique name.
    pub name: String,
}

impl World {
    /// `POST /v2/registries`: names are unique; credentials are write-only.
    pub fn create_registry(&mut self, key: &str, body: &Value) -> Outcome<String> {
        let name = body["name"].as_str().unwrap_or_default().to_string();
        let id = format!("c{}", self.ids.id(24));
        let account = self.account_mut(key)?;
        if account.registries.values().any(|r| r.name == name) {
            return Err(Refusal::new(
                400,
                format!("a registry named {name:?} already exists"),
            ));
        }
        account.registries.insert(
            id.clone(),
            Registry {
                id: id.clone(),
                name,
            },
        );
        Ok(id)
    }

    /// `DELETE /v2/registries/{id}`: refused while a pod uses it.
    pub fn delete_registry(&mut self, key: &str, id: &str) -> Outcome<()> {
        let account = self.account_mut(key)?;
        if !account.registries.contains_key(id) {
            return Err(Refusal::not_found("registry"));
        }
        if account
            .pods
            .values()
            .any(|p| p.container.registry.as_deref() == Some(id))
        {
            return Err(Refusal::new(400, "the registry is used by a pod"));
        }
        account.registries.remove(id);
        Ok(())
    }

    pub(super) fn check_registry(&self, key: &str, registry: Option<&str>) -> Outcome<()> {
        match registry {
            Some(id) if !self.accounts[key].registries.contains_key(id) => {
                Err(Refusal::new(400, format!("registry {id} not found")))
            }
            _ => Ok(()),
        }
    }
}
