//! Dockerfile instructions applied to an image config, for `commit --change` and
//! `import --change`: `CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`, `USER`,
//! `VOLUME`, `WORKDIR` and `STOPSIGNAL`, with the Dockerfile's syntax (JSON or shell
//! form, `KEY=VALUE` pairs with quotes and escapes, `$VAR`/`${VAR}` from the
//! config's `Env` where the Dockerfile expands them).
//!
//! The config is changed as JSON (`config.Env`, `config.Cmd`, …), so whatever else
//! it holds (a `Healthcheck`, `OnBuild`) stays as it was.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// The instructions a change may use.
pub const SUPPORTED: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

fn bad(change: &str, message: impl std::fmt::Display) -> Error {
    Error::InvalidContent {
        what: format!("change {change:?}"),
        message: message.to_string(),
    }
}

/// Applies `changes` in order to the image config `config` (the whole config
/// document; its `config` object is created if missing).
pub fn apply(config: &mut Value, changes: &[String]) -> Result<()> {
    if !config.get("config").is_some_and(Value::is_object) {
        config["config"] = json!({});
    }
    // Whether a CMD came in these changes: an ENTRYPOINT resets the image's CMD
    // unless one was given too (the Dockerfile's rule).
    let mut cmd_set = false;
    for change in changes {
        let Some(run) = config.get_mut("config").and_then(Value::as_object_mut) else {
            return Err(bad(change, "the config's config is not an object"));
        };
        apply_one(run, change, &mut cmd_set)?;
    }
    Ok(())
}

fn apply_one(run: &mut Map<String, Value>, change: &str, cmd_set: &mut bool) -> Result<()> {
    let trimmed = change.trim();
    let (word, rest) = trimmed
        .split_once(char::is_whitespace)
        .map_or((trimmed, ""), |(w, r)| (w, r.trim()));
    let instruction = word.to_ascii_uppercase();
    let env = env_of(run);
    match instruction.as_str() {
        "CMD" | "ENTRYPOINT" => {
            let argv = command(rest).map_err(|m| bad(change, m))?;
            if instruction == "CMD" {
                run.insert("Cmd".into(), json!(argv));
                *cmd_set = true;
            } else {
                run.insert("Entrypoint".into(), json!(argv));
                if !*cmd_set {
                    run.insert("Cmd".into(), Value::Null);
                }
            }
        }
        "ENV" | "LABEL" => {
            let pairs = pairs(rest, instruction == "ENV", &env).map_err(|m| bad(change, m))?;
            if instruction == "ENV" {
                let mut list: Vec<String> = env_list(run);
                for (k, v) in pairs {
                    let entry = format!("{k}={v}");
                    match list
                        .iter_mut()
                        .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
                    {
                        Some(e) => *e = entry,
                        None => list.push(entry),
                    }
                }
                run.insert("Env".into(), json!(list));
            } else {
                with_object(run, "Labels", |labels| {
                    for (k, v) in pairs {
                        labels.insert(k, json!(v));
                    }
                });
            }
        }
        "EXPOSE" => {
            let ports = words(rest, &env).map_err(|m| bad(change, m))?;
            if ports.is_empty() {
                return Err(bad(change, "EXPOSE needs a port"));
            }
            let mut keys = Vec::new();
            for p in ports {
                let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                let proto = proto.to_ascii_lowercase();
                let valid_range = port
                    .split_once('-')
                    .map_or(vec![port], |(a, b)| vec![a, b])
                    .iter()
                    .all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
                if !valid_range || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                    return Err(bad(change, format!("invalid port {p:?}")));
                }
                keys.push(format!("{port}/{proto}"));
            }
            with_object(run, "ExposedPorts", |exposed| {
                for k in keys {
                    exposed.insert(k, json!({}));
                }
            });
        }
        "VOLUME" => {
            let paths = if rest.starts_with('[') {
                serde_json::from_str::<Vec<String>>(rest)
                    .map_err(|e| bad(change, format!("not a JSON array of strings: {e}")))?
            } else {
                words(rest, &env).map_err(|m| bad(change, m))?
            };
            if paths.is_empty() || paths.iter().any(String::is_empty) {
                return Err(bad(change, "VOLUME needs a path"));
            }
            with_object(run, "Volumes", |volumes| {
                for p in paths {
                    volumes.insert(p, json!({}));
                }
            });
        }
        "USER" | "WORKDIR" | "STOPSIGNAL" => {
            let value = expand(rest, &env).map_err(|m| bad(change, m))?;
            let value = unquote(value.trim());
            if value.is_empty() {
                return Err(bad(change, format!("{instruction} needs a value")));
            }
            let (key, value) = match instruction.as_str() {
                "USER" => ("User", value),
                "STOPSIGNAL" => ("StopSignal", value),
                _ => {
                    // A relative WORKDIR goes on from the current one.
                    let current = run
                        .get("WorkingDir")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .unwrap_or("/");
                    let joined = if value.starts_with('/') {
                        value
                    } else {
                        format!("{}/{value}", current.trim_end_matches('/'))
                    };
                    ("WorkingDir", joined)
                }
            };
            run.insert(key.into(), json!(value));
        }
        "" => return Err(bad(change, "empty change")),
        other => {
            return Err(bad(
                change,
                format!(
                    "{other} cannot be applied by a change; these can: {}",
                    SUPPORTED.join(", ")
                ),
            ))
        }
    }
    Ok(())
}

