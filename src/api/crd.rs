//! The CustomResourceDefinitions generated from the types (`VirtualService`, `VirtualServicePool`), and the checks
//! that the committed copies match them and that their CEL rules stay within the API server's cost budget.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::pool::VirtualServicePool;
use super::v1alpha1::VirtualService;

/// Path of the committed VirtualService CRD, relative to the crate root.
pub const CRD_PATH: &str = "crds/virtualservice.yaml";
/// Path of the committed VirtualServicePool CRD, relative to the crate root.
pub const POOL_CRD_PATH: &str = "crds/virtualservicepool.yaml";

/// The `VirtualService` CRD.
pub fn crd() -> CustomResourceDefinition {
    VirtualService::crd()
}

/// The `VirtualServicePool` CRD.
pub fn pool_crd() -> CustomResourceDefinition {
    VirtualServicePool::crd()
}

/// One CRD as YAML with its header, exactly as committed in `crds/`.
fn render(crd: &CustomResourceDefinition, source: &str) -> String {
    // Serializing a value built from our own types has no input that could fail; an error here is a bug.
    #[allow(clippy::expect_used)]
    let body = serde_yaml::to_string(crd).expect("the CRD of our own types serializes");
    format!("# Generated from {source}; do not edit (see src/api/crd.rs).\n---\n{body}")
}

/// The `VirtualService` CRD as YAML, exactly as committed in `crds/virtualservice.yaml`.
pub fn vs_crd_yaml() -> String {
    render(&crd(), "src/api/v1alpha1.rs")
}

/// The `VirtualServicePool` CRD as YAML, exactly as committed in `crds/virtualservicepool.yaml`.
pub fn pool_crd_yaml() -> String {
    render(&pool_crd(), "src/api/pool.rs")
}

