//! The installer `vesselinfo` file (SEATTLE.md G, L.12): `Percent`/`Owner`/`User` lines joined
//! by `\n` with no trailing newline. The Custom Installer Builder writes the user vessels
//! (80 %) and appends a 20 % vessel owned by the reserved "v2" key; the installer turns the
//! vessels into `v1, v2, …` in file order.

use crate::keys::PublicKey;

/// Largest file we parse; a real one with a dozen vessels and 4096-bit keys is ~30 KB.
pub const MAX_VESSELINFO_LEN: usize = 1024 * 1024;

/// The CIB's reserved vessel share (`RESERVED_PERCENTAGE`).
pub const RESERVED_PERCENT: u32 = 20;

/// One vessel: its share of the donated resources, owner and users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VesselSpec {
    pub percent: u32,
    pub owner: PublicKey,
    pub users: Vec<PublicKey>,
}

/// A whole vesselinfo file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VesselInfo {
    pub vessels: Vec<VesselSpec>,
}

/// Why a vesselinfo is malformed or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VesselInfoError {
    #[error("vesselinfo larger than {MAX_VESSELINFO_LEN} bytes")]
    TooLarge,
    #[error("not UTF-8")]
    NotText,
    #[error("line {line}: expected `Percent <int>`, `Owner <key>` or `User <key>`")]
    BadLine { line: usize },
    #[error("line {line}: Owner or User before any Percent line")]
    OutsideVessel { line: usize },
    #[error("line {line}: invalid key")]
    BadKey { line: usize },
    #[error("line {line}: second Owner for one vessel")]
    TwoOwners { line: usize },
    #[error("vessel {index} has no Owner")]
    NoOwner { index: usize },
    #[error("no vessels")]
    Empty,
    #[error("vessel {index}: percent {percent} is not a positive multiple of 10")]
    BadPercent { index: usize, percent: u32 },
    #[error("vessels total {total}% instead of {expected}%")]
    BadTotal { total: u32, expected: u32 },
    #[error("last vessel is not the {RESERVED_PERCENT}% vessel owned by the reserved key")]
    NoReservedVessel,
}

impl VesselInfoError {
    pub fn reason(&self) -> &'static str {
        match self {
            VesselInfoError::TooLarge => "too_large",
            VesselInfoError::NotText
            | VesselInfoError::BadLine { .. }
            | VesselInfoError::OutsideVessel { .. }
            | VesselInfoError::BadKey { .. }
            | VesselInfoError::TwoOwners { .. }
            | VesselInfoError::NoOwner { .. } => "malformed",
            _ => "invalid",
        }
    }
}

struct Partial {
    percent: u32,
    owner: Option<PublicKey>,
    users: Vec<PublicKey>,
}

impl Partial {
    fn finish(self, index: usize) -> Result<VesselSpec, VesselInfoError> {
        Ok(VesselSpec {
            percent: self.percent,
            owner: self.owner.ok_or(VesselInfoError::NoOwner { index })?,
            users: self.users,
        })
    }
}

impl VesselInfo {
    /// Parse the file. Blank lines (such as a trailing newline) are ignored; no rules about
    /// percentages are applied here (see [`VesselInfo::validate_installer`]).
    pub fn parse(input: &[u8]) -> Result<VesselInfo, VesselInfoError> {
        if input.len() > MAX_VESSELINFO_LEN {
            return Err(VesselInfoError::TooLarge);
        }
        let text = std::str::from_utf8(input).map_err(|_| VesselInfoError::NotText)?;
        let mut vessels = Vec::new();
        let mut current: Option<Partial> = None;
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let (kind, rest) = trimmed
                .split_once(char::is_whitespace)
                .ok_or(VesselInfoError::BadLine { line })?;
            let key = || PublicKey::parse(rest).map_err(|_| VesselInfoError::BadKey { line });
            match kind {
                "Percent" => {
                    let percent = rest
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| VesselInfoError::BadLine { line })?;
                    if let Some(done) = current.take() {
                        vessels.push(done.finish(vessels.len())?);
                    }
                    current = Some(Partial {
                        percent,
                        owner: None,
                        users: Vec::new(),
                    });
                }
                "Owner" => {
                    let v = current
                        .as_mut()
                        .ok_or(VesselInfoError::OutsideVessel { line })?;
                    if v.owner.is_some() {
                        return Err(VesselInfoError::TwoOwners { line });
                    }
                    v.owner = Some(key()?);
                }
                "User" => {
                    let v = current
                        .as_mut()
                        .ok_or(VesselInfoError::OutsideVessel { line })?;
                    v.users.push(key()?);
                }
                _ => return Err(VesselInfoError::BadLine { line }),
            }
        }
        if let Some(done) = current.take() {
            vessels.push(done.finish(vessels.len())?);
        }
        Ok(VesselInfo { vessels })
    }

    /// The file as the CIB writes it (no trailing newline).
    pub fn encode(&self) -> String {
        let mut lines = Vec::new();
        for v in &self.vessels {
            lines.push(format!("Percent {}", v.percent));
            lines.push(format!("Owner {}", v.owner.to_key_string()));
            for u in &v.users {
                lines.push(format!("User {}", u.to_key_string()));
            }
        }
        lines.join("\n")
    }

    /// The installer's rules (`create_installer_state.py`): at least one vessel, every
    /// percent a positive multiple of 10, total 100.
    pub fn validate_installer(&self) -> Result<(), VesselInfoError> {
        if self.vessels.is_empty() {
            return Err(VesselInfoError::Empty);
        }
        let mut total = 0u32;
        for (index, v) in self.vessels.iter().enumerate() {
            if v.percent == 0 || v.percent % 10 != 0 {
                return Err(VesselInfoError::BadPercent {
                    index,
                    percent: v.percent,
                });
            }
            total = total.saturating_add(v.percent);
        }
        if total != 100 {
            return Err(VesselInfoError::BadTotal {
                total,
                expected: 100,
            });
        }
        Ok(())
    }

    /// The CIB's layout on top of the installer rules: user vessels total 80 % and the last
    /// vessel is the 20 % vessel owned by `reserved` (the v2 key).
    pub fn validate_cib(&self, reserved: &PublicKey) -> Result<(), VesselInfoError> {
        self.validate_installer()?;
        match self.vessels.last() {
            Some(last) if last.percent == RESERVED_PERCENT && last.owner == *reserved => Ok(()),
            _ => Err(VesselInfoError::NoReservedVessel),
        }
    }

    /// The name the installer gives the reserved vessel (`v<position>`), i.e. the node's
    /// service vessel for a CIB-built installer.
    pub fn reserved_vessel_name(&self, reserved: &PublicKey) -> Option<String> {
        self.vessels
            .iter()
            .rposition(|v| v.owner == *reserved)
            .map(|i| format!("v{}", i + 1))
    }
}
