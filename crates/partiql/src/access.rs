//! What a statement does to which tables, as QLDB's STANDARD permissions mode names it: each
//! [`TableAccess`] is a PartiQL action (`PartiQLSelect`, `PartiQLInsert`, `PartiQLCreateTable`,
//! `PartiQLHistoryFunction`, …) on a table, or on `information_schema.user_tables`.
//!
//! A `FROM` source is a table when it is a bare name that no binding in scope holds, as the
//! ledger's evaluator decides: the aliases of the sources to its left, and of the queries it is
//! nested in. `_ql_committed_T` is table `T`; `history(T, …)` reads `T`'s history.

use crate::ast::{Expr, FromItem, Ident, ProjectItem, Projection, Select, Statement};

/// Prefix of the committed views: `_ql_committed_<table>`.
const COMMITTED_VIEW_PREFIX: &str = "_ql_committed_";

/// A PartiQL action of QLDB's STANDARD permissions mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    CreateTable,
    DropTable,
    UndropTable,
    CreateIndex,
    DropIndex,
    Insert,
    Update,
    Delete,
    Select,
    HistoryFunction,
}

impl Action {
    /// The IAM action's name without its `qldb:` prefix.
    pub fn name(self) -> &'static str {
        match self {
            Action::CreateTable => "PartiQLCreateTable",
            Action::DropTable => "PartiQLDropTable",
            Action::UndropTable => "PartiQLUndropTable",
            Action::CreateIndex => "PartiQLCreateIndex",
            Action::DropIndex => "PartiQLDropIndex",
            Action::Insert => "PartiQLInsert",
            Action::Update => "PartiQLUpdate",
            Action::Delete => "PartiQLDelete",
            Action::Select => "PartiQLSelect",
            Action::HistoryFunction => "PartiQLHistoryFunction",
        }
    }
}

/// What a statement does to one table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableAccess {
    pub action: Action,
    /// The table's name as written (an id for `UNDROP TABLE`), or `information_schema/user_tables`.
    pub table: String,
}

/// The system catalog's resource name.
pub const INFORMATION_SCHEMA: &str = "information_schema/user_tables";

