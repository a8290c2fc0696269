//! Docker's word processing for instruction arguments: quotes, the escape character,
//! and variable substitution (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`, `${VAR?message}`), as Docker's
//! shell lexer does for ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER,
//! VOLUME, WORKDIR and ARG.

/// Looks a variable up (`None`: unset).
pub trait Vars {
    /// The value of `name`.
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Expands `text` into one word, quotes removed (`ENV A="x y"` → `x y`).
pub fn word(text: &str, escape: char, vars: &dyn Vars) -> Result<String, String> {
    let mut lexer = Lexer::new(text, escape, vars, false);
    lexer.run(None)?;
    Ok(lexer.finish().join(""))
}

/// Expands `text` and splits it into words on unquoted whitespace, quotes removed.
pub fn words(text: &str, escape: char, vars: &dyn Vars) -> Result<Vec<String>, String> {
    let mut lexer = Lexer::new(text, escape, vars, true);
    lexer.run(None)?;
    Ok(lexer.finish())
}

/// Splits `text` into words on unquoted whitespace without expanding anything, quotes
/// kept: `k="a b" c` → `k="a b"`, `c` (for ENV and LABEL pairs).
pub fn split_raw(text: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => {
                cur.push(c);
                if c == '"' || c == '\'' {
                    quote = Some(c);
                } else if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Vars,
    split: bool,
    words: Vec<String>,
    current: String,
    /// Whether the current word exists even if empty (`""`).
    in_word: bool,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, escape: char, vars: &'a dyn Vars, split: bool) -> Lexer<'a> {
        Lexer {
            chars: text.chars().collect(),
            pos: 0,
            escape,
            vars,
            split,
            words: Vec::new(),
            current: String::new(),
            in_word: false,
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.in_word || !self.current.is_empty() {
            self.words.push(std::mem::take(&mut self.current));
        }
        self.words
    }

    fn push(&mut self, c: char, quoted: bool) {
        if self.split && !quoted && c.is_whitespace() {
            if self.in_word {
                self.words.push(std::mem::take(&mut self.current));
                self.in_word = false;
            }
            return;
        }
        self.current.push(c);
        self.in_word = true;
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += c.is_some() as usize;
        c
    }

    /// Processes until `stop` (unquoted) or the end.
    fn run(&mut self, stop: Option<char>) -> Result<(), String> {
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                return Ok(());
            }
            self.pos += 1;
            if c == self.escape {
                match self.next() {
                    Some(n) => self.push(n, true),
                    None => self.push(c, true),
                }
            } else if c == '\'' {
                self.in_word = true;
                loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(n) => self.push(n, true),
                        None => return Err(
                            "unexpected end of statement while looking for matching single-quote"
                                .into(),
                        ),
                    }
                }
            } else if c == '"' {
                self.in_word = true;
                loop {
                    match self.next() {
                        Some('"') => break,
                        Some('$') => {
                            let value = self.dollar()?;
                            for v in value.chars() {
                                self.push(v, true);
                            }
                        }
                        Some(e) if e == self.escape => match self.peek() {
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                self.push(n, true);
                            }
                            _ => self.push(e, true),
                        },
                        Some(n) => self.push(n, true),
                        None => return Err(
                            "unexpected end of statement while looking for matching double-quote"
                                .into(),
                        ),
                    }
                }
            } else if c == '$' {
                let value = self.dollar()?;
                for v in value.chars() {
                    self.push(v, false);
                }
            } else {
                self.push(c, false);
            }
        }
        if stop.is_some() {
            return Err("missing '}'".into());
        }
        Ok(())
    }

    /// After a `$`: the variable's expansion (or a literal `$`).
    fn dollar(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err("bad substitution: empty variable name".into());
                }
                let value = self.vars.get(&name);
                match self.next() {
                    Some('}') => Ok(value.unwrap_or_default()),
                    Some(op) => {
                        let colon = op == ':';
                        let op = if colon { self.next() } else { Some(op) };
                        let word = self.nested_word()?;
                        let set = match (&value, colon) {
                            (Some(v), true) => !v.is_empty(),
                            (Some(_), false) => true,
                            (None, _) => false,
                        };
                        match op {
                            Some('-') => Ok(if set { value.unwrap_or_default() } else { word }),
                            Some('+') => Ok(if set { word } else { String::new() }),
                            Some('?') if set => Ok(value.unwrap_or_default()),
                            Some('?') => Err(if word.is_empty() {
                                format!("{name}: is not allowed to be unset")
                            } else {
                                format!("{name}: {word}")
                            }),
                            _ => Err(format!("unsupported modifier in ${{{name}...}}")),
                        }
                    }
                    None => Err("missing '}'".into()),
                }
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                Ok(self.vars.get(&name).unwrap_or_default())
            }
            _ => Ok("$".to_string()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// The word of `${VAR:-word}` up to the closing brace, itself expanded.
    fn nested_word(&mut self) -> Result<String, String> {
        let mut inner = Lexer {
            chars: self.chars.clone(),
            pos: self.pos,
            escape: self.escape,
            vars: self.vars,
            split: false,
            words: Vec::new(),
            current: String::new(),
            in_word: false,
        };
        inner.run(Some('}'))?;
        self.pos = inner.pos + 1;
        Ok(inner.finish().join(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".into()),
            "E" => Some(String::new()),
            "S" => Some("x y".into()),
            _ => None,
        }
    }

    #[test]
    fn substitution_forms() {
        let w = |t: &str| word(t, '\\', &vars).expect("word");
        assert_eq!(w("$A-${A}"), "a-a");
        assert_eq!(w("${B:-def}/${E:-d2}/${E-d3}"), "def/d2/");
        assert_eq!(w("${A:+alt}/${B:+alt}/${E+set}"), "alt//set");
        assert_eq!(w("${B:-${A}x}"), "ax");
        assert_eq!(w("'$A' \"$A\" \\$A $ end"), "$A a $A $ end");
        assert_eq!(w("\"a\\\"b\\n\""), "a\"b\\n");
        assert!(word("${B:?must be set}", '\\', &vars)
            .expect_err("unset")
            .contains("must be set"));
        assert!(word("${A", '\\', &vars).is_err());
    }

    #[test]
    fn word_splitting() {
        let ws = |t: &str| words(t, '\\', &vars).expect("words");
        assert_eq!(ws("a  \"b c\" '' $S"), ["a", "b c", "", "x", "y"]);
        assert_eq!(ws("\"$S\""), ["x y"]);
        assert_eq!(
            split_raw("k=\"a b\" c='d e' f\\ g", '\\'),
            ["k=\"a b\"", "c='d e'", "f\\ g"]
        );
    }

    #[test]
    fn backtick_escape() {
        assert_eq!(word("a`$A", '`', &vars).expect("word"), "a$A");
        assert_eq!(word("c:\\dir", '`', &vars).expect("word"), "c:\\dir");
    }
}
