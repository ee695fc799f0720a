//! Which programming languages a repository's files support, to cross-check the model's
//! answer, and the primary one for the fallback.
//!
//! This is a small private detector: the core's `HeuristicMetadataGenerator` did not exist yet
//! when this crate was written. It only needs to answer "is this language plausible here" and
//! "which language dominates".

use std::collections::BTreeMap;

use toolshed_core::domain::RepoSnapshot;

/// Canonical names and the spellings models use for them.
const ALIASES: &[(&str, &[&str])] = &[
    ("Python", &["python", "python3", "py"]),
    (
        "TypeScript",
        &["typescript", "ts", "node.js (typescript)", "deno"],
    ),
    (
        "JavaScript",
        &[
            "javascript",
            "js",
            "node",
            "node.js",
            "nodejs",
            "ecmascript",
        ],
    ),
    ("Rust", &["rust"]),
    ("Go", &["go", "golang"]),
    ("Java", &["java"]),
    ("Kotlin", &["kotlin"]),
    ("C#", &["c#", "csharp", "c sharp", ".net", "dotnet"]),
    ("C++", &["c++", "cpp", "cxx"]),
    ("C", &["c"]),
    ("Ruby", &["ruby"]),
    ("PHP", &["php"]),
    ("Swift", &["swift"]),
    ("Elixir", &["elixir"]),
    ("Scala", &["scala"]),
    ("Dart", &["dart"]),
    ("Zig", &["zig"]),
    ("Shell", &["shell", "bash", "sh", "zsh"]),
    ("Lua", &["lua"]),
    ("Haskell", &["haskell"]),
    ("Clojure", &["clojure"]),
    ("F#", &["f#", "fsharp"]),
    ("OCaml", &["ocaml"]),
    ("Julia", &["julia"]),
    ("R", &["r"]),
    ("Perl", &["perl"]),
];

const EXTENSIONS: &[(&str, &str)] = &[
    ("py", "Python"),
    ("pyi", "Python"),
    ("ts", "TypeScript"),
    ("tsx", "TypeScript"),
    ("mts", "TypeScript"),
    ("cts", "TypeScript"),
    ("js", "JavaScript"),
    ("jsx", "JavaScript"),
    ("mjs", "JavaScript"),
    ("cjs", "JavaScript"),
    ("rs", "Rust"),
    ("go", "Go"),
    ("java", "Java"),
    ("kt", "Kotlin"),
    ("kts", "Kotlin"),
    ("cs", "C#"),
    ("cpp", "C++"),
    ("cc", "C++"),
    ("cxx", "C++"),
    ("hpp", "C++"),
    ("hh", "C++"),
    ("c", "C"),
    ("h", "C"),
    ("rb", "Ruby"),
    ("php", "PHP"),
    ("swift", "Swift"),
    ("ex", "Elixir"),
    ("exs", "Elixir"),
    ("scala", "Scala"),
    ("dart", "Dart"),
    ("zig", "Zig"),
    ("sh", "Shell"),
    ("bash", "Shell"),
    ("lua", "Lua"),
    ("hs", "Haskell"),
    ("clj", "Clojure"),
    ("fs", "F#"),
    ("ml", "OCaml"),
    ("jl", "Julia"),
    ("r", "R"),
    ("pl", "Perl"),
];

/// Manifest file names and the language they imply.
const MANIFESTS: &[(&str, &str)] = &[
    ("cargo.toml", "Rust"),
    ("pyproject.toml", "Python"),
    ("requirements.txt", "Python"),
    ("setup.py", "Python"),
    ("setup.cfg", "Python"),
    ("pipfile", "Python"),
    ("uv.lock", "Python"),
    ("package.json", "JavaScript"),
    ("tsconfig.json", "TypeScript"),
    ("deno.json", "TypeScript"),
    ("go.mod", "Go"),
    ("pom.xml", "Java"),
    ("build.gradle", "Java"),
    ("build.gradle.kts", "Kotlin"),
    ("gemfile", "Ruby"),
    ("composer.json", "PHP"),
    ("mix.exs", "Elixir"),
    ("package.swift", "Swift"),
    ("pubspec.yaml", "Dart"),
    ("build.zig", "Zig"),
    ("build.sbt", "Scala"),
];

/// Docker base images and their language.
const BASE_IMAGES: &[(&str, &str)] = &[
    ("python", "Python"),
    ("node", "JavaScript"),
    ("oven/bun", "JavaScript"),
    ("denoland/deno", "TypeScript"),
    ("golang", "Go"),
    ("rust", "Rust"),
    ("openjdk", "Java"),
    ("eclipse-temurin", "Java"),
    ("ruby", "Ruby"),
    ("php", "PHP"),
    ("mcr.microsoft.com/dotnet", "C#"),
];

