//! Where cone keeps its files, and how it writes them: atomically (temporary file + rename) and mode 0600.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub fn home() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => bail!("HOME is not set; cone keeps its settings and the AWS caches under your home directory"),
    }
}

/// `~/.conductorone`.
pub fn cone_dir() -> Result<PathBuf> {
    Ok(home()?.join(".conductorone"))
}

/// The AWS config file, as the AWS CLI finds it.
pub fn aws_config_path() -> Result<PathBuf> {
    match std::env::var_os("AWS_CONFIG_FILE") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            Ok(match p.strip_prefix("~") {
                Ok(rest) => home()?.join(rest),
                Err(_) => p,
            })
        }
        _ => Ok(home()?.join(".aws/config")),
    }
}

/// Reads a file that may not exist yet.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Removes a file; false when it was not there.
pub fn remove(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

pub struct Lock {
    _file: std::fs::File,
}

/// Holds an exclusive lock on `~/.conductorone/locks/NAME.lock` until dropped. The lock is the kernel's
/// (`flock`), so a process that dies, even by SIGKILL, releases it. Waits while another process holds it.
pub fn lock(name: &str) -> Result<Lock> {
    lock_in(&cone_dir()?.join("locks"), name)
}

fn lock_in(dir: &Path, name: &str) -> Result<Lock> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!(
                    "another cone process has held {} for 10 minutes; if none is running, delete the file",
                    path.display()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::from(e).context(format!("cannot lock {}", path.display())));
            }
        }
    }
}

/// Replaces `path` with `contents` so that readers see the old or the new file, never a mix; mode 0600. The
/// temporary file beside it is new (`O_EXCL`, random name), so nothing planted there in advance, such as a link to
/// another file, is written through.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().context("file path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("cone");
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)?;
        tmp.write_all(contents)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| anyhow::Error::from(e).context(format!("cannot write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_atomic_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.json");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        assert_eq!(read_optional(&dir.path().join("missing")).unwrap(), None);
    }

    #[test]
    fn a_link_planted_where_the_temporary_file_used_to_be_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("token.json");
        // The name the temporary file once had: predictable from the process id.
        let planted = dir.path().join(format!(".token.json.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_private(&path, b"secret").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
    }

    #[test]
    fn locks_exclude_each_other_and_release_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_in(dir.path(), "x").unwrap();
        let path = dir.path().join("x.lock");
        let other = std::fs::File::open(&path).unwrap();
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        drop(first);
        other.try_lock().unwrap();
    }
}
