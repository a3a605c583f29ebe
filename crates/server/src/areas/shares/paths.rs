//! Where a share points, and the proof that it stays inside its dataset.
//!
//! A share names a pool, a dataset and optionally a folder inside the dataset (`subpath`).
//! [`SUBPATH_PATTERN`] keeps the folder free of `..`, absolute paths, Samba's `%` macros,
//! quotes and line breaks; [`Resolver::resolve`] then canonicalizes the result (following every
//! symlink) and refuses anything that lands outside the dataset's own canonical path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

use crate::areas::pools::datasets;
use crate::error::ApiError;
use crate::state::AppState;

/// A subpath: `/`-separated folder names of letters, digits, space and `_ . , + @ ( ) -`,
/// each starting with a letter, digit or `_` and not ending with a space; empty = the dataset.
pub const SUBPATH_PATTERN: &str = r"^([A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?(/[A-Za-z0-9_]([A-Za-z0-9 _.,+@()-]*[A-Za-z0-9_.,+@()-])?)*)?$";

static SUBPATH: LazyLock<Regex> = LazyLock::new(|| Regex::new(SUBPATH_PATTERN).unwrap());

pub fn check_subpath(s: &str) -> Result<(), ApiError> {
    if s.len() <= 1024 && SUBPATH.is_match(s) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "invalid_subpath",
            "subpath",
            "a folder inside the dataset: names of letters, digits, space and _ . , + @ ( ) - \
             separated by /, each starting with a letter, digit or _ (at most 1024 bytes)",
        ))
    }
}

/// Why a share cannot be served now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// The pool or dataset does not exist (any more).
    Missing(String),
    /// The pool is not mounted.
    NotMounted(String),
    /// The folder does not exist or is not a directory.
    NoFolder(String),
    /// The canonical path leaves the dataset (a symlink).
    Escapes(String),
}

impl Unresolved {
    pub fn message(&self) -> &str {
        match self {
            Unresolved::Missing(m)
            | Unresolved::NotMounted(m)
            | Unresolved::NoFolder(m)
            | Unresolved::Escapes(m) => m,
        }
    }

    /// The error a request naming this target gets.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Unresolved::Missing(m) => ApiError::invalid_field("unknown_dataset", "dataset", m),
            Unresolved::NotMounted(m) => ApiError::conflict("pool_not_mounted", m),
            Unresolved::NoFolder(m) => ApiError::invalid_field("path_not_found", "subpath", m),
            Unresolved::Escapes(m) => ApiError::invalid_field("path_escapes_dataset", "subpath", m),
        }
    }
}

/// Resolves share folders, looking each pool up once (its record, its mount) however many
/// shares live on it: a listing or a configuration render resolves every share.
pub struct Resolver<'a> {
    pub state: &'a AppState,
    pools: HashMap<String, Result<datasets::Ctx, Unresolved>>,
}

impl<'a> Resolver<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Resolver {
            state,
            pools: HashMap::new(),
        }
    }

    /// The canonical directory a share serves.
    pub fn resolve(
        &mut self,
        pool: &str,
        dataset: &str,
        subpath: &str,
    ) -> Result<PathBuf, Unresolved> {
        let state = self.state;
        let c = self
            .pools
            .entry(pool.to_string())
            .or_insert_with(|| match datasets::ctx(state, pool) {
                Ok(c) => Ok(c),
                Err(ApiError::Conflict { detail, .. }) => Err(Unresolved::NotMounted(detail)),
                Err(_) => Err(Unresolved::Missing(format!("no pool {pool:?}"))),
            })
            .as_ref()
            .map_err(Clone::clone)?;
        let ds = c.require(dataset).map_err(|_| {
            Unresolved::Missing(format!("pool {pool:?} has no dataset {dataset:?}"))
        })?;
        let root = ds
            .canonicalize()
            .map_err(|e| Unresolved::Missing(format!("dataset {dataset:?}: {e}")))?;
        if subpath.is_empty() {
            return renderable(root);
        }
        let target = root.join(subpath);
        let real = target
            .canonicalize()
            .map_err(|e| Unresolved::NoFolder(format!("{}: {e}", target.display())))?;
        if !real.starts_with(&root) {
            return Err(Unresolved::Escapes(format!(
                "{} leads to {}, outside dataset {dataset:?}",
                target.display(),
                real.display()
            )));
        }
        if !real.is_dir() {
            return Err(Unresolved::NoFolder(format!(
                "{} is not a directory",
                real.display()
            )));
        }
        renderable(real)
    }
}

/// A canonical path the generated files can carry verbatim: UTF-8 without `%` (Samba
/// macros), `\`, quotes or control characters (the pool mount root comes from config).
fn renderable(p: PathBuf) -> Result<PathBuf, Unresolved> {
    match p.to_str() {
        Some(s)
            if !s
                .chars()
                .any(|c| c.is_control() || matches!(c, '%' | '\\' | '"')) =>
        {
            Ok(p)
        }
        _ => Err(Unresolved::NoFolder(format!(
            "{} holds characters a share path cannot carry (%, \\, quotes, control characters)",
            p.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpaths() {
        for ok in [
            "",
            "a",
            "Media/Films 2024",
            "_x/y.z",
            "a (1)/b,c+d@e-f",
            "a.b.",
        ] {
            assert!(check_subpath(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "/a", "a/", "a//b", "..", "a/../b", ".hidden", "a /b", " a", "a%b", "a\\b", "a\"b",
            "a\nb", "a;b",
        ] {
            assert!(check_subpath(bad).is_err(), "{bad:?}");
        }
        assert!(check_subpath(&"a".repeat(1025)).is_err());
    }
}
