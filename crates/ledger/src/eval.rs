//! The PartiQL evaluator: runs one parsed statement (DDL, DML, SELECT) inside a transaction,
//! resolving names against the catalog and the row bindings, using equality indexes for `=` and
//! `IN` conditions, and producing Ion values as QLDB returns them.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use ion_rs::{Element, IonType, Struct, Value};
use sluice_partiql::ast::{
    BinaryOp, DmlOp, DmlTarget, Expr, FromItem, Ident, InsertSource, IsTest, JoinKind, Literal,
    OrderDirection, PathStep, ProjectItem, Projection, Scan, Select, SetQuantifier, Statement,
    TrimSpec, UnaryOp,
};

use crate::error::LedgerError;
use crate::hash::Hash;
use crate::ion_read;
use crate::model::{self, IndexInfo, TableInfo};
use crate::transaction::{DocumentView, Transaction};
use crate::value::{self, ArithmeticOperator, Number};

/// PartiQL's value of an expression: `None` is MISSING.
type Val = Option<Element>;

/// Prefix of the committed views: `_ql_committed_<table>`.
const COMMITTED_VIEW_PREFIX: &str = "_ql_committed_";

/// Deepest nesting of subqueries and expressions the evaluator follows.
const EVALUATION_DEPTH_MAX: usize = 64;

/// One name bound in a row.
#[derive(Debug, Clone)]
struct Binding {
    name: String,
    value: Element,
    /// A document (or revision) binding: its fields are reachable unqualified.
    is_document: bool,
}

/// The bindings of one row, innermost last; `outer` rows come first.
#[derive(Debug, Clone, Default)]
struct Env {
    bindings: Vec<Binding>,
}

impl Env {
    fn with(&self, binding: Binding) -> Env {
        let mut bindings = self.bindings.clone();
        bindings.push(binding);
        Env { bindings }
    }

    fn binding(&self, ident: &Ident) -> Option<&Binding> {
        self.bindings
            .iter()
            .rev()
            .find(|binding| ident.matches(&binding.name))
    }

    fn lookup(&self, ident: &Ident) -> Val {
        if let Some(binding) = self.binding(ident) {
            return Some(binding.value.clone());
        }
        for binding in self
            .bindings
            .iter()
            .rev()
            .filter(|binding| binding.is_document)
        {
            if let Some(found) = field_of(&binding.value, ident) {
                return Some(found.clone());
            }
        }
        None
    }
}

/// The field of a struct named by an identifier (case rules of the identifier).
fn field_of<'a>(element: &'a Element, ident: &Ident) -> Option<&'a Element> {
    let fields = element.as_struct()?;
    if let Some(exact) = fields.get(ident.name.as_str()) {
        return Some(exact);
    }
    if ident.quoted {
        return None;
    }
    fields
        .fields()
        .find(|(name, _)| name.text().is_some_and(|text| ident.matches(text)))
        .map(|(_, value)| value)
}

fn bad(message: impl Into<String>) -> LedgerError {
    LedgerError::BadRequest(message.into())
}

fn boolean(flag: bool) -> Val {
    Some(Element::boolean(flag))
}

fn null() -> Val {
    Some(Element::null(IonType::Null))
}

fn is_true(value: &Val) -> bool {
    value.as_ref().and_then(Element::as_bool) == Some(true)
}

fn document_id_struct(document_id: &str) -> Element {
    Element::from(
        Struct::builder()
            .with_field("documentId", Element::string(document_id))
            .build(),
    )
}

fn table_id_struct(table_id: &str) -> Element {
    Element::from(
        Struct::builder()
            .with_field("tableId", Element::string(table_id))
            .build(),
    )
}

/// Runs one parsed statement inside `transaction`.
pub(crate) fn execute_statement(
    transaction: &mut Transaction,
    statement: &Statement,
    parameters: &[Element],
    parameter_hashes: &[Hash],
    statement_index: usize,
) -> Result<Vec<Element>, LedgerError> {
    let mut evaluator = Evaluator {
        transaction,
        parameters,
        parameter_hashes,
        statement_index,
        depth: 0,
    };
    evaluator.statement(statement)
}

struct Evaluator<'a> {
    transaction: &'a mut Transaction,
    parameters: &'a [Element],
    /// The Ion hash of each parameter, computed for the statement's digest.
    parameter_hashes: &'a [Hash],
    statement_index: usize,
    depth: usize,
}

/// Where a DML path points inside a document.
#[derive(Debug, Clone)]
enum PathKey {
    Field(Ident),
    Index(usize),
}

