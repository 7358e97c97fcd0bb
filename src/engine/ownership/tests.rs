//! The state file: privacy, round trips, every older form read with its meaning, a newer format refused.

use std::net::IpAddr;

use super::*;

#[test]
fn the_state_file_is_private_and_a_directory_made_for_it_too() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("made/state.json");
    Ownership::default().save(&path).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    // An existing directory keeps its mode; the file is still private, also when it replaces a public one.
    let shared = root.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
    let path = shared.join("state.json");
    fs::write(&path, "{}").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    Ownership::default().save(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&shared), 0o755);
}

fn key(last: u8) -> ServiceKey {
    ServiceKey::tcp(IpAddr::from([192, 0, 2, last]), 80)
}

#[test]
fn missing_file_is_a_first_run() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Ownership::load(&dir.path().join("none.json")).unwrap(), Ownership::default());
}

#[test]
fn save_then_load_round_trips_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/state.json");
    let mut state = Ownership::default();
    state.owned.insert(key(1));
    state.owned.insert(ServiceKey::Fwmark { family: crate::model::Family::V6, mark: 7 });
    state.drains.insert((key(1), DestKey::new(IpAddr::from([10, 0, 0, 1]), 80)), 1_700_000_000);
    let check = crate::health::Check::new(
        crate::health::Probe::Http(crate::health::HttpProbe::new("/healthz")),
        std::time::Duration::from_millis(1500),
    );
    let mut down = HealthState::new(false);
    down.last_error = Some("connection refused".into());
    down.last_transition = Some(1_700_000_100);
    state.health.insert(TargetKey::new("10.0.0.1:8080".parse().unwrap(), check), down);
    state.vips = OwnedVips {
        interface: Some("ipvs0".into()),
        addrs: ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()].into(),
        created: Some(7),
    };
    state.save(&path).unwrap();
    assert_eq!(Ownership::load(&path).unwrap(), state);
    let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
}

#[test]
fn a_file_from_before_addresses_were_managed_owns_no_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, r#"{"version":1,"owned":[],"drains":[]}"#).unwrap();
    assert_eq!(Ownership::load(&path).unwrap().vips, OwnedVips::default());
}

#[test]
fn corrupt_file_is_refused_not_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, "{not json").unwrap();
    let err = Ownership::load(&path).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("state.json"));
}

/// A fixture under `tests/fixtures/state/`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state").join(name)
}

/// What `v1.json` means, built with today's types.
fn v1_meaning() -> Ownership {
    use std::time::Duration;

    use crate::health::{Check, DnsQueryType, HttpMethod, HttpProbe, HttpsProbe, Probe};
    use crate::model::{DaemonState, Family, Protocol};

    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let tcp = ServiceKey::tcp(ip("192.0.2.10"), 80);
    let udp6 = ServiceKey::Addr { protocol: Protocol::Udp, addr: ip("2001:db8::53"), port: 53 };
    let sctp = ServiceKey::Addr { protocol: Protocol::Sctp, addr: ip("192.0.2.11"), port: 0 };
    let mark = ServiceKey::Fwmark { family: Family::V4, mark: 42 };
    let mut down = HealthState::new(false);
    down.last_error = Some("connection refused".into());
    down.last_transition = Some(1_700_000_100);
    down.consecutive_fail = 3;
    let up = HealthState::new(true);
    let http = HttpProbe::new("/healthz").with_host("web.example").with_method(HttpMethod::Head).with_body("ok");
    let https = HttpsProbe::new(HttpProbe::new("/")).with_server_name("web").insecure();
    let second = Duration::from_secs(1);
    let target =
        |addr: &str, probe: Probe, timeout: Duration| TargetKey::new(addr.parse().unwrap(), Check::new(probe, timeout));
    let daemon = |state, max_len, group, port, ttl| SyncDaemon {
        state,
        interface: "eth1".into(),
        sync_id: 7,
        max_len,
        group,
        port,
        ttl,
    };
    Ownership {
        owned: [tcp, udp6, sctp, mark].into(),
        drains: [
            ((tcp, DestKey::new(ip("10.0.0.12"), 8080)), 1_700_000_000),
            ((udp6, DestKey::new(ip("2001:db8:1::7"), 0)), 1_700_000_050),
        ]
        .into(),
        health: [
            (target("10.0.0.11:8080", Probe::Http(http), Duration::from_millis(1500)), down.clone()),
            (target("10.0.0.12:8443", Probe::Https(https), 2 * second).with_source(ip("10.0.0.1")), up.clone()),
            (
                target(
                    "[2001:db8:1::7]:53",
                    Probe::Dns { query: "example.org".into(), query_type: DnsQueryType::Aaaa },
                    second,
                ),
                up.clone(),
            ),
            (
                target(
                    "10.0.0.13:53",
                    Probe::Udp { send: vec![1, 2], expect_prefix: vec![0xff], silence_passes: false },
                    second,
                ),
                down,
            ),
            (target("10.0.0.14:50051", Probe::Grpc { service: Some("web".into()) }, second), up.clone()),
            (target("10.0.0.15:22", Probe::Tcp, second), up),
        ]
        .into(),
        vips: OwnedVips {
            interface: Some("ipvs0".into()),
            addrs: [ip("192.0.2.10"), ip("192.0.2.11"), ip("2001:db8::53")].into(),
            created: None,
        },
        daemons: vec![
            daemon(DaemonState::Master, None, None, None, None),
            daemon(DaemonState::Backup, Some(1400), Some(ip("239.1.1.1")), Some(8850), Some(2)),
        ],
    }
}

