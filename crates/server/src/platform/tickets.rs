//! WebSocket tickets: browsers cannot set headers on a WebSocket, so an area hands out a
//! short-lived, single-use ticket that stands in for the caller's credential on one WebSocket
//! (`?ticket=`): VM consoles (`POST /vms/{id}/console`) today, container exec, LXC consoles and
//! host terminals next.
//!
//! A ticket remembers who asked (user, role, scopes) and the exact paths it opens; it is valid
//! for [`TICKET_TTL`], for one `GET` of one of those paths, and is removed on first use (also
//! when that use is refused). Only a SHA-256 of the ticket is kept. The auth layer calls
//! [`Tickets::redeem`] when a request carries `?ticket=`; the role and scope declared for the
//! path are still checked against the principal the ticket carries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::Method;
use hostplane_types::auth::AuthMethod;

use crate::platform::auth::{Principal, sha256_hex};

/// How long a ticket may wait for its WebSocket.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Outstanding tickets at most (oldest dropped beyond).
const MAX_TICKETS: usize = 4096;
struct Entry {
    paths: Vec<String>,
    principal: Principal,
    expires: Instant,
}

#[derive(Default)]
pub struct Tickets {
    inner: Mutex<HashMap<String, Entry>>,
}

impl Tickets {
    /// A new ticket for `principal`, good for one `GET` of one of `paths` (exact request
    /// paths, e.g. `/api/v1/vms/<id>/serial`); returns the ticket value.
    pub fn issue(&self, paths: Vec<String>, principal: &Principal) -> String {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).expect("the OS random source works");
        let ticket = format!("hpt_{}", hex::encode(raw));
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, e| e.expires > now);
        if map.len() >= MAX_TICKETS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let mut principal = principal.clone();
        principal.method = AuthMethod::Ticket;
        map.insert(
            sha256_hex(ticket.as_bytes()),
            Entry {
                paths,
                principal,
                expires: now + TICKET_TTL,
            },
        );
        ticket
    }

    /// Consumes `ticket` for a request `method path`. Some(principal) only when the ticket
    /// exists, has not expired, and the request is a GET of one of its paths. The ticket is
    /// gone afterwards either way.
    pub fn redeem(&self, ticket: &str, method: &Method, path: &str) -> Option<Principal> {
        let entry = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&sha256_hex(ticket.as_bytes()))?;
        if entry.expires <= Instant::now() || method != Method::GET {
            return None;
        }
        entry
            .paths
            .iter()
            .any(|p| p == path)
            .then_some(entry.principal)
    }

    /// Tickets outstanding (tests, metrics).
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostplane_types::auth::Role;

    fn who() -> Principal {
        Principal {
            user: "alice".into(),
            role: Role::Operator,
            method: AuthMethod::Bearer,
            token_id: Some("abc".into()),
            scopes: vec!["vms".into()],
        }
    }

    fn consoles(vm: &str) -> Vec<String> {
        ["serial", "vnc"]
            .iter()
            .map(|c| format!("/api/v1/vms/{vm}/{c}"))
            .collect()
    }

    #[test]
    fn single_use_and_bound_to_its_paths() {
        let t = Tickets::default();
        let a = t.issue(consoles("vm1"), &who());
        let p = t
            .redeem(&a, &Method::GET, "/api/v1/vms/vm1/serial")
            .unwrap();
        assert_eq!(p.user, "alice");
        assert_eq!(p.method, AuthMethod::Ticket);
        assert_eq!(p.scopes, vec!["vms".to_string()]);
        assert!(
            t.redeem(&a, &Method::GET, "/api/v1/vms/vm1/serial")
                .is_none()
        );

        let b = t.issue(consoles("vm1"), &who());
        assert!(t.redeem(&b, &Method::GET, "/api/v1/vms/vm2/vnc").is_none());
        assert!(
            t.redeem(&b, &Method::GET, "/api/v1/vms/vm1/vnc").is_none(),
            "a refused use still consumes the ticket"
        );
        let c = t.issue(consoles("vm1"), &who());
        assert!(t.redeem(&c, &Method::DELETE, "/api/v1/vms/vm1").is_none());
        let d = t.issue(consoles("vm1"), &who());
        assert!(t.redeem(&d, &Method::GET, "/api/v1/vms/vm1").is_none());
        let e = t.issue(consoles("vm1"), &who());
        assert!(t.redeem(&e, &Method::GET, "/api/v1/vms/vm1/vnc").is_some());
        assert!(
            t.redeem("hpt_nonsense", &Method::GET, "/api/v1/vms/vm1/vnc")
                .is_none()
        );
        assert!(t.is_empty());
    }

    #[test]
    fn expired_tickets_fail() {
        let t = Tickets::default();
        let a = t.issue(consoles("vm1"), &who());
        for e in t.inner.lock().unwrap().values_mut() {
            e.expires = Instant::now() - Duration::from_secs(1);
        }
        assert!(
            t.redeem(&a, &Method::GET, "/api/v1/vms/vm1/serial")
                .is_none()
        );
    }
}
