//! The Kubernetes manifests in deploy/ give the agent what it needs: the host's network namespace,
//! CAP_NET_ADMIN, its node's name, and RBAC for exactly what it reads and writes.

use std::path::Path;

use serde::Deserialize;
use serde_yaml::Value;

fn documents(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn the_daemonset_runs_the_agent_in_the_host_network_with_net_admin() {
    let docs = documents("daemonset.yaml");
    let pod = &of_kind(&docs, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true, "IPVS state is per network namespace: the host's");
    assert_eq!(pod["serviceAccountName"], "ipvs-reconciler");
    let agent = &pod["containers"][0];
    assert_eq!(agent["args"][0], "agent");
    let env = agent["env"].as_sequence().unwrap();
    let node_name = env.iter().find(|e| e["name"] == "NODE_NAME").expect("NODE_NAME");
    assert_eq!(node_name["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    // The election: identity and namespace from the Downward API, and the pod label --agent-selector expects.
    for (name, path) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let var = env.iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], path);
    }
    let (key, value) = ipvs_reconciler::verdict::DEFAULT_AGENT_SELECTOR.split_once('=').unwrap();
    assert_eq!(of_kind(&docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"][key], value);
    let caps = agent["securityContext"]["capabilities"]["add"].as_sequence().unwrap();
    assert_eq!(caps.len(), 1, "NET_ADMIN only");
    assert!(caps.iter().any(|c| c == "NET_ADMIN"));
    let security = &agent["securityContext"];
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(security["privileged"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["tolerations"][0]["operator"], "Exists", "every node, tainted ones too");
    let mounts = agent["volumeMounts"].as_sequence().unwrap();
    assert!(
        mounts.iter().any(|m| m["mountPath"] == "/var/lib/ipvs-reconciler"),
        "the ownership memory survives restarts"
    );
}

#[test]
fn rbac_covers_what_the_agent_watches_and_writes() {
    let docs = documents("rbac.yaml");
    let rules = of_kind(&docs, "ClusterRole")["rules"].as_sequence().unwrap().clone();
    let allows = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| {
            let has = |field: &str, value: &str| r[field].as_sequence().is_some_and(|s| s.iter().any(|v| v == value));
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for verb in ["list", "watch"] {
        assert!(allows("ipvs.dev", "virtualservices", verb), "virtualservices {verb}");
        assert!(allows("discovery.k8s.io", "endpointslices", verb), "endpointslices {verb}");
        assert!(allows("", "nodes", verb), "nodes {verb}");
        assert!(allows("ipvs.dev", "virtualservicepools", verb), "virtualservicepools {verb}");
        assert!(allows("", "namespaces", verb), "namespaces {verb}");
    }
    assert!(allows("ipvs.dev", "virtualservices/status", "patch"));
    assert!(allows("events.k8s.io", "events", "create") && allows("events.k8s.io", "events", "patch"));
    assert!(!allows("ipvs.dev", "virtualservices", "patch"), "the agent never writes specs");
    let binding = of_kind(&docs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], "ipvs-reconciler");
    assert!(!allows("", "pods", "list"), "pods only in the agents' namespace (the Role)");

    // In the agents' namespace: their pods (read) and the election's Lease.
    let role = of_kind(&docs, "Role")["rules"].as_sequence().unwrap().clone();
    let role_allows = |group: &str, resource: &str, verb: &str| {
        role.iter().any(|r| {
            let has = |field: &str, value: &str| r[field].as_sequence().is_some_and(|s| s.iter().any(|v| v == value));
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for verb in ["list", "watch"] {
        assert!(role_allows("", "pods", verb), "pods {verb}");
    }
    for verb in ["get", "create", "update"] {
        assert!(role_allows("coordination.k8s.io", "leases", verb), "leases {verb}");
    }
    assert!(!role_allows("coordination.k8s.io", "leases", "delete"));
    let binding = of_kind(&docs, "RoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["subjects"][0]["name"], "ipvs-reconciler");
}

#[test]
fn the_cluster_examples_are_valid_and_the_example_pools_admit_them() {
    use ipvs_reconciler::api::pool::{VirtualServicePool, VirtualServicePoolSpec};
    use ipvs_reconciler::api::{ObjectId, VirtualService, validate};
    use ipvs_reconciler::source::admission::{Admission, AdmissionMode, Claim, Pool};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut services = Vec::new();
    let mut admission = Admission::new(AdmissionMode::Pools);
    let mut pools = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        for document in serde_yaml::Deserializer::from_str(&std::fs::read_to_string(&path).unwrap()) {
            let value = Value::deserialize(document).unwrap();
            match value["kind"].as_str() {
                Some("VirtualService") => {
                    let object: VirtualService = serde_yaml::from_value(value).unwrap();
                    let id = ObjectId::kubernetes(
                        object.metadata.namespace.clone().unwrap(),
                        object.metadata.name.clone().unwrap(),
                    );
                    let declared = match validate(&id, &object.spec) {
                        Ok(declared) => declared,
                        Err(rejected) => panic!("{}: {:?}", path.display(), rejected.errors),
                    };
                    // The same rules the API server applies at `kubectl apply` time.
                    let json = serde_json::to_value(&object.spec).unwrap();
                    assert!(
                        ipvs_reconciler::api::VirtualServiceSpec::validate_cel(&json, None).is_ok(),
                        "{}",
                        path.display()
                    );
                    services.push((object.metadata.namespace.clone().unwrap(), declared));
                }
                Some("VirtualServicePool") => {
                    let pool: VirtualServicePool = serde_yaml::from_value(value).unwrap();
                    let json = serde_json::to_value(&pool.spec).unwrap();
                    assert!(VirtualServicePoolSpec::validate_cel(&json, None).is_ok(), "{}", path.display());
                    let (converted, problems) = Pool::from_resource(&pool);
                    assert!(problems.is_empty(), "{}: {problems:?}", path.display());
                    pools.insert(converted.name.clone(), converted);
                }
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            }
        }
    }
    admission.pools = Some(pools);
    assert!(services.len() >= 2);
    for (namespace, declared) in &services {
        let targets: Vec<_> = declared.service.dests.keys().map(|d| (d.addr, "backend".to_owned())).collect();
        let claim = Claim { namespace, key: &declared.service.service.key, targets: &targets };
        assert_eq!(admission.decide(&claim), Ok(()), "{namespace}: {}", declared.service.service.key);
    }
}

#[test]
fn the_agents_director_config_loads_and_its_commented_examples_are_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/director.yaml");
    let config = ipvs_reconciler::director::DirectorConfig::load(&path).unwrap();
    assert!(config.is_empty(), "the default changes nothing on the nodes");
    // The commented lines, uncommented, are a valid configuration of every setting.
    let text = std::fs::read_to_string(&path).unwrap();
    let examples: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .map(|line| line.split("  #").next().unwrap_or_default().trim_end().to_owned() + "\n")
        .collect();
    let config = ipvs_reconciler::director::DirectorConfig::parse(&examples, "examples")
        .unwrap_or_else(|e| panic!("{e}\n{examples}"));
    assert_eq!(config.sync_daemons.len(), 2);
    assert_eq!(config.sysctls.len(), 7);
    assert_eq!(config.timeouts.tcp, Some(900));
}

/// The uninstall's one-shot (deploy/cleanup) runs `cleanup` where the agents ran: the host network, the same
/// state directory, CAP_NET_ADMIN only, every node; it needs no API access.
#[test]
fn the_cleanup_daemonset_cleans_what_the_agents_made_with_their_state_and_no_more_rights() {
    let agent_docs = documents("daemonset.yaml");
    let agent_pod = &of_kind(&agent_docs, "DaemonSet")["spec"]["template"]["spec"];
    let docs = documents("cleanup/daemonset.yaml");
    let pod = &of_kind(&docs, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["automountServiceAccountToken"], false, "cleanup reads nothing from the API");
    assert_eq!(pod["tolerations"], agent_pod["tolerations"], "every node the agents ran on");
    let cleanup = &pod["initContainers"][0];
    assert_eq!(cleanup["args"], serde_yaml::from_str::<Value>("[cleanup]").unwrap());
    assert_eq!(cleanup["image"], agent_pod["containers"][0]["image"]);
    let security = &cleanup["securityContext"];
    assert_eq!(security["capabilities"]["add"], serde_yaml::from_str::<Value>("[NET_ADMIN]").unwrap());
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(security["privileged"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    let state_mount = |container: &Value| {
        container["volumeMounts"]
            .as_sequence()
            .and_then(|mounts| mounts.iter().find(|m| m["mountPath"] == "/var/lib/ipvs-reconciler").cloned())
            .expect("the state directory is mounted")
    };
    let host_path = |pod: &Value, mount: &Value| {
        let volumes = pod["volumes"].as_sequence().expect("volumes");
        volumes.iter().find(|v| v["name"] == mount["name"]).expect("the mounted volume")["hostPath"]["path"].clone()
    };
    let (mine, theirs) = (state_mount(cleanup), state_mount(&agent_pod["containers"][0]));
    assert_eq!(host_path(pod, &mine), host_path(agent_pod, &theirs), "the agents' state directory");
    let idle = &pod["containers"][0];
    assert!(idle["securityContext"]["capabilities"]["add"].is_null(), "the idle container has no capability");
}