#[test]
fn a_state_file_of_format_1_as_written_before_cleanup_existed_keeps_its_meaning() {
    assert_eq!(Ownership::load(&fixture("v1.json")).unwrap(), v1_meaning());
}

#[test]
fn the_first_form_of_format_1_keeps_its_meaning() {
    let mut want = Ownership::default();
    let tcp = key(10);
    want.owned = [tcp, ServiceKey::Fwmark { family: crate::model::Family::V6, mark: 7 }].into();
    want.drains = [((tcp, DestKey::new(IpAddr::from([10, 0, 0, 12]), 8080)), 1_700_000_000)].into();
    assert_eq!(Ownership::load(&fixture("v1-first.json")).unwrap(), want);
}

/// Today's writer writes format 1 exactly as the binary before it did (what that binary still reads, field for
/// field, after a downgrade), adding only what it may ignore.
#[test]
fn a_file_written_now_is_the_format_1_file_an_older_binary_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut state = Ownership::load(&fixture("v1.json")).unwrap();
    state.save(&path).unwrap();
    let json = |path: &Path| serde_json::from_str::<serde_json::Value>(&fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(json(&path), json(&fixture("v1.json")));

    state.vips.created = Some(12);
    state.save(&path).unwrap();
    let mut written = json(&path);
    assert_eq!(written["version"], 1);
    assert_eq!(written["vips"]["created"], 12);
    written["vips"].as_object_mut().unwrap().remove("created");
    assert_eq!(written, json(&fixture("v1.json")), "created is the only addition");
    assert_eq!(Ownership::load(&path).unwrap(), state);
}

#[test]
fn a_newer_format_is_refused_with_both_versions_and_the_file_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    // A newer format need not parse as this one: the version alone decides.
    let text = r#"{"version": 2, "owned": {"services": "elsewhere"}}"#;
    fs::write(&path, text).unwrap();
    let err = Ownership::load(&path).unwrap_err();
    assert!(matches!(err, StateError::TooNew { found: 2, supported: FORMAT_VERSION, .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("state file {} has format 2; this binary reads formats up to 1", path.display())),
        "{message}"
    );
    assert!(message.contains("run the newer ipvs-reconciler"), "{message}");
    assert_eq!(fs::read_to_string(&path).unwrap(), text, "refusing changes nothing");
}

#[test]
fn a_file_without_a_format_or_with_one_that_never_existed_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    for text in [r#"{"owned": []}"#, r#"{"version": 0, "owned": []}"#, r#"{"version": "1", "owned": []}"#] {
        fs::write(&path, text).unwrap();
        let err = Ownership::load(&path).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{text}: {err:?}");
    }
}

#[test]
fn removing_the_state_forgets_everything_and_a_missing_file_is_already_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut state = Ownership::default();
    state.owned.insert(key(1));
    assert!(!state.is_empty());
    state.save(&path).unwrap();
    Ownership::remove(&path).unwrap();
    assert!(!path.exists());
    assert!(Ownership::load(&path).unwrap().is_empty());
    Ownership::remove(&path).unwrap();
}
