//! The `GetVessels` text (SEATTLE.md B.5) and what it says about free, acquired and accessible
//! vessels (D.4, D.5).

use std::fmt;

use super::codec::{Status, encode_reply};

/// A vessel's status line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VesselStatus {
    Fresh,
    Started,
    Stopped,
    Terminated,
    ThreadErr,
    Stale,
    /// Anything else, kept verbatim (bounded by the reply cap; do not use as a label).
    Unknown(String),
}

impl VesselStatus {
    pub fn parse(s: &str) -> VesselStatus {
        match s {
            "Fresh" => VesselStatus::Fresh,
            "Started" => VesselStatus::Started,
            "Stopped" => VesselStatus::Stopped,
            "Terminated" => VesselStatus::Terminated,
            "ThreadErr" => VesselStatus::ThreadErr,
            "Stale" => VesselStatus::Stale,
            other => VesselStatus::Unknown(other.to_string()),
        }
    }

    /// The wire text.
    pub fn as_str(&self) -> &str {
        match self {
            VesselStatus::Unknown(s) => s,
            known => known.label(),
        }
    }

    /// Bounded label: the six known statuses, or `unknown`.
    pub fn label(&self) -> &'static str {
        match self {
            VesselStatus::Fresh => "Fresh",
            VesselStatus::Started => "Started",
            VesselStatus::Stopped => "Stopped",
            VesselStatus::Terminated => "Terminated",
            VesselStatus::ThreadErr => "ThreadErr",
            VesselStatus::Stale => "Stale",
            VesselStatus::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for VesselStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One vessel block. Keys are kept as the key strings the node sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vessel {
    pub name: String,
    pub status: VesselStatus,
    pub advertise: bool,
    pub owner_key: String,
    pub owner_info: String,
    pub user_keys: Vec<String>,
}

/// A whole `GetVessels` answer text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetVessels {
    pub version: String,
    /// The node's IP (never a port).
    pub nodename: String,
    /// The node key string.
    pub nodekey: String,
    /// In the node's (arbitrary) order.
    pub vessels: Vec<Vessel>,
}

/// Why a `GetVessels` text did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetVesselsError {
    #[error("not UTF-8")]
    NotText,
    #[error("line {line}: unknown line")]
    UnknownLine { line: usize },
    #[error("line {line}: vessel field before any Name line")]
    FieldOutsideVessel { line: usize },
    #[error("line {line}: field repeated")]
    Duplicate { line: usize },
    #[error("line {line}: Advertise is neither True nor False")]
    BadAdvertise { line: usize },
    #[error("vessel block lacks {field}")]
    MissingField { field: &'static str },
    #[error("header lacks {field}")]
    MissingHeader { field: &'static str },
}

impl GetVesselsError {
    pub fn reason(&self) -> &'static str {
        "bad_reply"
    }
}

#[derive(Default)]
struct Partial {
    name: String,
    status: Option<VesselStatus>,
    advertise: Option<bool>,
    owner_key: Option<String>,
    owner_info: Option<String>,
    user_keys: Vec<String>,
}

impl Partial {
    fn finish(self) -> Result<Vessel, GetVesselsError> {
        Ok(Vessel {
            name: self.name,
            status: self
                .status
                .ok_or(GetVesselsError::MissingField { field: "Status" })?,
            advertise: self
                .advertise
                .ok_or(GetVesselsError::MissingField { field: "Advertise" })?,
            owner_key: self
                .owner_key
                .ok_or(GetVesselsError::MissingField { field: "OwnerKey" })?,
            // Old node managers may omit it; empty is what "no info" looks like anyway.
            owner_info: self.owner_info.unwrap_or_default(),
            user_keys: self.user_keys,
        })
    }
}

/// `"Key: value"`; also accepts `"Key:"` with nothing after it (an empty value whose trailing
/// space was lost, e.g. by an editor), since the stock parser's intent is a prefix match.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.strip_prefix(':')?;
    if rest.is_empty() {
        return Some("");
    }
    rest.strip_prefix(' ')
}