/// A manifest weighs as much as this many source files: it names the build, files may be
/// vendored or generated.
const MANIFEST_WEIGHT: usize = 5;

/// The canonical name of a language as a model or a person spells it, if known.
pub fn canonical(name: &str) -> Option<&'static str> {
    let n = name.trim().to_ascii_lowercase();
    ALIASES
        .iter()
        .find(|(canon, aliases)| canon.eq_ignore_ascii_case(&n) || aliases.contains(&n.as_str()))
        .map(|(canon, _)| *canon)
}

/// Languages the repository's files, manifests and Dockerfile support, strongest first.
pub fn repo_languages(snapshot: &RepoSnapshot) -> Vec<(&'static str, usize)> {
    let mut score: BTreeMap<&'static str, usize> = BTreeMap::new();
    let file_names = snapshot
        .files
        .iter()
        .chain(snapshot.manifests.iter().map(|(p, _)| p));
    for path in file_names {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        if let Some((_, lang)) = MANIFESTS.iter().find(|(m, _)| *m == name) {
            *score.entry(lang).or_default() += MANIFEST_WEIGHT;
        } else if name.ends_with(".csproj") || name.ends_with(".sln") {
            *score.entry("C#").or_default() += MANIFEST_WEIGHT;
        } else if let Some((_, ext)) = name.rsplit_once('.') {
            if let Some((_, lang)) = EXTENSIONS.iter().find(|(e, _)| *e == ext) {
                *score.entry(lang).or_default() += 1;
            }
        }
    }
    // A package.json that depends on TypeScript supports TypeScript even before .ts files.
    let ts_dependency = snapshot
        .manifests
        .iter()
        .any(|(p, text)| p.ends_with("package.json") && text.contains("\"typescript\""));
    if ts_dependency {
        *score.entry("TypeScript").or_default() += 1;
    }
    if let Some(dockerfile) = &snapshot.dockerfile {
        for line in dockerfile.lines() {
            let l = line.trim().to_ascii_lowercase();
            let Some(image) = l
                .strip_prefix("from ")
                .map(|r| r.split_whitespace().next().unwrap_or(""))
            else {
                continue;
            };
            let image = image.strip_prefix("docker.io/library/").unwrap_or(image);
            if let Some((_, lang)) = BASE_IMAGES.iter().find(|(b, _)| {
                image == *b
                    || (image.starts_with(b) && image[b.len()..].starts_with([':', '@', '/']))
            }) {
                *score.entry(lang).or_default() += 1;
            }
        }
    }
    let mut langs: Vec<(&'static str, usize)> = score.into_iter().collect();
    langs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    langs
}

/// The dominant language, if any.
pub fn primary_language(snapshot: &RepoSnapshot) -> Option<&'static str> {
    repo_languages(snapshot).first().map(|(l, _)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(files: &[&str], manifests: &[(&str, &str)], dockerfile: Option<&str>) -> RepoSnapshot {
        RepoSnapshot {
            readme: None,
            files: files.iter().map(|s| s.to_string()).collect(),
            manifests: manifests
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
            dockerfile: dockerfile.map(str::to_owned),
            truncated: false,
        }
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical(" golang "), Some("Go"));
        assert_eq!(canonical("Node.js"), Some("JavaScript"));
        assert_eq!(canonical("TYPESCRIPT"), Some("TypeScript"));
        assert_eq!(canonical("c++"), Some("C++"));
        assert_eq!(canonical("Klingon"), None);
    }

    #[test]
    fn detects_languages_from_manifests_extensions_and_base_images() {
        let s = snap(
            &[
                "src/mcp_server_time/server.py",
                "src/mcp_server_time/__init__.py",
                "README.md",
                "scripts/x.sh",
            ],
            &[("pyproject.toml", "[project]")],
            Some("FROM python:3.12-slim AS build\nFROM scratch\n"),
        );
        let langs = repo_languages(&s);
        assert_eq!(langs[0].0, "Python");
        assert!(langs.iter().any(|(l, _)| *l == "Shell"));
        assert!(!langs.iter().any(|(l, _)| *l == "Rust"));
        assert_eq!(primary_language(&s), Some("Python"));

        let ts = snap(
            &["index.js"],
            &[("package.json", r#"{"devDependencies":{"typescript":"5"}}"#)],
            None,
        );
        let langs: Vec<_> = repo_languages(&ts).into_iter().map(|(l, _)| l).collect();
        assert_eq!(langs[0], "JavaScript");
        assert!(langs.contains(&"TypeScript"));
        assert_eq!(primary_language(&snap(&[], &[], None)), None);
    }
}
