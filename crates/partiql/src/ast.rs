//! The syntax tree of the QLDB PartiQL dialect: what the parser produces and the ledger evaluates.
//!
//! The tree is purely syntactic. It does not know which names are tables and which are variables,
//! nor whether a function exists: the evaluator resolves both, because only it knows the catalog and
//! the scopes. Names of keywords, functions and types are stored lowercased; identifiers keep the
//! spelling of the source together with whether they were double-quoted, which decides whether
//! they match case-sensitively.
//!
//! The tree holds no source positions, so that two parses of equivalent text compare equal. Every
//! node renders as an S-expression through `Display` (see `display.rs`), which is the stable form
//! that the snapshot tests compare.
//!
//! Changes to this module are additive only: the ledger codes against it.

/// One PartiQL statement, as sent in one QLDB `ExecuteStatement` call.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE TABLE T [WITH (aws_tags = `{...}`)]`.
    CreateTable(CreateTable),
    /// `DROP TABLE T`: inactivates the table; its history stays.
    DropTable(DropTable),
    /// `UNDROP TABLE "tableId"`: reactivates a dropped table by its id.
    UndropTable(UndropTable),
    /// `CREATE INDEX ON T (path)`.
    CreateIndex(CreateIndex),
    /// `DROP INDEX "indexId" ON T [WITH (purge = true)]`.
    DropIndex(DropIndex),
    /// `INSERT INTO T VALUE {...}`, `INSERT INTO T << ... >>`, `INSERT INTO T ?`.
    Insert(Insert),
    /// `UPDATE T ... SET/REMOVE/INSERT INTO ... [WHERE]` and the FROM-first form
    /// `FROM T ... [WHERE] SET/REMOVE/INSERT INTO ...`.
    Update(Update),
    /// `DELETE FROM T [AS x] [BY id] [WHERE ...]`.
    Delete(Delete),
    /// `SELECT ...`.
    Select(Box<Select>),
}

/// A name written in the query: a table, a variable, a field or an alias.
///
/// A regular identifier (`Vehicle`) is matched case-insensitively by PartiQL rules; a double-quoted
/// identifier (`"Vehicle"`) is matched exactly. `name` holds the text as written, without quotes
/// and with `""` escapes resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The name as written, without quotes.
    pub name: String,
    /// True for a double-quoted identifier, which matches case-sensitively.
    pub quoted: bool,
}

impl Ident {
    /// A regular (case-insensitive) identifier.
    pub fn regular(name: impl Into<String>) -> Self {
        Ident {
            name: name.into(),
            quoted: false,
        }
    }

    /// A double-quoted (case-sensitive) identifier.
    pub fn quoted(name: impl Into<String>) -> Self {
        Ident {
            name: name.into(),
            quoted: true,
        }
    }

    /// Whether this identifier refers to `candidate` under PartiQL's rules: exact for quoted
    /// identifiers, ASCII case-insensitive otherwise.
    pub fn matches(&self, candidate: &str) -> bool {
        if self.quoted {
            self.name == candidate
        } else {
            self.name.eq_ignore_ascii_case(candidate)
        }
    }
}

/// `CREATE TABLE table [WITH (name = value, ...)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// The new table's name.
    pub table: Ident,
    /// Options of the `WITH (...)` clause in source order, e.g. `aws_tags = `{a: "b"}``; empty
    /// when there is no `WITH`.
    pub options: Vec<WithOption>,
}

/// `DROP TABLE table`.
#[derive(Debug, Clone, PartialEq)]
pub struct DropTable {
    /// The table to drop.
    pub table: Ident,
}

/// `UNDROP TABLE "tableId"`.
#[derive(Debug, Clone, PartialEq)]
pub struct UndropTable {
    /// The id of the dropped table (QLDB writes it as a quoted identifier).
    pub table_id: Ident,
}

/// `CREATE INDEX ON table (path)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateIndex {
    /// The table to index.
    pub table: Ident,
    /// The indexed field: an [`Expr::Var`] for a top-level field (`(VIN)`) or an [`Expr::Path`]
    /// rooted at one (`(Owner.PersonId)`).
    pub field: Expr,
}