impl Evaluator<'_> {
    fn statement(&mut self, statement: &Statement) -> Result<Vec<Element>, LedgerError> {
        match statement {
            Statement::CreateTable(create) => {
                let table_id = self.transaction.create_table(&create.table.name)?;
                Ok(vec![table_id_struct(&table_id)])
            }
            Statement::DropTable(drop) => {
                let table = self.table(&drop.table)?;
                let table_id = self.transaction.drop_table(&table)?;
                Ok(vec![table_id_struct(&table_id)])
            }
            Statement::UndropTable(undrop) => {
                let table_id = self.transaction.undrop_table(&undrop.table_id.name)?;
                Ok(vec![table_id_struct(&table_id)])
            }
            Statement::CreateIndex(create) => {
                let table = self.table(&create.table)?;
                let field_path = match &create.field {
                    Expr::Var(ident) => vec![ident.name.clone()],
                    Expr::Path { root, steps } => {
                        let Expr::Var(root) = root.as_ref() else {
                            return Err(bad("an index path starts with a field name"));
                        };
                        let mut path = vec![root.name.clone()];
                        for step in steps {
                            match step {
                                PathStep::Field(ident) => path.push(ident.name.clone()),
                                _ => return Err(bad("an index path holds only field names")),
                            }
                        }
                        path
                    }
                    _ => return Err(bad("an index is on a field path")),
                };
                self.transaction.create_index(&table, field_path)?;
                Ok(vec![table_id_struct(&table.table_id)])
            }
            Statement::DropIndex(drop) => {
                let table = self.table(&drop.table)?;
                self.transaction.drop_index(&table, &drop.index_id.name)?;
                Ok(vec![table_id_struct(&table.table_id)])
            }
            Statement::Insert(insert) => {
                let table = self.table(&insert.table)?;
                // A document that is a parameter as given already has its Ion hash.
                let parameter_hash = |expr: &Expr| match expr {
                    Expr::Param(index) => self.parameter_hashes.get(*index).copied(),
                    _ => None,
                };
                let documents: Vec<(Element, Option<Hash>)> = match &insert.source {
                    InsertSource::Value(expr) => {
                        let known = parameter_hash(expr);
                        vec![(
                            self.expr(expr, &Env::default())?
                                .ok_or_else(|| bad("INSERT of MISSING"))?,
                            known,
                        )]
                    }
                    InsertSource::Collection(expr) => {
                        let known = parameter_hash(expr);
                        let value = self
                            .expr(expr, &Env::default())?
                            .ok_or_else(|| bad("INSERT of MISSING"))?;
                        match value.value() {
                            Value::List(items) | Value::SExp(items) => {
                                items.elements().map(|item| (item.clone(), None)).collect()
                            }
                            _ => vec![(value, known)],
                        }
                    }
                };
                let mut results = Vec::with_capacity(documents.len());
                for (document, known_hash) in documents {
                    let document_id = self.transaction.insert_document(
                        &table,
                        document,
                        known_hash,
                        self.statement_index,
                    )?;
                    results.push(document_id_struct(&document_id));
                }
                Ok(results)
            }
            Statement::Update(update) => {
                let (table, rows) = self.dml_rows(&update.target, update.condition.as_ref())?;
                let mut results = Vec::with_capacity(rows.len());
                for (document, env) in rows {
                    let mut data = document.data.clone();
                    for op in &update.ops {
                        data = self.apply_op(data, op, &update.target, &env)?;
                    }
                    self.transaction.update_document(
                        &table,
                        &document.document_id,
                        data,
                        self.statement_index,
                    )?;
                    results.push(document_id_struct(&document.document_id));
                }
                Ok(results)
            }
            Statement::Delete(delete) => {
                let (table, rows) = self.dml_rows(&delete.target, delete.condition.as_ref())?;
                let mut results = Vec::with_capacity(rows.len());
                for (document, _) in rows {
                    self.transaction.delete_document(
                        &table,
                        &document.document_id,
                        self.statement_index,
                    )?;
                    results.push(document_id_struct(&document.document_id));
                }
                Ok(results)
            }
            Statement::Select(select) => self.select(select, &Env::default()),
        }
    }

    fn table(&self, ident: &Ident) -> Result<TableInfo, LedgerError> {
        self.transaction
            .active_table(|name| ident.matches(name))
            .ok_or_else(|| LedgerError::NotFound(format!("no such table: {}", ident.name)))
    }

    // ----- DML -----

    fn dml_rows(
        &mut self,
        target: &DmlTarget,
        condition: Option<&Expr>,
    ) -> Result<(TableInfo, Vec<(DocumentView, Env)>), LedgerError> {
        let table = self.table(&target.table)?;
        let alias = target.alias.as_ref().unwrap_or(&target.table).name.clone();
        let conjuncts = condition.map(split_conjuncts).unwrap_or_default();
        let documents =
            self.table_documents(&table, &alias, target.by.as_ref(), true, &conjuncts)?;
        let mut rows = Vec::new();
        for document in documents {
            let mut env = Env::default().with(Binding {
                name: alias.clone(),
                value: document.data.clone(),
                is_document: true,
            });
            if let Some(by) = &target.by {
                env = env.with(Binding {
                    name: by.name.clone(),
                    value: Element::string(document.document_id.as_str()),
                    is_document: false,
                });
            }
            let keep = match condition {
                None => true,
                Some(condition) => is_true(&self.expr(condition, &env)?),
            };
            if keep {
                rows.push((document, env));
            }
        }
        Ok((table, rows))
    }

    fn dml_path(
        &mut self,
        path: &Expr,
        target: &DmlTarget,
        env: &Env,
        allow_root: bool,
    ) -> Result<Vec<PathKey>, LedgerError> {
        let alias = target.alias.as_ref().unwrap_or(&target.table);
        let (root, steps): (&Ident, &[PathStep]) = match path {
            Expr::Var(ident) => (ident, &[]),
            Expr::Path { root, steps } => match root.as_ref() {
                Expr::Var(ident) => (ident, steps.as_slice()),
                _ => return Err(bad("a SET/REMOVE path starts with a name")),
            },
            _ => return Err(bad("a SET/REMOVE target is a path")),
        };
        let mut keys = Vec::new();
        if !alias.matches(&root.name) {
            keys.push(PathKey::Field(root.clone()));
        }
        for step in steps {
            match step {
                PathStep::Field(ident) => keys.push(PathKey::Field(ident.clone())),
                PathStep::Index(expr) => {
                    let key = self
                        .expr(expr, env)?
                        .ok_or_else(|| bad("a path index is MISSING"))?;
                    if let Some(text) = value::text_of(&key) {
                        keys.push(PathKey::Field(Ident::quoted(text)));
                    } else if let Some(index) =
                        key.as_i64().and_then(|index| usize::try_from(index).ok())
                    {
                        keys.push(PathKey::Index(index));
                    } else {
                        return Err(bad("a path index is a non-negative integer or a string"));
                    }
                }
                PathStep::AllElements | PathStep::AllFields => {
                    return Err(bad("wildcards cannot be modified"));
                }
            }
        }
        if keys.is_empty() && !allow_root {
            return Err(bad(
                "cannot replace or remove a whole document; use a field path",
            ));
        }
        Ok(keys)
    }

    fn apply_op(
        &mut self,
        data: Element,
        op: &DmlOp,
        target: &DmlTarget,
        env: &Env,
    ) -> Result<Element, LedgerError> {
        match op {
            DmlOp::Set { path, value } => {
                let keys = self.dml_path(path, target, env, false)?;
                let Some(new_value) = self.expr(value, env)? else {
                    return remove_at(&data, &keys);
                };
                set_at(&data, &keys, new_value)
            }
            DmlOp::Remove { path } => {
                let keys = self.dml_path(path, target, env, false)?;
                remove_at(&data, &keys)
            }
            DmlOp::InsertInto {
                path,
                value,
                position,
            } => {
                let keys = self.dml_path(path, target, env, true)?;
                let new_value = self
                    .expr(value, env)?
                    .ok_or_else(|| bad("INSERT INTO of MISSING"))?;
                let position = match position {
                    None => None,
                    Some(position) => self.expr(position, env)?,
                };
                let container = get_at(&data, &keys).cloned().unwrap_or_else(|| {
                    Element::from(ion_rs::List::from(ion_rs::Sequence::new(
                        Vec::<Element>::new(),
                    )))
                });
                let updated = insert_into(&container, new_value, position)?;
                set_at(&data, &keys, updated)
            }
        }
    }

    // ----- SELECT -----

    fn select(&mut self, select: &Select, outer: &Env) -> Result<Vec<Element>, LedgerError> {
        self.depth += 1;
        if self.depth > EVALUATION_DEPTH_MAX {
            return Err(LedgerError::LimitExceeded(
                "queries nest too deeply".to_owned(),
            ));
        }
        let result = self.select_inner(select, outer);
        self.depth -= 1;
        result
    }

    fn select_inner(&mut self, select: &Select, outer: &Env) -> Result<Vec<Element>, LedgerError> {
        let conjuncts = select
            .condition
            .as_ref()
            .map(split_conjuncts)
            .unwrap_or_default();
        let single_scan = matches!(select.from, Some(FromItem::Scan(_)));
        let rows = match &select.from {
            None => vec![outer.clone()],
            Some(from) => self.eval_from(from, outer, &conjuncts, single_scan)?,
        };
        let mut filtered = Vec::with_capacity(rows.len());
        for row in rows {
            let keep = match &select.condition {
                None => true,
                Some(condition) => is_true(&self.expr(condition, &row)?),
            };
            if keep {
                filtered.push(row);
            }
        }
        let rows_max = self.transaction.ledger().limits().statement_result_rows_max;
        let aggregate = projection_has_aggregate(&select.projection);
        let mut outputs: Vec<(Env, Element)> = Vec::new();
        if aggregate {
            let empty = outer.clone();
            let first = filtered.first().cloned().unwrap_or(empty);
            if let Some(output) = self.project_aggregate(&select.projection, &filtered, &first)? {
                outputs.push((first, output));
            }
        } else {
            for row in filtered {
                if let Some(output) = self.project(&select.projection, &row)? {
                    outputs.push((row, output));
                }
                if outputs.len() > rows_max {
                    return Err(LedgerError::LimitExceeded(format!(
                        "a statement returns at most {rows_max} values"
                    )));
                }
            }
        }
        if select.quantifier == SetQuantifier::Distinct {
            let mut seen = BTreeSet::new();
            outputs.retain(|(_, output)| {
                seen.insert(model::encode_binary(output).unwrap_or_default())
            });
        }
        if !select.order_by.is_empty() {
            let mut keyed = Vec::with_capacity(outputs.len());
            for (row, output) in outputs {
                let mut keys = Vec::with_capacity(select.order_by.len());
                for key in &select.order_by {
                    let mut value = self.expr(&key.expr, &row)?;
                    if value.is_none()
                        && let Expr::Var(ident) = &key.expr
                    {
                        value = field_of(&output, ident).cloned();
                    }
                    keys.push(value);
                }
                keyed.push((keys, row, output));
            }
            keyed.sort_by(|(left, _, _), (right, _, _)| {
                for ((left_key, right_key), order_key) in
                    left.iter().zip(right).zip(&select.order_by)
                {
                    let ordering = value::order_for_sort(left_key.as_ref(), right_key.as_ref());
                    let ordering = match order_key.direction {
                        OrderDirection::Asc => ordering,
                        OrderDirection::Desc => ordering.reverse(),
                    };
                    if ordering != Ordering::Equal {
                        return ordering;
                    }
                }
                Ordering::Equal
            });
            outputs = keyed
                .into_iter()
                .map(|(_, row, output)| (row, output))
                .collect();
        }
        let offset = match &select.offset {
            None => 0,
            Some(expr) => self.count_value(expr, outer, "OFFSET")?,
        };
        let limit = match &select.limit {
            None => usize::MAX,
            Some(expr) => self.count_value(expr, outer, "LIMIT")?,
        };
        Ok(outputs
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(_, output)| output)
            .collect())
    }

    fn count_value(&mut self, expr: &Expr, env: &Env, clause: &str) -> Result<usize, LedgerError> {
        self.expr(expr, env)?
            .and_then(|value| value.as_i64())
            .and_then(|count| usize::try_from(count).ok())
            .ok_or_else(|| bad(format!("{clause} takes a non-negative integer")))
    }

    fn project(
        &mut self,
        projection: &Projection,
        row: &Env,
    ) -> Result<Option<Element>, LedgerError> {
        match projection {
            Projection::Value(expr) => self.expr(expr, row),
            Projection::Star => {
                let mut builder = Struct::builder();
                for binding in &row.bindings {
                    match binding.value.as_struct() {
                        Some(fields) if binding.is_document || !binding.name.is_empty() => {
                            if binding.is_document {
                                for (name, value) in fields.fields() {
                                    builder = builder.with_field(name.clone(), value.clone());
                                }
                            } else {
                                builder = builder
                                    .with_field(binding.name.as_str(), binding.value.clone());
                            }
                        }
                        _ => {
                            builder =
                                builder.with_field(binding.name.as_str(), binding.value.clone())
                        }
                    }
                }
                Ok(Some(Element::from(builder.build())))
            }
            Projection::Items(items) => {
                let mut builder = Struct::builder();
                for (position, item) in items.iter().enumerate() {
                    match item {
                        ProjectItem::Expr { expr, alias } => {
                            if let Some(value) = self.expr(expr, row)? {
                                builder = builder
                                    .with_field(output_name(expr, alias.as_ref(), position), value);
                            }
                        }
                        ProjectItem::AllFields(expr) => {
                            if let Some(value) = self.expr(expr, row)?
                                && let Some(fields) = value.as_struct()
                            {
                                for (name, field_value) in fields.fields() {
                                    builder = builder.with_field(name.clone(), field_value.clone());
                                }
                            }
                        }
                    }
                }
                Ok(Some(Element::from(builder.build())))
            }
        }
    }

    fn project_aggregate(
        &mut self,
        projection: &Projection,
        rows: &[Env],
        first: &Env,
    ) -> Result<Option<Element>, LedgerError> {
        match projection {
            Projection::Value(expr) => self.aggregate_expr(expr, rows, first),
            Projection::Star => Err(bad("SELECT * cannot mix with aggregates")),
            Projection::Items(items) => {
                let mut builder = Struct::builder();
                for (position, item) in items.iter().enumerate() {
                    match item {
                        ProjectItem::Expr { expr, alias } => {
                            if let Some(value) = self.aggregate_expr(expr, rows, first)? {
                                builder = builder
                                    .with_field(output_name(expr, alias.as_ref(), position), value);
                            }
                        }
                        ProjectItem::AllFields(_) => {
                            return Err(bad("expr.* cannot mix with aggregates"));
                        }
                    }
                }
                Ok(Some(Element::from(builder.build())))
            }
        }
    }

    fn aggregate_expr(
        &mut self,
        expr: &Expr,
        rows: &[Env],
        first: &Env,
    ) -> Result<Val, LedgerError> {
        match expr {
            Expr::CountStar => Ok(Some(Element::int(rows.len() as i64))),
            Expr::Call { name, args } if is_aggregate_name(name) => {
                let argument = args
                    .first()
                    .ok_or_else(|| bad(format!("{name} takes one argument")))?;
                let mut values = Vec::new();
                for row in rows {
                    if let Some(value) = self.expr(argument, row)?
                        && !value.is_null()
                    {
                        values.push(value);
                    }
                }
                aggregate(name, values)
            }
            Expr::Binary { op, left, right } => {
                let left = self.aggregate_expr(left, rows, first)?;
                let right = self.aggregate_expr(right, rows, first)?;
                binary_values(*op, left, right)
            }
            Expr::Unary { op, operand } => {
                let operand = self.aggregate_expr(operand, rows, first)?;
                unary_value(*op, operand)
            }
            other => self.expr(other, first),
        }
    }

    // ----- FROM -----

    fn eval_from(
        &mut self,
        item: &FromItem,
        env: &Env,
        conjuncts: &[&Expr],
        single_scan: bool,
    ) -> Result<Vec<Env>, LedgerError> {
        match item {
            FromItem::Scan(scan) => self.scan(scan, env, conjuncts, single_scan),
            FromItem::Join {
                kind,
                left,
                right,
                on,
            } => {
                let left_rows = self.eval_from(left, env, conjuncts, false)?;
                let mut rows = Vec::new();
                for left_row in left_rows {
                    let right_rows = self.eval_from(right, &left_row, conjuncts, false)?;
                    let mut matched = false;
                    for right_row in right_rows {
                        let keep = match on {
                            None => true,
                            Some(on) => is_true(&self.expr(on, &right_row)?),
                        };
                        if keep {
                            matched = true;
                            rows.push(right_row);
                        }
                    }
                    if !matched && *kind == JoinKind::Left {
                        let mut padded = left_row.clone();
                        for name in scan_names(right) {
                            padded = padded.with(Binding {
                                name,
                                value: Element::null(IonType::Null),
                                is_document: false,
                            });
                        }
                        rows.push(padded);
                    }
                }
                Ok(rows)
            }
        }
    }

    fn scan(
        &mut self,
        scan: &Scan,
        env: &Env,
        conjuncts: &[&Expr],
        single_scan: bool,
    ) -> Result<Vec<Env>, LedgerError> {
        // A table, a committed view, information_schema, history(), or any collection value.
        if let Expr::Var(ident) = &scan.source
            && env.binding(ident).is_none()
        {
            return self.scan_table_source(scan, ident, env, conjuncts, single_scan);
        }
        if let Expr::Path { root, steps } = &scan.source
            && let (Expr::Var(root_ident), [PathStep::Field(field)]) =
                (root.as_ref(), steps.as_slice())
            && root_ident.matches("information_schema")
            && env.binding(root_ident).is_none()
        {
            if !field.matches("user_tables") {
                return Err(LedgerError::NotFound(format!(
                    "information_schema.{}",
                    field.name
                )));
            }
            let tables: Vec<Element> = self
                .transaction
                .tables()
                .iter()
                .map(TableInfo::to_element)
                .collect();
            let alias = scan
                .alias
                .as_ref()
                .map_or("user_tables".to_owned(), |alias| alias.name.clone());
            return Ok(tables
                .into_iter()
                .map(|table| {
                    env.with(Binding {
                        name: alias.clone(),
                        value: table,
                        is_document: true,
                    })
                })
                .collect());
        }
        if let Expr::Call { name, args } = &scan.source
            && name == "history"
        {
            return self.scan_history(scan, args, env, conjuncts);
        }
        let value = self.expr(&scan.source, env)?;
        let alias = scan
            .alias
            .as_ref()
            .map_or_else(|| "_1".to_owned(), |alias| alias.name.clone());
        let items: Vec<(Element, Element)> = match value {
            None => Vec::new(),
            Some(element) if element.is_null() => Vec::new(),
            Some(element) => match element.value() {
                Value::List(items) | Value::SExp(items) => items
                    .elements()
                    .enumerate()
                    .map(|(position, item)| (item.clone(), Element::int(position as i64)))
                    .collect(),
                _ => vec![(element.clone(), Element::int(0))],
            },
        };
        let mut rows = Vec::with_capacity(items.len());
        for (item, position) in items {
            let mut row = env.with(Binding {
                name: alias.clone(),
                value: item,
                is_document: false,
            });
            if let Some(at) = &scan.at {
                row = row.with(Binding {
                    name: at.name.clone(),
                    value: position,
                    is_document: false,
                });
            }
            rows.push(row);
        }
        Ok(rows)
    }

    fn scan_table_source(
        &mut self,
        scan: &Scan,
        ident: &Ident,
        env: &Env,
        conjuncts: &[&Expr],
        single_scan: bool,
    ) -> Result<Vec<Env>, LedgerError> {
        let alias = scan.alias.as_ref().unwrap_or(ident).name.clone();
        let committed_name = ident
            .name
            .get(..COMMITTED_VIEW_PREFIX.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(COMMITTED_VIEW_PREFIX))
            .and_then(|_| ident.name.get(COMMITTED_VIEW_PREFIX.len()..));
        let (table, committed_view) = match committed_name {
            Some(name) => {
                let inner = Ident {
                    name: name.to_owned(),
                    quoted: ident.quoted,
                };
                (self.table(&inner)?, true)
            }
            None => (self.table(ident)?, false),
        };
        let documents = if committed_view {
            self.transaction.scan_table(&table.table_id)?
        } else {
            self.table_documents(&table, &alias, scan.by.as_ref(), single_scan, conjuncts)?
        };
        let mut rows = Vec::with_capacity(documents.len());
        for (position, document) in documents.into_iter().enumerate() {
            let value = if committed_view {
                document.committed_view()
            } else {
                document.data.clone()
            };
            let mut row = env.with(Binding {
                name: alias.clone(),
                value,
                is_document: true,
            });
            if let Some(by) = &scan.by {
                row = row.with(Binding {
                    name: by.name.clone(),
                    value: Element::string(document.document_id.as_str()),
                    is_document: false,
                });
            }
            if let Some(at) = &scan.at {
                row = row.with(Binding {
                    name: at.name.clone(),
                    value: Element::int(position as i64),
                    is_document: false,
                });
            }
            rows.push(row);
        }
        Ok(rows)
    }

    fn scan_history(
        &mut self,
        scan: &Scan,
        args: &[Expr],
        env: &Env,
        conjuncts: &[&Expr],
    ) -> Result<Vec<Env>, LedgerError> {
        let table = match args.first() {
            Some(Expr::Var(ident)) => self.table(ident).or_else(|_| {
                // QLDB also accepts a dropped table, and a table id.
                self.transaction
                    .tables()
                    .iter()
                    .find(|table| ident.matches(&table.name) || table.table_id == ident.name)
                    .cloned()
                    .ok_or_else(|| LedgerError::NotFound(format!("no such table: {}", ident.name)))
            })?,
            Some(Expr::Lit(Literal::String(name))) => self.table(&Ident::quoted(name.as_str()))?,
            _ => return Err(bad("history takes a table name")),
        };
        let bound = |evaluator: &mut Self,
                     index: usize|
         -> Result<Option<time::OffsetDateTime>, LedgerError> {
            match args.get(index) {
                None => Ok(None),
                Some(expr) => {
                    let value = evaluator
                        .expr(expr, env)?
                        .ok_or_else(|| bad("history bound is MISSING"))?;
                    let timestamp = value
                        .as_timestamp()
                        .ok_or_else(|| bad("history bounds are timestamps"))?;
                    Ok(Some(model::datetime_from_timestamp(&timestamp)?))
                }
            }
        };
        let start = bound(self, 1)?;
        let end = bound(self, 2)?;
        let alias = scan
            .alias
            .as_ref()
            .map_or_else(|| "history".to_owned(), |alias| alias.name.clone());
        // `WHERE h.metadata.id = 'constant'`: one document's revisions, as QLDB recommends
        // querying history, instead of every revision of the table.
        let revisions = match self.history_document_id(&alias, conjuncts)? {
            Some(document_id) => self
                .transaction
                .document_history(&table.table_id, &document_id)?,
            None => self.transaction.table_history(&table.table_id)?,
        };
        let mut rows = Vec::new();
        for (position, revision) in revisions.iter().enumerate() {
            let begins = model::datetime_from_timestamp(&revision.metadata.tx_time)?;
            let next = revisions
                .get(position + 1)
                .filter(|next| next.metadata.id == revision.metadata.id)
                .map(|next| model::datetime_from_timestamp(&next.metadata.tx_time))
                .transpose()?;
            // A revision is active from its txTime until the next revision's txTime.
            let starts_before_end = end.is_none_or(|end| begins <= end);
            let ends_after_start = match (start, next) {
                (Some(start), Some(next)) => next > start,
                _ => true,
            };
            if starts_before_end && ends_after_start {
                let mut row = env.with(Binding {
                    name: alias.clone(),
                    value: revision.to_element(),
                    is_document: true,
                });
                if let Some(by) = &scan.by {
                    row = row.with(Binding {
                        name: by.name.clone(),
                        value: Element::string(revision.metadata.id.as_str()),
                        is_document: false,
                    });
                }
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// The text of the first constant a conjunct `<target> = <constant>` (either way round)
    /// compares `is_target` with, if any (the WHERE clause still filters the rows afterwards).
    fn equal_constant_text(
        &mut self,
        conjuncts: &[&Expr],
        is_target: impl Fn(&Expr) -> bool,
    ) -> Result<Option<String>, LedgerError> {
        for conjunct in conjuncts {
            let Expr::Binary {
                op: BinaryOp::Eq,
                left,
                right,
            } = conjunct
            else {
                continue;
            };
            let constant = match (left.as_ref(), right.as_ref()) {
                (target, constant) | (constant, target)
                    if is_target(target) && is_constant(constant) =>
                {
                    constant
                }
                _ => continue,
            };
            if let Some(text) = self
                .expr(constant, &Env::default())?
                .as_ref()
                .and_then(value::text_of)
            {
                return Ok(Some(text.to_owned()));
            }
        }
        Ok(None)
    }

    /// The document id a conjunct `<alias>.metadata.id = <constant>` of a `history()` scan
    /// names, if any.
    fn history_document_id(
        &mut self,
        alias: &str,
        conjuncts: &[&Expr],
    ) -> Result<Option<String>, LedgerError> {
        self.equal_constant_text(conjuncts, |path| is_metadata_id_of(path, alias))
    }

    /// The live documents of a table, through an index when a conjunct allows it.
    fn table_documents(
        &mut self,
        table: &TableInfo,
        alias: &str,
        by: Option<&Ident>,
        allow_unqualified: bool,
        conjuncts: &[&Expr],
    ) -> Result<Vec<DocumentView>, LedgerError> {
        // `BY id ... WHERE id = 'constant'`: a lookup by document id, as QLDB optimizes it.
        if let Some(by) = by {
            let is_by = |target: &Expr| matches!(target, Expr::Var(name) if by.matches(&name.name));
            if let Some(document_id) = self.equal_constant_text(conjuncts, is_by)? {
                return Ok(self
                    .transaction
                    .document(&table.table_id, &document_id)?
                    .into_iter()
                    .collect());
            }
        }
        for conjunct in conjuncts {
            if let Some((index, lookup_values)) =
                self.index_candidate(table, alias, allow_unqualified, conjunct)?
            {
                let mut documents = Vec::new();
                let mut seen = BTreeSet::new();
                let mut usable = true;
                for lookup_value in &lookup_values {
                    match self
                        .transaction
                        .index_lookup(&table.table_id, &index, lookup_value)?
                    {
                        None => {
                            usable = false;
                            break;
                        }
                        Some(found) => {
                            for document in found {
                                if seen.insert(document.document_id.clone()) {
                                    documents.push(document);
                                }
                            }
                        }
                    }
                }
                if usable {
                    return Ok(documents);
                }
            }
        }
        self.transaction.scan_table(&table.table_id)
    }

    /// If `conjunct` is `field = constant` or `field IN (constants)` on an indexed field of this
    /// table, the index and the values to look up.
    fn index_candidate(
        &mut self,
        table: &TableInfo,
        alias: &str,
        allow_unqualified: bool,
        conjunct: &Expr,
    ) -> Result<Option<(IndexInfo, Vec<Element>)>, LedgerError> {
        if table.indexes.is_empty() {
            return Ok(None);
        }
        let (field_expr, constant_expr, is_in) = match conjunct {
            Expr::Binary {
                op: BinaryOp::Eq,
                left,
                right,
            } => {
                if is_constant(right) {
                    (left.as_ref(), right.as_ref(), false)
                } else if is_constant(left) {
                    (right.as_ref(), left.as_ref(), false)
                } else {
                    return Ok(None);
                }
            }
            Expr::In {
                value,
                collection,
                negated: false,
            } if is_constant(collection) => (value.as_ref(), collection.as_ref(), true),
            _ => return Ok(None),
        };
        let Some(path) = field_path_of(field_expr, alias, allow_unqualified) else {
            return Ok(None);
        };
        let Some(index) = table.indexes.iter().find(|index| {
            index.field_path.len() == path.len()
                && index
                    .field_path
                    .iter()
                    .zip(&path)
                    .all(|(name, ident)| ident.matches(name))
        }) else {
            return Ok(None);
        };
        let Some(constant) = self.expr(constant_expr, &Env::default())? else {
            return Ok(None);
        };
        let values = if is_in {
            match constant.value() {
                Value::List(items) | Value::SExp(items) => items.elements().cloned().collect(),
                _ => return Ok(None),
            }
        } else {
            vec![constant]
        };
        Ok(Some((index.clone(), values)))
    }

    // ----- expressions -----

    fn expr(&mut self, expr: &Expr, env: &Env) -> Result<Val, LedgerError> {
        match expr {
            Expr::Lit(literal) => literal_value(literal),
            Expr::Ion(text) => read_ion(text)
                .map(Some)
                .map_err(|error| bad(format!("invalid ion literal: {error}"))),
            Expr::Param(index) => self
                .parameters
                .get(*index)
                .cloned()
                .map(Some)
                .ok_or_else(|| bad(format!("parameter {} was not given", index + 1))),
            Expr::Var(ident) => Ok(env.lookup(ident)),
            Expr::Path { root, steps } => {
                let root = self.expr(root, env)?;
                self.path(root, steps, env)
            }
            Expr::Struct(fields) => {
                let mut builder = Struct::builder();
                for (key, value) in fields {
                    let key = self
                        .expr(key, env)?
                        .ok_or_else(|| bad("struct key is MISSING"))?;
                    let name = value::text_of(&key)
                        .ok_or_else(|| bad("struct keys are text"))?
                        .to_owned();
                    if let Some(value) = self.expr(value, env)? {
                        builder = builder.with_field(name.as_str(), value);
                    }
                }
                Ok(Some(Element::from(builder.build())))
            }
            Expr::List(items) | Expr::Bag(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(value) = self.expr(item, env)? {
                        values.push(value);
                    }
                }
                Ok(Some(model::list_element(values)))
            }
            Expr::Unary { op, operand } => {
                let operand = self.expr(operand, env)?;
                unary_value(*op, operand)
            }
            Expr::Binary { op, left, right } => {
                let left = self.expr(left, env)?;
                // Short-circuit AND/OR only on definite answers.
                if *op == BinaryOp::And && left.as_ref().and_then(Element::as_bool) == Some(false) {
                    return Ok(boolean(false));
                }
                if *op == BinaryOp::Or && is_true(&left) {
                    return Ok(boolean(true));
                }
                let right = self.expr(right, env)?;
                binary_values(*op, left, right)
            }
            Expr::Like {
                value,
                pattern,
                escape,
                negated,
            } => {
                let value = self.expr(value, env)?;
                let pattern = self.expr(pattern, env)?;
                let escape = match escape {
                    None => None,
                    Some(escape) => self.expr(escape, env)?,
                };
                let (Some(value), Some(pattern)) = (value, pattern) else {
                    return Ok(None);
                };
                let (Some(text), Some(pattern_text)) =
                    (value::text_of(&value), value::text_of(&pattern))
                else {
                    return Ok(null());
                };
                let escape_char = escape
                    .as_ref()
                    .and_then(value::text_of)
                    .and_then(|text| text.chars().next());
                let matched = like_matches(text, pattern_text, escape_char);
                Ok(boolean(matched != *negated))
            }
            Expr::Between {
                value,
                low,
                high,
                negated,
            } => {
                let value = self.expr(value, env)?;
                let low = self.expr(low, env)?;
                let high = self.expr(high, env)?;
                let at_least = binary_values(BinaryOp::GtEq, value.clone(), low)?;
                let at_most = binary_values(BinaryOp::LtEq, value, high)?;
                let inside = binary_values(BinaryOp::And, at_least, at_most)?;
                if *negated {
                    unary_value(UnaryOp::Not, inside)
                } else {
                    Ok(inside)
                }
            }
            Expr::In {
                value,
                collection,
                negated,
            } => {
                let value = self.expr(value, env)?;
                let collection = self.expr(collection, env)?;
                let (Some(value), Some(collection)) = (value, collection) else {
                    return Ok(None);
                };
                if value.is_null() {
                    return Ok(null());
                }
                let found = match collection.value() {
                    Value::List(items) | Value::SExp(items) => items
                        .elements()
                        .any(|item| !item.is_null() && value::values_equal(&value, item)),
                    _ => value::values_equal(&value, &collection),
                };
                Ok(boolean(found != *negated))
            }
            Expr::Is {
                value,
                test,
                negated,
            } => {
                let value = self.expr(value, env)?;
                let result = match test {
                    IsTest::Null => value.as_ref().is_none_or(Element::is_null),
                    IsTest::Missing => value.is_none(),
                };
                Ok(boolean(result != *negated))
            }
            Expr::Call { name, args } => self.call(name, args, env),
            Expr::CountStar => Err(bad("COUNT(*) is only allowed in a SELECT list")),
            Expr::Cast { value, to } => {
                let value = self.expr(value, env)?;
                cast(value, &to.name)
            }
            Expr::Trim { spec, chars, value } => {
                let value = self.expr(value, env)?;
                let chars = match chars {
                    None => None,
                    Some(chars) => self.expr(chars, env)?,
                };
                let Some(value) = value else { return Ok(None) };
                let Some(text) = value::text_of(&value) else {
                    return Ok(null());
                };
                let set: Vec<char> = chars
                    .as_ref()
                    .and_then(value::text_of)
                    .map_or_else(|| vec![' '], |chars| chars.chars().collect());
                let trimmed = match spec {
                    TrimSpec::Both => text.trim_matches(set.as_slice()),
                    TrimSpec::Leading => text.trim_start_matches(set.as_slice()),
                    TrimSpec::Trailing => text.trim_end_matches(set.as_slice()),
                };
                Ok(Some(Element::string(trimmed)))
            }
            Expr::Case {
                operand,
                branches,
                otherwise,
            } => {
                let operand = match operand {
                    None => None,
                    Some(operand) => Some(self.expr(operand, env)?),
                };
                for (when, then) in branches {
                    let when_value = self.expr(when, env)?;
                    let hit = match &operand {
                        None => is_true(&when_value),
                        Some(operand) => {
                            is_true(&binary_values(BinaryOp::Eq, operand.clone(), when_value)?)
                        }
                    };
                    if hit {
                        return self.expr(then, env);
                    }
                }
                match otherwise {
                    None => Ok(null()),
                    Some(otherwise) => self.expr(otherwise, env),
                }
            }
            Expr::Subquery(select) => {
                let values = self.select(select, env)?;
                Ok(Some(model::list_element(values)))
            }
        }
    }

    fn path(&mut self, root: Val, steps: &[PathStep], env: &Env) -> Result<Val, LedgerError> {
        let mut current: Vec<Element> = match root {
            None => return Ok(None),
            Some(root) => vec![root],
        };
        let mut fanned_out = false;
        for step in steps {
            let mut next = Vec::new();
            for value in &current {
                match step {
                    PathStep::Field(ident) => {
                        if let Some(found) = field_of(value, ident) {
                            next.push(found.clone());
                        }
                    }
                    PathStep::Index(expr) => {
                        let key = self.expr(expr, env)?;
                        let Some(key) = key else { continue };
                        if let Some(text) = value::text_of(&key) {
                            if let Some(found) =
                                value.as_struct().and_then(|fields| fields.get(text))
                            {
                                next.push(found.clone());
                            }
                        } else if let Some(index) =
                            key.as_i64().and_then(|index| usize::try_from(index).ok())
                            && let Some(found) =
                                value.as_sequence().and_then(|items| items.get(index))
                        {
                            next.push(found.clone());
                        }
                    }
                    PathStep::AllElements => {
                        fanned_out = true;
                        if let Some(items) = value.as_sequence() {
                            next.extend(items.elements().cloned());
                        }
                    }
                    PathStep::AllFields => {
                        fanned_out = true;
                        if let Some(fields) = value.as_struct() {
                            next.extend(fields.fields().map(|(_, field)| field.clone()));
                        }
                    }
                }
            }
            current = next;
        }
        if fanned_out {
            return Ok(Some(model::list_element(current)));
        }
        Ok(current.into_iter().next())
    }

    fn call(&mut self, name: &str, args: &[Expr], env: &Env) -> Result<Val, LedgerError> {
        if is_aggregate_name(name) {
            return Err(bad(format!("{name} is only allowed in a SELECT list")));
        }
        if matches!(name, "date_add" | "date_diff" | "extract") {
            let Some((Expr::Var(part), rest)) = args.split_first() else {
                return Err(bad(format!("{name} takes a date part first")));
            };
            let mut values = Vec::with_capacity(rest.len());
            for arg in rest {
                values.push(self.expr(arg, env)?);
            }
            return crate::datetime::call(name, &part.name.to_ascii_lowercase(), &values);
        }
        if name == "txid" {
            return Ok(Some(Element::string(self.transaction.id())));
        }
        let mut values = Vec::with_capacity(args.len());
        for arg in args {
            values.push(self.expr(arg, env)?);
        }
        let first = values.first().cloned().flatten();
        let text_function = |function: fn(&str) -> String| -> Val {
            match &first {
                None => None,
                Some(value) => match value::text_of(value) {
                    Some(text) => Some(Element::string(function(text))),
                    None => null(),
                },
            }
        };
        match name {
            "upper" => Ok(text_function(str::to_uppercase)),
            "lower" => Ok(text_function(str::to_lowercase)),
            "char_length" | "character_length" => {
                Ok(first.map(|value| match value::text_of(&value) {
                    Some(text) => Element::int(text.chars().count() as i64),
                    None => Element::null(IonType::Null),
                }))
            }
            "size" | "cardinality" => Ok(first.map(|value| match value.value() {
                Value::List(items) | Value::SExp(items) => Element::int(items.len() as i64),
                Value::Struct(fields) => Element::int(fields.len() as i64),
                _ => Element::null(IonType::Null),
            })),
            "exists" => Ok(boolean(
                first
                    .as_ref()
                    .and_then(Element::as_sequence)
                    .is_some_and(|items| !items.is_empty()),
            )),
            "coalesce" => Ok(values
                .into_iter()
                .flatten()
                .find(|value| !value.is_null())
                .or_else(null)),
            "nullif" => {
                let second = values.get(1).cloned().flatten();
                match (&first, &second) {
                    (Some(left), Some(right)) if value::values_equal(left, right) => Ok(null()),
                    _ => Ok(first),
                }
            }
            "substring" => {
                let Some(value) = first else { return Ok(None) };
                let Some(text) = value::text_of(&value) else {
                    return Ok(null());
                };
                let start = values
                    .get(1)
                    .cloned()
                    .flatten()
                    .and_then(|start| start.as_i64())
                    .unwrap_or(1);
                let length = values
                    .get(2)
                    .cloned()
                    .flatten()
                    .and_then(|length| length.as_i64());
                let skip = usize::try_from(start.saturating_sub(1).max(0)).unwrap_or(0);
                let chars = text.chars().skip(skip);
                let result: String = match length.and_then(|length| usize::try_from(length).ok()) {
                    Some(length) => chars.take(length).collect(),
                    None => chars.collect(),
                };
                Ok(Some(Element::string(result)))
            }
            "utcnow" => Ok(Some(Element::timestamp(model::timestamp_from_datetime(
                self.transaction.ledger().clock.now(),
            )?))),
            "abs" => Ok(first.map(|value| match Number::from_element(&value) {
                Some(Number::Int(int)) => int
                    .checked_abs()
                    .map_or_else(model::null_element, Element::int),
                Some(Number::Decimal {
                    coefficient,
                    exponent,
                }) => coefficient
                    .checked_abs()
                    .map_or_else(model::null_element, |coefficient| {
                        Number::Decimal {
                            coefficient,
                            exponent,
                        }
                        .to_element()
                    }),
                Some(Number::Float(float)) => Element::float(float.abs()),
                None => Element::null(IonType::Null),
            })),
            "to_timestamp" => {
                if values.len() > 1 {
                    return Err(bad("to_timestamp with a format pattern is not supported"));
                }
                let Some(value) = first else { return Ok(None) };
                let Some(text) = value::text_of(&value) else {
                    return Ok(null());
                };
                read_ion(text.trim())
                    .ok()
                    .filter(|parsed| parsed.as_timestamp().is_some())
                    .map(Some)
                    .ok_or_else(|| bad(format!("{text:?} is not an Ion timestamp")))
            }
            "to_string" => {
                if values.len() > 1 {
                    return Err(bad("to_string with a format pattern is not supported"));
                }
                let Some(value) = first else { return Ok(None) };
                match value.as_timestamp() {
                    Some(_) => Ok(Some(Element::string(model::encode_text(&value)?))),
                    None => Ok(null()),
                }
            }
            other => Err(bad(format!("unknown function {other}"))),
        }
    }
}

// ----- helpers without state -----

/// Reads Ion text a statement holds (a backquoted literal, or a string being cast): it comes
/// from outside, so it is bounded like a parameter.
fn read_ion(text: &str) -> Result<Element, ion_read::IonReadError> {
    ion_read::read_one(text.as_bytes(), ion_read::ION_DEPTH_MAX)
}

fn literal_value(literal: &Literal) -> Result<Val, LedgerError> {
    Ok(match literal {
        Literal::Null => null(),
        Literal::Missing => None,
        Literal::Bool(flag) => boolean(*flag),
        Literal::Int(int) => Some(Element::int(*int)),
        Literal::Decimal(text) => {
            Some(read_ion(text).map_err(|error| bad(format!("invalid decimal {text}: {error}")))?)
        }
        Literal::Float(float) => Some(Element::float(*float)),
        Literal::String(text) => Some(Element::string(text.as_str())),
    })
}

fn unary_value(op: UnaryOp, operand: Val) -> Result<Val, LedgerError> {
    let Some(operand) = operand else {
        return Ok(None);
    };
    if operand.is_null() {
        return Ok(null());
    }
    match op {
        UnaryOp::Not => match operand.as_bool() {
            Some(flag) => Ok(boolean(!flag)),
            None => Ok(None),
        },
        UnaryOp::Plus => Ok(Some(operand)),
        UnaryOp::Neg => match Number::from_element(&operand) {
            Some(number) => Ok(number
                .arithmetic(Number::Int(-1), ArithmeticOperator::Multiply)
                .map(Number::to_element)),
            None => Ok(None),
        },
    }
}

fn binary_values(op: BinaryOp, left: Val, right: Val) -> Result<Val, LedgerError> {
    match op {
        BinaryOp::And | BinaryOp::Or => {
            let as_truth = |value: &Val| value.as_ref().and_then(Element::as_bool);
            let (left_truth, right_truth) = (as_truth(&left), as_truth(&right));
            let result = if op == BinaryOp::And {
                match (left_truth, right_truth) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                }
            } else {
                match (left_truth, right_truth) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                }
            };
            return Ok(match result {
                Some(flag) => boolean(flag),
                None if left.is_none() || right.is_none() => None,
                None => null(),
            });
        }
        _ => {}
    }
    let (Some(left), Some(right)) = (left, right) else {
        return Ok(None);
    };
    if left.is_null() || right.is_null() {
        return Ok(null());
    }
    let comparison = |wanted: fn(Ordering) -> bool| -> Val {
        value::compare_values(&left, &right).map(|ordering| Element::boolean(wanted(ordering)))
    };
    Ok(match op {
        BinaryOp::Eq => boolean(value::values_equal(&left, &right)),
        BinaryOp::NotEq => boolean(!value::values_equal(&left, &right)),
        BinaryOp::Lt => comparison(|ordering| ordering == Ordering::Less),
        BinaryOp::LtEq => comparison(|ordering| ordering != Ordering::Greater),
        BinaryOp::Gt => comparison(|ordering| ordering == Ordering::Greater),
        BinaryOp::GtEq => comparison(|ordering| ordering != Ordering::Less),
        BinaryOp::Concat => match (value::text_of(&left), value::text_of(&right)) {
            (Some(left_text), Some(right_text)) => {
                Some(Element::string(format!("{left_text}{right_text}")))
            }
            _ => None,
        },
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
            let operator = match op {
                BinaryOp::Add => ArithmeticOperator::Add,
                BinaryOp::Sub => ArithmeticOperator::Subtract,
                BinaryOp::Mul => ArithmeticOperator::Multiply,
                BinaryOp::Div => ArithmeticOperator::Divide,
                _ => ArithmeticOperator::Modulo,
            };
            match (Number::from_element(&left), Number::from_element(&right)) {
                (Some(left_number), Some(right_number)) => {
                    match left_number.arithmetic(right_number, operator) {
                        Some(result) => Some(result.to_element()),
                        None => return Err(bad("arithmetic overflow or division by zero")),
                    }
                }
                _ => None,
            }
        }
        BinaryOp::And | BinaryOp::Or => None,
    })
}

