//! Migrating a live table to this program (issue 22): what `ipvsadm -R` or keepalived programmed is imported
//! (`import ipvsadm`, `import keepalived`), and the import plans nothing but adoptions against the very table it
//! came from; keepalived is then stopped and `run` takes over without a blip (no destination deleted and added
//! again, no weight changed, counters kept); a deliberate edit of one imported file changes exactly that.
//!
//! keepalived is Debian's 2.2.7, extracted (not installed) by `tests/all` into `IPVS_KEEPALIVED_DIR` with
//! `tests/vm/bench/keepalived.sh`; the keepalived test fails when it is not there. Only its checker runs (`-C`):
//! the VRRP address is put on `eth0` by the test, as VRRP would.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{CliRun, KillOnDrop, Netns, Workdir, binary, eventually, path_str, sorted};

/// Runs `command` with `input` on its standard input; what it did.
fn run_with_stdin(mut command: Command, input: &str) -> CliRun {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a command with standard input");
    child.stdin.take().unwrap().write_all(input.as_bytes()).expect("write standard input");
    let out = child.wait_with_output().expect("wait for the command");
    CliRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ipvsadm -R` in `ns` with `rules`; panics unless it succeeds.
fn restore(ns: &Netns, rules: &str) {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &ns.name, "ipvsadm", "-R"]);
    let run = run_with_stdin(command, rules);
    assert_eq!(run.code, Some(0), "ipvsadm -R failed\n{run}\nrules:\n{rules}");
}

/// Panics unless `plan` has nothing to do: exit 0, and every line an adoption but the last, `no changes`.
#[track_caller]
fn assert_only_adoptions(plan: &CliRun, services: usize) {
    plan.expect_code(0);
    let lines: Vec<&str> = plan.stdout.lines().collect();
    assert_eq!(lines.last(), Some(&"no changes"), "plan has something to do\n{plan}");
    let adoptions = &lines[..lines.len() - 1];
    assert!(adoptions.iter().all(|l| l.starts_with("adopt ")), "plan prints more than adoptions\n{plan}");
    assert_eq!(adoptions.len(), services, "one adoption per service\n{plan}");
}

/// A dummy `eth0` carrying `vips` (as the node's own addresses, or VRRP's), so that no pass binds them on ipvs0.
fn node_addresses(ns: &Netns, vips: &[&str]) {
    ns.ip(&["link", "add", "eth0", "type", "dummy"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    for vip in vips {
        if vip.contains(':') {
            ns.ip(&["-6", "addr", "add", &format!("{vip}/128"), "dev", "eth0", "nodad"]);
        } else {
            ns.ip(&["addr", "add", &format!("{vip}/32"), "dev", "eth0"]);
        }
    }
}

/// A varied `ipvsadm -R` rules file: every protocol, fwmark (IPv4 and -6), IPv6, persistence with a netmask and a
/// bare one, the SIP persistence engine, one-packet scheduling, scheduler flags, the three forwarding methods and
/// tunnel options.
const RULES: &str = "\
-A -t 192.0.2.60:80 -s wlc
-a -t 192.0.2.60:80 -r 10.77.0.1:8080 -m -w 3
-a -t 192.0.2.60:80 -r 10.77.0.2:8080 -m -w 0
-A -u 192.0.2.60:53 -s rr -o
-a -u 192.0.2.60:53 -r 10.77.0.3:53 -m -w 1
-A --sctp-service 192.0.2.61:3868 -s sh -b sh-fallback,sh-port
-a --sctp-service 192.0.2.61:3868 -r 10.77.0.4:3868 -m -w 2
-A -t 192.0.2.62:443 -s lc -p 600 -M 255.255.255.0
-a -t 192.0.2.62:443 -r 10.77.0.5:443 -g -w 1
-A -t 192.0.2.63:443 -s wrr -p
-a -t 192.0.2.63:443 -r 10.77.0.5:443 -g -w 7
-A -u 192.0.2.64:5060 -s sh -p 60 --pe sip
-a -u 192.0.2.64:5060 -r 10.77.0.6:5060 -m -w 1
-A -t 192.0.2.65:80 -s mh -b mh-fallback,mh-port
-a -t 192.0.2.65:80 -r 10.77.0.7:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t 192.0.2.65:80 -r 10.77.0.8:80 -i -w 2 --tun-type gue --tun-port 6081 --tun-remcsum
-a -t 192.0.2.65:80 -r 10.77.0.9:80 -i -w 3 --tun-type ipip
-a -t 192.0.2.65:80 -r 10.77.0.10:80 -i -w 4 --tun-type gre --tun-csum
-A -f 1 -s wrr
-a -f 1 -r 10.77.0.11:0 -g -w 5
-a -f 1 -r 10.77.0.12:0 -i -w 1
-A -f 2 -6 -s rr -p 120 -M 64
-a -f 2 -6 -r [2001:db8::8]:0 -g -w 1
-A -t [2001:db8:1::10]:80 -s sed
-a -t [2001:db8:1::10]:80 -r [2001:db8::9]:8080 -m -w 1
-a -t [2001:db8:1::10]:80 -r [2001:db8::a]:8080 -m -w 2
-A -u [2001:db8:1::10]:53 -s nq -o
-a -u [2001:db8:1::10]:53 -r [2001:db8::9]:53 -m -w 1
";

/// The virtual addresses of [`RULES`].
const RULE_VIPS: [&str; 7] =
    ["192.0.2.60", "192.0.2.61", "192.0.2.62", "192.0.2.63", "192.0.2.64", "192.0.2.65", "2001:db8:1::10"];

/// `import ipvsadm -` of `saved` (stdin); the manifests it wrote to stdout, as a file of the manifest directory.
fn import_rules(work: &Workdir, saved: &str) -> CliRun {
    let mut command = Command::new(binary());
    command.args(["import", "ipvsadm", "-"]);
    let import = run_with_stdin(command, saved);
    import.expect_code(0);
    work.write("imported.yaml", &import.stdout);
    import
}

#[test]
fn ipvsadm_rules_import_to_a_plan_with_nothing_to_do() {
    let ns = Netns::new("mig-ipvsadm");
    node_addresses(&ns, &RULE_VIPS);
    restore(&ns, RULES);
    let table = ns.saved_rules();
    let saved = ns.ipvsadm(&["-Sn"]);
    let services = table.iter().filter(|l| l.starts_with("-A ")).count();
    assert_eq!(services, 11, "ipvsadm -R made every service:\n{saved}");

    let work = Workdir::new();
    let import = import_rules(&work, &saved);
    assert!(import.stderr.contains("does not save destination thresholds"), "{import}");
    let plan = work.plan(&ns);
    assert_only_adoptions(&plan, services);
    let apply = work.apply(&ns);
    apply.expect_code(0);
    assert!(apply.op_lines().is_empty(), "apply changed the table\n{apply}");
    assert_eq!(ns.saved_rules(), table, "apply changed the table\n{apply}");
    let ipvs0 = ns.exec("ip", &["-o", "addr", "show", "dev", "ipvs0"]);
    let ipvs0 = String::from_utf8_lossy(&ipvs0.stdout);
    for vip in RULE_VIPS {
        assert!(!ipvs0.contains(&format!(" {vip}/")), "{vip}, already on eth0, was bound on ipvs0 too: {ipvs0}");
    }

    // Thresholds set by hand are not in `ipvsadm -Sn`: an import of it declares none, and its plan takes them
    // away, the one change, which the import's note warned of.
    ns.ipvsadm(&["-e", "-t", "192.0.2.60:80", "-r", "10.77.0.1:8080", "-m", "-w", "3", "-x", "100", "-y", "50"]);
    assert_eq!(ns.saved_rules(), table, "ipvsadm -Sn shows thresholds now");
    let listing = ns.ipvsadm(&["-Ln", "--thresholds", "-t", "192.0.2.60:80"]);
    assert!(listing.lines().any(|l| l.contains("10.77.0.1:8080") && l.contains(" 100 ")), "{listing}");
    let import = import_rules(&work, &ns.ipvsadm(&["-Sn"]));
    assert!(import.stderr.contains("does not save destination thresholds"), "{import}");
    let plan = work.plan(&ns);
    plan.expect_code(2);
    let ops = plan.op_lines();
    assert_eq!(ops.len(), 1, "one change: the thresholds\n{plan}");
    assert!(ops[0].starts_with("~ ") && ops[0].contains("10.77.0.1:8080") && ops[0].contains("threshold"), "{plan}");
    assert!(!plan.stdout.contains("adopt"), "adopted twice\n{plan}");
}

// ---------------------------------------------------------------------------------------------------- keepalived

/// Where `tests/all` extracted Debian's keepalived; the test fails without it.
fn keepalived_dir() -> PathBuf {
    let dir = std::env::var_os("IPVS_KEEPALIVED_DIR").expect(
        "IPVS_KEEPALIVED_DIR is not set: tests/all extracts Debian's keepalived (tests/vm/bench/keepalived.sh) and \
         passes it into the VM with IPVS_VM_ENV",
    );
    let dir = PathBuf::from(dir);
    assert!(dir.join("usr/sbin/keepalived").is_file(), "no keepalived in IPVS_KEEPALIVED_DIR={}", dir.display());
    dir
}

/// keepalived's checker (`-C`) in `ns`, in the foreground (`-n`), leaving the table when stopped (`-I`), with
/// its pid files and log in `work`.
fn start_keepalived(ns: &Netns, work: &Workdir, conf: &Path) -> KillOnDrop {
    let dir = keepalived_dir();
    let log = std::fs::File::create(work.path("keepalived.log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(dir.join("usr/sbin/keepalived"))
        .args(["-C", "-n", "-l", "-D", "-G", "-I", "-f", path_str(conf)])
        .args(["-p", path_str(&work.path("keepalived.pid"))])
        .args(["-c", path_str(&work.path("checkers.pid"))])
        .args(["-r", path_str(&work.path("vrrp.pid"))])
        .args(["-b", path_str(&work.path("bfd.pid"))])
        .env("LD_LIBRARY_PATH", dir.join("usr/lib/x86_64-linux-gnu"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start keepalived");
    KillOnDrop(Some(child))
}

/// Stops a child with SIGTERM and waits for it; its exit status.
fn terminate(mut process: KillOnDrop, what: &str) -> std::process::ExitStatus {
    let mut child = process.0.take().unwrap();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{what} did not stop within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// HTTP on `addr` in `ns`: every request answered `200 OK` (keepalived's `HTTP_GET` of `/healthz`, and ours).
fn serve_http(ns: &Netns, addr: &str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let listener = ns.inside(move || TcpListener::bind(addr).expect("bind an HTTP backend"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
            });
        }
    });
}

/// A TCP backend on `addr` in `ns`: accepts, says `ok`, closes.
fn serve_tcp(ns: &Netns, addr: &str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let listener = ns.inside(move || TcpListener::bind(addr).expect("bind a TCP backend"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"ok\n");
        }
    });
}

/// A UDP backend on `addr` in `ns`: `dns` false echoes every datagram; true answers a DNS query with one SOA
/// record of the name asked (NOERROR, authoritative), what keepalived's `DNS_CHECK` and ours both accept.
fn serve_udp(ns: &Netns, addr: &str, dns: bool) {
    let addr: SocketAddr = addr.parse().unwrap();
    let socket = ns.inside(move || UdpSocket::bind(addr).expect("bind a UDP backend"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let reply = if dns { dns_answer(&buf[..n]) } else { Some(buf[..n].to_vec()) };
            if let Some(reply) = reply {
                let _ = socket.send_to(&reply, peer);
            }
        }
    });
}

/// The answer to a DNS query: its question, and one SOA record for the name asked.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question's name: labels up to the zero byte, then type and class.
    let mut at = 12;
    while *query.get(at)? != 0 {
        at += 1 + usize::from(query[at]);
    }
    let question_end = at + 5;
    if question_end > query.len() {
        return None;
    }
    let mut reply = query[..question_end].to_vec();
    let rd = query[2] & 0x01;
    reply[2] = 0x84 | rd; // QR, AA, RD as asked
    reply[3] = 0x80; // RA, NOERROR
    reply[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    reply.extend_from_slice(&[0xc0, 0x0c, 0, 6, 0, 1, 0, 0, 0, 60, 0, 22, 0, 0]);
    for value in [1u32, 3600, 600, 86_400, 60] {
        reply.extend_from_slice(&value.to_be_bytes());
    }
    Some(reply)
}

/// The main keepalived.conf; `{extra}` is where the included file is.
const KEEPALIVED_CONF: &str = r#"# keepalived.conf of the migration test: checker only (-C), VRRP's address put on eth0 by the test
$WEB_PORT=8080

global_defs {
    router_id migration_test
    lvs_timeouts tcp 900 tcpfin 120 udp 300
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        192.0.2.10/32 dev eth0
    }
}

# NAT, HTTP_GET, alpha, persistence with a granularity, quorum, hysteresis, a sorry server, thresholds
virtual_server 192.0.2.10 80 {
    delay_loop 2
    lvs_sched wrr
    lvs_method NAT
    protocol TCP
    persistence_timeout 600
    persistence_granularity 255.255.255.0
    quorum 1
    hysteresis 0
    alpha
    sorry_server 10.77.0.20 8080
    real_server 10.77.0.1 $WEB_PORT {
        weight 3
        uthreshold 1000
        lthreshold 100
        HTTP_GET {
            url {
                path /healthz
                status_code 200
            }
            connect_timeout 2
            retry 2
            delay_before_retry 1
        }
    }
    real_server 10.77.0.2 ${WEB_PORT} {
        weight 2
        HTTP_GET {
            url {
                path /healthz
                status_code 200
            }
            connect_timeout 2
            retry 2
            delay_before_retry 1
        }
    }
}

# DR, TCP_CHECK, a bare persistence_timeout, inhibit_on_failure
virtual_server 192.0.2.20 80 {
    delay_loop 2
    lvs_sched wlc
    lvs_method DR
    protocol TCP
    persistence_timeout
    inhibit_on_failure
    real_server 10.77.0.3 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 2
            retry 1
            delay_before_retry 1
        }
    }
    real_server 10.77.0.4 80 {
        weight 4
        TCP_CHECK {
            connect_timeout 2
            retry 1
            delay_before_retry 1
        }
    }
}

# TUN with GUE, sh with sh-port, a check on another port (connect_ip, connect_port)
virtual_server 192.0.2.30 80 {
    delay_loop 2
    lvs_sched sh
    sh-port
    lvs_method TUN type gue port 6080
    protocol TCP
    real_server 10.77.0.5 80 {
        weight 1
        TCP_CHECK {
            connect_ip 10.77.0.5
            connect_port 81
            connect_timeout 2
        }
    }
}

include {extra}
"#;

/// The included file: a group with an address range, UDP with ops, DNS, and a fwmark service whose real server
/// has a second checker (`MISC_CHECK`, which this program cannot run: the one item not mapped).
const KEEPALIVED_EXTRA: &str = r#"virtual_server_group RANGE {
    192.0.2.31-33 80
}

virtual_server group RANGE {
    delay_loop 2
    lvs_sched rr
    lvs_method NAT
    protocol TCP
    real_server 10.77.0.6 8080 {
        weight 1
        TCP_CHECK {
            connect_timeout 2
        }
    }
}

virtual_server 192.0.2.40 5000 {
    delay_loop 2
    lvs_sched rr
    lvs_method NAT
    protocol UDP
    ops
    real_server 10.77.0.7 5000 {
        weight 1
        UDP_CHECK {
            connect_timeout 2
        }
    }
}

virtual_server 192.0.2.50 53 {
    delay_loop 2
    lvs_sched rr
    lvs_method NAT
    protocol UDP
    real_server 10.77.0.8 53 {
        weight 1
        DNS_CHECK {
            type SOA
            connect_timeout 2
            retry 1
        }
    }
}

virtual_server fwmark 7 {
    delay_loop 2
    lvs_sched lc
    lvs_method DR
    real_server 10.77.0.9 443 {
        weight 2
        TCP_CHECK {
            connect_port 443
            connect_timeout 2
        }
        MISC_CHECK {
            misc_path "/bin/true"
        }
    }
}
"#;

/// The table keepalived makes of the two files, as `ipvsadm -Sn` lists it.
const KEEPALIVED_TABLE: [&str; 20] = [
    "-A -t 192.0.2.10:80 -s wrr -p 600 -M 255.255.255.0",
    "-a -t 192.0.2.10:80 -r 10.77.0.1:8080 -m -w 3",
    "-a -t 192.0.2.10:80 -r 10.77.0.2:8080 -m -w 2",
    "-A -t 192.0.2.20:80 -s wlc -p 360",
    "-a -t 192.0.2.20:80 -r 10.77.0.3:80 -g -w 1",
    "-a -t 192.0.2.20:80 -r 10.77.0.4:80 -g -w 4",
    "-A -t 192.0.2.30:80 -s sh -b sh-port",
    "-a -t 192.0.2.30:80 -r 10.77.0.5:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum",
    "-A -t 192.0.2.31:80 -s rr",
    "-a -t 192.0.2.31:80 -r 10.77.0.6:8080 -m -w 1",
    "-A -t 192.0.2.32:80 -s rr",
    "-a -t 192.0.2.32:80 -r 10.77.0.6:8080 -m -w 1",
    "-A -t 192.0.2.33:80 -s rr",
    "-a -t 192.0.2.33:80 -r 10.77.0.6:8080 -m -w 1",
    "-A -u 192.0.2.40:5000 -s rr -o",
    "-a -u 192.0.2.40:5000 -r 10.77.0.7:5000 -m -w 1",
    "-A -u 192.0.2.50:53 -s rr",
    "-a -u 192.0.2.50:53 -r 10.77.0.8:53 -m -w 1",
    "-A -f 7 -s lc",
    // keepalived clears a fwmark real server's port ("has port specified - clearing")
    "-a -f 7 -r 10.77.0.9:0 -g -w 2",
];

/// The virtual addresses of the keepalived configuration, all on `eth0` (the first as VRRP would put it).
const KEEPALIVED_VIPS: [&str; 8] =
    ["192.0.2.10", "192.0.2.20", "192.0.2.30", "192.0.2.31", "192.0.2.32", "192.0.2.33", "192.0.2.40", "192.0.2.50"];

/// What must not change across the switch-over: the rules (`ipvsadm -Sn`), each destination's thresholds
/// (`-Ln --thresholds`, without its connection counts) and the connection timeouts.
fn snapshot(ns: &Netns) -> Vec<String> {
    let mut lines = ns.saved_rules();
    let thresholds = ns.ipvsadm(&["-Ln", "--thresholds"]);
    let mut rows: Vec<String> = thresholds
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .map(|l| format!("thresholds {}", l.split_whitespace().take(4).collect::<Vec<_>>().join(" ")))
        .collect();
    rows.sort();
    lines.extend(rows);
    lines.push(ns.ipvsadm(&["-Ln", "--timeout"]).trim().to_owned());
    lines
}

/// Per destination (`service -> destination`), the connections and packets the kernel counted since it was added
/// (`ipvsadm -Ln --stats`): a destination deleted and added again starts from zero.
fn counters(ns: &Netns) -> std::collections::BTreeMap<String, (u64, u64, u64)> {
    let stats = ns.ipvsadm(&["-Ln", "--stats", "--exact"]);
    let mut service = String::new();
    let mut out = std::collections::BTreeMap::new();
    for line in stats.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.first() {
            Some(&("TCP" | "UDP" | "SCTP" | "FWM")) => service = format!("{} {}", fields[0], fields[1]),
            Some(&"->") if fields.len() >= 5 && !line.contains("RemoteAddress") => {
                let n = |i: usize| fields[i].parse::<u64>().unwrap_or_else(|_| panic!("{line}"));
                out.insert(format!("{service} -> {}", fields[1]), (n(2), n(3), n(4)));
            }
            _ => {}
        }
    }
    out
}

/// Traffic from `client` through the services with real listeners: HTTP (NAT, persistent), the range group's
/// first address, UDP echo and DNS.
fn traffic(client: &Netns) {
    client.inside(|| {
        for (addr, request) in [("192.0.2.10:80", "GET / HTTP/1.0\r\n\r\n"), ("192.0.2.31:80", "")] {
            for _ in 0..3 {
                let addr: SocketAddr = addr.parse().unwrap();
                let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                stream.write_all(request.as_bytes()).unwrap();
                let mut text = String::new();
                stream.read_to_string(&mut text).unwrap_or_else(|e| panic!("read from {addr}: {e}"));
                assert!(text.contains("ok"), "{addr} answered {text:?}");
            }
        }
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for addr in ["192.0.2.40:5000", "192.0.2.50:53"] {
            for i in 0..3u8 {
                // A DNS query (SOA of the root): the echo sends it back, the DNS backend answers it.
                let query = [0x12, i, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1];
                socket.send_to(&query, addr).unwrap();
                let mut buf = [0u8; 512];
                let (n, _) = socket.recv_from(&mut buf).unwrap_or_else(|e| panic!("no answer from {addr}: {e}"));
                assert!(n >= query.len() && buf[1] == i, "{addr} answered {:?}", &buf[..n]);
            }
        }
    });
}

#[test]
fn keepalived_table_imports_to_a_plan_with_nothing_to_do_and_switches_over_without_a_blip() {
    let ns = Netns::new("mig-ka");
    let client = Netns::new("mig-ka-cl");
    node_addresses(&ns, &KEEPALIVED_VIPS);
    ns.veth("cl-d", "192.168.90.1/24", &client, "eth1", "192.168.90.2/24");
    client.ip(&["route", "add", "default", "via", "192.168.90.1"]);
    ns.ip(&["link", "add", "be0", "type", "dummy"]);
    ns.ip(&["link", "set", "be0", "up"]);
    for i in [1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21] {
        ns.ip(&["addr", "add", &format!("10.77.0.{i}/32"), "dev", "be0"]);
    }
    for addr in ["10.77.0.1:8080", "10.77.0.2:8080", "10.77.0.20:8080", "10.77.0.21:8080"] {
        serve_http(&ns, addr);
    }
    for addr in ["10.77.0.3:80", "10.77.0.4:80", "10.77.0.5:80", "10.77.0.5:81", "10.77.0.6:8080", "10.77.0.9:443"] {
        serve_tcp(&ns, addr);
    }
    serve_udp(&ns, "10.77.0.7:5000", false);
    serve_udp(&ns, "10.77.0.8:53", true);

    let work = Workdir::new();
    let extra = work.path("extra.conf");
    std::fs::write(&extra, KEEPALIVED_EXTRA).unwrap();
    let conf = work.path("keepalived.conf");
    std::fs::write(&conf, KEEPALIVED_CONF.replace("{extra}", path_str(&extra))).unwrap();

    // keepalived programs the table; its checks bring every real server up (the sorry server leaves).
    let keepalived = start_keepalived(&ns, &work, &conf);
    let expected = sorted(&KEEPALIVED_TABLE);
    eventually(Duration::from_secs(60), "keepalived's table", || {
        let rules = ns.saved_rules();
        if rules == expected {
            Ok(())
        } else {
            let log = std::fs::read_to_string(work.path("keepalived.log")).unwrap_or_default();
            Err(format!("{}\n--- keepalived's log (tail)\n{}", rules.join("\n"), tail(&log, 40)))
        }
    });
    let timeouts = ns.ipvsadm(&["-Ln", "--timeout"]);
    assert!(timeouts.contains("900 120 300"), "lvs_timeouts: {timeouts}");

    // The import: complete but for the MISC_CHECK, reported at its line of the included file.
    let dir = work.manifests();
    let import = run_with_stdin(
        {
            let mut command = Command::new(binary());
            command.args(["import", "keepalived", path_str(&conf), "-o", path_str(&dir)]);
            command
        },
        "",
    );
    import.expect_code(3);
    let misc_line = KEEPALIVED_EXTRA.lines().position(|l| l.contains("MISC_CHECK")).unwrap() + 1;
    let not_mapped: Vec<&str> = import.stderr.lines().filter(|l| l.contains(": not mapped: ")).collect();
    assert_eq!(not_mapped.len(), 1, "only the MISC_CHECK is not mapped\n{import}");
    assert!(
        not_mapped[0].contains(&format!("extra.conf:{misc_line}:")) && not_mapped[0].contains("MISC_CHECK"),
        "the note names the file and line of the MISC_CHECK ({misc_line})\n{import}"
    );
    println!("import:\n{import}");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        println!("--- {}\n{}", path.display(), std::fs::read_to_string(&path).unwrap());
    }

    // The director settings (lvs_timeouts) go beside the manifest directory, for --director-config, not into it
    // (`plan -f DIR` and `run` read every YAML file there as a manifest).
    let director_file = work.path("director.yaml");
    assert!(!dir.join("director.yaml").exists(), "not among the manifests");
    let settings = std::fs::read_to_string(&director_file).unwrap();
    assert!(
        settings.contains("tcp: 900") && settings.contains("tcpFin: 120") && settings.contains("udp: 300"),
        "{settings}"
    );
    let director = ["--director-config", path_str(&director_file)];

    // Against keepalived's live table, the import has nothing to do but adopt: no address either (each VIP is on
    // eth0 already, the VRRP one is not this program's to bind).
    let services = expected.iter().filter(|l| l.starts_with("-A ")).count();
    let plan = work.pass(&ns, "plan", &director);
    assert_only_adoptions(&plan, services);

    // Traffic, then apply: adoptions only.
    traffic(&client);
    let before = snapshot(&ns);
    // The kernel publishes the counters at its estimator's tick (every 2 s, later under emulation), not at once.
    eventually(Duration::from_secs(30), "the traffic counted", || {
        let counted = counters(&ns);
        for dest in ["TCP 192.0.2.10:80", "TCP 192.0.2.31:80", "UDP 192.0.2.40:5000", "UDP 192.0.2.50:53"] {
            if !counted.iter().any(|(key, (conns, _, _))| key.starts_with(dest) && *conns > 0) {
                return Err(format!("no connection counted for {dest}: {counted:?}"));
            }
        }
        Ok(())
    });
    let counted = counters(&ns);
    let apply = work.pass(&ns, "apply", &director);
    apply.expect_code(0);
    assert!(apply.op_lines().is_empty(), "apply changed the table\n{apply}");
    assert_eq!(apply.stdout.lines().filter(|l| l.starts_with("adopted ")).count(), services, "{apply}");
    assert_eq!(snapshot(&ns), before, "apply changed the table\n{apply}");

    // keepalived stops and leaves its table (-I); run takes over, does its first pass and several checks.
    let status = terminate(keepalived, "keepalived");
    assert!(status.success(), "keepalived exits 0 on SIGTERM: {status}");
    assert_eq!(snapshot(&ns), before, "keepalived removed something when it stopped");
    let log = std::fs::File::create(work.path("run.log")).unwrap();
    let run = KillOnDrop(Some(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(binary())
            .args(["run", "--manifests", path_str(&dir), "--state", path_str(&work.state())])
            .args(["--quiet-ms", "100", "--resync-seconds", "3600"])
            .args(director)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    ));
    // The table is watched from run's start until five check intervals (2 s) after its first full pass, which
    // must have changed nothing.
    let started = Instant::now();
    let mut first_pass: Option<Instant> = None;
    while first_pass.is_none_or(|at| at.elapsed() < Duration::from_secs(10)) {
        let now = snapshot(&ns);
        let run_log = std::fs::read_to_string(work.path("run.log")).unwrap_or_default();
        assert_eq!(now, before, "the table changed under run\n--- run's log\n{run_log}");
        if first_pass.is_none() {
            if let Some(pass) = run_log.lines().find(|l| l.contains("reconciled") && l.contains("full=true")) {
                assert!(pass.contains("applied=0 failed=0"), "run's first pass changed something\n{run_log}");
                first_pass = Some(Instant::now());
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no full pass of run within 60 s\n{run_log}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    traffic(&client);
    let status = terminate(run, "run");
    let run_log = std::fs::read_to_string(work.path("run.log")).unwrap_or_default();
    assert!(status.success(), "run exits 0 on SIGTERM: {status}\n{run_log}");
    assert_eq!(snapshot(&ns), before, "the table changed by run's stop\n{run_log}");
    let after = counters(&ns);
    for (dest, (conns, inpkts, outpkts)) in &counted {
        let (c, i, o) = after.get(dest).copied().unwrap_or_else(|| panic!("{dest} is gone: {after:?}"));
        assert!(c >= *conns && i >= *inpkts && o >= *outpkts, "{dest}'s counters went back: {counted:?} -> {after:?}");
    }
    println!("run's log:\n{run_log}");

    // A deliberate change to one imported file: a weight and a new backend, exactly that in the table.
    let web = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).unwrap().contains("192.0.2.10"))
        .expect("the imported file of 192.0.2.10:80");
    let mut object: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&web).unwrap()).unwrap();
    let backends = object["spec"]["backends"].as_sequence_mut().expect("spec.backends");
    let second = backends.iter_mut().find(|b| b["address"].as_str() == Some("10.77.0.2")).expect("10.77.0.2");
    second["weight"] = serde_yaml::Value::from(5);
    let mut added = second.clone();
    added["address"] = serde_yaml::Value::from("10.77.0.21");
    backends.push(added);
    std::fs::write(&web, serde_yaml::to_string(&object).unwrap()).unwrap();
    let rules = ns.saved_rules();
    let apply = work.pass(&ns, "apply", &director);
    apply.expect_code(0);
    let mut wanted: Vec<String> =
        rules.iter().filter(|l| *l != "-a -t 192.0.2.10:80 -r 10.77.0.2:8080 -m -w 2").cloned().collect();
    assert_eq!(wanted.len() + 1, rules.len(), "{rules:?}");
    wanted.extend([
        "-a -t 192.0.2.10:80 -r 10.77.0.2:8080 -m -w 5".to_owned(),
        "-a -t 192.0.2.10:80 -r 10.77.0.21:8080 -m -w 5".to_owned(),
    ]);
    wanted.sort();
    assert_eq!(ns.saved_rules(), wanted, "the edit's apply\n{apply}");
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
