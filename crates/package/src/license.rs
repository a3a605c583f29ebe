//! Licences: the vendor's signed statement of who may use the appliance, for what and until
//! when. See `docs/license.md`.
//!
//! A licence file (`license.asc`) is ASCII text:
//!
//! ```text
//! -----BEGIN HOSTPLANE LICENSE-----
//! {"app":"enterprise","users":20,"expires":"2038-01-19","name":"Enterprise Company","contact":"cto@enterprise","issued":"2026-11-24"}
//! -----END HOSTPLANE LICENSE-----
//! -----BEGIN HOSTPLANE SIGNATURE-----
//! <base64 ed25519 signature over "hostplane-license-v1\n" + the JSON line>
//! -----END HOSTPLANE SIGNATURE-----
//! ```
//!
//! The JSON line is signed byte for byte (after trimming surrounding whitespace, so CRLF line
//! ends do not matter). Anything outside the two blocks is ignored.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use time::Date;
use time::macros::format_description;

use crate::keys;

pub const SIGNATURE_CONTEXT: &[u8] = b"hostplane-license-v1\n";
const BEGIN_LICENSE: &str = "-----BEGIN HOSTPLANE LICENSE-----";
const END_LICENSE: &str = "-----END HOSTPLANE LICENSE-----";
const BEGIN_SIG: &str = "-----BEGIN HOSTPLANE SIGNATURE-----";
const END_SIG: &str = "-----END HOSTPLANE SIGNATURE-----";
/// A licence file larger than this is refused unread.
pub const MAX_LICENSE_BYTES: usize = 64 << 10;
const MAX_FIELD: usize = 256;

/// The signed content of a licence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseFields {
    /// The application or edition licensed, e.g. `enterprise`.
    pub app: String,
    /// Number of users licensed.
    pub users: u64,
    /// Last day the licence is valid (`YYYY-MM-DD`, UTC).
    pub expires: String,
    /// Licensee.
    pub name: String,
    /// Licensee's contact.
    pub contact: String,
    /// Day the vendor issued it (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<String>,
}

/// A licence whose signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub fields: LicenseFields,
    pub expires: Date,
}

#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    /// Not a licence file, or its fields are not acceptable.
    #[error("{0}")]
    Malformed(String),
    /// The signature does not verify against the vendor key.
    #[error("the licence is not signed by the vendor key: {0}")]
    Signature(String),
}

pub fn parse_date(what: &str, s: &str) -> Result<Date, String> {
    Date::parse(s.trim(), format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("{what} {s:?} is not a date (YYYY-MM-DD): {e}"))
}

/// `19 January 2038`, the way the Jidoteki document shows `expires`.
pub fn human_date(d: Date) -> String {
    d.format(format_description!(
        "[day padding:none] [month repr:long] [year]"
    ))
    .unwrap_or_default()
}

impl LicenseFields {
    pub fn validate(&self) -> Result<Date, String> {
        for (name, v) in [
            ("app", &self.app),
            ("name", &self.name),
            ("contact", &self.contact),
        ] {
            if v.trim().is_empty() || v.len() > MAX_FIELD || v.chars().any(char::is_control) {
                return Err(format!(
                    "{name} must be 1 to {MAX_FIELD} characters without control characters"
                ));
            }
        }
        if let Some(i) = &self.issued {
            parse_date("issued", i)?;
        }
        parse_date("expires", &self.expires)
    }
}

impl License {
    /// Expired when `today` is after the `expires` day.
    pub fn is_expired(&self, today: Date) -> bool {
        today > self.expires
    }
}

fn block<'a>(text: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let start = text.find(begin)? + begin.len();
    let len = text[start..].find(end)?;
    Some(text[start..start + len].trim())
}

/// Issues a licence: the file text, signed with the vendor key.
pub fn issue(fields: &LicenseFields, key: &SigningKey) -> Result<String, LicenseError> {
    fields.validate().map_err(LicenseError::Malformed)?;
    let json = serde_json::to_string(fields).map_err(|e| LicenseError::Malformed(e.to_string()))?;
    let sig = keys::sign(key, SIGNATURE_CONTEXT, json.as_bytes());
    Ok(format!(
        "{BEGIN_LICENSE}\n{json}\n{END_LICENSE}\n{BEGIN_SIG}\n{sig}\n{END_SIG}\n"
    ))
}

/// Parses a licence file and checks its signature and fields.
pub fn verify(text: &str, key: &VerifyingKey) -> Result<License, LicenseError> {
    if text.len() > MAX_LICENSE_BYTES {
        return Err(LicenseError::Malformed(format!(
            "a licence file is at most {MAX_LICENSE_BYTES} bytes"
        )));
    }
    let json = block(text, BEGIN_LICENSE, END_LICENSE).ok_or_else(|| {
        LicenseError::Malformed(format!(
            "not a hostplane licence (no {BEGIN_LICENSE} block)"
        ))
    })?;
    let sig = block(text, BEGIN_SIG, END_SIG)
        .ok_or_else(|| LicenseError::Malformed(format!("the licence has no {BEGIN_SIG} block")))?;
    keys::verify(key, SIGNATURE_CONTEXT, json.as_bytes(), sig)
        .map_err(|e| LicenseError::Signature(e.0))?;
    let fields: LicenseFields = serde_json::from_str(json)
        .map_err(|e| LicenseError::Malformed(format!("the signed licence does not parse: {e}")))?;
    let expires = fields.validate().map_err(LicenseError::Malformed)?;
    Ok(License { fields, expires })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> LicenseFields {
        LicenseFields {
            app: "enterprise".into(),
            users: 20,
            expires: "2038-01-19".into(),
            name: "Enterprise Company".into(),
            contact: "cto@enterprise".into(),
            issued: None,
        }
    }

    #[test]
    fn issue_verify_tamper() {
        let k = keys::generate_signing_key();
        let text = issue(&fields(), &k).unwrap();
        let l = verify(&text, &k.verifying_key()).unwrap();
        assert_eq!(l.fields, fields());
        assert_eq!(human_date(l.expires), "19 January 2038");
        assert!(!l.is_expired(time::macros::date!(2038 - 01 - 19)));
        assert!(l.is_expired(time::macros::date!(2038 - 01 - 20)));
        // CRLF line ends still verify.
        verify(&text.replace('\n', "\r\n"), &k.verifying_key()).unwrap();

        let tampered = text.replace("\"users\":20", "\"users\":2000");
        assert!(matches!(
            verify(&tampered, &k.verifying_key()),
            Err(LicenseError::Signature(_))
        ));
        let other = keys::generate_signing_key();
        assert!(matches!(
            verify(&text, &other.verifying_key()),
            Err(LicenseError::Signature(_))
        ));
        assert!(matches!(
            verify("hello", &k.verifying_key()),
            Err(LicenseError::Malformed(_))
        ));
    }

    #[test]
    fn bad_fields_are_refused() {
        let k = keys::generate_signing_key();
        let mut f = fields();
        f.expires = "19 January 2038".into();
        assert!(issue(&f, &k).is_err());
        let mut f = fields();
        f.name = String::new();
        assert!(issue(&f, &k).is_err());
    }
}
