//! The files Docker writes for every container and bind-mounts over the image's:
//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`.

use std::path::Path;

use anyhow::{Context, Result};
use oci_spec::runtime::{Mount, MountBuilder};

/// Nameservers used when the host only has loopback ones the container cannot reach.
const FALLBACK_NAMESERVERS: &[&str] = &["8.8.8.8", "8.8.4.4"];

/// `/etc/hosts` for a container with its own network namespace: the loopback
/// entries plus `entries` (address, names).
pub fn hosts(entries: &[(String, String)]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (addr, names) in entries {
        out.push_str(&format!("{addr}\t{names}\n"));
    }
    out
}

/// Replaces the contents of `path` with `text` without replacing the file: a bind mount
/// of it keeps showing the same inode. A reader (a resolver in the container) never
/// sees it empty or cut short: the new text, padded with blank lines to the old
/// length, is written in one `pwrite`, and only then is the file cut to size.
pub fn rewrite_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let old_len = file.metadata()?.len();
    let mut bytes = text.as_bytes().to_vec();
    let new_len = bytes.len() as u64;
    if new_len < old_len {
        bytes.resize(usize::try_from(old_len).unwrap_or(bytes.len()), b'\n');
    }
    file.write_all_at(&bytes, 0)?;
    file.set_len(new_len)
}

/// The container's `/etc/resolv.conf` from the host's: verbatim when it shares the
/// host's network, else without loopback nameservers (unreachable from another
/// network namespace), falling back to public resolvers when none is left.
pub fn resolv_conf(host: &str, host_network: bool) -> String {
    if host_network {
        return host.to_string();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        for s in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {s}\n"));
        }
    }
    out
}

/// `resolv` with `--dns`, `--dns-search` and `--dns-option` each replacing the lines of
/// their kind, as Docker does (`--dns-search .` drops the search line).
pub fn with_dns_flags(
    resolv: &str,
    dns: &[String],
    search: &[String],
    options: &[String],
) -> String {
    let replaced = |key: &str| match key {
        "nameserver" => !dns.is_empty(),
        "search" | "domain" => !search.is_empty(),
        "options" => !options.is_empty(),
        _ => false,
    };
    let mut out: String = resolv
        .lines()
        .filter(|l| !replaced(l.split_whitespace().next().unwrap_or("")))
        .map(|l| format!("{l}\n"))
        .collect();
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
    }
    let search: Vec<&str> = search
        .iter()
        .map(String::as_str)
        .filter(|s| *s != ".")
        .collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// Network facts the files depend on.
#[derive(Debug, Clone)]
pub struct EtcFiles<'a> {
    /// The container's hostname.
    pub hostname: &'a str,
    /// Whether it shares the host's network namespace.
    pub host_network: bool,
    /// Extra `/etc/hosts` entries (address, names).
    pub hosts: Vec<(String, String)>,
    /// `--dns` servers, replacing the host's.
    pub dns: Vec<String>,
    /// `--dns-search` domains, replacing the host's (`.` alone: none).
    pub dns_search: Vec<String>,
    /// `--dns-option`s, replacing the host's.
    pub dns_options: Vec<String>,
    /// Host uid and gid of the container's root, which owns the files.
    pub owner: (u32, u32),
}

/// Writes the three files into `dir` and returns the bind mounts that put them in place.
pub fn write(dir: &Path, files: &EtcFiles<'_>) -> Result<Vec<Mount>> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let hosts_text = if files.host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts(&files.hosts))
    } else {
        // No address of its own yet (a bridge network rewrites this once attached):
        // the hostname resolves to loopback.
        let mut entries = vec![("127.0.1.1".to_string(), files.hostname.to_string())];
        entries.extend(files.hosts.iter().cloned());
        hosts(&entries)
    };
    let contents = [
        ("hostname", format!("{}\n", files.hostname)),
        ("hosts", hosts_text),
        (
            "resolv.conf",
            with_dns_flags(
                &resolv_conf(&host_resolv, files.host_network),
                &files.dns,
                &files.dns_search,
                &files.dns_options,
            ),
        ),
    ];
    let mut mounts = Vec::new();
    for (name, text) in contents {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        std::os::unix::fs::chown(&path, Some(files.owner.0), Some(files.owner.1))
            .with_context(|| format!("chown {}", path.display()))?;
        mounts.push(
            MountBuilder::default()
                .destination(format!("/etc/{name}"))
                .typ("bind")
                .source(&path)
                .options(vec!["rbind".to_string(), "rprivate".to_string()])
                .build()?,
        );
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_are_replaced_off_host_network() {
        let host = "search lan\nnameserver 127.0.0.53\noptions edns0\n";
        assert_eq!(resolv_conf(host, true), host);
        let own = resolv_conf(host, false);
        assert!(!own.contains("127.0.0.53"));
        assert!(own.contains("search lan") && own.contains("nameserver 8.8.8.8"));
        let real = "nameserver 10.0.0.1\n";
        assert_eq!(resolv_conf(real, false), real);
    }

    #[test]
    fn rewrite_in_place_keeps_the_inode_and_fits_the_length() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "a long first version\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        rewrite_in_place(&path, "short\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "short\n");
        rewrite_in_place(&path, "a longer second version\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "a longer second version\n"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
    }

    #[test]
    fn dns_flags_replace_their_lines() {
        let host = "search lan\nnameserver 10.0.0.1\noptions edns0\n";
        assert_eq!(with_dns_flags(host, &[], &[], &[]), host);
        let got = with_dns_flags(
            host,
            &["1.1.1.1".into()],
            &["a.test".into(), "b.test".into()],
            &["ndots:2".into()],
        );
        assert_eq!(
            got,
            "nameserver 1.1.1.1\nsearch a.test b.test\noptions ndots:2\n"
        );
        let none = with_dns_flags(host, &[], &[".".into()], &[]);
        assert!(!none.contains("search") && none.contains("nameserver 10.0.0.1"));
    }

    #[test]
    fn hosts_lists_loopback_and_entries() {
        let h = hosts(&[("10.88.0.2".into(), "web".into())]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.88.0.2\tweb\n"));
    }
}
