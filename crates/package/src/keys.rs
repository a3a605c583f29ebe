//! Keys: the vendor's ed25519 signing key pair and the appliance's age X25519 identity.
//!
//! * Vendor signing key (`vendor.key`, secret, 0600): a comment line and the base64 of the
//!   32-byte ed25519 seed. Its public half (`vendor.pub`, and `[admin] vendor_public_key` in the
//!   daemon's config) is the base64 of the 32-byte public key.
//! * Appliance identity (`appliance.key`, secret, 0600): an ordinary age identity file
//!   (`AGE-SECRET-KEY-1…`, as `age-keygen` writes it), so `age -d -i appliance.key` works too.
//!   Its recipient (`age1…`) is what vendors encrypt update packages to.
//!
//! Signatures are ed25519 over a context string followed by the message, so a signature made
//! for one purpose (an update manifest) can never be replayed as another (a licence).

use std::str::FromStr;

use age::secrecy::ExposeSecret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer};

/// Re-exported so users of this crate need not depend on the crypto crates themselves.
pub use age::x25519::{Identity, Recipient};
pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// A key, key file or signature that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn err(msg: impl Into<String>) -> KeyError {
    KeyError(msg.into())
}

/// The first line that is neither empty nor a `#` comment.
fn key_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

/// A new vendor signing key from the OS random source.
pub fn generate_signing_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS random source works");
    SigningKey::from_bytes(&seed)
}

/// The text of a `vendor.key` file.
pub fn signing_key_file(key: &SigningKey) -> String {
    format!(
        "# hostplane vendor signing key (ed25519 seed, base64). Keep it secret.\n\
         # public key: {}\n{}\n",
        public_key_string(&key.verifying_key()),
        B64.encode(key.to_bytes())
    )
}

/// Parses a `vendor.key` file (or just its base64 line).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, KeyError> {
    let line = key_line(text).ok_or_else(|| err("the signing key file is empty"))?;
    let bytes = B64
        .decode(line)
        .map_err(|e| err(format!("the signing key is not base64: {e}")))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| err("the signing key must be 32 bytes (base64 of an ed25519 seed)"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A vendor public key as written to `vendor.pub` and the daemon's config.
pub fn public_key_string(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// Parses a vendor public key: base64 of 32 bytes (comment lines allowed, so a `vendor.pub`
/// file's content works as is).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let line = key_line(text).ok_or_else(|| err("the vendor public key is empty"))?;
    let bytes = B64
        .decode(line)
        .map_err(|e| err(format!("the vendor public key is not base64: {e}")))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| err("the vendor public key must be 32 bytes (base64)"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| {
        err(format!(
            "the vendor public key is not an ed25519 point: {e}"
        ))
    })
}

/// base64 ed25519 signature over `context || message`.
pub fn sign(key: &SigningKey, context: &[u8], message: &[u8]) -> String {
    let mut data = Vec::with_capacity(context.len() + message.len());
    data.extend_from_slice(context);
    data.extend_from_slice(message);
    B64.encode(key.sign(&data).to_bytes())
}

/// Verifies a [`sign`] signature (strict: no malleable or small-order encodings).
pub fn verify(
    key: &VerifyingKey,
    context: &[u8],
    message: &[u8],
    signature_b64: &str,
) -> Result<(), KeyError> {
    let bytes = B64
        .decode(signature_b64.trim())
        .map_err(|e| err(format!("the signature is not base64: {e}")))?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| err("the signature must be 64 bytes"))?;
    let mut data = Vec::with_capacity(context.len() + message.len());
    data.extend_from_slice(context);
    data.extend_from_slice(message);
    key.verify_strict(&data, &Signature::from_bytes(&bytes))
        .map_err(|_| err("the signature does not match the vendor public key"))
}

/// A new appliance identity.
pub fn generate_identity() -> age::x25519::Identity {
    age::x25519::Identity::generate()
}

/// The text of an age identity file, in `age-keygen`'s layout.
pub fn identity_file(id: &age::x25519::Identity) -> String {
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!(
        "# hostplane appliance identity (age X25519). Keep it secret.\n\
         # created: {created}\n# public key: {}\n{}\n",
        id.to_public(),
        id.to_string().expose_secret()
    )
}

/// Parses an age identity file: every `AGE-SECRET-KEY-1…` line (comments and blank lines
/// skipped). At least one identity is required.
pub fn parse_identity_file(text: &str) -> Result<Vec<age::x25519::Identity>, KeyError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id = age::x25519::Identity::from_str(line).map_err(|e| {
            err(format!(
                "line {} is not an age X25519 identity (AGE-SECRET-KEY-1…): {e}",
                n + 1
            ))
        })?;
        out.push(id);
    }
    if out.is_empty() {
        return Err(err("the identity file holds no AGE-SECRET-KEY-1… line"));
    }
    Ok(out)
}

/// Parses an age X25519 recipient (`age1…`).
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient, KeyError> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|e| {
        err(format!(
            "{:?} is not an age X25519 recipient (age1…): {e}",
            s.trim()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_file_roundtrip_and_signature() {
        let k = generate_signing_key();
        let parsed = parse_signing_key(&signing_key_file(&k)).unwrap();
        assert_eq!(parsed.to_bytes(), k.to_bytes());
        let pk = parse_public_key(&public_key_string(&k.verifying_key())).unwrap();
        let sig = sign(&k, b"ctx\n", b"hello");
        verify(&pk, b"ctx\n", b"hello", &sig).unwrap();
        assert!(verify(&pk, b"ctx\n", b"hellO", &sig).is_err());
        // Another context: the same bytes do not verify.
        assert!(verify(&pk, b"other\n", b"hello", &sig).is_err());
        let other = generate_signing_key();
        assert!(verify(&other.verifying_key(), b"ctx\n", b"hello", &sig).is_err());
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(parse_public_key("").is_err());
        assert!(parse_public_key("not base64!").is_err());
        assert!(parse_public_key(&B64.encode([1u8; 31])).is_err());
        assert!(parse_signing_key("# only a comment\n").is_err());
        assert!(parse_identity_file("# nothing\n").is_err());
        assert!(parse_identity_file("AGE-SECRET-KEY-1XYZ\n").is_err());
        assert!(parse_recipient("age1nope").is_err());
    }

    #[test]
    fn identity_file_roundtrip() {
        let id = generate_identity();
        let text = identity_file(&id);
        let ids = parse_identity_file(&text).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].to_public().to_string(), id.to_public().to_string());
        let r = parse_recipient(&id.to_public().to_string()).unwrap();
        assert_eq!(r.to_string(), id.to_public().to_string());
    }
}