fn set<T>(slot: &mut Option<T>, value: T, line: usize) -> Result<(), GetVesselsError> {
    if slot.is_some() {
        return Err(GetVesselsError::Duplicate { line });
    }
    *slot = Some(value);
    Ok(())
}

impl GetVessels {
    /// Parse the reply text (the part before the status word).
    pub fn parse(text: &[u8]) -> Result<GetVessels, GetVesselsError> {
        let text = std::str::from_utf8(text).map_err(|_| GetVesselsError::NotText)?;
        let (mut version, mut nodename, mut nodekey) = (None, None, None);
        let mut vessels = Vec::new();
        let mut current: Option<Partial> = None;
        for (i, line) in text.split('\n').enumerate() {
            let line_no = i + 1;
            if line.is_empty() {
                continue;
            }
            if let Some(v) = field(line, "Version") {
                set(&mut version, v.to_string(), line_no)?;
            } else if let Some(v) = field(line, "Nodename") {
                set(&mut nodename, v.to_string(), line_no)?;
            } else if let Some(v) = field(line, "Nodekey") {
                set(&mut nodekey, v.to_string(), line_no)?;
            } else if let Some(v) = field(line, "Name") {
                if let Some(done) = current.take() {
                    vessels.push(done.finish()?);
                }
                current = Some(Partial {
                    name: v.to_string(),
                    ..Partial::default()
                });
            } else {
                let vessel = current
                    .as_mut()
                    .ok_or(GetVesselsError::FieldOutsideVessel { line: line_no })?;
                if let Some(v) = field(line, "Status") {
                    set(&mut vessel.status, VesselStatus::parse(v), line_no)?;
                } else if let Some(v) = field(line, "Advertise") {
                    let b = match v {
                        "True" => true,
                        "False" => false,
                        _ => return Err(GetVesselsError::BadAdvertise { line: line_no }),
                    };
                    set(&mut vessel.advertise, b, line_no)?;
                } else if let Some(v) = field(line, "OwnerKey") {
                    set(&mut vessel.owner_key, v.to_string(), line_no)?;
                } else if let Some(v) = field(line, "OwnerInfo") {
                    set(&mut vessel.owner_info, v.to_string(), line_no)?;
                } else if let Some(v) = field(line, "UserKey") {
                    vessel.user_keys.push(v.to_string());
                } else {
                    return Err(GetVesselsError::UnknownLine { line: line_no });
                }
            }
        }
        if let Some(done) = current.take() {
            vessels.push(done.finish()?);
        }
        Ok(GetVessels {
            version: version.ok_or(GetVesselsError::MissingHeader { field: "Version" })?,
            nodename: nodename.ok_or(GetVesselsError::MissingHeader { field: "Nodename" })?,
            nodekey: nodekey.ok_or(GetVesselsError::MissingHeader { field: "Nodekey" })?,
            vessels,
        })
    }

    /// The reply text exactly as `nmAPI.getvessels` writes it (ends with `\n`).
    pub fn encode_text(&self) -> String {
        let mut out = String::with_capacity(256 + self.vessels.len() * 1024);
        out.push_str(&format!(
            "Version: {}\nNodename: {}\nNodekey: {}\n",
            self.version, self.nodename, self.nodekey
        ));
        for v in &self.vessels {
            out.push_str(&format!(
                "Name: {}\nStatus: {}\nAdvertise: {}\nOwnerKey: {}\nOwnerInfo: {}\n",
                v.name,
                v.status,
                if v.advertise { "True" } else { "False" },
                v.owner_key,
                v.owner_info
            ));
            for k in &v.user_keys {
                out.push_str(&format!("UserKey: {k}\n"));
            }
        }
        out
    }

    /// The whole reply payload (`<text>\nSuccess`).
    pub fn encode_reply(&self) -> Vec<u8> {
        encode_reply(self.encode_text().as_bytes(), Status::Success)
    }

