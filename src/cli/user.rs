//! `bess user …`: accounts of `bess serve`.

use super::output::{Table, json};
use crate::ops::{self, NewUser, Repo};
use clap::{Args, Subcommand};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

/// Manage the users of `bess serve`: add, list, remove, passwd.
///
/// Passwords are read from standard input and stored only as argon2id
/// hashes. Rights are per channel: --read lets apt clients fetch a channel,
/// --upload lets CI push packages into it (uploads always enter the first
/// channel), --env lets a ticket tracker create and destroy a platform's
/// environments over the API, --admin may do everything, including
/// promotions over the API.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    Add(AddArgs),
    List(ListArgs),
    Remove(NameArgs),
    Passwd(PasswdArgs),
}

/// Create a user.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  printf '%s' \"$PASSWORD\" | bess user add web01 --read prod --password-stdin\n  printf '%s' \"$PASSWORD\" | bess user add ci --upload preprod --password-stdin\n  printf '%s' \"$PASSWORD\" | bess user add tracker --env paas --password-stdin   # POST/DELETE environments of paas"
)]
pub struct AddArgs {
    /// User name (lowercase letters, digits, - _ .)
    name: String,
    /// Channels the user may read, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "CHANNELS")]
    read: Vec<String>,
    /// Channels the user may upload to, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "CHANNELS")]
    upload: Vec<String>,
    /// Platforms whose environments the user may create and destroy over the API, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "PLATFORMS")]
    env: Vec<String>,
    /// May do everything (promote, read and upload everywhere)
    #[arg(long)]
    admin: bool,
    /// Read the password from standard input (required: never on the command line)
    #[arg(long, required = true)]
    password_stdin: bool,
}

/// List users and their rights.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON array of {name, read, upload, admin, env, environment}
    #[arg(long)]
    json: bool,
}

/// Delete a user.
#[derive(Debug, Args)]
pub struct NameArgs {
    name: String,
}

/// Change a user's password (read from standard input).
#[derive(Debug, Args)]
pub struct PasswdArgs {
    name: String,
    /// Read the new password from standard input
    #[arg(long, required = true)]
    password_stdin: bool,
}

pub fn run(dir: &Path, command: UserCommand) -> anyhow::Result<ExitCode> {
    let mut repo = Repo::open(dir)?;
    match command {
        UserCommand::Add(args) => {
            let user = NewUser {
                name: args.name,
                password: read_password()?,
                read: args.read,
                upload: args.upload,
                admin: args.admin,
                env: args.env,
            };
            let row = ops::add_user(&mut repo, &user)?;
            println!("added user {}", row.name);
        }
        UserCommand::List(args) => print_users(&ops::list_users(&repo)?, args.json)?,
        UserCommand::Remove(args) => {
            ops::remove_user(&mut repo, &args.name)?;
            println!("removed user {}", args.name);
        }
        UserCommand::Passwd(args) => {
            ops::set_password(&mut repo, &args.name, &read_password()?)?;
            println!("changed the password of {}", args.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The password on standard input, without its final newline.
fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    Ok(text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_string())
}

fn print_users(users: &[crate::catalog::UserRow], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        json(users)?;
        return Ok(());
    }
    let mut table = Table::new(vec!["USER", "READ", "UPLOAD", "ENV", "ADMIN"]);
    for u in users {
        let env = match &u.environment {
            Some(owner) => format!("(of {owner})"),
            None => u.env.join(","),
        };
        table.row(vec![
            u.name.clone(),
            u.read.join(","),
            u.upload.join(","),
            env,
            if u.admin { "yes" } else { "" }.into(),
        ]);
    }
    table.print()?;
    Ok(())
}
