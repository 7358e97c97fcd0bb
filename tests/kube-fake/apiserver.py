#!/usr/bin/env python3
"""A stateful stand-in for the Kubernetes API server, for the agent's end-to-end tests (tests/kernel/agent.rs).

No kube-apiserver can be installed here, so the tests start this instead. It serves what the agents and kubectl use,
with the API server's semantics for them:
  - the kinds VirtualService and VirtualServicePool (ipvs.dev/v1alpha1; names, short names, categories and printer
    columns read from crds/*.yaml), EndpointSlice, Node, Namespace, Pod and Lease (coordination.k8s.io/v1): list
    and watch (JSON lines, close-delimited) on the cluster-wide path and on the namespaced one
    (/api(s)/<group/version>/namespaces/<ns>/<kind>), GET of one object (404 Status when absent), with
    resourceVersions. Label selectors: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b); field selectors: any
    dotted field (metadata.name, spec.nodeName, ...) with =, ==, !=. A watch from resourceVersion 0 or none begins
    with an ADDED per object (sendInitialEvents=true ends them with the initial-events-end BOOKMARK); an object
    that stops (starts) matching a watch's selectors is DELETED (ADDED) on it. Lists are in namespace/name order;
  - the representations a client asks for with Accept: the object itself, meta.k8s.io/v1 PartialObjectMetadataList
    (a list) or PartialObjectMetadata (a watch, a GET), as kube-rs's metadata_watcher asks, and meta.k8s.io/v1
    Table (kubectl get: Name then the CRD's additionalPrinterColumns, evaluated like the API server's table
    convertor, or a printer per built-in kind); anything else is 406;
  - discovery as kubectl reads it: /version, /api, /apis, /api/v1, /apis/<group>/<version>, plain JSON (kubectl
    asks for aggregated discovery first and falls back when the answer is application/json). A hidden kind is left
    out;
  - Leases: create (POST), replace (PUT), merge patch and delete, with optimistic concurrency: 409 Conflict when
    the resourceVersion sent is not the current one, 409 AlreadyExists, 404 NotFound, as Status bodies; an update
    that changes nothing writes nothing (same resourceVersion, no watch event);
  - server-side apply of virtualservices/status by several field managers (the agents' `ipvs-reconciler/<node>`,
    the leader's `ipvs-reconciler-status`): each manager's last applied status is kept and the status is their
    merge: `nodes` entries by nodeName, `conditions` by type (list-maps), any other field from the manager that
    sent it. A field or entry its manager stops sending goes away unless another manager still sends it; one that
    another manager owns with another value is a 409 conflict unless force=true, which takes it over. An apply
    never changes metadata.generation; one that changes nothing writes nothing;
  - Events (events.k8s.io/v1) are recorded.
The tests drive it through /control/... (never affected by an outage or a hidden kind):
  PUT /control/<kind> an object (ADDED or MODIFIED; metadata.generation +1; the stored status is kept unless the
  body has one), DELETE /control/<kind>/<namespace or ->/<name>, GET /control/<kind> (every object of a kind, e.g.
  the leases), GET /control/patches (every status apply received), GET /control/events (every Event);
  PUT /control/hidden/<kind> {"hidden": true} answers that kind 404 (its CRD is not installed); PUT /control/outage
  {"outage": true} answers every API request 503 and ends every watch (the API server is down).

Usage: apiserver.py PORT_FILE   (binds 127.0.0.1 on a free port and writes the port to PORT_FILE)
Stops when its standard input closes (the test's child handle drops) or on SIGTERM.
"""

import bisect
import datetime
import functools
import json
import pathlib
import re
import sys
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import yaml  # Debian's python3-yaml (tests/all installs it): the CRDs are YAML
except ImportError:
    yaml = None

CRD_DIR = pathlib.Path(__file__).resolve().parent.parent.parent / "crds"


# ---- Printer columns (kubectl get's Table) ----

def human_age(timestamp):
    """A date cell as the API server prints it (duration.HumanDuration of the time since `timestamp`)."""
    if timestamp in ("", "null"):
        return "<unknown>"  # the zero time
    try:
        then = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return "<invalid>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=datetime.timezone.utc)
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def jsonpath(path, obj):
    """Every value the simple JSONPath `path` selects in `obj`, in order: .field, ['field'], [n], [a:b], [*] and
    filters [?(@.f.g=="x")], [?(@.f!=1)], [?(@.f)] (what CRD printer columns may use)."""
    values, i = [obj], 0
    while i < len(path):
        if path[i] == "[":
            end = path.index("]", i)
            selector, i = path[i + 1:end].strip(), end + 1
            values = [found for value in values for found in select(value, selector)]
            continue
        if path[i] == ".":
            i += 1
        end = i
        while end < len(path) and path[end] not in ".[":
            end += 1
        name, i = path[i:end], end
        if name:
            values = [v[name] for v in values if isinstance(v, dict) and name in v]
    return values


