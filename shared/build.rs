//! Records which git commit this build comes from, for every binary's `--version`
//! (`gatehouse_shared::VERSION`): `git rev-parse --short=12 HEAD` and that commit's date; in a
//! build without a checkout (a tarball, a source package) `GATEHOUSE_GIT_COMMIT` and
//! `GATEHOUSE_GIT_DATE`, else "unknown". Reruns only when HEAD moves or those variables change,
//! not on every edit.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GATEHOUSE_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=GATEHOUSE_GIT_DATE");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let (commit, date) = match git(&dir, &["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            watch_head(&dir);
            (commit, git(&dir, &["log", "-1", "--format=%cs", "HEAD"]))
        }
        None => {
            (variable("GATEHOUSE_GIT_COMMIT").unwrap_or_else(|| "unknown".to_owned()), variable("GATEHOUSE_GIT_DATE"))
        }
    };
    let described = match date {
        Some(date) => format!("{commit}, {date}"),
        None => commit,
    };
    println!("cargo:rustc-env=GATEHOUSE_BUILD_GIT={described}");
}

/// Reruns this script when HEAD moves: HEAD itself (a checkout) and the branch it points to (a
/// commit), loose or packed. git resolves the paths, worktrees included.
fn watch_head(dir: &Path) {
    let mut files = vec!["HEAD".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        files.push(branch);
        files.push("packed-refs".to_owned());
    }
    for file in files {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &file]) {
            let path = dir.join(path);
            // A missing file would make cargo rerun this script on every build.
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

/// `git ARGS` run in `dir`: its trimmed output, or `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).current_dir(dir).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

/// A non-empty environment variable.
fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|value| value.trim().to_owned()).filter(|value| !value.is_empty())
}