fn is_aggregate_name(name: &str) -> bool {
    matches!(name, "count" | "sum" | "avg" | "min" | "max")
}

fn aggregate(name: &str, values: Vec<Element>) -> Result<Val, LedgerError> {
    match name {
        "count" => Ok(Some(Element::int(values.len() as i64))),
        "min" | "max" => {
            let mut best: Option<Element> = None;
            for value in values {
                best = match best {
                    None => Some(value),
                    Some(current) => {
                        let ordering = value::order_for_sort(Some(&value), Some(&current));
                        let better = if name == "min" {
                            ordering == Ordering::Less
                        } else {
                            ordering == Ordering::Greater
                        };
                        Some(if better { value } else { current })
                    }
                };
            }
            Ok(Some(best.unwrap_or_else(|| Element::null(IonType::Null))))
        }
        _ => {
            let count = values.len();
            let mut sum: Option<Number> = None;
            for value in &values {
                let number = Number::from_element(value)
                    .ok_or_else(|| bad(format!("{name} over a non-number")))?;
                sum = Some(match sum {
                    None => number,
                    Some(total) => total
                        .arithmetic(number, ArithmeticOperator::Add)
                        .ok_or_else(|| bad("arithmetic overflow"))?,
                });
            }
            let Some(sum) = sum else { return Ok(null()) };
            if name == "sum" {
                return Ok(Some(sum.to_element()));
            }
            let average = sum
                .arithmetic(Number::Int(count as i128), ArithmeticOperator::Divide)
                .map(|average| match (sum, average) {
                    (Number::Int(_), Number::Int(_)) => Number::Decimal {
                        coefficient: 0,
                        exponent: 0,
                    }
                    .arithmetic(sum, ArithmeticOperator::Add)
                    .and_then(|decimal| {
                        decimal.arithmetic(Number::Int(count as i128), ArithmeticOperator::Divide)
                    })
                    .unwrap_or(average),
                    _ => average,
                })
                .ok_or_else(|| bad("arithmetic overflow"))?;
            Ok(Some(average.to_element()))
        }
    }
}

