//! The secret store: named values sealed with an age X25519 key kept in
//! `DATA_DIR/secrets.key` (0600), one row each in the `secrets` table.
//!
//! Flow: an area stores a value ([`Secrets::create`]); what it shows the world is the
//! [`SecretInfo`] (id, name, time), never the value. Only code that needs the value (a
//! provisioning run typing a password) calls [`Secrets::value`], and must redact it from
//! whatever it logs. [`Secrets::seal`]/[`Secrets::open`] seal other data (a run's variables)
//! with the same key, so a copy of the database alone reveals nothing.
//!
//! Backups carry `secrets.key` with the store (docs/certificates-storage-backup.md): a backup
//! restored elsewhere opens its secrets; after a restore the system area calls
//! [`Secrets::reload`] so the running daemon seals and opens with the restored key.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use rusqlite::{OptionalExtension, params};

use crate::error::{ApiError, ApiResult};
use crate::platform::store::Store;
use crate::platform::time;

pub struct Secrets {
    identity: std::sync::RwLock<age::x25519::Identity>,
}

/// A secret as anyone may see it: no value.
#[derive(Debug, Clone)]
pub struct SecretInfo {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

impl Secrets {
    /// Loads the key from `dir/secrets.key`, creating it (0600) on first use.
    pub fn open_dir(dir: &Path) -> anyhow::Result<Secrets> {
        Ok(Secrets {
            identity: std::sync::RwLock::new(Self::load(dir)?),
        })
    }

    /// Reads the key again (a restore replaced `secrets.key`; a backup without one leaves a
    /// new key, as on a first start).
    pub fn reload(&self, dir: &Path) -> anyhow::Result<()> {
        let id = Self::load(dir)?;
        *self.identity.write().unwrap_or_else(|p| p.into_inner()) = id;
        Ok(())
    }

    fn identity(&self) -> std::sync::RwLockReadGuard<'_, age::x25519::Identity> {
        self.identity.read().unwrap_or_else(|p| p.into_inner())
    }

    fn load(dir: &Path) -> anyhow::Result<age::x25519::Identity> {
        let path = dir.join("secrets.key");
        let identity = match std::fs::read_to_string(&path) {
            Ok(s) => age::x25519::Identity::from_str(s.trim())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = age::x25519::Identity::generate();
                let tmp = dir.join("secrets.key.tmp");
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&tmp)?;
                    f.write_all(id.to_string().expose_secret().as_bytes())?;
                    f.sync_all()?;
                }
                std::fs::rename(&tmp, &path)?;
                id
            }
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        Ok(identity)
    }

    /// A store for tests: a fresh key in memory.
    pub fn ephemeral() -> Secrets {
        Secrets {
            identity: std::sync::RwLock::new(age::x25519::Identity::generate()),
        }
    }

    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        age::encrypt(&self.identity().to_public(), plain).expect("age encrypts to a valid key")
    }

    pub fn open(&self, sealed: &[u8]) -> ApiResult<Vec<u8>> {
        age::decrypt(&*self.identity(), sealed)
            .map_err(|e| ApiError::internal(format!("cannot open a sealed value: {e}")))
    }

    pub fn create(&self, store: &Store, name: &str, value: &str) -> ApiResult<SecretInfo> {
        let info = SecretInfo {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            created_at: time::now_string(),
        };
        let sealed = self.seal(value.as_bytes());
        let res = store.write(|tx| {
            tx.execute(
                "INSERT INTO secrets(id, name, sealed, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![info.id, info.name, sealed, info.created_at],
            )
        });
        match res {
            Ok(_) => Ok(info),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(ApiError::conflict(
                    "secret_exists",
                    format!("a secret named {name:?} exists; delete it first"),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn list(&self, store: &Store) -> ApiResult<Vec<SecretInfo>> {
        Ok(store.read(|c| {
            let mut st = c.prepare("SELECT id, name, created_at FROM secrets ORDER BY name")?;
            st.query_map([], |r| {
                Ok(SecretInfo {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })?
            .collect()
        })?)
    }

    /// By id or name.
    pub fn info(&self, store: &Store, key: &str) -> ApiResult<SecretInfo> {
        self.list(store)?
            .into_iter()
            .find(|s| s.id == key || s.name == key)
            .ok_or_else(|| ApiError::not_found(format!("secret {key:?}")))
    }

    /// The value, for the code that must use it.
    pub fn value(&self, store: &Store, key: &str) -> ApiResult<String> {
        let sealed: Option<Vec<u8>> = store.read(|c| {
            c.query_row(
                "SELECT sealed FROM secrets WHERE id = ?1 OR name = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
        })?;
        let sealed = sealed.ok_or_else(|| ApiError::not_found(format!("secret {key:?}")))?;
        String::from_utf8(self.open(&sealed)?).map_err(ApiError::internal)
    }

    pub fn delete(&self, store: &Store, key: &str) -> ApiResult<SecretInfo> {
        let info = self.info(store, key)?;
        store.write(|tx| tx.execute("DELETE FROM secrets WHERE id = ?1", [&info.id]))?;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let a = Secrets::open_dir(dir.path()).unwrap();
        let sealed = a.seal(b"hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        let b = Secrets::open_dir(dir.path()).unwrap();
        assert_eq!(b.open(&sealed).unwrap(), b"hunter2");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secrets.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
