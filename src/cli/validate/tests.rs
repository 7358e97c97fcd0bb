use super::*;

const WEB: &str = "apiVersion: ipvs.dev/v1alpha1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  address: 192.0.2.10
  port: 80
  backends: [{address: 10.0.0.11}]
";

const FROM_ENDPOINTS: &str = "apiVersion: ipvs.dev/v1alpha1
kind: VirtualService
metadata: {name: web-eps, namespace: default}
spec:
  address: 192.0.2.80
  port: 80
  backendsFrom: [{service: web, port: http}]
  nodeSelector: {matchLabels: {role: edge}}
";

const POOL: &str = "apiVersion: ipvs.dev/v1alpha1
kind: VirtualServicePool
metadata: {name: default-web}
spec:
  addresses: [192.0.2.80/28]
  namespaces: [default]
";

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n";
const ISTIO: &str =
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec: {hosts: [web]}\n";

fn inputs(files: &[&str]) -> Vec<Input> {
    files
        .iter()
        .enumerate()
        .map(|(i, text)| Input { path: PathBuf::from(format!("{i}.yaml")), bytes: Some(text.as_bytes().to_vec()) })
        .collect()
}

fn messages(outcome: &Outcome) -> Vec<String> {
    outcome.errors.iter().map(ToString::to_string).collect()
}

#[test]
fn other_kinds_are_skipped_and_counted_in_both_modes() {
    let text = format!("{NAMESPACE}---\n{WEB}---\n{ISTIO}");
    let files = check_files(inputs(&[&text]));
    assert_eq!((files.errors.len(), files.skipped), (0, 2), "{:?}", messages(&files));
    assert_eq!(files.valid, "1 valid service(s) with 1 backend(s)");
    let cluster = cluster::check(inputs(&[&text]));
    assert_eq!((cluster.errors.len(), cluster.skipped), (0, 2), "{:?}", messages(&cluster));
}

#[test]
fn a_bad_virtual_service_beside_other_kinds_is_still_an_error() {
    let bad = WEB.replace("port: 80", "port: 70000");
    for outcome in [check_files(inputs(&[NAMESPACE, &bad])), cluster::check(inputs(&[NAMESPACE, &bad]))] {
        assert_eq!(messages(&outcome), vec!["1.yaml#0 (default/web): spec.port: 70000 is out of range 0-65535"]);
        assert_eq!(outcome.skipped, 1);
    }
}

#[test]
fn documents_of_this_group_that_are_no_kind_of_it_are_errors() {
    let unknown = WEB.replace("kind: VirtualService", "kind: VirtualServer");
    let version = WEB.replace("ipvs.dev/v1alpha1", "ipvs.dev/v1");
    let no_kind = "spec: {address: 192.0.2.1, port: 80}\n";
    for outcome in
        [check_files(inputs(&[&unknown, &version, no_kind])), cluster::check(inputs(&[&unknown, &version, no_kind]))]
    {
        let fields: Vec<&str> = outcome.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["kind", "apiVersion", "kind"], "{:?}", messages(&outcome));
        assert_eq!(outcome.skipped, 0);
    }
}

#[test]
fn the_agents_fields_are_refused_for_files_and_checked_for_a_cluster() {
    let files = check_files(inputs(&[FROM_ENDPOINTS]));
    let fields: Vec<&str> = files.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["spec.backendsFrom", "spec.nodeSelector"]);

    let cluster = cluster::check(inputs(&[FROM_ENDPOINTS, POOL]));
    assert!(cluster.errors.is_empty(), "{:?}", messages(&cluster));
    assert_eq!(
        cluster.valid,
        "1 valid VirtualService(s) with 0 backend(s) and 1 backendsFrom reference(s), 1 valid VirtualServicePool(s)"
    );

    let bad = FROM_ENDPOINTS.replace("port: http", "port: Http").replace("role: edge", "role: 'edge node'");
    let cluster = cluster::check(inputs(&[&bad]));
    let fields: Vec<&str> = cluster.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["spec.backendsFrom[0].port", "spec.nodeSelector.matchLabels.role"]);
}