/// `DROP INDEX "indexId" ON table [WITH (purge = true)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DropIndex {
    /// The id of the index (QLDB writes it as a quoted identifier).
    pub index_id: Ident,
    /// The table the index belongs to.
    pub table: Ident,
    /// Options of the `WITH (...)` clause in source order; empty when there is no `WITH`.
    pub options: Vec<WithOption>,
}

/// One `name = value` of a DDL `WITH (...)` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct WithOption {
    /// The option's name, e.g. `aws_tags` or `purge`.
    pub name: Ident,
    /// The option's value, e.g. an [`Expr::Ion`] or a boolean literal.
    pub value: Expr,
}

/// `INSERT INTO table ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    /// The table that receives the documents.
    pub table: Ident,
    /// What to insert.
    pub source: InsertSource,
}

/// The documents of an [`Insert`].
#[derive(Debug, Clone, PartialEq)]
pub enum InsertSource {
    /// `VALUE expr`: exactly one document.
    Value(Expr),
    /// Any other expression: `<< {...}, {...} >>`, `?` or `[...]`. When it evaluates to a list or
    /// bag each element is one document; when it evaluates to a struct it is one document.
    Collection(Expr),
}

/// Which syntax an [`Update`] was written in; both mean the same, the form only matters for
/// printing the statement back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateForm {
    /// `UPDATE T [AS x] [BY id] ops [WHERE cond]`.
    Update,
    /// `FROM T [AS x] [BY id] [WHERE cond] ops`.
    FromFirst,
}

/// A statement that modifies documents in place: `UPDATE` or the FROM-first DML form.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The table and its bindings.
    pub target: DmlTarget,
    /// The modifications, applied in order to every document the condition selects; never empty.
    pub ops: Vec<DmlOp>,
    /// The condition; `None` selects every document of the table.
    pub condition: Option<Expr>,
    /// The syntax used.
    pub form: UpdateForm,
}

/// `DELETE FROM T [AS x] [BY id] [WHERE cond]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    /// The table and its bindings.
    pub target: DmlTarget,
    /// The condition; `None` deletes every document of the table.
    pub condition: Option<Expr>,
}

/// The table that a DML statement modifies and the names bound to each document.
#[derive(Debug, Clone, PartialEq)]
pub struct DmlTarget {
    /// The table.
    pub table: Ident,
    /// `[AS] x`: the name of the current document (its user data); when absent the document's
    /// fields are reachable by the table's name or unqualified.
    pub alias: Option<Ident>,
    /// `AT pos`: rarely used for tables; kept so every binding of the FROM grammar is accepted.
    pub at: Option<Ident>,
    /// `BY id`: the name bound to the document id (`metadata.id`).
    pub by: Option<Ident>,
}

/// One modification of an [`Update`].
#[derive(Debug, Clone, PartialEq)]
pub enum DmlOp {
    /// `SET path = value`: creates or replaces the field or element at `path`.
    Set {
        /// Where to write: a variable or path rooted at the document alias or a field name.
        path: Expr,
        /// The value to write.
        value: Expr,
    },
    /// `REMOVE path`: removes the field or element at `path`.
    Remove {
        /// What to remove.
        path: Expr,
    },
    /// `INSERT INTO path VALUE value [AT position]`: inserts into the collection or struct at
    /// `path`. For a list `position` is the index; for a struct it is the new field's name.
    InsertInto {
        /// The collection or struct to insert into.
        path: Expr,
        /// The value to insert.
        value: Expr,
        /// The position or key; `None` appends to a list or bag.
        position: Option<Expr>,
    },
}

/// Whether duplicates are kept: `SELECT` / `SELECT ALL` versus `SELECT DISTINCT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQuantifier {
    /// Keep every row (the default).
    All,
    /// Remove duplicate rows.
    Distinct,
}

/// `SELECT [DISTINCT] projection [FROM ...] [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// `DISTINCT` or not.
    pub quantifier: SetQuantifier,
    /// What each row produces.
    pub projection: Projection,
    /// The sources; `None` when the query has no `FROM` (one row with no bindings).
    pub from: Option<FromItem>,
    /// The `WHERE` condition.
    pub condition: Option<Expr>,
    /// `ORDER BY` keys, most significant first; empty when absent.
    pub order_by: Vec<OrderKey>,
    /// `LIMIT n`.
    pub limit: Option<Expr>,
    /// `OFFSET n`, a Sluice extension beyond QLDB.
    pub offset: Option<Expr>,
}

