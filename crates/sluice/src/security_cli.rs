//! `sluice security …`: manages the identity store of a data directory offline (the file
//! `DATA_DIR/security/identities.json`, see `sluice_api::identities`): internal users and AWS
//! access keys with their built-in roles. Passwords and secrets that Sluice generates are
//! printed once and, for users, only their argon2id hash is kept.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use sluice_api::api_keys::ApiKeys;
use sluice_api::identities::{IdentityStore, generate_secret};
use sluice_api::security::Role;

#[derive(clap::Args, Debug)]
pub struct SecurityArgs {
    /// The data directory whose identities to manage.
    #[arg(long, global = true, default_value = "./sluice-data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: SecurityCommand,
}

#[derive(Subcommand, Debug)]
enum SecurityCommand {
    /// Internal users (HTTP basic auth).
    #[command(subcommand)]
    User(UserCommand),
    /// AWS access keys (SigV4).
    #[command(subcommand)]
    AccessKey(AccessKeyCommand),
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user (or replace its password and role with --replace). The password is read from
    /// the first line of stdin with --password-stdin, else generated and printed once.
    Add {
        name: String,
        /// `all_access` or `readall` (read-only search).
        #[arg(long, default_value = "all_access", value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        replace: bool,
    },
    /// Remove a user.
    Remove { name: String },
    /// List the users with their roles.
    List,
}

#[derive(Subcommand, Debug)]
enum AccessKeyCommand {
    /// Create an access key; its id and secret are printed once.
    Create {
        #[arg(long, default_value = "all_access", value_parser = parse_role)]
        role: Role,
    },
    /// Delete an access key.
    Delete { id: String },
    /// List the access keys' ids with their roles (never their secrets).
    List,
}

/// The user `sluice up --security` creates when the store has none.
pub const BOOTSTRAP_USER: &str = "admin";

/// The identities `sluice up --security` checks, loaded once at start: on the first start (no
/// user yet) `admin` is created with a random password, printed once, of which only the hash
/// is kept.
pub fn authenticator_for_up(
    data_dir: &std::path::Path,
    clock: std::sync::Arc<dyn sluice_log::Clock>,
) -> anyhow::Result<std::sync::Arc<sluice_api::security::Authenticator>> {
    let store = IdentityStore::new(data_dir);
    if store.load()?.users.is_empty() {
        let password = generate_secret()?;
        store
            .put_user(BOOTSTRAP_USER, &password, Role::AllAccess, false)
            .context("creating the first user")?;
        println!(
            "security: created user {BOOTSTRAP_USER} with password {password} (shown once; only its hash is kept)"
        );
    }
    let identities = store.load().context("loading the identity store")?;
    let api_keys = ApiKeys::open(data_dir).context("loading the API keys")?;
    Ok(sluice_api::security::Authenticator::with_api_keys(
        identities, api_keys, clock,
    ))
}

fn parse_role(name: &str) -> Result<Role, String> {
    Role::parse(name).ok_or_else(|| format!("unknown role [{name}]: all_access or readall"))
}

pub fn run(args: SecurityArgs) -> anyhow::Result<()> {
    let store = IdentityStore::new(&args.data_dir);
    match args.command {
        SecurityCommand::User(UserCommand::Add {
            name,
            role,
            password_stdin,
            replace,
        }) => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("reading the password from stdin")?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (generate_secret()?, true)
            };
            store
                .put_user(&name, &password, role, replace)
                .with_context(|| format!("adding user {name}"))?;
            if generated {
                println!("user {name} ({}) password: {password}", role.name());
            } else {
                println!("user {name} ({})", role.name());
            }
        }
        SecurityCommand::User(UserCommand::Remove { name }) => {
            store.remove_user(&name)?;
            println!("removed user {name}");
        }
        SecurityCommand::User(UserCommand::List) => {
            for (name, user) in store.load()?.users {
                println!("{name}\t{}", user.role.name());
            }
        }
        SecurityCommand::AccessKey(AccessKeyCommand::Create { role }) => {
            let (id, secret) = store.create_access_key(role)?;
            println!("access key id: {id}");
            println!("secret access key: {secret}");
        }
        SecurityCommand::AccessKey(AccessKeyCommand::Delete { id }) => {
            store.delete_access_key(&id)?;
            println!("deleted access key {id}");
        }
        SecurityCommand::AccessKey(AccessKeyCommand::List) => {
            for (id, key) in store.load()?.access_keys {
                println!("{id}\t{}", key.role.name());
            }
        }
    }
    Ok(())
}
