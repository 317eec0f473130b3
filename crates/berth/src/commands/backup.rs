//! `berth backup` (the whole installation, from a running server, as a tar file) and
//! `berth restore` (such a file into an empty data directory, with no server running).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use futures::StreamExt;

use crate::client::Client;
use crate::units::format_size;

/// `berth backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the archive; `-` for stdout. Written to FILE.partial first, renamed once
    /// complete
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// `berth restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file `berth backup` wrote; `-` for stdin
    pub file: PathBuf,
    /// The data directory to restore into: new or empty (then `berth server --data-dir DIR`)
    #[arg(long, env = "BERTH_DATA_DIR", default_value = "./berth-data")]
    pub data_dir: PathBuf,
}

pub async fn backup(client: &Client, args: BackupArgs) -> Result<ExitCode, String> {
    let response = client.post_for_stream("/system/backups").await?;
    let to_stdout = args.output == Path::new("-");
    let partial = {
        let mut name = args.output.clone().into_os_string();
        name.push(".partial");
        PathBuf::from(name)
    };
    let mut sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&partial)
                .map_err(|e| format!("cannot create {}: {e}", partial.display()))?,
        )
    };
    let mut chunks = response.bytes_stream();
    let mut total = 0u64;
    let written: Result<(), String> = async {
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| format!("the backup broke off: {e}"))?;
            total += chunk.len() as u64;
            sink.write_all(&chunk)
                .map_err(|e| format!("writing the backup failed: {e}"))?;
        }
        sink.flush()
            .map_err(|e| format!("writing the backup failed: {e}"))
    }
    .await;
    drop(sink);
    if let Err(error) = written {
        if !to_stdout {
            let _ = std::fs::remove_file(&partial);
        }
        return Err(error);
    }
    if !to_stdout {
        std::fs::rename(&partial, &args.output)
            .map_err(|e| format!("cannot rename {}: {e}", partial.display()))?;
    }
    eprintln!(
        "backed up the installation: {} of tar archive{}",
        format_size(total),
        if to_stdout {
            String::new()
        } else {
            format!(" in {}", args.output.display())
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn restore(args: RestoreArgs) -> Result<ExitCode, String> {
    let data_dir = absolute(&args.data_dir)?;
    // A server running on the directory would write over what lands.
    if let Ok(pid) = std::fs::read_to_string(data_dir.join("server.pid"))
        && let Ok(pid) = pid.trim().parse::<u32>()
        && Path::new("/proc").join(pid.to_string()).exists()
    {
        return Err(format!(
            "a Berth server (pid {pid}) runs on {}: stop it first",
            data_dir.display()
        ));
    }
    let restored = if args.file == Path::new("-") {
        berth_operations::backup::restore(std::io::stdin().lock(), &data_dir)?
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| format!("cannot open {}: {e}", args.file.display()))?;
        berth_operations::backup::restore(std::io::BufReader::new(file), &data_dir)?
    };
    println!(
        "restored {} files ({}) of installation {} (namespace {}, written by Berth {}) into {}",
        restored.files,
        format_size(restored.bytes),
        restored.manifest.installation,
        restored.manifest.namespace,
        restored.manifest.berth_version,
        data_dir.display()
    );
    println!(
        "start it with: berth server --data-dir {} --namespace {} (and the --listen it had: \
         app images name the registry by that address)",
        data_dir.display(),
        restored.manifest.namespace
    );
    Ok(ExitCode::SUCCESS)
}

/// `path` made absolute against the working directory (resolved once).
fn absolute(path: &Path) -> Result<PathBuf, String> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    std::env::current_dir()
        .map(|dir| dir.join(path))
        .map_err(|e| format!("cannot read the working directory: {e}"))
}
