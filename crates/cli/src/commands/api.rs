//! `api METHOD PATH [--data …]`: a raw call. Status line to stderr, body to stdout (pretty when
//! JSON, streamed as it arrives otherwise); exit 0 for 2xx, 1 otherwise.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use hyper::Method;

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// HTTP method: GET, POST, PUT, PATCH, DELETE, …
    pub method: String,
    /// Path from the server root, e.g. /api/v1/auth/whoami (query included).
    pub path: String,
    /// JSON body: inline, `@FILE`, or `-` for stdin.
    #[arg(long, short = 'd', value_name = "JSON|@FILE|-")]
    pub data: Option<String>,
}

/// The body `--data` names.
pub fn read_data(data: &str) -> anyhow::Result<Vec<u8>> {
    if data == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the body from stdin")?;
        Ok(buf)
    } else if let Some(file) = data.strip_prefix('@') {
        std::fs::read(file).with_context(|| format!("reading the body from {file}"))
    } else {
        Ok(data.as_bytes().to_vec())
    }
}

pub async fn run(ctx: &Ctx, args: ApiArgs) -> anyhow::Result<i32> {
    if !args.path.starts_with('/') {
        bail!(
            "the path must start with /, e.g. /api/v1/auth/whoami (got {:?})",
            args.path
        );
    }
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .with_context(|| format!("{:?} is not an HTTP method", args.method))?;
    let body = args.data.as_deref().map(read_data).transpose()?;
    let mut resp = ctx.client.send(method, &args.path, body).await?;
    let status = resp.status;
    eprintln!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let ct = resp.content_type().to_ascii_lowercase();
    let is_json = ct.starts_with("application/json")
        || (ct.starts_with("application/") && ct.contains("+json"));
    if is_json {
        let bytes = resp.bytes().await?;
        match crate::output::pretty_json(&bytes) {
            Some(text) => crate::output::println(&text)?,
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()?;
            }
        }
    } else {
        while let Some(chunk) = resp.chunk().await? {
            let mut out = std::io::stdout().lock();
            out.write_all(&chunk)?;
            out.flush()?;
        }
    }
    Ok(if status.is_success() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn data_inline_and_from_a_file() {
        assert_eq!(super::read_data(r#"{"a":1}"#).unwrap(), br#"{"a":1}"#);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("body.json");
        std::fs::write(&f, "{}").unwrap();
        assert_eq!(
            super::read_data(&format!("@{}", f.display())).unwrap(),
            b"{}"
        );
        assert!(super::read_data("@/nonexistent/x.json").is_err());
    }
}
