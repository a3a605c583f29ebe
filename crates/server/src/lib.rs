//! hostplane daemon: the platform (store, auth, jobs, events, audit) and the API areas.
//! See ARCHITECTURE.md for the request flow.

pub mod areas;
pub mod config;
#[cfg(test)]
mod conventions;
pub mod error;
#[cfg(test)]
mod error_codes;
pub mod fsutil;
#[cfg(test)]
mod host_adapters;
pub mod http;
pub mod logfile;
pub mod platform;
pub mod serve;
pub mod state;
pub mod tls;

/// When this process was started as the DHCP client's event script (the program name is
/// `hostplane-udhcpc-hook`, a link the network area makes to the daemon's binary): runs the
/// hook for the event in `args` and returns its exit code. `main` calls this before parsing.
pub fn dhcp_client_hook(argv0: &std::ffi::OsStr, event: Option<&str>) -> Option<i32> {
    use hostplane_host::network::dhcp_client;
    dhcp_client::is_hook(argv0).then(|| dhcp_client::hook_main(event.unwrap_or("")))
}

/// This process was started by QEMU as the bridge helper of a VM NIC in bridge mode (the
/// program name is `hostplane-bridge-helper`, a link the VM area makes to the daemon's binary).
pub fn is_bridge_helper(argv0: &std::ffi::OsStr) -> bool {
    hostplane_host::qemu::bridge_helper::is_helper(argv0)
}

/// The bridge helper's `main` (QEMU's arguments after `argv[0]`): its exit code.
pub fn bridge_helper_main(args: impl Iterator<Item = std::ffi::OsString>) -> i32 {
    hostplane_host::qemu::bridge_helper::helper_main(args)
}

/// The OpenAPI document as JSON (what `hostplane openapi` prints and `openapi.json` holds).
pub fn openapi_json() -> String {
    let (_, doc) = http::openapi_and_router();
    let mut value = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    sort_extensions(&mut value);
    serde_json::to_string_pretty(&value).expect("the OpenAPI document serializes")
}

/// utoipa keeps `x-*` extensions in a hash map, so their order changes from run to run; the
/// committed document puts them last, sorted, so regenerating it changes nothing.
fn sort_extensions(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let mut ext: Vec<(String, serde_json::Value)> = Vec::new();
            for key in map
                .keys()
                .filter(|k| k.starts_with("x-"))
                .cloned()
                .collect::<Vec<_>>()
            {
                if let Some(val) = map.shift_remove(&key) {
                    ext.push((key, val));
                }
            }
            ext.sort_by(|a, b| a.0.cmp(&b.0));
            map.extend(ext);
            map.values_mut().for_each(sort_extensions);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_extensions),
        _ => {}
    }
}