/// Every CRD of this program, as one YAML stream (`ipvs-reconciler crd | kubectl apply -f -`).
pub fn crd_yaml() -> String {
    format!("{}{}", vs_crd_yaml(), pool_crd_yaml())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_a_subresource_with_per_node_entries() {
        let crd = crd();
        let version = &crd.spec.versions[0];
        assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
        let schema = serde_json::to_value(version.schema.as_ref().unwrap()).unwrap();
        let nodes = &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["nodes"];
        assert_eq!(nodes["x-kubernetes-list-type"], "map");
        assert_eq!(nodes["x-kubernetes-list-map-keys"], serde_json::json!(["nodeName"]));
        assert!(nodes["items"]["required"].as_array().unwrap().contains(&"nodeName".into()));
    }

    #[test]
    fn every_field_has_a_description_for_kubectl_explain() {
        fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (name, sub) in props {
                    let here = format!("{path}.{name}");
                    if sub.get("description").is_none() && !matches!(name.as_str(), "metadata" | "apiVersion" | "kind")
                    {
                        missing.push(here.clone());
                    }
                    walk(&here, sub, missing);
                }
            }
            if let Some(items) = schema.get("items") {
                walk(&format!("{path}[]"), items, missing);
            }
        }
        for crd in [crd(), pool_crd()] {
            let schema = serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap()).unwrap();
            let mut missing = Vec::new();
            walk("", &schema["openAPIV3Schema"], &mut missing);
            assert!(missing.is_empty(), "{}: fields without a description: {missing:?}", crd.spec.names.kind);
        }
    }

    /// Set to rewrite the committed CRD instead of failing when it is stale.
    const UPDATE_ENV: &str = "IPVS_UPDATE_CRDS";

    #[test]
    fn committed_crds_match_the_types() {
        for (file, generated) in [(CRD_PATH, vs_crd_yaml()), (POOL_CRD_PATH, pool_crd_yaml())] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            if std::env::var_os(UPDATE_ENV).is_some() {
                std::fs::write(&path, &generated).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "{file} is out of date with the types in src/api: regenerate it with \
                 `{UPDATE_ENV}=1 cargo test --lib api::crd` and commit the result"
            );
        }
    }

    #[test]
    fn the_crd_command_prints_both_crds() {
        let yaml = crd_yaml();
        assert!(yaml.contains("name: virtualservices.ipvs.dev"), "{yaml}");
        assert!(yaml.contains("name: virtualservicepools.ipvs.dev"), "{yaml}");
        let kustomization =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/kustomization.yaml"))
                .unwrap();
        for file in [CRD_PATH, POOL_CRD_PATH] {
            let name = file.trim_start_matches("crds/");
            assert!(kustomization.contains(name), "crds/kustomization.yaml does not list {name}");
        }
    }

    /// Every `x-kubernetes-validations` rule of both CRDs, with the schema node it is declared on (its path).
    fn rules(crd: &CustomResourceDefinition) -> Vec<(String, serde_json::Value, String)> {
        fn walk(path: &str, node: &serde_json::Value, out: &mut Vec<(String, serde_json::Value, String)>) {
            for rule in node.get("x-kubernetes-validations").and_then(|v| v.as_array()).into_iter().flatten() {
                out.push((path.to_owned(), node.clone(), rule["rule"].as_str().unwrap_or_default().to_owned()));
            }
            for (name, sub) in node.get("properties").and_then(|p| p.as_object()).into_iter().flatten() {
                walk(&format!("{path}.{name}"), sub, out);
            }
            if let Some(items) = node.get("items") {
                walk(&format!("{path}[]"), items, out);
            }
        }
        let schema = serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap()).unwrap();
        let mut out = Vec::new();
        walk("", &schema["openAPIV3Schema"], &mut out);
        out
    }

    /// The API server refuses a CRD whose rules may cost more than its budget, estimated from the `maxItems` and
    /// `maxLength` of what they walk. kube's CEL analysis estimates the cost the same way (its scope check is not
    /// used: it takes the variables of `all(x, ...)` for unknown names).
    #[test]
    fn every_cel_rule_compiles_and_is_within_the_cost_budget() {
        let mut warnings = Vec::new();
        let mut count = 0;
        for crd in [crd(), pool_crd()] {
            for (path, node, rule) in rules(&crd) {
                count += 1;
                let compiled = kube_cel::compile_schema(&node);
                let kind = &crd.spec.names.kind;
                assert!(!compiled.has_errors(), "{kind}{path}: {rule}: {:?}", compiled.compilation_errors());
                for warning in kube_cel::estimate_rule_cost(&rule, &compiled) {
                    warnings.push(format!("{kind}{path}: {rule}: {}", warning.message));
                }
            }
        }
        assert!(count > 20, "only {count} rules found: the walk is wrong");
        assert!(warnings.is_empty(), "{warnings:#?}");
    }

    /// What bounds the cost of every rule: each list in a spec has `maxItems` and each free string `maxLength`
    /// (an enum is bounded by its values), so no rule can walk something unbounded, whichever it walks.
    #[test]
    fn every_list_and_string_of_a_spec_is_bounded() {
        fn walk(path: &str, node: &serde_json::Value, unbounded: &mut Vec<String>) {
            match node.get("type").and_then(|t| t.as_str()) {
                Some("array") if node.get("maxItems").is_none() => unbounded.push(format!("{path} (maxItems)")),
                Some("string") if node.get("maxLength").is_none() && node.get("enum").is_none() => {
                    unbounded.push(format!("{path} (maxLength)"))
                }
                _ => {}
            }
            for (name, sub) in node.get("properties").and_then(|p| p.as_object()).into_iter().flatten() {
                // Label selectors are Kubernetes' own type, which no rule walks (the API server checks them).
                if !matches!(name.as_str(), "nodeSelector" | "namespaceSelector") {
                    walk(&format!("{path}.{name}"), sub, unbounded);
                }
            }
            if let Some(items) = node.get("items") {
                walk(&format!("{path}[]"), items, unbounded);
            }
        }
        for crd in [crd(), pool_crd()] {
            let schema = serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap()).unwrap();
            let mut unbounded = Vec::new();
            walk(".spec", &schema["openAPIV3Schema"]["properties"]["spec"], &mut unbounded);
            assert!(unbounded.is_empty(), "{}: unbounded: {unbounded:#?}", crd.spec.names.kind);
        }
    }

    #[test]
    fn schema_prunes_unknown_fields() {
        let yaml = vs_crd_yaml();
        assert!(!yaml.contains("x-kubernetes-preserve-unknown-fields"), "{yaml}");
        // The only map is the node selector's matchLabels (string to string); every object is a closed struct.
        let maps: Vec<&str> = yaml.lines().filter(|l| l.trim_start().starts_with("additionalProperties")).collect();
        assert_eq!(maps.len(), 1, "{yaml}");
        assert!(
            yaml.contains(
                "matchLabels:\n                    additionalProperties:\n                      type: string"
            )
        );
    }

    #[test]
    fn the_pool_is_cluster_scoped_with_its_names_and_columns() {
        let crd = pool_crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.kind, "VirtualServicePool");
        assert_eq!(crd.spec.names.short_names, Some(vec!["ipvspool".to_owned()]));
        assert_eq!(crd.spec.names.categories, Some(vec!["ipvs-reconciler".to_owned()]));
        let version = &crd.spec.versions[0];
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.json_path.as_str())
            .collect();
        for path in [".spec.addresses", ".spec.namespaces", ".spec.namespaceSelector"] {
            assert!(columns.contains(&path), "missing column {path} in {columns:?} (without -o wide)");
        }
    }

    #[test]
    fn names_scope_and_columns() {
        let crd = crd();
        assert_eq!(crd.spec.group, "ipvs.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "VirtualService");
        assert_eq!(crd.spec.names.plural, "virtualservices");
        assert_eq!(crd.spec.names.short_names, Some(vec!["ipvs".to_owned()]));
        // A category equal to the short name would make `kubectl get ipvs` expand to every kind of the category
        // (kubectl expands categories first), and `kubectl get ipvs web` an error.
        assert_eq!(crd.spec.names.categories, Some(vec!["ipvs-reconciler".to_owned()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        // What plain `kubectl get ipvs` shows, in order; none reads `[*]` (the API server's table printer shows only
        // the first match, which would hide every node but one).
        let visible: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        let expected = [
            ("Address", ".spec.address"),
            ("Port", ".spec.port"),
            ("Protocol", ".spec.protocol"),
            ("Scheduler", ".spec.scheduler"),
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Programmed", ".status.summary"),
            ("Age", ".metadata.creationTimestamp"),
        ];
        assert_eq!(visible, expected);
        for column in version.additional_printer_columns.iter().flatten() {
            assert!(!column.json_path.contains("[*]"), "{} reads a list: {}", column.name, column.json_path);
        }
    }

    /// The conditions are a list-map keyed by `type` (kstatus tools and `kubectl wait` read them by type; server-side
    /// apply merges them by type).
    #[test]
    fn conditions_are_a_list_map_by_type() {
        let crd = crd();
        let schema = serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap()).unwrap();
        let status = &schema["openAPIV3Schema"]["properties"]["status"]["properties"];
        assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
        assert_eq!(status["conditions"]["x-kubernetes-list-map-keys"], serde_json::json!(["type"]));
        for field in ["type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"] {
            assert!(status["conditions"]["items"]["properties"].get(field).is_some(), "{field}");
        }
        assert_eq!(status["observedGeneration"]["type"], "integer");
        assert_eq!(status["summary"]["type"], "string");
    }
}
