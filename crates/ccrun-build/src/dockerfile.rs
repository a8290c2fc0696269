//! The Dockerfile parser: parser directives, line continuations, comments, heredocs,
//! instruction flags, and exec (JSON) versus shell forms, as Docker documents them.
//! Variable substitution happens later, per instruction (see [`crate::shell`]).

use crate::error::{Error, Result};

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// The name used in error messages (`Dockerfile`).
    pub file: String,
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    /// The `# syntax=` directive, which ccrun notes and ignores.
    pub syntax: Option<String>,
    /// The instructions in order.
    pub instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The keyword, upper case (`RUN`).
    pub keyword: String,
    /// Leading `--name[=value]` flags, in order.
    pub flags: Vec<Flag>,
    /// The arguments after the flags, continuation lines joined.
    pub args: String,
    /// Heredoc bodies, in the order their markers appear in `args`.
    pub heredocs: Vec<Heredoc>,
    /// Where the instruction starts.
    pub line: usize,
    /// Column of the keyword (1-based).
    pub column: usize,
}

/// A `--name=value` flag of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The name without dashes.
    pub name: String,
    /// The value after `=`, if any.
    pub value: Option<String>,
}

/// A heredoc (`<<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word.
    pub name: String,
    /// The body, each line ending in a newline.
    pub content: String,
    /// Whether variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// The marker as written (`<<-"EOF"`), to recognise a RUN made of it alone.
    pub marker: String,
}

/// The exec or shell form of RUN, CMD, ENTRYPOINT and the like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    /// `["executable", "arg"]`.
    Exec(Vec<String>),
    /// `command text`, run by the stage's shell.
    Shell(String),
}

impl Instruction {
    /// Parses the arguments as a JSON array of strings (exec form), else shell form,
    /// as Docker does (invalid JSON is shell form).
    pub fn command_form(&self) -> CommandForm {
        let trimmed = self.args.trim();
        if trimmed.starts_with('[') {
            if let Ok(v) = serde_json::from_str::<Vec<String>>(trimmed) {
                return CommandForm::Exec(v);
            }
        }
        CommandForm::Shell(trimmed.to_string())
    }

    /// The value of flag `name` (the last one given).
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().rev().find(|f| f.name == name)
    }

    /// The instruction as it reads, for history and step lines.
    pub fn text(&self) -> String {
        let mut out = self.keyword.clone();
        for f in &self.flags {
            out.push_str(" --");
            out.push_str(&f.name);
            if let Some(v) = &f.value {
                out.push('=');
                out.push_str(v);
            }
        }
        if !self.args.is_empty() {
            out.push(' ');
            out.push_str(&self.args);
        }
        out
    }
}

/// Instructions Docker knows.
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Instructions whose arguments may hold heredocs.
const HEREDOC_KEYWORDS: &[&str] = &["RUN", "COPY", "ADD"];

