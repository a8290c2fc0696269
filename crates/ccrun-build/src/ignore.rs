//! `.dockerignore`: Docker's pattern rules (moby's patternmatcher). Each line is a
//! pattern relative to the context root (a leading `/` is dropped, the path is
//! cleaned); `*` and `?` stay within one path element, `**` spans any number of them,
//! `[...]` is a character class and `\` escapes; `!` makes an exception. A path is
//! excluded when the last pattern that matches it (or its parent directory at the
//! pattern's depth) is not an exception. `globset` differs from these rules (its
//! `**` needs whole path elements and it has no parent-directory matching), so the
//! patterns are translated to regular expressions the way moby does.

use regex::Regex;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
struct Pattern {
    regex: Regex,
    /// Path elements in the pattern.
    depth: usize,
    exception: bool,
}

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Ignore> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, raw) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(raw);
            if cleaned.is_empty() {
                continue;
            }
            let regex = Regex::new(&translate(&cleaned)).map_err(|e| Error::Context {
                message: format!(".dockerignore: invalid pattern {raw:?}: {e}"),
            })?;
            patterns.push(Pattern {
                regex,
                depth: cleaned.split('/').count(),
                exception,
            });
        }
        Ok(Ignore { patterns })
    }

    /// Whether `path` (relative to the context root, `/`-separated) is excluded.
    /// Each parent directory is decided first and its result carried down, as
    /// BuildKit's walker does: below an excluded directory only an exception brings
    /// a path back.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for end in 1..=parts.len() {
            excluded = self.decide(&parts[..end], excluded);
        }
        excluded
    }

    fn decide(&self, parts: &[&str], parent_excluded: bool) -> bool {
        let path = parts.join("/");
        let mut excluded = parent_excluded;
        for p in &self.patterns {
            if p.exception != excluded {
                // It could not change the outcome.
                continue;
            }
            let mut hit = p.regex.is_match(&path);
            if !hit && p.depth < parts.len() {
                hit = p.regex.is_match(&parts[..p.depth].join("/"));
            }
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// Whether any exception pattern exists (so an excluded directory must still be
    /// walked for re-included files).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }
}

/// Go's `filepath.Clean` for relative slash paths, leading `/` dropped.
fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out.join("/")
}

fn translate(pattern: &str) -> String {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => {
                if let Some(n) = chars.get(i) {
                    re.push_str(&regex::escape(&n.to_string()));
                    i += 1;
                } else {
                    re.push_str("\\\\");
                }
            }
            '[' | ']' | '-' | '^' => re.push(c),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules() {
        let ig = Ignore::parse(
            "# comment\n*.log\n!keep.log\n/build\n**/tmp\nsecret?.txt\ndocs/**/*.md\n!docs/README.md\n",
        )
        .expect("parse");
        assert!(ig.excludes("a.log"));
        assert!(!ig.excludes("keep.log"));
        assert!(!ig.excludes("sub/a.log"), "* stays in one element");
        assert!(ig.excludes("build"));
        assert!(
            ig.excludes("build/out/x"),
            "a matched directory excludes its contents"
        );
        assert!(ig.excludes("tmp") && ig.excludes("a/b/tmp/c"));
        assert!(ig.excludes("secret1.txt") && !ig.excludes("secret12.txt"));
        assert!(ig.excludes("docs/x.md") && ig.excludes("docs/a/b/x.md"));
        assert!(!ig.excludes("docs/README.md"));
        assert!(!ig.excludes("src/main.rs"));
        assert!(ig.has_exceptions());
    }

    #[test]
    fn last_match_wins_and_classes() {
        let ig = Ignore::parse("*\n!src\nsrc/*.o\n[ab].txt\n").expect("parse");
        assert!(ig.excludes("Dockerfile"));
        assert!(!ig.excludes("src/main.c"));
        assert!(ig.excludes("src/main.o"));
        let ig = Ignore::parse("[ab].txt\n./x/../c.txt\n").expect("parse");
        assert!(ig.excludes("a.txt") && !ig.excludes("d.txt") && ig.excludes("c.txt"));
    }
}
