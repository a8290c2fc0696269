//! `ccrun search [OPTIONS] TERM`: repositories in a registry whose name holds TERM
//! (Docker Hub's search API, or another registry's catalog, see
//! [`ccrun_image::search`]), or with `--list-tags` the tags of one repository.

use std::io::Write;

use anyhow::{bail, Context, Result};
use ccrun_image::reference::Reference;
use ccrun_image::registry::ClientOptions;
use ccrun_image::search::{self, Found};

use crate::format::{string_row, Listing};

/// Flags of `search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Filter the results: stars=N, is-official=true|false, is-automated=true|false
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Output format: "table", "json" or a Go template such as '{{.Name}}'
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Show at most this many results
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Do not truncate the descriptions
    #[arg(long)]
    pub no_trunc: bool,
    /// List the tags of the repository TERM names instead
    #[arg(long)]
    pub list_tags: bool,
    #[command(flatten)]
    pub insecure: super::image::InsecureRegistries,
    /// What to search for: TERM (Docker Hub) or HOST[:PORT]/TERM
    #[arg(value_name = "TERM")]
    pub term: String,
}

/// `--filter` of `search`.
#[derive(Debug, Default)]
struct Filters {
    min_stars: u64,
    official: Option<bool>,
    automated: Option<bool>,
}

impl Filters {
    fn parse(items: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for item in items {
            let bool_of = |v: &str| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => bail!("invalid filter {item:?}: expected true or false"),
            };
            match item.split_once('=') {
                Some(("stars", n)) => {
                    f.min_stars = n
                        .parse()
                        .with_context(|| format!("invalid filter {item:?}: stars is a number"))?
                }
                Some(("is-official", v)) => f.official = Some(bool_of(v)?),
                Some(("is-automated", v)) => f.automated = Some(bool_of(v)?),
                _ => bail!(
                    "invalid filter {item:?} (search takes stars=N, is-official=BOOL, is-automated=BOOL)"
                ),
            }
        }
        Ok(f)
    }

    fn keeps(&self, r: &Found) -> bool {
        r.stars >= self.min_stars
            && self.official.is_none_or(|o| o == r.official)
            && self.automated.is_none_or(|a| a == r.automated)
    }
}

/// Template fields of a result and their column headers (Docker's).
const FIELDS: &[(&str, &str)] = &[
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
    ("IsAutomated", "AUTOMATED"),
];

/// Fields of `--list-tags` rows.
const TAG_FIELDS: &[(&str, &str)] = &[("Name", "NAME"), ("Tag", "TAG")];

/// Docker truncates descriptions in the table to this many characters.
const DESCRIPTION_WIDTH: usize = 45;

/// A flag as Docker's search shows it, to templates too: `[OK]` or nothing.
fn ok_mark(set: bool) -> &'static str {
    if set {
        "[OK]"
    } else {
        ""
    }
}

/// Runs `search`.
pub fn search(args: SearchArgs) -> Result<i32> {
    let filters = Filters::parse(&args.filter)?;
    let options = ClientOptions {
        insecure_registries: crate::config::insecure_registries(&args.insecure.registries),
        credentials: None,
        mirrors: Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    if args.list_tags {
        let reference = Reference::parse(&args.term)
            .with_context(|| format!("--list-tags needs a repository, not {:?}", args.term))?;
        let options = ClientOptions {
            credentials: ccrun_image::auth::stored_credentials(reference.registry())?,
            ..options
        };
        let tags = search::list_tags(&reference, &options)
            .with_context(|| format!("listing the tags of {}", reference.name()))?;
        let rows = tags
            .into_iter()
            .take(args.limit as usize)
            .map(|tag| string_row([("Name", reference.name().to_string()), ("Tag", tag)]))
            .collect();
        Listing {
            default_table: "table {{.Name}}\t{{.Tag}}",
            headers: TAG_FIELDS,
            rows,
        }
        .print(&mut out, &args.format)?;
        return Ok(0);
    }
    let (registry, term) = search::split_term(&args.term);
    // A registry's catalog may need a login (`registry:catalog:*`).
    let options = ClientOptions {
        credentials: ccrun_image::auth::stored_credentials(&registry)?,
        ..options
    };
    let found = search::search(&registry, &term, args.limit as usize, &options)
        .with_context(|| format!("searching {registry} for {term:?}"))?;
    let rows = found
        .iter()
        .filter(|r| filters.keeps(r))
        .map(|r| {
            let description = if args.no_trunc || r.description.chars().count() <= DESCRIPTION_WIDTH
            {
                r.description.clone()
            } else {
                let cut: String = r.description.chars().take(DESCRIPTION_WIDTH - 3).collect();
                format!("{cut}...")
            };
            serde_json::json!({
                "Name": r.name,
                "Description": description,
                "StarCount": r.stars,
                "IsOfficial": ok_mark(r.official),
                "IsAutomated": ok_mark(r.automated),
            })
        })
        .collect();
    Listing {
        default_table:
            "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t{{.IsAutomated}}",
        headers: FIELDS,
        rows,
    }
    .print(&mut out, &args.format)?;
    out.flush()?;
    Ok(0)
}