def select(value, selector):
    """What one [...] of a JSONPath selects in `value`."""
    if selector == "*":
        return list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, list) else []
    if selector[:1] in "'\"":
        name = selector[1:-1]
        return [value[name]] if isinstance(value, dict) and name in value else []
    if selector.startswith("?(") and selector.endswith(")"):
        match = re.fullmatch(r"@((?:\.[^.=!<>\s]+)+)\s*(?:(==|!=)\s*(.+))?", selector[2:-1].strip())
        if not match or not isinstance(value, list):
            return []
        sub_path, op, literal = match.groups()
        if op is None:
            return [item for item in value if jsonpath(sub_path, item)]
        wanted = literal[1:-1] if literal[:1] in "'\"" else json.loads(literal)
        picked = []
        for item in value:
            found = jsonpath(sub_path, item)
            equal = bool(found) and found[0] == wanted
            if equal == (op == "=="):
                picked.append(item)
        return picked
    if not isinstance(value, list):
        return []
    if ":" in selector:
        start, _, stop = selector.partition(":")
        return value[int(start) if start else None:int(stop) if stop.split(":")[0] else None]
    index = int(selector)
    return [value[index]] if -len(value) <= index < len(value) else []


def printed(value):
    """A value as JSONPath prints it: maps and lists as JSON, the rest as Go's fmt does; None when unprintable."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def crd_cell(column, obj):
    """One cell of a CRD printer column, as the API server's tableconvertor makes it: only the FIRST value the path
    selects is printed; a missing value is an empty (null) cell; `date` is an age; the other types only when the
    value has that type."""
    found = jsonpath(column["jsonPath"], obj)
    if not found:
        return None
    value, kind = found[0], column["type"]
    if kind == "string":
        return printed(value)
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        return human_age(value)
    return None


def column(name, kind, cell, priority=0, description="", format=""):
    """A Table column: its definition and `cell`, the function of the object that gives its cell."""
    return {"name": name, "type": kind, "format": format, "description": description, "priority": priority,
            "cell": cell}


def field(obj, path, default=None):
    """The value at a dotted path of `obj` (metadata.name), or `default`."""
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


NAME = column("Name", "string", lambda o: o["metadata"]["name"], format="name",
              description="Name must be unique within a namespace.")
AGE = column("Age", "date", lambda o: human_age(field(o, "metadata.creationTimestamp", "")),
             description="CreationTimestamp is a timestamp representing the server time when this object was created.")


def pod_ready(pod):
    statuses = field(pod, "status.containerStatuses", [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(field(pod, 'spec.containers', []))}"


def pod_status(pod):
    if field(pod, "metadata.deletionTimestamp"):
        return "Terminating"
    return field(pod, "status.reason") or field(pod, "status.phase", "")


def node_status(node):
    ready = [c for c in field(node, "status.conditions", []) if c.get("type") == "Ready"]
    return "Unknown" if not ready else "Ready" if ready[0].get("status") == "True" else "NotReady"


def node_roles(node):
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in field(node, "metadata.labels", {}) if k.startswith(prefix))
    return ",".join(roles) or "<none>"


def slice_ports(endpoint_slice):
    ports = [str(p["port"]) for p in endpoint_slice.get("ports") or [] if "port" in p]
    return ",".join(ports) or "<unset>"


def slice_endpoints(endpoint_slice):
    addresses = [a for e in endpoint_slice.get("endpoints") or [] for a in e.get("addresses", [])]
    shown = ",".join(addresses[:3]) or "<unset>"
    return shown + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")


# The printers of the built-in kinds: what the API server's own columns show (a useful part of them).
BUILTIN_COLUMNS = {
    "pods": [NAME, column("Ready", "string", pod_ready), column("Status", "string", pod_status),
             column("Restarts", "integer",
                    lambda p: sum(s.get("restartCount", 0) for s in field(p, "status.containerStatuses", []))),
             AGE, column("IP", "string", lambda p: field(p, "status.podIP", "<none>"), priority=1),
             column("Node", "string", lambda p: field(p, "spec.nodeName", "<none>"), priority=1)],
    "leases": [NAME, column("Holder", "string", lambda lease: field(lease, "spec.holderIdentity", "")), AGE],
    "nodes": [NAME, column("Status", "string", node_status), column("Roles", "string", node_roles), AGE,
              column("Version", "string", lambda n: field(n, "status.nodeInfo.kubeletVersion", ""))],
    "namespaces": [NAME, column("Status", "string", lambda n: field(n, "status.phase", "Active")), AGE],
    "endpointslices": [NAME, column("AddressType", "string", lambda s: s.get("addressType", "")),
                       column("Ports", "string", slice_ports), column("Endpoints", "string", slice_endpoints), AGE],
}


# ---- Kinds ----

class Kind:
    """A resource the server serves, with what discovery says of it."""

    def __init__(self, resource, group, version, kind, namespaced, singular, short_names=(), categories=(),
                 columns=(), subresources=()):
        self.resource, self.group, self.version, self.kind = resource, group, version, kind
        self.namespaced, self.singular = namespaced, singular
        self.short_names, self.categories, self.subresources = list(short_names), list(categories), subresources
        self.columns = list(columns) or [NAME, AGE]
        self.api_version = f"{group}/{version}" if group else version
        self.group_resource = f"{resource}.{group}" if group else resource  # as error messages name it


def crd_kind(file_name, fallback):
    """The Kind of a CRD of the repository (crds/<file_name>): names, scope and printer columns read from it when
    PyYAML is there; otherwise `fallback` (names as the CRD says them) with the columns Name and Age."""
    try:
        docs = list(yaml.safe_load_all((CRD_DIR / file_name).read_text())) if yaml else []
    except OSError:
        docs = []
    for crd in docs:
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec, names = crd["spec"], crd["spec"]["names"]
        served = [v for v in spec["versions"] if v.get("served", True)]
        printer = [column(c["name"], c["type"], functools.partial(crd_cell, c), c.get("priority", 0),
                          c.get("description", ""), c.get("format", ""))
                   for c in served[0].get("additionalPrinterColumns", [])]
        # With no printer columns the API server shows Name and Age.
        return Kind(names["plural"], spec["group"], served[0]["name"], names["kind"], spec["scope"] == "Namespaced",
                    names.get("singular", names["kind"].lower()), names.get("shortNames", []),
                    names.get("categories", []), [NAME] + printer if printer else [],
                    tuple(served[0].get("subresources") or {}))
    return fallback


KINDS = {kind.resource: kind for kind in [
    crd_kind("virtualservice.yaml", Kind("virtualservices", "ipvs.dev", "v1alpha1", "VirtualService", True,
                                         "virtualservice", ["ipvs"], ["ipvs"], subresources=("status",))),
    crd_kind("virtualservicepool.yaml", Kind("virtualservicepools", "ipvs.dev", "v1alpha1", "VirtualServicePool",
                                             False, "virtualservicepool", ["ipvspool"], ["ipvs"],
                                             subresources=("status",))),
    Kind("endpointslices", "discovery.k8s.io", "v1", "EndpointSlice", True, "endpointslice",
         columns=BUILTIN_COLUMNS["endpointslices"]),
    Kind("nodes", "", "v1", "Node", False, "node", ["no"], columns=BUILTIN_COLUMNS["nodes"],
         subresources=("status",)),
    Kind("namespaces", "", "v1", "Namespace", False, "namespace", ["ns"], columns=BUILTIN_COLUMNS["namespaces"],
         subresources=("status",)),
    Kind("pods", "", "v1", "Pod", True, "pod", ["po"], ["all"], columns=BUILTIN_COLUMNS["pods"],
         subresources=("status",)),
    Kind("leases", "coordination.k8s.io", "v1", "Lease", True, "lease", columns=BUILTIN_COLUMNS["leases"]),
]}
WRITABLE = {"leases"}  # kinds the API (not only /control) creates, replaces, patches and deletes
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
LIST_MAPS = {"nodes": "nodeName", "conditions": "type"}  # status list-maps: field -> the key of their entries

hidden = set()  # kinds answered 404, as when their CRD is not installed
outage = [False]  # every API request answered 503, every watch ended

lock = threading.Condition()
objects = {kind: {} for kind in KINDS}  # kind -> (namespace, name) -> object
events = []  # (resourceVersion, kind, type, object, previous object or None), in resourceVersion order
event_versions = []  # the resourceVersion of each entry of `events`, for bisection
patches = []  # every status apply received: {"manager", "namespace", "name", "body"}
recorded_events = []  # every Event created
owners = {}  # (namespace, name) -> {manager: {field unit: value}}, least recently applied first (see apply_status)
version = [1]


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def copy(obj):
    return json.loads(json.dumps(obj))


def bump(kind, event_type, obj, previous=None):
    """Records a change under the lock; wakes every watch. `previous` (the object before a MODIFIED) lets a watch
    whose selectors it matched but the new object does not see a DELETED, as the API server sends."""
    version[0] += 1
    obj.setdefault("metadata", {})["resourceVersion"] = str(version[0])
    events.append((version[0], kind, event_type, copy(obj), copy(previous) if previous else None))
    event_versions.append(version[0])
    lock.notify_all()


def key_of(obj):
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta["name"]


def split_selector(selector):
    """The terms of a selector: split at the commas outside parentheses (`k in (a,b)` is one term)."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(selector):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return [term.strip() for term in terms if term.strip()]


