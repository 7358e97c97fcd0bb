//! The CustomResourceDefinition generated from the types, and the check that the committed copy matches it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::v1alpha1::VirtualService;

/// Path of the committed CRD, relative to the crate root.
pub const CRD_PATH: &str = "crds/virtualservice.yaml";

/// The `VirtualService` CRD.
pub fn crd() -> CustomResourceDefinition {
    VirtualService::crd()
}

/// The `VirtualService` CRD as YAML, exactly as committed in `crds/virtualservice.yaml`.
pub fn crd_yaml() -> String {
    // Serializing a value built from our own types has no input that could fail; an error here is a bug.
    #[allow(clippy::expect_used)]
    let body = serde_yaml::to_string(&crd()).expect("the CRD of our own types serializes");
    format!("# Generated from src/api/v1alpha1.rs; do not edit (see src/api/crd.rs).\n---\n{body}")
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
        let crd = crd();
        let schema = serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap()).unwrap();
        let mut missing = Vec::new();
        walk("", &schema["openAPIV3Schema"], &mut missing);
        assert!(missing.is_empty(), "fields without a description: {missing:?}");
    }

    /// Set to rewrite the committed CRD instead of failing when it is stale.
    const UPDATE_ENV: &str = "IPVS_UPDATE_CRDS";

    #[test]
    fn committed_crd_matches_the_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CRD_PATH);
        let generated = crd_yaml();
        if std::env::var_os(UPDATE_ENV).is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{CRD_PATH} is out of date with src/api/v1alpha1.rs: regenerate it with \
             `{UPDATE_ENV}=1 cargo test --lib api::crd` and commit the result"
        );
    }

    #[test]
    fn schema_prunes_unknown_fields() {
        let yaml = crd_yaml();
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
    fn names_scope_and_columns() {
        let crd = crd();
        assert_eq!(crd.spec.group, "ipvs.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "VirtualService");
        assert_eq!(crd.spec.names.plural, "virtualservices");
        assert_eq!(crd.spec.names.short_names, Some(vec!["ipvs".to_owned()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        let columns: Vec<_> =
            version.additional_printer_columns.iter().flatten().map(|c| c.json_path.as_str()).collect();
        for path in [".spec.address", ".spec.port", ".spec.protocol", ".spec.scheduler", ".status.nodes[*].nodeName"] {
            assert!(columns.contains(&path), "missing column {path} in {columns:?}");
        }
    }
}
