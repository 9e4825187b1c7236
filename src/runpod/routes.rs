//! One method per RunPod route the operator uses: pods, endpoints, network volumes,
//! registries, the catalogue, billing and the account.

use serde_json::json;

use reqwest::Method;

use super::{Base, BillingKind, BillingQuery, Call, Client, Error, Priority, types::*};

impl Client {
    // ---- pods ----------------------------------------------------------------------------

    /// Every pod of the account (one call: the inventory refresh).
    pub async fn list_pods(&self) -> Result<Vec<Pod>, Error> {
        #[derive(serde::Deserialize)]
        struct List {
            pods: Vec<Pod>,
        }
        let list: List = self
            .call(self.get("/v2/pods".into(), "/v2/pods", &[]))
            .await?;
        Ok(list.pods)
    }

    /// One pod.
    pub async fn get_pod(&self, id: &str) -> Result<Pod, Error> {
        self.call(self.get(format!("/v2/pods/{id}"), "/v2/pods/{id}", &[]))
            .await
    }

    /// Creates a pod. Never retried once it may have reached RunPod.
    pub async fn create_pod(&self, request: &CreatePod) -> Result<Pod, Error> {
        self.call(self.with_body(Method::POST, "/v2/pods".into(), "/v2/pods", request))
            .await
    }

    /// Changes a pod (a container change resets it).
    pub async fn update_pod(&self, id: &str, request: &UpdatePod) -> Result<Pod, Error> {
        self.call(self.with_body(
            Method::PATCH,
            format!("/v2/pods/{id}"),
            "/v2/pods/{id}",
            request,
        ))
        .await
    }

    /// Deletes a pod and its pod volume.
    pub async fn delete_pod(&self, id: &str) -> Result<(), Error> {
        self.call(self.delete(format!("/v2/pods/{id}"), "/v2/pods/{id}"))
            .await
    }

    /// Starts, stops, restarts or terminates a pod. Returns the pod, or `None` once it is
    /// terminated.
    pub async fn pod_action(&self, id: &str, action: PodAction) -> Result<Option<Pod>, Error> {
        let mut call = self.with_body(
            Method::POST,
            format!("/v2/pods/{id}/action"),
            "/v2/pods/{id}/action",
            json!({ "action": action }),
        );
        // An action names its target: repeating it is safe (a repeat gets 409 at worst).
        call.idempotent = true;
        if matches!(action, PodAction::Stop | PodAction::Terminate) {
            call.priority = Priority::Saving;
        }
        self.call(call).await
    }

    // ---- serverless endpoints ------------------------------------------------------------

