//! Go's `text/template` as Docker's `--format` flags use it, evaluated over JSON values.
//!
//! Supported: literal text; fields (`{{.Field.Sub}}`, `{{$.Field}}`, `{{$v.Field}}`);
//! variables (`{{$x := …}}`, `{{$x = …}}`, `{{range $k, $v := …}}`, `{{with $x := …}}`);
//! string, raw string, number, boolean and nil literals; pipelines (`{{.Config | json}}`)
//! and parenthesised sub-pipelines; `{{if}}`, `{{else if}}`, `{{with}}`, `{{range}}`
//! (maps in key order, as Go does) with `{{else}}`, `{{break}}` and `{{continue}}`;
//! `{{- ` and ` -}}` trimming; comments; Go's functions `and`, `or`, `not`, `len`,
//! `index`, `slice`, `print`, `printf`, `println`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`;
//! and Docker's `json`, `join`, `split`, `lower`, `upper`, `title`, `pad`, `truncate`.
//! Methods with arguments on the data (`{{.Label "app"}}` in `ps`) come from the
//! caller through [`Template::render_with`].
//!
//! Values print as Go prints them: arrays as `[a b]`, objects as `map[k:v]`, null as
//! `<nil>`. A missing field whose name starts with an upper-case letter is an error
//! (Go's "can't evaluate field"); a missing lower-case key (a map key such as a label)
//! prints `<no value>`, as Go does for maps.
//!
//! Why our own engine rather than a crate: the one maintained-looking Rust port of Go's
//! templates, `gtmpl`, is marked passively maintained and has had no release in years;
//! its maps are `HashMap`s, so `range` over a map (ports, labels) comes out in a random
//! order where Go sorts the keys; it lacks `slice`, `break`/`continue` and methods with
//! arguments; and it would need a conversion of every value from `serde_json` plus
//! Docker's own functions on top. What Docker's templates use is a small, well-defined
//! language, kept here with its tests.

use std::fmt;

use serde_json::Value;

/// Why a template could not be parsed or executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "template: {}", self.0)
    }
}

impl std::error::Error for TemplateError {}

type Result<T> = std::result::Result<T, TemplateError>;

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(TemplateError(message.into()))
}

/// Methods the caller offers on its data: called with the method's name and
/// arguments for `{{.Name arg…}}` (and for `{{.Name}}` when the data has no such
/// field); `None` when there is no such method.
pub type Methods<'a> = &'a dyn Fn(&str, &[Value]) -> Option<Result<Value>>;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Block),
    With(Block),
    Range(Block),
    Break,
    Continue,
}

/// `{{if P}}…{{else}}…{{end}}` and its relatives.
#[derive(Debug, Clone)]
struct Block {
    pipeline: Pipeline,
    body: Vec<Node>,
    otherwise: Vec<Node>,
}

/// `$a, $b := cmd | cmd`: the variables declared (or assigned, with `=`) and the commands.
#[derive(Debug, Clone)]
struct Pipeline {
    vars: Vec<String>,
    declare: bool,
    commands: Vec<Command>,
}

#[derive(Debug, Clone)]
struct Command(Vec<Operand>);

#[derive(Debug, Clone)]
enum Operand {
    /// `.Field.Sub` (empty path: `.`).
    Dot(Vec<String>),
    /// `$name.Field.Sub` (`$` alone is the data the template was run with).
    Var(String, Vec<String>),
    Literal(Value),
    Function(String),
    /// `(pipeline).Field.Sub`.
    Sub(Pipeline, Vec<String>),
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Template> {
        let items = split_actions(text)?;
        let mut parser = Parser {
            items,
            pos: 0,
            ranges: 0,
        };
        let (nodes, end) = parser.nodes()?;
        match end {
            None => Ok(Template { nodes }),
            Some(word) => err(format!("unexpected {{{{{word}}}}}")),
        }
    }

    /// Executes the template with `data` as `.` and `$`.
    pub fn render(&self, data: &Value) -> Result<String> {
        self.render_with(data, &|_, _| None)
    }

    /// Like [`Template::render`], with `methods` callable on the data.
    pub fn render_with(&self, data: &Value, methods: Methods<'_>) -> Result<String> {
        let mut out = String::new();
        let mut state = State {
            vars: vec![("$".to_string(), data.clone())],
            methods,
            out: &mut out,
        };
        match state.exec(&self.nodes, data)? {
            Flow::Next => Ok(out),
            _ => err("{{break}} or {{continue}} outside {{range}}"),
        }
    }
}

/// Text and the inside of `{{…}}` actions, after whitespace trimming.
#[derive(Debug)]
enum Item {
    Text(String),
    Action(String),
}

