//! The two catalog APIs a template registry may speak, read into the same types.
//!
//! | | BoxVault | Vagrant Cloud |
//! |---|---|---|
//! | organisations | `GET /api/organization` | (none: users are not listed) |
//! | boxes | `GET /api/organization/{org}/box` | `GET /api/v2/user/{user}` → `boxes` |
//! | versions + providers | `GET /api/organization/{org}/box/{box}/metadata` | `GET /api/v2/box/{user}/{box}` |
//! | token | `x-access-token` and bearer | bearer |
//!
//! Both version documents have Vagrant's catalog shape: `versions[].providers[]` with `name`,
//! `url`, `checksum`, `checksum_type`, `architecture`, `default_architecture`. Every request
//! goes through [`fetch::get_with`] (address policy, each redirect hop checked; the token only
//! to the registry's own origin).

use hostplane_types::vms::{
    RegistryBox, RegistryBoxProvider, RegistryBoxVersion, RegistryKind, RegistryOrganization,
};
use reqwest::Url;
use serde_json::Value;

use crate::platform::fetch::{self, Net, OriginAuth};
use crate::error::{ApiError, ApiResult};

/// Largest catalog document read.
const MAX_DOCUMENT: usize = 8 << 20;

/// A registry to talk to.
pub struct Catalog {
    pub kind: RegistryKind,
    pub base: Url,
    pub auth: Option<OriginAuth>,
}

fn unavailable(detail: String) -> ApiError {
    ApiError::Unavailable {
        code: "registry_unavailable",
        detail,
    }
}

impl Catalog {
    /// `base` with `segments` appended, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        u
    }

    async fn get_json(&self, allow: &[Net], segments: &[&str]) -> ApiResult<Value> {
        let url = self.url(segments);
        let resp = fetch::get_with(url.as_str(), allow, self.auth.as_ref())
            .await
            .map_err(|e| match e.code() {
                "download_failed" => unavailable(format!("the registry: {e}")),
                _ => e,
            })?;
        let status = resp.status();
        match status.as_u16() {
            200..=299 => {}
            404 => {
                return Err(ApiError::not_found(format!(
                    "the registry has no {}",
                    url.path()
                )));
            }
            401 | 403 => {
                return Err(ApiError::invalid(
                    "registry_denied",
                    format!(
                        "the registry answered {status} to {}: check the registry's token",
                        url.path()
                    ),
                ));
            }
            _ => return Err(unavailable(format!("{}: HTTP {status}", url.path()))),
        }
        if resp.content_length().is_some_and(|n| n > MAX_DOCUMENT as u64) {
            return Err(unavailable(format!("{}: the answer is too large", url.path())));
        }
        let mut body = Vec::new();
        let mut stream = resp;
        while let Some(chunk) = stream
            .chunk()
            .await
            .map_err(|e| unavailable(format!("{}: {e}", url.path())))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(unavailable(format!("{}: the answer is too large", url.path())));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::Unavailable {
            code: "registry_invalid_answer",
            detail: format!("{}: not the catalog JSON expected: {e}", url.path()),
        })
    }

    pub async fn organizations(&self, allow: &[Net]) -> ApiResult<Vec<RegistryOrganization>> {
        match self.kind {
            RegistryKind::Boxvault => {
                let v = self.get_json(allow, &["api", "organization"]).await?;
                Ok(parse_organizations(&v))
            }
            RegistryKind::VagrantCloud => Err(ApiError::NotSupported {
                code: "registry_cannot_list",
                detail: "Vagrant Cloud does not list its users: browse a user's boxes".into(),
            }),
        }
    }

    pub async fn boxes(&self, allow: &[Net], org: &str) -> ApiResult<Vec<RegistryBox>> {
        let v = match self.kind {
            RegistryKind::Boxvault => {
                self.get_json(allow, &["api", "organization", org, "box"])
                    .await?
            }
            RegistryKind::VagrantCloud => self.get_json(allow, &["api", "v2", "user", org]).await?,
        };
        Ok(parse_boxes(org, &v))
    }

    pub async fn versions(
        &self,
        allow: &[Net],
        org: &str,
        name: &str,
    ) -> ApiResult<Vec<RegistryBoxVersion>> {
        let v = match self.kind {
            RegistryKind::Boxvault => {
                self.get_json(
                    allow,
                    &["api", "organization", org, "box", name, "metadata"],
                )
                .await?
            }
            RegistryKind::VagrantCloud => {
                self.get_json(allow, &["api", "v2", "box", org, name])
                    .await?
            }
        };
        Ok(parse_versions(&v))
    }
}

