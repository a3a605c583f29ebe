//! The vendor-side commands of the `hostplane` binary: `keys generate`, `package build`,
//! `package inspect`, `license issue`, `license verify`. They need no daemon.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::{keys, license, update};

#[derive(Debug, Subcommand)]
pub enum VendorCommand {
    /// Vendor signing keys and appliance encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Update packages: build (sign and encrypt) and inspect.
    #[command(subcommand)]
    Package(PackageCommand),
    /// Licences: issue (sign) and verify.
    #[command(subcommand)]
    License(LicenseCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a vendor signing key pair (vendor.key, vendor.pub) and an appliance age identity
    /// (appliance.key, appliance.pub) into DIR. Existing files are never overwritten.
    Generate(KeysGenerateArgs),
}

#[derive(Debug, Args)]
pub struct KeysGenerateArgs {
    /// Directory to write the keys to (created 0700 if absent).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Only the vendor signing key pair.
    #[arg(long, conflicts_with = "appliance_only")]
    pub vendor_only: bool,
    /// Only the appliance identity.
    #[arg(long)]
    pub appliance_only: bool,
}

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Build an update package: manifest + script + payload in a tar, signed with the vendor key
    /// and encrypted to the appliance recipient(s).
    #[command(disable_version_flag = true)]
    Build(PackageBuildArgs),
    /// Decrypt and verify a package, print its manifest (nothing is run).
    Inspect(PackageInspectArgs),
}

#[derive(Debug, Args)]
pub struct PackageBuildArgs {
    /// Version the appliance reports after the update (semver).
    #[arg(long = "version", value_name = "VERSION")]
    pub pkg_version: String,
    /// Lowest installed version the package applies to (semver).
    #[arg(long, value_name = "VERSION")]
    pub min_version: String,
    /// Changelog file (text).
    #[arg(long, value_name = "FILE")]
    pub changelog: PathBuf,
    /// Build information: a JSON object, or @FILE holding one.
    #[arg(long, value_name = "JSON")]
    pub build_info: String,
    /// Payload: a directory (copied as a tree) or one file.
    #[arg(long, value_name = "DIR_OR_FILE")]
    pub payload: PathBuf,
    /// Update script, executed on the appliance (needs a #! line).
    #[arg(long, value_name = "FILE")]
    pub script: PathBuf,
    /// Vendor signing key file (vendor.key).
    #[arg(long, value_name = "FILE")]
    pub signing_key: PathBuf,
    /// Appliance recipient: age1… or a file holding one (appliance.pub). Repeat for several.
    #[arg(long, value_name = "AGE1_OR_FILE", required = true)]
    pub recipient: Vec<String>,
    /// Output file (conventionally NAME.enc).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct PackageInspectArgs {
    /// Appliance identity file (appliance.key).
    #[arg(long, value_name = "FILE")]
    pub identity: PathBuf,
    /// Vendor public key: base64, or a file holding it (vendor.pub).
    #[arg(long, value_name = "KEY_OR_FILE")]
    pub vendor_key: String,
    /// The package.
    pub package: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Issue a licence signed with the vendor key.
    Issue(LicenseIssueArgs),
    /// Verify a licence against a vendor public key and print it.
    Verify(LicenseVerifyArgs),
}

#[derive(Debug, Args)]
pub struct LicenseIssueArgs {
    /// Application or edition, e.g. enterprise.
    #[arg(long)]
    pub app: String,
    /// Number of users.
    #[arg(long)]
    pub users: u64,
    /// Last valid day, YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub expires: String,
    /// Licensee name.
    #[arg(long)]
    pub name: String,
    /// Licensee contact.
    #[arg(long)]
    pub contact: String,
    /// Vendor signing key file (vendor.key).
    #[arg(long, value_name = "FILE")]
    pub signing_key: PathBuf,
    /// Output file (conventionally license.asc).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct LicenseVerifyArgs {
    /// Vendor public key: base64, or a file holding it (vendor.pub).
    #[arg(long, value_name = "KEY_OR_FILE")]
    pub vendor_key: String,
    /// The licence file.
    pub license: PathBuf,
}

/// Runs a vendor command; returns the process exit code (errors are printed).
pub fn run(cmd: VendorCommand) -> u8 {
    match run_inner(cmd) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hostplane: {e:#}");
            1
        }
    }
}

