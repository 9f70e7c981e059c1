//! Resource files as returned by `GetVesselResources` / `GetOffcutResources` (SEATTLE.md B.6;
//! grammar of `repy_v2/resourcemanipulation.py`).

use std::collections::{BTreeMap, BTreeSet};

/// Parsed `resource` lines. `call` lines (repy V1 legacy) are counted and otherwise ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// Quantities and fungible items (`cpu`, `memory`, `events`, …) by name.
    pub quantities: BTreeMap<String, f64>,
    pub messports: BTreeSet<u16>,
    pub connports: BTreeSet<u16>,
    /// Number of `call` lines seen.
    pub calls: usize,
}

/// Why a resource file did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourcesError {
    #[error("not UTF-8")]
    NotText,
    #[error("line {line}: expected `resource <name> <value>` or `call …`")]
    BadLine { line: usize },
    #[error("line {line}: value is not a number")]
    BadValue { line: usize },
    #[error("line {line}: resource given twice")]
    Duplicate { line: usize },
}

impl ResourcesError {
    pub fn reason(&self) -> &'static str {
        "bad_reply"
    }
}

impl Resources {
    /// Parse a resource file (the reply text before the status word).
    pub fn parse(text: &[u8]) -> Result<Resources, ResourcesError> {
        let text = std::str::from_utf8(text).map_err(|_| ResourcesError::NotText)?;
        let mut out = Resources::default();
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or_default();
            let mut tokens = content.split_whitespace();
            match tokens.next() {
                None => continue,
                Some("call") => out.calls += 1,
                Some("resource") => {
                    let (Some(name), Some(value), None) =
                        (tokens.next(), tokens.next(), tokens.next())
                    else {
                        return Err(ResourcesError::BadLine { line });
                    };
                    match name {
                        "messport" | "connport" => {
                            let port = value
                                .parse::<u16>()
                                .map_err(|_| ResourcesError::BadValue { line })?;
                            let set = if name == "messport" {
                                &mut out.messports
                            } else {
                                &mut out.connports
                            };
                            if !set.insert(port) {
                                return Err(ResourcesError::Duplicate { line });
                            }
                        }
                        _ => {
                            let v = value
                                .parse::<f64>()
                                .ok()
                                .filter(|v| v.is_finite())
                                .ok_or(ResourcesError::BadValue { line })?;
                            if out.quantities.insert(name.to_string(), v).is_some() {
                                return Err(ResourcesError::Duplicate { line });
                            }
                        }
                    }
                }
                Some(_) => return Err(ResourcesError::BadLine { line }),
            }
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.quantities.get(name).copied()
    }

    /// Ports present as both `connport` and `messport` (the clearinghouse's "usable ports").
    pub fn usable_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.messports.intersection(&self.connports).copied()
    }

    /// A resource file with one `resource` line per entry (quantities, then messports, then
    /// connports), ending in a newline like the shipped files.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.quantities {
            out.push_str(&format!("resource {name} {value}\n"));
        }
        for p in &self.messports {
            out.push_str(&format!("resource messport {p}\n"));
        }
        for p in &self.connports {
            out.push_str(&format!("resource connport {p}\n"));
        }
        out
    }
}
