//! Each problem of the sources' objects logged once, when it appears: a reload or a relist re-reads every object,
//! and logging every invalid object or conflict again each time would drown the one new line an operator needs.

use std::collections::BTreeSet;

use tracing::warn;

use super::DesiredState;

/// The problems already logged.
#[derive(Debug, Default)]
pub struct ProblemLog {
    reported: BTreeSet<String>,
}

impl ProblemLog {
    /// Logs the index's errors and conflicts that were not there at the last call; returns how many were new.
    pub fn report_new(&mut self, desired: &DesiredState) -> usize {
        let now: BTreeSet<String> = desired.with_index(|index| {
            let errors = index.errors().into_iter().map(|e| e.to_string());
            errors.chain(index.conflicts().into_iter().map(|c| c.to_string())).collect()
        });
        let mut new = 0;
        for problem in now.difference(&self.reported) {
            warn!("{problem}");
            new += 1;
        }
        self.reported = now;
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileSource;

    fn load(desired: &DesiredState, dir: &std::path::Path) {
        let mut source = FileSource::new(vec![dir.to_owned()]);
        desired.update(|index| {
            let reload = source.reload_into(index).unwrap();
            (reload.changed, ())
        });
    }

    #[test]
    fn a_problem_is_reported_when_it_appears_and_again_only_after_it_was_gone() {
        let dir = tempfile::tempdir().unwrap();
        let bad = "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {name: bad}\n\
                   spec: {address: 192.0.2.1, port: 70000}\n";
        std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
        let desired = DesiredState::new();
        let mut log = ProblemLog::default();
        load(&desired, dir.path());
        assert_eq!(log.report_new(&desired), 1);
        load(&desired, dir.path());
        assert_eq!(log.report_new(&desired), 0, "the same problem is not logged at every reload");
        std::fs::write(dir.path().join("bad.yaml"), bad.replace("70000", "80")).unwrap();
        load(&desired, dir.path());
        assert_eq!(log.report_new(&desired), 0);
        std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
        load(&desired, dir.path());
        assert_eq!(log.report_new(&desired), 1, "a problem that came back is logged again");
    }
}
