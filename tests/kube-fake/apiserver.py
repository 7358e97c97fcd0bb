#!/usr/bin/env python3
"""A stateful stand-in for the Kubernetes API server, for the agent's end-to-end test (tests/kernel/agent.rs).

No kube-apiserver can be installed here, so the test starts this instead. It serves exactly what the agent uses,
with the API's semantics for them:
  - list and watch (JSON lines, close-delimited) of VirtualServices in all namespaces, of EndpointSlices (label
    selector: the key must exist), of Nodes (field selector metadata.name=NAME), of VirtualServicePools and of
    Namespaces, with resourceVersions;
  - server-side apply of virtualservices/status: the entries of `status.nodes` are merged by nodeName, each owned
    by the field manager that sent it (an entry its manager stops sending is removed), as the list-map does.
The test drives it through /control/...: PUT an object (ADDED or MODIFIED), DELETE one, GET the status patches;
PUT /control/hidden/<kind> {"hidden": true} answers that kind 404 (its CRD is not installed); PUT /control/outage
{"outage": true} answers every API request 503 and ends every watch (the API server is down).

Usage: apiserver.py PORT_FILE   (binds 127.0.0.1 on a free port and writes the port to PORT_FILE)
Stops when its standard input closes (the test's child handle drops) or on SIGTERM.
"""

import bisect
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = {
    "virtualservices": ("ipvs.dev/v1alpha1", "VirtualService"),
    "endpointslices": ("discovery.k8s.io/v1", "EndpointSlice"),
    "nodes": ("v1", "Node"),
    "virtualservicepools": ("ipvs.dev/v1alpha1", "VirtualServicePool"),
    "namespaces": ("v1", "Namespace"),
}
PATHS = {
    "/apis/ipvs.dev/v1alpha1/virtualservices": "virtualservices",
    "/apis/discovery.k8s.io/v1/endpointslices": "endpointslices",
    "/api/v1/nodes": "nodes",
    "/apis/ipvs.dev/v1alpha1/virtualservicepools": "virtualservicepools",
    "/api/v1/namespaces": "namespaces",
}
hidden = set()  # kinds answered 404, as when their CRD is not installed
outage = [False]  # every API request answered 503, every watch ended

lock = threading.Condition()
objects = {kind: {} for kind in KINDS}  # kind -> (namespace, name) -> object
events = []  # (resourceVersion, kind, type, object), in resourceVersion order
event_versions = []  # the resourceVersion of each entry of `events`, for bisection
patches = []  # every status apply received: {"manager", "namespace", "name", "body"}
recorded_events = []  # every Event created
owners = {}  # (namespace, name) -> {manager: [entries]}
version = [1]


def bump(kind, event_type, obj):
    """Records a change under the lock; wakes every watch."""
    version[0] += 1
    obj.setdefault("metadata", {})["resourceVersion"] = str(version[0])
    events.append((version[0], kind, event_type, json.loads(json.dumps(obj))))
    event_versions.append(version[0])
    lock.notify_all()


def key_of(obj):
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta["name"]


