//! The data directory: its layout, the lock that keeps a second process out, the admin token.
//!
//! The directory is its owner's alone: it is made 0700 and every file in it 0600 (the process
//! umask is 077 once it is opened, so the files SQLite and the search index make later are too),
//! and a directory or a file in it that other users could read refuses the start.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chronicle_store::checkpoint::{self, NoteSigner};
use chronicle_store::{Backend, Store, StoreConfig};
use rand::RngCore;

use crate::StorageArgs;

/// An opened data directory, locked for this process while the value lives.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    database_url: Option<String>,
    _lock: File,
}

impl DataDir {
    /// Creates the directory (0700) when missing, refuses it when it or an entry in it is open
    /// to other users, and takes its lock. From here on the process makes files for its owner
    /// only (umask 077). With a PostgreSQL `database_url` the log and read models live there,
    /// and the directory keeps the search index and key.
    pub fn open(root: &Path, database_url: Option<&str>) -> anyhow::Result<DataDir> {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("cannot create the data directory {}", root.display()))?;
        check_private(root)?;
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            bail!(
                "another chronicle process is using {}: stop it, or send events to it with `chronicle ingest --url`",
                root.display()
            );
        }
        Ok(DataDir {
            root: root.to_owned(),
            database_url: database_url.map(str::to_owned),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns where the log is: the PostgreSQL database, else DATA/chronicle.db.
    pub fn backend(&self) -> anyhow::Result<Backend> {
        Ok(Backend::from_url_or_path(
            self.database_url.as_deref(),
            &self.root.join("chronicle.db"),
        )?)
    }

    /// Returns the search index directory, DATA/index.
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index")
    }

    /// Returns the checkpoint signer: the key at `--signing-key`, else DATA/signing-key, made
    /// (mode 0600) on first start.
    pub fn signer(&self, storage: &StorageArgs) -> anyhow::Result<NoteSigner> {
        let path = storage
            .signing_key
            .clone()
            .unwrap_or_else(|| self.root.join("signing-key"));
        if path.exists() {
            check_entry(&path)?;
        }
        let (signer, created) = checkpoint::load_or_create_key_file(&path, &storage.origin)
            .with_context(|| format!("cannot load the signing key {}", path.display()))?;
        if created {
            eprintln!(
                "created the checkpoint signing key {} ({})",
                path.display(),
                signer.verifier_key()
            );
        }
        Ok(signer)
    }

    /// Opens the event log of this directory.
    pub async fn open_store(&self, storage: &StorageArgs) -> anyhow::Result<Store> {
        let backend = self.backend()?;
        let place = backend.describe();
        let mut config = StoreConfig::with_backend(backend, self.signer(storage)?);
        config.origin = storage.origin.clone();
        config.rotate_signing_key = storage.rotate_signing_key;
        Store::open(config)
            .await
            .with_context(|| format!("cannot open the event log at {place}"))
    }

    /// Returns the admin token: the one given, else the one in DATA/admin-token, else a new one
    /// written there (mode 0600) and reported as new so the caller prints it once.
    pub fn admin_token(&self, given: Option<&str>) -> anyhow::Result<AdminToken> {
        if let Some(token) = given {
            if token.trim().len() < 16 {
                bail!("CHRONICLE_ADMIN_TOKEN must be at least 16 characters");
            }
            return Ok(AdminToken {
                value: token.trim().to_owned(),
                created: false,
            });
        }
        let path = self.root.join("admin-token");
        match std::fs::read_to_string(&path) {
            Ok(token) if !token.trim().is_empty() => {
                return Ok(AdminToken {
                    value: token.trim().to_owned(),
                    created: false,
                });
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let value = format!(
            "chr_admin_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(file, "{value}")
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(AdminToken {
            value,
            created: true,
        })
    }
}

/// The permission bits that let other users than the owner in.
const SHARED_BITS: u32 = 0o077;

/// Refuses a data directory that others may read or enter, or that holds an entry they may
/// (the admin token, the signing key, the SQLite files, the search index), naming the path and
/// the `chmod` that fixes it.
fn check_private(root: &Path) -> anyhow::Result<()> {
    check_entry(root)?;
    let entries = std::fs::read_dir(root)
        .with_context(|| format!("cannot read the data directory {}", root.display()))?;
    for entry in entries {
        let entry =
            entry.with_context(|| format!("cannot read the data directory {}", root.display()))?;
        check_entry(&entry.path())?;
    }
    Ok(())
}

/// Refuses a file or directory (followed through a symbolic link) that other users may use.
fn check_entry(path: &Path) -> anyhow::Result<()> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        // Gone since it was listed (SQLite's -shm of a process that just stopped): nothing to
        // protect.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", path.display()));
        }
    };
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & SHARED_BITS == 0 {
        return Ok(());
    }
    let (what, fix) = if metadata.is_dir() {
        ("the directory", "chmod 700")
    } else {
        ("the file", "chmod 600")
    };
    bail!(
        "{what} {} is open to other users (mode {mode:o}): it holds the log, its tokens or its key, so chronicle refuses to start; run `{fix} {}` and start again",
        path.display(),
        path.display()
    )
}

/// The admin token and whether this start created it.
#[derive(Debug)]
pub struct AdminToken {
    pub value: String,
    pub created: bool,
}
