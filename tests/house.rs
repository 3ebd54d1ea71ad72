//! The crate's own shape: the top-level modules of `src/` import one another one way only,
//! so each concern can be read, and changed, without the ones that depend on it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// The top-level modules of `src/` (files and folders).
fn modules(src: &Path) -> BTreeSet<String> {
    fs::read_dir(src)
        .expect("src/ is readable")
        .filter_map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.is_dir() || path.extension().is_some_and(|e| e == "rs")).then_some(name)
        })
        .filter(|name| name != "lib")
        .collect()
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first-level names of a `use crate::{…}` group (nested groups skipped).
fn group_names(group: &str) -> Vec<String> {
    let (mut depth, mut current, mut names) = (0, String::new(), Vec::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => names.push(std::mem::take(&mut current)),
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    names.push(current);
    names
        .iter()
        .filter_map(|n| {
            let name: String = n
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// The crate modules a source file names through `crate::…`, outside comments and tests.
fn imports(source: &str) -> BTreeSet<String> {
    let code: String = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            names.extend(group_names(&group[..end]));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// Module → the modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let mut paths = Vec::new();
    files(&src, &mut paths);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in paths {
        let relative = path.strip_prefix(&src).expect("under src/");
        let first = relative
            .iter()
            .next()
            .and_then(|s| s.to_str())
            .unwrap_or("");
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue;
        }
        let source = fs::read_to_string(&path).expect("a readable source file");
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(
            imports(&source)
                .into_iter()
                .filter(|name| *name != module && modules.contains(name)),
        );
    }
    graph
}

/// A cycle through `start`, if any: the path back to it.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in graph.get(at).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(cycle) = cycle_from(graph, start, next, path) {
                return Some(cycle);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    assert!(
        graph.len() > 10,
        "the graph was read: {:?}",
        graph.keys().collect::<Vec<_>>()
    );
    for module in graph.keys() {
        let cycle = cycle_from(&graph, module, module, &mut vec![module.clone()]);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
}

#[test]
fn the_reader_finds_imports_and_cycles() {
    let names = imports(
        "use crate::{a::B, c, d::{e, f}};\nfn g() { crate::h::i(); }\n// crate::j\n#[cfg(test)]\nmod tests { use crate::k; }",
    );
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a", "c", "d", "h"]);
    let mut graph = BTreeMap::new();
    graph.insert("x".to_owned(), BTreeSet::from(["y".to_owned()]));
    graph.insert("y".to_owned(), BTreeSet::from(["z".to_owned()]));
    assert!(cycle_from(&graph, "x", "x", &mut vec!["x".into()]).is_none());
    graph.insert("z".to_owned(), BTreeSet::from(["x".to_owned()]));
    assert_eq!(
        cycle_from(&graph, "x", "x", &mut vec!["x".into()]),
        Some(vec!["x".into(), "y".into(), "z".into(), "x".into()])
    );
}
