//! Slugs: DNS labels, generated when the caller gives none.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::error::Error;

/// `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`
pub fn validate(slug: &str) -> Result<(), Error> {
    let bytes = slug.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "slug",
            "slug must be a DNS label: 1-63 lowercase letters, digits or hyphens, \
             starting and ending with a letter or digit",
        ))
    }
}

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "calm", "dusty", "eager", "fuzzy", "gentle", "hidden", "icy", "jolly",
    "keen", "lively", "mellow", "nimble", "olive", "quiet", "rapid", "silent", "tidy", "vivid",
];
const NOUNS: &[&str] = &[
    "badger", "burrow", "cedar", "delta", "ferret", "grove", "harbor", "meadow", "otter", "pebble",
    "rabbit", "river", "stoat", "thicket", "valley", "willow",
];

/// A readable random slug such as `quiet-otter-4k2z`.
pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    let suffix: String = (0..4)
        .map(|_| {
            let n = rng.gen_range(0..36u8);
            char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
        })
        .collect();
    format!(
        "{}-{}-{suffix}",
        ADJECTIVES.choose(&mut rng).unwrap_or(&"warm"),
        NOUNS.choose(&mut rng).unwrap_or(&"den")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_slugs_are_valid_labels() {
        for _ in 0..200 {
            assert!(validate(&generate()).is_ok());
        }
    }

    #[test]
    fn slugs_follow_the_dns_label_rule() {
        for ok in ["a", "my-app", "0", "a1-b2", &"a".repeat(63)] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "My-App", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
