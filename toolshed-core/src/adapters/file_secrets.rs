//! A [`SecretStore`] in encrypted local files: the local backend's counterpart of AWS Secrets
//! Manager.
//!
//! Layout under the root (the data directory's `secrets/`):
//! - `key`: 32 random bytes made on first use, mode 0600;
//! - `<sha256 of the owner's path>.sec`: one file per owner, mode 0600, holding a random 24-byte
//!   nonce and the XChaCha20-Poly1305 encryption of the owner's values (JSON), with the owner's
//!   path as associated data, so a file copied onto another owner's name does not decrypt.
//!
//! What this protects: values never sit in plain text on disk (not in the database, not in
//! these files), so a copied database, a backup without the key file or a stray `grep` over the
//! data directory shows no value. What it does not: anyone who can read the key file (the same
//! user, root) can decrypt every value; keep the data directory private.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::domain::InstanceEnv;
use crate::error::{Error, Result};
use crate::ports::{SecretOwner, SecretStore};

/// Name of the directory below the data directory.
pub const SECRETS_DIR: &str = "secrets";
/// Name of the key file in the store's root.
pub const KEY_FILE: &str = "key";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const BACKEND: &str = "secret-files";

/// Secret values in encrypted files under a root directory (created with mode 0700).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use toolshed_core::adapters::file_secrets::FileSecretStore;
/// use toolshed_core::domain::{InstanceEnv, ServerId};
/// use toolshed_core::ports::{SecretOwner, SecretStore};
///
/// let root = std::env::temp_dir().join(format!("toolshed-secrets-doc-{}", std::process::id()));
/// let store = FileSecretStore::new(&root);
/// let owner = SecretOwner::ServerTestValues(ServerId::new("time").unwrap());
/// let values = InstanceEnv::parse_assignments(["API_KEY=s3cret"]).unwrap();
/// store.put(&owner, &values).await.unwrap();
/// assert_eq!(store.get(&owner).await.unwrap(), Some(values));
/// # std::fs::remove_dir_all(root).unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct FileSecretStore {
    root: PathBuf,
}

impl std::fmt::Debug for FileSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSecretStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl FileSecretStore {
    /// A store rooted at `root` (created, with its key, on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store of a data directory: `<data dir>/secrets`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join(SECRETS_DIR))
    }

    fn file(&self, owner: &SecretOwner) -> PathBuf {
        let name = hex::encode(Sha256::digest(owner.path().as_bytes()));
        self.root.join(format!("{name}.sec"))
    }

    /// The cipher, making the root and the key on first use (`create`), else `None` when
    /// there is no key yet (so nothing was ever stored).
    fn cipher(&self, create: bool) -> Result<Option<XChaCha20Poly1305>> {
        let path = self.root.join(KEY_FILE);
        match fs::read(&path) {
            Ok(key) if key.len() == KEY_LEN => {
                return XChaCha20Poly1305::new_from_slice(&key)
                    .map(Some)
                    .map_err(|_| fail("read_key", None, "the key file is not a valid key"));
            }
            Ok(_) => {
                return Err(fail(
                    "read_key",
                    None,
                    format!("the key file {} is not {KEY_LEN} bytes", path.display()),
                ))
            }
            Err(e) if e.kind() == ErrorKind::NotFound && create => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read_key", None, e)),
        }
        fs::create_dir_all(&self.root).map_err(|e| io("create_dir", None, e))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("create_dir", None, e))?;
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key)
            .map_err(|e| fail("make_key", None, format!("no randomness from the OS: {e}")))?;
        // create_new: two processes making the key at once must not each use their own.
        match write_private(&path, &key, true) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return self.cipher(false),
            Err(e) => return Err(io("make_key", None, e)),
        }
        XChaCha20Poly1305::new_from_slice(&key)
            .map(Some)
            .map_err(|_| fail("make_key", None, "a fresh key was refused"))
    }

    fn put_blocking(&self, owner: &SecretOwner, values: &InstanceEnv) -> Result<()> {
        let id = Some(owner.path());
        let cipher = self
            .cipher(true)?
            .ok_or_else(|| fail("put", id.clone(), "no key"))?;
        let plain: BTreeMap<&str, &str> = values.exposed().collect();
        let plain =
            serde_json::to_vec(&plain).map_err(|e| fail("put", id.clone(), e.to_string()))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| fail("put", id.clone(), format!("no randomness from the OS: {e}")))?;
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: owner.path().as_bytes(),
                },
            )
            .map_err(|_| fail("put", id.clone(), "encryption failed"))?;
        let mut content = nonce.to_vec();
        content.extend_from_slice(&sealed);
        // Written beside the target and renamed over it: a reader sees the old or the new
        // values, never half of them.
        let target = self.file(owner);
        let temp = target.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        write_private(&temp, &content, true).map_err(|e| io("put", id.clone(), e))?;
        fs::rename(&temp, &target).map_err(|e| {
            let _ = fs::remove_file(&temp);
            io("put", id, e)
        })
    }

    fn get_blocking(&self, owner: &SecretOwner) -> Result<Option<InstanceEnv>> {
        let id = Some(owner.path());
        let content = match fs::read(self.file(owner)) {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("get", id, e)),
        };
        let Some(cipher) = self.cipher(false)? else {
            return Err(fail(
                "get",
                id,
                "values are stored but the key file is missing",
            ));
        };
        if content.len() < NONCE_LEN {
            return Err(fail("get", id, "the stored file is truncated"));
        }
        let (nonce, sealed) = content.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: owner.path().as_bytes(),
                },
            )
            .map_err(|_| {
                fail(
                    "get",
                    id.clone(),
                    "the stored values do not decrypt (another key, or a changed file)",
                )
            })?;
        let pairs: BTreeMap<String, String> = serde_json::from_slice(&plain)
            .map_err(|_| fail("get", id.clone(), "the stored values are not a name map"))?;
        // Never echo what failed to parse: it may be a value.
        InstanceEnv::from_exposed(pairs)
            .map(Some)
            .map_err(|_| fail("get", id, "a stored name or value is invalid"))
    }

    fn delete_blocking(&self, owner: &SecretOwner) -> Result<()> {
        match fs::remove_file(self.file(owner)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("delete", Some(owner.path()), e)),
        }
    }
}

