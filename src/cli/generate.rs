//! `completions SHELL` and `man`: generated from the clap definition by clap's own crates, so that they name
//! exactly the subcommands and flags this build has.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::EXIT_OK;
use super::args::{Cli, CompletionsArgs, ManArgs};

/// The name shells complete and man pages are titled by (the binary's, not the crate's).
const BIN: &str = "ipvs-reconciler";

/// Prints the completion script of `args.shell`.
pub fn completions(args: &CompletionsArgs) -> Result<i32> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), BIN, &mut out);
    write_stdout(&out)
}

/// Prints the manual page, or writes one page per command into `args.dir`.
pub fn man(args: &ManArgs) -> Result<i32> {
    let command = Cli::command().name(BIN);
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            Ok(EXIT_OK)
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command).render(&mut out).context("rendering the man page")?;
            write_stdout(&out)
        }
    }
}

/// Writes all of `bytes` to stdout; a closed pipe (`| head`) is an error like any other, with its cause.
fn write_stdout(bytes: &[u8]) -> Result<i32> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush()).context("writing to stdout")?;
    Ok(EXIT_OK)
}
