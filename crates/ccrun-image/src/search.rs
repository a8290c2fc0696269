//! Finding images in a registry (`ccrun search`): Docker Hub through its search API
//! (`index.docker.io/v1/search`), any other registry through its catalog
//! (`/v2/_catalog`, paginated) filtered by the term, as Podman does; and the tags of
//! one repository (`/v2/NAME/tags/list`).

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::reference::{Reference, DOCKER_HUB};
use crate::registry::{ClientOptions, RegistryClient};

/// The most a registry's answer may weigh (one page of a catalog or tag list).
const PAGE_LIMIT: u64 = 8 << 20;
/// Entries asked for per page.
const PAGE_SIZE: usize = 1000;
/// Pages followed at most: a registry cannot keep us paging forever.
const MAX_PAGES: usize = 100;

/// One repository found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The name to pull it by: `nginx`, `bitnami/nginx` on Docker Hub, `HOST/NAME`
    /// elsewhere.
    pub name: String,
    /// Its description (Docker Hub only).
    pub description: String,
    /// Its stars (Docker Hub only).
    pub stars: u64,
    /// Whether it is a Docker official image.
    pub official: bool,
    /// Whether it is an automated build (Docker Hub's old flag).
    pub automated: bool,
}

/// Where and what to search: `TERM` searches Docker Hub, `HOST[:PORT]/TERM` that
/// registry (a first component with a dot or a colon, or `localhost`, is a host, as in
/// image references).
pub fn split_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            let registry = match host {
                "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
                other => other,
            };
            (registry.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), term.to_string()),
    }
}

/// Searches `registry` for repositories whose name contains `term` (any case), at
/// most `limit` of them.
pub fn search(
    registry: &str,
    term: &str,
    limit: usize,
    options: &ClientOptions,
) -> Result<Vec<Found>> {
    if registry == DOCKER_HUB {
        search_hub(term, limit, options)
    } else {
        search_catalog(registry, term, limit, options)
    }
}

fn search_hub(term: &str, limit: usize, options: &ClientOptions) -> Result<Vec<Found>> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        results: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        name: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        star_count: u64,
        #[serde(default)]
        is_official: bool,
        #[serde(default)]
        is_automated: bool,
    }
    let client = RegistryClient::connect_hub_search(options)?;
    let path = format!(
        "/v1/search?q={}&n={}",
        crate::registry::urlencode(term),
        limit.clamp(1, 100)
    );
    let (body, _) = client.get_small(&path, PAGE_LIMIT, "searching Docker Hub")?;
    let page: Page = serde_json::from_slice(&body).map_err(|e| Error::Registry {
        registry: client.host().to_string(),
        message: format!("search results are not the expected JSON: {e}"),
    })?;
    Ok(page
        .results
        .into_iter()
        .take(limit)
        .map(|e| Found {
            name: e.name,
            description: e.description.unwrap_or_default(),
            stars: e.star_count,
            official: e.is_official,
            automated: e.is_automated,
        })
        .collect())
}

fn search_catalog(
    registry: &str,
    term: &str,
    limit: usize,
    options: &ClientOptions,
) -> Result<Vec<Found>> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        repositories: Vec<String>,
    }
    let client = RegistryClient::connect_catalog(registry, options)?;
    let wanted = term.to_lowercase();
    let mut found = Vec::new();
    let pages = paginate(&client, &format!("/v2/_catalog?n={PAGE_SIZE}"), "catalog")?;
    for body in pages {
        let page: Page = serde_json::from_slice(&body).map_err(|e| Error::Registry {
            registry: registry.to_string(),
            message: format!("the catalog is not the expected JSON: {e}"),
        })?;
        for repository in page.repositories {
            if found.len() == limit {
                return Ok(found);
            }
            if repository.to_lowercase().contains(&wanted) {
                found.push(Found {
                    name: format!("{registry}/{repository}"),
                    description: String::new(),
                    stars: 0,
                    official: false,
                    automated: false,
                });
            }
        }
    }
    Ok(found)
}

/// The tags of `reference`'s repository, in the registry's order.
pub fn list_tags(reference: &Reference, options: &ClientOptions) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let client = RegistryClient::connect(reference, options)?;
    let path = format!("/v2/{}/tags/list?n={PAGE_SIZE}", reference.repository());
    let mut tags = Vec::new();
    for body in paginate(&client, &path, "tag list")? {
        let page: Page = serde_json::from_slice(&body).map_err(|e| Error::Registry {
            registry: client.host().to_string(),
            message: format!("the tag list is not the expected JSON: {e}"),
        })?;
        tags.extend(page.tags.unwrap_or_default());
    }
    Ok(tags)
}

/// The bodies of `first` and the pages its `Link: <…>; rel="next"` headers lead to.
fn paginate(client: &RegistryClient, first: &str, what: &str) -> Result<Vec<Vec<u8>>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(path) = next.take() {
        if pages.len() == MAX_PAGES {
            break;
        }
        let (body, link) = client.get_small(&path, PAGE_LIMIT, what)?;
        pages.push(body);
        next = link.as_deref().and_then(next_page);
    }
    Ok(pages)
}

/// The path of a `Link` header's `rel="next"` target, if it stays on the registry
/// (a path, not another origin).
fn next_page(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.replace(' ', "").contains("rel=\"next\"") {
            return None;
        }
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        target.starts_with("/v2/").then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry() {
        assert_eq!(
            split_term("nginx"),
            (DOCKER_HUB.to_string(), "nginx".to_string())
        );
        assert_eq!(
            split_term("bitnami/nginx"),
            (DOCKER_HUB.to_string(), "bitnami/nginx".to_string())
        );
        assert_eq!(
            split_term("127.0.0.1:5000/bus"),
            ("127.0.0.1:5000".to_string(), "bus".to_string())
        );
        assert_eq!(
            split_term("localhost/x"),
            ("localhost".to_string(), "x".to_string())
        );
        assert_eq!(
            split_term("docker.io/redis"),
            (DOCKER_HUB.to_string(), "redis".to_string())
        );
    }

    #[test]
    fn next_pages_stay_on_the_registry() {
        assert_eq!(
            next_page(r#"</v2/_catalog?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(
            next_page(r#"<https://evil.example/v2/x>; rel="next""#),
            None
        );
        assert_eq!(next_page(r#"</v2/_catalog?last=b>; rel="prev""#), None);
    }
}