/// The projection of a [`Select`].
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    /// `SELECT *`: a struct merging the fields of every binding of the row.
    Star,
    /// `SELECT VALUE expr`: each row produces the value itself, not a struct.
    Value(Expr),
    /// `SELECT item, item, ...`: each row produces a struct.
    Items(Vec<ProjectItem>),
}

/// One item of a [`Projection::Items`] list.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectItem {
    /// `expr [AS alias]`. Without an alias the output field is named after the last step of a
    /// path or variable (`r.VIN` gives `VIN`); other expressions get `_1`, `_2`, ... by their
    /// 1-based position in the list, as PartiQL does.
    Expr {
        /// The projected value.
        expr: Expr,
        /// The output field name, when written.
        alias: Option<Ident>,
    },
    /// `expr.*`: merges every field of the struct `expr` into the output.
    AllFields(Expr),
}

/// The `FROM` clause: a tree of scans joined together.
#[derive(Debug, Clone, PartialEq)]
pub enum FromItem {
    /// One source with its bindings.
    Scan(Scan),
    /// Two sources joined. A comma between sources is a [`JoinKind::Cross`] join; later sources
    /// may refer to the bindings of earlier ones (`FROM T AS t, t.items AS i` iterates the items
    /// of each `t`).
    Join {
        /// Which join.
        kind: JoinKind,
        /// The left side (everything before the join, so the tree leans left).
        left: Box<FromItem>,
        /// The right side.
        right: Box<FromItem>,
        /// The `ON` condition; `None` for cross joins.
        on: Option<Expr>,
    },
}

/// The kind of a [`FromItem::Join`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// `,` or `CROSS JOIN`: every combination.
    Cross,
    /// `[INNER] JOIN ... ON`: the combinations that satisfy `ON`.
    Inner,
    /// `LEFT [OUTER] JOIN ... ON`: as inner, plus each left row without a match, with the right
    /// bindings `NULL`. QLDB supports only inner joins; this is parsed so the evaluator can
    /// refuse it with a clear message.
    Left,
}

/// One source of a `FROM` clause: `source [AS] x [AT i] [BY id]`.
///
/// The source is an expression; the evaluator resolves it:
/// - a regular or quoted [`Expr::Var`] that names a binding of an earlier source or an enclosing
///   query is that value; otherwise it names a table, including the committed view
///   `_ql_committed_T` and the system table names;
/// - [`Expr::Path`] such as `t.items` is a nested collection of an earlier binding, and
///   `information_schema.user_tables` is the system catalog view;
/// - [`Expr::Call`] named `history` is the history function: `history(T)`,
///   `history(T, start)`, `history(T, start, end)` with Ion timestamps as arguments;
/// - any other expression (a subquery, a literal collection, a `?` parameter) is evaluated and
///   iterated.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// What to iterate.
    pub source: Expr,
    /// `[AS] x`: the name of each element.
    pub alias: Option<Ident>,
    /// `AT i`: the name of each element's position (list index or struct key).
    pub at: Option<Ident>,
    /// `BY id`: the name of each document's id (`metadata.id`), for tables.
    pub by: Option<Ident>,
}

/// One key of `ORDER BY`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    /// The value sorted on.
    pub expr: Expr,
    /// The direction; ascending unless `DESC` was written.
    pub direction: OrderDirection,
}

