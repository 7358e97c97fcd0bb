"""Helpers shared by the VM benchmarks (tests/vm/bench/inside-vm and tests/vm/bench/health-inside-vm): logging,
commands in network namespaces, the CPU time of processes, polling, medians."""
import os
import resource
import statistics
import subprocess
import sys
import time

# Who is talking: set by each benchmark script.
PREFIX = "inside-vm"

DUMMY = "bench0"
# The kernel refuses a destination it cannot route in the netns, so the
# dummy link gets an address in each prefix (connected routes cover them).
DUMMY_ADDRS = ("10.255.255.254/8", "198.19.255.254/15")


def log(msg):
    print(f"{PREFIX}: {msg}", file=sys.stderr, flush=True)


def loud(msg):
    bar = "!" * 72
    print(f"\n{bar}\n{msg}\n{bar}\n", flush=True)


def sh(args, **kw):
    """Run an untimed helper command; its failure aborts the benchmark."""
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{PREFIX}: {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def in_ns(ns, args):
    return ["ip", "netns", "exec", ns] + list(args)


def child_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime, ru.ru_stime


def timed(args, stdin=None, stdout=None, env=None):
    """Run args once; return its wall and CPU seconds, exit status, stderr tail."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    fout = open(stdout, "wb") if stdout else subprocess.DEVNULL
    try:
        u0, s0 = child_cpu()
        t0 = time.monotonic()
        r = subprocess.run(args, stdin=fin, stdout=fout, stderr=subprocess.PIPE, env=env)
        t1 = time.monotonic()
        u1, s1 = child_cpu()
    finally:
        if stdin:
            fin.close()
        if stdout:
            fout.close()
    err = r.stderr.decode(errors="replace").strip().splitlines()[-5:]
    return {
        "seconds": t1 - t0,
        "user": u1 - u0,
        "sys": s1 - s0,
        "rc": r.returncode,
        "stderr_tail": err,
    }


def make_netns(name):
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    sh(["ip", "netns", "add", name])
    sh(in_ns(name, ["ip", "link", "set", "lo", "up"]))
    sh(in_ns(name, ["ip", "link", "add", DUMMY, "type", "dummy"]))
    for a in DUMMY_ADDRS:
        sh(in_ns(name, ["ip", "addr", "add", a, "dev", DUMMY]))
    sh(in_ns(name, ["ip", "link", "set", DUMMY, "up"]))
    return name


def drop_netns(ns):
    """Flush then delete: `ipvsadm -C` unhashes the services synchronously,
    while a deleted netns is cleaned up later, asynchronously. IPVS keeps the
    services of every netns in one 256-bucket hash table, so a table left
    behind would slow the next tool's lookups and every later dump."""
    subprocess.run(in_ns(ns, ["ipvsadm", "-C"]), capture_output=True)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def proc_cpu(pids):
    """user and system seconds used so far by these processes (and their
    reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17
        user += (int(fields[11]) + int(fields[13])) / tick
        system += (int(fields[12]) + int(fields[14])) / tick
    return user, system


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def wait_for(cond, timeout, step):
    """Poll cond() until it is true; False when timeout seconds passed."""
    end = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(step)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x):
    return "      n/a" if x is None else f"{x:9.3f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b
