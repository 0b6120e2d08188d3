//! `sluice security …`: manages the identity store of a data directory offline (the file
//! `DATA_DIR/security/identities.json`, see `sluice_api::identities`): internal users and AWS
//! access keys with the roles given them directly (roles, role mappings and action groups are
//! managed through `_plugins/_security/api`). Passwords and secrets that Sluice generates are
//! printed once and, for users, only their argon2id hash is kept. Run it on a stopped node: a
//! running one keeps its own copy and rewrites the file on its next change.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use sluice_api::api_keys::ApiKeys;
use sluice_api::identities::{IdentityStore, generate_secret};
use sluice_api::roles::Roles;

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
    /// Print a new random encryption key (64 hexadecimal digits) for `sluice up
    /// --encryption-key-file` or SLUICE_ENCRYPTION_KEY.
    GenerateKey,
    /// Add a data key to the data directory's keyring and make it the one new files are
    /// encrypted with; files encrypted before keep opening with theirs. A running node is sent
    /// SIGHUP and takes it up without a restart. With --new-encryption-key-file, the keyring is
    /// also wrapped under that master key from now on (give it to the next `sluice up`).
    RotateKey {
        /// The current master key (else SLUICE_ENCRYPTION_KEY).
        #[arg(long)]
        encryption_key_file: Option<PathBuf>,
        /// A new master key to wrap the keyring under.
        #[arg(long)]
        new_encryption_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user (or replace its password and role with --replace). The password is read from
    /// the first line of stdin with --password-stdin, else generated and printed once.
    Add {
        name: String,
        /// A role to give the user (repeat for several): the static `all_access` or `readall`,
        /// or one defined through `_plugins/_security/api/roles`.
        #[arg(long = "role", default_value = "all_access")]
        roles: Vec<String>,
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
        /// A role to give the key (repeat for several).
        #[arg(long = "role", default_value = "all_access")]
        roles: Vec<String>,
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
    rates: sluice_api::rates::RatesConfig,
    clock: std::sync::Arc<dyn sluice_log::Clock>,
) -> anyhow::Result<std::sync::Arc<sluice_api::security::Authenticator>> {
    let store = IdentityStore::new(data_dir);
    if store.load()?.users.is_empty() {
        let password = generate_secret()?;
        store
            .put_user(
                BOOTSTRAP_USER,
                &password,
                vec!["all_access".to_owned()],
                false,
            )
            .context("creating the first user")?;
        println!(
            "security: created user {BOOTSTRAP_USER} with password {password} (shown once; only its hash is kept)"
        );
    }
    let api_keys = ApiKeys::open(data_dir).context("loading the API keys")?;
    let roles = Roles::open(data_dir).context("loading the roles")?;
    let audit = sluice_api::audit::AuditLog::open(data_dir, clock.clone())
        .context("opening the audit log")?;
    rates.validate().map_err(|error| anyhow::anyhow!(error))?;
    let rates = sluice_api::rates::Rates::new(rates);
    sluice_api::security::Authenticator::open(store, api_keys, roles, audit, rates, clock)
        .context("loading the identity store")
}

/// Refuses malformed role names, and warns of roles the data directory does not define (yet:
/// they may be defined later through `_plugins/_security/api/roles`).
fn check_roles(data_dir: &std::path::Path, roles: &[String]) -> anyhow::Result<()> {
    let defined = Roles::open(data_dir)
        .context("loading the roles")?
        .snapshot();
    for role in roles {
        sluice_api::roles::check_name(role).map_err(|error| anyhow::anyhow!("{error}"))?;
        if defined.role(role).is_none() {
            eprintln!(
                "warning: role [{role}] is not defined: it grants nothing until it is defined through _plugins/_security/api/roles"
            );
        }
    }
    Ok(())
}

/// The master key of encryption at rest from `file`, else from SLUICE_ENCRYPTION_KEY; `None`
/// when neither is given.
pub fn encryption_key(
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<sluice_seal::MasterKey>> {
    match file {
        Some(file) => Ok(Some(sluice_seal::MasterKey::from_file(file)?)),
        None => Ok(sluice_seal::MasterKey::from_env()?),
    }
}

/// Rotates the data key of `data_dir`'s keyring and tells a running node.
fn rotate_key(
    data_dir: &std::path::Path,
    key_file: Option<&std::path::Path>,
    new_key_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let key = encryption_key(key_file)?.with_context(|| {
        format!(
            "rotate-key needs the current encryption key: --encryption-key-file FILE or {}",
            sluice_seal::MASTER_KEY_ENV
        )
    })?;
    let new_key = new_key_file
        .map(sluice_seal::MasterKey::from_file)
        .transpose()?;
    let keyring = sluice_seal::Keyring::open(&data_dir.join("security"), key)?;
    let id = keyring.rotate(new_key)?;
    println!("data key {id} is now the one new files are encrypted with");
    if new_key_file.is_some() {
        println!(
            "the keyring is wrapped under the new master key: start Sluice with it from now on"
        );
    }
    match running_node(data_dir) {
        Some(pid) => {
            rustix::process::kill_process(pid, rustix::process::Signal::HUP)
                .with_context(|| format!("signalling the running sluice (process {pid:?})"))?;
            println!(
                "the running sluice (process {}) was told to reload it",
                pid.as_raw_nonzero()
            );
        }
        None => println!(
            "no sluice is running on {}: the next start uses it",
            data_dir.display()
        ),
    }
    Ok(())
}

/// The process holding `data_dir`'s lock, read from the lock file, when one holds it.
fn running_node(data_dir: &std::path::Path) -> Option<rustix::process::Pid> {
    let path = data_dir.join("sluice.lock");
    let file = std::fs::File::open(&path).ok()?;
    if file.try_lock_shared().is_ok() {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    rustix::process::Pid::from_raw(text.trim().parse().ok()?)
}

pub fn run(args: SecurityArgs) -> anyhow::Result<()> {
    let store = IdentityStore::new(&args.data_dir);
    match args.command {
        SecurityCommand::GenerateKey => {
            println!("{}", sluice_seal::MasterKey::generate()?.to_hex());
        }
        SecurityCommand::RotateKey {
            encryption_key_file,
            new_encryption_key_file,
        } => rotate_key(
            &args.data_dir,
            encryption_key_file.as_deref(),
            new_encryption_key_file.as_deref(),
        )?,
        SecurityCommand::User(UserCommand::Add {
            name,
            roles,
            password_stdin,
            replace,
        }) => {
            check_roles(&args.data_dir, &roles)?;
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
            let shown = roles.join(",");
            store
                .put_user(&name, &password, roles, replace)
                .with_context(|| format!("adding user {name}"))?;
            if generated {
                println!("user {name} ({shown}) password: {password}");
            } else {
                println!("user {name} ({shown})");
            }
        }
        SecurityCommand::User(UserCommand::Remove { name }) => {
            store.remove_user(&name)?;
            println!("removed user {name}");
        }
        SecurityCommand::User(UserCommand::List) => {
            for (name, user) in store.load()?.users {
                println!("{name}\t{}", user.roles.join(","));
            }
        }
        SecurityCommand::AccessKey(AccessKeyCommand::Create { roles }) => {
            check_roles(&args.data_dir, &roles)?;
            let (id, secret) = store.create_access_key(roles)?;
            println!("access key id: {id}");
            println!("secret access key: {secret}");
        }
        SecurityCommand::AccessKey(AccessKeyCommand::Delete { id }) => {
            store.delete_access_key(&id)?;
            println!("deleted access key {id}");
        }
        SecurityCommand::AccessKey(AccessKeyCommand::List) => {
            for (id, key) in store.load()?.access_keys {
                println!("{id}\t{}", key.roles.join(","));
            }
        }
    }
    Ok(())
}
