//! The certificates-area suite ([`CertificateStore`]), with the apps area for the apps that
//! hold the hosts.

use berth_core::certificate::CertificateSource;

use super::*;

/// Runs every certificates-area check against `store`.
pub async fn run<S: AppStore + CertificateStore + ?Sized>(store: Arc<S>) {
    let s = &*store;
    certificates_round_trip(s).await;
    certificate_needs_its_app(s).await;
    delete_app_removes_its_certificates(s).await;
}

/// A certificate of `host` held by `app`, with a multi-line chain and unicode in text fields.
pub fn new_certificate(app: &str, host: &str) -> StoredCertificate {
    StoredCertificate {
        host: host.to_string(),
        team: "default".into(),
        app: app.to_string(),
        source: CertificateSource::Uploaded,
        chain_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
                    -----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"
            .into(),
        sealed_key: "v1.c2VhbGVkIGtleQ".into(),
        names: vec![host.to_string(), format!("www.{host}")],
        not_before: T0,
        not_after: T0 + 90 * 86_400_000,
        created_by: "zoë «ops»".into(),
        created_at: T0,
        updated_at: T0 + 1,
    }
}

/// Put creates then replaces (every field, the app included), get and list return what was
/// put, list filters by app and orders by host, delete reports existence.
pub async fn certificates_round_trip<S: AppStore + CertificateStore + ?Sized>(store: &S) {
    let web = unique_name("certs-web");
    let api = unique_name("certs-api");
    create(store, &web).await;
    create(store, &api).await;
    let shop = format!("{web}.example.com");
    let blog = format!("blog.{web}.example.com");
    let first = new_certificate(&web, &shop);
    store.put_certificate(&first).await.unwrap();
    assert_eq!(store.get_certificate(&shop).await.unwrap(), Some(first));
    let renewed = StoredCertificate {
        source: CertificateSource::Acme,
        chain_pem: "-----BEGIN CERTIFICATE-----\nCCCC\n-----END CERTIFICATE-----\n".into(),
        sealed_key: "v1.bmV3IGtleQ".into(),
        names: vec![shop.clone()],
        not_before: T0 + 5,
        not_after: T0 + 6,
        created_by: "renewal".into(),
        created_at: T0 + 5,
        updated_at: T0 + 7,
        ..new_certificate(&web, &shop)
    };
    store.put_certificate(&renewed).await.unwrap();
    assert_eq!(
        store.get_certificate(&shop).await.unwrap().as_ref(),
        Some(&renewed),
        "put replaces every field"
    );
    let other = new_certificate(&web, &blog);
    store.put_certificate(&other).await.unwrap();
    let on_api = new_certificate(&api, &format!("{api}.example.com"));
    store.put_certificate(&on_api).await.unwrap();
    let listed = store.list_certificates(Some(&web)).await.unwrap();
    assert_eq!(
        listed,
        vec![other.clone(), renewed.clone()],
        "ordered by host"
    );
    let all = store.list_certificates(None).await.unwrap();
    for certificate in [&renewed, &other, &on_api] {
        assert!(
            all.contains(certificate),
            "every app's: {:?}",
            certificate.host
        );
    }
    // The host moves to another app: the new holder's put replaces it.
    let moved = new_certificate(&api, &blog);
    store.put_certificate(&moved).await.unwrap();
    assert_eq!(
        store.list_certificates(Some(&web)).await.unwrap(),
        vec![renewed]
    );
    assert_eq!(store.list_certificates(Some(&api)).await.unwrap().len(), 2);
    assert!(store.delete_certificate(&shop).await.unwrap());
    assert!(!store.delete_certificate(&shop).await.unwrap());
    assert_eq!(store.get_certificate(&shop).await.unwrap(), None);
    assert!(
        store
            .list_certificates(Some(&unique_name("certs-none")))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A certificate of an app that does not exist is refused, and nothing is stored.
pub async fn certificate_needs_its_app<S: AppStore + CertificateStore + ?Sized>(store: &S) {
    let ghost = unique_name("certs-ghost");
    let host = format!("{ghost}.example.com");
    assert_not_found(
        store.put_certificate(&new_certificate(&ghost, &host)).await,
        "certificate of a missing app",
    );
    assert_eq!(store.get_certificate(&host).await.unwrap(), None);
}

/// Deleting an app deletes its certificates, and only its own.
pub async fn delete_app_removes_its_certificates<S: AppStore + CertificateStore + ?Sized>(
    store: &S,
) {
    let gone = unique_name("certs-gone");
    let kept = unique_name("certs-kept");
    create(store, &gone).await;
    create(store, &kept).await;
    let gone_host = format!("{gone}.example.com");
    let kept_host = format!("{kept}.example.com");
    store
        .put_certificate(&new_certificate(&gone, &gone_host))
        .await
        .unwrap();
    store
        .put_certificate(&new_certificate(&kept, &kept_host))
        .await
        .unwrap();
    assert!(store.delete_app(&gone).await.unwrap());
    assert_eq!(store.get_certificate(&gone_host).await.unwrap(), None);
    assert!(store.get_certificate(&kept_host).await.unwrap().is_some());
    // An app made later under the same name inherits nothing.
    create(store, &gone).await;
    assert!(
        store
            .list_certificates(Some(&gone))
            .await
            .unwrap()
            .is_empty()
    );
}
