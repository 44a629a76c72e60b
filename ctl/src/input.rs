//! What gatehousectl reads besides its flags: input files (capped in size), the PFX password,
//! policy XML, named values and declarations.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};

use crate::args::PasswordSource;

/// The most gatehousectl reads from one input file: the control plane's default gRPC message
/// limit, so nothing larger is sent only to be refused.
const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// Reads an input file (PFX, CA certificate, policy, password), refusing one over the limit
/// before reading it; the OS reason is kept when it cannot be read.
pub fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        bail!(
            "{} is larger than {} MiB; gatehousectl reads no larger input file",
            path.display(),
            MAX_INPUT_BYTES >> 20
        );
    }
    Ok(bytes)
}

/// The PFX password from its file or stdin, without one trailing newline (LF or CRLF); empty
/// with --empty-password.
pub fn read_password(source: PasswordSource) -> anyhow::Result<String> {
    let mut raw = if let Some(path) = source.password_file {
        String::from_utf8(read_input(&path)?)
            .with_context(|| format!("password file {} is not UTF-8", path.display()))?
    } else if source.password_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the password from stdin")?;
        text
    } else {
        String::new()
    };
    strip_one_newline(&mut raw);
    Ok(raw)
}

/// A named value's value from a file, or from stdin when the path is "-", without one
/// trailing newline (LF or CRLF): files and `echo` end with one that is not part of the value.
pub fn read_named_value(path: &Path) -> anyhow::Result<String> {
    let mut text = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .context("cannot read the value from stdin")?;
        anyhow::ensure!(
            bytes.len() as u64 <= MAX_INPUT_BYTES,
            "stdin holds more than {} MiB; gatehousectl reads no larger input",
            MAX_INPUT_BYTES >> 20
        );
        String::from_utf8(bytes).context("the value on stdin is not UTF-8 text")?
    } else {
        String::from_utf8(read_input(path)?).with_context(|| format!("{} is not UTF-8 text", path.display()))?
    };
    strip_one_newline(&mut text);
    Ok(text)
}

/// Drops one trailing LF or CRLF, if there is one; a second newline is kept (and then refused
/// by whoever checks the text, rather than silently lost).
fn strip_one_newline(text: &mut String) {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
}

/// A declaration (YAML or JSON) from a file, or from stdin when the path is "-"; capped in size
/// like every input file.
pub fn read_declaration(path: &Path) -> anyhow::Result<String> {
    let bytes = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .context("cannot read the declaration from stdin")?;
        anyhow::ensure!(
            bytes.len() as u64 <= MAX_INPUT_BYTES,
            "stdin holds more than {} MiB; gatehousectl reads no larger input",
            MAX_INPUT_BYTES >> 20
        );
        bytes
    } else {
        read_input(path)?
    };
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// Policy XML from a file, or from stdin when the path is "-".
pub fn read_policy(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the policy from stdin")?;
        Ok(text)
    } else {
        String::from_utf8(read_input(path)?).with_context(|| format!("{} is not UTF-8 text", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw.txt");
        std::fs::write(&path, "secret\r\n").unwrap();
        let source =
            || PasswordSource { password_file: Some(path.clone()), password_stdin: false, empty_password: false };
        assert_eq!(read_password(source()).unwrap(), "secret");
        std::fs::write(&path, "secret\n\n").unwrap();
        assert_eq!(read_password(source()).unwrap(), "secret\n");
    }

    #[test]
    fn a_named_value_file_loses_one_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("value.txt");
        std::fs::write(&path, "svc-orders\r\n").unwrap();
        assert_eq!(read_named_value(&path).unwrap(), "svc-orders");
        std::fs::write(&path, "no newline").unwrap();
        assert_eq!(read_named_value(&path).unwrap(), "no newline");
        std::fs::write(&path, "two\n\n").unwrap();
        assert_eq!(read_named_value(&path).unwrap(), "two\n");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_named_value(&path).unwrap_err().to_string().contains("not UTF-8"));
    }

    #[test]
    fn an_input_file_over_the_limit_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pfx");
        std::fs::write(&path, vec![0u8; MAX_INPUT_BYTES as usize + 1]).unwrap();
        let error = read_input(&path).unwrap_err().to_string();
        assert!(error.contains("big.pfx is larger than 4 MiB"), "{error}");
        std::fs::write(&path, vec![0u8; MAX_INPUT_BYTES as usize]).unwrap();
        assert_eq!(read_input(&path).unwrap().len() as u64, MAX_INPUT_BYTES);
    }
}
