//! Strict YAML loading for the exporters' `--config.file`, with errors that name the file, the
//! line and column, and the field path.
//!
//! Unknown keys are rejected by `#[serde(deny_unknown_fields)]` on the exporter's structs. For
//! checks made after parsing (a bad regex, min > max), wrap the field in [`Spanned`] to keep its
//! position and build the error with [`ConfigError::at`]:
//!
//! ```
//! use seattle_exporter_toolkit::config::{parse_yaml, ConfigError, Spanned};
//! use std::path::Path;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Group { name: String, pattern: Spanned<String> }
//!
//! let file = Path::new("groups.yml");
//! let g: Group = parse_yaml(file, "name: sshd\npattern: '(unclosed'\n").unwrap();
//! let err = ConfigError::at(file, &g.pattern, "pattern", "unclosed group");
//! assert_eq!(err.to_string(), "groups.yml:2:10: pattern: unclosed group");
//! ```

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

pub use serde_saphyr::{Location, Spanned};

/// A config file that cannot be used. `Display`: `file:line:column: field: message`, leaving out
/// the parts that are unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<u64>,
    /// 1-based.
    pub column: Option<u64>,
    /// Dotted field path, e.g. `groups[2].match.comm`.
    pub field: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// An error about the whole file (e.g. it cannot be read).
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
        }
    }

    /// An error about a field found valid YAML but rejected afterwards; points at the field's value.
    pub fn at<T>(
        file: &Path,
        value: &Spanned<T>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let mut e = Self::new(file, message);
        e.field = Some(field.into());
        e.set_location(value.referenced);
        e
    }

    /// An error at a known location.
    pub fn at_location(
        file: &Path,
        location: Location,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let mut e = Self::new(file, message);
        e.field = field;
        e.set_location(location);
        e
    }

    fn set_location(&mut self, location: Location) {
        if location != Location::UNKNOWN && location.line() > 0 {
            self.line = Some(location.line());
            self.column = Some(location.column());
        }
    }

    /// The message without the leading file name (for wrappers that name the file themselves).
    pub fn to_string_without_file(&self) -> String {
        let mut s = String::new();
        if let Some(l) = self.line {
            s.push_str(&format!("line {l}"));
            if let Some(c) = self.column {
                s.push_str(&format!(", column {c}"));
            }
            s.push_str(": ");
        }
        if let Some(f) = &self.field {
            s.push_str(f);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        s
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Largest config file read; larger ones are refused before parsing.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads and parses a YAML file into `T`.
pub fn load_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::new(path, e.to_string()))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(
            path,
            format!("file is larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, e.to_string()))?;
    parse_yaml(path, &text)
}

/// Parses YAML text into `T`; `file` is only used in errors.
pub fn parse_yaml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    FAILED_PATH.with(|p| p.borrow_mut().take());
    match serde_saphyr::from_str::<Tracked<T>>(text) {
        Ok(Tracked(v)) => Ok(v),
        Err(e) => {
            let field = FAILED_PATH
                .with(|p| p.borrow_mut().take())
                .filter(|p| !p.is_empty() && p != ".");
            let location = e.location();
            let plain = e.without_snippet();
            let mut err = ConfigError::new(file, message_of(&plain.to_string()));
            err.field = field;
            if let Some(l) = location {
                err.set_location(l);
            }
            Err(err)
        }
    }
}

/// serde-saphyr's messages may end with its own " at line X column Y"; the location is reported
/// separately.
fn message_of(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered).trim();
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

thread_local! {
    /// Field path of the last failed parse on this thread, set by [`Tracked`].
    static FAILED_PATH: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `T`'s deserializer through serde_path_to_error to learn the field path of a failure;
/// serde-saphyr has no seed-taking entry point, so the path leaves through a thread-local.
struct Tracked<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Tracked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut track = serde_path_to_error::Track::new();
        let r = T::deserialize(serde_path_to_error::Deserializer::new(d, &mut track));
        if r.is_err() {
            let path = track.path().to_string();
            FAILED_PATH.with(|p| *p.borrow_mut() = Some(path));
        }
        r.map(Tracked)
    }
}
