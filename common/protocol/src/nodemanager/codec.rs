//! Node-manager request and reply payloads (SEATTLE.md B.3, B.4), without the session frame.

use std::fmt;

/// Status word ending every reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Success,
    Error,
    Warning,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "Success",
            Status::Error => "Error",
            Status::Warning => "Warning",
        }
    }

    fn parse(word: &[u8]) -> Option<Status> {
        match word {
            b"Success" => Some(Status::Success),
            b"Error" => Some(Status::Error),
            b"Warning" => Some(Status::Warning),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reply payload split into its text and status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    pub text: &'a [u8],
    pub status: Status,
}

/// Why a reply payload is not a node-manager reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply has no newline before the status word")]
    NoStatus,
    #[error("unknown status word")]
    UnknownStatus,
}

impl ReplyError {
    pub fn reason(&self) -> &'static str {
        "bad_reply"
    }
}

/// Split a reply payload at the last `\n` (as `nmclient` does).
pub fn split_reply(payload: &[u8]) -> Result<Reply<'_>, ReplyError> {
    let nl = payload
        .iter()
        .rposition(|&b| b == b'\n')
        .ok_or(ReplyError::NoStatus)?;
    let (text, word) = payload.split_at(nl);
    let word = word.get(1..).unwrap_or_default();
    let status = Status::parse(word).ok_or(ReplyError::UnknownStatus)?;
    Ok(Reply { text, status })
}

/// `<text>\n<Status>`.
pub fn encode_reply(text: &[u8], status: Status) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    out.extend_from_slice(text);
    out.push(b'\n');
    out.extend_from_slice(status.as_str().as_bytes());
    out
}

/// The three public (unsigned) calls a monitor may make.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublicCall {
    GetVessels,
    GetVesselResources(String),
    GetOffcutResources,
}

impl PublicCall {
    /// The request payload: `GetVessels`, `GetVesselResources|v1`, `GetOffcutResources`.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            PublicCall::GetVessels => b"GetVessels".to_vec(),
            PublicCall::GetVesselResources(v) => format!("GetVesselResources|{v}").into_bytes(),
            PublicCall::GetOffcutResources => b"GetOffcutResources".to_vec(),
        }
    }

    /// Short bounded name for labels.
    pub fn name(&self) -> &'static str {
        match self {
            PublicCall::GetVessels => "GetVessels",
            PublicCall::GetVesselResources(_) => "GetVesselResources",
            PublicCall::GetOffcutResources => "GetOffcutResources",
        }
    }
}

/// Node-manager calls (`nmrequesthandler.API_dict`): name, argument count, public?
pub const CALLS: [(&str, usize, bool); 18] = [
    ("GetVessels", 0, true),
    ("GetVesselResources", 1, true),
    ("GetOffcutResources", 0, true),
    ("StartVessel", 2, false),
    ("StartVesselEx", 3, false),
    ("StopVessel", 1, false),
    ("AddFileToVessel", 3, false),
    ("ListFilesInVessel", 1, false),
    ("RetrieveFileFromVessel", 2, false),
    ("DeleteFileInVessel", 2, false),
    ("ReadVesselLog", 1, false),
    ("ResetVessel", 1, false),
    ("ChangeOwner", 2, false),
    ("ChangeUsers", 2, false),
    ("ChangeOwnerInformation", 2, false),
    ("ChangeAdvertise", 2, false),
    ("SplitVessel", 2, false),
    ("JoinVessels", 2, false),
];

/// How the real node manager classifies a request payload, for a simulator to answer alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// A well-formed public call (extra arguments are ignored, as the real one does).
    Public(PublicCall),
    /// A known private call with its signature block: body = `Call|args…` before the last
    /// `\n`, args split with the call's max split. Signature checks are the caller's business.
    Signed {
        call: &'static str,
        args: Vec<&'a [u8]>,
        body: &'a [u8],
    },
    /// Call name (text before the first `|`) not in the table → `Unknown Call`. A *signed*
    /// public call lands here too, because its name then includes the signature.
    UnknownCall,
    /// Missing argument, unsigned private call, too few arguments → `Internal Error`.
    InternalError,
}

