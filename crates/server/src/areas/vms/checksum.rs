//! Checksums a box catalog declares for a download (`checksum_type` + hex `checksum`), computed
//! over the bytes as they arrive (the `.box` as served, before it is unpacked).

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::error::ApiError;

/// An expected digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub kind: Kind,
    /// Lower-case hex.
    pub hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Kind {
    /// `sha256`, `SHA256`, `sha-256` …
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s.to_ascii_lowercase().replace('-', "").as_str() {
            "md5" => Kind::Md5,
            "sha1" => Kind::Sha1,
            "sha256" => Kind::Sha256,
            "sha384" => Kind::Sha384,
            "sha512" => Kind::Sha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Md5 => "md5",
            Kind::Sha1 => "sha1",
            Kind::Sha256 => "sha256",
            Kind::Sha384 => "sha384",
            Kind::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Kind::Md5 => 32,
            Kind::Sha1 => 40,
            Kind::Sha256 => 64,
            Kind::Sha384 => 96,
            Kind::Sha512 => 128,
        }
    }
}

impl Expected {
    /// From a catalog's `checksum_type` and `checksum`: `None` when it declares none; an error
    /// (`invalid_checksum`) for a type this daemon does not know or a malformed digest, since a
    /// declared checksum that cannot be checked must not be skipped silently.
    pub fn from_catalog(
        kind: Option<&str>,
        checksum: Option<&str>,
    ) -> Result<Option<Expected>, ApiError> {
        let sum = checksum.map(str::trim).filter(|c| !c.is_empty());
        let kind = kind.map(str::trim).filter(|k| !k.is_empty() && *k != "NONE");
        let Some(sum) = sum else {
            return Ok(None);
        };
        let bad = |m: String| ApiError::invalid("invalid_checksum", m);
        let k = match kind {
            Some(k) => Kind::parse(k).ok_or_else(|| {
                bad(format!(
                    "checksum type {k:?}: md5, sha1, sha256, sha384 or sha512 are checked"
                ))
            })?,
            // No type: the length says which (Vagrant does the same for sha256/sha512).
            None => [Kind::Md5, Kind::Sha1, Kind::Sha256, Kind::Sha384, Kind::Sha512]
                .into_iter()
                .find(|k| k.hex_len() == sum.len())
                .ok_or_else(|| bad(format!("a checksum of {} characters", sum.len())))?,
        };
        let hex = sum.to_ascii_lowercase();
        if hex.len() != k.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("not a {} hex digest: {sum:?}", k.name())));
        }
        Ok(Some(Expected { kind: k, hex }))
    }
}

/// A running digest.
pub enum Hasher {
    Md5(Md5),
    Sha1(Sha1),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(k: Kind) -> Hasher {
        match k {
            Kind::Md5 => Hasher::Md5(Md5::new()),
            Kind::Sha1 => Hasher::Sha1(Sha1::new()),
            Kind::Sha256 => Hasher::Sha256(Sha256::new()),
            Kind::Sha384 => Hasher::Sha384(Sha384::new()),
            Kind::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(b),
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }

    pub fn hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha384(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(k: Kind, b: &[u8]) -> String {
        let mut h = Hasher::new(k);
        h.update(b);
        h.hex()
    }

    #[test]
    fn known_digests_of_abc() {
        assert_eq!(digest(Kind::Md5, b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            digest(Kind::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest(Kind::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digest(Kind::Sha512, b"abc").starts_with("ddaf35a193617aba"));
        assert_eq!(digest(Kind::Sha384, b"abc").len(), 96);
    }

    #[test]
    fn catalog_entries() {
        let sha = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        let e = Expected::from_catalog(Some("SHA256"), Some(sha))
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, Kind::Sha256);
        assert_eq!(e.hex, sha.to_ascii_lowercase());
        // No type: by length.
        let e = Expected::from_catalog(None, Some("900150983cd24fb0d6963f7d28e17f72"))
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, Kind::Md5);
        assert!(Expected::from_catalog(None, None).unwrap().is_none());
        assert!(
            Expected::from_catalog(Some("sha256"), Some(""))
                .unwrap()
                .is_none()
        );
        for (k, c) in [
            (Some("crc32"), "00ff00ff"),
            (Some("sha256"), "abc"),
            (Some("md5"), "zz0150983cd24fb0d6963f7d28e17f72"),
            (None, "abcd"),
        ] {
            let e = Expected::from_catalog(k, Some(c)).unwrap_err();
            assert_eq!(e.code(), "invalid_checksum", "{k:?} {c}");
        }
    }
}
