//! What a change costs `run` before any kernel work: one file of a manifest directory changes, the source reloads
//! it into the index (inotify names the file, so only that file is stat'ed, parsed and validated), which reports
//! the services the change touches, and the agent takes its snapshot (the desired table, shared entries).
//! `relist_one_changed_file` is the periodic rescan's cost: every file stat'ed. Measured at 1,000 and 10,000 services (one file each) to show how it scales.
//!
//! `cargo bench --bench reload`

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ipvs_reconciler::source::{DesiredState, FileSource};

fn manifest(i: usize, weight: u32) -> String {
    let (a, b) = (i / 250, i % 250 + 1);
    let mut s = format!(
        "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: svc-{i}}}\nspec:\n  address: 198.18.{a}.{b}\n  port: 80\n  backends:\n"
    );
    for d in 0..10 {
        s.push_str(&format!("    - {{address: 10.{}.{}.{}, port: 8080, weight: {weight}}}\n", i / 250 % 250, b, d + 1));
    }
    s
}

fn write_dir(dir: &Path, n: usize) {
    for i in 0..n {
        fs::write(dir.join(format!("svc-{i:05}.yaml")), manifest(i, 1)).expect("write manifest");
    }
}

fn reload(c: &mut Criterion) {
    let mut group = c.benchmark_group("file_change");
    group.sample_size(20);
    for n in [1_000usize, 10_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_dir(dir.path(), n);
        let mut source = FileSource::new(vec![dir.path().to_owned()]);
        let state = DesiredState::new();
        let changed = BTreeSet::from([dir.path().join("svc-00007.yaml")]);
        let reload = |source: &mut FileSource, everything: bool| {
            state.update(|index| {
                let reload =
                    if everything { source.reload_into(index) } else { source.reload_paths_into(index, &changed) };
                let reload = reload.expect("reload");
                (reload.changed.clone(), reload)
            })
        };
        reload(&mut source, true);
        state.take();
        let mut weight = 1;
        for (name, everything) in [("reload_one_changed_file", false), ("relist_one_changed_file", true)] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    weight = weight % 100 + 1;
                    fs::write(dir.path().join("svc-00007.yaml"), manifest(7, weight)).expect("rewrite");
                    let done = reload(&mut source, everything);
                    assert_eq!((done.files_read, done.listed), (1, everything));
                    let snapshot = state.take();
                    assert_eq!(snapshot.changed.len(), 1);
                    assert_eq!(snapshot.table.services.len(), n);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, reload);
criterion_main!(benches);
