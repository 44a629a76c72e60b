//! Where the contexts file lives, and reading and writing it the way ssh treats its own files:
//! private to its owner, refused when others may read or change it, replaced atomically.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The config file: `$GATEHOUSE_CTL_CONFIG`, else `$XDG_CONFIG_HOME/gatehouse/config.toml`, else
/// `~/.config/gatehouse/config.toml`; `None` when none of these variables is set.
pub fn config_path() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    if let Some(path) = var("GATEHOUSE_CTL_CONFIG") {
        return Some(path);
    }
    // The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
    let config_home =
        var("XDG_CONFIG_HOME").filter(|dir| dir.is_absolute()).or_else(|| Some(var("HOME")?.join(".config")));
    Some(config_home?.join("gatehouse").join("config.toml"))
}

/// The file's text, or `None` when it does not exist. A file that its group or others may
/// read or write is refused: whoever can change it can send the operator's token elsewhere.
pub fn read_private(path: &Path) -> anyhow::Result<Option<String>> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "permissions {mode:04o} for {path} are too open: whoever can change it can send your token to another server; it must be private to you (chmod 600 {path})",
            path = path.display()
        );
    }
    std::fs::read_to_string(path).map(Some).with_context(|| format!("cannot read {}", path.display()))
}

/// Replaces the file with `text`: written to a temporary file (0600) beside it, flushed, then
/// renamed over it, so a reader sees the old file or the new one, never half of one. A missing
/// directory is created 0700.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let name = path.file_name().map_or("config.toml".into(), |n| n.to_string_lossy().into_owned());
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = write_new(&temporary, text).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error).with_context(|| format!("cannot write {}", path.display()));
    }
    // The rename is durable once the folder is; failing to sync it loses nothing written.
    let _ = File::open(dir).and_then(|dir| dir.sync_all());
    Ok(())
}

/// Creates `path` (0600; never an existing file or a link) holding `text`, flushed to disk.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    // A leftover of a crashed run with the same process id.
    let _ = std::fs::remove_file(path);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_are_private_and_loose_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/gatehouse/config.toml");
        assert_eq!(read_private(&path).unwrap(), None);
        write_private(&path, "a = 1\n").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(read_private(&path).unwrap().as_deref(), Some("a = 1\n"));
        write_private(&path, "a = 2\n").unwrap();
        assert_eq!(read_private(&path).unwrap().as_deref(), Some("a = 2\n"));
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = read_private(&path).unwrap_err().to_string();
        assert!(error.contains("permissions 0640") && error.contains("chmod 600"), "{error}");
    }
}
