//! Command-line interface: clap definitions, one file per command group.
//! Commands parse and print; the work happens in `ops`.

mod backup;
mod box_;
mod env;
mod generate;
mod host;
mod incoming;
mod init;
mod key;
mod log;
mod output;
mod owner;
mod platform;
pub mod progress;
mod remote;
mod repo;
mod retention;
mod user;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// bess: an APT repository manager with channels, signed publication, an authenticated server, and per-ticket environments.
#[derive(Debug, Parser)]
#[command(
    name = "bess",
    version,
    about,
    long_about = "bess keeps every version of your .deb packages in a content-addressed pool, \
publishes them per channel (preprod, then prod), per distribution and per architecture, \
and lets operators promote exact versions from one channel to the next.",
    after_help = "Quick start:
  bess init /srv/bess --dists bookworm,jammy --archs amd64,arm64
  export BESS_REPO=/srv/bess
  bess repo ingest build/*.deb           # lands in preprod, every dist of dists.list
  bess repo diff preprod prod            # what prod does not have yet
  bess repo promote myapp=1.4.2-1        # exact version to prod

Environments:
  bess platform init paas --source ./platform --domain example.test --ip-range 10.77.0.0/24
  bess env init paas 1161                # workspace, addresses, credential, rendered templates
  bess host bind-proxy paas 1161         # v5.1161.paas.example.test on this host"
)]
pub struct Cli {
    /// Repository directory [default: $BESS_REPO, else the current directory]
    #[arg(long, global = true, env = "BESS_REPO", value_name = "DIR")]
    repo: Option<PathBuf>,

    /// Print only errors and the data asked for: no summaries, no progress bars
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// Print one line per item (package, dist) as well as summaries
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(init::InitArgs),
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    #[command(subcommand)]
    Key(key::KeyCommand),
    #[command(subcommand)]
    User(user::UserCommand),
    #[command(subcommand)]
    Box(box_::BoxCommand),
    #[command(subcommand)]
    Platform(platform::PlatformCommand),
    #[command(subcommand)]
    Env(env::EnvCommand),
    #[command(subcommand)]
    Host(host::HostCommand),
    Serve(ServeArgs),
    #[command(subcommand)]
    Incoming(incoming::IncomingCommand),
    Log(log::LogArgs),
    Backup(backup::BackupArgs),
    Restore(backup::RestoreArgs),
    Completions(generate::CompletionsArgs),
    Manpage(generate::ManpageArgs),
}

/// Serve the published channels to apt clients, uploads and the JSON API.
///
/// Every channel is served under /<channel>/ (dists/ and pool/), with basic
/// auth and per-channel rights (see `bess user`); Vagrant box catalogs
/// under /<channel>/boxes/<name> (see `bess box`). /key.gpg is the public
/// signing key (no auth); /<channel>/bess.sources a ready deb822 source.
/// Logs one line per request on stderr (not with --quiet, which keeps
/// warnings and errors only); stops cleanly on SIGTERM.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "On a client (apt reads credentials from auth.conf.d):\n  curl -o /etc/apt/keyrings/bess.gpg http://repo:8080/key.gpg\n  echo 'machine http://repo:8080/prod login web01 password ...' > /etc/apt/auth.conf.d/bess.conf\n  curl -u web01 -o /etc/apt/sources.list.d/bess.sources http://repo:8080/prod/bess.sources"
)]
pub struct ServeArgs {
    /// Address to listen on [default: [serve] listen in bess.toml]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Run as a stateless frontend of what a primary publishes to this
    /// S3 bucket and prefix (its [[publish.target]]): no repository is
    /// needed; settings come from --config, channels, users and keys from
    /// the store, and writes are redirected to [serve] primary.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    from: Option<String>,
    /// The frontend's settings: [store] endpoint, region, credentials-file,
    /// and the [serve] and [boxes] tables of bess.toml (with primary,
    /// cache-dir, cache-max-gib, reload-interval-secs, box-token-key).
    #[arg(long, value_name = "FILE", requires = "from",
          default_value = crate::config::DEFAULT_FRONTEND_CONFIG)]
    config: PathBuf,
}

impl Command {
    /// Whether the command works in an existing repository (and so must
    /// run as its owner); the others make a new one or touch none.
    fn uses_repository(&self) -> bool {
        let frontend = matches!(self, Command::Serve(args) if args.from.is_some());
        !frontend
            && !matches!(
                self,
                Command::Init(_)
                    | Command::Restore(_)
                    | Command::Completions(_)
                    | Command::Manpage(_)
            )
    }
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let repo_dir = cli.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    progress::set_verbosity(match (cli.quiet, cli.verbose) {
        (true, _) => progress::Verbosity::Quiet,
        (_, true) => progress::Verbosity::Verbose,
        _ => progress::Verbosity::Normal,
    });
    if cli.command.uses_repository() {
        owner::become_owner(&repo_dir, progress::verbose())?;
    }
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Repo(command) => repo::run(&repo_dir, command),
        Command::Key(command) => key::run(&repo_dir, command),
        Command::User(command) => user::run(&repo_dir, command),
        Command::Log(args) => log::run(&repo_dir, args),
        Command::Incoming(command) => incoming::run(&repo_dir, command),
        Command::Box(command) => box_::run(&repo_dir, command),
        Command::Platform(command) => platform::run(&repo_dir, command),
        Command::Env(command) => env::run(&repo_dir, command),
        Command::Host(command) => host::run(&repo_dir, command),
        Command::Serve(args) => {
            match &args.from {
                Some(from) => {
                    crate::serve::run_front(from, &args.config, args.listen, progress::chatty())?
                }
                None => crate::serve::run(&repo_dir, args.listen, progress::chatty())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(args) => backup::run_backup(&repo_dir, args),
        Command::Restore(args) => backup::run_restore(args),
        Command::Completions(args) => generate::completions(args),
        Command::Manpage(args) => generate::manpages(args),
    }
}
