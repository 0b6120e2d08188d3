//! Scripts: the subset of Elasticsearch's Painless that users write in `_update`,
//! `_update_by_query`, `_reindex`, scripted sorts and `bucket_script`.
//!
//! [`Script::compile`] lexes (`lexer.rs`) and parses (`parser.rs`) a source into a tree
//! (`ast.rs`); [`Script::execute`] runs it with a tree-walking interpreter (`interp.rs`) over
//! [`Value`]s (`value.rs`) bound to variables the host names (`ctx`, `params`, `doc`). The
//! subset: expression statements, `def`/typed declarations, `if`/`else`, `return`, assignment
//! with `=`, `+=`, `-=`, `*=`, `/=`, `%=`, `++`/`--`, arithmetic with Java's int/long/double
//! promotion and wrapping, string concatenation, comparisons, `&&`/`||`/`!`, `?:`, `?.`, list and
//! map literals, field access by `.name` and `['name']`, the common methods of maps, lists and
//! strings, and `Math`. Anything else (loops, lambdas, `new`, casts, regexes, bit operators) is
//! refused at compile time with a reason that names it. Everything is bounded: the source's
//! size ([`SCRIPT_BYTES_MAX`]), the nesting of the tree ([`NESTING_DEPTH_MAX`]) and the work of
//! one execution ([`EXECUTION_STEPS_MAX`]), so no script can hang or exhaust a request thread.
//!
//! The crate depends on none of ours; `search` and `api` use it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)
)]

mod ast;
mod error;
mod interp;
mod lexer;
mod parser;
mod value;

pub use error::{Phase, ScriptError, Span};
pub use value::{Map, Value};

/// Longest script source, in bytes, as Elasticsearch's `script.max_size_in_bytes` default;
/// a longer one is refused at compile time.
pub const SCRIPT_BYTES_MAX: usize = 65_535;
/// Deepest nesting of expressions and blocks the parser accepts; deeper input is refused at
/// compile time, so the recursive parser and interpreter stay within a request thread's stack.
pub const NESTING_DEPTH_MAX: usize = 64;
/// Units of work one execution may spend (one per evaluated node, plus one per element of
/// every value copied, compared or searched); beyond it the execution stops with a runtime
/// error, as Painless stops a runaway loop.
pub const EXECUTION_STEPS_MAX: u64 = 1_000_000;
/// Longest string an execution may build, in bytes; beyond it the execution stops.
pub const STRING_BYTES_MAX: usize = 1024 * 1024;

/// A compiled script: its source and its tree, immutable and shareable between threads.
#[derive(Debug, Clone)]
pub struct Script {
    source: String,
    body: Vec<ast::Stmt>,
}

impl Script {
    /// Parses `source`, or explains the first construct outside the subset.
    pub fn compile(source: &str) -> Result<Script, ScriptError> {
        if source.len() > SCRIPT_BYTES_MAX {
            return Err(ScriptError::compile(
                source,
                Span::new(0, 0),
                format!(
                    "exceeded max allowed inline script size in bytes [{SCRIPT_BYTES_MAX}] with size [{}]",
                    source.len()
                ),
            ));
        }
        let tokens = lexer::lex(source)
            .map_err(|(span, reason)| ScriptError::compile(source, span, reason))?;
        let body = parser::parse(&tokens)
            .map_err(|(span, reason)| ScriptError::compile(source, span, reason))?;
        Ok(Script {
            source: source.to_owned(),
            body,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the script with `variables` bound by name (the host's `ctx`, `params`, `doc`),
    /// which it may change in place. Returns what the script returned: the value of its
    /// `return`, else of its last expression statement, else null.
    pub fn execute(&self, variables: &mut Map) -> Result<Value, ScriptError> {
        interp::execute(&self.body, variables).map_err(|failure| {
            ScriptError::runtime(&self.source, failure.span, failure.kind, failure.reason)
        })
    }

    /// The fields the script reads as `doc['f']` or `doc.f`, in order of first use, so a host
    /// binds only those; `None` when it indexes `doc` with a computed name.
    pub fn doc_fields(&self) -> Option<Vec<String>> {
        let mut fields = Vec::new();
        let mut known = true;
        for stmt in &self.body {
            ast::visit_stmt(stmt, &mut |expr| {
                let (target, name) = match &expr.kind {
                    ast::ExprKind::Index { target, index } => match &index.kind {
                        ast::ExprKind::Literal(Value::Str(name)) => (target, Some(name)),
                        _ => (target, None),
                    },
                    ast::ExprKind::Member { target, name, .. } => (target, Some(name)),
                    _ => return,
                };
                if !matches!(&target.kind, ast::ExprKind::Var(var) if var == "doc") {
                    return;
                }
                match name {
                    Some(name) if !fields.contains(name) => fields.push(name.clone()),
                    Some(_) => {}
                    None => known = false,
                }
            });
        }
        known.then_some(fields)
    }

    /// The tree as an S-expression, for the parser's snapshot tests.
    pub fn render(&self) -> String {
        self.body
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}
