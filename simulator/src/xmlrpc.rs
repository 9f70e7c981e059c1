//! A small XML-RPC codec: parses method calls, writes responses the way Python 2's `xmlrpclib`
//! does (the format of golden `cib_xmlrpc_exchanges.jsonl`).

#[derive(Debug, Clone, PartialEq)]
pub enum XVal {
    Str(String),
    Int(i64),
    Bool(bool),
    Double(f64),
    Array(Vec<XVal>),
    /// Members in order.
    Struct(Vec<(String, XVal)>),
    Nil,
}

impl XVal {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            XVal::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn get(&self, key: &str) -> Option<&XVal> {
        match self {
            XVal::Struct(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn enc(v: &XVal, out: &mut String) {
    match v {
        XVal::Str(s) => out.push_str(&format!("<value><string>{}</string></value>\n", escape(s))),
        XVal::Int(i) => out.push_str(&format!("<value><int>{i}</int></value>\n")),
        XVal::Bool(b) => out.push_str(&format!(
            "<value><boolean>{}</boolean></value>\n",
            u8::from(*b)
        )),
        XVal::Double(d) => out.push_str(&format!("<value><double>{d}</double></value>\n")),
        XVal::Nil => out.push_str("<value><nil/></value>\n"),
        XVal::Array(items) => {
            out.push_str("<value><array><data>\n");
            for i in items {
                enc(i, out);
            }
            out.push_str("</data></array></value>\n");
        }
        XVal::Struct(members) => {
            out.push_str("<value><struct>\n");
            for (k, v) in members {
                out.push_str(&format!("<member>\n<name>{}</name>\n", escape(k)));
                enc(v, out);
                out.push_str("</member>\n");
            }
            out.push_str("</struct></value>\n");
        }
    }
}

pub fn response(v: &XVal) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n");
    enc(v, &mut out);
    out.push_str("</param>\n</params>\n</methodResponse>\n");
    out
}

pub fn fault(code: i64, text: &str) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n");
    enc(
        &XVal::Struct(vec![
            ("faultCode".into(), XVal::Int(code)),
            ("faultString".into(), XVal::Str(text.into())),
        ]),
        &mut out,
    );
    out.push_str("</fault>\n</methodResponse>\n");
    out
}

/// A cursor over the XML text.
struct P<'a> {
    s: &'a str,
    depth: usize,
}

/// Nesting bound so hostile input cannot recurse deeply.
const MAX_DEPTH: usize = 64;

impl<'a> P<'a> {
    fn ws(&mut self) {
        self.s = self.s.trim_start();
    }
    fn eat(&mut self, tag: &str) -> bool {
        self.ws();
        if let Some(r) = self.s.strip_prefix(tag) {
            self.s = r;
            true
        } else {
            false
        }
    }
    fn need(&mut self, tag: &str) -> Option<()> {
        self.eat(tag).then_some(())
    }
    /// Text up to `end`, consuming `end`.
    fn text_until(&mut self, end: &str) -> Option<String> {
        let i = self.s.find(end)?;
        let t = unescape(&self.s[..i]);
        self.s = &self.s[i + end.len()..];
        Some(t)
    }
    fn value(&mut self) -> Option<XVal> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        self.need("<value>")?;
        let v = if self.s.trim_start().starts_with("</value>") {
            XVal::Str(String::new())
        } else if !self.s.trim_start().starts_with('<') {
            XVal::Str(self.text_until("</value>")?)
        } else if self.eat("<string>") {
            XVal::Str(self.text_until("</string>")?)
        } else if self.eat("<string/>") {
            XVal::Str(String::new())
        } else if self.eat("<int>") {
            XVal::Int(self.text_until("</int>")?.trim().parse().ok()?)
        } else if self.eat("<i4>") {
            XVal::Int(self.text_until("</i4>")?.trim().parse().ok()?)
        } else if self.eat("<boolean>") {
            XVal::Bool(self.text_until("</boolean>")?.trim() == "1")
        } else if self.eat("<double>") {
            XVal::Double(self.text_until("</double>")?.trim().parse().ok()?)
        } else if self.eat("<nil/>") {
            XVal::Nil
        } else if self.eat("<array>") {
            self.need("<data>")?;
            let mut items = Vec::new();
            while !self.eat("</data>") {
                items.push(self.value()?);
            }
            self.need("</array>")?;
            XVal::Array(items)
        } else if self.eat("<struct>") {
            let mut members = Vec::new();
            while !self.eat("</struct>") {
                self.need("<member>")?;
                self.need("<name>")?;
                let name = self.text_until("</name>")?;
                let v = self.value()?;
                self.need("</member>")?;
                members.push((name, v));
            }
            XVal::Struct(members)
        } else {
            return None;
        };
        if !matches!(v, XVal::Str(_)) || self.s.trim_start().starts_with("</value>") {
            self.need("</value>")?;
        }
        self.depth -= 1;
        Some(v)
    }
}

/// Parses a `<methodCall>`: (method name, params). None for anything malformed.
pub fn parse_call(xml: &str) -> Option<(String, Vec<XVal>)> {
    let start = xml.find("<methodCall>")?;
    let mut p = P {
        s: &xml[start + "<methodCall>".len()..],
        depth: 0,
    };
    p.need("<methodName>")?;
    let name = p.text_until("</methodName>")?.trim().to_string();
    let mut params = Vec::new();
    if p.eat("<params>") {
        while !p.eat("</params>") {
            p.need("<param>")?;
            params.push(p.value()?);
            p.need("</param>")?;
        }
    } else {
        p.eat("<params/>");
    }
    p.need("</methodCall>")?;
    Some((name, params))
}

/// Builds a method call (for tests and clients).
pub fn call(name: &str, params: &[XVal]) -> String {
    let mut out =
        format!("<?xml version='1.0'?>\n<methodCall>\n<methodName>{name}</methodName>\n<params>\n");
    for p in params {
        out.push_str("<param>\n");
        enc(p, &mut out);
        out.push_str("</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_golden_shapes() {
        assert_eq!(
            response(&XVal::Str("2.0".into())),
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string>2.0</string></value>\n</param>\n</params>\n</methodResponse>\n"
        );
        let c = call(
            "f",
            &[XVal::Array(vec![XVal::Struct(vec![
                ("owner".into(), XVal::Str("o".into())),
                ("percentage".into(), XVal::Int(80)),
            ])])],
        );
        let (n, p) = parse_call(&c).unwrap();
        assert_eq!(n, "f");
        assert_eq!(
            p[0],
            XVal::Array(vec![XVal::Struct(vec![
                ("owner".into(), XVal::Str("o".into())),
                ("percentage".into(), XVal::Int(80)),
            ])])
        );
        assert!(parse_call("<methodCall><methodName>x").is_none());
        assert!(parse_call(&"<value>".repeat(1000)).is_none());
    }
}
