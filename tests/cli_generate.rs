//! `completions SHELL` and `man`: what clap_complete and clap_mangen make of the command line names every
//! subcommand (taken from the clap definition itself, not from a list kept here).

use std::process::Command;

use clap::CommandFactory;
use ipvs_reconciler::cli::Cli;

fn subcommands() -> Vec<String> {
    let names: Vec<String> = Cli::command().get_subcommands().map(|c| c.get_name().to_owned()).collect();
    for expected in ["run", "agent", "apply", "completions", "man"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    names
}

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_name_every_subcommand_in_every_shell() {
    let names = subcommands();
    for (shell, marker) in [
        ("bash", "complete -F _ipvs__reconciler"),
        ("zsh", "#compdef ipvs-reconciler"),
        ("fish", "complete -c ipvs-reconciler"),
        ("elvish", "edit:completion:arg-completer[ipvs-reconciler]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: no {marker:?} in\n{script}");
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell}: {name} missing");
        }
        // Flags of a subcommand too, not only the top level.
        assert!(script.contains("manifests"), "{shell}: run's --manifests missing");
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_ipvs-reconciler")).args(["completions", "tcsh"]).output().unwrap();
    assert!(!refused.status.success());
}

#[test]
fn the_man_page_is_roff_that_lists_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH ipvs-reconciler 1"), "{page}");
    assert!(page.contains(concat!("ipvs-reconciler ", env!("CARGO_PKG_VERSION"))), "the version: {page}");
    for name in subcommands() {
        // roff escapes the hyphens of names; the subcommands section writes each name as bold.
        let roff = name.replace('-', "\\-");
        assert!(page.contains(&format!("ipvs\\-reconciler\\-{roff}(1)")), "{name} missing from\n{page}");
    }
}

#[test]
fn man_dir_writes_a_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("man1");
    stdout_of(&["man", "--dir", target.to_str().unwrap()]);
    let top = std::fs::read_to_string(target.join("ipvs-reconciler.1")).unwrap();
    assert!(top.contains(".SH SUBCOMMANDS"), "{top}");
    for name in subcommands() {
        let page = std::fs::read_to_string(target.join(format!("ipvs-reconciler-{name}.1")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(page.contains(".SH SYNOPSIS"), "{name}: {page}");
    }
    let run = std::fs::read_to_string(target.join("ipvs-reconciler-run.1")).unwrap();
    assert!(run.contains("\\-\\-manifests"), "{run}");
}