    /// Every endpoint of the account.
    pub async fn list_endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        #[derive(serde::Deserialize)]
        struct List {
            endpoints: Vec<Endpoint>,
        }
        let list: List = self
            .call(self.get("/v2/serverless".into(), "/v2/serverless", &[]))
            .await?;
        Ok(list.endpoints)
    }

    /// One endpoint.
    pub async fn get_endpoint(&self, id: &str) -> Result<Endpoint, Error> {
        self.call(self.get(format!("/v2/serverless/{id}"), "/v2/serverless/{id}", &[]))
            .await
    }

    /// Creates an endpoint. Never retried once it may have reached RunPod.
    pub async fn create_endpoint(&self, request: &CreateEndpoint) -> Result<Endpoint, Error> {
        self.call(self.with_body(
            Method::POST,
            "/v2/serverless".into(),
            "/v2/serverless",
            request,
        ))
        .await
    }

    /// Changes an endpoint. Zeros are sent (`workers.min: 0` reaches RunPod).
    pub async fn update_endpoint(
        &self,
        id: &str,
        request: &UpdateEndpoint,
    ) -> Result<Endpoint, Error> {
        self.call(self.with_body(
            Method::PATCH,
            format!("/v2/serverless/{id}"),
            "/v2/serverless/{id}",
            request,
        ))
        .await
    }

    /// Deletes an endpoint: its workers stop and queued jobs are cancelled.
    pub async fn delete_endpoint(&self, id: &str) -> Result<(), Error> {
        self.call(self.delete(format!("/v2/serverless/{id}"), "/v2/serverless/{id}"))
            .await
    }

    /// An endpoint's workers.
    pub async fn endpoint_workers(&self, id: &str) -> Result<EndpointWorkers, Error> {
        self.call(self.get(
            format!("/v2/serverless/{id}/workers"),
            "/v2/serverless/{id}/workers",
            &[],
        ))
        .await
    }

    /// The live counters of an endpoint (`/v2/{id}/health` on the serverless host).
    pub async fn endpoint_health(&self, id: &str) -> Result<Health, Error> {
        let mut call = self.get(format!("/v2/{id}/health"), "/v2/{endpointId}/health", &[]);
        call.base = Base::Serverless;
        self.call(call).await
    }

    // ---- network volumes -------------------------------------------------------------------

    /// Every network volume of the account.
    pub async fn list_network_volumes(&self) -> Result<Vec<NetworkVolume>, Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct List {
            network_volumes: Vec<NetworkVolume>,
        }
        let list: List = self
            .call(self.get("/v2/network-volumes".into(), "/v2/network-volumes", &[]))
            .await?;
        Ok(list.network_volumes)
    }

    /// One network volume.
    pub async fn get_network_volume(&self, id: &str) -> Result<NetworkVolume, Error> {
        self.call(self.get(
            format!("/v2/network-volumes/{id}"),
            "/v2/network-volumes/{id}",
            &[],
        ))
        .await
    }

    /// Creates a network volume. Never retried once it may have reached RunPod.
    pub async fn create_network_volume(
        &self,
        request: &CreateNetworkVolume,
    ) -> Result<NetworkVolume, Error> {
        self.call(self.with_body(
            Method::POST,
            "/v2/network-volumes".into(),
            "/v2/network-volumes",
            request,
        ))
        .await
    }

    /// Renames or grows a network volume.
    pub async fn update_network_volume(
        &self,
        id: &str,
        request: &UpdateNetworkVolume,
    ) -> Result<NetworkVolume, Error> {
        self.call(self.with_body(
            Method::PATCH,
            format!("/v2/network-volumes/{id}"),
            "/v2/network-volumes/{id}",
            request,
        ))
        .await
    }

    /// Deletes a network volume (refused while attached).
    pub async fn delete_network_volume(&self, id: &str) -> Result<(), Error> {
        self.call(self.delete(
            format!("/v2/network-volumes/{id}"),
            "/v2/network-volumes/{id}",
        ))
        .await
    }

    // ---- registries ----------------------------------------------------------------------------

    /// Every registry credential (names only).
    pub async fn list_registries(&self) -> Result<Vec<Registry>, Error> {
        #[derive(serde::Deserialize)]
        struct List {
            registries: Vec<Registry>,
        }
        let list: List = self
            .call(self.get("/v2/registries".into(), "/v2/registries", &[]))
            .await?;
        Ok(list.registries)
    }

    /// One registry credential.
    pub async fn get_registry(&self, id: &str) -> Result<Registry, Error> {
        self.call(self.get(format!("/v2/registries/{id}"), "/v2/registries/{id}", &[]))
            .await
    }

    /// Creates a registry credential. Never retried once it may have reached RunPod.
    pub async fn create_registry(&self, request: &CreateRegistry) -> Result<Registry, Error> {
        self.call(self.with_body(
            Method::POST,
            "/v2/registries".into(),
            "/v2/registries",
            request,
        ))
        .await
    }

    /// Deletes a registry credential.
    pub async fn delete_registry(&self, id: &str) -> Result<(), Error> {
        self.call(self.delete(format!("/v2/registries/{id}"), "/v2/registries/{id}"))
            .await
    }

    // ---- catalogue, billing, account -------------------------------------------------------------

    /// GPU types with prices and pools.
    pub async fn catalog_gpus(&self) -> Result<Vec<CatalogGpu>, Error> {
        #[derive(serde::Deserialize)]
        struct List {
            gpus: Vec<CatalogGpu>,
        }
        let list: List = self
            .call(self.get("/v2/catalog/gpus".into(), "/v2/catalog/gpus", &[]))
            .await?;
        Ok(list.gpus)
    }

    /// Data centres.
    pub async fn catalog_datacenters(&self) -> Result<Vec<DataCenter>, Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct List {
            data_centers: Vec<DataCenter>,
        }
        let list: List = self
            .call(self.get(
                "/v2/catalog/datacenters".into(),
                "/v2/catalog/datacenters",
                &[],
            ))
            .await?;
        Ok(list.data_centers)
    }

    /// Billing records of pods, serverless endpoints or network volumes (`kind` is `pods`,
    /// `serverless` or `network-volumes`).
    pub async fn billing(&self, kind: BillingKind, query: &BillingQuery) -> Result<Billing, Error> {
        let mut params = Vec::new();
        if let Some(v) = &query.start_time {
            params.push(("startTime", v.clone()));
        }
        if let Some(v) = &query.end_time {
            params.push(("endTime", v.clone()));
        }
        if let Some(v) = &query.bucket_size {
            params.push(("bucketSize", v.clone()));
        }
        if let Some(n) = query.last_n {
            params.push(("lastN", n.to_string()));
        }
        let (path, route, id_param) = match kind {
            BillingKind::Pods => ("/v2/billing/pods", "/v2/billing/pods", "podId"),
            BillingKind::Serverless => (
                "/v2/billing/serverless",
                "/v2/billing/serverless",
                "serverlessId",
            ),
            BillingKind::NetworkVolumes => (
                "/v2/billing/network-volumes",
                "/v2/billing/network-volumes",
                "networkVolumeId",
            ),
        };
        if let Some(id) = &query.id {
            params.push((id_param, id.clone()));
        }
        self.call(self.get(path.into(), route, &params)).await
    }

    /// Balance, spend per hour and spend limit (GraphQL `myself`, the only source of them).
    pub async fn account(&self) -> Result<Account, Error> {
        #[derive(serde::Deserialize)]
        struct Reply {
            data: Option<Data>,
            #[serde(default)]
            errors: Vec<GraphQlError>,
        }
        #[derive(serde::Deserialize)]
        struct Data {
            myself: Account,
        }
        #[derive(serde::Deserialize)]
        struct GraphQlError {
            message: String,
        }
        let call = Call {
            method: Method::POST,
            base: Base::Api,
            path: String::new(),
            route: "/graphql myself",
            body: Some(
                json!({"query": "query { myself { clientBalance currentSpendPerHr spendLimit } }"}),
            ),
            query: &[],
            // A query: safe to repeat.
            idempotent: true,
            priority: self.priority,
        };
        let reply: Reply = self.call_graphql(call).await?;
        match (reply.data, reply.errors.first()) {
            (_, Some(e)) => Err(Error::GraphQl {
                route: "POST /graphql myself".into(),
                message: e.message.clone(),
            }),
            (Some(data), None) => Ok(data.myself),
            (None, None) => Err(Error::Decode {
                route: "POST /graphql myself".into(),
                message: "neither data nor errors".into(),
            }),
        }
    }
}