fn split_actions(text: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut before = &rest[..start];
        if trim_next {
            before = before.trim_start();
        }
        let after = &rest[start + 2..];
        let trim_before = after.starts_with("- ")
            || after.starts_with("-\t")
            || after.starts_with("-\n")
            || after.starts_with("-\r");
        if trim_before {
            before = before.trim_end();
        }
        if !before.is_empty() {
            items.push(Item::Text(before.to_string()));
        }
        let body = if trim_before { &after[1..] } else { after };
        let end = action_end(body).ok_or_else(|| TemplateError("unclosed action".into()))?;
        let mut inner = &body[..end];
        trim_next = inner.ends_with(" -")
            || inner.ends_with("\t-")
            || inner.ends_with("\n-")
            || inner.ends_with("\r-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        items.push(Item::Action(inner.trim().to_string()));
        rest = &body[end + 2..];
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    if !tail.is_empty() {
        items.push(Item::Text(tail.to_string()));
    }
    Ok(items)
}

/// Index of the `}}` closing an action, skipping over quoted strings.
fn action_end(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

struct Parser {
    items: Vec<Item>,
    pos: usize,
    /// How many `{{range}}` blocks enclose the current position (for break/continue).
    ranges: usize,
}

impl Parser {
    /// Nodes up to the end of input or a block keyword (`else`, `end`), which is returned.
    fn nodes(&mut self) -> Result<(Vec<Node>, Option<String>)> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.get(self.pos) {
            self.pos += 1;
            let action = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Item::Action(a) => a.clone(),
            };
            if action.starts_with("/*") {
                if !action.ends_with("*/") {
                    return err("unclosed comment");
                }
                continue;
            }
            let (word, rest) = split_keyword(&action);
            match word {
                "end" | "else" => return Ok((nodes, Some(action))),
                "if" => nodes.push(Node::If(self.block(rest, "if")?)),
                "with" => nodes.push(Node::With(self.block(rest, "with")?)),
                "range" => {
                    self.ranges += 1;
                    let block = self.block(rest, "range");
                    self.ranges -= 1;
                    nodes.push(Node::Range(block?));
                }
                "break" | "continue" => {
                    if self.ranges == 0 || !rest.trim().is_empty() {
                        return err(format!("{{{{{word}}}}} outside {{{{range}}}}"));
                    }
                    nodes.push(if word == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                "define" | "template" | "block" => {
                    return err(format!("{{{{{word}}}}} is not supported"))
                }
                _ => nodes.push(Node::Action(parse_pipeline(&action)?)),
            }
        }
        Ok((nodes, None))
    }

    fn block(&mut self, pipeline: &str, keyword: &str) -> Result<Block> {
        if pipeline.trim().is_empty() {
            return err(format!("missing value for {keyword}"));
        }
        let pipeline = parse_pipeline(pipeline)?;
        let max_vars = if keyword == "range" { 2 } else { 1 };
        if pipeline.vars.len() > max_vars || (!pipeline.vars.is_empty() && !pipeline.declare) {
            return err(format!("too many declarations in {keyword}"));
        }
        let (body, end) = self.nodes()?;
        let otherwise = match end.as_deref() {
            Some("end") => Vec::new(),
            Some("else") => {
                let (otherwise, end) = self.nodes()?;
                if end.as_deref() != Some("end") {
                    return err(format!("missing {{{{end}}}} for {{{{{keyword}}}}}"));
                }
                otherwise
            }
            Some(other) if other.starts_with("else ") => {
                // `{{else if P}}` / `{{else with P}}`: a nested block sharing our {{end}}.
                let (word, rest) = split_keyword(&other["else ".len()..]);
                let nested = self.block(rest, word)?;
                vec![match word {
                    "if" => Node::If(nested),
                    "with" => Node::With(nested),
                    _ => return err(format!("unexpected {{{{{other}}}}}")),
                }]
            }
            _ => return err(format!("missing {{{{end}}}} for {{{{{keyword}}}}}")),
        };
        Ok(Block {
            pipeline,
            body,
            otherwise,
        })
    }
}

fn split_keyword(action: &str) -> (&str, &str) {
    let action = action.trim_start();
    match action.find(|c: char| c.is_whitespace()) {
        Some(i) => (&action[..i], &action[i..]),
        None => (action, ""),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    /// `.Field.Sub` right after a closing parenthesis.
    Fields(Vec<String>),
    Literal(Value),
    Ident(String),
    Pipe,
    Open,
    Close,
    Comma,
    /// `:=`
    Declare,
    /// `=`
    Assign,
}

/// `.A.B` starting at `chars[*i]` (which is a `.`), as a path.
fn field_path(chars: &[char], i: &mut usize, text: &str) -> Result<Vec<String>> {
    let mut path = Vec::new();
    while chars.get(*i) == Some(&'.') {
        *i += 1;
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        if start == *i {
            // A lone `.` is the dot itself.
            if !path.is_empty() {
                return err(format!("bad field syntax in {text:?}"));
            }
            break;
        }
        path.push(chars[start..*i].iter().collect());
    }
    Ok(path)
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '|' => {
                tokens.push(Token::Pipe);
                i += 1;
            }
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Declare);
                i += 2;
            }
            '=' => {
                tokens.push(Token::Assign);
                i += 1;
            }
            '.' => {
                let path = field_path(&chars, &mut i, text)?;
                let after_close = tokens.last() == Some(&Token::Close);
                tokens.push(if after_close && !path.is_empty() {
                    Token::Fields(path)
                } else {
                    Token::Dot(path)
                });
            }
            '$' => {
                i += 1;
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let name: String = std::iter::once('$')
                    .chain(chars[start..i].iter().copied())
                    .collect();
                let path = field_path(&chars, &mut i, text)?;
                tokens.push(Token::Var(name, path));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err("unterminated quoted string"),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            s.push(match chars.get(i) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some('0') => '\0',
                                Some(&other) => other,
                                None => return err("unterminated quoted string"),
                            });
                        }
                        Some(&other) => s.push(other),
                    }
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Literal(Value::String(s)));
            }
            '`' => {
                let start = i + 1;
                let len = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| TemplateError("unterminated raw quoted string".into()))?;
                tokens.push(Token::Literal(Value::String(
                    chars[start..start + len].iter().collect(),
                )));
                i = start + len + 1;
            }
            '\'' => {
                // A Go character constant is a number (its code point).
                let (Some(&ch), Some('\'')) = (chars.get(i + 1), chars.get(i + 2)) else {
                    return err("bad character constant");
                };
                tokens.push(Token::Literal(Value::from(u32::from(ch))));
                i += 3;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let number = word
                    .parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| {
                        word.parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                            .map(Value::Number)
                    })
                    .ok_or_else(|| TemplateError(format!("bad number syntax: {word:?}")))?;
                tokens.push(Token::Literal(number));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(match word.as_str() {
                    "true" => Token::Literal(Value::Bool(true)),
                    "false" => Token::Literal(Value::Bool(false)),
                    "nil" => Token::Literal(Value::Null),
                    _ => Token::Ident(word),
                });
            }
            other => return err(format!("unexpected {other:?} in command")),
        }
    }
    Ok(tokens)
}

