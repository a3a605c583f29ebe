//! Share users' accounts. A user with role `share` reaches SMB shares only: smbd needs a Unix
//! account of the same name (created here without home or shell, in `[shares] group`, unless
//! `[shares] unix_accounts = false`) and a Samba password, set from the password given to the
//! users API (the only time hostplane sees it in clear).
//!
//! The users area calls [`before_create`] / [`after_create`], [`update`] and [`before_delete`].
//! hostplane never takes over an existing Unix account it did not create (409
//! `unix_account_exists`), and only deletes accounts it created.

use hostplane_host::{accounts as unix, samba};
use hostplane_types::auth::Role;

use super::registry::{self, Options};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Regular accounts: Debian's `UID_MIN` up to (not including) `nobody`.
const FIRST_REGULAR_UID: u32 = 1000;
const NOBODY_UID: u32 = 65534;

/// Checks before a share user is stored: a Unix-compatible name, a password, Samba present,
/// and no foreign Unix account of that name.
pub async fn before_create(state: &AppState, name: &str, password: Option<&str>) -> ApiResult<()> {
    unix::check_unix_name(name)
        .map_err(|e| ApiError::invalid_field("invalid_name", "name", e.to_string()))?;
    match password {
        None => {
            return Err(ApiError::invalid_field(
                "password_required",
                "password",
                "a share user needs a password (it becomes the SMB password)",
            ));
        }
        Some(pw) => check_password(pw)?,
    }
    if !super::smb_available() {
        return Err(super::smb_unavailable());
    }
    let exists = unix::user_exists(name).await.map_err(ApiError::from)?;
    if state.config.shares.unix_accounts {
        if exists && !registry::account_created(&state.store, name)? {
            return Err(ApiError::conflict(
                "unix_account_exists",
                format!(
                    "a Unix account {name:?} exists that hostplane did not create; pick another name"
                ),
            ));
        }
    } else if !exists {
        return Err(ApiError::conflict(
            "unix_account_missing",
            format!(
                "there is no Unix account {name:?}, and [shares] unix_accounts = false says \
                 hostplane must not create one"
            ),
        ));
    } else {
        // An existing account is used as it is, but never a system account (root, daemons):
        // a share password must not open those.
        let uid = unix::uid_of(name).await.map_err(ApiError::from)?.unwrap_or(0);
        if !(FIRST_REGULAR_UID..NOBODY_UID).contains(&uid) {
            return Err(ApiError::conflict(
                "unix_account_reserved",
                format!("{name:?} is a system account (uid {uid}); share users need a regular one"),
            ));
        }
    }
    Ok(())
}

/// smbpasswd reads the password as a line: a line break would cut it short, silently.
fn check_password(pw: &str) -> ApiResult<()> {
    if pw.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "invalid_password",
            "password",
            "a share user's password cannot hold line breaks or other control characters",
        ));
    }
    Ok(())
}

/// Gives a stored share user their Unix account and Samba password.
pub async fn after_create(state: &AppState, name: &str, password: &str) -> ApiResult<()> {
    let cfg = &state.config.shares;
    if cfg.unix_accounts && !unix::user_exists(name).await.map_err(ApiError::from)? {
        if unix::ensure_group(&cfg.group).await.map_err(ApiError::from)? {
            // Made here: removed again when the last share user goes.
            state
                .store
                .set_setting(registry::GROUP_CREATED, &cfg.group)
                .map_err(ApiError::internal)?;
        }
        unix::add_user(name, &cfg.group).await.map_err(ApiError::from)?;
        registry::record_account(&state.store, name, &crate::platform::time::now_string())?;
    }
    samba::set_password(&cfg.smb_config, name, password)
        .await
        .map_err(ApiError::from)?;
    // Shares created before the first share user could not hand their folders to the group.
    super::sync(state).await;
    Ok(())
}

/// Removes the Samba entry and the Unix account hostplane created.
async fn remove(state: &AppState, name: &str) -> ApiResult<()> {
    samba::remove_user(&state.config.shares.smb_config, name)
        .await
        .map_err(ApiError::from)?;
    if registry::account_created(&state.store, name)? {
        if unix::user_exists(name).await.map_err(ApiError::from)? {
            unix::delete_user(name).await.map_err(ApiError::from)?;
        }
        registry::forget_account(&state.store, name)?;
        remove_group_if_unused(state).await?;
    }
    Ok(())
}

/// The share group goes with the last share user, if hostplane created it.
async fn remove_group_if_unused(state: &AppState) -> ApiResult<()> {
    let group = &state.config.shares.group;
    let created = state
        .store
        .get_setting(registry::GROUP_CREATED)
        .map_err(ApiError::internal)?;
    if created.as_deref() != Some(group.as_str()) || registry::account_count(&state.store)? > 0 {
        return Ok(());
    }
    if unix::group_exists(group).await.map_err(ApiError::from)?
        && let Err(e) = unix::delete_group(group).await
    {
        // Someone else's account uses it as its primary group: it stays, and is theirs.
        tracing::warn!(group, error = %e, "share group not removed");
        return Ok(());
    }
    state
        .store
        .set_setting(registry::GROUP_CREATED, "")
        .map_err(ApiError::internal)?;
    Ok(())
}

/// 409 while shares name the user in `valid_users` or `write_list`.
fn refuse_if_named(state: &AppState, name: &str) -> ApiResult<()> {
    let using: Vec<String> = registry::load_all(&state.store)?
        .into_iter()
        .filter(|r| match &r.options {
            Options::Smb(o) => o.valid_users.iter().chain(&o.write_list).any(|u| u == name),
            Options::Nfs(_) => false,
        })
        .map(|r| r.href())
        .collect();
    if using.is_empty() {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "share_user_in_use",
            format!(
                "{name:?} is named by {}; take it out first",
                using.join(", ")
            ),
        ))
    }
}

/// Before a user is deleted.
pub async fn before_delete(state: &AppState, name: &str, role: Role) -> ApiResult<()> {
    if role == Role::Share {
        refuse_if_named(state, name)?;
        remove(state, name).await?;
    }
    Ok(())
}

/// Checks a role or password change before it is stored (`old` → `new`).
pub async fn before_update(
    state: &AppState,
    name: &str,
    old: Role,
    new: Role,
    password: Option<&str>,
) -> ApiResult<()> {
    match (old == Role::Share, new == Role::Share) {
        (false, true) => before_create(state, name, password).await,
        (true, false) => refuse_if_named(state, name),
        (true, true) => password.map_or(Ok(()), check_password),
        _ => Ok(()),
    }
}

/// After a role or password change is stored.
pub async fn after_update(
    state: &AppState,
    name: &str,
    old: Role,
    new: Role,
    password: Option<&str>,
) -> ApiResult<()> {
    match (old == Role::Share, new == Role::Share, password) {
        (false, true, Some(pw)) => after_create(state, name, pw).await,
        (true, true, Some(pw)) => samba::set_password(&state.config.shares.smb_config, name, pw)
            .await
            .map_err(ApiError::from),
        (true, false, _) => remove(state, name).await,
        _ => Ok(()),
    }
}
