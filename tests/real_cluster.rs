//! Against a real cluster, for users with kind, k3d or a test cluster: `KUBECONFIG=... cargo test --test
//! real_cluster -- --ignored`. It installs the CRD (server-side apply), and proves that the API server takes a good
//! VirtualService and refuses bad ones at apply time with the CRD's CEL rules (address safety needs Kubernetes
//! 1.31+), and the same for VirtualServicePools; it cleans up what it created (the CRDs stay). Not run by CI: no API server can be installed on these machines (the in-process and VM tests cover
//! the agent; see docs/testing.md).

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt};

use ipvs_reconciler::api::VirtualService;
use ipvs_reconciler::api::pool::VirtualServicePool;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

#[tokio::test]
#[ignore = "needs a real cluster: set KUBECONFIG and pass --ignored"]
async fn the_api_server_takes_the_crd_and_enforces_its_cel_rules() {
    let client = Client::try_default().await.expect("a cluster from KUBECONFIG");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("ipvs-reconciler-test").force();
    crds.patch("virtualservices.ipvs.dev", &params, &Patch::Apply(VirtualService::crd())).await.expect("CRD applied");
    // The CRD needs a moment to be served.
    let api: Api<VirtualService> = Api::namespaced(client, "default");
    let good: VirtualService =
        serde_json::from_value(serde_json::json!({"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualService",
            "metadata": {"name": "ipvs-reconciler-test-good"}, "spec": {"address": "192.0.2.250", "port": 80}}))
        .unwrap();
    let mut created = None;
    for _ in 0..30 {
        match api.create(&PostParams::default(), &good).await {
            Ok(object) => {
                created = Some(object);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
        }
    }
    assert!(created.is_some(), "the good VirtualService was not accepted");
    let bad: VirtualService =
        serde_json::from_value(serde_json::json!({"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualService",
            "metadata": {"name": "ipvs-reconciler-test-bad"},
            "spec": {"address": "192.0.2.251", "port": 80, "fwmark": 3, "family": "IPv4"}}))
        .unwrap();
    let refused = api.create(&PostParams::default(), &bad).await.expect_err("address and fwmark together");
    assert!(refused.to_string().contains("exactly one of address and fwmark"), "{refused}");
    // Address safety with the CEL IP library (Kubernetes 1.31+): the metadata address, loopback, a bad literal.
    for address in ["169.254.169.254", "127.0.0.1", "192.0.2.999", "::ffff:192.0.2.1"] {
        let dangerous: VirtualService =
            serde_json::from_value(serde_json::json!({"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualService",
                "metadata": {"name": "ipvs-reconciler-test-dangerous"}, "spec": {"address": address, "port": 80}}))
            .unwrap();
        let refused = api.create(&PostParams::default(), &dangerous).await;
        assert!(refused.is_err(), "the API server accepted the VIP {address}");
    }
    let _ = api.delete("ipvs-reconciler-test-good", &DeleteParams::default()).await;
}

#[tokio::test]
#[ignore = "needs a real cluster: set KUBECONFIG and pass --ignored"]
async fn the_api_server_takes_the_pool_crd_and_refuses_bad_cidrs() {
    let client = Client::try_default().await.expect("a cluster from KUBECONFIG");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("ipvs-reconciler-test").force();
    crds.patch("virtualservicepools.ipvs.dev", &params, &Patch::Apply(VirtualServicePool::crd()))
        .await
        .expect("pool CRD applied");
    let api: Api<VirtualServicePool> = Api::all(client);
    let pool = |name: &str, cidr: &str| -> VirtualServicePool {
        serde_json::from_value(serde_json::json!({"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualServicePool",
            "metadata": {"name": name}, "spec": {"addresses": [cidr], "namespaces": ["default"]}}))
        .unwrap()
    };
    let mut created = false;
    for _ in 0..30 {
        if api.create(&PostParams::default(), &pool("ipvs-reconciler-test-pool", "192.0.2.0/28")).await.is_ok() {
            created = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(created, "the good pool was not accepted");
    let refused = api.create(&PostParams::default(), &pool("ipvs-reconciler-test-bad-pool", "192.0.2.0/33")).await;
    assert!(refused.is_err(), "the API server accepted a bad CIDR");
    let _ = api.delete("ipvs-reconciler-test-pool", &DeleteParams::default()).await;
}