/// Canned error replies, exactly as the real node manager sends them.
pub const UNKNOWN_CALL: &[u8] = b"Unknown Call\nError";
pub const INTERNAL_ERROR: &[u8] = b"Internal Error\nError";
pub const NO_SUCH_VESSEL: &[u8] = b"No such vessel\nError";
pub const UNKNOWN_VESSEL: &[u8] = b"Unknown Vessel\nError";
pub const INSUFFICIENT_PERMISSIONS: &[u8] = b"Insufficient Permissions\nError";

/// Split `s` at `|` at most `max` times (Python `str.split('|', max)`).
fn split_args(s: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(max + 1);
    let mut rest = s;
    while out.len() < max {
        match rest.iter().position(|&b| b == b'|') {
            Some(i) => {
                let (arg, tail) = rest.split_at(i);
                out.push(arg);
                rest = tail.get(1..).unwrap_or_default();
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// Classify a request payload the way `nmrequesthandler` does.
pub fn parse_request(payload: &[u8]) -> Request<'_> {
    let name_end = payload
        .iter()
        .position(|&b| b == b'|')
        .unwrap_or(payload.len());
    let name = payload.get(..name_end).unwrap_or_default();
    let Some(&(call, nargs, public)) = CALLS.iter().find(|(n, _, _)| n.as_bytes() == name) else {
        return Request::UnknownCall;
    };
    if public {
        let parts = split_args(payload, nargs);
        // parts[0] is the call name; the real check for missing arguments never fires, the
        // handler then fails on the missing index → Internal Error.
        if parts.len() < nargs + 1 {
            return Request::InternalError;
        }
        let call = match call {
            "GetVessels" => PublicCall::GetVessels,
            "GetOffcutResources" => PublicCall::GetOffcutResources,
            _ => match parts
                .get(1)
                .map(|v| String::from_utf8_lossy(v).into_owned())
            {
                Some(v) => PublicCall::GetVesselResources(v),
                None => return Request::InternalError,
            },
        };
        return Request::Public(call);
    }
    // Private: body before the last newline, signature after it.
    let Some(nl) = payload.iter().rposition(|&b| b == b'\n') else {
        return Request::InternalError;
    };
    let body = payload.get(..nl).unwrap_or_default();
    let parts = split_args(body, nargs);
    if parts.len() < nargs + 1 {
        return Request::InternalError;
    }
    Request::Signed {
        call,
        args: parts.into_iter().skip(1).collect(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_split_is_at_the_last_newline() {
        let r = split_reply(b"a\nb\n\nSuccess").unwrap();
        assert_eq!(r.text, b"a\nb\n");
        assert_eq!(r.status, Status::Success);
        assert_eq!(split_reply(b"\nWarning").unwrap().text, b"");
        assert_eq!(split_reply(b"Success"), Err(ReplyError::NoStatus));
        assert_eq!(split_reply(b"x\nsuccess"), Err(ReplyError::UnknownStatus));
        assert_eq!(split_reply(b"x\nSuccess\n"), Err(ReplyError::UnknownStatus));
    }

    #[test]
    fn requests_are_classified_like_the_real_handler() {
        assert_eq!(
            parse_request(b"GetVesselResources|v1|x"),
            Request::Public(PublicCall::GetVesselResources("v1|x".into()))
        );
        assert_eq!(
            parse_request(b"GetOffcutResources|extra"),
            Request::Public(PublicCall::GetOffcutResources)
        );
        assert_eq!(parse_request(b"GetVesselResources"), Request::InternalError);
        assert_eq!(parse_request(b""), Request::UnknownCall);
        assert_eq!(parse_request(b"GetVessels\n!1 2!x"), Request::UnknownCall);
        assert_eq!(
            parse_request(b"ListFilesInVessel|v3"),
            Request::InternalError
        );
        match parse_request(b"ChangeUsers|v3|k1|k2\n!sig") {
            Request::Signed { call, args, body } => {
                assert_eq!(call, "ChangeUsers");
                assert_eq!(args, vec![&b"v3"[..], &b"k1|k2"[..]]);
                assert_eq!(body, b"ChangeUsers|v3|k1|k2");
            }
            other => panic!("{other:?}"),
        }
    }
}