/// The first of `keys` holding a non-empty string (Vagrant Cloud sends `"url": ""` beside a
/// `download_url`).
fn text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| v[*k].as_str().filter(|s| !s.is_empty()))
        .map(str::to_string)
}

/// An array at the top, or under one of `keys`.
fn list<'a>(v: &'a Value, keys: &[&str]) -> &'a [Value] {
    if let Some(a) = v.as_array() {
        return a;
    }
    keys.iter()
        .find_map(|k| v[*k].as_array())
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn parse_organizations(v: &Value) -> Vec<RegistryOrganization> {
    list(v, &["organizations"])
        .iter()
        .filter_map(|o| {
            Some(RegistryOrganization {
                name: text(o, &["name", "organization"])?,
                description: text(o, &["description"]),
            })
        })
        .collect()
}

pub fn parse_boxes(org: &str, v: &Value) -> Vec<RegistryBox> {
    list(v, &["boxes"])
        .iter()
        .filter_map(|b| {
            Some(RegistryBox {
                organization: org.to_string(),
                name: text(b, &["name"])?,
                description: text(b, &["description", "short_description"]),
            })
        })
        .collect()
}

pub fn parse_versions(v: &Value) -> Vec<RegistryBoxVersion> {
    list(v, &["versions"])
        .iter()
        .filter_map(|ver| {
            let providers = list(&ver["providers"], &[])
                .iter()
                .filter_map(|p| {
                    Some(RegistryBoxProvider {
                        name: text(p, &["name"])?,
                        architecture: text(p, &["architecture"]),
                        default_architecture: p["default_architecture"].as_bool().unwrap_or(false),
                        url: text(p, &["url", "download_url"])?,
                        checksum: text(p, &["checksum"]),
                        checksum_type: text(p, &["checksum_type"]),
                    })
                })
                .collect();
            Some(RegistryBoxVersion {
                version: text(ver, &["version", "versionNumber", "version_number"])?,
                description: text(ver, &["description", "description_markdown"]),
                providers,
            })
        })
        .collect()
}

