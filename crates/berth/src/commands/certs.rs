//! Certificate commands: the HTTPS certificates of an app's hosts — list, upload (the key read
//! from a file, never from the command line), order over ACME, delete.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth_api::certificates::{CertificateDto, UploadRequest};
use clap::Subcommand;

use super::segment;
use crate::client::Client;
use crate::output::{self, Format};

/// The largest certificate or key file read (the server refuses more than 64 KiB of PEM).
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List an app's certificates: host, names, source, validity, days left
    List {
        app: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Upload the certificate of one of the app's hosts (replaces the host's certificate)
    Upload {
        app: String,
        /// The app's default host or one of its domains (a wildcard domain such as '*.shop.example.com' takes a wildcard certificate)
        host: String,
        /// PEM file with the certificate chain, leaf first
        #[arg(long = "cert", value_name = "FILE")]
        cert: PathBuf,
        /// PEM file with the unencrypted private key
        #[arg(long = "key", value_name = "FILE")]
        key: PathBuf,
    },
    /// Order a certificate for one of the app's hosts over ACME (the server's --acme-directory;
    /// a wildcard domain over DNS-01, which needs the server's --acme-dns-hook); Berth renews it
    Request { app: String, host: String },
    /// Delete the certificate of one of the app's hosts
    Delete { app: String, host: String },
}

/// The text of `path`, refusing files larger than a certificate or key can be.
fn read_pem(flag: &str, path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("--{flag} {}: {e}", path.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "--{flag} {}: {size} bytes; a PEM certificate or key is at most 64 KiB",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("--{flag} {}: {e}", path.display()))
}

fn print_certificate(certificate: &CertificateDto) {
    println!(
        "{}: {} certificate for {}, valid {} to {} ({} days left)",
        certificate.host,
        certificate.source,
        certificate.names.join(", "),
        certificate.not_before,
        certificate.not_after,
        certificate.days_left
    );
}

pub async fn run(client: &Client, command: CertsCommand) -> Result<ExitCode, String> {
    match command {
        CertsCommand::List { app, output } => {
            let certificates: Vec<CertificateDto> = client
                .get(&format!("/apps/{}/certificates", segment(&app)))
                .await?;
            output::list(
                output,
                &certificates,
                &[
                    "HOST",
                    "NAMES",
                    "SOURCE",
                    "NOT BEFORE",
                    "NOT AFTER",
                    "DAYS LEFT",
                ],
                |c| {
                    vec![
                        c.host.clone(),
                        c.names.join(","),
                        c.source.clone(),
                        c.not_before.clone(),
                        c.not_after.clone(),
                        c.days_left.to_string(),
                    ]
                },
            );
        }
        CertsCommand::Upload {
            app,
            host,
            cert,
            key,
        } => {
            let request = UploadRequest {
                certificate: read_pem("cert", &cert)?,
                private_key: read_pem("key", &key)?,
            };
            let certificate: CertificateDto = client
                .put(
                    &format!("/apps/{}/certificates/{}", segment(&app), segment(&host)),
                    &request,
                )
                .await?;
            print_certificate(&certificate);
        }
        CertsCommand::Request { app, host } => {
            let certificate: CertificateDto = client
                .post_empty(&format!(
                    "/apps/{}/certificates/{}/acme",
                    segment(&app),
                    segment(&host)
                ))
                .await?;
            print_certificate(&certificate);
        }
        CertsCommand::Delete { app, host } => {
            client
                .delete(&format!(
                    "/apps/{}/certificates/{}",
                    segment(&app),
                    segment(&host)
                ))
                .await?;
            println!("{host}: certificate deleted; HTTPS to it is refused from now on");
        }
    }
    Ok(ExitCode::SUCCESS)
}
