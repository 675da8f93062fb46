//! How a log line is written: the layout of `tracing-subscriber`'s default format,
//! `2026-12-04T20:11:31.847577Z  INFO chatserver::net: request method=GET path=/healthz
//! route="/healthz" status=200 ms=0.15`, but without its formatting machinery. That machinery
//! (a calendar date worked out for every line, every field name painted for a terminal even
//! when nothing is painted, numbers through `Debug`) was two-thirds of the cost of the request
//! line, itself about 7 % of a runtime worker's time under load.
//!
//! Without colours the bytes are tracing-subscriber's (the unit tests compare them). On a
//! terminal only the time (dimmed) and the level (coloured) are painted. Spans are not
//! written: the server opens none; one that is added must be logged as fields.
//!
//! What a value can bring from outside (a path, a name in an error) cannot forge a line or
//! drive the terminal: every control character but a tab (C0, DEL, C1), the line and
//! paragraph separators and the invisible direction and zero-width marks are written as
//! escapes (`\n`, `\u{1b}`, `\u{202e}`); quoted strings are escaped as Rust's `Debug` does.

use std::cell::RefCell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format `logging::init` installs.
pub struct Format;

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut out: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // An event from the `log` crate (r2d2, refinery) carries its real target in fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let ansi = out.has_ansi_escapes();
        timestamp(&mut out, ansi)?;
        out.write_str(level(meta.level(), ansi))?;
        out.write_str(meta.target())?;
        out.write_str(": ")?;
        let mut fields = Fields {
            out: &mut out,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        out.write_char('\n')
    }
}

/// The level between single spaces, right-aligned in five places (as `tracing` writes it).
fn level(level: &Level, ansi: bool) -> &'static str {
    match (*level, ansi) {
        (Level::TRACE, false) => " TRACE ",
        (Level::DEBUG, false) => " DEBUG ",
        (Level::INFO, false) => "  INFO ",
        (Level::WARN, false) => "  WARN ",
        (Level::ERROR, false) => " ERROR ",
        (Level::TRACE, true) => " \x1b[35mTRACE\x1b[0m ",
        (Level::DEBUG, true) => " \x1b[34mDEBUG\x1b[0m ",
        (Level::INFO, true) => "  \x1b[32mINFO\x1b[0m ",
        (Level::WARN, true) => "  \x1b[33mWARN\x1b[0m ",
        (Level::ERROR, true) => " \x1b[31mERROR\x1b[0m ",
    }
}

thread_local! {
    /// The second this thread last wrote a line in, and its date and time up to the second
    /// (`2026-12-04T20:11:31`): a calendar date is worked out once a second, not per line.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `2026-12-04T20:11:31.847577Z` (UTC, microseconds), dimmed on a terminal.
fn timestamp(out: &mut Writer<'_>, ansi: bool) -> fmt::Result {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if ansi {
        out.write_str("\x1b[2m")?;
    }
    let cached = SECOND.try_with(|cell| {
        let Ok(mut cell) = cell.try_borrow_mut() else {
            return None;
        };
        let (second, text) = &mut *cell;
        if *second != now.as_secs() {
            *second = now.as_secs();
            *text = to_the_second(now.as_secs());
        }
        Some(out.write_str(text))
    });
    // A line logged while the thread ends (its cache gone) works its date out itself.
    match cached.ok().flatten() {
        Some(written) => written?,
        None => out.write_str(&to_the_second(now.as_secs()))?,
    }
    write!(out, ".{:06}Z", now.subsec_micros())?;
    if ansi {
        out.write_str("\x1b[0m")?;
    }
    Ok(())
}

