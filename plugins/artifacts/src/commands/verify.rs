//! `gdcloud artifacts verify SOURCE`: flags → `ops::verify::Options`; one verdict per image (or
//! platform), exit 1 when any is refused. `TrustArgs` (`--key`/`--policy`) is shared with
//! `pull --verify` and `extract --verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::discovery;
use gdcloud::ops::verify::{self, Options, Report, Selection, Trust};
use gdcloud::plugin::cli::{self, parse_platform, GlobalArgs, KubeArgs, RegistryArgs};
use gdcloud::plugin::Output;

/// Where trust comes from; one of the two is required wherever signatures are checked.
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// A cosign public key (PEM: ECDSA P-256/P-384, RSA or Ed25519): every image must carry a
    /// signature by it for its own name.
    #[arg(long, value_name = "FILE", conflicts_with = "policy")]
    pub key: Option<PathBuf>,
    /// A containers policy.json (its sigstoreSigned requirements, as podman and skopeo read them).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

impl TrustArgs {
    pub fn trust(&self) -> Option<Trust> {
        match (&self.key, &self.policy) {
            (Some(k), _) => Some(Trust::Key(k.clone())),
            (None, Some(p)) => Some(Trust::Policy(p.clone())),
            (None, None) => None,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(
    group = clap::ArgGroup::new("trust").args(["key", "policy"]).required(true),
    after_help = "Examples:\n  gdcloud artifacts verify --key cosign.pub harbor.example.com/project/app:1.0\n  gdcloud artifacts verify --policy /etc/containers/policy.json ./bundle:project/app:1.0\n  gdcloud artifacts verify --key cosign.pub --all-platforms project/app:1.0\n\nA signature is cosign's, in the image's sha256-<digest>.sig tag. No transparency log is checked: this works offline. Exit status 1 when any image is refused."
)]
pub struct Args {
    /// A registry image [HOST/]PROJECT/REPO[:TAG|@DIGEST], or a local OCI layout / oci-archive
    /// (PATH:NAME picks an image).
    source: String,
    /// The image of a local SOURCE that holds several (its ref name).
    #[arg(long, value_name = "NAME")]
    image_name: Option<String>,
    /// For an index: judge this platform's manifest (OS/ARCH[/VARIANT]) instead of the index.
    #[arg(long, value_parser = parse_platform, conflicts_with = "all_platforms")]
    platform: Option<gdcloud::ops::Platform>,
    /// For an index: judge the index and every platform manifest, each by its own signature.
    #[arg(long)]
    all_platforms: bool,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The cluster that names the registry for references without a host, when
    /// artifacts/registry is not set.
    #[command(flatten)]
    cluster: KubeArgs,
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    cli::warn_plain_http(out, &args.source);
    let (path, _) = gdcloud::ops::split_source_name(
        std::path::Path::new(&args.source),
        args.image_name.as_deref(),
    );
    let lookup = if path.exists() {
        path.display().to_string()
    } else {
        args.source.clone()
    };
    let opts = Options {
        source: args.source.clone(),
        image_name: args.image_name.clone(),
        default_registry: discovery::default_registry_for(
            &config,
            &lookup,
            &args.cluster.options(),
        )
        .await?,
        selection: Selection {
            platform: args.platform.clone(),
            all_platforms: args.all_platforms,
        },
        client: args.registry.client_options(global)?,
        trust: args.trust.trust().expect("clap requires --key or --policy"),
    };
    let report = verify::run(&opts)
        .await
        .with_context(|| format!("verify {}", args.source))?;
    render(out, &report)?;
    Ok(if report.refused().next().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Text: one line per verdict on stdout; the transparency-log note on stderr.
pub fn render(out: &Output, report: &Report) -> Result<()> {
    out.resources(report, "verdicts", || {
        for v in &report.verdicts {
            let platform = v
                .platform
                .as_ref()
                .map(|p| format!(" [{p}]"))
                .unwrap_or_default();
            let word = if v.verified { "VERIFIED" } else { "REFUSED" };
            out.line(&format!(
                "{word} {}@{}{platform}: {}",
                v.image, v.digest, v.reason
            ))?;
        }
        out.status(report.transparency_log);
        Ok(())
    })?;
    Ok(())
}