fn projection_has_aggregate(projection: &Projection) -> bool {
    let has = |expr: &Expr| contains_aggregate(expr);
    match projection {
        Projection::Star => false,
        Projection::Value(expr) => has(expr),
        Projection::Items(items) => items.iter().any(|item| match item {
            ProjectItem::Expr { expr, .. } | ProjectItem::AllFields(expr) => has(expr),
        }),
    }
}

/// Whether an expression holds an aggregate outside any subquery.
fn contains_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::CountStar => true,
        Expr::Call { name, .. } if is_aggregate_name(name) => true,
        Expr::Call { args, .. } => args.iter().any(contains_aggregate),
        Expr::Binary { left, right, .. } => contains_aggregate(left) || contains_aggregate(right),
        Expr::Unary { operand, .. } => contains_aggregate(operand),
        _ => false,
    }
}

/// Whether an expression depends on no row (literals, parameters and constructors of them).
/// Whether `expr` is `<alias>.metadata.id`.
fn is_metadata_id_of(expr: &Expr, alias: &str) -> bool {
    matches!(
        expr,
        Expr::Path { root, steps }
            if matches!(root.as_ref(), Expr::Var(root) if root.matches(alias))
                && matches!(
                    steps.as_slice(),
                    [PathStep::Field(metadata), PathStep::Field(id)]
                        if metadata.matches("metadata") && id.matches("id")
                )
    )
}