def label_matches(term, labels):
    """One term of a label selector: k=v, k==v, k!=v (true without the label), k (exists), !k (does not),
    k in (a,b), k notin (a,b) (true without the label)."""
    match = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term)
    if match:
        key, op, values = match[1], match[2], {v.strip() for v in match[3].split(",")}
        return labels.get(key) in values if op == "in" else labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (part.strip() for part in term.split(op, 1))
            return (labels.get(key) != value) if op == "!=" else (labels.get(key) == value)
    if term.startswith("!"):
        return term[1:].strip() not in labels
    return term in labels


def selected(kind, obj, query):
    """Whether `obj` matches the request's label selector and field selector (a dotted field, =, == or !=)."""
    labels = obj.get("metadata", {}).get("labels") or {}
    if not all(label_matches(term, labels) for term in split_selector(query.get("labelSelector", [""])[0])):
        return False
    for term in split_selector(query.get("fieldSelector", [""])[0]):
        op = "!=" if "!=" in term else "==" if "==" in term else "="
        path, _, value = term.partition(op)
        actual = field(obj, path.strip(), "")
        actual = printed(actual) if not isinstance(actual, str) else actual
        if (actual == value.strip()) != (op != "!="):
            return False
    return True


def in_scope(obj, namespace):
    """Whether `obj` is in the request's namespace (None: every namespace)."""
    return namespace is None or obj.get("metadata", {}).get("namespace", "") == namespace


