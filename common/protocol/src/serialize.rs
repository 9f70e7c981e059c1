//! The `serialize` encoding (SEATTLE.md A.2): Seattle's self-describing encoding of Python
//! built-in values, used by the advertise services (C) and Affix.
//!
//! [`encode`] writes exactly what `serialize_serializedata` writes (Py2 `str()` text for
//! numbers: 12 significant digits for floats). [`decode`] follows `serialize_deserializedata`
//! step by step, including its laxness (Python `int()`/`float()`/`complex()` text, negative and
//! oversized element lengths sliced the Python way) and its failures (empty element, bytes
//! after the `0:` terminator, unhashable set members or dict keys), checked against
//! `serialize_values.jsonl` and `deserialize_edge_cases.jsonl`.
//!
//! Bounds the real decoder lacks: nesting depth ([`MAX_DEPTH`]) and integer length
//! ([`MAX_INT_DIGITS`]). Every byte of input lands in at most one decoded value, so memory is
//! linear in the input. Sets and dicts keep the wire order and are not de-duplicated.

use std::fmt::Write as _;

use num_bigint::BigInt;
use num_traits::ToPrimitive;

/// Deepest nesting accepted; advertise messages use 2, Python itself stops near 1000.
pub const MAX_DEPTH: usize = 128;

/// Longest integer text accepted; big-integer parsing is quadratic, and the largest ints Seattle
/// sends (4096-bit RSA numbers) have ~1,240 digits.
pub const MAX_INT_DIGITS: usize = 10_000;

/// A Python 2 value as `serialize` can carry it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`
    None,
    /// `bool`
    Bool(bool),
    /// `int` / `long`
    Int(BigInt),
    /// `float`
    Float(f64),
    /// `complex` (real, imaginary)
    Complex(f64, f64),
    /// `str` (a byte string)
    Str(Vec<u8>),
    /// `list`
    List(Vec<Value>),
    /// `tuple`
    Tuple(Vec<Value>),
    /// `set`, in wire order
    Set(Vec<Value>),
    /// `frozenset`, in wire order
    FrozenSet(Vec<Value>),
    /// `dict`, pairs in wire order
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// A `str` value.
    pub fn str(s: impl Into<Vec<u8>>) -> Value {
        Value::Str(s.into())
    }

    /// An `int` value.
    pub fn int(i: i64) -> Value {
        Value::Int(BigInt::from(i))
    }

    /// The bytes of a `str`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An `int` that fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => i.to_i64(),
            _ => None,
        }
    }

    /// Python 2 `repr()` of the value (tests compare it with the golden `*_repr` fields).
    pub fn py_repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
                // Py2 int() gives a long beyond the C long range, and longs print with `L`.
                if i.to_i64().is_none() {
                    out.push('L');
                }
            }
            Value::Float(f) => out.push_str(&py_float_text(*f, FloatStyle::Repr, true)),
            Value::Complex(re, im) => out.push_str(&py_complex_text(*re, *im, FloatStyle::Repr)),
            Value::Str(s) => write_str_repr(s, out),
            Value::List(items) => write_seq(items, "[", "]", false, out),
            Value::Tuple(items) => write_seq(items, "(", ")", items.len() == 1, out),
            Value::Set(items) => write_seq(items, "set([", "])", false, out),
            Value::FrozenSet(items) => write_seq(items, "frozenset([", "])", false, out),
            Value::Dict(pairs) => {
                out.push('{');
                for (n, (k, v)) in pairs.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
        }
    }

    /// Whether Python could hash it (set members and dict keys must be hashable).
    fn is_hashable(&self) -> bool {
        match self {
            Value::List(_) | Value::Set(_) | Value::Dict(_) => false,
            Value::Tuple(items) => items.iter().all(Value::is_hashable),
            _ => true,
        }
    }
}

fn write_seq(items: &[Value], open: &str, close: &str, trailing_comma: bool, out: &mut String) {
    out.push_str(open);
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        item.write_repr(out);
    }
    if trailing_comma {
        out.push(',');
    }
    out.push_str(close);
}