fn is_constant(expr: &Expr) -> bool {
    let mut constant = true;
    expr.for_each(&mut |inner| {
        if matches!(
            inner,
            Expr::Var(_)
                | Expr::Path { .. }
                | Expr::Subquery(_)
                | Expr::CountStar
                | Expr::Call { .. }
        ) {
            constant = false;
        }
    });
    constant
}

/// The field path an expression names in the scanned document, if it is `alias.a.b` (or `a.b`
/// when unqualified names refer to the only document).
fn field_path_of(expr: &Expr, alias: &str, allow_unqualified: bool) -> Option<Vec<Ident>> {
    let (root, steps): (&Ident, &[PathStep]) = match expr {
        Expr::Var(ident) => (ident, &[]),
        Expr::Path { root, steps } => match root.as_ref() {
            Expr::Var(ident) => (ident, steps.as_slice()),
            _ => return None,
        },
        _ => return None,
    };
    let mut path = Vec::new();
    if !root.matches(alias) {
        if !allow_unqualified {
            return None;
        }
        path.push(root.clone());
    }
    for step in steps {
        match step {
            PathStep::Field(ident) => path.push(ident.clone()),
            _ => return None,
        }
    }
    if path.is_empty() { None } else { Some(path) }
}

fn split_conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            let mut conjuncts = split_conjuncts(left);
            conjuncts.extend(split_conjuncts(right));
            conjuncts
        }
        other => vec![other],
    }
}