fn env_list(run: &Map<String, Value>) -> Vec<String> {
    run.get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn env_of(run: &Map<String, Value>) -> Vec<(String, String)> {
    env_list(run)
        .into_iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e, String::new()),
        })
        .collect()
}

/// Changes the object at `key` of `run` (made one if it is missing or null).
fn with_object(run: &mut Map<String, Value>, key: &str, f: impl FnOnce(&mut Map<String, Value>)) {
    let mut object = match run.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    f(&mut object);
    run.insert(key.to_string(), Value::Object(object));
}

/// `CMD`/`ENTRYPOINT`: a JSON array (exec form) or a command for `/bin/sh -c`.
fn command(rest: &str) -> std::result::Result<Vec<String>, String> {
    if rest.starts_with('[') {
        if let Ok(argv) = serde_json::from_str::<Vec<String>>(rest) {
            return Ok(argv);
        }
        // Like Docker: what does not parse as JSON is a shell command.
    }
    if rest.is_empty() {
        return Err("needs a command".into());
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

/// `ENV`/`LABEL` arguments: `K=V …` pairs, or (`ENV` only, the old form) `K V`.
fn pairs(
    rest: &str,
    old_form: bool,
    env: &[(String, String)],
) -> std::result::Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if old_form && !first.contains('=') {
        let value = rest[first.len()..].trim();
        if first.is_empty() || value.is_empty() {
            return Err("ENV needs KEY=VALUE (or KEY VALUE)".into());
        }
        return Ok(vec![(first.to_string(), expand(value, env)?)]);
    }
    let mut out = Vec::new();
    for w in words(rest, env)? {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("{w:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            return Err(format!("{w:?}: empty key"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    if out.is_empty() {
        return Err("needs KEY=VALUE".into());
    }
    Ok(out)
}

/// Splits on unquoted whitespace, removing quotes and backslash escapes and
/// expanding variables outside single quotes, as the Dockerfile's shell-like words.
fn words(s: &str, env: &[(String, String)]) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            '\'' => {
                any = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                any = true;
                let mut quoted = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$')) => {
                                // Escaped: no expansion.
                                quoted.push('\\');
                                quoted.push(c);
                            }
                            Some(c) => {
                                quoted.push('\\');
                                quoted.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => quoted.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
                cur.push_str(&expand(&quoted, env)?);
            }
            '\\' => {
                any = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '$' => {
                any = true;
                let mut var = String::from("$");
                if chars.peek() == Some(&'{') {
                    for c in chars.by_ref() {
                        var.push(c);
                        if c == '}' {
                            break;
                        }
                    }
                } else {
                    while let Some(&c) = chars.peek() {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            var.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                cur.push_str(&expand(&var, env)?);
            }
            c => {
                any = true;
                cur.push(c);
            }
        }
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}` from `env`
/// (unset variables are empty); `\$` is a literal dollar and `\\` a backslash.
fn expand(s: &str, env: &[(String, String)]) -> std::result::Result<String, String> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('$' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => return Err(format!("unterminated ${{{inner}")),
                    }
                }
                let (name, op) = match inner.find(':') {
                    Some(i) => (&inner[..i], Some(&inner[i..])),
                    None => (inner.as_str(), None),
                };
                let value = lookup(name).filter(|v| !v.is_empty());
                match op {
                    None => out.push_str(lookup(name).unwrap_or("")),
                    Some(op) if op.starts_with(":-") => {
                        out.push_str(value.unwrap_or(&op[2..]));
                    }
                    Some(op) if op.starts_with(":+") => {
                        if value.is_some() {
                            out.push_str(&op[2..]);
                        }
                    }
                    Some(op) => return Err(format!("unsupported modifier {op:?} in ${{{inner}}}")),
                }
            }
            '$' if chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') =>
            {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(lookup(&name).unwrap_or(""));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A value in matching quotes loses them.
fn unquote(s: &str) -> String {
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(changes: &[&str]) -> Value {
        let mut config = json!({
            "architecture": "amd64",
            "config": {"Env": ["PATH=/bin", "HOME=/root"], "Cmd": ["sh"], "WorkingDir": "/srv",
                       "Healthcheck": {"Test": ["CMD", "true"]}},
        });
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply(&mut config, &changes).expect("apply");
        config
    }

    #[test]
    fn dockerfile_forms() {
        let c = changed(&[
            r#"CMD ["nginx", "-g", "daemon off;"]"#,
            "ENV A=1 B=\"two words\" C=$HOME/x",
            "ENV PATH /usr/bin:$PATH",
            "LABEL version=1.0 \"name\"='my app'",
            "EXPOSE 80 53/udp 8000-8001",
            "VOLUME /data /logs",
            r#"VOLUME ["/cache"]"#,
            "WORKDIR sub",
            "USER app:app",
            "STOPSIGNAL SIGQUIT",
        ]);
        let run = &c["config"];
        assert_eq!(run["Cmd"], json!(["nginx", "-g", "daemon off;"]));
        assert_eq!(
            run["Env"],
            json!([
                "PATH=/usr/bin:/bin",
                "HOME=/root",
                "A=1",
                "B=two words",
                "C=/root/x"
            ])
        );
        assert_eq!(run["Labels"], json!({"version": "1.0", "name": "my app"}));
        assert_eq!(
            run["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000-8001/tcp": {}})
        );
        assert_eq!(
            run["Volumes"],
            json!({"/data": {}, "/logs": {}, "/cache": {}})
        );
        assert_eq!(run["WorkingDir"], "/srv/sub");
        assert_eq!(run["User"], "app:app");
        assert_eq!(run["StopSignal"], "SIGQUIT");
        assert_eq!(run["Healthcheck"], json!({"Test": ["CMD", "true"]}), "kept");
    }

    #[test]
    fn entrypoint_resets_cmd_unless_given() {
        let c = changed(&["ENTRYPOINT /entry.sh"]);
        assert_eq!(
            c["config"]["Entrypoint"],
            json!(["/bin/sh", "-c", "/entry.sh"])
        );
        assert!(c["config"]["Cmd"].is_null());
        let c = changed(&[r#"CMD ["x"]"#, r#"ENTRYPOINT ["/e"]"#]);
        assert_eq!(c["config"]["Cmd"], json!(["x"]));
    }

    #[test]
    fn refusals() {
        let mut config = json!({});
        for bad in [
            "RUN echo hi",
            "EXPOSE http",
            "ENV",
            "LABEL =x",
            "WORKDIR",
            "FROM x",
            " ",
        ] {
            let err = apply(&mut config, &[bad.to_string()]).expect_err(bad);
            assert!(err.to_string().contains("change"), "{err}");
        }
        let err = apply(&mut config, &["COPY a b".into()]).expect_err("copy");
        assert!(err.to_string().contains("CMD, ENTRYPOINT"), "{err}");
    }
}
