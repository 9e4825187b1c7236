//! Container registry credentials.

use serde_json::Value;

use super::{Outcome, Refusal, World};

/// A registry credential. RunPod never shows the user name or password again; the
/// simulator keeps them to decide whether a private image can be pulled.
#[derive(Clone, PartialEq, Eq)]
pub struct Registry {
    /// Id, cuid-like.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A private image repository and the login it takes (`POST /_sim/images`).
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateImage {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for PrivateImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateImage")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The repository of an image reference: without its tag or digest.
/// `ghcr.io/acme/trainer:1.2` -> `ghcr.io/acme/trainer`; `localhost:5000/x` keeps its port.
pub fn repository(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let slash = image.rfind('/').map_or(0, |at| at + 1);
    match image[slash..].find(':') {
        Some(colon) => &image[..slash + colon],
        None => image,
    }
}

impl World {
    /// `POST /v2/registries`: names are unique; credentials are write-only.
    pub fn create_registry(&mut self, key: &str, body: &Value) -> Outcome<String> {
        let field = |f: &str| body[f].as_str().unwrap_or_default().to_string();
        let (name, username, password) = (field("name"), field("username"), field("password"));
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
                username,
                password,
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
            || account
                .endpoints
                .values()
                .any(|e| e.container.registry.as_deref() == Some(id))
        {
            return Err(Refusal::new(
                400,
                "the registry is used by a pod or an endpoint",
            ));
        }
        account.registries.remove(id);
        Ok(())
    }

    /// Why the container's image cannot be pulled, in the registry's words: a private image
    /// needs a registry credential with its login.
    pub(super) fn pull_refusal(&self, key: &str, container: &super::Container) -> Option<String> {
        let repo = repository(&container.image);
        let login = self.private_images.get(repo)?;
        let credential = container
            .registry
            .as_deref()
            .and_then(|id| self.accounts.get(key)?.registries.get(id));
        match credential {
            Some(c) if c.username == login.username && c.password == login.password => None,
            Some(_) => Some(format!(
                "failed to pull image {}: unauthorized: incorrect username or password",
                container.image
            )),
            None => Some(format!(
                "failed to pull image {}: pull access denied for {repo}, repository does not exist or may require 'docker login'",
                container.image
            )),
        }
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