fn scan_names(item: &FromItem) -> Vec<String> {
    match item {
        FromItem::Scan(scan) => {
            let mut names = Vec::new();
            match (&scan.alias, &scan.source) {
                (Some(alias), _) => names.push(alias.name.clone()),
                (None, Expr::Var(ident)) => names.push(ident.name.clone()),
                _ => {}
            }
            names.extend(scan.at.iter().map(|at| at.name.clone()));
            names.extend(scan.by.iter().map(|by| by.name.clone()));
            names
        }
        FromItem::Join { left, right, .. } => {
            let mut names = scan_names(left);
            names.extend(scan_names(right));
            names
        }
    }
}

fn output_name(expr: &Expr, alias: Option<&Ident>, position: usize) -> String {
    if let Some(alias) = alias {
        return alias.name.clone();
    }
    match expr {
        Expr::Var(ident) => ident.name.clone(),
        Expr::Path { steps, .. } => match steps.last() {
            Some(PathStep::Field(ident)) => ident.name.clone(),
            Some(PathStep::Index(Expr::Lit(Literal::String(name)))) => name.clone(),
            _ => format!("_{}", position + 1),
        },
        _ => format!("_{}", position + 1),
    }
}

fn like_matches(text: &str, pattern: &str, escape: Option<char>) -> bool {
    #[derive(Debug)]
    enum Token {
        Any,
        One,
        Literal(char),
    }
    let mut tokens = Vec::new();
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        if Some(character) == escape {
            if let Some(escaped) = characters.next() {
                tokens.push(Token::Literal(escaped));
            }
        } else if character == '%' {
            tokens.push(Token::Any);
        } else if character == '_' {
            tokens.push(Token::One);
        } else {
            tokens.push(Token::Literal(character));
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Dynamic programming over (token, character) positions, without recursion:
    // `reachable[p]` says the tokens so far can consume exactly the first `p` characters.
    let mut reachable: Vec<bool> = (0..=text.len()).map(|position| position == 0).collect();
    for token in &tokens {
        let next: Vec<bool> = match token {
            Token::Any => {
                let mut any = false;
                reachable
                    .iter()
                    .map(|reached| {
                        any = any || *reached;
                        any
                    })
                    .collect()
            }
            Token::One | Token::Literal(_) => std::iter::once(false)
                .chain(reachable.iter().zip(&text).map(|(reached, character)| {
                    *reached
                        && match token {
                            Token::Literal(expected) => character == expected,
                            _ => true,
                        }
                }))
                .collect(),
        };
        reachable = next;
    }
    reachable.last().copied().unwrap_or(false)
}

fn cast(value: Val, type_name: &str) -> Result<Val, LedgerError> {
    let Some(value) = value else { return Ok(None) };
    if value.is_null() {
        return Ok(null());
    }
    let text = value::text_of(&value).map(str::to_owned);
    let number = Number::from_element(&value);
    Ok(Some(match type_name {
        "string" | "varchar" | "character varying" | "char" | "character" | "symbol" => {
            match (text, number) {
                (Some(text), _) => Element::string(text),
                _ => Element::string(model::encode_text(&value)?),
            }
        }
        "int" | "integer" | "bigint" | "smallint" => match (number, text) {
            (Some(Number::Int(int)), _) => Element::int(int),
            (Some(other), _) => Element::int(other.to_f64().trunc() as i128),
            (None, Some(text)) => Element::int(
                text.trim()
                    .parse::<i64>()
                    .map_err(|_| bad(format!("cannot cast {text:?} to int")))?,
            ),
            _ => return Err(bad("cannot cast to int")),
        },
        "decimal" | "numeric" => match (number, text) {
            (Some(Number::Float(float)), _) => Element::decimal(
                ion_rs::Decimal::try_from(float).map_err(|_| bad("cannot cast to decimal"))?,
            ),
            (Some(Number::Int(int)), _) => Element::decimal(ion_rs::Decimal::new(int, 0)),
            (Some(other), _) => other.to_element(),
            (None, Some(text)) => read_ion(text.trim())
                .ok()
                .filter(|parsed| Number::from_element(parsed).is_some())
                .ok_or_else(|| bad(format!("cannot cast {text:?} to decimal")))?,
            _ => return Err(bad("cannot cast to decimal")),
        },
        "float" | "real" | "double precision" => match (number, text) {
            (Some(number), _) => Element::float(number.to_f64()),
            (None, Some(text)) => Element::float(
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| bad(format!("cannot cast {text:?} to float")))?,
            ),
            _ => return Err(bad("cannot cast to float")),
        },
        "bool" | "boolean" => match (value.as_bool(), text.as_deref()) {
            (Some(flag), _) => Element::boolean(flag),
            (None, Some(text)) if text.eq_ignore_ascii_case("true") => Element::boolean(true),
            (None, Some(text)) if text.eq_ignore_ascii_case("false") => Element::boolean(false),
            _ => return Err(bad("cannot cast to bool")),
        },
        "timestamp" => match (value.as_timestamp(), text) {
            (Some(timestamp), _) => Element::timestamp(timestamp),
            (None, Some(text)) => read_ion(text.trim())
                .ok()
                .filter(|parsed| parsed.as_timestamp().is_some())
                .ok_or_else(|| bad(format!("cannot cast {text:?} to timestamp")))?,
            _ => return Err(bad("cannot cast to timestamp")),
        },
        other => return Err(bad(format!("unsupported cast target {other}"))),
    }))
}

