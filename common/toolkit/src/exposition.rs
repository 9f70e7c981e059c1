//! Exposition formats: prometheus-client writes OpenMetrics; this converts it to the classic
//! text format 0.0.4 for clients that do not ask for OpenMetrics, and picks one from `Accept`.

/// OpenMetrics 1.0 content type.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Classic text format content type.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which format to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    /// OpenMetrics when the `Accept` header lists it with a non-zero quality, text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            if !media.eq_ignore_ascii_case("application/openmetrics-text") {
                continue;
            }
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f64>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if !refused {
                return Format::OpenMetrics;
            }
        }
        Format::Text
    }

    /// The Content-Type header value.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// Converts an OpenMetrics exposition (as prometheus-client writes it) to text format 0.0.4:
/// drops `# EOF`, `# UNIT` lines, exemplars and `_created` samples; renames counter families to
/// their `_total` sample name; maps `info`/`stateset` to `gauge` and `unknown` to `untyped`.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    // prometheus-client writes HELP before TYPE; the HELP waits for the TYPE to learn the
    // family's text-format name (counters gain `_total`).
    let mut pending_help: Option<&str> = None;
    // Family being written (OpenMetrics name) and whether it may carry `_created` samples.
    let mut family = "";
    let mut has_created = false;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, pending_help.take(), None);
            pending_help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (suffix, text_type) = match ty {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "stateset" => ("", "gauge"),
                "gaugehistogram" => ("", "histogram"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            let text_name = if name.ends_with(suffix) {
                name.to_string()
            } else {
                format!("{name}{suffix}")
            };
            flush_help(&mut out, pending_help.take(), Some(&text_name));
            out.push_str("# TYPE ");
            out.push_str(&text_name);
            out.push(' ');
            out.push_str(text_type);
            out.push('\n');
            family = name;
            has_created = matches!(ty, "counter" | "histogram" | "summary" | "gaugehistogram");
            continue;
        }
        flush_help(&mut out, pending_help.take(), None);
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let sample = strip_exemplar(line);
        let name = sample.split(['{', ' ']).next().unwrap_or(sample);
        if has_created && name.strip_prefix(family) == Some("_created") {
            continue;
        }
        out.push_str(sample);
        out.push('\n');
    }
    flush_help(&mut out, pending_help, None);
    out
}

/// Writes a HELP line (`rest` = "name text"), renamed to `name` when given. OpenMetrics escapes
/// `"` in HELP; text 0.0.4 rejects that escape.
fn flush_help(out: &mut String, rest: Option<&str>, name: Option<&str>) {
    let Some(rest) = rest else { return };
    let (om_name, help) = rest.split_once(' ').unwrap_or((rest, ""));
    out.push_str("# HELP ");
    out.push_str(name.unwrap_or(om_name));
    out.push(' ');
    out.push_str(&help.replace("\\\"", "\""));
    out.push('\n');
}

/// Removes an OpenMetrics exemplar (` # {labels} value [timestamp]`) from a sample line, looking
/// only after the label set so a `#` inside a label value is left alone.
fn strip_exemplar(line: &str) -> &str {
    let mut after_labels = 0;
    if let Some(open) = line.find('{') {
        let name_part = &line[..open];
        if !name_part.contains(' ') {
            let mut in_quotes = false;
            let mut escaped = false;
            for (i, c) in line[open..].char_indices() {
                if escaped {
                    escaped = false;
                    continue;
                }
                match c {
                    '\\' if in_quotes => escaped = true,
                    '"' => in_quotes = !in_quotes,
                    '}' if !in_quotes => {
                        after_labels = open + i + 1;
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    match line[after_labels..].find(" # ") {
        Some(pos) => &line[..after_labels + pos],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_openmetrics_only_when_asked() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0, text/plain")),
            Format::Text
        );
    }

    #[test]
    fn converts_counters_info_units_exemplars() {
        let om = "# HELP req Requests.\n# TYPE req counter\nreq_total{a=\"x # y\"} 3 # {trace=\"1\"} 1.0\nreq_created 1.0\n# HELP b Build.\n# TYPE b info\nb_info{v=\"1\"} 1\n# HELP d Dur \\\"q\\\".\n# TYPE d gauge\n# UNIT d seconds\nd 1.5\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total{a=\"x # y\"} 3\n# HELP b_info Build.\n# TYPE b_info gauge\nb_info{v=\"1\"} 1\n# HELP d Dur \"q\".\n# TYPE d gauge\nd 1.5\n"
        );
    }
}
