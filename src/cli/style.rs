//! `brandvoice guide check | guide schema`, `brandvoice lint`, `brandvoice fix`.
//!
//! Thin: parse, load the style book, validate the request, call the library,
//! print. Lint output is Vale's line format (`file:line:col:level:Check:msg`)
//! or JSON; the exit status is 1 when an error-level violation is found, 0
//! otherwise, and 2 for bad usage or a bad guide (main maps `Err` to 2).

use anyhow::Context;
use brandvoice::style::guide::StyleGuide;
use brandvoice::style::lint::{check_guide, RulePack, Shared};
use brandvoice::style::schema::{load_file, schema_of, GuideProblem};
use brandvoice::style::channel::ChannelBook;
use brandvoice::style::mood::MoodBook;
use brandvoice::style::{default_prompts_dir, Fact, Level, LintRequest, StyleBook};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum GuideCommand {
    /// Check guide files (brands, channels.yaml, moods.yaml, rule packs) and report every problem.
    Check {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The prompts folder with channels.yaml, moods.yaml and rules/ (default: the files' own, else BRANDVOICE_PROMPTS or ./prompts).
        #[arg(long)]
        prompts: Option<PathBuf>,
    },
    /// Print the JSON Schema of a brand guide (committed as prompts/brand.schema.json).
    Schema,
}

pub use super::Format;

#[derive(clap::Args)]
pub struct LintArgs {
    /// Brand id (a file in prompts/brands/).
    #[arg(long)]
    brand: String,
    /// Channel id from prompts/channels.yaml.
    #[arg(long)]
    channel: String,
    /// Customer mood from prompts/moods.yaml (default neutral).
    #[arg(long)]
    mood: Option<String>,
    /// Reply language (ISO 639-1); detected when omitted.
    #[arg(long = "lang")]
    lang: Option<String>,
    /// A fact the reply must carry (repeatable).
    #[arg(long = "fact")]
    facts: Vec<String>,
    /// A link the reply must carry (repeatable).
    #[arg(long = "link")]
    links: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The prompts folder (default: BRANDVOICE_PROMPTS, else the crate's prompts/).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// File with the reply, or `-` for standard input.
    file: String,
}

#[derive(clap::Args)]
pub struct FixArgs {
    #[command(flatten)]
    lint: LintArgs,
}

fn prompts_dir(p: &Option<PathBuf>) -> PathBuf {
    p.clone().unwrap_or_else(|| {
        let local = PathBuf::from("prompts");
        if local.join("channels.yaml").exists() { local } else { default_prompts_dir() }
    })
}

fn print_problems(problems: &[GuideProblem]) {
    for p in problems {
        eprintln!("{p}");
    }
}

/// What kind of file a path is, by its name and folder.
fn check_one(file: &Path, prompts: &Path, shared: &Result<Shared, Vec<GuideProblem>>) -> Vec<GuideProblem> {
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let in_rules = file.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "rules");
    if name == "channels.yaml" {
        return load_file::<ChannelBook>(file).err().unwrap_or_default();
    }
    if name == "moods.yaml" {
        return load_file::<MoodBook>(file).err().unwrap_or_default();
    }
    if in_rules {
        return load_file::<RulePack>(file).err().unwrap_or_default();
    }
    match load_file::<StyleGuide>(file) {
        Err(p) => p,
        Ok((g, doc)) => match shared {
            Ok(s) => check_guide(&g, &doc, s),
            Err(_) => vec![GuideProblem {
                file: file.display().to_string(),
                path: String::new(),
                line: 0,
                column: 0,
                message: format!("cannot check references: the shared files in {} have problems (listed above)", prompts.display()),
            }],
        },
    }
}

pub fn guide(c: GuideCommand) -> anyhow::Result<ExitCode> {
    match c {
        GuideCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&schema_of::<StyleGuide>())?);
            Ok(ExitCode::SUCCESS)
        }
        GuideCommand::Check { files, prompts } => {
            // The prompts folder: given, or the one the first file lives in.
            let dir = prompts.clone().or_else(|| {
                files.first().and_then(|f| {
                    f.ancestors().skip(1).find(|a| a.join("channels.yaml").exists()).map(Path::to_path_buf)
                })
            });
            let dir = prompts_dir(&dir);
            let shared = Shared::load(&dir);
            let mut total = 0;
            if let Err(p) = &shared {
                print_problems(p);
                total += p.len();
            }
            for f in &files {
                let p = check_one(f, &dir, &shared);
                if p.is_empty() {
                    println!("ok: {}", f.display());
                } else {
                    print_problems(&p);
                    total += p.len();
                }
            }
            if total > 0 {
                eprintln!("{total} problem(s) found");
                Ok(ExitCode::from(2))
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn read_input(file: &str) -> anyhow::Result<(String, String)> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading standard input")?;
        Ok(("stdin".into(), s))
    } else {
        let s = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        Ok((file.to_string(), s))
    }
}

fn load(a: &LintArgs) -> anyhow::Result<(StyleBook, String, String, brandvoice::style::ValidLintRequest)> {
    let book = StyleBook::load(prompts_dir(&a.prompts))?;
    let (name, text) = read_input(&a.file)?;
    let mut facts: Vec<Fact> = a.facts.iter().map(|t| Fact { text: t.clone(), url: None }).collect();
    facts.extend(a.links.iter().map(|u| Fact { text: String::new(), url: Some(u.clone()) }));
    let req = LintRequest { brand: a.brand.clone(), channel: a.channel.clone(), mood: a.mood.clone(), language: a.lang.clone(), facts };
    let valid = book.validate(&req, &text)?;
    Ok((book, name, text, valid))
}

pub fn lint(a: LintArgs) -> anyhow::Result<ExitCode> {
    let (book, name, text, req) = load(&a)?;
    let vs = book.lint(&req, &text);
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&vs)?),
        Format::Text => {
            for v in &vs {
                println!("{name}:{}:{}:{}:{}:{}", v.span.line, v.span.column, v.level, v.check, v.message);
            }
        }
    }
    Ok(if vs.iter().any(|v| v.level == Level::Error) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

pub fn fix(a: FixArgs) -> anyhow::Result<ExitCode> {
    let (book, _name, text, req) = load(&a.lint)?;
    let (fixed, applied) = book.fix(&req, &text);
    match a.lint.format {
        Format::Json => {
            let remaining = book.lint(&req, &fixed);
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "text": fixed, "applied": applied, "remaining": remaining }))?);
        }
        Format::Text => {
            print!("{fixed}");
            if !fixed.ends_with('\n') {
                println!();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