# ---- Representations (Accept) ----

def negotiate(accept):
    """What the Accept header asks for, from the first media type served: "object" (application/json),
    "PartialObjectMetadata", "PartialObjectMetadataList" or "Table" (meta.k8s.io/v1); None when none is (406)."""
    if not accept:
        return "object"
    for clause in accept.split(","):
        media, *rest = [part.strip() for part in clause.split(";")]
        params = dict(part.split("=", 1) for part in rest if "=" in part)
        if media not in ("application/json", "application/*", "*/*"):
            continue  # protobuf, YAML, ...
        if "as" not in params:
            return "object"
        if params.get("g") == "meta.k8s.io" and params.get("v") == "v1" and params["as"] in (
                "PartialObjectMetadata", "PartialObjectMetadataList", "Table"):
            return params["as"]
    return None


def partial(obj):
    return {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj.get("metadata", {})}


def table(kind, items, resource_version, query):
    """A meta.k8s.io/v1 Table of `items`: the kind's columns, each row's object as includeObject says (Metadata,
    the default: PartialObjectMetadata; Object; None)."""
    include = query.get("includeObject", ["Metadata"])[0]
    rows = []
    for obj in items:
        row = {"cells": [c["cell"](obj) for c in kind.columns]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = partial(obj)
        rows.append(row)
    definitions = [{k: v for k, v in c.items() if k != "cell"} for c in kind.columns]
    return {"apiVersion": "meta.k8s.io/v1", "kind": "Table", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": definitions, "rows": rows}


# ---- Status bodies ----

def failure(code, reason, message, more=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if more:
        body["details"] = more
    return body


def details(kind, name, **more):
    return {"name": name, "group": kind.group, "kind": kind.resource, **more}


def not_found(kind, name):
    return failure(404, "NotFound", f'{kind.group_resource} "{name}" not found', details(kind, name))


def conflict(kind, name, why):
    return failure(409, "Conflict", f'Operation cannot be fulfilled on {kind.group_resource} "{name}": {why}',
                   details(kind, name))


NO_RESOURCE = failure(404, "NotFound", "the server could not find the requested resource")
UNAVAILABLE = failure(503, "ServiceUnavailable", "the API server is down (outage)")
NOT_ACCEPTABLE = failure(406, "NotAcceptable", "the server was unable to respond with a content type that the client "
                                               "supports")
STALE = "the object has been modified; please apply your changes to the latest version and try again"


def route(path):
    """The API path of a resource: (Kind, namespace or None, name or None, subresource or None), or None.
    /api/v1/<kind>[/<name>[/<sub>]], /api/v1/namespaces/<ns>/<kind>[/<name>[/<sub>]], /apis/<group>/<version>/..."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":  # not /api/v1/namespaces[/<name>]: the Namespaces themselves
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    kind = KINDS.get(rest[0])
    if kind is None or (kind.group, kind.version) != (group, version):
        return None
    if namespace is not None and not kind.namespaced:
        return None  # a cluster-scoped kind has no namespaced path
    name, sub = (rest[1:] + [None, None])[:2]
    if sub is not None and sub not in kind.subresources:
        return None
    return kind, namespace, name, sub


# ---- Discovery ----

def served_kinds():
    return [kind for kind in KINDS.values() if kind.resource not in hidden]


def group_versions():
    """(group, version) of every API group version served but the core one, in order."""
    seen = []
    for kind in served_kinds():
        if kind.group and (kind.group, kind.version) not in seen:
            seen.append((kind.group, kind.version))
    return seen


def resource_list(group, version):
    """The APIResourceList of a group version, or None when it serves nothing."""
    resources = []
    for kind in served_kinds():
        if (kind.group, kind.version) != (group, version):
            continue
        resource = {"name": kind.resource, "singularName": kind.singular, "namespaced": kind.namespaced,
                    "kind": kind.kind, "verbs": VERBS}
        if kind.short_names:
            resource["shortNames"] = kind.short_names
        if kind.categories:
            resource["categories"] = kind.categories
        resources.append(resource)
        for sub in kind.subresources:
            resources.append({"name": f"{kind.resource}/{sub}", "singularName": "", "namespaced": kind.namespaced,
                              "kind": kind.kind, "verbs": ["get", "patch", "update"]})
    if not resources:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


def discovery(path, port):
    """The discovery document at `path`, or None."""
    if path == "/version":
        return {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "fake", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
                "platform": "linux/amd64"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}]}
    if path == "/apis":
        groups = []
        for group, version in group_versions():
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    parts = [p for p in path.split("/") if p]
    if parts == ["api", "v1"]:
        return resource_list("", "v1")
    if len(parts) == 3 and parts[0] == "apis":
        return resource_list(parts[1], parts[2])
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in dict(group_versions()):
        gvs = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in group_versions() if g == parts[1]]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1], "versions": gvs, "preferredVersion": gvs[0]}
    return None


# ---- Writes ----

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (for a Lease, a strategic merge patch is the same: its fields are no lists)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def status_units(status):
    """What SSA owns separately in an applied status: (field, key) per entry of a list-map, (field,) for the rest
    (a list-map's (field,) says only that the list exists: it never conflicts), each with its value."""
    units = {}
    for name, value in (status or {}).items():
        key = LIST_MAPS.get(name)
        if key and isinstance(value, list):
            units[(name,)] = None
            for entry in value:
                units[(name, entry.get(key))] = entry
        else:
            units[(name,)] = value
    return units


def merged_status(applied):
    """The status that the managers' applied units make, the most recently applied winning a field."""
    status = {}
    for units in applied.values():
        for unit, value in units.items():
            if unit[0] in LIST_MAPS:
                entries = status.setdefault(unit[0], {})
                if len(unit) == 2:
                    entries[unit[1]] = value
            else:
                status[unit[0]] = value
    for name in LIST_MAPS:
        if name in status:
            entries = status[name]
            # nodes in nodeName order (as before); conditions in the order they were first applied
            keys = sorted(entries, key=str) if name == "nodes" else list(entries)
            status[name] = [entries[k] for k in keys]
    return status


def unit_path(unit):
    return f".status.{unit[0]}" if len(unit) == 1 else f'.status.{unit[0]}[{LIST_MAPS[unit[0]]}="{unit[1]}"]'


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
        data = self.rfile.read(length) or b"{}"
        try:
            return json.loads(data)
        except ValueError:
            if yaml is None:
                raise
            return yaml.safe_load(data)  # an apply patch may be YAML

    def parse(self):
        url = urllib.parse.urlparse(self.path)
        return url.path, urllib.parse.parse_qs(url.query)

    def resource(self, path):
        """The route of an API request, or None after answering it (outage, unknown or hidden kind)."""
        if outage[0]:
            return self.reply(503, UNAVAILABLE)
        found = route(path)
        if found is None or found[0].resource in hidden:
            return self.reply(404, NO_RESOURCE)
        return found

    # -- GET: /control, discovery, list, watch, one object --

    def do_GET(self):
        path, query = self.parse()
        if path == "/control/patches":
            with lock:
                return self.reply(200, patches)
        if path == "/control/events":
            with lock:
                return self.reply(200, recorded_events)
        if path.startswith("/control/"):
            kind = path.removeprefix("/control/")
            if kind not in KINDS:
                return self.reply(404, NO_RESOURCE)
            with lock:
                return self.reply(200, [objects[kind][k] for k in sorted(objects[kind])])
        if outage[0]:
            return self.reply(503, UNAVAILABLE)
        if route(path) is None:
            document = discovery(path, self.server.server_address[1])
            if document is None:
                return self.reply(404, NO_RESOURCE)
            # Discovery is plain JSON only: kubectl's Accept offers aggregated discovery, then application/json.
            return self.reply(200, document) if negotiate(self.headers.get("Accept")) == "object" else \
                self.reply(406, NOT_ACCEPTABLE)
        found = self.resource(path)
        if found is None:
            return
        kind, namespace, name, _ = found
        form = negotiate(self.headers.get("Accept"))
        if form is None:
            return self.reply(406, NOT_ACCEPTABLE)
        watching = query.get("watch", ["false"])[0] in ("true", "1")
        if name is not None and (namespace is not None) != kind.namespaced:
            return self.reply(404, NO_RESOURCE)
        if name is not None and watching:
            query.setdefault("fieldSelector", [""])[0] += f",metadata.name={name}"  # the old watch of one object
        # A list is a list of metadata, a single object (GET, a watch's event) is one: the API server refuses the
        # other way round with 406.
        if form == ("PartialObjectMetadata" if name is None and not watching else "PartialObjectMetadataList"):
            return self.reply(406, NOT_ACCEPTABLE)
        if watching:
            return self.watch(kind, namespace, query, form)
        with lock:
            if name is not None:
                obj = objects[kind.resource].get((namespace or "", name))
                if obj is None:
                    return self.reply(404, not_found(kind, name))
                obj = copy(obj)
            else:
                # No copies (10,000 objects): a stored object is replaced, never changed, once listed.
                store = objects[kind.resource]
                items = [store[k] for k in sorted(store)
                         if in_scope(store[k], namespace) and selected(kind.resource, store[k], query)]
            rv = str(version[0])
        if name is not None:
            if form == "Table":
                return self.reply(200, table(kind, [obj], obj["metadata"]["resourceVersion"], query))
            return self.reply(200, partial(obj) if form == "PartialObjectMetadata" else obj)
        if form == "Table":
            return self.reply(200, table(kind, items, rv, query))
        if form == "PartialObjectMetadataList":
            return self.reply(200, {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                                    "metadata": {"resourceVersion": rv}, "items": [partial(o) for o in items]})
        self.reply(200, {"apiVersion": kind.api_version, "kind": kind.kind + "List",
                         "metadata": {"resourceVersion": rv}, "items": items})

    def watch(self, kind, namespace, query, form):
        """Streams the watch events of `kind` after the request's resourceVersion (none or 0: an ADDED per object
        first), in the negotiated form, until timeoutSeconds, an outage or the client's leaving."""
        since = query.get("resourceVersion", [""])[0]
        timeout = float(query.get("timeoutSeconds", ["290"])[0])
        initial_events = query.get("sendInitialEvents", ["false"])[0] == "true"

        def shown(obj):
            if form == "Table":
                return table(kind, [obj], obj["metadata"]["resourceVersion"], query)
            return partial(obj) if form == "PartialObjectMetadata" else obj

        def line(event_type, obj):
            return (json.dumps({"type": event_type, "object": shown(obj)}) + "\n").encode()

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        first = []
        with lock:
            if since in ("", "0") or initial_events:
                # The state now, as ADDED events, then what follows it.
                store = objects[kind.resource]
                first = [line("ADDED", store[k]) for k in sorted(store)
                         if in_scope(store[k], namespace) and selected(kind.resource, store[k], query)]
                sent = version[0]
                if initial_events and query.get("allowWatchBookmarks", ["false"])[0] == "true":
                    mark = {"kind": kind.kind, "apiVersion": kind.api_version,
                            "metadata": {"resourceVersion": str(sent),
                                         "annotations": {"k8s.io/initial-events-end": "true"}}}
                    if form == "PartialObjectMetadata":
                        mark = partial(mark)
                    first.append((json.dumps({"type": "BOOKMARK", "object": mark}) + "\n").encode())
            else:
                sent = int(since)
        deadline = threading.Event()
        threading.Timer(timeout, deadline.set).start()
        try:
            self.wfile.write(b"".join(first))
            self.wfile.flush()
            while not deadline.is_set() and not outage[0]:
                with lock:
                    # Only the events after `sent` are looked at: a wake-up costs what it delivers, not the whole
                    # history (which would make the fake, not the agent, slower at 10,000 objects).
                    start = bisect.bisect_right(event_versions, sent)
                    pending = [e for e in events[start:] if e[1] == kind.resource]
                    if not pending and start < len(events):
                        sent = events[-1][0]
                    if not pending:
                        lock.wait(0.5)
                        continue
                out = []
                for rv, _, event_type, obj, previous in pending:
                    sent = rv
                    if not in_scope(obj, namespace):
                        continue
                    now_in = selected(kind.resource, obj, query)
                    was_in = previous is not None and selected(kind.resource, previous, query)
                    if event_type == "MODIFIED" and now_in != was_in:
                        # Into the selection: ADDED; out of it: DELETED, the previous object at the new version.
                        if was_in:
                            gone = copy(previous)  # the event log's copy is every watch's
                            gone["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
                            out.append(line("DELETED", gone))
                        else:
                            out.append(line("ADDED", obj))
                    elif now_in:
                        out.append(line(event_type, obj))
                self.wfile.write(b"".join(out))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- PUT: /control, replace --

    def do_PUT(self):
        path, _ = self.parse()
        if path.startswith("/control/hidden/"):
            kind = path.removeprefix("/control/hidden/")
            with lock:
                (hidden.add if self.body().get("hidden") else hidden.discard)(kind)
            return self.reply(200, sorted(hidden))
        if path == "/control/outage":
            with lock:
                outage[0] = bool(self.body().get("outage"))
                lock.notify_all()
            return self.reply(200, {"outage": outage[0]})
        if path.startswith("/control/"):
            return self.control_put(path.removeprefix("/control/"))
        found = self.resource(path)
        if found is None:
            return
        kind, namespace, name, sub = found
        if kind.resource not in WRITABLE or name is None or sub is not None:
            return self.reply(405, failure(405, "MethodNotAllowed", "the fake serves PUT for leases only"))
        obj = self.body()
        error = self.check_body(kind, namespace, name, obj)
        if error:
            return self.reply(error["code"], error)
        with lock:
            old = objects[kind.resource].get((namespace, name))
            if old is None:
                return self.reply(404, not_found(kind, name))  # a Lease is not created by an update
            sent = obj.get("metadata", {}).get("resourceVersion")
            if sent and sent != old["metadata"]["resourceVersion"]:
                return self.reply(409, conflict(kind, name, STALE))
            uid = obj.get("metadata", {}).get("uid")
            if uid and uid != old["metadata"].get("uid"):
                return self.reply(409, conflict(kind, name, f"Precondition failed: UID in precondition: {uid}, UID "
                                                             f"in object meta: {old['metadata'].get('uid')}"))
            self.reply(200, self.update(kind, old, obj))

    def control_put(self, kind):
        """/control/<kind>: creates or replaces an object as the tests say it (metadata.generation +1)."""
        if kind not in KINDS:
            return self.reply(404, NO_RESOURCE)
        obj = self.body()
        obj.setdefault("apiVersion", KINDS[kind].api_version)
        obj.setdefault("kind", KINDS[kind].kind)
        with lock:
            k = key_of(obj)
            old = objects[kind].get(k)
            old_meta = (old or {}).get("metadata", {})
            meta = obj["metadata"]
            meta.setdefault("creationTimestamp", old_meta.get("creationTimestamp", "2026-01-01T00:00:00Z"))
            meta.setdefault("uid", old_meta.get("uid") or str(uuid.uuid4()))
            meta["generation"] = old_meta.get("generation", 0) + 1
            if "status" in obj:
                if kind == "virtualservices":
                    owners.pop(k, None)  # the tests set the status: no manager owns any of it any more
            elif old and "status" in old:
                obj["status"] = old["status"]
            objects[kind][k] = obj
            bump(kind, "MODIFIED" if old else "ADDED", obj, old)
        self.reply(200, obj)

    def check_body(self, kind, namespace, name, obj):
        """What the API server refuses in the body of a create or update (a Status), or None."""
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(meta, dict):
            return failure(400, "BadRequest", "the body must be an object with metadata")
        for got, want, what in [(obj.get("apiVersion"), kind.api_version, "API version"),
                                (obj.get("kind"), kind.kind, "kind")]:
            if got and got != want:
                return failure(400, "BadRequest", f"the {what} in the data ({got}) does not match the expected "
                                                  f"{what} ({want})")
        if meta.get("namespace") and meta["namespace"] != namespace:
            return failure(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                                              "sent on the request")
        if name is not None and meta.get("name") and meta["name"] != name:
            return failure(400, "BadRequest", f"the name of the object ({meta['name']}) does not match the name on "
                                              f"the URL ({name})")
        if not (meta.get("name") or name):
            return failure(422, "Invalid", f"{kind.kind} \"\" is invalid: metadata.name: Required value: name or "
                                           "generateName is required")
        spec = obj.get("spec") or {}
        if kind.resource == "leases":
            # The Lease validation that a client can get wrong.
            if "leaseDurationSeconds" in spec and not (spec["leaseDurationSeconds"] or 0) > 0:
                return failure(422, "Invalid", f'Lease.coordination.k8s.io "{meta.get("name") or name}" is invalid: '
                                               "spec.leaseDurationSeconds: Invalid value: must be greater than 0")
            if (spec.get("leaseTransitions") or 0) < 0:
                return failure(422, "Invalid", f'Lease.coordination.k8s.io "{meta.get("name") or name}" is invalid: '
                                               "spec.leaseTransitions: Invalid value: must be greater than or equal "
                                               "to 0")
        return None

    def update(self, kind, old, obj):
        """Stores `obj` in place of `old` (under the lock): name, namespace, uid and creationTimestamp kept. An
        update that changes nothing writes nothing: same resourceVersion, no watch event."""
        meta = obj.setdefault("metadata", {})
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        for name in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation"):
            if name in old["metadata"]:
                meta[name] = old["metadata"][name]
            else:
                meta.pop(name, None)
        if obj == old:
            return copy(old)
        objects[kind.resource][key_of(obj)] = obj
        bump(kind.resource, "MODIFIED", obj, old)
        return copy(obj)

    # -- POST: create, Events --

    def do_POST(self):
        path, _ = self.parse()
        if outage[0]:
            return self.reply(503, UNAVAILABLE)
        parts = path.split("/")
        # /apis/events.k8s.io/v1/namespaces/<ns>/events: Events are recorded, nothing else.
        if len(parts) == 7 and parts[1:4] == ["apis", "events.k8s.io", "v1"] and parts[6] == "events":
            event = self.body()
            with lock:
                recorded_events.append(event)
                event.setdefault("metadata", {}).setdefault("name", f"event-{len(recorded_events)}")
            return self.reply(201, event)
        found = self.resource(path)
        if found is None:
            return
        kind, namespace, name, sub = found
        if kind.resource not in WRITABLE or name is not None or (namespace is None) == kind.namespaced:
            return self.reply(405, failure(405, "MethodNotAllowed", "the fake serves POST for leases only"))
        obj = self.body()
        error = self.check_body(kind, namespace, None, obj)
        if error:
            return self.reply(error["code"], error)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            # What etcd's storage answers: a create is never conditional.
            return self.reply(500, failure(500, "InternalError", "resourceVersion should not be set on objects to be "
                                                                 "created"))
        with lock:
            k = (namespace or "", meta["name"])
            if k in objects[kind.resource]:
                return self.reply(409, failure(409, "AlreadyExists",
                                               f'{kind.group_resource} "{meta["name"]}" already exists',
                                               details(kind, meta["name"])))
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            if namespace is not None:
                meta["namespace"] = namespace
            meta["uid"], meta["creationTimestamp"] = str(uuid.uuid4()), now()
            objects[kind.resource][k] = obj
            bump(kind.resource, "ADDED", obj)
            self.reply(201, copy(obj))

    # -- DELETE: /control, delete --

    def do_DELETE(self):
        path, _ = self.parse()
        if path.startswith("/control/"):
            # /control/<kind>/<namespace or ->/<name>
            _, _, kind, namespace, name = path.split("/", 4)
            namespace = "" if namespace == "-" else namespace
            if kind not in KINDS:
                return self.reply(404, NO_RESOURCE)
            with lock:
                obj = objects[kind].pop((namespace, name), None)
                if obj is not None:
                    if kind == "virtualservices":
                        owners.pop((namespace, name), None)  # a new object of that name starts with no managers
                    bump(kind, "DELETED", obj)
            return self.reply(200 if obj else 404, obj or failure(404, "NotFound", f'"{name}" not found'))
        found = self.resource(path)
        if found is None:
            return
        kind, namespace, name, sub = found
        if kind.resource not in WRITABLE or name is None or sub is not None:
            return self.reply(405, failure(405, "MethodNotAllowed", "the fake serves DELETE for leases only"))
        options = self.body() or {}
        with lock:
            old = objects[kind.resource].get((namespace or "", name))
            if old is None:
                return self.reply(404, not_found(kind, name))
            wanted = options.get("preconditions") or {}
            for what, field_name in (("ResourceVersion", "resourceVersion"), ("UID", "uid")):
                if wanted.get(field_name) and wanted[field_name] != old["metadata"].get(field_name):
                    return self.reply(409, conflict(kind, name, f"the {what} in the precondition "
                                                                f"({wanted[field_name]}) does not match the {what} in "
                                                                f"record ({old['metadata'].get(field_name)}). The "
                                                                "object might have been modified"))
            del objects[kind.resource][(namespace or "", name)]
            bump(kind.resource, "DELETED", old)
            self.reply(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                             "details": details(kind, name, uid=old["metadata"].get("uid"))})

    # -- PATCH: apply of virtualservices/status, merge patch of a Lease --

    def do_PATCH(self):
        path, query = self.parse()
        found = self.resource(path)
        if found is None:
            return
        kind, namespace, name, sub = found
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind.resource == "virtualservices" and sub == "status" and name is not None:
            if content_type != "application/apply-patch+yaml":
                return self.reply(415, failure(415, "UnsupportedMediaType", "server-side apply expected"))
            return self.apply_status(kind, namespace, name, query)
        if kind.resource in WRITABLE and name is not None and sub is None:
            if content_type not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                return self.reply(415, failure(415, "UnsupportedMediaType",
                                               f"the fake patches leases with merge patches only, not {content_type}"))
            patch = self.body()
            with lock:
                old = objects[kind.resource].get((namespace or "", name))
                if old is None:
                    return self.reply(404, not_found(kind, name))
                sent = (patch.get("metadata") or {}).get("resourceVersion")
                if sent and sent != old["metadata"]["resourceVersion"]:
                    return self.reply(409, conflict(kind, name, STALE))
                return self.reply(200, self.update(kind, old, merge_patch(copy(old), patch)))
        self.reply(405, failure(405, "MethodNotAllowed", "the fake patches virtualservices/status and leases only"))

    def apply_status(self, kind, namespace, name, query):
        """Server-side apply of virtualservices/status: this manager's units replace what it applied before; the
        status is the merge of every manager's (see the module's docstring)."""
        manager = query.get("fieldManager", [""])[0]
        force = query.get("force", ["false"])[0] == "true"
        if not manager:
            return self.reply(422, failure(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                                                           "Required value: is required for apply patch"))
        body = self.body()  # JSON is YAML
        with lock:
            obj = objects["virtualservices"].get((namespace, name))
            if obj is None:
                return self.reply(404, not_found(kind, name))
            patches.append({"manager": manager, "namespace": namespace, "name": name, "body": body})
            if body.get("apiVersion") != kind.api_version or body.get("kind") != kind.kind:
                return self.reply(400, failure(400, "BadRequest", f"an apply patch must say apiVersion "
                                                                  f"{kind.api_version} and kind {kind.kind}"))
            applied = owners.setdefault((namespace, name), {})
            mine = status_units(body.get("status"))
            # A unit another manager applied with another value conflicts; force takes it over.
            clashes = [(other, unit) for other, theirs in applied.items() if other != manager
                       for unit, value in mine.items() if unit in theirs and theirs[unit] != value]
            if clashes and not force:
                # Worded as the API server words it.
                causes = [{"reason": "FieldManagerConflict",
                           "message": f'conflict with "{other}" using {kind.api_version}', "field": unit_path(unit)}
                          for other, unit in clashes]
                count = f"{len(clashes)} conflict" + ("s" if len(clashes) > 1 else "")
                listed = "; ".join(f"{c['message']}: {c['field']}" for c in causes)
                return self.reply(409, failure(409, "Conflict", f"Apply failed with {count}: {listed}",
                                               {**details(kind, name), "causes": causes}))
            before = {other: dict(units) for other, units in applied.items()}
            for other, unit in clashes:
                del applied[other][unit]
            applied.pop(manager, None)
            applied[manager] = mine  # the most recent applier last: its fields win
            for other in [m for m, units in applied.items() if not units]:
                del applied[other]  # a manager that owns nothing is no longer one
            status = merged_status(applied)
            # The object changes when its status or who owns what does (managedFields, in the API server).
            if status != obj.get("status") or before != applied:
                # A new object: the stored one may be being written to a client that listed it.
                previous, obj = obj, {**obj, "metadata": dict(obj["metadata"]), "status": status}
                objects["virtualservices"][(namespace, name)] = obj
                bump("virtualservices", "MODIFIED", obj, previous)
            self.reply(200, copy(obj))


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
