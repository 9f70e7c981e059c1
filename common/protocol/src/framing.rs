//! Session framing (SEATTLE.md A.1): `<decimal length>\n<payload>`.
//!
//! The sans-I/O half ([`encode_frame`], [`parse_header`], [`decode_frame`]) is pure; the async
//! half ([`read_frame`], [`write_frame`], [`read_frame_until`]) runs it over tokio streams.
//!
//! The header parser accepts exactly what the real `session_recvmessage` accepts (the golden
//! raw probes show it): at most 19 characters before `\n`, the first character unchecked, the
//! rest digits or `-`, the whole text then read by Python `int()` (so leading whitespace, `+`
//! and zeros pass). `-1` is the "session closed" marker; other negatives are errors. The real
//! servers use the same reader, so a simulator built on [`read_frame`] rejects what they reject
//! (a 20-character header included).
//!
//! Unlike the real code we cap the payload ([`DEFAULT_MAX_PAYLOAD`]) and check the cap on the
//! header alone, before any buffer is sized from it.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::transport;

/// The real reader makes at most 20 one-byte reads; the 20th must be the newline.
pub const MAX_HEADER_CHARS: usize = 19;

/// Default payload cap: far above any real advertise or node-manager answer we expect to read
/// (a 10,000-entry advertise reply is ~300 KiB), far below what a 19-digit header could ask.
pub const DEFAULT_MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// Payload bytes read per step, so memory grows with bytes actually received, not with the
/// length a peer announced.
const READ_CHUNK: usize = 64 * 1024;

/// What a complete header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameHeader {
    /// A payload of this many bytes follows.
    Length(usize),
    /// `-1`: the peer declares the session closed (no Seattle sender does this).
    Closed,
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// No `\n` within the first 20 header bytes.
    #[error("frame header longer than {MAX_HEADER_CHARS} characters")]
    HeaderTooLong,
    /// The header text is not what Python `int()` and the reader's digit check accept.
    #[error("malformed frame header")]
    BadHeader,
    /// A negative length other than `-1`.
    #[error("negative frame length")]
    NegativeLength,
    /// The header announced more than the caller's cap.
    #[error("frame payload of {announced} bytes exceeds the cap of {max} bytes")]
    TooLarge {
        /// The announced length (saturated at `u64::MAX`).
        announced: u64,
        /// The cap in force.
        max: usize,
    },
    /// The peer sent the `-1` "session closed" marker.
    #[error("peer sent the session-closed marker")]
    SessionClosed,
    /// The peer closed the connection before sending a single byte.
    #[error("connection closed before any data")]
    ClosedWithoutData,
    /// The peer closed the connection in the middle of a header or payload.
    #[error("connection closed after {received} bytes of a frame")]
    Truncated {
        /// Bytes of this frame received before the close.
        received: usize,
    },
    /// The deadline passed.
    #[error("deadline passed while reading or writing a frame")]
    Timeout,
    /// Any other socket error.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// A bounded snake_case word for metrics labels (`seattle_probe_failure_info{reason}`), in
    /// the catalogue's words (docs/metrics.md): a close before the whole frame is
    /// `connection_closed`, a bad header `framing`, socket errors the shared transport reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::HeaderTooLong | FrameError::BadHeader | FrameError::NegativeLength => {
                "framing"
            }
            FrameError::TooLarge { .. } => "too_large",
            FrameError::SessionClosed
            | FrameError::ClosedWithoutData
            | FrameError::Truncated { .. } => "connection_closed",
            FrameError::Timeout => "timeout",
            FrameError::Io(e) => transport::io_reason(e),
        }
    }
}