/// The provider file to pull: `provider` (default `libvirt`) for `arch`, or without one the
/// provider's default architecture, else `amd64`, else its only one.
pub fn pick<'a>(
    version: &'a RegistryBoxVersion,
    provider: &str,
    arch: Option<&str>,
) -> ApiResult<&'a RegistryBoxProvider> {
    let of_provider: Vec<&RegistryBoxProvider> = version
        .providers
        .iter()
        .filter(|p| p.name == provider)
        .collect();
    if of_provider.is_empty() {
        let have: Vec<&str> = version.providers.iter().map(|p| p.name.as_str()).collect();
        return Err(ApiError::not_found(format!(
            "version {} has no {provider} provider (it has: {})",
            version.version,
            have.join(", ")
        )));
    }
    let found = match arch {
        Some(a) => of_provider
            .iter()
            .find(|p| p.architecture.as_deref() == Some(a)),
        None => of_provider
            .iter()
            .find(|p| p.default_architecture)
            .or_else(|| {
                of_provider
                    .iter()
                    .find(|p| p.architecture.as_deref() == Some("amd64"))
            })
            .or(if of_provider.len() == 1 {
                of_provider.first()
            } else {
                None
            }),
    };
    found.copied().ok_or_else(|| match arch {
        Some(a) => ApiError::not_found(format!(
            "version {} of the {provider} provider has no architecture {a}",
            version.version
        )),
        None => ApiError::invalid_field(
            "ambiguous_architecture",
            "architecture",
            "the provider has several architectures and none is the default: name one",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vagrant_cloud_box_document() {
        let v = json!({
            "tag": "hashicorp/bionic64", "name": "bionic64",
            "versions": [{
                "version": "1.0.282", "description_markdown": "x",
                "providers": [
                    {"name": "virtualbox", "url": "https://a/vb.box", "checksum": null,
                     "checksum_type": null, "architecture": "amd64", "default_architecture": true},
                    {"name": "libvirt", "download_url": "https://a/lv.box", "url": "",
                     "checksum": "ab", "checksum_type": "sha256", "architecture": "arm64"},
                    {"name": "libvirt", "url": "https://a/lv64.box", "architecture": "amd64"}
                ]
            }]
        });
        let vs = parse_versions(&v);
        assert_eq!(vs.len(), 1);
        assert_eq!(vs[0].version, "1.0.282");
        assert_eq!(vs[0].providers.len(), 3);
        assert_eq!(vs[0].providers[1].url, "https://a/lv.box");
        assert_eq!(pick(&vs[0], "libvirt", None).unwrap().url, "https://a/lv64.box");
        assert_eq!(
            pick(&vs[0], "libvirt", Some("arm64")).unwrap().checksum.as_deref(),
            Some("ab")
        );
        assert_eq!(
            pick(&vs[0], "libvirt", Some("s390x")).unwrap_err().code(),
            "not_found"
        );
        assert_eq!(pick(&vs[0], "hyperv", None).unwrap_err().code(), "not_found");
        let boxes = parse_boxes("hashicorp", &json!({"username": "hashicorp",
            "boxes": [{"name": "bionic64", "short_description": "Ubuntu"}]}));
        assert_eq!(boxes[0].name, "bionic64");
        assert_eq!(boxes[0].description.as_deref(), Some("Ubuntu"));
    }

    #[test]
    fn boxvault_documents() {
        let orgs = parse_organizations(&json!([{"name": "STARTcloud", "description": "d"}, {}]));
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0].name, "STARTcloud");
        let boxes = parse_boxes("o", &json!([{"name": "debian12", "description": "Debian"}]));
        assert_eq!(boxes[0].organization, "o");
        let v = json!({"name": "debian12", "versions": [{"version": "0.0.9", "providers": [
            {"name": "libvirt", "url": "https://bv/x.box", "checksum_type": "sha512",
             "checksum": "00", "architecture": "amd64", "default_architecture": false},
            {"name": "libvirt", "url": "https://bv/y.box", "architecture": "arm64"}
        ]}]});
        let vs = parse_versions(&v);
        assert_eq!(pick(&vs[0], "libvirt", None).unwrap().url, "https://bv/x.box");
        let two = json!({"versions": [{"version": "1", "providers": [
            {"name": "libvirt", "url": "https://bv/a", "architecture": "arm64"},
            {"name": "libvirt", "url": "https://bv/b", "architecture": "riscv64"}
        ]}]});
        let vs = parse_versions(&two);
        assert_eq!(
            pick(&vs[0], "libvirt", None).unwrap_err().code(),
            "ambiguous_architecture"
        );
    }

    #[test]
    fn urls_are_segment_encoded_under_the_base_path() {
        let c = Catalog {
            kind: RegistryKind::Boxvault,
            base: Url::parse("https://bv.example/sub/").unwrap(),
            auth: None,
        };
        assert_eq!(
            c.url(&["api", "organization", "a/b", "box"]).as_str(),
            "https://bv.example/sub/api/organization/a%2Fb/box"
        );
    }
}
