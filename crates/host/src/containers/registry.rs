//! Image references and registry manifests (the Distribution API v2), for update checks.
//!
//! Flow: [`Reference::parse`] splits `[registry[:port]/]path[:tag][@digest]` the way engines
//! do (no registry part: Docker Hub, `library/` for one-word names). [`Registry::digest`] asks
//! the registry for the manifest digest of the reference's tag now: `HEAD
//! /v2/<path>/manifests/<tag>` with the manifest types engines pull as `Accept`, reading
//! `Docker-Content-Digest` (a `GET` when a registry answers HEAD without it). A `401` with a
//! `Bearer` challenge gets an anonymous token from the realm first. Loopback registries are
//! spoken to over plain HTTP (as engines allow them), every other one over HTTPS. The client
//! follows no redirect to another host: a registry that sends one gets no answer from us.

use std::time::Duration;

/// The manifest types an engine pulls; the digest of the one the registry picks is the digest
/// the engine recorded.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.manifest.v1+json";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`, `docker.io` for Docker Hub.
    pub registry: String,
    /// `library/busybox`, `hp/bb`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(s: &str) -> Option<Reference> {
        if s.is_empty() || s.contains("..") || s.starts_with('-') {
            return None;
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        // A tag is a `:` after the last `/` (a `:` before it is a registry port).
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (
                "docker.io".to_string(),
                if name.contains('/') {
                    name.to_string()
                } else {
                    format!("library/{name}")
                },
            ),
        };
        if repository.is_empty() || tag.as_deref() == Some("") {
            return None;
        }
        Some(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `image` with `:latest` appended when it has neither tag nor digest.
    pub fn with_default_tag(&self, image: &str) -> String {
        if self.tag.is_none() && self.digest.is_none() {
            format!("{image}:latest")
        } else {
            image.to_string()
        }
    }

    /// Whether two references name the same repository (registry and path).
    pub fn same_repository(&self, other: &Reference) -> bool {
        self.registry == other.registry && self.repository == other.repository
    }

    fn host(&self) -> &str {
        let r = self.registry.as_str();
        if let Some(rest) = r.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        r.rsplit_once(':').map(|(h, _)| h).unwrap_or(r)
    }

    /// Loopback registries (spoken to over HTTP, as engines allow them by default).
    pub fn is_loopback(&self) -> bool {
        matches!(self.host(), "localhost" | "::1") || self.host().starts_with("127.")
    }

    /// The base URL of the registry's API.
    pub fn api_base(&self) -> String {
        match self.registry.as_str() {
            "docker.io" | "index.docker.io" => "https://registry-1.docker.io".into(),
            r if self.is_loopback() => format!("http://{r}"),
            r => format!("https://{r}"),
        }
    }
}

/// The digest in a repo digest entry (`repo@sha256:…`) when its repository is `r`'s.
pub fn digest_for(r: &Reference, repo_digests: &[String]) -> Option<String> {
    repo_digests.iter().find_map(|d| {
        let (repo, digest) = d.split_once('@')?;
        let parsed = Reference::parse(repo)?;
        parsed.same_repository(r).then(|| digest.to_string())
    })
}

/// A registry client: bounded, no redirects to another host.
pub struct Registry {
    http: reqwest::Client,
}

