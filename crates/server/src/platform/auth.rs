//! Credentials: users, API tokens, sessions, the Jidoteki admin-API token, and who a caller is.
//!
//! Flow: the HTTP auth layer (`http::auth_layer`) pulls one credential out of a request and
//! calls [`Auth::authenticate_token`] / [`Auth::authenticate_admin_api`]; the answer is a
//! [`Principal`] that handlers read for role and scope checks.
//!
//! Tokens are `hp_<id>_<secret>`: the id gives an O(1) lookup in an in-memory table loaded from
//! the store, the secret is 256 random bits stored only as its SHA-256 and compared in constant
//! time. A fast hash is right here because the secret is random, not a password; passwords use
//! argon2id. `last_used_at` is kept in memory and flushed to the store every few seconds, so an
//! authenticated GET never writes to SQLite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use ::time::OffsetDateTime;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use hmac::{Hmac, KeyInit, Mac};
use hostplane_types::auth::{AuthMethod, Role, Token, TokenKind, User, Whoami};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::platform::store::Store;
use crate::platform::time;

pub const TOKEN_PREFIX: &str = "hp_";
/// The settings key holding hex(SHA-256(admin API token)); also the HMAC key, per Jidoteki.
pub const ADMIN_API_KEY_SETTING: &str = "admin_api_token_sha256";
/// The principal name of the Jidoteki admin-API credential.
pub const ADMIN_API_USER: &str = "admin-api";

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    pub method: AuthMethod,
    pub token_id: Option<String>,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this operation needs role {} (you have {})",
                role.as_str(),
                self.role.as_str()
            )))
        }
    }

    /// Whether the credential's scopes allow `area` for reading or writing. A scoped
    /// credential reaches an area of [`EXPLICIT_SCOPES`] only when it names that area.
    pub fn scope_allows(&self, area: &str, write: bool) -> bool {
        if self.scopes.is_empty() {
            return true;
        }
        self.scopes.iter().any(|s| {
            let (a, access) = s.split_once(':').unwrap_or((s.as_str(), "write"));
            let wildcard = a == "*" && !EXPLICIT_SCOPES.contains(&area);
            (wildcard || a == area) && (access == "write" || !write)
        })
    }

    pub fn whoami(&self) -> Whoami {
        Whoami {
            user: self.user.clone(),
            role: self.role,
            method: self.method,
            token_id: self.token_id.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The least estimated entropy of an admin-API token, in bits.
pub const MIN_ADMIN_API_TOKEN_BITS: f64 = 80.0;

/// Estimated entropy of a chosen secret: its length times log2 of the alphabet its character
/// classes span, counting a character repeated more than the rest as once (so
/// `aaaaaaaaaaaaaaaaaaaa1` scores low). `openssl rand -hex 16` passes; a dictionary word does not.
pub fn estimated_entropy_bits(token: &str) -> f64 {
    let mut pool = 0u32;
    type IsClass = fn(&char) -> bool;
    let classes: [(IsClass, u32); 4] = [
        (char::is_ascii_lowercase, 26),
        (char::is_ascii_uppercase, 26),
        (char::is_ascii_digit, 10),
        (|c: &char| c.is_ascii_punctuation() || *c == ' ', 33),
    ];
    for (is, size) in classes {
        if token.chars().any(|c| is(&c)) {
            pool += size;
        }
    }
    if !token.is_ascii() {
        pool += 100;
    }
    let mut distinct: Vec<char> = token.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    // Length counted at most twice per distinct character: repeats add little.
    let effective = token.chars().count().min(distinct.len() * 2);
    effective as f64 * f64::from(pool.max(1)).log2()
}

fn check_admin_api_token_strength(token: &str) -> Result<(), ApiError> {
    let n = token.chars().count();
    let weak = |detail: String| Err(ApiError::invalid_field("weak_token", "newtoken", detail));
    if !(16..=255).contains(&n) {
        return weak(format!(
            "the API token must be 16 to 255 characters (this one has {n})"
        ));
    }
    if token.chars().any(char::is_control) {
        return weak("the API token may not contain control characters".into());
    }
    let bits = estimated_entropy_bits(token);
    if bits < MIN_ADMIN_API_TOKEN_BITS {
        return weak(format!(
            "the API token is too easy to guess (about {bits:.0} bits; at least {MIN_ADMIN_API_TOKEN_BITS:.0} needed): use a random string, e.g. `openssl rand -hex 16`"
        ));
    }
    Ok(())
}

/// Areas a scoped token must name itself: `*` does not reach them (a shell on the host is
/// more than a token made for "everything the API manages" was meant to give).
pub const EXPLICIT_SCOPES: &[&str] = &["terminal"];

/// `(area, write)` of a scope string (`vms` alone means `vms:write`).
fn parse_scope(s: &str) -> (&str, bool) {
    let (area, access) = s.split_once(':').unwrap_or((s, "write"));
    (area, access == "write")
}

/// The scopes a new token created by a caller holding `held` gets when it asks for `wanted`:
/// never more than the caller has. An unscoped caller may grant any scopes; a scoped caller
/// that asks for none passes on its own; asking for a scope the caller does not hold is 403.
pub fn narrow_scopes(held: &[String], wanted: &[String]) -> Result<Vec<String>, ApiError> {
    if held.is_empty() {
        return Ok(wanted.to_vec());
    }
    if wanted.is_empty() {
        return Ok(held.to_vec());
    }
    for w in wanted {
        let (wa, ww) = parse_scope(w);
        let covered = held.iter().any(|h| {
            let (ha, hw) = parse_scope(h);
            (ha == "*" || ha == wa) && (hw || !ww)
        });
        if !covered {
            return Err(ApiError::Forbidden(format!(
                "scope {w:?} is more than this credential holds ({})",
                held.join(", ")
            )));
        }
    }
    Ok(wanted.to_vec())
}

/// Checks scope strings: `*`, `*:read`, `<area>`, `<area>:read`, `<area>:write`, where `areas`
/// are the names a scope may use (`areas::scope_names`).
pub fn validate_scopes(scopes: &[String], areas: &[&str]) -> Result<(), ApiError> {
    for s in scopes {
        let (area, access) = s.split_once(':').unwrap_or((s.as_str(), "write"));
        if !(area == "*" || areas.contains(&area)) || !(access == "read" || access == "write") {
            return Err(ApiError::invalid_field(
                "invalid_scope",
                "scopes",
                format!(
                    "{s:?} is not a scope; use <area>:read|write or *, areas: {}",
                    areas.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A freshly made token: the value to hand out once, and the hash to keep.
pub struct NewSecret {
    pub id: String,
    pub value: String,
    pub secret_hash: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    hex::encode(buf)
}

pub fn new_secret() -> NewSecret {
    let id = random_hex(8);
    let secret = random_hex(32);
    NewSecret {
        value: format!("{TOKEN_PREFIX}{id}_{secret}"),
        secret_hash: sha256_hex(secret.as_bytes()),
        id,
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Splits `hp_<id>_<secret>`; None when the shape is wrong.
pub fn split_token(value: &str) -> Option<(&str, &str)> {
    let rest = value.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex16 = |s: &str, n| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex16(id, 16) && hex16(secret, 64)).then_some((id, secret))
}

/// The Jidoteki HMAC: key = hex(SHA-256(token)) as text, message = METHOD + path.
pub fn jidoteki_hmac(token_sha256_hex: &str, method: &str, path: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token_sha256_hex.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(method.as_bytes());
    mac.update(path.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks a user name: 1–64 of `[a-z0-9_.-]`, starting with a letter or digit.
pub fn validate_user_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok && name != ADMIN_API_USER && name != "root" {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_name",
            "name",
            format!(
                "{name:?}: user names are 1-64 of [a-z0-9_.-] starting with a letter or digit (root and {ADMIN_API_USER} are reserved)"
            ),
        ))
    }
}

pub fn validate_password(password: &str) -> Result<(), ApiError> {
    if (8..=1024).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_password",
            "password",
            "passwords are 8 to 1024 characters",
        ))
    }
}

/// One token as the in-memory table holds it.
#[derive(Debug, Clone)]
struct CachedToken {
    owner: String,
    role: Role,
    owner_role: Role,
    scopes: Vec<String>,
    secret_hash: String,
    expires_at: Option<OffsetDateTime>,
}

/// The credential service: users, tokens, the admin-API token.
pub struct Auth {
    store: Arc<Store>,
    tokens: RwLock<HashMap<String, CachedToken>>,
    admin_api_key: RwLock<Option<String>>,
    /// token id -> last use, waiting for the next flush.
    pending_last_used: Mutex<HashMap<String, String>>,
}

fn user_from_row(r: &rusqlite::Row) -> rusqlite::Result<User> {
    let name: String = r.get(0)?;
    let role: String = r.get(1)?;
    let hash: Option<String> = r.get(2)?;
    Ok(User {
        href: format!("/api/v1/users/{name}"),
        name,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        has_password: hash.is_some(),
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

fn token_from_row(r: &rusqlite::Row) -> rusqlite::Result<Token> {
    let id: String = r.get(0)?;
    let kind: String = r.get(2)?;
    let role: String = r.get(4)?;
    let scopes: String = r.get(5)?;
    Ok(Token {
        href: format!("/api/v1/tokens/{id}"),
        id,
        name: r.get(1)?,
        kind: match kind.as_str() {
            "session" => TokenKind::Session,
            "bootstrap" => TokenKind::Bootstrap,
            _ => TokenKind::Api,
        },
        owner: r.get(3)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        last_used_at: r.get(8)?,
    })
}

const TOKEN_COLUMNS: &str =
    "id, name, kind, owner, role, scopes, created_at, expires_at, last_used_at";

/// What creating a token needs.
pub struct TokenSpec<'a> {
    pub name: &'a str,
    pub kind: TokenKind,
    pub owner: &'a str,
    pub role: Role,
    pub scopes: &'a [String],
    pub expires_at: Option<OffsetDateTime>,
}

impl Auth {
    pub fn new(store: Arc<Store>) -> Result<Auth, rusqlite::Error> {
        let auth = Auth {
            admin_api_key: RwLock::new(store.get_setting(ADMIN_API_KEY_SETTING)?),
            store,
            tokens: RwLock::new(HashMap::new()),
            pending_last_used: Mutex::new(HashMap::new()),
        };
        auth.reload()?;
        Ok(auth)
    }

    /// Reloads the token table and the admin-API key from the store (after any change to
    /// users or tokens, or a restore that replaced the store's content).
    pub fn reload(&self) -> rusqlite::Result<()> {
        let key = self.store.get_setting(ADMIN_API_KEY_SETTING)?;
        *self
            .admin_api_key
            .write()
            .unwrap_or_else(|p| p.into_inner()) = key;
        let rows = self.store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT t.id, t.owner, t.role, u.role, t.scopes, t.secret_hash, t.expires_at
                 FROM tokens t JOIN users u ON u.name = t.owner",
            )?;
            let rows = stmt.query_map([], |r| {
                let role: String = r.get(2)?;
                let owner_role: String = r.get(3)?;
                let scopes: String = r.get(4)?;
                let expires: Option<String> = r.get(6)?;
                Ok((
                    r.get::<_, String>(0)?,
                    CachedToken {
                        owner: r.get(1)?,
                        role: Role::parse(&role).unwrap_or(Role::Viewer),
                        owner_role: Role::parse(&owner_role).unwrap_or(Role::Viewer),
                        scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                        secret_hash: r.get(5)?,
                        expires_at: expires.as_deref().and_then(time::parse),
                    },
                ))
            })?;
            rows.collect::<rusqlite::Result<HashMap<_, _>>>()
        })?;
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = rows;
        Ok(())
    }

    /// Checks `hp_<id>_<secret>`. Expired, revoked and malformed tokens are all "unknown".
    pub fn authenticate_token(&self, value: &str, method: AuthMethod) -> Option<Principal> {
        let (id, secret) = split_token(value)?;
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        let t = tokens.get(id)?;
        if !ct_eq(&sha256_hex(secret.as_bytes()), &t.secret_hash) {
            return None;
        }
        let now = time::now();
        if t.expires_at.is_some_and(|e| e <= now) {
            return None;
        }
        let principal = Principal {
            user: t.owner.clone(),
            // A token never carries more than its owner has now.
            role: t.role.min(t.owner_role),
            method,
            token_id: Some(id.to_string()),
            scopes: t.scopes.clone(),
        };
        drop(tokens);
        self.pending_last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), time::format(now));
        Some(principal)
    }

    pub fn admin_api_principal(method: AuthMethod) -> Principal {
        Principal {
            user: ADMIN_API_USER.into(),
            role: Role::Admin,
            method,
            token_id: None,
            scopes: Vec::new(),
        }
    }

    /// `?token=` with the Jidoteki admin-API token.
    pub fn authenticate_admin_api_token(&self, token: &str) -> Option<Principal> {
        let key = self.admin_api_key.read().unwrap_or_else(|p| p.into_inner());
        let key = key.as_deref()?;
        ct_eq(&sha256_hex(token.as_bytes()), key)
            .then(|| Self::admin_api_principal(AuthMethod::QueryToken))
    }

    /// `?hash=` HMAC over METHOD + path, keyed by the admin-API token's SHA-256.
    pub fn authenticate_admin_api_hash(
        &self,
        hash: &str,
        method: &str,
        path: &str,
    ) -> Option<Principal> {
        let key = self.admin_api_key.read().unwrap_or_else(|p| p.into_inner());
        let key = key.as_deref()?;
        ct_eq(
            &jidoteki_hmac(key, method, path),
            &hash.to_ascii_lowercase(),
        )
        .then(|| Self::admin_api_principal(AuthMethod::QueryHash))
    }

    pub fn admin_api_token_is_set(&self) -> bool {
        self.admin_api_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Sets the Jidoteki admin-API token: 16–255 characters and at least
    /// [`MIN_ADMIN_API_TOKEN_BITS`] of estimated entropy (the spec allows 1 character; this
    /// token authenticates as admin, so hostplane asks for more).
    pub fn set_admin_api_token(&self, token: &str) -> Result<(), ApiError> {
        check_admin_api_token_strength(token)?;
        let key = sha256_hex(token.as_bytes());
        self.store.set_setting(ADMIN_API_KEY_SETTING, &key)?;
        *self
            .admin_api_key
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(key);
        Ok(())
    }

    /// Writes pending `last_used_at` values. Called every few seconds and before token reads.
    pub fn flush_last_used(&self) -> rusqlite::Result<()> {
        let pending = std::mem::take(
            &mut *self
                .pending_last_used
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if pending.is_empty() {
            return Ok(());
        }
        self.store.write(|tx| {
            let mut stmt = tx.prepare("UPDATE tokens SET last_used_at = ?2 WHERE id = ?1")?;
            for (id, at) in &pending {
                stmt.execute(params![id, at])?;
            }
            Ok(())
        })
    }

    // ---- users ----

    pub fn user_count(&self) -> rusqlite::Result<i64> {
        self.store
            .read(|c| c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0)))
    }

    pub fn list_users(&self) -> rusqlite::Result<Vec<User>> {
        self.store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT name, role, password_hash, created_at, updated_at FROM users ORDER BY name",
            )?;
            stmt.query_map([], user_from_row)?.collect()
        })
    }

    pub fn get_user(&self, name: &str) -> rusqlite::Result<Option<User>> {
        self.store.read(|c| {
            c.query_row(
                "SELECT name, role, password_hash, created_at, updated_at FROM users WHERE name = ?1",
                [name],
                user_from_row,
            )
            .optional()
        })
    }

    pub fn create_user(
        &self,
        name: &str,
        role: Role,
        password: Option<&str>,
    ) -> Result<User, ApiError> {
        validate_user_name(name)?;
        let hash = match password {
            Some(p) => {
                validate_password(p)?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        let now = time::now_string();
        let inserted = self.store.write(|tx| {
            tx.execute(
                "INSERT INTO users(name, role, password_hash, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT(name) DO NOTHING",
                params![name, role.as_str(), hash, now],
            )
        })?;
        if inserted == 0 {
            return Err(ApiError::conflict(
                "user_exists",
                format!("user {name:?} exists"),
            ));
        }
        self.get_user(name)?
            .ok_or_else(|| ApiError::internal("user vanished"))
    }

    pub fn update_user(
        &self,
        name: &str,
        role: Option<Role>,
        password: Option<&str>,
    ) -> Result<User, ApiError> {
        let hash = match password {
            Some(p) => {
                validate_password(p)?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        let now = time::now_string();
        let changed = self.store.write(|tx| {
            if let Some(role) = role {
                if role != Role::Admin && self.is_last_admin(tx, name)? {
                    return Ok(None);
                }
                tx.execute(
                    "UPDATE users SET role = ?2, updated_at = ?3 WHERE name = ?1",
                    params![name, role.as_str(), now],
                )?;
            }
            if let Some(h) = &hash {
                tx.execute(
                    "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE name = ?1",
                    params![name, h, now],
                )?;
            }
            tx.query_row("SELECT COUNT(*) FROM users WHERE name = ?1", [name], |r| {
                r.get::<_, i64>(0)
            })
            .map(Some)
        })?;
        match changed {
            None => Err(ApiError::conflict(
                "last_admin",
                "the last admin cannot be demoted",
            )),
            Some(0) => Err(ApiError::not_found(format!("no user {name:?}"))),
            Some(_) => {
                self.reload()?;
                self.get_user(name)?
                    .ok_or_else(|| ApiError::not_found(format!("no user {name:?}")))
            }
        }
    }

    fn is_last_admin(&self, tx: &rusqlite::Transaction, name: &str) -> rusqlite::Result<bool> {
        tx.query_row(
            "SELECT (SELECT role FROM users WHERE name = ?1) = 'admin'
                AND (SELECT COUNT(*) FROM users WHERE role = 'admin') = 1",
            [name],
            |r| r.get::<_, Option<bool>>(0),
        )
        .map(|v| v.unwrap_or(false))
    }

    pub fn delete_user(&self, name: &str) -> Result<User, ApiError> {
        let user = self
            .get_user(name)?
            .ok_or_else(|| ApiError::not_found(format!("no user {name:?}")))?;
        let deleted = self.store.write(|tx| {
            if self.is_last_admin(tx, name)? {
                return Ok(None);
            }
            tx.execute("DELETE FROM users WHERE name = ?1", [name])
                .map(Some)
        })?;
        match deleted {
            None => Err(ApiError::conflict(
                "last_admin",
                "the last admin cannot be deleted",
            )),
            Some(_) => {
                self.reload()?;
                Ok(user)
            }
        }
    }

    /// Password check for login; None when the user or password is wrong (never says which).
    pub fn check_password(&self, name: &str, password: &str) -> rusqlite::Result<Option<Role>> {
        let row: Option<(String, Option<String>)> = self.store.read(|c| {
            c.query_row(
                "SELECT role, password_hash FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        Ok(match row {
            Some((role, Some(hash))) if verify_password(password, &hash) => Role::parse(&role),
            Some(_) => None,
            None => {
                // Spend the same time as a real check so timing does not reveal user names.
                let _ = verify_password(password, DUMMY_HASH);
                None
            }
        })
    }

    // ---- tokens ----

    pub fn create_token(&self, spec: TokenSpec) -> Result<(Token, String), ApiError> {
        let secret = new_secret();
        let now = time::now_string();
        let expires = spec.expires_at.map(time::format);
        let scopes = serde_json::to_string(spec.scopes).map_err(ApiError::internal)?;
        let kind = match spec.kind {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
            TokenKind::Bootstrap => "bootstrap",
        };
        self.store.write(|tx| {
            tx.execute(
                "INSERT INTO tokens(id, name, kind, owner, role, scopes, secret_hash, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    secret.id,
                    spec.name,
                    kind,
                    spec.owner,
                    spec.role.as_str(),
                    scopes,
                    secret.secret_hash,
                    now,
                    expires
                ],
            )
        })?;
        self.reload()?;
        let token = self
            .get_token(&secret.id)?
            .ok_or_else(|| ApiError::internal("token vanished"))?;
        Ok((token, secret.value))
    }

    /// Applies `last_used_at` values not yet flushed, so reads never need a write.
    fn with_pending_use(&self, mut t: Token) -> Token {
        let pending = self
            .pending_last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(at) = pending.get(&t.id) {
            t.last_used_at = Some(at.clone());
        }
        t
    }

    pub fn list_tokens(&self, owner: Option<&str>) -> rusqlite::Result<Vec<Token>> {
        let tokens: Vec<Token> = self.store.read(|c| {
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE ?1 IS NULL OR owner = ?1 ORDER BY created_at, id"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            stmt.query_map([owner], token_from_row)?.collect()
        })?;
        Ok(tokens
            .into_iter()
            .map(|t| self.with_pending_use(t))
            .collect())
    }

    pub fn get_token(&self, id: &str) -> rusqlite::Result<Option<Token>> {
        let token = self.store.read(|c| {
            c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"))?
                .query_row([id], token_from_row)
                .optional()
        })?;
        Ok(token.map(|t| self.with_pending_use(t)))
    }

    pub fn revoke_token(&self, id: &str) -> rusqlite::Result<bool> {
        let n = self
            .store
            .write(|tx| tx.execute("DELETE FROM tokens WHERE id = ?1", [id]))?;
        self.reload()?;
        Ok(n > 0)
    }

    /// Drops expired sessions (API tokens stay listed after expiry so owners see why).
    pub fn prune_expired_sessions(&self) -> rusqlite::Result<usize> {
        let now = time::now_string();
        let n = self.store.write(|tx| {
            tx.execute(
                "DELETE FROM tokens WHERE kind = 'session' AND expires_at IS NOT NULL AND expires_at <= ?1",
                [now],
            )
        })?;
        if n > 0 {
            self.reload()?;
        }
        Ok(n)
    }
}

/// An argon2id hash of a random string, used to equalise timing for unknown users.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$yHs0Nq5cC0xLvHWKq5yFQkzzMJ/v9+zyxz7NU1RYmkM";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_api_token_strength() {
        for weak in [
            "yourtoken",
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababab",
            "passwordpassword",
        ] {
            assert!(
                check_admin_api_token_strength(weak).is_err(),
                "{weak} accepted"
            );
        }
        for strong in [
            "3f9c1e0b7a2d4c6e8f1a3b5c7d9e0f21",
            "correct-Horse-battery-staple-9",
        ] {
            assert!(
                check_admin_api_token_strength(strong).is_ok(),
                "{strong} refused"
            );
        }
    }

    #[test]
    fn narrowed_scopes_never_grow() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            narrow_scopes(&[], &v(&["vms:read"])).unwrap(),
            v(&["vms:read"])
        );
        assert_eq!(
            narrow_scopes(&v(&["tokens:write"]), &[]).unwrap(),
            v(&["tokens:write"])
        );
        assert!(narrow_scopes(&v(&["tokens:write"]), &v(&["*"])).is_err());
        assert!(narrow_scopes(&v(&["tokens:write"]), &v(&["vms:read"])).is_err());
        assert!(narrow_scopes(&v(&["*:read"]), &v(&["vms:write"])).is_err());
        assert!(narrow_scopes(&v(&["*:read"]), &v(&["vms:read"])).is_ok());
        assert!(narrow_scopes(&v(&["vms"]), &v(&["vms:write", "vms:read"])).is_ok());
    }

    /// The two published test vectors of the Jidoteki admin API document.
    #[test]
    fn jidoteki_vectors() {
        let key = sha256_hex(b"yourtoken");
        assert_eq!(
            key,
            "13e2ff941bbc8692cad141c8d293dda2c4f1c1a3c51b93d54f1a1693e1206107"
        );
        assert_eq!(
            jidoteki_hmac(&key, "GET", "/api/v1/admin/version"),
            "b714a60732e096ccef06e360eefe0f1ba4fa5d16ef7da726612e2026e5523241"
        );
    }

    #[test]
    fn token_shape() {
        let s = new_secret();
        let (id, secret) = split_token(&s.value).unwrap();
        assert_eq!(id, s.id);
        assert_eq!(sha256_hex(secret.as_bytes()), s.secret_hash);
        assert!(split_token("hp_zz_yy").is_none());
        assert!(split_token("Bearer x").is_none());
        assert!(split_token(&s.value.replace("hp_", "xx_")).is_none());
    }

    #[test]
    fn scopes() {
        let p = Principal {
            user: "u".into(),
            role: Role::Operator,
            method: AuthMethod::Bearer,
            token_id: None,
            scopes: vec!["vms:write".into(), "jobs:read".into()],
        };
        assert!(p.scope_allows("vms", true));
        assert!(p.scope_allows("jobs", false));
        assert!(!p.scope_allows("jobs", true));
        assert!(!p.scope_allows("users", false));
        assert!(validate_scopes(&["vms:write".into(), "*:read".into()], &["vms"]).is_ok());
        assert!(validate_scopes(&["nope:read".into()], &["vms"]).is_err());
        assert!(validate_scopes(&["vms:delete".into()], &["vms"]).is_err());
    }

    #[test]
    fn password_roundtrip_and_dummy_hash_parses() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn user_names() {
        assert!(validate_user_name("alice").is_ok());
        assert!(validate_user_name("a.b-c_1").is_ok());
        for bad in [
            "",
            "-x",
            "Alice",
            "a b",
            "root",
            "admin-api",
            &"x".repeat(65),
        ] {
            assert!(validate_user_name(bad).is_err(), "{bad}");
        }
    }
}
