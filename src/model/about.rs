//! A dataset's description and location: for the committee only. Dataset records are public
//! and a location (a hospital, a ward) would undo pseudonymised releases, so both travel
//! sealed to the committee and the owner (`v<N>.about.age`, schema `dataset-about/1`).

use serde::{Deserialize, Serialize};

use super::ModelError;

/// The payload schema.
pub const SCHEMA_ABOUT: &str = "dataset-about/1";

/// Longest description or location accepted (characters).
pub const MAX_ABOUT_CHARS: usize = 4096;

/// What the data owner tells the committee about a dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct About {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl About {
    pub fn is_empty(&self) -> bool {
        self.description.is_none() && self.location.is_none()
    }

    /// The bytes sealed: a TOML table with `description` and/or `location`.
    pub fn to_canonical(&self) -> Vec<u8> {
        toml::to_string(self).expect("serializes").into_bytes()
    }

    /// Parses a decrypted payload strictly (no other keys, bounded, at least one field).
    pub fn from_canonical(file: &str, bytes: &[u8]) -> Result<About, ModelError> {
        let bad = |why: String| ModelError::Parse {
            path: file.to_string(),
            why,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("is not UTF-8".into()))?;
        let a: About = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        a.check().map_err(bad)?;
        Ok(a)
    }

    /// What a submission may carry.
    pub fn check(&self) -> Result<(), String> {
        if self.is_empty() {
            return Err("neither a description nor a location".into());
        }
        for (what, v) in [
            ("description", &self.description),
            ("location", &self.location),
        ] {
            if let Some(v) = v {
                if v.trim().is_empty() {
                    return Err(format!("the {what} is empty"));
                }
                if v.chars().count() > MAX_ABOUT_CHARS {
                    return Err(format!(
                        "the {what} is longer than {MAX_ABOUT_CHARS} characters"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_should() {
        let a = About {
            description: Some("chest x-rays, 2019-2021".into()),
            location: Some("Ward 4, St. Elsewhere".into()),
        };
        assert_eq!(About::from_canonical("f", &a.to_canonical()).unwrap(), a);
        assert!(About::from_canonical("f", b"").is_err());
        assert!(About::from_canonical("f", b"location = \" \"\n").is_err());
        assert!(About::from_canonical("f", b"other = \"x\"\n").is_err());
    }
}