#[test]
fn a_cluster_object_needs_a_good_name_once() {
    let unnamed = WEB.replace("metadata: {name: web, namespace: default}", "metadata: {namespace: default}");
    let bad_name = WEB.replace("name: web,", "name: Web_1,");
    let cluster = cluster::check(inputs(&[&unnamed, &bad_name]));
    let fields: Vec<&str> = cluster.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["metadata.name", "metadata.name"], "{:?}", messages(&cluster));

    // Two files that both declare default/web: applying both keeps one (the day-one bug of the examples).
    let other = WEB.replace("192.0.2.10", "192.0.2.11");
    let cluster = cluster::check(inputs(&[WEB, &other]));
    assert_eq!(
        messages(&cluster),
        vec![
            "1.yaml#0 (default/web): metadata.name: VirtualService default/web is also declared by 0.yaml#0 \
             (default/web): applying both keeps only the last one applied"
        ]
    );
    // Files mean what they mean under kubectl apply: the same name twice is the younger one's error there too.
    let files = check_files(inputs(&[WEB, &other]));
    assert_eq!(
        messages(&files),
        vec![
            "1.yaml#0 (default/web): metadata.name: default/web is also declared by 0.yaml#0 (default/web), which \
             comes first: kubectl apply would keep only the last one applied; this document is ignored"
        ]
    );
    assert_eq!(files.valid, "1 valid service(s) with 1 backend(s)");
}

#[test]
fn services_claimed_twice_on_every_node_conflict_and_selected_ones_may_not() {
    let twin = WEB.replace("name: web,", "name: web-2,");
    let cluster = cluster::check(inputs(&[WEB, &twin]));
    assert_eq!(cluster.conflicts.len(), 1, "{:?}", cluster.conflicts);
    assert!(cluster.conflicts[0].starts_with("1.yaml#0 (default/web-2): service TCP 192.0.2.10:80 is also claimed by"));

    let selected = twin.replace("spec:\n", "spec:\n  nodeSelector: {matchLabels: {role: edge}}\n");
    assert!(cluster::check(inputs(&[WEB, &selected])).conflicts.is_empty(), "other nodes, perhaps");
}

#[test]
fn pools_are_checked_as_the_agent_and_the_api_server_would() {
    let bad_cidr = POOL.replace("192.0.2.80/28", "192.0.2.300/28");
    let bad_namespace = POOL.replace("namespaces: [default]", "namespaces: [Default]").replace("default-web", "p1");
    let unknown_field = POOL.replace("namespaces:", "namespace:").replace("default-web", "p2");
    let cluster = cluster::check(inputs(&[&bad_cidr, &bad_namespace, &unknown_field]));
    let shown = messages(&cluster);
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(
        shown[0].starts_with("0.yaml#0 (default-web): spec.addresses[0]: `192.0.2.300/28` is not a CIDR"),
        "{shown:?}"
    );
    assert!(shown[1].contains("spec.namespaces[0]: `Default` is not a DNS label"), "{shown:?}");
    assert!(shown[2].contains("unknown field `namespace`"), "{shown:?}");
    assert_eq!(cluster.valid.matches("0 valid VirtualServicePool(s)").count(), 1);
}

#[test]
fn lists_are_unfolded() {
    let list = "apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Namespace, metadata: {name: team-a}}
  - apiVersion: ipvs.dev/v1alpha1
    kind: VirtualService
    metadata: {name: web, namespace: team-a}
    spec: {address: 192.0.2.10, port: 80}
";
    let cluster = cluster::check(inputs(&[list]));
    assert!(cluster.errors.is_empty(), "{:?}", messages(&cluster));
    assert!(cluster.valid.starts_with("1 valid VirtualService(s)"), "{}", cluster.valid);
    assert_eq!(cluster.skipped, 1);
}

#[test]
fn a_yaml_syntax_error_is_its_documents_only() {
    let outcome = cluster::check(inputs(&[WEB, &format!("a: [b\n---\n{}", WEB.replace("name: web,", "name: web-2,"))]));
    let shown = messages(&outcome);
    assert_eq!(shown.len(), 1);
    assert!(shown[0].starts_with("1.yaml#0: invalid YAML: did not find expected ',' or ']' at line 2"), "{shown:?}");
    assert!(outcome.valid.starts_with("2 valid VirtualService(s)"), "{}", outcome.valid);
}