/// Parses a Dockerfile's text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Dockerfile> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut i = 0;
    // Parser directives: `# key=value` lines at the very top, before anything else.
    let mut seen = std::collections::BTreeSet::new();
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        if !seen.insert(key.clone()) {
            return Err(syntax_err(
                file,
                i + 1,
                1,
                format!("only one {key} parser directive can be used"),
            ));
        }
        match key.as_str() {
            "escape" => {
                escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(syntax_err(
                            file,
                            i + 1,
                            1,
                            format!("invalid escape token '{value}' does not match ` or \\"),
                        ))
                    }
                }
            }
            "syntax" => syntax = Some(value),
            // Unknown directives are comments, as Docker treats them.
            _ => {}
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start_line = i + 1;
        let column = line.len() - trimmed.len() + 1;
        // Join continuation lines; comment and empty lines inside are dropped.
        let mut logical = String::new();
        let mut current = trimmed.to_string();
        loop {
            let stripped = current.trim_end();
            if let Some(body) = stripped.strip_suffix(escape) {
                logical.push_str(body);
                i += 1;
                loop {
                    if i >= lines.len() {
                        current = String::new();
                        break;
                    }
                    let t = lines[i].trim_start();
                    if t.starts_with('#') || t.trim().is_empty() {
                        i += 1;
                        continue;
                    }
                    current = lines[i].to_string();
                    break;
                }
                if i >= lines.len() {
                    break;
                }
            } else {
                logical.push_str(&current);
                i += 1;
                break;
            }
        }
        let (keyword, rest) = match logical.find(char::is_whitespace) {
            Some(at) => (&logical[..at], logical[at..].trim()),
            None => (logical.as_str(), ""),
        };
        let upper = keyword.to_ascii_uppercase();
        if !KEYWORDS.contains(&upper.as_str()) {
            return Err(syntax_err(
                file,
                start_line,
                column,
                format!("unknown instruction: {keyword}"),
            ));
        }
        let (flags, args) = split_flags(rest, escape);
        let mut heredocs = Vec::new();
        if HEREDOC_KEYWORDS.contains(&upper.as_str()) {
            for (marker, name, expand, strip_tabs) in heredoc_markers(&args) {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let body_line = lines[i];
                    i += 1;
                    let body_line = if strip_tabs {
                        body_line.trim_start_matches('\t')
                    } else {
                        body_line
                    };
                    if body_line == name {
                        closed = true;
                        break;
                    }
                    content.push_str(body_line);
                    content.push('\n');
                }
                if !closed {
                    return Err(syntax_err(
                        file,
                        start_line,
                        column,
                        format!("unterminated heredoc {name}"),
                    ));
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    marker,
                });
            }
        }
        if args.is_empty() && heredocs.is_empty() && upper != "HEALTHCHECK" {
            return Err(syntax_err(
                file,
                start_line,
                column,
                format!("{upper} requires at least one argument"),
            ));
        }
        instructions.push(Instruction {
            keyword: upper,
            flags,
            args,
            heredocs,
            line: start_line,
            column,
        });
    }
    Ok(Dockerfile {
        file: file.to_string(),
        escape,
        syntax,
        instructions,
    })
}

/// `# key=value` with a lower-case key made of letters, or nothing.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim().to_ascii_lowercase();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((key, value.trim().to_string()))
}

