//! A small XML-RPC codec: method calls with strings, ints, structs and arrays; responses with
//! string, int, boolean, double, struct, array, nil and faults. It is what Python's `xmlrpclib`
//! (CIB, lockserver) writes: `../shared/seattle-golden/cib_xmlrpc_exchanges.jsonl`.

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use seattle_exporter_toolkit::probe::ProbeFailure;
use tokio::time::Instant;

use crate::http_client::{Fetch, HttpClient, HttpMetrics, expect_2xx};

/// Nesting deeper than this is refused (a reply is a few levels deep).
const MAX_DEPTH: usize = 32;
/// XML events read from one reply at most; bodies are size-capped before this.
const MAX_TOKENS: usize = 500_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    Struct(Vec<(String, Value)>),
    Array(Vec<Value>),
    Nil,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A struct member by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(m) => m.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Seconds as a float (xmlrpclib sends `time.time()` as a double, ints are accepted too).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Double(d) => Some(*d),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// A decoded `methodResponse`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Value(Value),
    Fault { code: i64, message: String },
}

/// The reply is not XML-RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an XML-RPC reply: {0}")]
pub struct Malformed(pub &'static str);

/// `<?xml …?><methodCall>…` as xmlrpclib writes it.
pub fn encode_call(method: &str, params: &[Value]) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodCall>\n<methodName>");
    out.push_str(&escape(method));
    out.push_str("</methodName>\n<params>\n");
    for p in params {
        out.push_str("<param>\n");
        encode_value(&mut out, p);
        out.push_str("</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out
}

fn encode_value(out: &mut String, v: &Value) {
    out.push_str("<value>");
    match v {
        Value::Str(s) => {
            out.push_str("<string>");
            out.push_str(&escape(s.as_str()));
            out.push_str("</string>");
        }
        Value::Int(i) => out.push_str(&format!("<int>{i}</int>")),
        Value::Bool(b) => out.push_str(&format!("<boolean>{}</boolean>", u8::from(*b))),
        Value::Double(d) => out.push_str(&format!("<double>{d:?}</double>")),
        Value::Nil => out.push_str("<nil/>"),
        Value::Struct(members) => {
            out.push_str("<struct>\n");
            for (name, value) in members {
                out.push_str("<member>\n<name>");
                out.push_str(&escape(name.as_str()));
                out.push_str("</name>\n");
                encode_value(out, value);
                out.push_str("</member>\n");
            }
            out.push_str("</struct>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>\n");
            for item in items {
                encode_value(out, item);
            }
            out.push_str("</data></array>");
        }
    }
    out.push_str("</value>\n");
}

#[derive(Debug, PartialEq)]
enum Tok {
    Start(String),
    End(String),
    Text(String),
}

fn tokenize(body: &[u8]) -> Result<Vec<Tok>, Malformed> {
    let text = std::str::from_utf8(body).map_err(|_| Malformed("not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    let mut toks: Vec<Tok> = Vec::new();
    let push_text = |toks: &mut Vec<Tok>, s: &str| match toks.last_mut() {
        Some(Tok::Text(t)) => t.push_str(s),
        _ => toks.push(Tok::Text(s.to_string())),
    };
    loop {
        if toks.len() > MAX_TOKENS {
            return Err(Malformed("too many elements"));
        }
        let name = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
        match reader.read_event().map_err(|_| Malformed("bad XML"))? {
            Event::Start(e) => toks.push(Tok::Start(name(e.name().as_ref()))),
            Event::End(e) => toks.push(Tok::End(name(e.name().as_ref()))),
            Event::Text(t) => {
                let s = t.decode().map_err(|_| Malformed("bad text"))?;
                push_text(&mut toks, &s);
            }
            Event::CData(c) => {
                let s = c.decode().map_err(|_| Malformed("bad CDATA"))?;
                push_text(&mut toks, &s);
            }
            Event::GeneralRef(r) => {
                if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|_| Malformed("bad reference"))?
                {
                    push_text(&mut toks, c.encode_utf8(&mut [0; 4]));
                } else {
                    let n = r.decode().map_err(|_| Malformed("bad reference"))?;
                    let s = resolve_predefined_entity(&n).ok_or(Malformed("unknown entity"))?;
                    push_text(&mut toks, s);
                }
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions: not content.
            _ => {}
        }
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn skip_ws(&mut self) {
        while let Some(Tok::Text(t)) = self.peek() {
            if !t.trim().is_empty() {
                break;
            }
            self.pos += 1;
        }
    }

    fn start(&mut self, name: &str) -> Result<(), Malformed> {
        self.skip_ws();
        match self.toks.get(self.pos) {
            Some(Tok::Start(n)) if n == name => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(Malformed("unexpected element")),
        }
    }

    fn end(&mut self, name: &str) -> Result<(), Malformed> {
        self.skip_ws();
        match self.toks.get(self.pos) {
            Some(Tok::End(n)) if n == name => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(Malformed("unexpected end")),
        }
    }

    fn is_start(&mut self, name: &str) -> bool {
        self.skip_ws();
        matches!(self.peek(), Some(Tok::Start(n)) if n == name)
    }

    /// Text up to the end tag `name` (which is consumed).
    fn text_until(&mut self, name: &str) -> Result<String, Malformed> {
        let text = match self.peek() {
            Some(Tok::Text(t)) => {
                let t = t.clone();
                self.pos += 1;
                t
            }
            _ => String::new(),
        };
        match self.toks.get(self.pos) {
            Some(Tok::End(n)) if n == name => {
                self.pos += 1;
                Ok(text)
            }
            _ => Err(Malformed("unexpected element in text")),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed("nested too deep"));
        }
        self.start("value")?;
        // `<value>text</value>` without a type is a string.
        if let Some(Tok::Text(t)) = self.peek() {
            let t = t.clone();
            if matches!(self.toks.get(self.pos + 1), Some(Tok::End(n)) if n == "value") {
                self.pos += 2;
                return Ok(Value::Str(t));
            }
        }
        if matches!(self.peek(), Some(Tok::End(n)) if n == "value") {
            self.pos += 1;
            return Ok(Value::Str(String::new()));
        }
        self.skip_ws();
        let Some(Tok::Start(kind)) = self.peek() else {
            return Err(Malformed("value without type"));
        };
        let kind = kind.clone();
        self.pos += 1;
        let v = match kind.as_str() {
            "string" | "base64" | "dateTime.iso8601" => Value::Str(self.text_until(&kind)?),
            "int" | "i4" | "i8" => Value::Int(
                self.text_until(&kind)?
                    .trim()
                    .parse()
                    .map_err(|_| Malformed("bad int"))?,
            ),
            "boolean" => match self.text_until(&kind)?.trim() {
                "1" => Value::Bool(true),
                "0" => Value::Bool(false),
                _ => return Err(Malformed("bad boolean")),
            },
            "double" => Value::Double(
                self.text_until(&kind)?
                    .trim()
                    .parse()
                    .map_err(|_| Malformed("bad double"))?,
            ),
            "nil" => {
                self.end("nil")?;
                Value::Nil
            }
            "struct" => {
                let mut members = Vec::new();
                while self.is_start("member") {
                    self.pos += 1;
                    self.start("name")?;
                    let name = self.text_until("name")?;
                    let v = self.value(depth + 1)?;
                    self.end("member")?;
                    members.push((name, v));
                }
                self.end("struct")?;
                Value::Struct(members)
            }
            "array" => {
                self.start("data")?;
                let mut items = Vec::new();
                while self.is_start("value") {
                    items.push(self.value(depth + 1)?);
                }
                self.end("data")?;
                self.end("array")?;
                Value::Array(items)
            }
            _ => return Err(Malformed("unknown value type")),
        };
        self.end("value")?;
        Ok(v)
    }
}

/// Decodes a `methodResponse`: one param, or a fault.
pub fn parse_reply(body: &[u8]) -> Result<Reply, Malformed> {
    let mut p = Parser {
        toks: tokenize(body)?,
        pos: 0,
    };
    p.start("methodResponse")?;
    let reply = if p.is_start("fault") {
        p.pos += 1;
        let v = p.value(0)?;
        p.end("fault")?;
        let code = match v.get("faultCode") {
            Some(Value::Int(c)) => *c,
            _ => return Err(Malformed("fault without faultCode")),
        };
        let message = v
            .get("faultString")
            .and_then(Value::as_str)
            .ok_or(Malformed("fault without faultString"))?
            .to_string();
        Reply::Fault { code, message }
    } else {
        p.start("params")?;
        p.start("param")?;
        let v = p.value(0)?;
        p.end("param")?;
        p.end("params")?;
        Reply::Value(v)
    };
    p.end("methodResponse")?;
    p.skip_ws();
    if p.peek().is_some() {
        return Err(Malformed("content after the reply"));
    }
    Ok(reply)
}

/// One XML-RPC call; a fault is returned as `Reply::Fault` for the caller to classify.
pub async fn call(
    http: &HttpClient,
    url: &str,
    method: &str,
    params: &[Value],
    deadline: Instant,
    metrics: Option<&HttpMetrics>,
) -> Result<Reply, ProbeFailure> {
    let body = encode_call(method, params);
    let resp = http
        .fetch(&Fetch::post(url, "text/xml", body), deadline, metrics)
        .await?;
    expect_2xx(&resp)?;
    parse_reply(&resp.body).map_err(|e| ProbeFailure::new("bad_reply", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_xmlrpclib() {
        assert_eq!(
            encode_call("api_version", &[]),
            "<?xml version='1.0'?>\n<methodCall>\n<methodName>api_version</methodName>\n<params>\n</params>\n</methodCall>\n"
        );
        let call = encode_call(
            "get_urls",
            &[Value::Struct(vec![("a<b".into(), Value::Int(3))])],
        );
        assert!(call.contains("<name>a&lt;b</name>\n<value><int>3</int></value>\n"));
        // Our own encoding parses back.
        let reply = call
            .replace("methodCall", "methodResponse")
            .replace("<methodName>get_urls</methodName>\n", "");
        assert_eq!(
            parse_reply(reply.as_bytes()).unwrap(),
            Reply::Value(Value::Struct(vec![("a<b".into(), Value::Int(3))]))
        );
    }

    #[test]
    fn parses_every_type() {
        let xml = "<?xml version='1.0'?><methodResponse><params><param><value><array><data>\
            <value>bare</value><value></value><value><i4>-7</i4></value><value><boolean>1</boolean></value>\
            <value><double>1795495173.49</double></value><value><nil/></value>\
            <value><string>x &amp; &#65;</string></value></data></array></value></param></params></methodResponse>";
        assert_eq!(
            parse_reply(xml.as_bytes()).unwrap(),
            Reply::Value(Value::Array(vec![
                Value::Str("bare".into()),
                Value::Str(String::new()),
                Value::Int(-7),
                Value::Bool(true),
                Value::Double(1795495173.49),
                Value::Nil,
                Value::Str("x & A".into()),
            ]))
        );
    }

    #[test]
    fn rejects_junk() {
        for junk in [
            &b"<html><body>Not Found</body></html>"[..],
            b"",
            b"\xff\xfe",
            b"<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>",
            b"<methodResponse><params><param><value><int>1</int></value></param></params></methodResponse><x/>",
            b"<methodResponse><params><param><value><struct><member><name>a</name></member></struct></value></param></params></methodResponse>",
        ] {
            assert!(parse_reply(junk).is_err(), "{junk:?}");
        }
        let deep = format!(
            "<methodResponse><params><param>{}{}</param></params></methodResponse>",
            "<value><array><data>".repeat(100),
            "</data></array></value>".repeat(100)
        );
        assert_eq!(
            parse_reply(deep.as_bytes()),
            Err(Malformed("nested too deep"))
        );
    }

    /// Every reply the real CIB gave parses, faults included.
    #[test]
    fn golden_cib_exchanges() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/seattle-golden/cib_xmlrpc_exchanges.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let (mut values, mut faults) = (0, 0);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(req) = v["request_xml"].as_str() {
                // Requests are what our encoder must produce for the simple calls.
                if v["method"] == "api_version" {
                    assert_eq!(encode_call("api_version", &[]), req);
                }
            }
            let Some(xml) = v["response_xml"].as_str() else {
                continue;
            };
            match parse_reply(xml.as_bytes()).unwrap() {
                Reply::Value(val) => {
                    values += 1;
                    if v["method"] == "api_version" {
                        assert_eq!(val, Value::Str("2.0".into()));
                    }
                    if v["method"] == "build_installers" {
                        assert_eq!(
                            val.get("build_id").and_then(Value::as_str).map(str::len),
                            Some(40)
                        );
                    }
                }
                Reply::Fault { code, message } => {
                    faults += 1;
                    assert_eq!(code, 1);
                    assert!(message.starts_with("<class '"), "{message}");
                }
            }
        }
        assert_eq!((values, faults), (4, 4));
    }
}
