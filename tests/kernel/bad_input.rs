//! Bad manifests beside valid neighbours, applied to the real kernel: each bad document costs only itself (issue 21).
