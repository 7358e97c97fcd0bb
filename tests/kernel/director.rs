//! The director's own settings against the real kernel: configured timeouts and sysctls take their values, a
//! sysctl that contradicts the services is reported, a sync daemon another tool started is left alone, and a
//! master and a backup started by `apply` in two namespaces share the connections made through the master.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::support::{Netns, Workdir, eventually, path_str, require_vm};

const PATIENCE: Duration = Duration::from_secs(60);

fn manifest(vip: &str, backend: &str) -> String {
    format!(
        "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: web}}\nspec:\n  address: {vip}\n  \
         port: 80\n  scheduler: rr\n  backends:\n    - {{address: {backend}, port: 8080}}\n"
    )
}

fn sysctl(ns: &Netns, key: &str) -> String {
    let out = ns.exec("sysctl", &["-n", key]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn timeouts_and_sysctls_take_their_values_a_contradiction_is_reported_and_a_foreign_daemon_stays() {
    require_vm();
    let ns = Netns::new("director");
    let work = Workdir::new();
    work.write("web.yaml", &manifest("192.0.2.40", "172.16.0.1"));
    let config = work.path("director.yaml");
    std::fs::write(
        &config,
        "timeouts: {tcp: 600, udp: 30}\nsysctls: {expire_nodest_conn: 1, conntrack: 1}\n\
         syncDaemons: [{state: Backup, interface: lo, syncId: 4}]\n",
    )
    .unwrap();
    // Someone else's backup daemon, unlike the configured one.
    ns.ipvsadm(&["--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "3"]);

    let apply = work.pass(&ns, "apply", &["--director-config", path_str(&config)]).expect_code(0).clone();
    assert!(apply.stdout.contains("director: timeouts tcp 900 tcpfin 120 udp 300 -> 600 120 30"), "{apply}");
    assert!(apply.stdout.contains("director: net.ipv4.vs.expire_nodest_conn 0 -> 1"), "{apply}");
    assert!(ns.ipvsadm(&["-Ln", "--timeout"]).contains("600 120 30"));
    assert_eq!(sysctl(&ns, "net.ipv4.vs.expire_nodest_conn"), "1");
    assert_eq!(sysctl(&ns, "net.ipv4.vs.conntrack"), "1");
    // A fresh namespace does not forward: the NAT service's replies would be dropped.
    assert!(apply.stderr.contains("net.ipv4.ip_forward is 0 but 1 service(s) need 1"), "{apply}");
    assert!(apply.stderr.contains("started by another tool"), "{apply}");
    let daemons = ns.ipvsadm(&["-L", "--daemon"]);
    assert!(daemons.contains("syncid=3") && !daemons.contains("syncid=4"), "the foreign daemon stays: {daemons}");

    let again = work
        .pass(&ns, "apply", &["--director-config", path_str(&config), "--sysctl", "ip_forward=1"])
        .expect_code(0)
        .clone();
    assert!(again.stdout.contains("director: net.ipv4.ip_forward 0 -> 1"), "{again}");
    assert!(!again.stdout.contains("timeouts"), "already as configured: {again}");
    assert!(!again.stderr.contains("ip_forward is 0"), "set, so no longer a contradiction: {again}");
    assert_eq!(sysctl(&ns, "net.ipv4.ip_forward"), "1");
}

/// Serves a few lines to every connection on `addr` inside `ns` (the thread is left running).
fn serve(ns: &Netns, addr: &str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let listener = ns.inside(move || TcpListener::bind(addr).expect("bind the backend's listener"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                // An exchange of several packets each way: the master syncs a connection after its third packet.
                for _ in 0..4 {
                    if stream.read(&mut buf).unwrap_or(0) == 0 || stream.write_all(b"pong\n").is_err() {
                        break;
                    }
                }
            });
        }
    });
}

#[test]
fn connections_through_the_master_appear_in_the_backup() {
    require_vm();
    let (client, master, backend, backup) =
        (Netns::new("sync-client"), Netns::new("sync-master"), Netns::new("sync-backend"), Netns::new("sync-backup"));
    client.veth("c0", "10.71.0.1/24", &master, "mc", "10.71.0.2/24");
    master.veth("mb", "10.72.0.1/24", &backend, "b0", "10.72.0.2/24");
    // The sync link between the two directors.
    master.veth("sync0", "10.73.0.1/24", &backup, "sync0", "10.73.0.2/24");
    client.ip(&["route", "add", "192.0.2.50/32", "via", "10.71.0.2"]);
    backend.ip(&["route", "add", "10.71.0.0/24", "via", "10.72.0.1"]);
    serve(&backend, "10.72.0.2:8080");

    let work = Workdir::new();
    work.write("web.yaml", &manifest("192.0.2.50", "10.72.0.2"));
    let configs = [("master.yaml", "Master"), ("backup.yaml", "Backup")].map(|(file, state)| {
        let path = work.path(file);
        std::fs::write(&path, format!("syncDaemons: [{{state: {state}, interface: sync0, syncId: 5}}]\n")).unwrap();
        path
    });
    let state_b = work.path("state-backup.json");
    master
        .cli_run(&[
            "apply",
            "-f",
            path_str(&work.manifests()),
            "--state",
            path_str(&work.state()),
            "--director-config",
            path_str(&configs[0]),
            "--sysctl",
            "ip_forward=1",
        ])
        .expect_code(0);
    let started = backup
        .cli_run(&[
            "apply",
            "-f",
            path_str(&work.manifests()),
            "--state",
            path_str(&state_b),
            "--director-config",
            path_str(&configs[1]),
        ])
        .expect_code(0)
        .clone();
    assert!(started.stdout.contains("started sync daemon Backup on sync0 id 5"), "{started}");
    assert!(master.ipvsadm(&["-L", "--daemon"]).contains("master sync daemon"));
    assert!(backup.ipvsadm(&["-L", "--daemon"]).contains("backup sync daemon"));

    // A connection through the master, kept open while the backup is asked.
    let mut stream = client.inside(|| {
        TcpStream::connect_timeout(&"192.0.2.50:80".parse().unwrap(), Duration::from_secs(10)).expect("connect")
    });
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    for _ in 0..3 {
        stream.write_all(b"ping\n").unwrap();
        assert!(stream.read(&mut buf).unwrap() > 0, "the backend answers through the master");
    }
    eventually(PATIENCE, "the connection synced to the backup", || {
        let conns = backup.ipvsadm(&["-Lnc"]);
        if conns.contains("10.71.0.1:") && conns.contains("192.0.2.50:80") && conns.contains("10.72.0.2:8080") {
            Ok(())
        } else {
            Err(format!("backup:\n{conns}\nmaster:\n{}", master.ipvsadm(&["-Lnc"])))
        }
    });
    drop(stream);
}
