//! The reader: definitions, conditional lines, globs.

use std::path::Path;

use super::super::parse::{self, braces, wildcard};
use crate::import::{ImportError, NoteKind};

fn words(text: &str) -> Vec<Vec<String>> {
    let config = parse::read_text(text, Path::new("/nowhere/k.conf")).unwrap_or_else(|e| panic!("{e}"));
    config.nodes.iter().map(|n| n.words.clone()).collect()
}

#[test]
fn definitions() {
    let lines = words("$A=1.2.3.4\n$B = 80\nx $A ${B} $C\n$A=5\ny ${A}z $A\n");
    assert_eq!(lines, vec![vec!["x", "1.2.3.4", "80", "$C"], vec!["y", "5z", "5"]]);
}

#[test]
fn multi_line_definitions_make_several_lines() {
    let lines = words("$RS=real_server 10.0.0.1 80 { \\\n  weight 2 \\\n }\nvirtual_server 1.2.3.4 80 {\n$RS\n}\n");
    assert_eq!(lines.len(), 1);
    let config = parse::read_text(
        "$RS=real_server 10.0.0.1 80 { \\\n  weight 2 \\\n }\nvirtual_server 1.2.3.4 80 {\n$RS\n}\n",
        Path::new("/nowhere/k.conf"),
    )
    .expect("read");
    let vs = &config.nodes[0];
    let rs = &vs.children()[0];
    assert_eq!(rs.words, vec!["real_server", "10.0.0.1", "80"]);
    assert_eq!(rs.children()[0].words, vec!["weight", "2"]);
    assert_eq!(rs.place.line, 5, "the place of the use");
}

#[test]
fn a_definition_using_itself_does_not_loop() {
    let error = parse::read_text("$A=x $A\ny $A\n", Path::new("/nowhere/k.conf")).expect_err("endless");
    assert!(matches!(error, ImportError::Syntax { .. }), "{error}");
}

#[test]
fn conditional_lines() {
    let config = parse::read_text("@node1 a 1\n@^node1 b 2\n", Path::new("/nowhere/k.conf")).expect("read");
    let lines: Vec<_> = config.nodes.iter().map(|n| n.words.clone()).collect();
    assert_eq!(lines, vec![vec!["b", "2"]]);
    assert_eq!(config.notes[0].kind, NoteKind::NotMapped);
    assert_eq!(config.notes[0].place.as_ref().map(|p| p.line), Some(1));
    assert_eq!(config.notes[1].kind, NoteKind::Adjusted);
    assert_eq!(config.notes[1].place.as_ref().map(|p| p.line), Some(2));
}

#[test]
fn comments_escapes_and_blank_lines() {
    assert_eq!(words("a # x\n\n  ! y\nb\\! c\n\"q # r\" s\n"), vec![vec!["a"], vec!["b!", "c"], vec!["q # r", "s"]]);
}

#[test]
fn globs() {
    assert!(wildcard("*.conf", "a.conf"));
    assert!(!wildcard("*.conf", "a.confx"));
    assert!(wildcard("web-?.inc", "web-1.inc"));
    assert!(wildcard("[a-c]x", "bx"));
    assert!(!wildcard("[!a-c]x", "bx"));
    assert_eq!(braces("/d/{a,b}.conf"), vec!["/d/a.conf", "/d/b.conf"]);
    assert_eq!(braces("x{1,{2,3}}"), vec!["x1", "x2", "x3"]);
}

#[test]
fn deep_nesting_is_refused() {
    let text = "a {\n".repeat(10_000);
    let error = parse::read_text(&text, Path::new("/nowhere/k.conf")).expect_err("too deep");
    assert!(error.to_string().contains("nest deeper"), "{error}");
}
