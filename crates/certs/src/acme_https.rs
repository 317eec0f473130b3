//! The HTTPS client the ACME client talks to its server with: rustls (ring) over one HTTP/1.1
//! connection per request, trusting either the system's roots or one given root (a test CA such
//! as pebble's). ACME traffic is a handful of small requests, so no pool is kept.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::HOST;
use hyper_util::rt::TokioIo;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::debug;

/// Largest ACME response read (certificate chains are a few KiB).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

pub(crate) struct AcmeHttps {
    tls: TlsConnector,
    timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl AcmeHttps {
    /// A client trusting `root_pem`'s certificates only, or the system's roots without it.
    pub(crate) fn new(root_pem: Option<&str>, timeout: Duration) -> Result<AcmeHttps, String> {
        let mut roots = RootCertStore::empty();
        match root_pem {
            Some(pem) => {
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(pem.as_bytes())
                        .collect::<Result<_, _>>()
                        .map_err(|e| {
                            format!("the ACME server's root certificate is not PEM: {e}")
                        })?;
                if certs.is_empty() {
                    return Err(
                        "the ACME server's root certificate PEM holds no certificate".into(),
                    );
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| format!("the ACME server's root certificate: {e}"))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for error in &native.errors {
                    debug!(%error, "acme: a system root certificate could not be loaded");
                }
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(
                        "no system root certificates found (install ca-certificates)".into(),
                    );
                }
            }
        }
        let config = ClientConfig::builder_with_provider(berth_router::tls::ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(AcmeHttps {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }
}

async fn send(
    tls: TlsConnector,
    mut request: Request<BodyWrapper<Bytes>>,
) -> Result<BytesResponse, BoxError> {
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("https") {
        return Err(format!("the ACME server must be reached over https, not {uri}").into());
    }
    let host = uri.host().ok_or("the ACME URL names no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(443);
    let server_name = ServerName::try_from(host.to_string())?;
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let stream = tls.connect(server_name, tcp).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            debug!(%error, "acme: connection ended with an error");
        }
    });
    let authority = uri
        .authority()
        .ok_or("the ACME URL names no host")?
        .as_str();
    request
        .headers_mut()
        .insert(HOST, http::HeaderValue::from_str(authority)?);
    *request.uri_mut() = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES);
    let body = http_body_util::BodyExt::collect(body).await?.to_bytes();
    Ok(BytesResponse::from(http::Response::from_parts(
        parts,
        http_body_util::Full::new(body),
    )))
}

impl HttpClient for AcmeHttps {
    fn request(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, send(tls, request)).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(error)) => Err(instant_acme::Error::Other(error)),
                Err(_elapsed) => Err(instant_acme::Error::Other(
                    format!("no answer from the ACME server within {timeout:?}").into(),
                )),
            }
        })
    }
}
