//! The serving loop with real TLS: HTTP/2 and HTTP/1.1, optional client certificates
//! (present and from the CA, absent, or from another CA), a panicking handler answered
//! with 500 without losing the connection, and shutdown.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canopy_https::{acceptor, serve, Conn, ServeOptions, ServerTls};
use http_body_util::Full;
use tokio_rustls::rustls;

fn client(ca_pem: &str, identity: Option<(&str, &str)>, h2: bool) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((cert, key)) => b
            .with_client_auth_cert(
                rustls_pemfile::certs(&mut cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                rustls_pemfile::private_key(&mut key.as_bytes())
                    .unwrap()
                    .unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let b = reqwest::Client::builder().tls_backend_preconfigured(cfg);
    let b = if h2 {
        b.http2_prior_knowledge()
    } else {
        b.http1_only()
    };
    b.build().unwrap()
}

async fn handle(
    req: http::Request<hyper::body::Incoming>,
    conn: Conn,
) -> http::Response<Full<Bytes>> {
    if req.uri().path() == "/panic" {
        panic!("a bug");
    }
    http::Response::new(Full::new(Bytes::from(format!(
        "{:?} cert={}",
        req.version(),
        conn.client_certificate
    ))))
}

fn on_panic() -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::from_static(b"panicked")));
    *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    r
}

#[tokio::test]
async fn serves_http2_and_http1_with_optional_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki =
        canopy_auth::Pki::load_or_create(&dir.path().join("pki"), &["127.0.0.1".into()]).unwrap();
    let ca = canopy_auth::ClientCa::load_or_create(&dir.path().join("ca"), "client-ca").unwrap();
    let other =
        canopy_auth::ClientCa::load_or_create(&dir.path().join("other"), "other-ca").unwrap();
    let tls = ServerTls {
        cert_pem: pki.serving_cert_pem.clone(),
        key_pem: pki.serving_key_pem.clone(),
        client_ca_pem: Some(ca.ca_cert_pem.clone()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (stopped_tx, stopped_rx) = std::sync::mpsc::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        acceptor(&tls).unwrap(),
        handle,
        on_panic,
        async {
            let _ = rx.await;
        },
        move || stopped_tx.send(()).unwrap(),
        ServeOptions {
            grace: Duration::from_secs(1),
            upgrades: true,
            ..Default::default()
        },
    ));

    let (cert, key) = ca.issue_client_cert("someone", &[]).unwrap();
    let (bad_cert, bad_key) = other.issue_client_cert("intruder", &[]).unwrap();
    for h2 in [true, false] {
        let anonymous = client(&pki.ca_cert_pem, None, h2);
        let body = anonymous
            .get(format!("{url}/x"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let version = if h2 { "HTTP/2.0" } else { "HTTP/1.1" };
        assert_eq!(body, format!("{version} cert=false"));

        let known = client(&pki.ca_cert_pem, Some((&cert, &key)), h2);
        let body = known
            .get(format!("{url}/x"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, format!("{version} cert=true"));

        // a panic answers 500, and the same connection serves the next request
        let r = known.get(format!("{url}/panic")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 500);
        assert_eq!(r.text().await.unwrap(), "panicked");
        let r = known.get(format!("{url}/x")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);

        // a certificate of another CA is refused in the handshake
        let intruder = client(&pki.ca_cert_pem, Some((&bad_cert, &bad_key)), h2);
        assert!(intruder.get(format!("{url}/x")).send().await.is_err());
    }

    // no serving certificate, no key, a CA without certificates: refused
    for bad in [
        ServerTls {
            cert_pem: String::new(),
            ..tls.clone()
        },
        ServerTls {
            key_pem: String::new(),
            ..tls.clone()
        },
        ServerTls {
            client_ca_pem: Some("nothing".into()),
            ..tls.clone()
        },
    ] {
        assert!(acceptor(&bad).is_err());
    }

    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("shutdown within the grace period")
        .unwrap();
    stopped_rx.try_recv().expect("the stopping hook ran");
    assert!(client(&pki.ca_cert_pem, None, false)
        .get(format!("{url}/x"))
        .send()
        .await
        .is_err());
}

/// A body that panics when first polled.
struct PanickingBody;

impl http_body::Body for PanickingBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        panic!("a bug while streaming");
    }
}

type AnyBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

#[tokio::test]
async fn a_body_that_panics_ends_only_its_own_response() {
    use http_body_util::BodyExt;
    let dir = tempfile::tempdir().unwrap();
    let pki =
        canopy_auth::Pki::load_or_create(&dir.path().join("pki"), &["127.0.0.1".into()]).unwrap();
    let tls = ServerTls {
        cert_pem: pki.serving_cert_pem.clone(),
        key_pem: pki.serving_key_pem.clone(),
        client_ca_pem: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    async fn handle(req: http::Request<hyper::body::Incoming>, _: Conn) -> http::Response<AnyBody> {
        if req.uri().path() == "/panic-body" {
            return http::Response::new(PanickingBody.boxed());
        }
        if req.uri().path() == "/late" {
            // headers now, the body a second later: still streaming when the other
            // stream's body panics
            let late = futures::stream::once(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(http_body::Frame::data(Bytes::from_static(b"late")))
            });
            return http::Response::new(http_body_util::StreamBody::new(late).boxed());
        }
        http::Response::new(Full::new(Bytes::from_static(b"fine")).boxed())
    }
    fn on_panic() -> http::Response<AnyBody> {
        http::Response::new(Full::new(Bytes::from_static(b"panicked")).boxed())
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        acceptor(&tls).unwrap(),
        handle,
        on_panic,
        async {
            let _ = rx.await;
        },
        || {},
        ServeOptions::default(),
    ));
    // one HTTP/2 connection: a stream whose body panics, and others on the same
    // connection before and after it
    let c = client(&pki.ca_cert_pem, None, true);
    let late = c.get(format!("{url}/late")).send().await.unwrap();
    let broken = c.get(format!("{url}/panic-body")).send().await;
    if let Ok(r) = broken {
        assert!(
            r.bytes().await.is_err(),
            "the panicking body ends in an error"
        );
    }
    // the connection (and the stream still streaming on it) survived
    assert_eq!(late.text().await.unwrap(), "late");
    let r = c.get(format!("{url}/x")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "fine");
    tx.send(()).unwrap();
    server.await.unwrap();
}
