//! Two front-proxy replicas before the same shards: both route every workspace; killing
//! one leaves the other fully working (including workspaces created meanwhile); a
//! replacement replica serves at once after syncing its index.

use std::time::Duration;

use canopy_test_harness::{Client, TestProxy};
use front_proxy::FrontProxy;
use serde_json::json;

const WS: &str = "apis/tenancy.kcp.io/v1alpha1/workspaces";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_proxies_dies_the_other_keeps_serving() {
    let env = TestProxy::builder().shards(2).start().await;
    let second = FrontProxy::start(env.options())
        .await
        .expect("second replica");
    assert!(second.wait_ready(Duration::from_secs(30)).await);
    let first = env.admin();
    let other = Client::new(
        &second.url,
        second.ca_cert_pem.as_deref().expect("generated CA"),
        Some(&env.admin_token),
    );

    // both replicas route workspaces on either shard
    for i in 0..4 {
        let (code, b) = first
            .post(
                &format!("/clusters/root/{WS}"),
                json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": format!("w{i}")}, "spec": {}}),
            )
            .await;
        assert_eq!(code, 201, "{b}");
    }
    for i in 0..4 {
        first.wait_workspace_ready("root", &format!("w{i}")).await;
        for c in [&first, &other] {
            let (code, b) = c
                .post(
                    &format!("/clusters/root:w{i}/api/v1/namespaces/default/configmaps"),
                    json!({"metadata": {"generateName": "cm-"}}),
                )
                .await;
            assert_eq!(code, 201, "{b}");
        }
    }

    // the first replica dies: the second is unaffected, new workspaces included
    let replacement_options = env.options();
    let token = env.admin_token.clone();
    let TestProxy { proxy, .. } = env;
    proxy.stop().await;
    assert!(first
        .request(reqwest::Method::GET, "/version")
        .send()
        .await
        .is_err());
    let (code, b) = other
        .post(
            &format!("/clusters/root/{WS}"),
            json!({"apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace", "metadata": {"name": "late"}, "spec": {}}),
        )
        .await;
    assert_eq!(code, 201, "{b}");
    other.wait_workspace_ready("root", "late").await;
    for name in ["w0", "w3", "late"] {
        let (code, _) = other
            .get(&format!(
                "/clusters/root:{name}/api/v1/namespaces/default/configmaps"
            ))
            .await;
        assert_eq!(code, 200, "{name}");
    }

    // a replacement replica serves everything once its index has synced
    let third = FrontProxy::start(replacement_options)
        .await
        .expect("replacement replica");
    assert!(third.wait_ready(Duration::from_secs(30)).await);
    let replacement = Client::new(
        &third.url,
        third.ca_cert_pem.as_deref().expect("generated CA"),
        Some(&token),
    );
    for name in ["w1", "w2", "late"] {
        let (code, _) = replacement
            .get(&format!(
                "/clusters/root:{name}/api/v1/namespaces/default/configmaps"
            ))
            .await;
        assert_eq!(code, 200, "{name}");
    }
    second.stop().await;
    third.stop().await;
}
