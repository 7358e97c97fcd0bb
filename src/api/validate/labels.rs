//! Kubernetes name syntax, as the API server checks it (apimachinery's `validation` package): label keys and
//! values, DNS labels and subdomains. The CRD's schema cannot say that a selector's keys are label keys, so the API
//! server takes any string there; a key no Node can carry would select nothing, silently. It is refused here
//! instead, with the rule it breaks.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Longest DNS-1123 label (a name part, a namespace, a port name).
const MAX_LABEL: usize = 63;
/// Longest DNS-1123 subdomain (an object's name, a label key's prefix).
const MAX_SUBDOMAIN: usize = 253;

/// A problem at a field below the selector (`.matchLabels.zone`, `.matchExpressions[0].key`).
pub struct SelectorProblem {
    /// The field, relative to the selector.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Every key and value of `selector` that Kubernetes would not take as a label key or value.
pub fn selector_problems(selector: &LabelSelector) -> Vec<SelectorProblem> {
    let mut found = Vec::new();
    let mut check = |field: String, problem: Option<String>| {
        if let Some(message) = problem {
            found.push(SelectorProblem { field, message });
        }
    };
    for (key, value) in selector.match_labels.iter().flatten() {
        check(format!(".matchLabels.{key}"), label_key_problem(key));
        check(format!(".matchLabels.{key}"), label_value_problem(value));
    }
    for (i, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        check(format!(".matchExpressions[{i}].key"), label_key_problem(&requirement.key));
        for (j, value) in requirement.values.iter().flatten().enumerate() {
            check(format!(".matchExpressions[{i}].values[{j}]"), label_value_problem(value));
        }
    }
    found
}

/// Why `key` is not a label key (`[prefix/]name`: a DNS subdomain prefix, a name of at most 63 characters), if it
/// is not.
pub fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && let Some(why) = dns_subdomain_problem(prefix)
    {
        return Some(format!("label key `{key}`: its prefix {why}"));
    }
    if name.is_empty() || name.chars().count() > MAX_LABEL || !is_label_text(name) {
        return Some(format!(
            "`{key}` is not a label key: [prefix/]name, the name 1-63 letters, digits, '-', '_' or '.', beginning \
             and ending with a letter or digit"
        ));
    }
    None
}

/// Why `value` is not a label value (empty, or at most 63 characters as a key's name), if it is not.
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.is_empty() || (value.chars().count() <= MAX_LABEL && is_label_text(value)) {
        return None;
    }
    Some(format!(
        "`{value}` is not a label value: at most 63 letters, digits, '-', '_' or '.', beginning and ending with a \
         letter or digit"
    ))
}

/// Why `name` is not a Service port's name (a DNS-1123 label: the names EndpointSlices carry), if it is not.
pub fn port_name_problem(name: &str) -> Option<String> {
    (!is_dns1123_label(name)).then(|| {
        format!("`{name}` is not a Service port name: lowercase letters, digits and '-', beginning and ending with a letter or digit")
    })
}

/// Why `name` is not a DNS-1123 label (a namespace's name), if it is not.
pub fn dns_label_problem(name: &str) -> Option<String> {
    (!is_dns1123_label(name)).then(|| {
        format!(
            "`{name}` is not a DNS label: at most {MAX_LABEL} lowercase letters, digits and '-', beginning and \
             ending with a letter or digit"
        )
    })
}

/// Why `name` is not a DNS-1123 subdomain (an object's name, a label key's prefix), if it is not.
pub fn dns_subdomain_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty() && name.len() <= MAX_SUBDOMAIN && name.split('.').all(is_dns1123_label);
    (!ok).then(|| {
        format!(
            "`{name}` is not a DNS subdomain: at most {MAX_SUBDOMAIN} characters, dot-separated parts of lowercase \
             letters, digits and '-', each beginning and ending with a letter or digit"
        )
    })
}

fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=MAX_LABEL).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Letters, digits, '-', '_' and '.', beginning and ending with a letter or digit (a label value's and a key
/// name's characters; the length is checked apart).
fn is_label_text(text: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    alnum(text.chars().next())
        && alnum(text.chars().last())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_as_kubernetes_takes_them() {
        for good in ["role", "node-role.kubernetes.io/edge", "topology.kubernetes.io/zone", "A_b.c", "x"] {
            assert_eq!(label_key_problem(good), None, "{good}");
        }
        let long = "a".repeat(64);
        for bad in ["", "/role", "role/", "-role", "role-", "Example.com/x", "a/b/c", "ro le", long.as_str()] {
            assert!(label_key_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn label_values_may_be_empty() {
        for good in ["", "edge", "eu-west-1a", "v1.2_3"] {
            assert_eq!(label_value_problem(good), None, "{good}");
        }
        for bad in ["-a", "a-", "a b", "a/b", &"a".repeat(64)] {
            assert!(label_value_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn port_names_and_object_names() {
        for good in ["http", "dns-tcp", "8080-tcp", "h2c"] {
            assert_eq!(port_name_problem(good), None, "{good}");
        }
        for bad in ["HTTP", "-http", "http-", "web_port", "a.b"] {
            assert!(port_name_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(dns_subdomain_problem("web.example-1"), None);
        assert!(dns_subdomain_problem("Web").is_some());
        assert!(dns_subdomain_problem("web..x").is_some());
        assert!(dns_subdomain_problem(&"a".repeat(254)).is_some());
        assert_eq!(dns_label_problem("kube-system"), None);
        assert!(dns_label_problem("kube.system").is_some());
    }
}