fn parse_pipeline(text: &str) -> Result<Pipeline> {
    let tokens = tokenize(text)?;
    // A declaration first: `$x :=`, `$x =`, `$k, $v :=`.
    let mut vars = Vec::new();
    let mut declare = true;
    let mut pos = 0;
    let mut j = 0;
    let mut names = Vec::new();
    while let Some(Token::Var(name, path)) = tokens.get(j) {
        if !path.is_empty() || name == "$" {
            break;
        }
        names.push(name.clone());
        match tokens.get(j + 1) {
            Some(Token::Comma) => j += 2,
            Some(Token::Declare) | Some(Token::Assign) => {
                declare = tokens[j + 1] == Token::Declare;
                vars = std::mem::take(&mut names);
                pos = j + 2;
                break;
            }
            _ => break,
        }
    }
    let mut pipeline = pipeline_from(&tokens, &mut pos)?;
    if pos != tokens.len() {
        return err(format!("unexpected {:?} in {text:?}", tokens[pos]));
    }
    pipeline.vars = vars;
    pipeline.declare = declare;
    Ok(pipeline)
}

fn pipeline_from(tokens: &[Token], pos: &mut usize) -> Result<Pipeline> {
    let mut commands = Vec::new();
    let mut operands = Vec::new();
    while let Some(token) = tokens.get(*pos) {
        *pos += 1;
        match token {
            Token::Close => {
                *pos -= 1;
                break;
            }
            Token::Pipe => {
                if operands.is_empty() {
                    return err("missing command before |");
                }
                commands.push(Command(std::mem::take(&mut operands)));
            }
            Token::Open => {
                let inner = pipeline_from(tokens, pos)?;
                if tokens.get(*pos) != Some(&Token::Close) {
                    return err("unclosed left paren");
                }
                *pos += 1;
                let fields = match tokens.get(*pos) {
                    Some(Token::Fields(f)) => {
                        *pos += 1;
                        f.clone()
                    }
                    _ => Vec::new(),
                };
                operands.push(Operand::Sub(inner, fields));
            }
            Token::Dot(path) => operands.push(Operand::Dot(path.clone())),
            Token::Var(name, path) => operands.push(Operand::Var(name.clone(), path.clone())),
            Token::Fields(_) => return err("field access after a non-parenthesised value"),
            Token::Literal(v) => operands.push(Operand::Literal(v.clone())),
            Token::Ident(name) => {
                if !FUNCTIONS.contains(&name.as_str()) {
                    return err(format!("function {name:?} not defined"));
                }
                operands.push(Operand::Function(name.clone()));
            }
            Token::Comma | Token::Declare | Token::Assign => {
                return err("unexpected declaration in a command")
            }
        }
    }
    if operands.is_empty() {
        return err(if commands.is_empty() {
            "missing value for command"
        } else {
            "missing command after |"
        });
    }
    commands.push(Command(operands));
    Ok(Pipeline {
        vars: Vec::new(),
        declare: true,
        commands,
    })
}

const FUNCTIONS: &[&str] = &[
    "json", "index", "slice", "join", "split", "lower", "upper", "title", "pad", "len", "truncate",
    "eq", "ne", "lt", "le", "gt", "ge", "not", "and", "or", "print", "printf", "println",
];

/// How a list of nodes ended: normally, or by `{{break}}`/`{{continue}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next,
    Break,
    Continue,
}

/// What one execution carries: the variables in scope (innermost last), the
/// caller's methods and the output.
struct State<'a, 'o> {
    vars: Vec<(String, Value)>,
    methods: Methods<'a>,
    out: &'o mut String,
}

