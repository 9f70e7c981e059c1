//! Reading a node's install directory (`seattle_repy`, SEATTLE.md B.9), bounded: files are
//! read up to a cap, the directory listing stops at a cap, at most [`MAX_VESSELS`] vessels.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

use super::pyliteral::{self, Value};

/// Vessels exported per node, as the `nodemanager` probe.
pub const MAX_VESSELS: usize = 64;
/// Entries of the install directory looked at; a real one has a few per vessel.
pub const MAX_DIR_ENTRIES: usize = 100_000;
/// Largest `vesseldict` read (64 vessels with many user keys stay far below).
pub const VESSELDICT_CAP: u64 = 16 * 1024 * 1024;
pub const NODEMAN_CFG_CAP: u64 = 1024 * 1024;
/// Largest resource file read (a real one is well under 1 KiB).
pub const RESOURCE_FILE_CAP: u64 = 64 * 1024;

/// The number of a vessel name `v[0-9]{1,6}` (the only names used as labels).
pub fn vessel_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('v')?;
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads a whole file of at most `cap` bytes; a longer one is an error, not truncated.
pub fn read_capped(path: &Path, cap: u64) -> anyhow::Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if buf.len() as u64 > cap {
        anyhow::bail!("{} is larger than {cap} bytes", path.display());
    }
    Ok(buf)
}

/// Names (UTF-8 only; Seattle writes no others) of the entries of `dir`.
pub fn list_dir(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_DIR_ENTRIES {
            anyhow::bail!("{} has more than {MAX_DIR_ENTRIES} entries", dir.display());
        }
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// What `vesseldict` says about one vessel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VesselEntry {
    pub name: String,
    /// Prefix of the vessel's status files (`vN.status`).
    pub status_prefix: String,
    /// The `status` the node manager last persisted, if any.
    pub status: Option<String>,
}

/// Parses `vesseldict`: vessels named `v[0-9]{1,6}`, by number, at most [`MAX_VESSELS`].
pub fn parse_vesseldict(text: &[u8]) -> anyhow::Result<Vec<VesselEntry>> {
    let value = pyliteral::parse(text)?;
    let Value::Dict(items) = value else {
        anyhow::bail!("not a dict");
    };
    let mut vessels: Vec<(u32, VesselEntry)> = Vec::new();
    for (key, entry) in &items {
        let Some(name) = key.as_str() else { continue };
        let Some(number) = vessel_number(name) else {
            continue;
        };
        if !matches!(entry, Value::Dict(_)) {
            anyhow::bail!("vessel {name}: not a dict");
        }
        // persist.py writes "vN.status"; anything with a path in it is not trusted.
        let status_prefix = entry
            .get("statusfilename")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty() && !f.contains('/') && !f.contains('-') && *f != "..")
            .map_or_else(|| format!("{name}.status"), str::to_string);
        vessels.push((
            number,
            VesselEntry {
                name: name.to_string(),
                status_prefix,
                status: entry
                    .get("status")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
        ));
    }
    // By number, then name: `v01` and `v1` are different vessels.
    vessels.sort_by(|(a, va), (b, vb)| (a, &va.name).cmp(&(b, &vb.name)));
    vessels.truncate(MAX_VESSELS);
    Ok(vessels.into_iter().map(|(_, v)| v).collect())
}

/// Reads and parses `<dir>/vesseldict`; errors name the file.
pub fn read_vesseldict(dir: &Path) -> anyhow::Result<Vec<VesselEntry>> {
    let path = dir.join("vesseldict");
    let text = read_capped(&path, VESSELDICT_CAP)?;
    parse_vesseldict(&text).with_context(|| format!("{} does not parse", path.display()))
}

/// Checks that `<dir>/nodeman.cfg` is the dict the node manager writes. Only its shape is
/// looked at: it holds the node's private key, and nothing of it is exported.
pub fn check_nodeman_cfg(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("nodeman.cfg");
    let text = read_capped(&path, NODEMAN_CFG_CAP)?;
    match pyliteral::parse(&text) {
        Ok(Value::Dict(_)) => Ok(()),
        Ok(_) => anyhow::bail!("{} is not a dict", path.display()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("{} does not parse", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vessel_names_are_bounded() {
        assert_eq!(vessel_number("v1"), Some(1));
        assert_eq!(vessel_number("v123456"), Some(123456));
        for bad in ["v", "v1234567", "v1a", "w1", "v-1", "v+1", "V1"] {
            assert_eq!(vessel_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn vesseldict_vessels_sorted_bounded_and_safe() {
        let mut text = String::from("{");
        for n in (1..=70).rev() {
            text.push_str(&format!(
                "'v{n}': {{'status': 'Fresh', 'statusfilename': 'v{n}.status'}}, "
            ));
        }
        text.push_str("'extra': {}, 'v9999999': {}, 7: 1, 'v80': {'statusfilename': '../x'}}");
        let v = parse_vesseldict(text.as_bytes()).unwrap();
        assert_eq!(v.len(), MAX_VESSELS);
        assert_eq!(v[0].name, "v1");
        assert_eq!(v[63].name, "v64");
        assert_eq!(v[0].status.as_deref(), Some("Fresh"));
        let v = parse_vesseldict(b"{'v80': {'statusfilename': '../x'}}").unwrap();
        assert_eq!(v[0].status_prefix, "v80.status");
        assert_eq!(v[0].status, None);
        let v = parse_vesseldict(b"{'v1': {}, 'v01': {}}").unwrap();
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["v01", "v1"]);
        assert!(parse_vesseldict(b"['v1']").is_err());
        assert!(parse_vesseldict(b"{'v1': 'Started'}").is_err());
    }
}
