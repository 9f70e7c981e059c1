//! Logging through `tracing`, in logfmt-like `key=value` lines or JSON.

use tracing_subscriber::fmt::format::FmtSpan;

use crate::flags::{LogFormat, LogLevel};

impl LogLevel {
    fn as_filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
        }
    }
}

/// Installs the global subscriber, writing to stderr. Call once, first thing in `main`.
/// Returns an error if a subscriber is already installed.
pub fn init(level: LogLevel, format: LogFormat) -> anyhow::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level.as_filter())
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Logfmt => builder.event_format(logfmt::Logfmt).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

mod logfmt {
    //! A small logfmt event formatter: `ts=… level=… target=… msg="…" key=value`.
    use std::fmt::{self, Write as _};

    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
    use tracing_subscriber::registry::LookupSpan;

    pub struct Logfmt;

    impl<S, N> FormatEvent<S, N> for Logfmt
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            _ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> fmt::Result {
            let mut ts = String::new();
            SystemTime.format_time(&mut Writer::new(&mut ts))?;
            let meta = event.metadata();
            write!(
                writer,
                "ts={} level={} target={}",
                ts,
                meta.level().as_str().to_ascii_lowercase(),
                meta.target()
            )?;
            let mut visitor = Fields(String::new());
            event.record(&mut visitor);
            writeln!(writer, "{}", visitor.0)
        }
    }

    struct Fields(String);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            push(&mut self.0, field.name(), value);
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            push(&mut self.0, field.name(), &format!("{value:?}"));
        }
    }

    fn push(out: &mut String, key: &str, value: &str) {
        let key = if key == "message" { "msg" } else { key };
        let needs_quotes = value.is_empty()
            || value
                .chars()
                .any(|c| c == ' ' || c == '=' || c == '"' || c.is_control());
        if needs_quotes {
            let _ = write!(out, " {key}={value:?}");
        } else {
            let _ = write!(out, " {key}={value}");
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn quotes_values_with_spaces() {
            let mut s = String::new();
            super::push(&mut s, "message", "hello world");
            super::push(&mut s, "addr", "127.0.0.1:80");
            assert_eq!(s, " msg=\"hello world\" addr=127.0.0.1:80");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test in this binary that installs the global logger.
    #[test]
    fn installs_once() {
        assert!(init(LogLevel::Debug, LogFormat::Json).is_ok());
        tracing::info!(answer = 42, "logger installed");
        assert!(init(LogLevel::Info, LogFormat::Logfmt).is_err());
    }
}
