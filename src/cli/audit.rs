//! `brandvoice audit purge --older-than-days N` and `audit count`: the drafts
//! audit log in the store's SQLite file (see `brandvoice::store::drafts`).

use brandvoice::store::{self, drafts::DraftsAudit};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Delete audit rows older than N days.
    Purge(PurgeArgs),
    /// How many audit rows there are.
    Count(DbOnly),
}

#[derive(clap::Args)]
pub struct PurgeArgs {
    #[arg(long, value_name = "N")]
    older_than_days: u32,
    #[command(flatten)]
    db: DbOnly,
}

#[derive(clap::Args)]
pub struct DbOnly {
    /// The store (SQLite). Default: $BRANDVOICE_DB, else $BRANDVOICE_HOME/reviews.sqlite,
    /// else ~/.local/share/brandvoice/reviews.sqlite.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
}

impl DbOnly {
    fn open(&self) -> anyhow::Result<DraftsAudit> {
        Ok(DraftsAudit::open(self.db.clone().unwrap_or_else(store::default_db_path))?)
    }
}

pub fn run(c: AuditCommand) -> anyhow::Result<ExitCode> {
    match c {
        AuditCommand::Purge(a) => {
            let n = a.db.open()?.purge_older_than(a.older_than_days)?;
            println!("purged {n} audit rows older than {} days", a.older_than_days);
        }
        AuditCommand::Count(a) => println!("{}", a.open()?.count()?),
    }
    Ok(ExitCode::SUCCESS)
}