fn write_str_repr(s: &[u8], out: &mut String) {
    let quote = if s.contains(&b'\'') && !s.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for &b in s {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ if char::from(b) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push(quote);
}

/// Which Python float-to-text rule to apply.
#[derive(Clone, Copy)]
enum FloatStyle {
    /// `str()`: `%.12g`.
    Str,
    /// `repr()`: shortest round-trip digits, exponent outside 1e-4 ≤ |x| < 1e16.
    Repr,
}

/// Python 2 float text. `dot_zero` appends `.0` to integral fixed-point text (floats do,
/// complex parts don't).
fn py_float_text(x: f64, style: FloatStyle, dot_zero: bool) -> String {
    if x.is_nan() {
        return "nan".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let sci = match style {
        FloatStyle::Str => format!("{:.11e}", x.abs()),
        FloatStyle::Repr => format!("{:e}", x.abs()),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let fixed_upper = match style {
        FloatStyle::Str => 12,
        FloatStyle::Repr => 16,
    };
    let mut out = String::new();
    if x.is_sign_negative() {
        out.push('-');
    }
    if (-4..fixed_upper).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                if dot_zero {
                    out.push_str(".0");
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// Python 2 `str()`/`repr()` of a complex, with its parentheses.
fn py_complex_text(re: f64, im: f64, style: FloatStyle) -> String {
    let im_text = py_float_text(im, style, false);
    if re == 0.0 && re.is_sign_positive() {
        format!("{im_text}j")
    } else {
        let sign = if im_text.starts_with('-') { "" } else { "+" };
        format!("({}{sign}{im_text}j)", py_float_text(re, style, false))
    }
}

/// Encodes a value exactly as `serialize_serializedata` does.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::None => out.push(b'N'),
        Value::Bool(b) => out.extend_from_slice(if *b { b"BT" } else { b"BF" }),
        Value::Int(i) => {
            out.push(b'I');
            out.extend_from_slice(i.to_string().as_bytes());
        }
        Value::Float(f) => {
            out.push(b'F');
            out.extend_from_slice(py_float_text(*f, FloatStyle::Str, true).as_bytes());
        }
        Value::Complex(re, im) => {
            out.push(b'C');
            let text = py_complex_text(*re, *im, FloatStyle::Str);
            // serialize drops the outer parentheses of str(complex).
            let text = text
                .strip_prefix('(')
                .and_then(|t| t.strip_suffix(')'))
                .unwrap_or(&text);
            out.extend_from_slice(text.as_bytes());
        }
        Value::Str(s) => {
            out.push(b'S');
            out.extend_from_slice(s);
        }
        Value::List(items) => encode_seq(b'L', items.iter(), out),
        Value::Tuple(items) => encode_seq(b'T', items.iter(), out),
        Value::Set(items) => encode_seq(b's', items.iter(), out),
        Value::FrozenSet(items) => encode_seq(b'f', items.iter(), out),
        Value::Dict(pairs) => {
            let mut keys = Vec::new();
            encode_seq(b'L', pairs.iter().map(|(k, _)| k), &mut keys);
            out.push(b'D');
            out.extend_from_slice(keys.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(&keys);
            encode_seq(b'L', pairs.iter().map(|(_, v)| v), out);
        }
    }
}

fn encode_seq<'a>(tag: u8, items: impl Iterator<Item = &'a Value>, out: &mut Vec<u8>) {
    out.push(tag);
    let mut item = Vec::new();
    for v in items {
        item.clear();
        encode_into(v, &mut item);
        out.extend_from_slice(item.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(&item);
    }
    out.extend_from_slice(b"0:");
}

/// Why bytes are not a `serialize` encoding (the real decoder raised for all of these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// An empty value (Python: `IndexError`), e.g. a zero-length element or `0:` not last.
    #[error("empty value")]
    Empty,
    /// First byte is not a known type tag.
    #[error("unknown type tag {0:#04x}")]
    UnknownTag(u8),
    /// `N`/`B`/`I`/`F`/`C` followed by text Python would not parse.
    #[error("malformed {0} text")]
    Malformed(&'static str),
    /// An element length prefix missing its `:` or not an integer.
    #[error("bad element length")]
    BadLength,
    /// Dict keys and values are not two lists of equal length.
    #[error("malformed dict")]
    BadDict,
    /// A list, dict or set as a set member or dict key (Python: `TypeError`).
    #[error("unhashable set member or dict key")]
    Unhashable,
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Integer text longer than [`MAX_INT_DIGITS`].
    #[error("integer longer than {MAX_INT_DIGITS} characters")]
    IntTooLong,
}

impl DecodeError {
    /// A bounded snake_case word for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooDeep | DecodeError::IntTooLong => "too_large",
            _ => "bad_encoding",
        }
    }
}

/// Decodes one value occupying all of `data`, as `serialize_deserializedata` does.
pub fn decode(data: &[u8]) -> Result<Value, DecodeError> {
    decode_at(data, 0)
}

fn decode_at(data: &[u8], depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let (&tag, rest) = data.split_first().ok_or(DecodeError::Empty)?;
    match tag {
        b'N' if rest.is_empty() => Ok(Value::None),
        b'N' => Err(DecodeError::Malformed("None")),
        b'B' => match rest {
            b"T" => Ok(Value::Bool(true)),
            b"F" => Ok(Value::Bool(false)),
            _ => Err(DecodeError::Malformed("Boolean")),
        },
        b'I' => parse_py_int(rest),
        b'F' => parse_py_float(rest)
            .map(Value::Float)
            .ok_or(DecodeError::Malformed("Float")),
        b'C' => parse_py_complex(rest)
            .map(|(re, im)| Value::Complex(re, im))
            .ok_or(DecodeError::Malformed("Complex")),
        b'S' => Ok(Value::Str(rest.to_vec())),
        b'L' | b'T' | b's' | b'f' => {
            let items = decode_items(rest, depth)?;
            Ok(match tag {
                b'L' => Value::List(items),
                b'T' => Value::Tuple(items),
                _ => {
                    if !items.iter().all(Value::is_hashable) {
                        return Err(DecodeError::Unhashable);
                    }
                    if tag == b's' {
                        Value::Set(items)
                    } else {
                        Value::FrozenSet(items)
                    }
                }
            })
        }
        b'D' => {
            let (len_text, rest) = split_colon(rest).ok_or(DecodeError::BadLength)?;
            let len = parse_length(len_text)?;
            let keys = decode_at(py_slice_to(rest, len), depth + 1)?;
            let values = decode_at(py_slice_from(rest, len), depth + 1)?;
            match (keys, values) {
                (Value::List(k), Value::List(v)) if k.len() == v.len() => {
                    if !k.iter().all(Value::is_hashable) {
                        return Err(DecodeError::Unhashable);
                    }
                    Ok(Value::Dict(k.into_iter().zip(v).collect()))
                }
                _ => Err(DecodeError::BadDict),
            }
        }
        other => Err(DecodeError::UnknownTag(other)),
    }
}

/// The container loop: `<len>:<item>` until the rest is exactly `0:`.
fn decode_items(mut data: &[u8], depth: usize) -> Result<Vec<Value>, DecodeError> {
    let mut items = Vec::new();
    // Terminates: each pass strictly shortens `data` (it moves past at least one `:`).
    while data != b"0:" {
        let (len_text, rest) = split_colon(data).ok_or(DecodeError::BadLength)?;
        let len = parse_length(len_text)?;
        items.push(decode_at(py_slice_to(rest, len), depth + 1)?);
        data = py_slice_from(rest, len);
    }
    Ok(items)
}

fn split_colon(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let pos = data.iter().position(|&b| b == b':')?;
    Some((&data[..pos], &data[pos + 1..]))
}

/// A length as Python `int()` reads it; the magnitude saturates (slicing clamps anyway).
fn parse_length(text: &[u8]) -> Result<i64, DecodeError> {
    let (negative, digits) = py_int_parts(text).ok_or(DecodeError::BadLength)?;
    let magnitude = digits.iter().fold(0i64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Ok(if negative { -magnitude } else { magnitude })
}

/// Python `s[:n]`.
fn py_slice_to(s: &[u8], n: i64) -> &[u8] {
    &s[..py_index(s.len(), n)]
}

/// Python `s[n:]`.
fn py_slice_from(s: &[u8], n: i64) -> &[u8] {
    &s[py_index(s.len(), n)..]
}

fn py_index(len: usize, n: i64) -> usize {
    if n >= 0 {
        usize::try_from(n).map_or(len, |n| n.min(len))
    } else {
        let back = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
        len.saturating_sub(back)
    }
}

fn is_py_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn trim_py_space(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s
        && is_py_space(*first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && is_py_space(*last)
    {
        s = rest;
    }
    s
}

/// Python `int(text)`: surrounding whitespace, one optional sign, one or more digits.
fn py_int_parts(text: &[u8]) -> Option<(bool, &[u8])> {
    let t = trim_py_space(text);
    let (negative, digits) = match t.split_first() {
        Some((b'-', d)) => (true, d),
        Some((b'+', d)) => (false, d),
        _ => (false, t),
    };
    (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit)).then_some((negative, digits))
}

fn parse_py_int(text: &[u8]) -> Result<Value, DecodeError> {
    let (negative, digits) = py_int_parts(text).ok_or(DecodeError::Malformed("Integer"))?;
    if digits.len() > MAX_INT_DIGITS {
        return Err(DecodeError::IntTooLong);
    }
    let magnitude = BigInt::parse_bytes(digits, 10).ok_or(DecodeError::Malformed("Integer"))?;
    Ok(Value::Int(if negative { -magnitude } else { magnitude }))
}

/// Python `float(text)`.
fn parse_py_float(text: &[u8]) -> Option<f64> {
    parse_float_token(trim_py_space(text))
}

/// One float literal without surrounding space: Rust's `f64` grammar (digits, `.`, exponent,
/// `inf`/`infinity`/`nan` in any case, optional sign) is Python's.
fn parse_float_token(t: &[u8]) -> Option<f64> {
    std::str::from_utf8(t).ok()?.parse::<f64>().ok()
}

/// Python `complex(text)`: optional parentheses, then `re`, `imj`, `re±imj`; a bare `j` is 1.
fn parse_py_complex(text: &[u8]) -> Option<(f64, f64)> {
    let mut t = trim_py_space(text);
    if let Some(inner) = t.strip_prefix(b"(") {
        t = trim_py_space(inner.strip_suffix(b")")?);
    }
    let Some(body) = t.strip_suffix(b"j").or_else(|| t.strip_suffix(b"J")) else {
        return Some((parse_float_token(t)?, 0.0));
    };
    // Split at the last sign that is not the first character and not an exponent's sign.
    let split = (1..body.len())
        .rev()
        .find(|&i| matches!(body[i], b'+' | b'-') && !matches!(body[i - 1], b'e' | b'E'));
    let imag = |s: &[u8]| -> Option<f64> {
        match s {
            b"" | b"+" => Some(1.0),
            b"-" => Some(-1.0),
            _ => parse_float_token(s),
        }
    };
    match split {
        Some(i) => Some((parse_float_token(&body[..i])?, imag(&body[i..])?)),
        None => Some((0.0, imag(body)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(x: f64) -> String {
        py_float_text(x, FloatStyle::Str, true)
    }

    #[test]
    fn float_str_matches_python2() {
        assert_eq!(text(1.0 / 3.0), "0.333333333333");
        assert_eq!(text(123456789.12345679), "123456789.123");
        assert_eq!(text(12345678901234.0), "1.23456789012e+13");
        assert_eq!(text(3.0), "3.0");
        assert_eq!(text(1e20), "1e+20");
        assert_eq!(text(1e-5), "1e-05");
        assert_eq!(text(0.0001), "0.0001");
        assert_eq!(text(-0.0), "-0.0");
        assert_eq!(text(1e16), "1e+16");
        assert_eq!(text(f64::NEG_INFINITY), "-inf");
        assert_eq!(text(f64::NAN), "nan");
        assert_eq!(text(100000000000.0), "100000000000.0");
        assert_eq!(text(1e12), "1e+12");
        assert_eq!(text(1e300), "1e+300");
    }

    #[test]
    fn float_repr_matches_python2() {
        let r = |x| py_float_text(x, FloatStyle::Repr, true);
        assert_eq!(r(0.1), "0.1");
        assert_eq!(r(1e16), "1e+16");
        assert_eq!(r(1e15), "1000000000000000.0");
        assert_eq!(r(12345678901200.0), "12345678901200.0");
        assert_eq!(r(1e-5), "1e-05");
    }

    #[test]
    fn complex_text() {
        assert_eq!(encode(&Value::Complex(1.0, 2.0)), b"C1+2j");
        assert_eq!(encode(&Value::Complex(0.0, 1.0)), b"C1j");
        assert_eq!(encode(&Value::Complex(-1.5, -0.5)), b"C-1.5-0.5j");
        assert_eq!(encode(&Value::Complex(0.0, 0.0)), b"C0j");
        assert_eq!(parse_py_complex(b"(1+2j)"), Some((1.0, 2.0)));
        assert_eq!(parse_py_complex(b"1e+3-j"), Some((1000.0, -1.0)));
        assert_eq!(parse_py_complex(b"j"), Some((0.0, 1.0)));
        assert_eq!(parse_py_complex(b"2"), Some((2.0, 0.0)));
        assert_eq!(parse_py_complex(b"(1+2j"), None);
        assert_eq!(parse_py_complex(b""), None);
    }

    #[test]
    fn python_slicing_of_lengths() {
        // Oversized length: the item is truncated, then the loop finds no terminator.
        assert_eq!(decode(b"L9:I1"), Err(DecodeError::BadLength));
        // Negative length: Python slices from the end.
        assert_eq!(decode(b"L-2:I10:"), Ok(Value::List(vec![Value::int(1)])));
        assert_eq!(decode(b"L0:0:"), Err(DecodeError::Empty));
    }

    #[test]
    fn unhashable_members_rejected() {
        assert_eq!(decode(b"s3:L0:0:"), Err(DecodeError::Unhashable));
        assert_eq!(decode(b"D8:L3:L0:0:L2:I10:"), Err(DecodeError::Unhashable));
        assert!(decode(b"f3:T0:0:").is_ok());
    }

    #[test]
    fn depth_is_capped() {
        let mut data = b"N".to_vec();
        for _ in 0..(MAX_DEPTH + 5) {
            let mut outer = format!("L{}:", data.len()).into_bytes();
            outer.extend_from_slice(&data);
            outer.extend_from_slice(b"0:");
            data = outer;
        }
        assert_eq!(decode(&data), Err(DecodeError::TooDeep));
    }
}
