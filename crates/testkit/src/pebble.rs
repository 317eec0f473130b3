//! Debian's pebble (an ACME test server) for tests of certificate issuance, with its DNS
//! (`pebble-challtestsrv`, answering 127.0.0.1 and no IPv6 for every name), so pebble fetches
//! HTTP-01 challenges from the loopback port under test. Both processes end with the value.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// How long pebble may take to listen before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running pebble and its DNS.
#[derive(Debug)]
pub struct Pebble {
    /// `https://localhost:<port>/dir`.
    pub directory_url: String,
    /// pebble's management interface (`/roots/0`: the root it issues under).
    pub management: SocketAddr,
    /// The CA of pebble's own HTTPS certificate (made here: the Debian package ships none), to
    /// trust for the directory and the management interface.
    pub https_ca_pem: String,
    /// `pebble-challtestsrv`'s management interface (plain HTTP: `/set-txt`, `/clear-txt`
    /// publish the TXT records pebble's DNS-01 checks look up).
    pub challtestsrv: SocketAddr,
    processes: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Whether `pebble` and `pebble-challtestsrv` are installed (`apt-get install pebble`).
    pub fn installed() -> bool {
        ["pebble", "pebble-challtestsrv"].iter().all(|program| {
            std::env::var_os("PATH").is_some_and(|paths| {
                std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
            })
        })
    }

    /// Starts pebble, which validates HTTP-01 challenges on `http_port` of 127.0.0.1, and waits
    /// until it listens. Its certificates are valid for pebble's default (five years).
    pub fn start(http_port: u16) -> Pebble {
        Pebble::start_with_validity(http_port, None)
    }

    /// [`Pebble::start`], issuing certificates valid for `validity` (whole seconds; pebble's
    /// `certificateValidityPeriod`) when given: short-lived certificates for renewal tests.
    pub fn start_with_validity(http_port: u16, validity: Option<Duration>) -> Pebble {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let https_ca_pem = https_certificate(dir.path());
        let (acme, management, dns, challtest, tls) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let mut pebble = Pebble {
            directory_url: format!("https://localhost:{acme}/dir"),
            management: ([127, 0, 0, 1], management).into(),
            https_ca_pem,
            challtestsrv: ([127, 0, 0, 1], challtest).into(),
            processes: Vec::new(),
            _dir: dir,
        };
        let dir = pebble._dir.path().to_path_buf();
        pebble.processes.push(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{challtest}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pebble-challtestsrv starts"),
        );
        let config = format!(
            r#"{{"pebble": {{
  "listenAddress": "127.0.0.1:{acme}",
  "managementListenAddress": "127.0.0.1:{management}",
  "certificate": "{cert}",
  "privateKey": "{key}",
  "httpPort": {http_port},
  "tlsPort": {tls},
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false{validity}
}}}}"#,
            validity = validity.map_or(String::new(), |v| format!(
                r#",
  "certificateValidityPeriod": {}"#,
                v.as_secs().max(1)
            )),
            cert = dir.join("cert.pem").display(),
            key = dir.join("key.pem").display(),
        );
        std::fs::write(dir.join("pebble.json"), config).expect("pebble's config");
        pebble.processes.push(
            Command::new("pebble")
                .arg("-config")
                .arg(dir.join("pebble.json"))
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_VA_ALWAYS_VALID", "0")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0")
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pebble starts"),
        );
        for port in [challtest, acme, management] {
            let deadline = Instant::now() + PATIENCE;
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "pebble did not listen on {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        pebble
    }

    /// The root pebble issues certificates under (PEM), from its management interface.
    pub async fn issuing_root(&self) -> String {
        let answer = crate::https_get(self.management, "localhost", &self.https_ca_pem, "/roots/0")
            .await
            .expect("pebble's management interface answers");
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A loopback port free for TCP and UDP (pebble's DNS) at the time of asking.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = tcp.local_addr().expect("its address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A CA and a certificate for `localhost` it signed, written as pebble's HTTPS certificate and
/// key into `dir`. Returns the CA's PEM.
fn https_certificate(dir: &Path) -> String {
    let ca_key = KeyPair::generate().expect("a key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.distinguished_name
        .push(DnType::CommonName, "berth test: pebble HTTPS CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).expect("a CA").pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("a key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("certificate parameters");
    let cert = params.signed_by(&key, &issuer).expect("a certificate");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("pebble's certificate");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("pebble's key");
    ca_pem
}
