//! A bounded parser for the Python literal subset that `persist.py` writes with `repr()`
//! (`vesseldict`, `nodeman.cfg`): dicts, lists, tuples, (byte/unicode) strings, ints
//! (Python 2 longs end in `L`), floats, `True`, `False`, `None`. Anything else is an error
//! naming the byte offset; nesting depth and the number of values are capped so a hostile
//! or corrupt file cannot exhaust the stack or memory.

use std::fmt;

/// Deepest nesting accepted (vesseldict needs 4: dict → vessel → key dict → value).
pub const MAX_DEPTH: usize = 32;
/// Most values in one document (a vesseldict of 64 vessels with keys is a few thousand).
pub const MAX_VALUES: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// Decimal digits with an optional leading `-`; RSA moduli do not fit any machine integer.
    Int(String),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Key/value pairs in file order.
    Dict(Vec<(Value, Value)>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Why a document did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralError {
    /// Byte offset in the input.
    pub offset: usize,
    pub message: &'static str,
}

impl fmt::Display for LiteralError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for LiteralError {}

/// Parses one literal filling the whole input (surrounding whitespace allowed).
pub fn parse(input: &[u8]) -> Result<Value, LiteralError> {
    let mut p = Parser {
        s: input,
        i: 0,
        values: 0,
    };
    let v = p.value(0)?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected text after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    values: usize,
}

impl Parser<'_> {
    fn err(&self, message: &'static str) -> LiteralError {
        LiteralError {
            offset: self.i,
            message,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, LiteralError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(self.err("too many values"));
        }
        self.skip_ws();
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(Value::Dict(items));
                    }
                    let k = self.value(depth + 1)?;
                    self.skip_ws();
                    if self.peek() != Some(b':') {
                        return Err(self.err("expected `:` in a dict"));
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    if !self.separator(b'}')? {
                        return Ok(Value::Dict(items));
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.sequence(b']', depth).map(Value::List)
            }
            Some(b'(') => {
                self.i += 1;
                self.sequence(b')', depth).map(Value::Tuple)
            }
            Some(b'\'' | b'"') => self.string().map(Value::Str),
            Some(b'u' | b'U' | b'b' | b'B')
                if matches!(self.s.get(self.i + 1), Some(b'\'' | b'"')) =>
            {
                self.i += 1;
                self.string().map(Value::Str)
            }
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"None" => Ok(Value::None),
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    _ => {
                        self.i = start;
                        Err(self.err("unknown name (only None, True, False)"))
                    }
                }
            }
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    /// After an item: consumes `,` (true: more may follow) or the closing byte (false).
    fn separator(&mut self, close: u8) -> Result<bool, LiteralError> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(self.err("expected `,` or a closing bracket")),
        }
    }

    fn sequence(&mut self, close: u8, depth: usize) -> Result<Vec<Value>, LiteralError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
            if !self.separator(close)? {
                return Ok(items);
            }
        }
    }

    fn string(&mut self) -> Result<String, LiteralError> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            self.i += 1;
            match c {
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated string"));
                    };
                    self.i += 1;
                    match e {
                        b'\\' | b'\'' | b'"' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'0' => out.push(0),
                        b'x' => {
                            let v = self.hex(2)?;
                            push_char(&mut out, v);
                        }
                        b'u' => {
                            let v = self.hex(4)?;
                            push_char(&mut out, v);
                        }
                        b'U' => {
                            let v = self.hex(8)?;
                            push_char(&mut out, v);
                        }
                        _ => return Err(self.err("unsupported escape")),
                    }
                }
                b'\n' => return Err(self.err("newline in a string")),
                c if c == quote => break,
                c => out.push(c),
            }
        }
        // repr() of a Python 2 str may carry any byte as \xNN; keep what is not UTF-8 readable.
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn hex(&mut self, digits: usize) -> Result<u32, LiteralError> {
        let Some(h) = self.s.get(self.i..self.i + digits) else {
            return Err(self.err("short hex escape"));
        };
        let text = std::str::from_utf8(h).map_err(|_| self.err("bad hex escape"))?;
        let v = u32::from_str_radix(text, 16).map_err(|_| self.err("bad hex escape"))?;
        self.i += digits;
        Ok(v)
    }

    fn number(&mut self) -> Result<Value, LiteralError> {
        let start = self.i;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.i += 1;
        }
        let mut float = false;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' => {}
                b'.' | b'e' | b'E' => float = true,
                b'-' | b'+' if matches!(self.s[self.i - 1], b'e' | b'E') => {}
                _ => break,
            }
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        if float {
            return text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Value::Float)
                .ok_or(LiteralError {
                    offset: start,
                    message: "bad number",
                });
        }
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.i += 1;
        }
        let digits = text.trim_start_matches('+');
        let body = digits.trim_start_matches('-');
        if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
            return Err(LiteralError {
                offset: start,
                message: "bad number",
            });
        }
        Ok(Value::Int(digits.to_string()))
    }
}

/// Appends a code point as UTF-8 (bytes 0x80–0xFF of `\xNN` as their Latin-1 character).
fn push_char(out: &mut Vec<u8>, v: u32) {
    let c = char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_python2_vesseldict_repr() {
        let text = br#"{'v1': {'userkeys': [{'e': 65537L, 'n': 12345678901234567890123L}], 'ownerkey': {'e': 65537L, 'n': 99L}, 'oldmetadata': None, 'stopfilename': 'v1.stop', 'logfilename': 'v1.log', 'statusfilename': 'v1.status', 'resourcefilename': 'resource.v1', 'advertise': True, 'ownerinformation': '', 'status': 'Started'}, u'v2': {"x": (1, -2.5e3, ()), 'y': 'it\'s \x41\u00e9\n'}}"#;
        let v = parse(text).unwrap();
        let v1 = v.get("v1").unwrap();
        assert_eq!(v1.get("status"), Some(&Value::Str("Started".into())));
        assert_eq!(v1.get("advertise"), Some(&Value::Bool(true)));
        assert_eq!(v1.get("oldmetadata"), Some(&Value::None));
        let Some(Value::List(keys)) = v1.get("userkeys") else {
            panic!("userkeys")
        };
        assert_eq!(
            keys[0].get("n"),
            Some(&Value::Int("12345678901234567890123".into()))
        );
        let v2 = v.get("v2").unwrap();
        assert_eq!(
            v2.get("x"),
            Some(&Value::Tuple(vec![
                Value::Int("1".into()),
                Value::Float(-2500.0),
                Value::Tuple(vec![])
            ]))
        );
        assert_eq!(v2.get("y").and_then(Value::as_str), Some("it's Aé\n"));
        assert_eq!(parse(b" {} \n").unwrap(), Value::Dict(vec![]));
        assert_eq!(
            parse(b"[1,]").unwrap(),
            Value::List(vec![Value::Int("1".into())])
        );
    }

    #[test]
    fn rejects_malformed_input_with_an_offset() {
        for (text, offset) in [
            (&b"{'v1': "[..], 7),
            (b"{'v1' 1}", 6),
            (b"{'a': 1} x", 9),
            (b"{'a': os.system('x')}", 6),
            (b"'unterminated", 13),
            (b"[1 2]", 3),
            (b"{'a': 1..2}", 6),
            (b"'\\q'", 3),
            (b"", 0),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.offset, offset, "{:?}: {e}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        let e = parse(deep.as_bytes()).unwrap_err();
        assert_eq!(e.message, "nested too deeply");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
    }
}
