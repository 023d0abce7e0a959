//! `gdcloud artifacts push SOURCE DESTINATION`: flags → `ops::push::Options`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::discovery;
use gdcloud::ops::push::{self, LayerCompression, Options};
use gdcloud::plugin::cli::{self, parse_platform, GlobalArgs, KubeArgs, RegistryArgs};
use gdcloud::plugin::progress;
use gdcloud::plugin::Output;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud artifacts push oracle_db.tar harbor.example.com/project/oracle_db:19c      # docker save tarball\n  gdcloud artifacts push app-1.0 project/app:1.0                                    # OCI layout\n  gdcloud artifacts push bundle-dir:1.0 project/app:1.0                             # one image of a layout\n  gdcloud artifacts push app.oci.tar project/app:1.0                                # oci-archive"
)]
pub struct Args {
    /// An OCI layout directory ([:NAME] picks an image), a docker-archive or an oci-archive tarball.
    source: PathBuf,
    /// [HOST/]PROJECT/REPO[:TAG] (host from artifacts/registry when omitted).
    destination: String,
    /// Push one image manifest (with --platform, pick it from an index) instead of the whole index.
    #[arg(long)]
    single_manifest_repo: bool,
    /// Pick this image from an index: OS/ARCH[/VARIANT].
    #[arg(long, value_parser = parse_platform)]
    platform: Option<gdcloud::ops::Platform>,
    /// Blobs uploaded at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Blobs larger than this many MiB upload in chunks of this size.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    chunk_size_mib: u64,
    /// What uncompressed (plain tar) layers, such as a `docker save` tarball's, become in the
    /// registry; layers already compressed go up as they are.
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    compression: Compression,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The cluster that names the registry for references without a host, when
    /// artifacts/registry is not set.
    #[command(flatten)]
    cluster: KubeArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Compression {
    /// Keep them uncompressed (the source's manifest digest is kept).
    None,
    /// gzip, as docker push and skopeo do; every client reads it.
    Gzip,
    /// zstd: smaller and faster to decompress; needs containerd ≥ 1.5 / podman ≥ 3 to pull.
    Zstd,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    cli::warn_plain_http(out, &args.destination);
    let opts = Options {
        source: args.source.clone(),
        destination: args.destination.clone(),
        default_registry: discovery::default_registry_for(
            &config,
            &args.destination,
            &args.cluster.options(),
        )
        .await?,
        single_manifest_repo: args.single_manifest_repo,
        platform: args.platform.clone(),
        concurrency: args.concurrency.into(),
        chunk_size: args.chunk_size_mib * 1024 * 1024,
        compression: match args.compression {
            Compression::None => LayerCompression::None,
            Compression::Gzip => LayerCompression::Gzip,
            Compression::Zstd => LayerCompression::Zstd,
        },
        client: args.registry.client_options(global)?,
    };
    let bars = progress::new(out.progress_enabled(), "push");
    let report = push::run(&opts, &*bars)
        .await
        .with_context(|| format!("push {} {}", args.source.display(), args.destination))?;
    out.result(&report, || {
        out.line(&format!("{} {}", report.destination, report.digest))?;
        out.status(&format!(
            "Pushed {}: {} blobs uploaded ({} bytes, {} layers compressed), {} already there, {} mounted",
            report.destination,
            report.blobs_uploaded,
            report.bytes_uploaded,
            report.layers_compressed,
            report.blobs_skipped,
            report.blobs_mounted
        ));
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
