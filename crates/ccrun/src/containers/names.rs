//! Generated container names (`adjective_scientist`, as Docker makes them) and the
//! rule for user-chosen ones.

use anyhow::{bail, Result};

const ADJECTIVES: &[&str] = &[
    "admiring",
    "agitated",
    "amazing",
    "bold",
    "brave",
    "busy",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "elastic",
    "epic",
    "focused",
    "friendly",
    "gallant",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "modest",
    "nifty",
    "nostalgic",
    "peaceful",
    "pensive",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
];

const SURNAMES: &[&str] = &[
    "albattani",
    "babbage",
    "bardeen",
    "bell",
    "bohr",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "fermat",
    "feynman",
    "galileo",
    "goldberg",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "mccarthy",
    "meitner",
    "newton",
    "noether",
    "pasteur",
    "ritchie",
    "shannon",
    "sinoussi",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wescoff",
    "wilson",
    "wozniak",
    "yalow",
];

/// A random `adjective_surname` name, with a digit suffix after the first attempt
/// (`retry` > 0) to escape collisions, as Docker does.
pub fn generate(random: u64, retry: u32) -> String {
    let a = ADJECTIVES[(random % ADJECTIVES.len() as u64) as usize];
    let s = SURNAMES[((random >> 16) % SURNAMES.len() as u64) as usize];
    if retry == 0 {
        format!("{a}_{s}")
    } else {
        format!("{a}_{s}{}", (random >> 32) % 10)
    }
}

/// Checks a user-chosen name against Docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        bail!("invalid container name {name:?}: 2 to 128 characters of [a-zA-Z0-9][a-zA-Z0-9_.-]");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid() {
        for r in [0u64, 1, 0xdead_beef, u64::MAX] {
            for retry in 0..3 {
                let n = generate(r, retry);
                validate(&n).expect("valid");
                assert!(n.contains('_'));
            }
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "a", "-x", "a/b", "a b", "ünï"] {
            assert!(validate(bad).is_err(), "{bad}");
        }
        validate("web-1.prod_x").expect("valid");
    }
}
