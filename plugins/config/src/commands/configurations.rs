//! `configurations create/activate/list/describe/delete`: named configurations as gcloud keeps
//! them (`active_config`, `configurations/config_NAME`).

use std::process::ExitCode;

use anyhow::Result;
use gdcloud::ops::config::{Activated, Configurations, Listing};
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::{Escaped, Output};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a configuration (empty); --activate makes it the active one.
    Create {
        /// Lower-case letters, digits and hyphens, starting with a letter.
        name: String,
        /// Make it the active configuration.
        #[arg(long)]
        activate: bool,
    },
    /// Make a configuration the active one.
    Activate { name: String },
    /// List the configurations, the active one marked.
    List,
    /// Show a configuration's properties (secrets masked).
    Describe { name: String },
    /// Delete a configuration and its properties (not the active one).
    Delete { name: String },
}

pub fn run(global: &GlobalArgs, out: &Output, command: Command) -> Result<ExitCode> {
    let configurations = Configurations::open()?;
    let flag = global.configuration.as_deref();
    match command {
        Command::Create { name, activate } => {
            let activated = configurations.create(&name, activate)?;
            out.status(&format!("Created [{name}]."));
            match activated {
                Some(a) => report_activated(out, &a),
                None => out.status(&format!(
                    "To use it, run: gdcloud-config configurations activate {name}"
                )),
            }
        }
        Command::Activate { name } => report_activated(out, &configurations.activate(&name)?),
        Command::List => {
            let all = configurations.configurations(flag)?;
            out.result(&all, || out.line(render_table(&all).trim_end()))?;
        }
        Command::Describe { name } => {
            let listing = configurations.describe(flag, &name)?;
            out.result(&listing, || {
                out.line(render_description(&listing).trim_end())
            })?;
        }
        Command::Delete { name } => {
            configurations.delete(flag, &name)?;
            out.status(&format!("Deleted [{name}]."));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_activated(out: &Output, a: &Activated) {
    out.status(&format!("Activated [{}].", a.name));
    if let Some(other) = &a.overridden_by {
        out.warn(&format!(
            "GDCLOUD_ACTIVE_CONFIG_NAME={other} is set in this environment and wins over the active configuration here; unset it to use [{}]",
            a.name
        ));
    }
}

/// The columns `configurations list` shows besides the name: the properties that say which
/// registry and which object store a configuration points at.
const COLUMNS: [(&str, &str, &str); 2] = [
    ("REGISTRY", "artifacts", "registry"),
    ("S3_ENDPOINT", "storage", "s3_endpoint"),
];

fn render_table(all: &[Listing]) -> String {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "IS_ACTIVE".to_string(),
        COLUMNS[0].0.to_string(),
        COLUMNS[1].0.to_string(),
    ]];
    for l in all {
        let mut row = vec![
            Escaped(&l.name).to_string(),
            if l.is_active { "True" } else { "False" }.to_string(),
        ];
        for (_, section, key) in COLUMNS {
            let value = l.properties.get(section).and_then(|k| k.get(key)).cloned();
            row.push(Escaped(&value.flatten().unwrap_or_default()).to_string());
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// gcloud's `describe` layout (YAML).
fn render_description(l: &Listing) -> String {
    let mut text = format!("is_active: {}\nname: {}\n", l.is_active, Escaped(&l.name));
    if l.properties.is_empty() {
        text.push_str("properties: {}\n");
        return text;
    }
    text.push_str("properties:\n");
    for (section, keys) in &l.properties {
        text.push_str(&format!("  {}:\n", Escaped(section)));
        for (key, value) in keys {
            let value = value.as_deref().unwrap_or_default();
            text.push_str(&format!("    {}: {}\n", Escaped(key), Escaped(value)));
        }
    }
    text
}
