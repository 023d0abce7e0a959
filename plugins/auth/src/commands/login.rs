//! `gdcloud auth login`: flags → `ops::login::Options`; the URL or device code on stderr, the
//! signed-in account on stdout.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use gdcloud::ops::login::{self, Interaction, Options};
use gdcloud::plugin::cli::GlobalArgs;
use gdcloud::plugin::Output;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  gdcloud auth login --issuer-url https://idp.example.com --client-id gdcloud\n  gdcloud auth login --no-browser                       # device code, for SSH sessions\n  gdcloud auth login --audiences https://harbor.example.com\n\nThe issuer, client and CA given here are saved in the configuration; the session is kept in the\nkeyring (or the 0600 file store), never in the configuration."
)]
pub struct Args {
    /// The OpenID provider (saved as auth/issuer_url).
    #[arg(long, value_name = "URL")]
    issuer_url: Option<String>,
    /// The OAuth client id (saved as auth/client_id).
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// Do not start a browser: use the device code flow (or paste the redirect URL).
    #[arg(long)]
    no_browser: bool,
    /// CA (PEM) for the provider's TLS (saved as auth/login_config_cert_path).
    #[arg(long, value_name = "FILE")]
    login_config_cert: Option<PathBuf>,
    /// Token audiences to request at sign-in, besides those of auth/registry_audiences.
    #[arg(long, value_delimiter = ',', value_name = "AUD[,AUD…]")]
    audiences: Vec<String>,
    /// How long to wait for the browser or device approval, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

struct Terminal;

impl Interaction for Terminal {
    fn show_url(&self, url: &str, browser_started: bool) {
        if browser_started {
            eprintln!("Your browser has been opened to sign in. If it did not open, visit:\n\n    {url}\n");
        } else {
            eprintln!("Open this link in a browser to sign in:\n\n    {url}\n");
        }
    }

    fn show_device_code(
        &self,
        verification_uri: &str,
        user_code: &str,
        complete_uri: Option<&str>,
    ) {
        eprintln!("To sign in, open {verification_uri} and enter the code: {user_code}");
        if let Some(c) = complete_uri {
            eprintln!("(or open {c})");
        }
    }

    fn read_redirect(&self) -> std::io::Result<String> {
        eprint!("After signing in, paste the address the browser ended on (http://127.0.0.1/callback?…): ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line)
    }
}

pub async fn run(global: &GlobalArgs, out: &Output, args: Args) -> Result<ExitCode> {
    let mut config = global.config()?;
    let opts = Options {
        issuer_url: args.issuer_url,
        client_id: args.client_id,
        ca_file: args.login_config_cert,
        audiences: args.audiences,
        no_browser: args.no_browser,
        browser: std::env::var("BROWSER").ok(),
        log_http: global.log_http,
        timeout: Duration::from_secs(args.timeout),
    };
    let report = login::run(&mut config, &opts, &Terminal)
        .await
        .context("login")?;
    out.result(&report, || {
        out.line(&format!("You are now logged in as [{}].", report.account))
    })?;
    Ok(ExitCode::SUCCESS)
}
