//! A script's failure as Elasticsearch reports one: a `script_exception` whose reason is
//! "compile error" or "runtime error", with the script, its `lang`, a `script_stack` that points
//! at the construct, a `position`, and the Java exception under it (`caused_by`).

use std::fmt;

/// Where a construct sits in the source: byte offsets, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    pub(crate) fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// When a script failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Compile,
    Runtime,
}

/// Characters of context shown on each side of the failing construct in `script_stack`.
const STACK_CONTEXT_CHARS: usize = 25;

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError {
    pub phase: Phase,
    /// The Java exception type Painless would report under the `script_exception`
    /// (`illegal_argument_exception`, `null_pointer_exception`, `class_cast_exception`, …).
    pub cause_type: &'static str,
    pub cause_reason: String,
    /// The byte offset of the failing construct.
    pub offset: usize,
    /// The window of the source shown in `script_stack`, as byte offsets.
    pub window: Span,
    /// `script_stack`: the window (with `...` where cut) and a line pointing at the offset.
    pub script_stack: Vec<String>,
    pub script: String,
}

impl ScriptError {
    pub(crate) fn compile(source: &str, span: Span, reason: String) -> ScriptError {
        ScriptError::new(
            Phase::Compile,
            source,
            span,
            "illegal_argument_exception",
            reason,
        )
    }

    pub(crate) fn runtime(
        source: &str,
        span: Span,
        cause_type: &'static str,
        reason: String,
    ) -> ScriptError {
        ScriptError::new(Phase::Runtime, source, span, cause_type, reason)
    }

    /// A script whose result must be a number (a sort script) returned a `type_name`, as
    /// Painless fails its cast.
    pub fn not_a_number(source: &str, type_name: &str) -> ScriptError {
        ScriptError::new(
            Phase::Runtime,
            source,
            Span::new(0, source.len()),
            "class_cast_exception",
            format!("Cannot cast {type_name} to java.lang.Number"),
        )
    }

    /// A string sort script's result that is not a string: Painless's `StringSortScript`
    /// returns a `String`, so another type fails its cast and null its dereference.
    pub fn not_a_string(source: &str, type_name: &str) -> ScriptError {
        let (cause_type, cause_reason) = if type_name == "null" {
            (
                "null_pointer_exception",
                "a string sort script returned null".to_string(),
            )
        } else {
            (
                "class_cast_exception",
                format!("Cannot cast {type_name} to java.lang.String"),
            )
        };
        ScriptError::new(
            Phase::Runtime,
            source,
            Span::new(0, source.len()),
            cause_type,
            cause_reason,
        )
    }

    fn new(
        phase: Phase,
        source: &str,
        span: Span,
        cause_type: &'static str,
        cause_reason: String,
    ) -> ScriptError {
        let offset = floor_boundary(source, span.start.min(source.len()));
        let start = floor_boundary(source, offset.saturating_sub(STACK_CONTEXT_CHARS));
        let end = floor_boundary(
            source,
            span.end
                .max(offset)
                .saturating_add(STACK_CONTEXT_CHARS)
                .min(source.len()),
        );
        let snippet = source
            .get(start..end)
            .unwrap_or_default()
            .replace('\n', " ");
        let prefix = if start > 0 { "... " } else { "" };
        let suffix = if end < source.len() { " ..." } else { "" };
        let pointer_column = prefix.chars().count()
            + source
                .get(start..offset)
                .unwrap_or_default()
                .chars()
                .count();
        ScriptError {
            phase,
            cause_type,
            cause_reason,
            offset,
            window: Span::new(start, end),
            script_stack: vec![
                format!("{prefix}{snippet}{suffix}"),
                format!("{}^---- HERE", " ".repeat(pointer_column)),
            ],
            script: source.to_owned(),
        }
    }

    /// The `reason` of the `script_exception` itself.
    pub fn reason(&self) -> &'static str {
        match self.phase {
            Phase::Compile => "compile error",
            Phase::Runtime => "runtime error",
        }
    }
}

fn floor_boundary(source: &str, mut index: usize) -> usize {
    while index > 0 && !source.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason(), self.cause_reason)
    }
}

impl std::error::Error for ScriptError {}
