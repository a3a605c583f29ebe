//! The cloud-init NoCloud seed: an ISO 9660 image with volume id `cidata` holding `user-data`,
//! `meta-data` and optionally `network-config`, written with `genisoimage`, `mkisofs` or
//! `xorriso -as mkisofs` (whichever is installed, in that order) through the command runner.

use std::path::Path;

use crate::command::{Cmd, CommandError, validate_path_arg, which};

/// A program that writes ISO 9660 images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsoTool {
    Genisoimage,
    Mkisofs,
    Xorriso,
}

impl IsoTool {
    /// The first one installed.
    pub fn find() -> Option<IsoTool> {
        [IsoTool::Genisoimage, IsoTool::Mkisofs, IsoTool::Xorriso]
            .into_iter()
            .find(|t| which(t.program()).is_some())
    }

    pub fn program(self) -> &'static str {
        match self {
            IsoTool::Genisoimage => "genisoimage",
            IsoTool::Mkisofs => "mkisofs",
            IsoTool::Xorriso => "xorriso",
        }
    }
}

/// A file of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedFile {
    UserData,
    MetaData,
    NetworkConfig,
}

impl SeedFile {
    /// Its name in the seed directory and on the ISO.
    pub fn name(self) -> &'static str {
        match self {
            SeedFile::UserData => "user-data",
            SeedFile::MetaData => "meta-data",
            SeedFile::NetworkConfig => "network-config",
        }
    }
}

/// Writes `iso` from the `files` in directory `src` (volume id `cidata`, Joliet and Rock
/// Ridge names).
pub async fn write_iso(
    tool: IsoTool,
    src: &Path,
    files: &[SeedFile],
    iso: &Path,
) -> Result<(), CommandError> {
    validate_path_arg("seed ISO path", iso.as_os_str())?;
    let mut cmd = Cmd::new(tool.program());
    if tool == IsoTool::Xorriso {
        cmd = cmd.args(["-as", "mkisofs"]);
    }
    cmd.args(["-quiet", "-output"])
        .arg(iso)
        .args(["-volid", "cidata", "-joliet", "-rock"])
        .args(files.iter().map(|f| f.name()))
        .cwd(src)
        .run()
        .await
        .map(|_| ())
}