fn to_the_second(seconds: u64) -> String {
    let at = i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Writes an event's fields: the message as it is, then `name=value` for each other one.
struct Fields<'a, 'b> {
    out: &'a mut Writer<'b>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Writes the separator and `name=` (nothing for the message); `false` to skip the field.
    fn name(&mut self, field: &Field) -> bool {
        let name = field.name();
        // Metadata of an event from the `log` crate, already in the line's target.
        if self.result.is_err() || name.starts_with("log.") {
            return false;
        }
        if !std::mem::take(&mut self.first) {
            self.result = self.out.write_char(' ');
        }
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|()| self.out.write_str(name))
                .and_then(|()| self.out.write_char('='));
        }
        self.result.is_ok()
    }

    fn number(&mut self, field: &Field, text: &str) {
        if self.name(field) {
            self.result = self.out.write_str(text);
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.name(field) {
            return;
        }
        self.result = match field.name() {
            "message" => Escaped(self.out).write_str(value),
            _ => write!(self.out, "{value:?}"),
        };
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.number(field, if value { "true" } else { "false" });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.name(field) {
            return;
        }
        let mut out = Escaped(self.out);
        self.result = write!(out, "{value}");
        // As tracing-subscriber writes them: ` error.sources=[first, second]`.
        if value.source().is_some() {
            let name = field.name();
            self.result = self.result.and_then(|()| write!(out, " {name}.sources=["));
            let (mut source, mut comma) = (value.source(), "");
            while let Some(error) = source {
                self.result = self.result.and_then(|()| write!(out, "{comma}{error}"));
                (source, comma) = (error.source(), ", ");
            }
            self.result = self.result.and_then(|()| out.write_char(']'));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.name(field) {
            self.result = write!(Escaped(self.out), "{value:?}");
        }
    }
}

/// Passes text on with its control characters escaped (see the module's comment).
struct Escaped<'a, 'b>(&'a mut Writer<'b>);

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // C1 controls are U+0080 to U+009F, two bytes in UTF-8 of which the first is 0xC2;
        // the marks of `hidden` are three, of which the first is 0xE2.
        let plain = text
            .bytes()
            .all(|b| b >= 0x20 && b != 0x7f && b != 0xc2 && b != 0xe2);
        if plain {
            return self.0.write_str(text);
        }
        for c in text.chars() {
            match c {
                '\t' => self.0.write_char(c)?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                c if c.is_control() || hidden(c) => {
                    write!(self.0, "\\u{{{:x}}}", u32::from(c))?;
                }
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Characters that break a line in some viewers (U+2028, U+2029) or change what a reader
/// sees without being seen: zero-width marks and the direction overrides and isolates.
fn hidden(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// Collects what a subscriber with `Format` writes.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Collect {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Collect {
        type Writer = Collect;
        fn make_writer(&'a self) -> Collect {
            self.clone()
        }
    }

    /// The lines `log` writes with this format, and with `tracing-subscriber`'s own.
    fn both(log: impl Fn()) -> (String, String) {
        let ours = Collect::default();
        let theirs = Collect::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(Format)
            .with_writer(ours.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &log);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(theirs.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, &log);
        let text = |c: Collect| String::from_utf8(c.0.lock().unwrap().clone()).unwrap();
        (text(ours), text(theirs))
    }

    /// Everything after the timestamp (the two were written at different moments).
    fn after_time(lines: &str) -> Vec<&str> {
        lines.lines().map(|l| &l[l.find(' ').unwrap()..]).collect()
    }

    #[test]
    fn lines_are_laid_out_as_tracing_lays_them_out() {
        let (ours, theirs) = both(|| {
            tracing::info!(
                method = %"POST",
                path = %"/v1/messages/group/3",
                route = "/v1/messages/group/{id}",
                status = 201u16,
                ms = format_args!("{:.2}", 1.234),
                "request"
            );
            tracing::warn!(count = -3i64, ok = true, share = 0.5f64, "numbers");
            tracing::error!(error = %io::Error::other("disk full"), "cannot commit");
            tracing::debug!("not at this level");
        });
        assert_eq!(after_time(&ours), after_time(&theirs), "{ours}\n{theirs}");
        assert_eq!(
            ours.lines().count(),
            3,
            "the debug line is below the level: {ours}"
        );
        let stamp = ours.split(' ').next().unwrap();
        assert_eq!(stamp.len(), "2026-12-04T20:11:31.847577Z".len(), "{stamp}");
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok()
        );
    }

    #[test]
    fn an_outside_value_cannot_forge_a_line_or_reach_the_terminal() {
        let (ours, _) = both(|| {
            let path = "/a\n2026-12-04T00:00:00.000000Z  INFO forged\x1b[2J\u{9b}\x7f\u{2028}\u{202e}\tend – ok";
            tracing::info!(path = %path, name = path, "request {path}");
        });
        assert_eq!(ours.lines().count(), 1, "{ours}");
        for raw in ['\x1b', '\u{9b}', '\x7f', '\u{2028}', '\u{202e}'] {
            assert!(!ours.contains(raw), "{raw:?} in {ours}");
        }
        assert!(ours.contains("\\u{202e}\tend – ok"), "{ours}");
        assert!(ours.contains(r"\n2026") && ours.contains(r"\u{1b}[2J") && ours.contains("\tend"));
    }

    #[test]
    fn an_error_lists_its_sources() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("cannot open")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let (ours, theirs) = both(|| {
            let e = Outer(io::Error::other("no such file"));
            tracing::warn!(error = &e as &(dyn std::error::Error + 'static), "opening");
        });
        assert_eq!(after_time(&ours), after_time(&theirs), "{ours}\n{theirs}");
    }
}
