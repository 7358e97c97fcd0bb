//! What a change costs `run` before any kernel work: one file of a manifest directory changes, the source reloads
//! (only that file is parsed and validated, every file is stat'ed), the desired table is merged, and the services the
//! change touches are found. Measured at 1,000 and 10,000 services (one file each) to show how it scales.
//!
//! `cargo bench --bench reload`

use std::fs;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ipvs_reconciler::source::FileSource;

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
    let mut group = c.benchmark_group("reload_one_changed_file");
    group.sample_size(20);
    for n in [1_000usize, 10_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_dir(dir.path(), n);
        let mut source = FileSource::new(vec![dir.path().to_owned()]);
        let mut previous = source.reload_desired().expect("first load").0;
        let mut weight = 1;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                weight = weight % 100 + 1;
                fs::write(dir.path().join("svc-00007.yaml"), manifest(7, weight)).expect("rewrite");
                let (outcome, _) = source.reload_desired().expect("reload");
                let touched =
                    outcome.table.services.iter().filter(|(k, v)| previous.table.services.get(k) != Some(v)).count();
                assert_eq!(touched, 1);
                previous = outcome;
            })
        });
    }
    group.finish();
}

criterion_group!(benches, reload);
criterion_main!(benches);
