//! The one TLS set-up of the process: rustls with the `ring` crypto provider.
//!
//! kube's default TLS stack uses `ring`; reqwest's default would use `aws-lc-rs`. Two
//! providers in one process make rustls refuse to pick one and panic at the first handshake,
//! so reqwest is built without a provider and `ring` is installed as the process default
//! before any client exists. Every HTTP client of the crate is built through here.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs `ring` as the process-wide rustls provider. Idempotent and cheap; call it before
/// building any client.
pub fn install_crypto_provider() {
    INSTALL.call_once(|| {
        // Err means another provider was installed first (by an embedding program); keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder with the crate's TLS provider in place and a `User-Agent` that
/// names the operator and its version.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().user_agent(concat!("runpod-operator/", env!("CARGO_PKG_VERSION")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kube's client and reqwest's must coexist: both are built, with TLS, in one process.
    #[tokio::test]
    async fn kube_and_reqwest_clients_share_one_crypto_provider() {
        let http = http_client_builder().https_only(true).build();
        assert!(http.is_ok(), "reqwest client: {:?}", http.err());

        let config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        let kube_client = kube::Client::try_from(config);
        assert!(kube_client.is_ok(), "kube client: {:?}", kube_client.err());

        assert!(
            rustls::crypto::CryptoProvider::get_default().is_some(),
            "a process-wide provider is installed"
        );
    }
}
