//! The node's VIPs with real traffic: `apply` binds each service's VIP on `ipvs0`, and a client in another
//! namespace reaches the backend through it, NAT and direct routing; the VIP leaves after its service; an address
//! someone else put on `ipvs0` and another interface survive every pass; a failed listing removes nothing.
//!
//! Each test builds its hosts as namespaces: a client, a director (where the program runs) and a backend.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::support::{Netns, Workdir, require_vm};

/// Serves `reply` to every connection on `addr` inside `ns`, until the test ends (the thread is left running).
fn serve(ns: &Netns, addr: &str, reply: &'static str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let listener = ns.inside(move || TcpListener::bind(addr).expect("bind the backend's listener"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(reply.as_bytes());
        }
    });
}

/// Connects from inside `ns` to `addr` and reads what the server says, or why it could not.
fn fetch(ns: &Netns, addr: &str) -> Result<String, String> {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.inside(move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream.read_to_string(&mut text).map_err(|e| e.to_string())?;
        Ok(text)
    })
}

/// A VirtualService manifest on `vip`:`port` to `backend` with `forwarding`.
fn manifest(name: &str, vip: &str, port: u16, forwarding: &str, backend: &str, backend_port: u16) -> String {
    format!(
        "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  address: \
         {vip}\n  port: {port}\n  scheduler: rr\n  forwarding: {{method: {forwarding}}}\n  backends:\n    - {{address: \
         {backend}, port: {backend_port}}}\n"
    )
}

#[test]
fn nat_the_vip_is_bound_traffic_reaches_the_backend_and_the_vip_leaves_with_its_service() {
    require_vm();
    let (client, director, backend) = (Netns::new("nat-client"), Netns::new("nat-dir"), Netns::new("nat-backend"));
    client.veth("c0", "10.61.0.1/24", &director, "dc", "10.61.0.2/24");
    director.veth("db", "10.62.0.1/24", &backend, "b0", "10.62.0.2/24");
    client.ip(&["route", "add", "192.0.2.10/32", "via", "10.61.0.2"]);
    // NAT: the replies come back through the director, which rewrites them.
    backend.ip(&["route", "add", "10.61.0.0/24", "via", "10.62.0.1"]);
    director.sysctl("net.ipv4.ip_forward", "1");
    // Someone else's: a dummy ipvs0 already there with an address of theirs, and another interface.
    director.ip(&["link", "add", "ipvs0", "type", "dummy"]);
    director.ip(&["addr", "add", "192.0.2.99/32", "dev", "ipvs0"]);
    director.ip(&["link", "add", "other0", "type", "dummy"]);
    director.ip(&["addr", "add", "192.0.2.200/32", "dev", "other0"]);
    serve(&backend, "10.62.0.2:8080", "hello from the NAT backend\n");

    let work = Workdir::new();
    work.write("web.yaml", &manifest("web", "192.0.2.10", 80, "Masquerade", "10.62.0.2", 8080));
    let plan = work.plan(&director).expect_code(2).clone();
    let lines: Vec<&str> = plan.stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("add address 192.0.2.10/32 to ipvs0"), "the address goes first: {plan}");
    let apply = work.apply(&director).expect_code(0).clone();
    assert!(apply.stdout.lines().next() == Some("added address 192.0.2.10/32"), "{apply}");
    let shown = director.addresses_of("ipvs0");
    assert!(shown.contains("inet 192.0.2.10/32") && shown.contains("inet 192.0.2.99/32"), "{shown}");

    assert_eq!(fetch(&client, "192.0.2.10:80"), Ok("hello from the NAT backend\n".to_owned()));
    assert!(work.plan(&director).expect_code(0).stdout.contains("no changes"));

    work.remove("web.yaml");
    let apply = work.apply(&director).expect_code(0).clone();
    let lines: Vec<&str> = apply.stdout.lines().collect();
    let service = lines.iter().position(|l| l.starts_with("- service TCP 192.0.2.10:80"));
    let address = lines.iter().position(|l| *l == "removed address 192.0.2.10/32");
    assert!(matches!((service, address), (Some(s), Some(a)) if s < a), "the address leaves after its service: {apply}");
    let shown = director.addresses_of("ipvs0");
    assert!(!shown.contains("192.0.2.10/"), "{shown}");
    assert!(shown.contains("inet 192.0.2.99/32"), "someone else's address on ipvs0 stays: {shown}");
    assert!(director.addresses_of("other0").contains("inet 192.0.2.200/32"), "another interface is untouched");
    assert!(fetch(&client, "192.0.2.10:80").is_err(), "nothing answers for the VIP any more");
}

