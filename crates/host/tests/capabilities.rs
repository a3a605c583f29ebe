//! The capability probe on this machine, and the API types' JSON shape.

use hostplane_host::capabilities::{TOOLS, forget_versions};
use hostplane_host::{Cmd, disk_free, probe};
use hostplane_types::system::{Capabilities, SelftestRequest};

#[tokio::test]
async fn probe_describes_this_host() {
    let caps = probe().await;

    let uname_n = Cmd::new("uname").arg("-n").run_text().await.unwrap();
    assert_eq!(caps.hostname, uname_n.trim());
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(caps.kernel, release.trim());
    let machine = Cmd::new("uname").arg("-m").run_text().await.unwrap();
    assert_eq!(caps.arch, machine.trim());
    assert!(caps.os.as_deref().is_some_and(|o| !o.is_empty()));
    assert_eq!(caps.is_root, unsafe { libc::geteuid() } == 0);
    assert!(!caps.init.is_empty());
    assert!(["v2", "v1", "hybrid", "none"].contains(&caps.cgroup.as_str()));
    assert!(caps.probed_at.ends_with('Z') && caps.probed_at.contains('T'));

    let v = &caps.virtualization;
    assert_eq!(v.kvm_device, std::path::Path::new("/dev/kvm").exists());
    assert_eq!(v.pvm, std::path::Path::new("/sys/module/kvm_pvm").exists());
    assert_eq!(
        v.kvm_usable,
        v.kvm_device && !v.cpu_flags.is_empty() && !v.pvm
    );
    assert!(!v.reason.is_empty());

    assert_eq!(caps.tools.len(), TOOLS.len());
    for t in &caps.tools {
        assert_eq!(t.found, t.path.is_some(), "{t:?}");
        if t.version.is_some() {
            assert!(t.found, "{t:?}");
        }
    }
    // util-linux and tar are always there.
    let lsblk = caps.tools.iter().find(|t| t.name == "lsblk").unwrap();
    assert!(lsblk.found && lsblk.area == "disks");
    assert!(
        lsblk.version.as_deref().unwrap().contains("util-linux"),
        "{lsblk:?}"
    );
    let tar = caps.tools.iter().find(|t| t.name == "tar").unwrap();
    assert!(tar.version.as_deref().unwrap().contains("tar"), "{tar:?}");
}

#[tokio::test]
async fn versions_are_cached_and_refreshable() {
    let a = probe().await;
    let b = probe().await;
    assert_eq!(a.tools, b.tools);
    forget_versions();
    let c = probe().await;
    assert_eq!(a.tools, c.tools);
}

#[tokio::test]
async fn concurrent_cold_probes_agree() {
    forget_versions();
    let (a, b) = tokio::join!(probe(), probe());
    assert_eq!(a.tools, b.tools);
}

#[tokio::test]
async fn capabilities_json_round_trip() {
    let caps = probe().await;
    let json = serde_json::to_value(&caps).unwrap();
    for key in [
        "hostname",
        "kernel",
        "arch",
        "os",
        "is_root",
        "init",
        "cgroup",
        "virtualization",
        "tools",
        "probed_at",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert!(json["virtualization"]["kvm_usable"].is_boolean());
    let back: Capabilities = serde_json::from_value(json).unwrap();
    assert_eq!(back, caps);
}

#[test]
fn selftest_request_is_strict() {
    let r: SelftestRequest = serde_json::from_str("{}").unwrap();
    assert_eq!(r.step_delay_ms, None);
    let r: SelftestRequest = serde_json::from_str(r#"{"step_delay_ms": 250}"#).unwrap();
    assert_eq!(r.step_delay_ms, Some(250));
    assert!(serde_json::from_str::<SelftestRequest>(r#"{"step_delay": 1}"#).is_err());
}

#[tokio::test]
async fn disk_free_matches_df() {
    let (total, avail) = disk_free("/").unwrap();
    assert!(total > 0 && avail <= total);
    let df = Cmd::new("df")
        .args(["-B1", "--output=size", "/"])
        .run_text()
        .await
        .unwrap();
    let df_total: u64 = df.lines().nth(1).unwrap().trim().parse().unwrap();
    assert_eq!(total, df_total);

    let err = disk_free("/nonexistent-hostplane").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}
