//! serde's messages about a document, in a user's words: `expected an integer, found the string "3"` rather than
//! `invalid type: string "3", expected i64`, and `70000 is out of range for the field (0-65535)` rather than
//! `invalid value: integer `70000`, expected u16`. Whatever is not recognised is passed on as it is.

/// What a Rust type named in a serde message stands for, and its range when it is an integer.
fn expected_in_words(expected: &str) -> (String, Option<(i128, i128)>) {
    let range = match expected {
        "i8" => Some((i8::MIN.into(), i8::MAX.into())),
        "i16" => Some((i16::MIN.into(), i16::MAX.into())),
        "i32" => Some((i32::MIN.into(), i32::MAX.into())),
        "i64" | "isize" => Some((i64::MIN.into(), i64::MAX.into())),
        "u8" => Some((0, u8::MAX.into())),
        "u16" => Some((0, u16::MAX.into())),
        "u32" => Some((0, u32::MAX.into())),
        "u64" | "usize" => Some((0, u64::MAX.into())),
        "i128" | "u128" => Some((i128::MIN, i128::MAX)),
        _ => None,
    };
    if range.is_some() {
        return ("an integer".to_owned(), range);
    }
    let words = match expected {
        "f32" | "f64" => "a number",
        "a string" | "string" | "a borrowed string" | "a character" | "char" => "a string",
        "a boolean" | "bool" => "true or false",
        "a sequence" | "sequence" | "a list" => "a list",
        "a map" | "map" | "a mapping" => "a mapping",
        other if other.starts_with("struct ") || other.starts_with("a map ") => "a mapping",
        other if other.starts_with("a sequence") || other.starts_with("tuple") => "a list",
        other if other.starts_with("enum ") || other.starts_with("variant identifier") => "one of the allowed names",
        other if other.starts_with("a string ") || other.contains("string") => "a string",
        // A Kubernetes type that names itself (`ObjectMeta`, `LabelSelector`).
        other if other.starts_with(|c: char| c.is_ascii_uppercase()) && !other.contains(' ') => "a mapping",
        other => other,
    };
    (words.to_owned(), None)
}

/// serde's description of what it found (`string "3"`, `integer `7``, `unit value`), in words.
fn found_in_words(found: &str) -> String {
    let ticked = |prefix: &str| found.strip_prefix(prefix).map(|v| v.trim_matches('`').to_owned());
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the string {text}");
    }
    if let Some(n) = ticked("integer ") {
        return format!("the integer {n}");
    }
    if let Some(n) = ticked("floating point ") {
        return format!("the number {n}");
    }
    if let Some(b) = ticked("boolean ") {
        return b;
    }
    match found {
        "unit value" | "Option value" => "nothing (null)".to_owned(),
        "sequence" => "a list".to_owned(),
        "map" => "a mapping".to_owned(),
        "enum" => "a tagged value (`!tag`)".to_owned(),
        other => other.to_owned(),
    }
}

/// A serde message (`invalid type: …, expected …`) in words; `out_of_range` is the text of a number too large for
/// any integer field that was found where this error points.
pub(super) fn in_words(message: &str, out_of_range: Option<&str>) -> String {
    if let Some(number) = out_of_range {
        return format!("{number} is out of range for the field (integers here are at most 64 bits)");
    }
    fn split(rest: &str) -> Option<(String, &str)> {
        rest.rsplit_once(", expected ").map(|(found, expected)| (found.to_owned(), expected))
    }
    if let Some((found, expected)) = message.strip_prefix("invalid type: ").and_then(split) {
        let (expected, range) = expected_in_words(expected);
        // A number too large for an integer, read as a float by the YAML parser.
        if let (Some(_), Some(n)) = (range, found.strip_prefix("floating point ")) {
            let n = n.trim_matches('`');
            if n.parse::<f64>().is_ok_and(|f| f.fract() == 0.0 && f.abs() >= 9.2e18) {
                return format!("{n} is out of range for the field");
            }
        }
        return format!("expected {expected}, found {}", found_in_words(&found));
    }
    if let Some((found, expected)) = message.strip_prefix("invalid value: ").and_then(split) {
        let (words, range) = expected_in_words(expected);
        if let (Some((min, max)), Some(n)) = (range, found.strip_prefix("integer ")) {
            let n = n.trim_matches('`');
            // The 64-bit ranges say nothing a user can act on; validation gives the field's own range when the
            // number fits.
            if min == i128::from(i64::MIN) || max >= i128::from(u64::MAX) {
                return format!("{n} is out of range for the field");
            }
            return format!("{n} is out of range for the field ({min}-{max})");
        }
        return format!("expected {words}, found {}", found_in_words(&found));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return format!("unknown value {rest}");
    }
    if let Some(name) = message.strip_prefix("unknown field ").and_then(|r| r.strip_suffix(", there are no fields")) {
        return format!("unknown field {name}: this mapping has no fields");
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_read_in_words() {
        assert_eq!(
            in_words("invalid type: string \"3\", expected i64", None),
            "expected an integer, found the string \"3\""
        );
        assert_eq!(
            in_words("invalid type: unit value, expected a string", None),
            "expected a string, found nothing (null)"
        );
        assert_eq!(
            in_words("invalid type: sequence, expected struct Backend", None),
            "expected a mapping, found a list"
        );
        assert_eq!(in_words("invalid type: map, expected a boolean", None), "expected true or false, found a mapping");
        assert_eq!(
            in_words("invalid type: floating point `1.5`, expected u32", None),
            "expected an integer, found the number 1.5"
        );
    }

    #[test]
    fn numbers_out_of_range_say_so() {
        assert_eq!(
            in_words("invalid value: integer `70000`, expected u16", None),
            "70000 is out of range for the field (0-65535)"
        );
        assert!(
            in_words("invalid type: whatever", Some("18446744073709551616"))
                .starts_with("18446744073709551616 is out of range for the field")
        );
        assert_eq!(
            in_words("invalid type: floating point `1.8446744073709552e99`, expected i64", None),
            "1.8446744073709552e99 is out of range for the field"
        );
    }

    #[test]
    fn no_rust_words_remain_in_common_messages() {
        let rust = ["i64", "u16", "u32", "u64", "u128", "unit value", "struct ", "invalid type:"];
        for expected in ["i64", "u16", "u32", "u64", "u128", "struct Backend", "a string", "a boolean"] {
            for found in ["unit value", "string \"x\"", "integer `3`", "map", "sequence", "boolean `true`"] {
                let message = in_words(&format!("invalid type: {found}, expected {expected}"), None);
                assert!(!rust.iter().any(|r| message.contains(r)), "{message}");
            }
        }
    }
}