impl Registry {
    pub fn new(timeout: Duration) -> Result<Registry, String> {
        let policy = reqwest::redirect::Policy::custom(|a| {
            let first = a.previous().first();
            let same = first.is_some_and(|f| {
                f.host_str() == a.url().host_str()
                    && f.port_or_known_default() == a.url().port_or_known_default()
            });
            if !same {
                a.error("redirect to another host refused")
            } else if a.previous().len() > 5 {
                a.error("too many redirects")
            } else {
                a.follow()
            }
        });
        let http = reqwest::Client::builder()
            .redirect(policy)
            .timeout(timeout)
            .user_agent(concat!("hostplane/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Registry { http })
    }

    /// The registry's manifest digest for `r`'s tag now.
    pub async fn digest(&self, r: &Reference) -> Result<String, String> {
        let tag = r.tag.as_deref().unwrap_or("latest");
        let url = format!("{}/v2/{}/manifests/{tag}", r.api_base(), r.repository);
        let mut token: Option<String> = None;
        for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
            for _ in 0..2 {
                let mut req = self
                    .http
                    .request(method.clone(), &url)
                    .header("Accept", MANIFEST_ACCEPT);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
                let status = resp.status();
                if status == reqwest::StatusCode::UNAUTHORIZED && token.is_none() {
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    token = Some(self.token(r, &challenge).await?);
                    continue;
                }
                if !status.is_success() {
                    return Err(format!("{url}: the registry answered {status}"));
                }
                if let Some(d) = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                {
                    return Ok(d.to_string());
                }
                break;
            }
        }
        Err(format!("{url}: no Docker-Content-Digest in the answer"))
    }

    /// An anonymous pull token from a `Bearer realm=…,service=…,scope=…` challenge.
    async fn token(&self, r: &Reference, challenge: &str) -> Result<String, String> {
        let params = parse_challenge(challenge)
            .ok_or_else(|| format!("{}: authentication required", r.registry))?;
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or("a Bearer challenge without realm")?;
        let mut realm_url =
            reqwest::Url::parse(&realm).map_err(|e| format!("realm {realm:?}: {e}"))?;
        let loopback = realm_url
            .host_str()
            .is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]");
        if realm_url.scheme() != "https" && !loopback {
            return Err(format!("realm {realm:?} is not https"));
        }
        let mut q: Vec<(String, String)> = params
            .into_iter()
            .filter(|(k, _)| k == "service" || k == "scope")
            .collect();
        if !q.iter().any(|(k, _)| k == "scope") {
            q.push(("scope".into(), format!("repository:{}:pull", r.repository)));
        }
        realm_url.query_pairs_mut().extend_pairs(q);
        let v: serde_json::Value = self
            .http
            .get(realm_url)
            .send()
            .await
            .map_err(|e| format!("token: {e}"))?
            .error_for_status()
            .map_err(|e| format!("token: {e}"))?
            .json()
            .await
            .map_err(|e| format!("token: {e}"))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| "the token answer has no token".into())
    }
}

/// `Bearer realm="…",service="…"` → its parameters.
fn parse_challenge(h: &str) -> Option<Vec<(String, String)>> {
    let rest = h.trim().strip_prefix("Bearer ")?;
    let mut out = Vec::new();
    let mut s = rest;
    while !s.is_empty() {
        let (k, v) = s.split_once('=')?;
        let v = v.trim_start();
        let (val, tail) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (&v[..end], &v[end..])
        };
        out.push((k.trim().to_string(), val.to_string()));
        s = tail.trim_start_matches(',').trim_start();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_engines() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/busybox", None)
        );
        let r = Reference::parse("127.0.0.1:5000/hp/bb:2").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "hp/bb", Some("2"))
        );
        assert!(r.is_loopback());
        assert_eq!(r.api_base(), "http://127.0.0.1:5000");
        let r = Reference::parse("localhost/hp-bb:t1").unwrap();
        assert_eq!(r.registry, "localhost");
        let r = Reference::parse("ghcr.io/a/b@sha256:ab").unwrap();
        assert_eq!(r.digest.as_deref(), Some("sha256:ab"));
        assert_eq!(r.api_base(), "https://ghcr.io");
        assert!(Reference::parse("a:").is_none());
        assert_eq!(
            Reference::parse("x/y").unwrap().with_default_tag("x/y"),
            "x/y:latest"
        );
    }

    #[test]
    fn repo_digests_match_by_repository() {
        let r = Reference::parse("busybox:1").unwrap();
        let d = vec![
            "other@sha256:1".to_string(),
            "docker.io/library/busybox@sha256:2".to_string(),
        ];
        assert_eq!(digest_for(&r, &d).as_deref(), Some("sha256:2"));
        let d = vec!["busybox@sha256:3".to_string()];
        assert_eq!(digest_for(&r, &d).as_deref(), Some("sha256:3"));
    }

    #[test]
    fn challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(
            c[0],
            ("realm".into(), "https://auth.docker.io/token".into())
        );
        assert_eq!(c.len(), 3);
    }
}