impl State<'_, '_> {
    fn exec(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow> {
        for node in nodes {
            let flow = match node {
                Node::Text(t) => {
                    self.out.push_str(t);
                    Flow::Next
                }
                Node::Action(p) => {
                    let value = self.pipeline(p, dot)?;
                    // A declaration prints nothing, as in Go.
                    if p.vars.is_empty() {
                        self.out.push_str(&print(&value));
                    }
                    Flow::Next
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
                Node::If(b) | Node::With(b) => {
                    // Variables declared in the condition live until {{end}}.
                    let scope = self.vars.len();
                    let value = self.pipeline(&b.pipeline, dot)?;
                    let flow = match (truthy(&value), matches!(node, Node::With(_))) {
                        (true, true) => self.exec(&b.body, &value),
                        (true, false) => self.exec(&b.body, dot),
                        (false, _) => self.exec(&b.otherwise, dot),
                    };
                    self.vars.truncate(scope);
                    flow?
                }
                Node::Range(b) => self.range(b, dot)?,
            };
            if flow != Flow::Next {
                return Ok(flow);
            }
        }
        Ok(Flow::Next)
    }

    fn range(&mut self, b: &Block, dot: &Value) -> Result<Flow> {
        let scope = self.vars.len();
        let mut inner = b.pipeline.clone();
        inner.vars.clear();
        let items: Vec<(Value, Value)> = match self.pipeline(&inner, dot)? {
            Value::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::from(i), v))
                .collect(),
            // serde_json's maps keep their keys sorted: Go's order for maps.
            Value::Object(o) => o.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            Value::Null => Vec::new(),
            Value::Number(n) => match n.as_u64() {
                // Go 1.22: `range 3` counts 0, 1, 2.
                Some(count) => (0..count)
                    .map(|i| (Value::from(i), Value::from(i)))
                    .collect(),
                None => return err(format!("range can't iterate over {n}")),
            },
            other => return err(format!("range can't iterate over {}", print(&other))),
        };
        let result = if items.is_empty() {
            self.exec(&b.otherwise, dot).map(|_| Flow::Next)
        } else {
            let mut result = Ok(Flow::Next);
            for (key, item) in items {
                self.vars.truncate(scope);
                match b.pipeline.vars.as_slice() {
                    [v] => self.vars.push((v.clone(), item.clone())),
                    [k, v] => {
                        self.vars.push((k.clone(), key));
                        self.vars.push((v.clone(), item.clone()));
                    }
                    _ => {}
                }
                match self.exec(&b.body, &item) {
                    Ok(Flow::Break) => break,
                    Ok(_) => {}
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result
        };
        self.vars.truncate(scope);
        result
    }

    fn variable(&self, name: &str) -> Result<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| TemplateError(format!("undefined variable: {name}")))
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value> {
        let mut piped: Option<Value> = None;
        for Command(operands) in &p.commands {
            let (first, rest) = operands
                .split_first()
                .ok_or_else(|| TemplateError("empty command".into()))?;
            let mut args = rest
                .iter()
                .map(|o| self.operand(o, dot))
                .collect::<Result<Vec<_>>>()?;
            args.extend(piped.take());
            let value = match first {
                Operand::Function(name) => call(name, &args)?,
                Operand::Dot(path) if !args.is_empty() => self.method(dot, path, &args)?,
                Operand::Var(name, path) if !args.is_empty() && !path.is_empty() => {
                    self.method(&self.variable(name)?, path, &args)?
                }
                _ if !args.is_empty() => return err("can't give argument to non-function"),
                other => self.operand(other, dot)?,
            };
            piped = Some(value);
        }
        let value = piped.ok_or_else(|| TemplateError("empty pipeline".into()))?;
        match p.vars.as_slice() {
            [] => {}
            [name] if p.declare => self.vars.push((name.clone(), value.clone())),
            [name] => {
                let slot = self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| TemplateError(format!("undefined variable: {name}")))?;
                slot.1 = value.clone();
            }
            _ => return err("too many declarations in a command"),
        }
        Ok(value)
    }

    /// `.Path.Method arg…`: the caller's method on the value at the path's parent.
    fn method(&self, receiver: &Value, path: &[String], args: &[Value]) -> Result<Value> {
        // Methods belong to the data itself (a `ps` row), not to values inside it.
        let ([name], Value::Object(_)) = (path, receiver) else {
            return err("can't give argument to non-function");
        };
        match (self.methods)(name, args) {
            Some(result) => result,
            None => err(format!("can't give argument to non-function .{name}")),
        }
    }

    fn operand(&mut self, o: &Operand, dot: &Value) -> Result<Value> {
        match o {
            Operand::Dot(path) => self.field(dot, path),
            Operand::Var(name, path) => self.field(&self.variable(name)?, path),
            Operand::Literal(v) => Ok(v.clone()),
            Operand::Function(name) => call(name, &[]),
            Operand::Sub(p, path) => {
                let value = self.pipeline(p, dot)?;
                self.field(&value, path)
            }
        }
    }