/// The direction of an [`OrderKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderDirection {
    /// `ASC` (the default).
    Asc,
    /// `DESC`.
    Desc,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A PartiQL literal: number, string, boolean, `NULL` or `MISSING`.
    Lit(Literal),
    /// An Ion literal in backticks; holds the raw Ion text between the backticks, untouched, so
    /// the ledger can parse it with its Ion reader.
    Ion(String),
    /// A `?` parameter; the number is its 0-based position among the statement's parameters,
    /// in order of appearance in the text.
    Param(usize),
    /// A name: a variable, an alias, a table or an unqualified field of the current document.
    Var(Ident),
    /// Navigation from a root value through fields and elements: `a.b`, `a['b']`, `a[0]`,
    /// `a[*]`, `a.*`. `steps` is never empty.
    Path {
        /// The value navigated from: usually a [`Expr::Var`], possibly any expression such as a
        /// parenthesized subquery or a function call.
        root: Box<Expr>,
        /// The steps, applied left to right.
        steps: Vec<PathStep>,
    },
    /// A struct constructor `{k: v, ...}`. Keys are expressions; a key written as a bare or
    /// double-quoted identifier (`{a: 1}`, `{"a": 1}`) is stored as a string literal, because
    /// that is what QLDB users mean by it.
    Struct(Vec<(Expr, Expr)>),
    /// A list constructor `[a, b]`; also `(a, b)` with two or more elements, as in `IN (1, 2)`.
    List(Vec<Expr>),
    /// A bag constructor `<< a, b >>`.
    Bag(Vec<Expr>),
    /// A prefix operator.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<Expr>,
    },
    /// An infix operator.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// The left operand.
        left: Box<Expr>,
        /// The right operand.
        right: Box<Expr>,
    },
    /// `value [NOT] LIKE pattern [ESCAPE escape]`.
    Like {
        /// The string tested.
        value: Box<Expr>,
        /// The pattern, with `%` and `_` wildcards.
        pattern: Box<Expr>,
        /// The escape character, when given.
        escape: Option<Box<Expr>>,
        /// True for `NOT LIKE`.
        negated: bool,
    },
    /// `value [NOT] BETWEEN low AND high` (both bounds inclusive).
    Between {
        /// The value tested.
        value: Box<Expr>,
        /// The lower bound.
        low: Box<Expr>,
        /// The upper bound.
        high: Box<Expr>,
        /// True for `NOT BETWEEN`.
        negated: bool,
    },
    /// `value [NOT] IN collection`, where the collection is a [`Expr::List`] for `IN (a, b)`
    /// or `IN [a, b]`, a [`Expr::Param`] for `IN ?`, a subquery or any collection expression.
    /// `IN (a)` with one element holds that element as a one-element list.
    In {
        /// The value looked for.
        value: Box<Expr>,
        /// The collection searched.
        collection: Box<Expr>,
        /// True for `NOT IN`.
        negated: bool,
    },
    /// `value IS [NOT] NULL` / `value IS [NOT] MISSING`.
    Is {
        /// The value tested.
        value: Box<Expr>,
        /// What it is tested for.
        test: IsTest,
        /// True for `IS NOT`.
        negated: bool,
    },
    /// A function call `name(args)`, including aggregates (`count`, `sum`, `avg`, `min`, `max`)
    /// and `history`. `name` is lowercased. Date-part arguments such as the `year` of
    /// `DATE_ADD(year, 1, x)` arrive as [`Expr::Var`]. `SUBSTRING(s FROM a [FOR b])` is stored
    /// as `substring(s, a[, b])` and `EXTRACT(part FROM x)` as `extract(part, x)`.
    Call {
        /// The function's name, lowercased.
        name: String,
        /// The arguments in order.
        args: Vec<Expr>,
    },
    /// `COUNT(*)`.
    CountStar,
    /// `CAST(value AS type)`.
    Cast {
        /// The value converted.
        value: Box<Expr>,
        /// The target type.
        to: TypeName,
    },
    /// `TRIM([LEADING|TRAILING|BOTH] [chars] FROM value)` or `TRIM(value)`.
    Trim {
        /// Which ends are trimmed.
        spec: TrimSpec,
        /// The characters removed; `None` means spaces.
        chars: Option<Box<Expr>>,
        /// The string trimmed.
        value: Box<Expr>,
    },
    /// `CASE [operand] WHEN a THEN b ... [ELSE c] END`.
    Case {
        /// The operand of a simple `CASE x WHEN ...`; `None` for a searched `CASE WHEN cond ...`.
        operand: Option<Box<Expr>>,
        /// The `WHEN` / `THEN` pairs in order; never empty.
        branches: Vec<(Expr, Expr)>,
        /// The `ELSE` value; `None` means `NULL`.
        otherwise: Option<Box<Expr>>,
    },
    /// A parenthesized `SELECT` used as a value; also the argument of `EXISTS(SELECT ...)`.
    Subquery(Box<Select>),
}

