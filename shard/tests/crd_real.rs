//! The 19 real-world CRDs of `testdata/crds` (cert-manager, Argo CD, prometheus-operator)
//! through real kubectl: accepted, discoverable, explainable; their custom resources are
//! defaulted, pruned and validated by the CRD schemas, with kube's field paths.

use canopy_test_harness::TestShard;

fn crds(file: &str) -> String {
    format!("{}/../testdata/crds/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_world_crds_and_their_custom_resources() {
    let env = TestShard::builder().start().await;
    let k = env.kubectl();

    // cert-manager with client-side apply
    let out = k
        .ok(&["apply", "-f", &crds("cert-manager.crds.yaml")])
        .await;
    assert_eq!(out.matches("created").count(), 6, "{out}");
    // Argo CD with client-side apply: applicationsets' schema is larger than the
    // last-applied annotation may be, exactly as on kube-apiserver; it is created instead
    let o = k.run(&["apply", "-f", &crds("argo-cd.crds.yaml")]).await;
    assert!(!o.success);
    assert_eq!(o.stdout.matches("created").count(), 2, "{}", o.stdout);
    assert!(
        o.stderr.contains("applicationsets.argoproj.io"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains("Too long: may not be more than 262144 bytes")
            || o.stderr
                .contains("Too long: must have at most 262144 bytes"),
        "{}",
        o.stderr
    );
    let o = k.run(&["create", "-f", &crds("argo-cd.crds.yaml")]).await;
    assert_eq!(
        o.stdout.trim(),
        "customresourcedefinition.apiextensions.k8s.io/applicationsets.argoproj.io created"
    );
    // prometheus-operator: too large for client-side apply; server-side apply
    let out = k
        .ok(&[
            "apply",
            "--server-side",
            "-f",
            &crds("prometheus-operator.crds.yaml"),
        ])
        .await;
    assert_eq!(out.matches("serverside-applied").count(), 10, "{out}");
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ])
    .await;
    let crd_list = k.ok(&["get", "crd", "-o", "name"]).await;
    assert_eq!(crd_list.lines().count(), 19, "{crd_list}");

    let resources = k.ok(&["api-resources"]).await;
    for kind in [
        "Certificate",
        "ClusterIssuer",
        "Order",
        "Application",
        "ApplicationSet",
        "AppProject",
        "Prometheus",
        "ServiceMonitor",
        "PrometheusRule",
        "AlertmanagerConfig",
    ] {
        assert!(
            resources
                .lines()
                .any(|l| l.split_whitespace().any(|w| w == kind)),
            "{kind} missing from api-resources:\n{resources}"
        );
    }
    let explain = k.ok(&["explain", "certificate.spec.issuerRef"]).await;
    assert!(explain.contains("KIND:       Certificate"), "{explain}");
    assert!(explain.contains("name\t<string> -required-"), "{explain}");
    // categories: `kubectl get cert-manager` lists cert-manager's kinds
    k.ok(&["get", "cert-manager"]).await;

    // a valid ServiceMonitor: defaults filled in, unknown fields pruned with a warning
    let sm = r#"
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  endpoints:
  - port: http
    interval: 30s
    bogus: 1
    metricRelabelings:
    - sourceLabels: [__name__]
      targetLabel: name
"#;
    let o = k
        .run_with_stdin(&["apply", "--validate=warn", "-f", "-"], Some(sm))
        .await;
    assert!(o.success, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("unknown field \"spec.endpoints[0].bogus\""),
        "{}",
        o.stderr
    );
    let got = k
        .ok(&["get", "servicemonitor", "web", "-o", "jsonpath={.spec.endpoints[0].metricRelabelings[0].action}|{.spec.endpoints[0].bogus}|{.spec.endpoints[0].interval}"])
        .await;
    assert_eq!(got, "replace||30s");
    // strict field validation (kubectl's default) refuses unknown fields instead
    let o = k
        .run_with_stdin(
            &["apply", "-f", "-"],
            Some(&sm.replace("web, namespace", "web2, namespace")),
        )
        .await;
    assert!(!o.success);
    assert!(
        o.stderr
            .contains("unknown field \"spec.endpoints[0].bogus\""),
        "{}",
        o.stderr
    );

    // invalid ones are refused with the field paths
    let bad = sm
        .replace("interval: 30s", "interval: thirty seconds")
        .replace("name: web,", "name: bad,");
    let o = k
        .run_with_stdin(&["apply", "--validate=warn", "-f", "-"], Some(&bad))
        .await;
    assert!(!o.success);
    assert!(o.stderr.contains("spec.endpoints[0].interval: Invalid value: \"thirty seconds\": spec.endpoints[0].interval in body should match"), "{}", o.stderr);
    let cert = r#"
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: site, namespace: default}
spec:
  dnsNames: [example.com]
  issuerRef: {name: letsencrypt, kind: ClusterIssuer}
"#;
    let o = k.run_with_stdin(&["apply", "-f", "-"], Some(cert)).await;
    assert!(!o.success);
    assert!(
        o.stderr.contains("spec.secretName: Required value"),
        "{}",
        o.stderr
    );
    let cert = cert.replace("dnsNames:", "secretName: site-tls\n  dnsNames:");
    k.apply_stdin(&["apply", "-f", "-"], &cert).await;
    // printer columns of the CRD, in kubectl's table
    let table = k.ok(&["get", "certificates"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "SECRET", "AGE"], "{table}");
    assert!(table.contains("site-tls"), "{table}");
    let wide = k.ok(&["get", "certificates", "-o", "wide"]).await;
    assert!(wide.lines().next().unwrap().contains("ISSUER"), "{wide}");
    assert!(wide.contains("letsencrypt"), "{wide}");

    // an Argo CD Application missing required fields
    let app = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: guestbook, namespace: default}
spec:
  destination: {server: "https://kubernetes.default.svc", namespace: guestbook}
"#;
    let o = k.run_with_stdin(&["apply", "-f", "-"], Some(app)).await;
    assert!(!o.success);
    assert!(
        o.stderr.contains("spec.project: Required value"),
        "{}",
        o.stderr
    );
}
