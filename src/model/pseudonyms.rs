//! Pseudonyms of a release under `dataset_names = "pseudonymised"`: a random permutation of the
//! release's datasets onto `site-1..site-n`, drawn from a CSPRNG and sealed to the committee
//! (schema `pseudonyms/1`). Sorted ids, dates or any public order would let anyone rebuild the
//! mapping from the registry; a random one can only be opened by the committee.

use std::collections::{BTreeMap, BTreeSet};

use rand::{CryptoRng, RngCore, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use super::ModelError;
use super::ids::Sha256;

/// What every pseudonym starts with.
pub const PREFIX: &str = "site-";

/// The pseudonym of position `k` (1-based).
pub fn label(k: u32) -> String {
    format!("{PREFIX}{k}")
}

/// The number of an exact pseudonym: `site-<k>`, `k` >= 1 in decimal without leading zeros.
/// Anything else (`site-01`, `site-x`, `Site-1`, `site-1 `) is not a pseudonym.
pub fn parse_label(s: &str) -> Option<u32> {
    let n = s.strip_prefix(PREFIX)?;
    if n.is_empty() || n.len() > 9 || n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The sealed payload: `site-<k>` -> dataset id, plus a 256-bit nonce so the signed plaintext
/// digest cannot be matched against the n! candidate mappings of public dataset ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pseudonyms {
    /// 64 hex digits of fresh randomness.
    pub nonce: String,
    /// Pseudonym -> dataset id; exactly `site-1..site-n`, each id once.
    pub sites: BTreeMap<String, String>,
}

impl Pseudonyms {
    /// A uniformly random assignment of `ids` (deduplicated) to `site-1..site-n`. The bound
    /// on [`CryptoRng`] keeps seeded or weak generators out of real releases.
    pub fn random<R: RngCore + CryptoRng>(
        ids: impl IntoIterator<Item = String>,
        rng: &mut R,
    ) -> Pseudonyms {
        let mut order: Vec<String> = ids
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        order.shuffle(rng);
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        Pseudonyms {
            nonce: hex::encode(nonce),
            sites: order
                .into_iter()
                .enumerate()
                .map(|(i, id)| (label(i as u32 + 1), id))
                .collect(),
        }
    }

    /// Dataset id -> pseudonym number.
    pub fn numbers(&self) -> BTreeMap<&str, u32> {
        self.sites
            .iter()
            .filter_map(|(l, id)| parse_label(l).map(|k| (id.as_str(), k)))
            .collect()
    }

    /// The dataset ids the mapping covers.
    pub fn ids(&self) -> BTreeSet<&str> {
        self.sites.values().map(String::as_str).collect()
    }

    /// The canonical bytes that are sealed (TOML, keys sorted).
    pub fn to_canonical(&self) -> Vec<u8> {
        toml::to_string(self)
            .expect("a map of strings serializes")
            .into_bytes()
    }

    /// Parses and checks a decrypted mapping: a nonce of 64 hex digits, exactly the labels
    /// `site-1..site-n`, each dataset id (64 hex digits) once.
    pub fn from_canonical(file: &str, bytes: &[u8]) -> Result<Pseudonyms, ModelError> {
        let bad = |why: String| ModelError::Parse {
            path: file.to_string(),
            why,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("is not UTF-8".into()))?;
        let p: Pseudonyms = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let hex64 =
            |s: &str| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex64(&p.nonce) {
            return Err(bad("`nonce` must be 64 lower-case hex digits".into()));
        }
        let n = p.sites.len() as u32;
        let mut seen = BTreeSet::new();
        for (l, id) in &p.sites {
            match parse_label(l) {
                Some(k) if k <= n => {}
                _ => {
                    return Err(bad(format!(
                        "`{}` is not one of the pseudonyms site-1..site-{n}",
                        l.escape_default()
                    )));
                }
            }
            if !hex64(id) {
                return Err(bad(format!(
                    "{l} maps to `{}`, not a dataset id",
                    id.escape_default()
                )));
            }
            if !seen.insert(id) {
                return Err(bad(format!("dataset {id} has two pseudonyms")));
            }
        }
        Ok(p)
    }

    /// The plaintext digest the release's manifest signs.
    pub fn digest(&self) -> Sha256 {
        Sha256::of(&self.to_canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{:064x}", i + 1)).collect()
    }

    #[test]
    fn labels_are_exact() {
        assert_eq!(parse_label("site-1"), Some(1));
        assert_eq!(parse_label("site-12"), Some(12));
        for bad in [
            "site-",
            "site-0",
            "site-01",
            "site-1 ",
            "Site-1",
            "site-x",
            "site--1",
            "site-1a",
            "ward-a",
            "site-9999999999",
        ] {
            assert_eq!(parse_label(bad), None, "{bad}");
        }
        assert_eq!(label(3), "site-3");
    }

    #[test]
    fn a_permutation_is_a_bijection_onto_site_1_to_n() {
        let mut rng = StdRng::seed_from_u64(7);
        let p = Pseudonyms::random(ids(5).into_iter().chain(ids(2)), &mut rng);
        assert_eq!(p.sites.len(), 5, "duplicates collapse");
        let labels: BTreeSet<u32> = p.sites.keys().filter_map(|l| parse_label(l)).collect();
        assert_eq!(labels, (1..=5).collect());
        assert_eq!(p.ids().len(), 5);
        let back = Pseudonyms::from_canonical("x", &p.to_canonical()).unwrap();
        assert_eq!(back, p);
        assert_eq!(p.nonce.len(), 64);
    }

    #[test]
    fn permutations_are_not_the_sorted_order_and_cover_every_order() {
        // 3 datasets: every one of the 6 orders shows up, and none dominates (a sorted or
        // date order would give one order every time).
        let mut rng = StdRng::seed_from_u64(42);
        let mut seen: BTreeMap<Vec<String>, u32> = BTreeMap::new();
        for _ in 0..600 {
            let p = Pseudonyms::random(ids(3), &mut rng);
            let order: Vec<String> = (1..=3).map(|k| p.sites[&label(k)].clone()).collect();
            *seen.entry(order).or_default() += 1;
        }
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert!(seen.values().all(|&c| (60..=140).contains(&c)), "{seen:?}");
        // Two draws with the OS generator differ in their nonce.
        let a = Pseudonyms::random(ids(3), &mut rand::rngs::OsRng);
        let b = Pseudonyms::random(ids(3), &mut rand::rngs::OsRng);
        assert_ne!(a.nonce, b.nonce);
    }

    #[test]
    fn malformed_mappings_are_refused() {
        let mut rng = StdRng::seed_from_u64(1);
        let p = Pseudonyms::random(ids(2), &mut rng);
        let mut gap = p.clone();
        let id = gap.sites.remove("site-2").unwrap();
        gap.sites.insert("site-3".into(), id);
        let mut twice = p.clone();
        let first = twice.sites["site-1"].clone();
        twice.sites.insert("site-2".into(), first);
        let mut short = p.clone();
        short.nonce = "00".into();
        for bad in [gap, twice, short] {
            assert!(Pseudonyms::from_canonical("x", &bad.to_canonical()).is_err());
        }
        assert!(Pseudonyms::from_canonical("x", b"nonce = 1\n").is_err());
    }
}
