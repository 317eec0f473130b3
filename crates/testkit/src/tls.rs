//! An HTTPS client for tests of the router's TLS listener: one `GET` with the SNI name asked,
//! trusting only the roots given, answering the status, the body and the certificate presented.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What an HTTPS request got.
#[derive(Debug, Clone)]
pub struct HttpsAnswer {
    pub status: u16,
    pub body: String,
    /// The leaf certificate the server presented (DER).
    pub leaf: CertificateDer<'static>,
}

/// `GET path` over TLS to `addr`, asking for `server_name` (SNI and `Host`), trusting the PEM
/// roots in `root_pem` only. An error says which step failed (connect, handshake, request).
pub async fn https_get(
    addr: SocketAddr,
    server_name: &str,
    root_pem: &str,
    path: &str,
) -> Result<HttpsAnswer, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| format!("root certificate: {e}"))?)
            .map_err(|e| format!("root certificate: {e}"))?;
    }
    let config = ClientConfig::builder_with_provider(berth_router::tls::ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("the server presented no certificate")?
        .clone()
        .into_owned();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::builder()
        .uri(path)
        .header("host", server_name)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(HttpsAnswer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        leaf,
    })
}
