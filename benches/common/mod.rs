//! What the benchmarks share.

use std::path::Path;

/// Replaces (or appends) the section starting with `heading` in `path`, keeping the others.
pub fn write_section(path: &Path, heading: &str, section: &str) {
    let old = std::fs::read_to_string(path)
        .unwrap_or_else(|_| "# Benchmarks\n\nWritten by `tools/bench.sh`; do not edit by hand.\n\n".into());
    let mut out = String::new();
    let mut skipping = false;
    let mut replaced = false;
    for line in old.lines() {
        if line.starts_with("## ") {
            skipping = line.starts_with(heading);
            if skipping && !replaced {
                out.push_str(section.trim_end());
                out.push_str("\n\n");
                replaced = true;
            }
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        out.push_str(section.trim_end());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}