#[test]
fn direct_routing_the_real_server_answers_the_client_itself() {
    require_vm();
    let (lan, client, director, backend) =
        (Netns::new("dr-lan"), Netns::new("dr-client"), Netns::new("dr-dir"), Netns::new("dr-backend"));
    // One L2 segment: a bridge in its own namespace, with each host's interface on it.
    lan.ip(&["link", "add", "br0", "type", "bridge"]);
    lan.ip(&["link", "set", "br0", "up"]);
    for (host, port, cidr) in
        [(&client, "lc", "10.63.0.1/24"), (&director, "ld", "10.63.0.2/24"), (&backend, "lb", "10.63.0.3/24")]
    {
        lan.veth(port, "", host, "eth1", cidr);
        lan.ip(&["link", "set", port, "master", "br0"]);
    }
    client.ip(&["route", "add", "192.0.2.20/32", "via", "10.63.0.2"]);
    // The real server holds the VIP on loopback and neither answers nor announces it on the LAN (the director
    // must be the only one that does), and it replies to the client directly.
    backend.ip(&["addr", "add", "192.0.2.20/32", "dev", "lo"]);
    backend.sysctl("net.ipv4.conf.all.arp_ignore", "1");
    backend.sysctl("net.ipv4.conf.all.arp_announce", "2");
    serve(&backend, "192.0.2.20:80", "hello from the DR real server\n");

    let work = Workdir::new();
    work.write("dr.yaml", &manifest("dr", "192.0.2.20", 80, "DirectRouting", "10.63.0.3", 80));
    work.apply(&director).expect_code(0);
    assert!(director.addresses_of("ipvs0").contains("inet 192.0.2.20/32"));
    assert_eq!(fetch(&client, "192.0.2.20:80"), Ok("hello from the DR real server\n".to_owned()));
    let conns = director.ipvsadm(&["-Lnc"]);
    assert!(conns.contains("192.0.2.20:80") && conns.contains("10.63.0.3:80"), "the director scheduled it: {conns}");
}

#[test]
fn plan_makes_nothing_and_a_failed_address_listing_deletes_nothing() {
    require_vm();
    let director = Netns::new("vip-fail");
    let work = Workdir::new();
    work.write("web.yaml", &manifest("web", "192.0.2.30", 80, "Masquerade", "172.16.0.1", 8080));
    let plan = work.plan(&director).expect_code(2).clone();
    assert!(plan.stdout.contains("add address 192.0.2.30/32 to ipvs0"), "{plan}");
    let links = director.exec("ip", &["-o", "link", "show"]);
    assert!(!String::from_utf8_lossy(&links.stdout).contains("ipvs0"), "plan made the interface: {plan}");
    work.apply(&director).expect_code(0);
    // Someone replaces ipvs0 with an interface that is not a dummy: listing its addresses is refused.
    director.ip(&["link", "del", "ipvs0"]);
    director.ip(&["link", "add", "ipvs0", "type", "veth", "peer", "name", "ipvs0-peer"]);
    work.remove("web.yaml");
    let apply = work.apply(&director).expect_code(1).clone();
    assert!(apply.stderr.contains("not a dummy") && apply.stderr.contains("nothing was changed"), "{apply}");
    assert!(director.ipvsadm(&["-Ln"]).contains("192.0.2.30:80"), "the service stays: {apply}");
    // Put right, the next pass finishes the job.
    director.ip(&["link", "del", "ipvs0"]);
    work.apply(&director).expect_code(0);
    assert!(!director.ipvsadm(&["-Ln"]).contains("192.0.2.30:80"));
}