fn run_inner(cmd: VendorCommand) -> anyhow::Result<()> {
    match cmd {
        VendorCommand::Keys(KeysCommand::Generate(a)) => keys_generate(&a),
        VendorCommand::Package(PackageCommand::Build(a)) => package_build(&a),
        VendorCommand::Package(PackageCommand::Inspect(a)) => package_inspect(&a),
        VendorCommand::License(LicenseCommand::Issue(a)) => license_issue(&a),
        VendorCommand::License(LicenseCommand::Verify(a)) => license_verify(&a),
    }
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// A key given inline, or the path of a file holding it.
fn key_arg(arg: &str) -> anyhow::Result<String> {
    let p = Path::new(arg);
    if p.is_file() {
        read_text(p)
    } else {
        Ok(arg.to_string())
    }
}

/// Writes a new file (never replacing one) with `mode`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn keys_generate(a: &KeysGenerateArgs) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&a.out)
        .with_context(|| format!("creating {}", a.out.display()))?;
    let vendor = !a.appliance_only;
    let appliance = !a.vendor_only;
    let names: Vec<&str> = [
        (vendor, "vendor.key"),
        (vendor, "vendor.pub"),
        (appliance, "appliance.key"),
        (appliance, "appliance.pub"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect();
    if let Some(n) = names.iter().find(|n| a.out.join(n).exists()) {
        bail!("{} exists; not overwriting keys", a.out.join(n).display());
    }
    if vendor {
        let k = keys::generate_signing_key();
        let public = keys::public_key_string(&k.verifying_key());
        write_new(
            &a.out.join("vendor.key"),
            keys::signing_key_file(&k).as_bytes(),
            0o600,
        )?;
        write_new(
            &a.out.join("vendor.pub"),
            format!("{public}\n").as_bytes(),
            0o644,
        )?;
        println!("vendor signing key: {}", a.out.join("vendor.key").display());
        println!("  appliance config: [admin] vendor_public_key = \"{public}\"");
    }
    if appliance {
        let id = keys::generate_identity();
        let recipient = id.to_public().to_string();
        write_new(
            &a.out.join("appliance.key"),
            keys::identity_file(&id).as_bytes(),
            0o600,
        )?;
        write_new(
            &a.out.join("appliance.pub"),
            format!("{recipient}\n").as_bytes(),
            0o644,
        )?;
        println!(
            "appliance identity: {}",
            a.out.join("appliance.key").display()
        );
        println!(
            "  appliance config: [admin] appliance_identity = \"{}\"",
            a.out.join("appliance.key").display()
        );
        println!("  packages are encrypted to: {recipient}");
    }
    Ok(())
}

fn build_info(arg: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let text = match arg.strip_prefix('@') {
        Some(path) => read_text(Path::new(path))?,
        None => arg.to_string(),
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => {
            bail!("--build-info must be a JSON object, e.g. '{{\"builddate\":\"123456789\"}}'")
        }
        Err(e) => bail!("--build-info is not JSON: {e}"),
    }
}

fn package_build(a: &PackageBuildArgs) -> anyhow::Result<()> {
    let key = keys::parse_signing_key(&read_text(&a.signing_key)?)
        .with_context(|| format!("{}", a.signing_key.display()))?;
    let mut recipients = Vec::new();
    for r in &a.recipient {
        let text = key_arg(r)?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            recipients.push(keys::parse_recipient(line)?);
        }
    }
    let spec = update::BuildSpec {
        version: a.pkg_version.clone(),
        min_version: a.min_version.clone(),
        changelog: read_text(&a.changelog)?,
        build: build_info(&a.build_info)?,
        payload: a.payload.clone(),
        script: a.script.clone(),
    };
    // Build into a temp file next to the output, then rename: no half-written package.
    let dir = a
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    let manifest = update::build(&spec, &key, &recipients, std::io::BufWriter::new(&mut tmp))?;
    tmp.as_file().sync_all()?;
    tmp.persist(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let size = std::fs::metadata(&a.out)?.len();
    println!(
        "wrote {} ({size} bytes): version {} (applies over >= {}), {} files, {} recipient(s)",
        a.out.display(),
        manifest.version,
        manifest.min_version,
        manifest.files.len(),
        recipients.len()
    );
    Ok(())
}

fn package_inspect(a: &PackageInspectArgs) -> anyhow::Result<()> {
    let ids = keys::parse_identity_file(&read_text(&a.identity)?)?;
    let vendor = keys::parse_public_key(&key_arg(&a.vendor_key)?)?;
    let file = std::fs::File::open(&a.package)
        .with_context(|| format!("opening {}", a.package.display()))?;
    let dest = tempfile::tempdir()?;
    let manifest = update::open(file, &ids, &vendor, dest.path())?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}

fn license_issue(a: &LicenseIssueArgs) -> anyhow::Result<()> {
    let key = keys::parse_signing_key(&read_text(&a.signing_key)?)
        .with_context(|| format!("{}", a.signing_key.display()))?;
    let today = time::OffsetDateTime::now_utc().date();
    let fields = license::LicenseFields {
        app: a.app.clone(),
        users: a.users,
        expires: a.expires.clone(),
        name: a.name.clone(),
        contact: a.contact.clone(),
        issued: Some(
            today
                .format(time::macros::format_description!("[year]-[month]-[day]"))
                .unwrap_or_default(),
        ),
    };
    let text = license::issue(&fields, &key)?;
    std::fs::write(&a.out, text).with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {}: {} for {} ({} users) until {}",
        a.out.display(),
        fields.app,
        fields.name,
        fields.users,
        fields.expires
    );
    Ok(())
}

fn license_verify(a: &LicenseVerifyArgs) -> anyhow::Result<()> {
    let vendor = keys::parse_public_key(&key_arg(&a.vendor_key)?)?;
    let l = license::verify(&read_text(&a.license)?, &vendor)?;
    let expired = l.is_expired(time::OffsetDateTime::now_utc().date());
    let mut v = serde_json::to_value(&l.fields)?;
    v["expired"] = serde_json::Value::Bool(expired);
    println!("{}", serde_json::to_string_pretty(&v)?);
    if expired {
        bail!("the licence expired on {}", l.fields.expires);
    }
    Ok(())
}