/// One step of an [`Expr::Path`].
#[derive(Debug, Clone, PartialEq)]
pub enum PathStep {
    /// `.name` or `."Name"`: a field, case-insensitive unless quoted.
    Field(Ident),
    /// `[expr]`: an element by position (`[0]`) or a field by string (`['b']`, case-sensitive);
    /// the evaluator decides by the value's type.
    Index(Expr),
    /// `[*]`: every element of a list or bag.
    AllElements,
    /// `.*`: every field value of a struct.
    AllFields,
}

/// A PartiQL literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `NULL`.
    Null,
    /// `MISSING`.
    Missing,
    /// `TRUE` / `FALSE`.
    Bool(bool),
    /// An integer without fraction or exponent that fits in `i64`; larger ones are errors.
    /// A minus sign written directly before the number is folded in, so `-9223372036854775808`
    /// is accepted.
    Int(i64),
    /// A number with a fraction and no exponent, as written (e.g. `"1.50"`), so that the Ion
    /// decimal's precision is kept exactly. A folded minus sign is included.
    Decimal(String),
    /// A number with an exponent (`1e3`, `2.5E-1`): an Ion float.
    Float(f64),
    /// A single-quoted string, with `''` escapes resolved.
    String(String),
}

/// A prefix operator of [`Expr::Unary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `NOT`.
    Not,
    /// `-`.
    Neg,
    /// `+`.
    Plus,
}

/// An infix operator of [`Expr::Binary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `OR`.
    Or,
    /// `AND`.
    And,
    /// `=`.
    Eq,
    /// `<>` or `!=`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
    /// `||`: string concatenation.
    Concat,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
}

/// What [`Expr::Is`] tests for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsTest {
    /// `IS NULL`: true for `NULL` and for `MISSING`, as in PartiQL.
    Null,
    /// `IS MISSING`.
    Missing,
}

/// Which ends [`Expr::Trim`] trims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimSpec {
    /// `BOTH` (the default).
    Both,
    /// `LEADING`.
    Leading,
    /// `TRAILING`.
    Trailing,
}

/// The target type of [`Expr::Cast`]: `INT`, `DECIMAL(5, 2)`, `CHARACTER VARYING`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName {
    /// The type's words, lowercased and joined by single spaces (`"character varying"`).
    pub name: String,
    /// The numeric parameters in parentheses, e.g. `[5, 2]` for `DECIMAL(5, 2)`.
    pub params: Vec<u32>,
}

impl Statement {
    /// The number of `?` parameters the statement expects: one more than the highest
    /// [`Expr::Param`] index, or zero.
    pub fn parameter_count(&self) -> usize {
        let mut count = 0;
        self.for_each_expr(&mut |expr| {
            if let Expr::Param(index) = expr {
                count = count.max(index.saturating_add(1));
            }
        });
        count
    }

    /// Calls `visit` on every expression of the statement, outer expressions before the
    /// expressions they contain, including expressions inside subqueries.
    pub fn for_each_expr(&self, visit: &mut dyn FnMut(&Expr)) {
        match self {
            Statement::Select(select) => select.for_each_expr(visit),
            _ => {
                for expr in self.top_level_exprs() {
                    expr.for_each(visit);
                }
            }
        }
    }

    /// The expressions a statement other than a query holds itself (each may hold subqueries).
    pub(crate) fn top_level_exprs(&self) -> Vec<&Expr> {
        let mut exprs = Vec::new();
        match self {
            Statement::CreateTable(create) => {
                exprs.extend(create.options.iter().map(|option| &option.value));
            }
            Statement::DropIndex(drop) => {
                exprs.extend(drop.options.iter().map(|option| &option.value));
            }
            Statement::DropTable(_) | Statement::UndropTable(_) | Statement::Select(_) => {}
            Statement::CreateIndex(create) => exprs.push(&create.field),
            Statement::Insert(insert) => match &insert.source {
                InsertSource::Value(expr) | InsertSource::Collection(expr) => exprs.push(expr),
            },
            Statement::Update(update) => {
                for op in &update.ops {
                    match op {
                        DmlOp::Set { path, value } => exprs.extend([path, value]),
                        DmlOp::Remove { path } => exprs.push(path),
                        DmlOp::InsertInto {
                            path,
                            value,
                            position,
                        } => {
                            exprs.extend([path, value]);
                            exprs.extend(position.iter());
                        }
                    }
                }
                exprs.extend(update.condition.iter());
            }
            Statement::Delete(delete) => exprs.extend(delete.condition.iter()),
        }
        exprs
    }
}

