//! Unix accounts for share users: smbd maps every SMB user to a Unix account, so each share
//! user gets one without a home or a login shell, in one group ([`ensure_group`]). Names are
//! checked with [`check_unix_name`] before anything runs.

use std::time::Duration;

use crate::command::{Cmd, CommandError};

/// `^[a-z_][a-z0-9_-]{0,31}$`: what `useradd` takes everywhere, at most 32 bytes.
pub fn check_unix_name(name: &str) -> Result<(), CommandError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(CommandError::invalid(format!(
            "{name:?} cannot be a Unix account: use 1 to 32 of a-z 0-9 _ -, starting with a \
             letter or _"
        )))
    }
}

/// The NSS entry of `name` in database `db` (`passwd`, `group`): what smbd sees too.
async fn getent(db: &str, name: &str) -> Result<Option<String>, CommandError> {
    check_unix_name(name)?;
    let out = Cmd::new("getent")
        .args([db, name])
        .ok_codes(&[0, 2])
        .timeout(Duration::from_secs(10))
        .run()
        .await?;
    Ok((out.status == 0).then(|| out.stdout_lossy().into_owned()))
}

/// Whether a Unix account of this name exists.
pub async fn user_exists(name: &str) -> Result<bool, CommandError> {
    Ok(getent("passwd", name).await?.is_some())
}

pub async fn group_exists(name: &str) -> Result<bool, CommandError> {
    Ok(getent("group", name).await?.is_some())
}

/// Creates the group as a system group unless it exists; true when it made it.
pub async fn ensure_group(name: &str) -> Result<bool, CommandError> {
    if group_exists(name).await? {
        return Ok(false);
    }
    check_unix_name(name)?;
    Cmd::new("groupadd")
        .args(["--system", "--", name])
        .timeout(Duration::from_secs(30))
        .run()
        .await?;
    Ok(true)
}

/// Deletes a group (`groupdel` refuses while an account has it as its primary group).
pub async fn delete_group(name: &str) -> Result<(), CommandError> {
    check_unix_name(name)?;
    Cmd::new("groupdel")
        .args(["--", name])
        .timeout(Duration::from_secs(30))
        .run()
        .await?;
    Ok(())
}

/// Creates a login-less account without a home directory whose primary group is `group`.
pub async fn add_user(name: &str, group: &str) -> Result<(), CommandError> {
    check_unix_name(name)?;
    check_unix_name(group)?;
    Cmd::new("useradd")
        .args([
            "--no-create-home",
            "--no-user-group",
            "--gid",
            group,
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "hostplane share user",
            "--",
            name,
        ])
        .timeout(Duration::from_secs(30))
        .run()
        .await?;
    Ok(())
}

pub async fn delete_user(name: &str) -> Result<(), CommandError> {
    check_unix_name(name)?;
    Cmd::new("userdel")
        .args(["--", name])
        .timeout(Duration::from_secs(30))
        .run()
        .await?;
    Ok(())
}

/// Field `index` of the NSS entry of `name` in database `db`, parsed.
async fn getent_number(db: &str, name: &str, index: usize) -> Result<Option<u32>, CommandError> {
    Ok(getent(db, name)
        .await?
        .and_then(|e| e.split(':').nth(index)?.trim().parse().ok()))
}

/// The uid of an account (through NSS).
pub async fn uid_of(user: &str) -> Result<Option<u32>, CommandError> {
    getent_number("passwd", user, 2).await
}

/// The numeric id of a group (through NSS), for chown.
pub async fn gid_of(group: &str) -> Result<Option<u32>, CommandError> {
    getent_number("group", group, 2).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_names() {
        for ok in ["alice", "_svc", "bob-2", "a_b"] {
            assert!(check_unix_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Alice", "1abc", "-x", "a.b", "a b", &"a".repeat(33)] {
            assert!(check_unix_name(bad).is_err(), "{bad}");
        }
    }
}