def selected(kind, obj, query):
    """Label selector (existence of each key) and field selector (metadata.name=) as the agent uses them."""
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, query.get("labelSelector", [""])[0].split(",")):
        if term not in labels:
            return False
    for term in filter(None, query.get("fieldSelector", [""])[0].split(",")):
        field, _, value = term.partition("=")
        if field == "metadata.name" and obj["metadata"]["name"] != value:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # close-delimited bodies: a watch streams until the connection closes

    def log_message(self, fmt, *args):
        sys.stderr.write("apiserver: " + (fmt % args) + "\n")

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/control/patches":
            with lock:
                return self.reply(200, patches)
        if url.path == "/control/events":
            with lock:
                return self.reply(200, recorded_events)
        kind = PATHS.get(url.path)
        if outage[0]:
            return self.reply(503, {"kind": "Status", "status": "Failure", "reason": "ServiceUnavailable", "code": 503})
        if kind is None or kind in hidden:
            return self.reply(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})
        api_version, kind_name = KINDS[kind]
        if query.get("watch", ["false"])[0] in ("true", "1"):
            return self.watch(kind, query)
        with lock:
            items = [o for o in objects[kind].values() if selected(kind, o, query)]
            rv = str(version[0])
        self.reply(200, {"apiVersion": api_version, "kind": kind_name + "List",
                         "metadata": {"resourceVersion": rv}, "items": items})

    def watch(self, kind, query):
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        timeout = float(query.get("timeoutSeconds", ["290"])[0])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        sent = since
        deadline = threading.Event()
        threading.Timer(timeout, deadline.set).start()
        try:
            while not deadline.is_set() and not outage[0]:
                with lock:
                    # Only the events after `sent` are looked at: a wake-up costs what it delivers, not the whole
                    # history (which would make the fake, not the agent, slower at 10,000 objects).
                    start = bisect.bisect_right(event_versions, sent)
                    pending = [e for e in events[start:] if e[1] == kind]
                    if not pending and start < len(events):
                        sent = events[-1][0]
                    if not pending:
                        lock.wait(0.5)
                        continue
                for rv, _, event_type, obj in pending:
                    sent = rv
                    if selected(kind, obj, query):
                        self.wfile.write((json.dumps({"type": event_type, "object": obj}) + "\n").encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_PUT(self):
        if self.path.startswith("/control/hidden/"):
            kind = self.path.removeprefix("/control/hidden/")
            (hidden.add if self.body().get("hidden") else hidden.discard)(kind)
            return self.reply(200, sorted(hidden))
        if self.path == "/control/outage":
            with lock:
                outage[0] = bool(self.body().get("outage"))
                lock.notify_all()
            return self.reply(200, {"outage": outage[0]})
        # /control/<kind>: create or replace an object.
        kind = self.path.removeprefix("/control/")
        obj = self.body()
        api_version, kind_name = KINDS[kind]
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind_name)
        with lock:
            k = key_of(obj)
            old = objects[kind].get(k)
            meta = obj["metadata"]
            meta.setdefault("creationTimestamp", (old or {}).get("metadata", {}).get("creationTimestamp",
                                                                                      "2026-01-01T00:00:00Z"))
            meta["generation"] = (old or {}).get("metadata", {}).get("generation", 0) + 1
            if old and "status" in old:
                obj["status"] = old["status"]
            objects[kind][k] = obj
            bump(kind, "MODIFIED" if old else "ADDED", obj)
        self.reply(200, obj)

    def do_DELETE(self):
        # /control/<kind>/<namespace or ->/<name>
        _, _, kind, namespace, name = self.path.split("/", 4)
        namespace = "" if namespace == "-" else namespace
        with lock:
            obj = objects[kind].pop((namespace, name), None)
            if obj is not None:
                bump(kind, "DELETED", obj)
        self.reply(200 if obj else 404, obj or {"kind": "Status", "code": 404})

    def do_POST(self):
        # /apis/events.k8s.io/v1/namespaces/<ns>/events: Events are recorded, nothing else.
        if outage[0]:
            return self.reply(503, {"kind": "Status", "code": 503})
        parts = urllib.parse.urlparse(self.path).path.split("/")
        if len(parts) != 7 or parts[1:4] != ["apis", "events.k8s.io", "v1"] or parts[6] != "events":
            return self.reply(404, {"kind": "Status", "code": 404})
        event = self.body()
        with lock:
            recorded_events.append(event)
            event.setdefault("metadata", {}).setdefault("name", f"event-{len(recorded_events)}")
        self.reply(201, event)

    def do_PATCH(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = url.path.split("/")
        # /apis/ipvs.dev/v1alpha1/namespaces/<ns>/virtualservices/<name>/status
        if outage[0]:
            return self.reply(503, {"kind": "Status", "code": 503})
        if len(parts) != 9 or parts[6] != "virtualservices" or parts[8] != "status":
            return self.reply(404, {"kind": "Status", "code": 404})
        namespace, name = parts[5], parts[7]
        if self.headers.get("Content-Type") != "application/apply-patch+yaml":
            return self.reply(415, {"kind": "Status", "code": 415, "message": "server-side apply expected"})
        manager = query.get("fieldManager", [""])[0]
        body = self.body()  # JSON is YAML
        with lock:
            obj = objects["virtualservices"].get((namespace, name))
            if obj is None:
                return self.reply(404, {"kind": "Status", "code": 404})
            patches.append({"manager": manager, "namespace": namespace, "name": name, "body": body})
            # The list-map: this manager's entries replace what it sent before; others' stay.
            mine = owners.setdefault((namespace, name), {})
            mine[manager] = (body.get("status") or {}).get("nodes") or []
            merged = {}
            for entries in mine.values():
                for entry in entries:
                    merged[entry["nodeName"]] = entry
            obj["status"] = {"nodes": [merged[n] for n in sorted(merged)]}
            bump("virtualservices", "MODIFIED", obj)
        self.reply(200, obj)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Ends with the test: its stdin closes when the test drops the child.
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
