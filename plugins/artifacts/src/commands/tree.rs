//! `gdcloud artifacts tree OCI_BUNDLE`: a readable tree (or JSON) of what a bundle or a remote
//! reference holds. Only an image's own line names its repository, as `PROJECT/REPO:TAG`, so
//! `tree DIR | grep PROJECT/REPO | cut -d ":" -f2 | grep -v '.sig'` prints exactly its tags.

use std::process::ExitCode;

use anyhow::{Context, Result};
use gdcloud::ops::discovery;
use gdcloud::ops::tree::{self, Node, Options};
use gdcloud::plugin::cli::{self, GlobalArgs, KubeArgs, RegistryArgs};
use gdcloud::plugin::Escaped;
use gdcloud::plugin::Output;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud artifacts tree ./bundle\n  gdcloud artifacts tree ./bundle | grep project/app | cut -d \":\" -f2 | grep -v '.sig'\n  gdcloud artifacts tree harbor.example.com/project/app:1.0 --format json"
)]
pub struct Args {
    /// A local layout directory (nested bundle folders are searched) or a registry reference.
    oci_bundle: String,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The cluster that names the registry for references without a host, when
    /// artifacts/registry is not set.
    #[command(flatten)]
    cluster: KubeArgs,
}

fn human(size: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = size as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{size} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One node's line. Everything but the kind and size comes from the bundle or the registry and
/// is escaped: a newline in a media type or platform would forge a line in the runbook's
/// `tree | grep | cut` pipeline, an ESC sequence would act on the terminal.
fn label(node: &Node) -> String {
    let mut s = format!("{} {}", node.kind, Escaped(&node.digest));
    if let Some(p) = &node.platform {
        s.push_str(&format!(" {}", Escaped(p)));
    }
    s.push_str(&format!(" {}", human(node.size)));
    if node.kind != "index" && node.kind != "manifest" {
        s.push_str(&format!(" {}", Escaped(&node.media_type)));
    } else if let Some(a) = &node.artifact_type {
        s.push_str(&format!(" artifact {}", Escaped(a)));
    }
    s
}

fn draw(node: &Node, prefix: &str, last: bool, lines: &mut Vec<String>) {
    lines.push(format!(
        "{prefix}{}{}",
        if last { "└── " } else { "├── " },
        label(node)
    ));
    let child_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
    for (i, c) in node.children.iter().enumerate() {
        draw(c, &child_prefix, i + 1 == node.children.len(), lines);
    }
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let config = global.config()?;
    cli::warn_plain_http(out, &args.oci_bundle);
    let opts = Options {
        target: args.oci_bundle.clone(),
        default_registry: if std::path::Path::new(&args.oci_bundle).is_dir() {
            None
        } else {
            discovery::default_registry_for(&config, &args.oci_bundle, &args.cluster.options())
                .await?
        },
        client: args.registry.client_options(global)?,
    };
    let images = tree::run(&opts)
        .await
        .with_context(|| format!("tree {}", args.oci_bundle))?;
    out.result(&images, || {
        for line in lines(&images) {
            out.line(&line)?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The tree for people: each image's `REPOSITORY:TAG` line, then its nodes.
fn lines(images: &[tree::Image]) -> Vec<String> {
    let mut lines = Vec::new();
    for image in images {
        match &image.tag {
            Some(t) => lines.push(format!("{}:{}", Escaped(&image.repository), Escaped(t))),
            // No repository name here: an untagged entry must not match the runbook's grep.
            None => lines.push("(untagged)".to_string()),
        }
        draw(&image.root, "", true, &mut lines);
    }
    lines
}
