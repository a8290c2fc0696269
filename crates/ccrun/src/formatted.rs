//! `--format` for listing commands (`stats`, `image history`, `events`, `info`,
//! `version`): `json`, a Go template, or `table TEMPLATE` with column headers, on top
//! of [`crate::template`].

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::format::print_table;
use crate::template::{docker_format, Template};

/// A parsed `--format` value.
pub enum Format {
    /// One JSON object per line.
    Json,
    /// A Go template per row; with `table`, rows are aligned under a header row
    /// rendered from the column names.
    Template {
        /// `table TEMPLATE`.
        table: bool,
        /// The parsed template.
        template: Template,
    },
}

impl Format {
    /// Parses `--format`: `json`, `table TEMPLATE` or a template.
    pub fn parse(format: &str) -> Result<Format> {
        if format == "json" {
            return Ok(Format::Json);
        }
        let (table, body) = docker_format(format);
        let template = Template::parse(&body).context("parsing --format")?;
        Ok(Format::Template { table, template })
    }

    /// Renders one row (for streams such as `events`, without a header).
    pub fn line(&self, json: &Value, fields: &Value) -> Result<String> {
        match self {
            Format::Json => Ok(json.to_string()),
            Format::Template { template, .. } => template
                .render(fields)
                .context("executing the --format template"),
        }
    }

    /// Prints `rows`, each as (its JSON, its template fields), under `headers` (the
    /// column name of each field) when this is a table.
    pub fn print(
        &self,
        out: &mut impl Write,
        headers: &[(&str, &str)],
        rows: &[(Value, Value)],
    ) -> Result<()> {
        if let Format::Template { table: true, .. } = self {
            let header: serde_json::Map<String, Value> = headers
                .iter()
                .map(|(field, name)| (field.to_string(), Value::String(name.to_string())))
                .collect();
            let mut lines = vec![self.line(&Value::Null, &header.into())?];
            for (json, fields) in rows {
                lines.push(self.line(json, fields)?);
            }
            let cells: Vec<Vec<String>> = lines
                .iter()
                .map(|line| line.split('\t').map(str::to_string).collect())
                .collect();
            print_table(out, &cells)?;
            return Ok(());
        }
        for (json, fields) in rows {
            writeln!(out, "{}", self.line(json, fields)?)?;
        }
        Ok(())
    }
}