/// Writes `content` to a new file readable by its owner only.
fn write_private(path: &Path, content: &[u8], create_new: bool) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(create_new)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

fn fail(operation: &'static str, id: Option<String>, detail: impl Into<String>) -> Error {
    Error::backend(BACKEND, operation, id, false, detail.into())
}

fn io(operation: &'static str, id: Option<String>, e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::PermissionDenied => Error::PermissionDenied {
            backend: BACKEND,
            operation,
            detail: e.to_string(),
        },
        _ => Error::backend(BACKEND, operation, id, false, e),
    }
}

async fn blocking<T: Send + 'static>(
    operation: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| fail(operation, None, format!("the file task failed: {e}")))?
}

#[async_trait]
impl SecretStore for FileSecretStore {
    async fn put(&self, owner: &SecretOwner, values: &InstanceEnv) -> Result<()> {
        let (store, owner, values) = (self.clone(), owner.clone(), values.clone());
        blocking("put", move || store.put_blocking(&owner, &values)).await
    }

    async fn get(&self, owner: &SecretOwner) -> Result<Option<InstanceEnv>> {
        let (store, owner) = (self.clone(), owner.clone());
        blocking("get", move || store.get_blocking(&owner)).await
    }

    async fn delete(&self, owner: &SecretOwner) -> Result<()> {
        let (store, owner) = (self.clone(), owner.clone());
        blocking("delete", move || store.delete_blocking(&owner)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ServerId;
    use crate::testing::conformance::check_secret_store;

    fn root(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "toolshed-secrets-{tag}-{}",
            uuid::Uuid::new_v4().simple()
        ))
    }

    #[tokio::test]
    async fn conforms() {
        let dir = root("conf");
        check_secret_store(&FileSecretStore::new(&dir)).await;
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn files_are_private_and_hold_no_plain_value() {
        let dir = root("disk");
        let store = FileSecretStore::new(&dir);
        let owner = SecretOwner::ServerTestValues(ServerId::new("time").unwrap());
        let values = InstanceEnv::parse_assignments(["API_KEY=plain-needle-0451"]).unwrap();
        store.put(&owner, &values).await.unwrap();
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
            let bytes = fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("plain-needle-0451"), "{}", path.display());
            assert!(!text.contains("API_KEY"), "{}", path.display());
        }
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // Another store on the same directory (a restart) reads them back.
        let again = FileSecretStore::new(&dir);
        assert_eq!(again.get(&owner).await.unwrap(), Some(values));
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_file_moved_to_another_owner_or_another_key_does_not_decrypt() {
        let dir = root("swap");
        let store = FileSecretStore::new(&dir);
        let a = SecretOwner::ServerTestValues(ServerId::new("aaa").unwrap());
        let b = SecretOwner::ServerTestValues(ServerId::new("bbb").unwrap());
        let values = InstanceEnv::parse_assignments(["K=needle-7781"]).unwrap();
        store.put(&a, &values).await.unwrap();
        fs::copy(store.file(&a), store.file(&b)).unwrap();
        let err = store.get(&b).await.unwrap_err();
        assert!(err.to_string().contains("do not decrypt"), "{err}");
        assert!(!err.to_string().contains("needle-7781"), "{err}");
        fs::write(dir.join(KEY_FILE), [7u8; KEY_LEN]).unwrap();
        assert!(store.get(&a).await.is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