impl Statement {
    /// Every table access of the statement, sorted, without repeats.
    pub fn table_accesses(&self) -> Vec<TableAccess> {
        let mut out = Vec::new();
        let mut add = |action, table: &Ident| {
            out.push(TableAccess {
                action,
                table: table.name.clone(),
            })
        };
        match self {
            Statement::CreateTable(create) => add(Action::CreateTable, &create.table),
            Statement::DropTable(drop) => add(Action::DropTable, &drop.table),
            Statement::UndropTable(undrop) => add(Action::UndropTable, &undrop.table_id),
            Statement::CreateIndex(create) => add(Action::CreateIndex, &create.table),
            Statement::DropIndex(drop) => add(Action::DropIndex, &drop.table),
            Statement::Insert(insert) => add(Action::Insert, &insert.table),
            Statement::Update(update) => add(Action::Update, &update.target.table),
            Statement::Delete(delete) => add(Action::Delete, &delete.target.table),
            Statement::Select(_) => {}
        }
        // The statement's own bindings: a DML target binds its alias (or its table's name).
        let scope: Vec<Ident> = match self {
            Statement::Update(update) => {
                vec![
                    update
                        .target
                        .alias
                        .clone()
                        .unwrap_or(update.target.table.clone()),
                ]
            }
            Statement::Delete(delete) => {
                vec![
                    delete
                        .target
                        .alias
                        .clone()
                        .unwrap_or(delete.target.table.clone()),
                ]
            }
            _ => Vec::new(),
        };
        match self {
            Statement::Select(select) => select_accesses(select, &scope, &mut out),
            _ => {
                for expr in self.top_level_exprs() {
                    subquery_accesses(expr, &scope, &mut out);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn bound(scope: &[Ident], name: &Ident) -> bool {
    scope.iter().any(|binding| name.matches(&binding.name))
}

/// The accesses of a query whose enclosing queries bind `outer`.
fn select_accesses(select: &Select, outer: &[Ident], out: &mut Vec<TableAccess>) {
    let mut scope = outer.to_vec();
    if let Some(from) = &select.from {
        from_accesses(from, &mut scope, out);
    }
    let mut exprs: Vec<&Expr> = Vec::new();
    match &select.projection {
        Projection::Star => {}
        Projection::Value(expr) => exprs.push(expr),
        Projection::Items(items) => {
            for item in items {
                match item {
                    ProjectItem::Expr { expr, .. } | ProjectItem::AllFields(expr) => {
                        exprs.push(expr);
                    }
                }
            }
        }
    }
    exprs.extend(select.condition.iter());
    exprs.extend(select.order_by.iter().map(|key| &key.expr));
    exprs.extend(select.limit.iter().chain(select.offset.iter()));
    for expr in exprs {
        subquery_accesses(expr, &scope, out);
    }
}

/// The accesses of the subqueries an expression holds, at any depth of the expression but
/// each walked as a query of its own.
fn subquery_accesses(expr: &Expr, scope: &[Ident], out: &mut Vec<TableAccess>) {
    if let Expr::Subquery(select) = expr {
        select_accesses(select, scope, out);
        return;
    }
    expr.for_each_child(&mut |child| subquery_accesses(child, scope, out));
}

/// Walks the sources left to right, each seeing the bindings of those before it.
fn from_accesses(from: &FromItem, scope: &mut Vec<Ident>, out: &mut Vec<TableAccess>) {
    match from {
        FromItem::Scan(scan) => {
            match &scan.source {
                Expr::Var(name) if !bound(scope, name) => {
                    let table = name
                        .name
                        .get(..COMMITTED_VIEW_PREFIX.len())
                        .filter(|prefix| prefix.eq_ignore_ascii_case(COMMITTED_VIEW_PREFIX))
                        .and_then(|_| name.name.get(COMMITTED_VIEW_PREFIX.len()..))
                        .unwrap_or(&name.name);
                    out.push(TableAccess {
                        action: Action::Select,
                        table: table.to_owned(),
                    });
                    scope.push(scan.alias.clone().unwrap_or(name.clone()));
                }
                Expr::Path { root, steps }
                    if matches!(root.as_ref(), Expr::Var(name) if name.matches("information_schema") && !bound(scope, name))
                        && steps.len() == 1 =>
                {
                    out.push(TableAccess {
                        action: Action::Select,
                        table: INFORMATION_SCHEMA.to_owned(),
                    });
                }
                Expr::Call { name, args } if name == "history" => {
                    if let Some(Expr::Var(table)) = args.first()
                        && !bound(scope, table)
                    {
                        out.push(TableAccess {
                            action: Action::HistoryFunction,
                            table: table.name.clone(),
                        });
                    }
                    for arg in args.iter().skip(1) {
                        subquery_accesses(arg, scope, out);
                    }
                }
                source => subquery_accesses(source, scope, out),
            }
            scope.extend(scan.alias.iter().cloned());
            scope.extend(scan.at.iter().cloned());
            scope.extend(scan.by.iter().cloned());
        }
        FromItem::Join {
            left, right, on, ..
        } => {
            from_accesses(left, scope, out);
            from_accesses(right, scope, out);
            if let Some(on) = on {
                subquery_accesses(on, scope, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accesses(sql: &str) -> Vec<(Action, String)> {
        crate::parse(sql)
            .unwrap()
            .table_accesses()
            .into_iter()
            .map(|access| (access.action, access.table))
            .collect()
    }

    fn one(action: Action, table: &str) -> (Action, String) {
        (action, table.to_owned())
    }

    #[test]
    fn statements_and_their_tables() {
        assert_eq!(
            accesses("CREATE TABLE Cars"),
            [one(Action::CreateTable, "Cars")]
        );
        assert_eq!(
            accesses("INSERT INTO Cars VALUE {'VIN': 1}"),
            [one(Action::Insert, "Cars")]
        );
        assert_eq!(
            accesses("SELECT * FROM Cars AS c, c.owners AS o WHERE c.VIN = ?"),
            [one(Action::Select, "Cars")]
        );
        assert_eq!(
            accesses("SELECT * FROM history(Cars) AS h"),
            [one(Action::HistoryFunction, "Cars")]
        );
        assert_eq!(
            accesses("SELECT * FROM _ql_committed_Cars"),
            [one(Action::Select, "Cars")]
        );
        assert_eq!(
            accesses("SELECT * FROM information_schema.user_tables"),
            [one(Action::Select, INFORMATION_SCHEMA)]
        );
        assert_eq!(
            accesses(
                "UPDATE Cars AS c SET c.x = 1 WHERE c.VIN IN (SELECT VALUE p.VIN FROM Plates AS p)"
            ),
            [one(Action::Update, "Cars"), one(Action::Select, "Plates")]
        );
        assert_eq!(
            accesses(
                "DELETE FROM Cars WHERE EXISTS (SELECT * FROM Owners AS o WHERE o.id = Cars.owner)"
            ),
            [one(Action::Delete, "Cars"), one(Action::Select, "Owners")]
        );
        assert_eq!(
            accesses("SELECT a.x, b.y FROM A AS a INNER JOIN B AS b ON a.id = b.id"),
            [one(Action::Select, "A"), one(Action::Select, "B")]
        );
    }

    #[test]
    fn a_name_bound_elsewhere_does_not_hide_a_table_read_in_its_own_scope() {
        // `Secret` read by the outer query is a table, though a subquery binds the name.
        assert_eq!(
            accesses("SELECT * FROM Secret WHERE EXISTS (SELECT * FROM Cars AS Secret)"),
            [one(Action::Select, "Cars"), one(Action::Select, "Secret")]
        );
        // Inside the subquery, the outer alias is a binding, not a table.
        assert_eq!(
            accesses("SELECT * FROM Cars AS c WHERE EXISTS (SELECT * FROM c)"),
            [one(Action::Select, "Cars")]
        );
        // Subqueries nested in subqueries and in projections are found.
        assert_eq!(
            accesses(
                "SELECT (SELECT VALUE COUNT(*) FROM (SELECT * FROM Deep) AS d) AS n FROM Cars"
            ),
            [one(Action::Select, "Cars"), one(Action::Select, "Deep")]
        );
    }
}