    pub fn vessel(&self, name: &str) -> Option<&Vessel> {
        self.vessels.iter().find(|v| v.name == name)
    }

    /// Vessel allocation on a clearinghouse-managed node (D.4), given the clearinghouse state
    /// key the node should be in (e.g. `twopercent`). `None` if no vessel has that state key
    /// as its single user key (node not in that state).
    pub fn allocation(&self, state_key: &str) -> Option<Allocation<'_>> {
        let extra = self
            .vessels
            .iter()
            .find(|v| matches!(v.user_keys.as_slice(), [only] if same_key(only, state_key)))?;
        let mut free = Vec::new();
        let mut acquired = Vec::new();
        for v in &self.vessels {
            if std::ptr::eq(v, extra) || !same_key(&v.owner_key, &extra.owner_key) {
                continue;
            }
            if v.user_keys.is_empty() {
                free.push(v);
            } else {
                acquired.push(v);
            }
        }
        Some(Allocation {
            extra,
            free,
            acquired,
        })
    }

    /// Vessels a key may use: it is the owner or one of the users (D.5,
    /// `nmclient_listaccessiblevessels`).
    pub fn accessible_by<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Vessel> + 'a {
        self.vessels.iter().filter(move |v| {
            same_key(&v.owner_key, key) || v.user_keys.iter().any(|u| same_key(u, key))
        })
    }
}

/// Free vs acquired vessels of a clearinghouse-managed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation<'a> {
    /// The vessel whose single user key is the state key.
    pub extra: &'a Vessel,
    /// Same owner as the extra vessel, no user key.
    pub free: Vec<&'a Vessel>,
    /// Same owner as the extra vessel, at least one user key.
    pub acquired: Vec<&'a Vessel>,
}

/// Key strings are equal when their whitespace-separated numbers are.
pub fn same_key(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GetVessels {
        let v = |name: &str, owner: &str, users: &[&str]| Vessel {
            name: name.into(),
            status: VesselStatus::Fresh,
            advertise: true,
            owner_key: owner.into(),
            owner_info: String::new(),
            user_keys: users.iter().map(|u| u.to_string()).collect(),
        };
        GetVessels {
            version: "0.2-alpha-20140714-1434".into(),
            nodename: "10.0.0.1".into(),
            nodekey: "65537 3233".into(),
            vessels: vec![
                v("v1", "1 11", &["7 77"]),
                v("v2", "2 22", &[]),
                v("v3", "1 11", &[]),
                v("v4", "1 11", &["9 99"]),
                v("v5", "1 11", &[]),
            ],
        }
    }

    #[test]
    fn allocation_follows_the_extra_vessel() {
        let gv = sample();
        let a = gv.allocation("7  77").unwrap();
        assert_eq!(a.extra.name, "v1");
        let names = |vs: &[&Vessel]| vs.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a.free), ["v3", "v5"]);
        assert_eq!(names(&a.acquired), ["v4"]);
        assert!(gv.allocation("5 55").is_none());
        let mine: Vec<_> = gv.accessible_by("9 99").map(|v| v.name.as_str()).collect();
        assert_eq!(mine, ["v4"]);
    }

    #[test]
    fn parse_rejects_strange_lines() {
        let head = "Version: x\nNodename: 1.2.3.4\nNodekey: 1 2\n";
        assert!(
            GetVessels::parse(head.as_bytes())
                .unwrap()
                .vessels
                .is_empty()
        );
        for bad in [
            "Nodename: 1.2.3.4\nNodekey: 1 2\n",
            &format!("{head}Status: Fresh\n"),
            &format!("{head}Name: v1\nStatus: Fresh\nAdvertise: Yes\nOwnerKey: 1 2\n"),
            &format!("{head}Name: v1\nStatus: Fresh\nAdvertise: True\n"),
            &format!("{head}Name: v1\nBogus: 1\n"),
            &format!("{head}Name: v1\nStatus: Fresh\nStatus: Fresh\n"),
        ] {
            assert!(GetVessels::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