impl Select {
    /// Calls `visit` on every expression of the query, in clause order, including subqueries.
    pub fn for_each_expr(&self, visit: &mut dyn FnMut(&Expr)) {
        match &self.projection {
            Projection::Star => {}
            Projection::Value(expr) => expr.for_each(visit),
            Projection::Items(items) => {
                for item in items {
                    match item {
                        ProjectItem::Expr { expr, .. } | ProjectItem::AllFields(expr) => {
                            expr.for_each(visit);
                        }
                    }
                }
            }
        }
        if let Some(from) = &self.from {
            from.for_each_expr(visit);
        }
        for expr in self
            .condition
            .iter()
            .chain(self.order_by.iter().map(|key| &key.expr))
        {
            expr.for_each(visit);
        }
        for expr in self.limit.iter().chain(self.offset.iter()) {
            expr.for_each(visit);
        }
    }
}

impl FromItem {
    /// Calls `visit` on every expression of the sources and join conditions, left to right.
    pub fn for_each_expr(&self, visit: &mut dyn FnMut(&Expr)) {
        match self {
            FromItem::Scan(scan) => scan.source.for_each(visit),
            FromItem::Join {
                left, right, on, ..
            } => {
                left.for_each_expr(visit);
                right.for_each_expr(visit);
                if let Some(on) = on {
                    on.for_each(visit);
                }
            }
        }
    }
}

impl Expr {
    /// Calls `visit` on this expression and then on every expression it contains, depth first,
    /// including the expressions of subqueries.
    pub fn for_each(&self, visit: &mut dyn FnMut(&Expr)) {
        visit(self);
        self.for_each_child(&mut |child| child.for_each(visit));
        if let Expr::Subquery(select) = self {
            select.for_each_expr(visit);
        }
    }

    /// Calls `visit` on each expression this one holds directly; a subquery's expressions are
    /// not its children (they belong to the subquery's own scope).
    pub fn for_each_child(&self, visit: &mut dyn FnMut(&Expr)) {
        match self {
            Expr::Lit(_) | Expr::Ion(_) | Expr::Param(_) | Expr::Var(_) | Expr::CountStar => {}
            Expr::Path { root, steps } => {
                visit(root);
                for step in steps {
                    if let PathStep::Index(index) = step {
                        visit(index);
                    }
                }
            }
            Expr::Struct(fields) => {
                for (key, value) in fields {
                    visit(key);
                    visit(value);
                }
            }
            Expr::List(items) | Expr::Bag(items) | Expr::Call { args: items, .. } => {
                for item in items {
                    visit(item);
                }
            }
            Expr::Unary { operand, .. } => visit(operand),
            Expr::Binary { left, right, .. } => {
                visit(left);
                visit(right);
            }
            Expr::Like {
                value,
                pattern,
                escape,
                ..
            } => {
                visit(value);
                visit(pattern);
                if let Some(escape) = escape {
                    visit(escape);
                }
            }
            Expr::Between {
                value, low, high, ..
            } => {
                visit(value);
                visit(low);
                visit(high);
            }
            Expr::In {
                value, collection, ..
            } => {
                visit(value);
                visit(collection);
            }
            Expr::Is { value, .. } => visit(value),
            Expr::Cast { value, .. } => visit(value),
            Expr::Trim { chars, value, .. } => {
                if let Some(chars) = chars {
                    visit(chars);
                }
                visit(value);
            }
            Expr::Case {
                operand,
                branches,
                otherwise,
            } => {
                if let Some(operand) = operand {
                    visit(operand);
                }
                for (when, then) in branches {
                    visit(when);
                    visit(then);
                }
                if let Some(otherwise) = otherwise {
                    visit(otherwise);
                }
            }
            Expr::Subquery(_) => {}
        }
    }
}