// ----- document edits -----

fn struct_field_position(fields: &Struct, ident: &Ident) -> Option<usize> {
    fields
        .fields()
        .position(|(name, _)| name.text().is_some_and(|text| text == ident.name))
        .or_else(|| {
            if ident.quoted {
                None
            } else {
                fields
                    .fields()
                    .position(|(name, _)| name.text().is_some_and(|text| ident.matches(text)))
            }
        })
}

fn get_at<'a>(data: &'a Element, keys: &[PathKey]) -> Option<&'a Element> {
    let mut current = data;
    for key in keys {
        current = match key {
            PathKey::Field(ident) => field_of(current, ident)?,
            PathKey::Index(index) => current.as_sequence()?.get(*index)?,
        };
    }
    Some(current)
}

fn rebuild_struct(
    fields: &Struct,
    replace: Option<(usize, Option<Element>)>,
    append: Option<(String, Element)>,
) -> Element {
    let mut builder = Struct::builder();
    for (position, (name, value)) in fields.fields().enumerate() {
        match &replace {
            Some((target, replacement)) if *target == position => {
                if let Some(replacement) = replacement {
                    builder = builder.with_field(name.clone(), replacement.clone());
                }
            }
            _ => builder = builder.with_field(name.clone(), value.clone()),
        }
    }
    if let Some((name, value)) = append {
        builder = builder.with_field(name.as_str(), value);
    }
    Element::from(builder.build())
}