/// Frames `payload` as every Seattle sender does: `str(len)` + `\n` + payload.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let header = payload.len().to_string();
    let mut out = Vec::with_capacity(header.len() + 1 + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

/// Python's `str.isspace()` for one byte (what `int()` strips).
fn is_py_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Parses header text (the bytes before `\n`, without it) like the real reader plus `int()`,
/// and applies the payload cap.
pub fn parse_header(text: &[u8], max_payload: usize) -> Result<FrameHeader, FrameError> {
    if text.len() > MAX_HEADER_CHARS {
        return Err(FrameError::HeaderTooLong);
    }
    // The reader rejects any byte after the first that is neither a digit nor '-'.
    if let Some(rest) = text.get(1..)
        && rest.iter().any(|&b| !(b.is_ascii_digit() || b == b'-'))
    {
        return Err(FrameError::BadHeader);
    }
    // Python int(): surrounding whitespace, one optional sign, at least one digit.
    let mut start = 0;
    while start < text.len() && is_py_space(text[start]) {
        start += 1;
    }
    let mut t = &text[start..];
    let negative = match t.first() {
        Some(b'-') => {
            t = &t[1..];
            true
        }
        Some(b'+') => {
            t = &t[1..];
            false
        }
        _ => false,
    };
    if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::BadHeader);
    }
    // At most 19 digits: always fits in u64.
    let value = t.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    if negative && value != 0 {
        return if value == 1 {
            Ok(FrameHeader::Closed)
        } else {
            Err(FrameError::NegativeLength)
        };
    }
    match usize::try_from(value) {
        Ok(n) if n <= max_payload => Ok(FrameHeader::Length(n)),
        _ => Err(FrameError::TooLarge {
            announced: value,
            max: max_payload,
        }),
    }
}

/// One frame found at the start of a buffer by [`decode_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete payload.
    Payload(&'a [u8]),
    /// The `-1` session-closed marker.
    Closed,
}

/// Decodes one frame from the start of `buf`. `Ok(None)` means more bytes are needed;
/// `Ok(Some((frame, consumed)))` gives the frame and how many bytes of `buf` it used.
pub fn decode_frame(
    buf: &[u8],
    max_payload: usize,
) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let window = &buf[..buf.len().min(MAX_HEADER_CHARS + 1)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        return if window.len() > MAX_HEADER_CHARS {
            Err(FrameError::HeaderTooLong)
        } else {
            // Check what we have so far so garbage fails early rather than waiting for 20 bytes.
            check_partial_header(window)?;
            Ok(None)
        };
    };
    let header = parse_header(&buf[..nl], max_payload)?;
    let body_start = nl + 1;
    match header {
        FrameHeader::Closed => Ok(Some((Frame::Closed, body_start))),
        FrameHeader::Length(n) => match buf.get(body_start..body_start + n) {
            Some(payload) => Ok(Some((Frame::Payload(payload), body_start + n))),
            None => Ok(None),
        },
    }
}

/// The reader's per-byte check on an incomplete header.
fn check_partial_header(partial: &[u8]) -> Result<(), FrameError> {
    match partial.get(1..) {
        Some(rest) if rest.iter().any(|&b| !(b.is_ascii_digit() || b == b'-')) => {
            Err(FrameError::BadHeader)
        }
        _ => Ok(()),
    }
}

/// Reads one frame. Returns the payload; the `-1` marker is [`FrameError::SessionClosed`].
///
/// No deadline of its own: wrap in `tokio::time::timeout`, or use [`read_frame_until`].
pub async fn read_frame<R>(reader: &mut R, max_payload: usize) -> Result<Vec<u8>, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    // Byte by byte like the real reader, so we never consume bytes past the header.
    let mut header = [0u8; MAX_HEADER_CHARS];
    let mut len = 0;
    let parsed = loop {
        let mut byte = [0u8; 1];
        let n = reader.read(&mut byte).await?;
        if n == 0 {
            return Err(if len == 0 {
                FrameError::ClosedWithoutData
            } else {
                FrameError::Truncated { received: len }
            });
        }
        if byte[0] == b'\n' {
            break parse_header(&header[..len], max_payload)?;
        }
        if len == MAX_HEADER_CHARS {
            return Err(FrameError::HeaderTooLong);
        }
        header[len] = byte[0];
        len += 1;
        check_partial_header(&header[..len])?;
    };
    let size = match parsed {
        FrameHeader::Closed => return Err(FrameError::SessionClosed),
        FrameHeader::Length(n) => n,
    };
    let mut payload = Vec::with_capacity(size.min(READ_CHUNK));
    while payload.len() < size {
        let want = (size - payload.len()).min(READ_CHUNK);
        let old = payload.len();
        payload.resize(old + want, 0);
        let n = reader.read(&mut payload[old..]).await?;
        payload.truncate(old + n);
        if n == 0 {
            return Err(FrameError::Truncated {
                received: len + 1 + payload.len(),
            });
        }
    }
    Ok(payload)
}

