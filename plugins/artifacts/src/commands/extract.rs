//! `gdcloud artifacts extract SOURCE DESTINATION`: flags → `ops::extract::Options`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use gdcloud::ops::extract::{self, LayerOptions, Options};
use gdcloud::ops::verify;
use gdcloud::plugin::cli::{self, parse_platform, GlobalArgs};
use gdcloud::plugin::{progress, Output};

use super::verify::TrustArgs;

#[derive(Debug, clap::Args)]
#[command(
    group = clap::ArgGroup::new("trust").args(["key", "policy"]).requires("verify"),
    after_help = "Examples:\n  gdcloud artifacts extract app-1.0 app-1.0-extracted                 # root filesystem, as umoci unpack\n  gdcloud artifacts extract bundle app-rootfs --image-name 1.0          # one image of a layout\n  gdcloud artifacts extract app-1.0 app-1.0.tar --docker-executable     # for docker/podman load\n  gdcloud artifacts extract untrusted-1.0 rootfs --rootless             # no owners, devices, setuid\n\nDESTINATION must be empty or absent. Layers that try to write outside it are refused."
)]
pub struct Args {
    /// A pulled OCI layout (or a docker-archive / oci-archive tarball); DIR:NAME picks an image.
    source: PathBuf,
    /// An empty or absent directory (or, with --docker-executable, the tarball to write).
    destination: PathBuf,
    /// The image to extract when SOURCE holds several (its ref name / tag).
    #[arg(long, value_name = "NAME")]
    image_name: Option<String>,
    /// Pick this image from an index: OS/ARCH[/VARIANT] (default: this machine's).
    #[arg(long, value_parser = parse_platform)]
    platform: Option<gdcloud::ops::Platform>,
    /// Write a tarball that `docker load`, `podman load` and skopeo's docker-archive: read.
    #[arg(long)]
    docker_executable: bool,
    /// For images you do not trust: files belong to you and no device nodes are made (as
    /// `umoci unpack --rootless`); as root, setuid/setgid bits and security.*/trusted.* extended
    /// attributes (file capabilities) are dropped too.
    #[arg(long, conflicts_with = "docker_executable")]
    rootless: bool,
    /// Check the image's cosign signatures in SOURCE (its sha256-<digest>.sig entry, with --key
    /// or --policy) before anything is written.
    #[arg(long, requires = "trust")]
    verify: bool,
    #[command(flatten)]
    trust: TrustArgs,
}

pub fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    if args.verify {
        check_signatures(global, out, &args)?;
    }
    let opts = Options {
        source: args.source.clone(),
        destination: args.destination.clone(),
        image_name: args.image_name.clone(),
        platform: args.platform.clone(),
        docker_executable: args.docker_executable,
        extract: if args.rootless {
            LayerOptions::rootless()
        } else {
            LayerOptions::default()
        },
    };
    let bars = progress::new(out.progress_enabled(), "extract");
    let report = extract::run(&opts, &*bars).with_context(|| {
        format!(
            "extract {} {}",
            args.source.display(),
            args.destination.display()
        )
    })?;
    out.result(&report, || {
        out.line(&report.destination.display().to_string())?;
        status(out, &report);
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn status(out: &Output, report: &extract::Report) {
    match report.mode {
        "artifact" => out.status(&format!("Wrote {} artifact files", report.files)),
        "docker-archive" => out.status(&format!(
            "Wrote a docker-archive of {} ({} bytes); load it with `docker load -i {}`",
            report.digest,
            report.bytes,
            report.destination.display()
        )),
        _ => out.status(&format!(
            "Extracted {}: {} files, {} directories, {} links, {} whiteouts applied, {} bytes",
            report.digest,
            report.files,
            report.directories,
            report.links,
            report.whiteouts,
            report.bytes
        )),
    }
}

/// `--verify`: every verdict on SOURCE's image must be an acceptance, before DESTINATION is
/// touched.
fn check_signatures(global: &GlobalArgs, out: &Output, args: &Args) -> Result<()> {
    let config = global.config()?;
    let opts = verify::Options {
        source: args.source.display().to_string(),
        image_name: args.image_name.clone(),
        default_registry: config.get(gdcloud::ops::discovery::REGISTRY_PROPERTY),
        selection: verify::Selection {
            platform: args.platform.clone(),
            all_platforms: false,
        },
        client: Default::default(),
        trust: args.trust.trust().expect("clap requires --key or --policy"),
    };
    let report = cli::runtime()?
        .block_on(verify::run(&opts))
        .with_context(|| format!("verify {}", args.source.display()))?;
    if let Some(v) = report.refused().next() {
        bail!(
            "{}@{} is refused by --verify: {}; nothing was written",
            v.image,
            v.digest,
            v.reason
        );
    }
    for v in &report.verdicts {
        out.status(&format!("Verified {}@{}: {}", v.image, v.digest, v.reason));
    }
    Ok(())
}
