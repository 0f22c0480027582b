//! `brandvoice keys new --name N --role R`: a fresh API key, printed once.
//!
//! The key itself is shown only here and never stored; the config gets the
//! line with its sha256 (`[auth] keys`), which is all the server needs to
//! recognise it. Losing the key means making a new one.

use brandvoice::server::auth::{hash_key, new_key, Role};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Make a new key: prints the key once and the `[auth] keys` entry with its hash.
    New(NewArgs),
    /// Print the sha256 of an existing key read from stdin (for a config line).
    Hash,
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// Who holds the key (shown in logs instead of the key).
    #[arg(long)]
    name: String,
    #[arg(long, value_enum)]
    role: Role,
}

pub fn run(c: KeysCommand) -> anyhow::Result<ExitCode> {
    match c {
        KeysCommand::New(a) => {
            let name = a.name.trim();
            if name.is_empty() || name.len() > 100 || name.contains('"') || name.chars().any(char::is_control) {
                anyhow::bail!("--name: must be 1 to 100 characters without quotes or control characters, got {:?}", a.name);
            }
            let key = new_key();
            println!("key (shown once; give it to {name}, store it as a secret): {key}");
            println!("add to [auth] keys in brandvoice.toml (or auth.keys_file):");
            println!("  {{ name = \"{name}\", role = \"{}\", sha256 = \"{}\" }},", a.role, hash_key(&key));
        }
        KeysCommand::Hash => {
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            let key = key.trim();
            if key.is_empty() {
                anyhow::bail!("stdin: expected the key on one line, got nothing");
            }
            println!("{}", hash_key(key));
        }
    }
    Ok(ExitCode::SUCCESS)
}
