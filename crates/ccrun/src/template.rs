//! The subset of Go's `text/template` that Docker's `--format` flags are used with,
//! evaluated over JSON values.
//!
//! Supported: literal text; `{{.}}`, `{{.Field.Sub}}`, `{{$.Field}}`; string, number
//! and boolean literals; pipelines (`{{.Config | json}}`) and parenthesised
//! sub-pipelines; `{{if}}`, `{{with}}` and `{{range}}` with `{{else}}` and `{{end}}`;
//! `{{- ` and ` -}}` whitespace trimming; comments; and the functions `json`, `index`,
//! `join`, `split`, `lower`, `upper`, `title`, `len`, `truncate`, `eq`, `ne`, `not`,
//! `and`, `or`, `print`, `println`.
//!
//! Values print as Go prints them: arrays as `[a b]`, objects as `map[k:v]`, null as
//! `<nil>`. A missing field whose name starts with an upper-case letter is an error
//! (Go's "can't evaluate field"); a missing lower-case key (a map key such as a label)
//! prints `<no value>`, as Go does for maps.

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
}

/// `{{if P}}…{{else}}…{{end}}` and its relatives.
#[derive(Debug, Clone)]
struct Block {
    pipeline: Pipeline,
    body: Vec<Node>,
    otherwise: Vec<Node>,
}

#[derive(Debug, Clone)]
struct Pipeline(Vec<Command>);

#[derive(Debug, Clone)]
struct Command(Vec<Operand>);

#[derive(Debug, Clone)]
enum Operand {
    /// `.Field.Sub` (empty path: `.`).
    Dot(Vec<String>),
    /// `$.Field.Sub` (empty path: `$`).
    Root(Vec<String>),
    Literal(Value),
    Function(String),
    /// `(pipeline).Field.Sub`.
    Sub(Pipeline, Vec<String>),
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Template> {
        let items = split_actions(text)?;
        let mut parser = Parser { items, pos: 0 };
        let (nodes, end) = parser.nodes()?;
        match end {
            None => Ok(Template { nodes }),
            Some(word) => err(format!("unexpected {{{{{word}}}}}")),
        }
    }

    /// Executes the template with `data` as `.` and `$`.
    pub fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        exec(&self.nodes, data, data, &mut out)?;
        Ok(out)
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
                "range" => nodes.push(Node::Range(self.block(rest, "range")?)),
                "define" | "template" | "block" | "break" | "continue" => {
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
    Root(Vec<String>),
    /// `.Field.Sub` right after a closing parenthesis.
    Fields(Vec<String>),
    Literal(Value),
    Ident(String),
    Pipe,
    Open,
    Close,
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
            '.' | '$' => {
                let root = c == '$';
                if root {
                    i += 1;
                }
                let mut path = Vec::new();
                while chars.get(i) == Some(&'.') {
                    i += 1;
                    let start = i;
                    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                    if start == i {
                        // A lone `.` (or `$.`?) is the dot itself.
                        if !path.is_empty() || root {
                            return err(format!("bad field syntax in {text:?}"));
                        }
                        break;
                    }
                    path.push(chars[start..i].iter().collect());
                }
                let after_close = tokens.last() == Some(&Token::Close) && !root;
                tokens.push(match (root, after_close && !path.is_empty()) {
                    (true, _) => Token::Root(path),
                    (false, true) => Token::Fields(path),
                    (false, false) => Token::Dot(path),
                });
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
    let mut pos = 0;
    let pipeline = pipeline_from(&tokens, &mut pos)?;
    if pos != tokens.len() {
        return err(format!("unexpected {:?} in {text:?}", tokens[pos]));
    }
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
            Token::Root(path) => operands.push(Operand::Root(path.clone())),
            Token::Fields(_) => return err("field access after a non-parenthesised value"),
            Token::Literal(v) => operands.push(Operand::Literal(v.clone())),
            Token::Ident(name) => {
                if !FUNCTIONS.contains(&name.as_str()) {
                    return err(format!("function {name:?} not defined"));
                }
                operands.push(Operand::Function(name.clone()));
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
    Ok(Pipeline(commands))
}

const FUNCTIONS: &[&str] = &[
    "json", "index", "join", "split", "lower", "upper", "title", "len", "truncate", "eq", "ne",
    "not", "and", "or", "print", "println",
];

fn exec(nodes: &[Node], dot: &Value, root: &Value, out: &mut String) -> Result<()> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&print(&eval_pipeline(p, dot, root)?)),
            Node::If(b) => {
                if truthy(&eval_pipeline(&b.pipeline, dot, root)?) {
                    exec(&b.body, dot, root, out)?;
                } else {
                    exec(&b.otherwise, dot, root, out)?;
                }
            }
            Node::With(b) => {
                let value = eval_pipeline(&b.pipeline, dot, root)?;
                if truthy(&value) {
                    exec(&b.body, &value, root, out)?;
                } else {
                    exec(&b.otherwise, dot, root, out)?;
                }
            }
            Node::Range(b) => {
                let items: Vec<Value> = match eval_pipeline(&b.pipeline, dot, root)? {
                    Value::Array(a) => a,
                    Value::Object(o) => o.into_iter().map(|(_, v)| v).collect(),
                    Value::Null => Vec::new(),
                    other => return err(format!("range can't iterate over {}", print(&other))),
                };
                if items.is_empty() {
                    exec(&b.otherwise, dot, root, out)?;
                }
                for item in &items {
                    exec(&b.body, item, root, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, dot: &Value, root: &Value) -> Result<Value> {
    let mut piped: Option<Value> = None;
    for Command(operands) in &p.0 {
        let (first, rest) = operands
            .split_first()
            .ok_or_else(|| TemplateError("empty command".into()))?;
        let value = if let Operand::Function(name) = first {
            let mut args = rest
                .iter()
                .map(|o| operand(o, dot, root))
                .collect::<Result<Vec<_>>>()?;
            args.extend(piped.take());
            call(name, &args)?
        } else {
            if !rest.is_empty() || piped.is_some() {
                return err("can't give argument to non-function");
            }
            operand(first, dot, root)?
        };
        piped = Some(value);
    }
    piped.ok_or_else(|| TemplateError("empty pipeline".into()))
}

fn operand(o: &Operand, dot: &Value, root: &Value) -> Result<Value> {
    match o {
        Operand::Dot(path) => field(dot, path),
        Operand::Root(path) => field(root, path),
        Operand::Literal(v) => Ok(v.clone()),
        Operand::Function(name) => call(name, &[]),
        Operand::Sub(p, path) => field(&eval_pipeline(p, dot, root)?, path),
    }
}

fn field(value: &Value, path: &[String]) -> Result<Value> {
    let mut current = value.clone();
    for name in path {
        current = match current {
            Value::Object(mut map) => match map.remove(name) {
                Some(v) => v,
                None if name.starts_with(|c: char| c.is_uppercase()) => {
                    return err(format!("can't evaluate field {name}"))
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

fn call(name: &str, args: &[Value]) -> Result<Value> {
    match name {
        "json" => {
            arity(name, args, 1)?;
            serde_json::to_string(&args[0])
                .map(Value::String)
                .map_err(|e| TemplateError(format!("json: {e}")))
        }
        "index" => {
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
        other => err(format!("function {other:?} not defined")),
    }
}

/// Equality as Go's `eq` sees it: numbers by value, the rest structurally.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
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
