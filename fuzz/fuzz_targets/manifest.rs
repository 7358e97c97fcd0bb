//! Arbitrary text as a manifest file: through the file source's reader
//! (`source::file::parse_documents`, which splits the YAML stream into documents, reads each as a
//! `VirtualService` and validates it) and then into the `ObjectIndex` (`reset` with the readable objects and the
//! errors, as a file load does; then `table`, `errors`, `conflicts`).
//!
//! Oracle:
//! - nothing panics, and nothing hangs (libFuzzer's `-timeout`, set by `tests/fuzz`);
//! - every error, from the reader or from the index, names an object of this file (the file, or one of its
//!   documents), and says something;
//! - every desired service comes from an object of this file.
#![no_main]

use std::path::Path;

use ipvs_reconciler::model::ObjectId;
use ipvs_reconciler::source::ObjectIndex;
use ipvs_reconciler::source::file::parse_documents;
use libfuzzer_sys::fuzz_target;

const PATH: &str = "/etc/ipvs-reconciler/fuzz.yaml";

fn of_this_file(id: &ObjectId) -> bool {
    match id {
        ObjectId::File { path } | ObjectId::Document { path, .. } => path == Path::new(PATH),
        ObjectId::Kubernetes { .. } => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let load = parse_documents(Path::new(PATH), 0, &text);
    for error in load.errors.iter().chain(&load.warnings) {
        assert!(of_this_file(&error.object), "an error names no object of the file: {error:?}");
        assert!(!error.message.is_empty(), "an error says nothing: {error:?}");
    }
    for object in &load.objects {
        assert!(of_this_file(&object.id), "an object of another file: {:?}", object.id);
    }

    let mut index = ObjectIndex::new();
    index.reset(load.objects, load.errors);
    for error in index.errors() {
        assert!(of_this_file(&error.object), "an index error names no object of the file: {error:?}");
        assert!(!error.message.is_empty(), "an index error says nothing: {error:?}");
    }
    for (key, service) in &index.table().services {
        assert!(of_this_file(&service.origin), "{key} desired by {:?}", service.origin);
    }
    let _ = index.conflicts();
});
