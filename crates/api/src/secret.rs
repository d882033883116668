//! The shared secret that signs requests: where it is found, and the
//! checks that keep it secret.
//!
//! Looked for in order: the environment variable `[api] secret_env`
//! (default `GRAFT_API_SECRET`), the file `[api] secret_file`, and
//! `.graft/api-secret`, which `graft run` creates (random, mode 0600) when
//! neither is set. A file anyone but its owner can read is refused: a
//! secret others can read signs their requests too.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use graft_config::ApiConfig;

/// Shorter secrets are refused.
pub const MIN_LEN: usize = 16;

/// The shared secret (its bytes, as given: surrounding whitespace is
/// trimmed). Never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A secret from text (trimmed), refused when too short.
    pub fn new(text: &str, from: &str) -> Result<Secret, String> {
        let t = text.trim();
        if t.len() < MIN_LEN {
            return Err(format!(
                "the API secret in {from} is {} characters long; use at least {MIN_LEN} (for example `openssl rand -hex 32`)",
                t.len()
            ));
        }
        Ok(Secret(t.as_bytes().to_vec()))
    }
}

/// Where the secret came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Env(String),
    File(PathBuf),
    /// Made by `graft run` just now.
    Generated(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env(v) => write!(f, "${v}"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Generated(p) => write!(f, "{} (new)", p.display()),
        }
    }
}

/// The path of the secret `graft run` makes when none is configured.
pub fn default_file(root: &Path) -> PathBuf {
    root.join(".graft").join("api-secret")
}

/// Find the secret for the repo at `root`; make `.graft/api-secret` when
/// none is set and `generate` is true.
pub fn load(root: &Path, config: &ApiConfig, generate: bool) -> Result<(Secret, Source), String> {
    let var = config.secret_env.as_str();
    if let Ok(value) = std::env::var(var)
        && !value.trim().is_empty()
    {
        return Ok((
            Secret::new(&value, &format!("${var}"))?,
            Source::Env(var.to_string()),
        ));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Some(file) = &config.secret_file {
        let path = file.resolve(root, home.as_deref());
        return Ok((read_file(&path)?, Source::File(path)));
    }
    let path = default_file(root);
    if path.exists() {
        return read_file(&path).map(|s| (s, Source::File(path)));
    }
    if !generate {
        return Err(format!(
            "no API secret: set ${var}, or `secret_file` in [api], or start `graft run` once (it writes {})",
            path.display()
        ));
    }
    let text = hex::encode(rand::random::<[u8; 32]>());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot create the API secret {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write the API secret {}: {e}", path.display()))?;
    Ok((Secret(text.into_bytes()), Source::Generated(path)))
}

/// Read a secret file, refusing one that others can read.
pub fn read_file(path: &Path) -> Result<Secret, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the API secret file {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "the API secret file {} is not a regular file",
            path.display()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the API secret file {} can be read by other users (mode {mode:04o}); make it private with `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the API secret file {}: {e}", path.display()))?;
    Secret::new(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ApiConfig {
        graft_config::Config::parse(Path::new("graft.toml"), text)
            .unwrap()
            .api
    }

    #[test]
    fn a_readable_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "0123456789abcdef0123").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_file(&p).unwrap_err();
        assert_eq!(
            e,
            format!(
                "the API secret file {} can be read by other users (mode 0644); make it private with `chmod 600 {}`",
                p.display(),
                p.display()
            )
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_file(&p).unwrap_err().contains("(mode 0640)"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_file(&p).unwrap().bytes(), b"0123456789abcdef0123");
    }

    #[test]
    fn a_short_secret_is_refused() {
        let e = Secret::new("  short\n", "$X").unwrap_err();
        assert_eq!(
            e,
            "the API secret in $X is 5 characters long; use at least 16 (for example `openssl rand -hex 32`)"
        );
    }

    #[test]
    fn a_secret_is_generated_once_private_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let c = config("[api]\nsecret_env = \"GRAFT_TEST_SECRET_NEVER_SET\"\n");
        let e = load(dir.path(), &c, false).unwrap_err();
        assert!(
            e.starts_with("no API secret: set $GRAFT_TEST_SECRET_NEVER_SET"),
            "{e}"
        );
        let (s, src) = load(dir.path(), &c, true).unwrap();
        assert!(matches!(src, Source::Generated(_)));
        let mode = std::fs::metadata(default_file(dir.path()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(s.bytes().len(), 64);
        let (again, src) = load(dir.path(), &c, true).unwrap();
        assert_eq!(again.bytes(), s.bytes());
        assert!(matches!(src, Source::File(_)));
    }

    #[test]
    fn a_configured_file_is_used_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, "from-the-file-0123456\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = config(&format!(
            "[api]\nsecret_env = \"GRAFT_TEST_SECRET_NEVER_SET\"\nsecret_file = \"{}\"\n",
            p.display()
        ));
        let (s, src) = load(dir.path(), &c, true).unwrap();
        assert_eq!(s.bytes(), b"from-the-file-0123456");
        assert_eq!(src, Source::File(p.clone()));
        assert!(!default_file(dir.path()).exists(), "nothing generated");
    }
}