fn syntax_err(file: &str, line: usize, column: usize, message: String) -> Error {
    Error::Syntax {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// Splits leading `--flag[=value]` words off the arguments. A value may be quoted.
fn split_flags(rest: &str, escape: char) -> (Vec<Flag>, String) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start();
    while let Some(after) = s.strip_prefix("--") {
        // A word ends at unquoted whitespace.
        let mut end = after.len();
        let mut quote = None;
        let mut chars = after.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match (quote, c) {
                (None, c) if c.is_whitespace() => {
                    end = at;
                    break;
                }
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, c) if c == escape => {
                    chars.next();
                }
                _ => {}
            }
        }
        let word = &after[..end];
        if word.is_empty() {
            break;
        }
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(unquote(v))),
            None => (word.to_string(), None),
        };
        flags.push(Flag { name, value });
        s = after[end..].trim_start();
    }
    (flags, s.to_string())
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Heredoc markers in `args`: (as written, name, expand, strip tabs), in order.
/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, as BuildKit recognises them; `<<<` (a
/// here-string) is not one.
fn heredoc_markers(args: &str) -> Vec<(String, String, bool, bool)> {
    let bytes = args.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < bytes.len() + 1 {
        if bytes[i..].starts_with(b"<<<") {
            // A here-string, not a heredoc.
            i += 3;
            continue;
        }
        if bytes[i..].starts_with(b"<<") {
            let start = i;
            let mut j = i + 2;
            let strip_tabs = bytes.get(j) == Some(&b'-');
            if strip_tabs {
                j += 1;
            }
            let quote = match bytes.get(j) {
                Some(b'"') | Some(b'\'') => {
                    j += 1;
                    Some(bytes[j - 1])
                }
                _ => None,
            };
            let name_start = j;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            let name = &args[name_start..j];
            let closed = match quote {
                Some(q) if bytes.get(j) == Some(&q) => {
                    j += 1;
                    true
                }
                Some(_) => false,
                None => true,
            };
            if !name.is_empty()
                && closed
                && name.as_bytes()[0].is_ascii_alphabetic() | (name.as_bytes()[0] == b'_')
            {
                out.push((
                    args[start..j].to_string(),
                    name.to_string(),
                    quote.is_none(),
                    strip_tabs,
                ));
                i = j;
                continue;
            }
            i = j.max(i + 2);
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_continuations_and_comments() {
        let df = parse(
            "Dockerfile",
            "# syntax=docker/dockerfile:1\n# escape=`\n\nFROM busybox\nRUN echo a `\n  # a comment\n\n  b\n  run  echo c\n",
        )
        .expect("parse");
        assert_eq!(df.escape, '`');
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        let kw: Vec<_> = df
            .instructions
            .iter()
            .map(|i| (i.keyword.as_str(), i.args.as_str(), i.line))
            .collect();
        assert_eq!(
            kw,
            [
                ("FROM", "busybox", 4),
                ("RUN", "echo a   b", 5),
                ("RUN", "echo c", 9)
            ]
        );
        assert_eq!(df.instructions[2].column, 3);
    }

    #[test]
    fn directives_only_at_the_top() {
        let df = parse("D", "FROM x\n# escape=`\nRUN a \\\n b\n").expect("parse");
        assert_eq!(df.escape, '\\');
        assert_eq!(df.instructions[1].args, "a  b");
    }

    #[test]
    fn flags_and_forms() {
        let df = parse(
            "D",
            "FROM x AS b\nCOPY --from=b --chown=\"1:2\" a b\nCMD [\"sh\", \"-c\"]\nCMD [bad json\n",
        )
        .expect("parse");
        let copy = &df.instructions[1];
        assert_eq!(
            copy.flag("from").and_then(|f| f.value.as_deref()),
            Some("b")
        );
        assert_eq!(
            copy.flag("chown").and_then(|f| f.value.as_deref()),
            Some("1:2")
        );
        assert_eq!(copy.args, "a b");
        assert_eq!(
            df.instructions[2].command_form(),
            CommandForm::Exec(vec!["sh".into(), "-c".into()])
        );
        assert_eq!(
            df.instructions[3].command_form(),
            CommandForm::Shell("[bad json".into())
        );
    }

    #[test]
    fn heredocs() {
        let df = parse(
            "D",
            "FROM x\nRUN <<EOF\necho $A\nEOF\nCOPY <<-'one' <<two /dst/\n\thello\n\tone\n$B\ntwo\nRUN echo after\n",
        )
        .expect("parse");
        let run = &df.instructions[1];
        assert_eq!(run.heredocs[0].content, "echo $A\n");
        assert_eq!(run.heredocs[0].marker, "<<EOF");
        let copy = &df.instructions[2];
        assert_eq!(copy.heredocs.len(), 2);
        assert_eq!(
            (copy.heredocs[0].content.as_str(), copy.heredocs[0].expand),
            ("hello\n", false)
        );
        assert_eq!(
            (copy.heredocs[1].content.as_str(), copy.heredocs[1].expand),
            ("$B\n", true)
        );
        assert_eq!(df.instructions[3].args, "echo after");
        assert!(parse("D", "FROM x\nRUN echo <<<here\n")
            .expect("parse")
            .instructions[1]
            .heredocs
            .is_empty());
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("Dockerfile", "FROM x\n\n  FOO bar\n").expect_err("unknown");
        assert_eq!(e.to_string(), "Dockerfile:3:3: unknown instruction: FOO");
        let e = parse("D", "FROM x\nRUN <<EOF\nno end\n").expect_err("heredoc");
        assert_eq!(e.to_string(), "D:2:1: unterminated heredoc EOF");
        let e = parse("D", "# escape=x\nFROM x\n").expect_err("escape");
        assert!(e.to_string().starts_with("D:1:1: invalid escape token"));
        let e = parse("D", "FROM x\nRUN\n").expect_err("empty");
        assert_eq!(e.to_string(), "D:2:1: RUN requires at least one argument");
    }
}
