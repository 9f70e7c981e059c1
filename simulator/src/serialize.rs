//! Minimal server-side `serialize` codec (SEATTLE.md A.2): just what the advertise servers decode
//! and answer. Private stand-in, to be replaced by `seattle_protocol::serialize` once it lands.

/// A decoded value. Containers keep each element's raw encoding so ids can be echoed verbatim.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// Python `int()` of the text; `None` when out of i128 range (still a valid int).
    Int(Option<i128>),
    Float,
    Complex,
    Str(Vec<u8>),
    List(Vec<Elem>),
    Tuple(Vec<Elem>),
    Set(Vec<Elem>),
    Dict,
}

/// One container element: its decoded value and its exact encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Elem {
    pub value: Value,
    pub raw: Vec<u8>,
}

/// Deep nesting is legal in Python but we never need it; bounding it keeps recursion safe.
const MAX_DEPTH: usize = 32;

pub fn decode(data: &[u8]) -> Option<Value> {
    decode_depth(data, 0)
}

fn py_int(text: &[u8]) -> Option<Option<i128>> {
    let s = std::str::from_utf8(text).ok()?;
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = digits.parse::<i128>().ok();
    Some(v.map(|v| if neg { -v } else { v }))
}

fn decode_depth(data: &[u8], depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let (&tag, rest) = data.split_first()?;
    match tag {
        b'N' if rest.is_empty() => Some(Value::None),
        b'B' if rest == b"T" => Some(Value::Bool(true)),
        b'B' if rest == b"F" => Some(Value::Bool(false)),
        b'I' => py_int(rest).map(Value::Int),
        b'F' => {
            let s = std::str::from_utf8(rest).ok()?;
            let t = s.trim();
            let ok = t.parse::<f64>().is_ok()
                || matches!(
                    t.to_ascii_lowercase().as_str(),
                    "inf" | "-inf" | "+inf" | "nan" | "-nan" | "infinity" | "-infinity"
                );
            ok.then_some(Value::Float)
        }
        b'C' => (!rest.is_empty()).then_some(Value::Complex),
        b'S' => Some(Value::Str(rest.to_vec())),
        b'L' | b'T' | b's' | b'f' => {
            let elems = decode_elems(rest, depth)?;
            Some(match tag {
                b'L' => Value::List(elems),
                b'T' => Value::Tuple(elems),
                _ => Value::Set(elems),
            })
        }
        b'D' => {
            // D<n>:<keys list><values list>; both must be lists of equal length.
            let colon = rest.iter().position(|&b| b == b':')?;
            let n: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
            let body = &rest[colon + 1..];
            let keys = body.get(..n)?;
            let values = body.get(n..)?;
            match (
                decode_depth(keys, depth + 1)?,
                decode_depth(values, depth + 1)?,
            ) {
                (Value::List(k), Value::List(v)) if k.len() == v.len() => Some(Value::Dict),
                _ => None,
            }
        }
        _ => None,
    }
}

fn decode_elems(mut rest: &[u8], depth: usize) -> Option<Vec<Elem>> {
    let mut out = Vec::new();
    loop {
        if rest == b"0:" {
            return Some(out);
        }
        let colon = rest.iter().take(21).position(|&b| b == b':')?;
        let n: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
        if n == 0 {
            return None;
        }
        let raw = rest.get(colon + 1..colon + 1 + n)?;
        out.push(Elem {
            value: decode_depth(raw, depth + 1)?,
            raw: raw.to_vec(),
        });
        rest = &rest[colon + 1 + n..];
    }
}

/// Encodes a string.
pub fn enc_str(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.push(b'S');
    v.extend_from_slice(s);
    v
}

/// Encodes a container of already-encoded elements.
pub fn enc_container<'a>(tag: u8, elems: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut v = vec![tag];
    for e in elems {
        v.extend_from_slice(e.len().to_string().as_bytes());
        v.push(b':');
        v.extend_from_slice(e);
    }
    v.extend_from_slice(b"0:");
    v
}

/// `('OK', [values…])` plus optional trailing raw elements (the UDP request id).
pub fn enc_ok_list<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    extra: Option<&[u8]>,
) -> Vec<u8> {
    let list = enc_container(
        b'L',
        values
            .into_iter()
            .map(enc_str)
            .collect::<Vec<_>>()
            .iter()
            .map(Vec::as_slice),
    );
    let ok = enc_str(b"OK");
    let mut parts: Vec<&[u8]> = vec![&ok, &list];
    if let Some(e) = extra {
        parts.push(e);
    }
    enc_container(b'T', parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(enc_ok_list(Vec::<&[u8]>::new(), None), b"T3:SOK3:L0:0:");
        assert_eq!(
            enc_ok_list([b"10.0.0.1:1224".as_slice(), b"10.0.0.2:2888"], None),
            b"T3:SOK37:L14:S10.0.0.1:122414:S10.0.0.2:28880:0:"
        );
        let v = decode(b"T4:SGET6:Smykey4:I1000:").unwrap();
        let Value::Tuple(e) = v else { panic!() };
        assert_eq!(e[2].value, Value::Int(Some(100)));
        assert_eq!(decode(b"D7:L2:Sa0:L2:I10:"), Some(Value::Dict));
        assert_eq!(decode(b"I 5"), Some(Value::Int(Some(5))));
        assert_eq!(decode(b"I5L"), None);
        assert_eq!(decode(b"L2:I10:extra"), None);
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"Zjunk"), None);
        assert_eq!(
            decode(b"I1000000000000000000000000000000000000000000"),
            Some(Value::Int(None))
        );
    }
}