/// [`read_frame`] that gives up at `deadline` with [`FrameError::Timeout`].
pub async fn read_frame_until<R>(
    reader: &mut R,
    max_payload: usize,
    deadline: Instant,
) -> Result<Vec<u8>, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    tokio::time::timeout_at(deadline, read_frame(reader, max_payload))
        .await
        .unwrap_or(Err(FrameError::Timeout))
}

/// Writes one frame in a single write, then flushes.
///
/// No deadline of its own: wrap in `tokio::time::timeout`, or use [`write_frame_until`].
pub async fn write_frame<W>(writer: &mut W, payload: &[u8]) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    writer.write_all(&encode_frame(payload)).await?;
    writer.flush().await?;
    Ok(())
}

/// [`write_frame`] that gives up at `deadline` with [`FrameError::Timeout`].
pub async fn write_frame_until<W>(
    writer: &mut W,
    payload: &[u8],
    deadline: Instant,
) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    tokio::time::timeout_at(deadline, write_frame(writer, payload))
        .await
        .unwrap_or(Err(FrameError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(s: &str) -> Result<FrameHeader, FrameError> {
        parse_header(s.as_bytes(), DEFAULT_MAX_PAYLOAD)
    }

    #[test]
    fn header_forms_python_int_accepts() {
        assert_eq!(hdr("28").unwrap(), FrameHeader::Length(28));
        assert_eq!(hdr(" 28").unwrap(), FrameHeader::Length(28));
        assert_eq!(hdr("+28").unwrap(), FrameHeader::Length(28));
        assert_eq!(hdr("0000000000000000028").unwrap(), FrameHeader::Length(28));
        assert_eq!(hdr("0").unwrap(), FrameHeader::Length(0));
        assert_eq!(hdr("-0").unwrap(), FrameHeader::Length(0));
        assert_eq!(hdr("-1").unwrap(), FrameHeader::Closed);
        assert_eq!(hdr("-01").unwrap(), FrameHeader::Closed);
    }

    #[test]
    fn header_forms_rejected() {
        assert!(matches!(hdr(""), Err(FrameError::BadHeader)));
        assert!(matches!(hdr("12a"), Err(FrameError::BadHeader)));
        assert!(matches!(hdr("1 2"), Err(FrameError::BadHeader)));
        assert!(matches!(hdr("2-"), Err(FrameError::BadHeader)));
        assert!(matches!(hdr("+"), Err(FrameError::BadHeader)));
        assert!(matches!(hdr("-2"), Err(FrameError::NegativeLength)));
        assert!(matches!(
            hdr("00000000000000000012"),
            Err(FrameError::HeaderTooLong)
        ));
        assert!(matches!(
            hdr("9999999999999999999"),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn cap_is_checked_on_the_header() {
        assert!(matches!(
            parse_header(b"11", 10),
            Err(FrameError::TooLarge {
                announced: 11,
                max: 10
            })
        ));
        assert_eq!(parse_header(b"10", 10).unwrap(), FrameHeader::Length(10));
    }

    #[test]
    fn decode_frame_incremental() {
        let framed = encode_frame(b"GetVessels");
        assert_eq!(framed, b"10\nGetVessels");
        for cut in 0..framed.len() {
            assert_eq!(
                decode_frame(&framed[..cut], 100).unwrap(),
                None,
                "cut {cut}"
            );
        }
        assert_eq!(
            decode_frame(&framed, 100).unwrap(),
            Some((Frame::Payload(b"GetVessels".as_slice()), framed.len()))
        );
        assert_eq!(
            decode_frame(b"-1\nxx", 100).unwrap(),
            Some((Frame::Closed, 3))
        );
        assert!(matches!(
            decode_frame(b"1x", 100),
            Err(FrameError::BadHeader)
        ));
        assert!(matches!(
            decode_frame(b"00000000000000000000", 100),
            Err(FrameError::HeaderTooLong)
        ));
    }

    #[test]
    fn reasons_are_bounded_words() {
        assert_eq!(FrameError::HeaderTooLong.reason(), "framing");
        assert_eq!(
            FrameError::Truncated { received: 3 }.reason(),
            "connection_closed"
        );
        assert_eq!(FrameError::ClosedWithoutData.reason(), "connection_closed");
        assert_eq!(
            FrameError::Io(io::Error::from(io::ErrorKind::ConnectionReset)).reason(),
            "connection_reset"
        );
    }
}