fn rebuild_list(
    items: &ion_rs::Sequence,
    replace: Option<(usize, Option<Element>)>,
    insert: Option<(usize, Element)>,
) -> Element {
    let mut values: Vec<Element> = Vec::with_capacity(items.len() + 1);
    for (position, item) in items.elements().enumerate() {
        if let Some((insert_at, value)) = &insert
            && *insert_at == position
        {
            values.push(value.clone());
        }
        match &replace {
            Some((target, replacement)) if *target == position => {
                if let Some(replacement) = replacement {
                    values.push(replacement.clone());
                }
            }
            _ => values.push(item.clone()),
        }
    }
    if let Some((insert_at, value)) = insert
        && insert_at >= items.len()
    {
        values.push(value);
    }
    model::list_element(values)
}

fn set_at(data: &Element, keys: &[PathKey], new_value: Element) -> Result<Element, LedgerError> {
    let Some((first, rest)) = keys.split_first() else {
        return Ok(new_value);
    };
    match (first, data.value()) {
        (PathKey::Field(ident), Value::Struct(fields)) => {
            match struct_field_position(fields, ident) {
                Some(position) => {
                    let child = fields
                        .fields()
                        .nth(position)
                        .map(|(_, value)| value.clone())
                        .unwrap_or_else(model::null_element);
                    let updated = set_at(&child, rest, new_value)?;
                    Ok(rebuild_struct(
                        fields,
                        Some((position, Some(updated))),
                        None,
                    ))
                }
                None => {
                    let empty = Element::from(Struct::builder().build());
                    let updated = set_at(&empty, rest, new_value)?;
                    Ok(rebuild_struct(
                        fields,
                        None,
                        Some((ident.name.clone(), updated)),
                    ))
                }
            }
        }
        (PathKey::Index(index), Value::List(items)) => {
            if let Some(child) = items.get(*index) {
                let updated = set_at(child, rest, new_value)?;
                Ok(rebuild_list(items, Some((*index, Some(updated))), None))
            } else if *index == items.len() && rest.is_empty() {
                Ok(rebuild_list(items, None, Some((*index, new_value))))
            } else {
                Err(bad(format!("list index {index} is out of range")))
            }
        }
        _ => Err(bad("the SET path does not match the document's shape")),
    }
}

fn remove_at(data: &Element, keys: &[PathKey]) -> Result<Element, LedgerError> {
    let Some((first, rest)) = keys.split_first() else {
        return Ok(data.clone());
    };
    match (first, data.value()) {
        (PathKey::Field(ident), Value::Struct(fields)) => {
            match struct_field_position(fields, ident) {
                None => Ok(data.clone()),
                Some(position) if rest.is_empty() => {
                    Ok(rebuild_struct(fields, Some((position, None)), None))
                }
                Some(position) => {
                    let child = fields
                        .fields()
                        .nth(position)
                        .map(|(_, value)| value.clone())
                        .unwrap_or_else(model::null_element);
                    let updated = remove_at(&child, rest)?;
                    Ok(rebuild_struct(
                        fields,
                        Some((position, Some(updated))),
                        None,
                    ))
                }
            }
        }
        (PathKey::Index(index), Value::List(items)) => match items.get(*index) {
            None => Ok(data.clone()),
            Some(_) if rest.is_empty() => Ok(rebuild_list(items, Some((*index, None)), None)),
            Some(child) => {
                let updated = remove_at(child, rest)?;
                Ok(rebuild_list(items, Some((*index, Some(updated))), None))
            }
        },
        _ => Ok(data.clone()),
    }
}

fn insert_into(
    container: &Element,
    new_value: Element,
    position: Val,
) -> Result<Element, LedgerError> {
    match container.value() {
        Value::List(items) | Value::SExp(items) => {
            let at = match position {
                None => items.len(),
                Some(position) => position
                    .as_i64()
                    .and_then(|index| usize::try_from(index).ok())
                    .filter(|index| *index <= items.len())
                    .ok_or_else(|| bad("INSERT INTO a list takes an index within the list"))?,
            };
            Ok(rebuild_list(items, None, Some((at, new_value))))
        }
        Value::Struct(fields) => {
            let name = position
                .as_ref()
                .and_then(value::text_of)
                .ok_or_else(|| bad("INSERT INTO a struct takes AT 'fieldName'"))?
                .to_owned();
            if fields.get(name.as_str()).is_some() {
                return Err(bad(format!("field {name} already exists")));
            }
            Ok(rebuild_struct(fields, None, Some((name, new_value))))
        }
        _ => Err(bad("INSERT INTO targets a list or a struct")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_handles_wildcards_and_escapes() {
        assert!(like_matches("hello", "h%o", None));
        assert!(like_matches("hello", "h_llo", None));
        assert!(!like_matches("hello", "h_lo", None));
        assert!(like_matches("50%", "50!%", Some('!')));
        assert!(!like_matches("500", "50!%", Some('!')));
        assert!(like_matches("", "%", None));
    }
}