    fn field(&self, value: &Value, path: &[String]) -> Result<Value> {
        let mut current = value.clone();
        for (depth, name) in path.iter().enumerate() {
            current = match current {
                Value::Object(mut map) => match map.remove(name) {
                    Some(v) => v,
                    None if name.starts_with(|c: char| c.is_uppercase()) => {
                        // A method of the data without arguments, if the caller has one.
                        match (depth == 0).then(|| (self.methods)(name, &[])).flatten() {
                            Some(result) => result?,
                            None => return err(format!("can't evaluate field {name}")),
                        }
                    }
                    None => Value::String("<no value>".into()),
                },
                Value::Null => return err(format!("nil pointer evaluating .{name}")),
                other => {
                    return err(format!(
                        "can't evaluate field {name} in {}",
                        type_name(&other)
                    ))
                }
            };
        }
        Ok(current)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<()> {
    if args.len() != n {
        return err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn string_arg(name: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => err(format!(
            "{name}: expected a string, got {}",
            type_name(other)
        )),
    }
}

fn int_arg(name: &str, v: &Value) -> Result<i64> {
    v.as_i64()
        .ok_or_else(|| TemplateError(format!("{name}: expected an integer, got {}", print(v))))
}

fn call(name: &str, args: &[Value]) -> Result<Value> {
    match name {
        "json" => {
            arity(name, args, 1)?;
            serde_json::to_string(&args[0])
                .map(Value::String)
                .map_err(|e| TemplateError(format!("json: {e}")))
        }
        "index" => index(args),
        "slice" => slice(args),
        "join" => {
            arity(name, args, 2)?;
            let sep = string_arg(name, &args[1])?;
            match &args[0] {
                Value::Array(items) => Ok(Value::String(
                    items.iter().map(print).collect::<Vec<_>>().join(&sep),
                )),
                Value::Null => Ok(Value::String(String::new())),
                other => Ok(Value::String(print(other))),
            }
        }
        "split" => {
            arity(name, args, 2)?;
            let s = string_arg(name, &args[0])?;
            let sep = string_arg(name, &args[1])?;
            Ok(Value::Array(
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            ))
        }
        "lower" | "upper" | "title" => {
            arity(name, args, 1)?;
            let s = print(&args[0]);
            Ok(Value::String(match name {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                _ => title(&s),
            }))
        }
        "pad" => {
            // Docker's: spaces before and after, nothing for an empty string.
            arity(name, args, 3)?;
            let s = print(&args[0]);
            let before = usize::try_from(int_arg(name, &args[1])?).unwrap_or(0);
            let after = usize::try_from(int_arg(name, &args[2])?).unwrap_or(0);
            Ok(Value::String(if s.is_empty() {
                s
            } else {
                format!("{}{s}{}", " ".repeat(before), " ".repeat(after))
            }))
        }
        "len" => {
            arity(name, args, 1)?;
            let n = match &args[0] {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                Value::Null => 0,
                other => return err(format!("len of {}", type_name(other))),
            };
            Ok(Value::from(n))
        }
        "truncate" => {
            arity(name, args, 2)?;
            let s = print(&args[0]);
            let n = args[1]
                .as_u64()
                .ok_or_else(|| TemplateError("truncate: length must be a number".into()))?;
            Ok(Value::String(s.chars().take(n as usize).collect()))
        }
        "eq" | "ne" => {
            if args.len() < 2 {
                return err(format!("missing argument for {name}"));
            }
            let equal = args[1..].iter().any(|a| same(&args[0], a));
            Ok(Value::Bool(if name == "eq" { equal } else { !equal }))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, args, 2)?;
            let order = compare(&args[0], &args[1]).ok_or_else(|| {
                TemplateError(format!("{name}: incompatible types for comparison"))
            })?;
            Ok(Value::Bool(match name {
                "lt" => order.is_lt(),
                "le" => order.is_le(),
                "gt" => order.is_gt(),
                _ => order.is_ge(),
            }))
        }
        "not" => {
            arity(name, args, 1)?;
            Ok(Value::Bool(!truthy(&args[0])))
        }
        "and" | "or" => {
            if args.is_empty() {
                return err(format!("missing argument for {name}"));
            }
            let pick = if name == "and" {
                args.iter().find(|a| !truthy(a))
            } else {
                args.iter().find(|a| truthy(a))
            };
            Ok(pick.or(args.last()).cloned().unwrap_or(Value::Null))
        }
        "print" | "println" => {
            let mut s = String::new();
            for (i, a) in args.iter().enumerate() {
                // Go's Sprint adds a space between operands when neither is a string.
                let spaced =
                    name == "println" || (i > 0 && !args[i - 1].is_string() && !a.is_string());
                if i > 0 && spaced {
                    s.push(' ');
                }
                s.push_str(&print(a));
            }
            if name == "println" {
                s.push('\n');
            }
            Ok(Value::String(s))
        }
        "printf" => {
            let (format, rest) = args
                .split_first()
                .ok_or_else(|| TemplateError("wrong number of args for printf".into()))?;
            Ok(Value::String(sprintf(&string_arg(name, format)?, rest)))
        }
        other => err(format!("function {other:?} not defined")),
    }
}

fn index(args: &[Value]) -> Result<Value> {
    let (first, keys) = args
        .split_first()
        .ok_or_else(|| TemplateError("index of nothing".into()))?;
    let mut current = first.clone();
    for key in keys {
        current = match (current, key) {
            (Value::Object(mut map), Value::String(k)) => {
                map.remove(k).unwrap_or(Value::String(String::new()))
            }
            (Value::Null, _) => Value::String(String::new()),
            (Value::Array(items), Value::Number(n)) => {
                let i = n
                    .as_u64()
                    .ok_or_else(|| TemplateError(format!("bad index {n}")))?;
                let len = items.len();
                items.into_iter().nth(i as usize).ok_or_else(|| {
                    TemplateError(format!("index out of range: {i} (length {len})"))
                })?
            }
            (other, key) => {
                return err(format!(
                    "can't index {} with {}",
                    type_name(&other),
                    type_name(key)
                ))
            }
        };
    }
    Ok(current)
}

/// `slice x 1 2`: Go's `x[1:2]` on strings (by byte, as Go) and lists.
fn slice(args: &[Value]) -> Result<Value> {
    let (first, bounds) = args
        .split_first()
        .ok_or_else(|| TemplateError("slice of nothing".into()))?;
    if bounds.len() > 2 {
        return err("slice: too many indexes");
    }
    let len = match first {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        other => return err(format!("can't slice {}", type_name(other))),
    };
    let bound = |i: usize, default: usize| -> Result<usize> {
        match bounds.get(i) {
            None => Ok(default),
            Some(v) => usize::try_from(int_arg("slice", v)?)
                .map_err(|_| TemplateError(format!("slice: negative index {}", print(v)))),
        }
    };
    let (from, to) = (bound(0, 0)?, bound(1, len)?);
    if from > to || to > len {
        return err(format!(
            "slice: index out of range [{from}:{to}] with length {len}"
        ));
    }
    Ok(match first {
        Value::String(s) => Value::String(
            s.get(from..to)
                .ok_or_else(|| TemplateError("slice: index inside a UTF-8 character".into()))?
                .to_string(),
        ),
        Value::Array(a) => Value::Array(a[from..to].to_vec()),
        _ => Value::Null,
    })
}

/// Equality as Go's `eq` sees it: numbers by value, the rest structurally.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Order for `lt` and friends: numbers by value, strings by bytes.
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// Go's truth: false, 0, "", nil and empty collections are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value as Go's `fmt.Print` shows it.
pub fn print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(print).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => format!(
            "map[{}]",
            map.iter()
                .map(|(k, v)| format!("{k}:{}", print(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// One `%…` directive of a `printf` format.
#[derive(Debug, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

impl Spec {
    /// `body` padded to the width, left or right, with spaces or zeros.
    fn pad(&self, body: String) -> String {
        let width = self.width.unwrap_or(0);
        let len = body.chars().count();
        if len >= width {
            return body;
        }
        let fill = width - len;
        if self.minus {
            body + &" ".repeat(fill)
        } else if self.zero {
            // Zeros go after the sign.
            let (sign, digits) = match body.strip_prefix(['-', '+']) {
                Some(rest) => (&body[..1], rest.to_string()),
                None => ("", body.clone()),
            };
            format!("{sign}{}{digits}", "0".repeat(fill))
        } else {
            " ".repeat(fill) + &body
        }
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %x %X %o %b %c %f %e
/// %g %t %%`, with flags `- + 0 space`, width and precision; an argument that does
/// not fit the verb prints as Go does, `%!d(string=x)`.
fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        spec.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        out.push_str(&format_one(&spec, verb, arg));
    }
    let extra: Vec<String> = args
        .map(|a| format!("{}={}", go_type(a), print(a)))
        .collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// Go's name for a value's type, for printf's error forms.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn format_one(spec: &Spec, verb: char, arg: &Value) -> String {
    let bad = || format!("%!{verb}({}={})", go_type(arg), print(arg));
    let signed = |s: String, negative: bool| {
        if negative {
            s
        } else if spec.plus {
            format!("+{s}")
        } else if spec.space {
            format!(" {s}")
        } else {
            s
        }
    };
    let body = match verb {
        'v' | 's' => {
            let s = print(arg);
            match (verb, spec.precision) {
                ('s', Some(p)) => s.chars().take(p).collect(),
                _ => s,
            }
        }
        'q' => match arg {
            Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
            _ => return bad(),
        },
        't' => match arg {
            Value::Bool(b) => b.to_string(),
            _ => return bad(),
        },
        'd' | 'x' | 'X' | 'o' | 'b' | 'c' => {
            let Some(n) = arg.as_i64() else {
                // Go's %x also takes strings: hex of the bytes.
                if let (Value::String(s), 'x' | 'X') = (arg, verb) {
                    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
                    return spec.pad(if verb == 'X' { hex.to_uppercase() } else { hex });
                }
                return bad();
            };
            let magnitude = n.unsigned_abs();
            let digits = match verb {
                'd' => magnitude.to_string(),
                'x' => format!("{magnitude:x}"),
                'X' => format!("{magnitude:X}"),
                'o' => format!("{magnitude:o}"),
                'b' => format!("{magnitude:b}"),
                _ => {
                    return spec.pad(
                        u32::try_from(n)
                            .ok()
                            .and_then(char::from_u32)
                            .map_or_else(|| "\u{FFFD}".to_string(), String::from),
                    )
                }
            };
            signed(if n < 0 { format!("-{digits}") } else { digits }, n < 0)
        }
        'f' | 'F' | 'e' | 'g' => {
            let Some(f) = arg.as_f64() else {
                return bad();
            };
            let s = match verb {
                'e' => format!("{:.*e}", spec.precision.unwrap_or(6), f),
                'g' => match spec.precision {
                    Some(p) => go_g(f, p.max(1)),
                    None => Value::from(f).to_string(),
                },
                _ => format!("{:.*}", spec.precision.unwrap_or(6), f),
            };
            signed(s, f.is_sign_negative())
        }
        _ => format!("%!{verb}({}={})", go_type(arg), print(arg)),
    };
    spec.pad(body)
}

/// Go's `%.Ng`: N significant digits, exponent form when the exponent is below -4
/// or at least N, trailing zeros removed.
pub fn go_g(f: f64, precision: usize) -> String {
    if f == 0.0 || !f.is_finite() {
        return f.to_string();
    }
    // Round first: the exponent of the rounded value decides the form (999.5 → 1e+03).
    let sci = format!("{:.*e}", precision - 1, f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= precision as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = usize::try_from(precision as i32 - 1 - exp).unwrap_or(0);
        trim(&format!("{f:.decimals$}"))
    }
}

/// Docker's `--format` conventions: a `table` prefix (returned as true) and the
/// escapes `\t` and `\n` written literally on the command line.
pub fn docker_format(format: &str) -> (bool, String) {
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => (true, rest),
        _ => (false, format),
    };
    let body = if table { body.trim() } else { body };
    (table, body.replace("\\t", "\t").replace("\\n", "\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, data: &Value) -> String {
        Template::parse(template)
            .and_then(|t| t.render(data))
            .unwrap_or_else(|e| panic!("{template}: {e}"))
    }

    fn failure(template: &str, data: &Value) -> String {
        match Template::parse(template).and_then(|t| t.render(data)) {
            Ok(out) => panic!("{template} rendered {out:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn data() -> Value {
        json!({
            "Name": "/web",
            "State": {"Status": "exited", "ExitCode": 3, "Running": false},
            "Args": ["-c", "exit 3"],
            "Config": {"Labels": {"app": "x", "org.k": "v"}, "Entrypoint": null, "Env": ["A=1", "B=2"]},
            "Empty": [],
        })
    }

    #[test]
    fn fields_literals_and_text() {
        let d = data();
        assert_eq!(render("{{.State.ExitCode}}", &d), "3");
        assert_eq!(
            render("name={{.Name}} ({{.State.Status}})", &d),
            "name=/web (exited)"
        );
        assert_eq!(render("{{.State.Running}}", &d), "false");
        assert_eq!(render("{{.Args}}", &d), "[-c exit 3]");
        assert_eq!(render("{{.Config.Labels}}", &d), "map[app:x org.k:v]");
        assert_eq!(render("{{.Config.Entrypoint}}", &d), "<nil>");
        assert_eq!(render("{{\"lit\"}} {{`raw`}} {{42}}", &d), "lit raw 42");
        assert_eq!(render("{{$.Name}}", &d), "/web");
        assert_eq!(render("{{.Config.Labels.app}}", &d), "x");
        assert_eq!(render("{{.Config.Labels.missing}}", &d), "<no value>");
    }

    #[test]
    fn functions_and_pipelines() {
        let d = data();
        assert_eq!(
            render("{{json .State}}", &d),
            r#"{"ExitCode":3,"Running":false,"Status":"exited"}"#
        );
        assert_eq!(render("{{.Args | json}}", &d), r#"["-c","exit 3"]"#);
        assert_eq!(render(r#"{{index .Config.Labels "org.k"}}"#, &d), "v");
        assert_eq!(render(r#"{{index .Config.Labels "nope"}}"#, &d), "");
        assert_eq!(render("{{index .Args 1}}", &d), "exit 3");
        assert_eq!(render(r#"{{join .Config.Env ","}}"#, &d), "A=1,B=2");
        assert_eq!(render("{{upper .State.Status}}", &d), "EXITED");
        assert_eq!(render("{{.State.Status | title}}", &d), "Exited");
        assert_eq!(render("{{len .Args}}", &d), "2");
        assert_eq!(render("{{(index .Config.Env 0)}}", &d), "A=1");
        assert_eq!(render(r#"{{split "a:b" ":"}}"#, &d), "[a b]");
    }

    #[test]
    fn control_structures() {
        let d = data();
        assert_eq!(render("{{range .Args}}<{{.}}>{{end}}", &d), "<-c><exit 3>");
        assert_eq!(render("{{range .Args}}{{.}} {{end}}", &d), "-c exit 3 ");
        assert_eq!(render("{{range .Empty}}x{{else}}none{{end}}", &d), "none");
        assert_eq!(
            render(
                r#"{{if eq .State.Status "exited"}}down{{else}}up{{end}}"#,
                &d
            ),
            "down"
        );
        assert_eq!(
            render(
                r#"{{if .State.Running}}a{{else if eq .State.ExitCode 3}}b{{else}}c{{end}}"#,
                &d
            ),
            "b"
        );
        assert_eq!(render("{{with .State}}{{.Status}}{{end}}", &d), "exited");
        assert_eq!(render("a  {{- .Name -}}  b", &d), "a/webb");
        assert_eq!(render("{{/* note */}}x", &d), "x");
        assert_eq!(render("{{range $.Args}}{{$.Name}}{{end}}", &d), "/web/web");
    }

    #[test]
    fn errors_are_reported() {
        let d = data();
        assert!(failure("{{.Nope}}", &d).contains("can't evaluate field Nope"));
        assert!(failure("{{.State.Status.X}}", &d).contains("can't evaluate field X"));
        assert!(failure("{{frob .Name}}", &d).contains("\"frob\" not defined"));
        assert!(failure("{{.Name", &d).contains("unclosed action"));
        assert!(failure("{{range .Args}}x", &d).contains("missing {{end}}"));
        assert!(failure("{{end}}", &d).contains("unexpected {{end}}"));
        assert!(failure("{{.Name .Name}}", &d).contains("non-function"));
        assert!(failure("{{json}}", &d).contains("wrong number of args"));
    }

    #[test]
    fn variables_and_range_declarations() {
        let d = json!({"Ports": {"80/tcp": [{"HostPort": "8080"}], "53/udp": null}, "L": ["a", "b", "c"]});
        assert_eq!(
            render(
                "{{range $k, $v := .Ports}}{{$k}}={{if $v}}{{(index $v 0).HostPort}}{{end}};{{end}}",
                &d
            ),
            "53/udp=;80/tcp=8080;"
        );
        assert_eq!(
            render("{{range $i, $e := .L}}{{$i}}{{$e}}{{end}}", &d),
            "0a1b2c"
        );
        assert_eq!(render("{{range $e := .L}}{{$e}}{{end}}", &d), "abc");
        assert_eq!(render("{{$x := index .L 1}}<{{$x}}>", &d), "<b>");
        assert_eq!(render("{{$x := 1}}{{$x = 2}}{{$x}}", &d), "2");
        assert_eq!(render("{{with $p := .Ports}}{{len $p}}{{end}}", &d), "2");
        assert_eq!(
            render(
                "{{range .L}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}",
                &d
            ),
            "a"
        );
        assert_eq!(
            render(
                "{{range .L}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}",
                &d
            ),
            "ac"
        );
        assert!(failure("{{$nope}}", &d).contains("undefined variable"));
        assert!(failure("{{range .L}}{{$e := .}}{{end}}{{$e}}", &d).contains("undefined variable"));
        assert!(failure("{{break}}", &d).contains("outside"));
    }

    #[test]
    fn printf_slice_pad_and_comparisons() {
        let d = data();
        assert_eq!(
            render(r#"{{printf "%s-%d" .Name .State.ExitCode}}"#, &d),
            "/web-3"
        );
        assert_eq!(
            render(r#"{{printf "%-6s|%5d|%05d" "ab" 42 -7}}"#, &d),
            "ab    |   42|-0007"
        );
        assert_eq!(
            render(
                r#"{{printf "%q %v %t %x %.2f" "a" .Args true 255 1.005}}"#,
                &d
            ),
            r#""a" [-c exit 3] true ff 1.00"#
        );
        assert_eq!(render(r#"{{printf "%d" "x"}}"#, &d), "%!d(string=x)");
        assert_eq!(render(r#"{{printf "%s"}}"#, &d), "%!s(MISSING)");
        assert_eq!(render(r#"{{slice "abcdef" 1 3}}"#, &d), "bc");
        assert_eq!(render("{{slice .Args 1}}", &d), "[exit 3]");
        assert!(failure("{{slice .Args 3}}", &d).contains("out of range"));
        assert_eq!(
            render(r#"[{{pad "x" 2 1}}][{{pad "" 2 1}}]"#, &d),
            "[  x ][]"
        );
        assert_eq!(
            render("{{lt 1 2}} {{ge .State.ExitCode 4}} {{gt \"b\" \"a\"}}", &d),
            "true false true"
        );
        assert_eq!(go_g(77.6, 3), "77.6");
        assert_eq!(go_g(1.23456, 4), "1.235");
        assert_eq!(go_g(100.0, 3), "100");
        assert_eq!(go_g(999.5, 3), "1e+03");
    }

    #[test]
    fn methods_come_from_the_caller() {
        let d = json!({"Names": "web"});
        let methods = |name: &str, args: &[Value]| match (name, args) {
            ("Label", [Value::String(k)]) => Some(Ok(Value::String(format!("v-{k}")))),
            _ => None,
        };
        let t = Template::parse(r#"{{.Names}} {{.Label "app"}}"#).expect("parse");
        assert_eq!(t.render_with(&d, &methods).expect("render"), "web v-app");
        let t = Template::parse(r#"{{.Names "x"}}"#).expect("parse");
        assert!(t.render_with(&d, &methods).is_err());
        let t = Template::parse(r#"{{.Label "app"}}"#).expect("parse");
        assert!(t.render(&d).is_err());
    }

    #[test]
    fn docker_format_prefix_and_escapes() {
        assert_eq!(
            docker_format(r"table {{.ID}}\t{{.Names}}"),
            (true, "{{.ID}}\t{{.Names}}".to_string())
        );
        assert_eq!(docker_format("{{.ID}}"), (false, "{{.ID}}".to_string()));
        assert_eq!(docker_format("table"), (true, String::new()));
        assert_eq!(docker_format("tables"), (false, "tables".to_string()));
    }
}
