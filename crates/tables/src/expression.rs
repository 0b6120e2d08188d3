//! DynamoDB's condition expressions (`ConditionExpression`, later also filters): parsed into a
//! tree with `#name` and `:value` placeholders resolved, then evaluated against an item. The
//! parser is top-down with DynamoDB's precedence (comparisons, `BETWEEN`, `IN` and functions
//! bind tightest, then `NOT`, `AND`, `OR`) and bounds its own recursion by
//! [`EXPRESSION_DEPTH_MAX`]; texts longer than [`EXPRESSION_BYTES_MAX`] are refused before.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::TablesError;
use crate::number::Number;
use crate::value::{AttributeValue, Item};

/// Longest expression text (DynamoDB's 4 KB); longer is refused before parsing.
pub const EXPRESSION_BYTES_MAX: usize = 4096;
/// Deepest nesting of parentheses, `NOT`s and operands the parser follows; deeper is refused,
/// so no expression recurses further (DynamoDB's own limits are lower in practice).
pub const EXPRESSION_DEPTH_MAX: usize = 64;
/// Most elements of one document path (`a.b[1].c` has four).
pub const PATH_ELEMENTS_MAX: usize = 32;

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    Name(String),
    Index(usize),
}

/// An operand of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Path(Vec<PathElement>),
    Value(AttributeValue),
    Size(Vec<PathElement>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Compare(Operand, Comparator, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    AttributeExists(Vec<PathElement>),
    AttributeNotExists(Vec<PathElement>),
    AttributeType(Vec<PathElement>, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Name(String),
    NamePlaceholder(String),
    ValuePlaceholder(String),
    Integer(usize),
    Symbol(&'static str),
}

fn invalid(expression: &str, detail: impl std::fmt::Display) -> TablesError {
    TablesError::Validation(format!(
        "Invalid ConditionExpression: {detail}; expression: {expression}"
    ))
}

fn lex(text: &str) -> Result<Vec<Token>, TablesError> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        let word_end = |start: usize| {
            bytes
                .get(start..)
                .unwrap_or_default()
                .iter()
                .position(|byte| !(byte.is_ascii_alphanumeric() || *byte == b'_'))
                .map_or(bytes.len(), |length| start + length)
        };
        let symbol = match bytes.get(at..at + 2) {
            Some(b"<>") => Some("<>"),
            Some(b"<=") => Some("<="),
            Some(b">=") => Some(">="),
            _ => None,
        };
        if let Some(symbol) = symbol {
            tokens.push(Token::Symbol(symbol));
            at += 2;
            continue;
        }
        let single = match byte {
            b'=' => Some("="),
            b'<' => Some("<"),
            b'>' => Some(">"),
            b'(' => Some("("),
            b')' => Some(")"),
            b',' => Some(","),
            b'.' => Some("."),
            b'[' => Some("["),
            b']' => Some("]"),
            b'+' => Some("+"),
            b'-' => Some("-"),
            _ => None,
        };
        if let Some(symbol) = single {
            tokens.push(Token::Symbol(symbol));
            at += 1;
            continue;
        }
        if byte == b'#' || byte == b':' {
            let end = word_end(at + 1);
            if end == at + 1 {
                return Err(invalid(
                    text,
                    format!("Syntax error; token: \"{}\"", byte as char),
                ));
            }
            let word = text.get(at..end).unwrap_or_default().to_owned();
            tokens.push(if byte == b'#' {
                Token::NamePlaceholder(word)
            } else {
                Token::ValuePlaceholder(word)
            });
            at = end;
            continue;
        }
        if byte.is_ascii_digit() {
            let end = word_end(at);
            let word = text.get(at..end).unwrap_or_default();
            let number = word
                .parse()
                .map_err(|_| invalid(text, format!("Syntax error; token: \"{word}\"")))?;
            tokens.push(Token::Integer(number));
            at = end;
            continue;
        }
        if byte.is_ascii_alphabetic() || byte == b'_' {
            let end = word_end(at);
            tokens.push(Token::Name(
                text.get(at..end).unwrap_or_default().to_owned(),
            ));
            at = end;
            continue;
        }
        let shown: String = text.get(at..).unwrap_or_default().chars().take(1).collect();
        return Err(invalid(text, format!("Syntax error; token: \"{shown}\"")));
    }
    Ok(tokens)
}

/// Parses condition expressions against the request's placeholder maps, recording which
/// placeholders were used (DynamoDB refuses unused ones).
pub struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
    names: &'a BTreeMap<String, String>,
    values: &'a BTreeMap<String, AttributeValue>,
    pub used_names: BTreeSet<String>,
    pub used_values: BTreeSet<String>,
}

impl<'a> Parser<'a> {
    pub fn new(
        text: &'a str,
        names: &'a BTreeMap<String, String>,
        values: &'a BTreeMap<String, AttributeValue>,
    ) -> Result<Parser<'a>, TablesError> {
        if text.len() > EXPRESSION_BYTES_MAX {
            return Err(TablesError::Validation(format!(
                "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; expression size: {}",
                text.len()
            )));
        }
        if text.trim().is_empty() {
            return Err(TablesError::Validation(
                "Invalid ConditionExpression: The expression can not be empty;".to_owned(),
            ));
        }
        Ok(Parser {
            text,
            tokens: lex(text)?,
            at: 0,
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
        })
    }

    /// The whole text as one condition.
    pub fn condition(&mut self) -> Result<Condition, TablesError> {
        let condition = self.or(0)?;
        if let Some(token) = self.tokens.get(self.at) {
            return Err(self.syntax_error(token.clone()));
        }
        Ok(condition)
    }

    fn syntax_error(&self, token: Token) -> TablesError {
        let shown = match token {
            Token::Name(word) | Token::NamePlaceholder(word) | Token::ValuePlaceholder(word) => {
                word
            }
            Token::Integer(number) => number.to_string(),
            Token::Symbol(symbol) => symbol.to_owned(),
        };
        invalid(self.text, format!("Syntax error; token: \"{shown}\""))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Result<Token, TablesError> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(|| invalid(self.text, "Syntax error; token: <EOF>"))?;
        self.at += 1;
        Ok(token)
    }

    fn expect(&mut self, symbol: &'static str) -> Result<(), TablesError> {
        match self.next()? {
            Token::Symbol(found) if found == symbol => Ok(()),
            other => Err(self.syntax_error(other)),
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Name(name)) if name.eq_ignore_ascii_case(word))
    }

    fn deeper(&self, depth: usize) -> Result<usize, TablesError> {
        if depth >= EXPRESSION_DEPTH_MAX {
            return Err(invalid(self.text, "The expression is nested too deeply"));
        }
        Ok(depth + 1)
    }

    fn or(&mut self, depth: usize) -> Result<Condition, TablesError> {
        let depth = self.deeper(depth)?;
        let mut left = self.and(depth)?;
        while self.keyword("OR") {
            self.at += 1;
            let right = self.and(depth)?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Condition, TablesError> {
        let mut left = self.not(depth)?;
        while self.keyword("AND") {
            self.at += 1;
            let right = self.not(depth)?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self, depth: usize) -> Result<Condition, TablesError> {
        if self.keyword("NOT") {
            self.at += 1;
            let depth = self.deeper(depth)?;
            return Ok(Condition::Not(Box::new(self.not(depth)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Condition, TablesError> {
        if self.peek() == Some(&Token::Symbol("(")) {
            self.at += 1;
            let depth = self.deeper(depth)?;
            let inner = self.or(depth)?;
            self.expect(")")?;
            return Ok(inner);
        }
        if let Some(Token::Name(name)) = self.peek().cloned()
            && self.tokens.get(self.at + 1) == Some(&Token::Symbol("("))
        {
            // Function names are case-sensitive in DynamoDB; keywords are not.
            let function = name.clone();
            if function != "size" {
                self.at += 2;
                let condition = match function.as_str() {
                    "attribute_exists" => Condition::AttributeExists(self.path()?),
                    "attribute_not_exists" => Condition::AttributeNotExists(self.path()?),
                    "attribute_type" => {
                        let path = self.path()?;
                        self.expect(",")?;
                        Condition::AttributeType(path, self.operand()?)
                    }
                    "begins_with" => {
                        let left = self.operand()?;
                        self.expect(",")?;
                        Condition::BeginsWith(left, self.operand()?)
                    }
                    "contains" => {
                        let left = self.operand()?;
                        self.expect(",")?;
                        Condition::Contains(left, self.operand()?)
                    }
                    _ => {
                        return Err(invalid(
                            self.text,
                            format!("Invalid function name; function: {name}"),
                        ));
                    }
                };
                self.expect(")")?;
                return Ok(condition);
            }
        }
        let left = self.operand()?;
        if self.keyword("BETWEEN") {
            self.at += 1;
            let low = self.operand()?;
            if !self.keyword("AND") {
                let token = self.next()?;
                return Err(self.syntax_error(token));
            }
            self.at += 1;
            let high = self.operand()?;
            return Ok(Condition::Between(left, low, high));
        }
        if self.keyword("IN") {
            self.at += 1;
            self.expect("(")?;
            let mut list = vec![self.operand()?];
            while self.peek() == Some(&Token::Symbol(",")) {
                self.at += 1;
                list.push(self.operand()?);
            }
            self.expect(")")?;
            return Ok(Condition::In(left, list));
        }
        let comparator = match self.next()? {
            Token::Symbol("=") => Comparator::Eq,
            Token::Symbol("<>") => Comparator::Ne,
            Token::Symbol("<") => Comparator::Lt,
            Token::Symbol("<=") => Comparator::Le,
            Token::Symbol(">") => Comparator::Gt,
            Token::Symbol(">=") => Comparator::Ge,
            other => return Err(self.syntax_error(other)),
        };
        let right = self.operand()?;
        Ok(Condition::Compare(left, comparator, right))
    }

    fn operand(&mut self) -> Result<Operand, TablesError> {
        match self.peek().cloned() {
            Some(Token::ValuePlaceholder(placeholder)) => {
                self.at += 1;
                let value = self.values.get(&placeholder).cloned().ok_or_else(|| {
                    TablesError::Validation(format!(
                        "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: {placeholder}"
                    ))
                })?;
                self.used_values.insert(placeholder);
                Ok(Operand::Value(value))
            }
            Some(Token::Name(name))
                if name == "size" && self.tokens.get(self.at + 1) == Some(&Token::Symbol("(")) =>
            {
                self.at += 2;
                let path = self.path()?;
                self.expect(")")?;
                Ok(Operand::Size(path))
            }
            _ => Ok(Operand::Path(self.path()?)),
        }
    }

    fn path_name(&mut self) -> Result<String, TablesError> {
        match self.next()? {
            Token::Name(name) => Ok(name),
            Token::NamePlaceholder(placeholder) => {
                let name = self.names.get(&placeholder).cloned().ok_or_else(|| {
                    TablesError::Validation(format!(
                        "Invalid ConditionExpression: An expression attribute name used in the document path is not defined; attribute name: {placeholder}"
                    ))
                })?;
                self.used_names.insert(placeholder);
                Ok(name)
            }
            other => Err(self.syntax_error(other)),
        }
    }

    fn path(&mut self) -> Result<Vec<PathElement>, TablesError> {
        let mut path = vec![PathElement::Name(self.path_name()?)];
        loop {
            match self.peek() {
                Some(Token::Symbol(".")) => {
                    self.at += 1;
                    path.push(PathElement::Name(self.path_name()?));
                }
                Some(Token::Symbol("[")) => {
                    self.at += 1;
                    match self.next()? {
                        Token::Integer(index) => path.push(PathElement::Index(index)),
                        other => return Err(self.syntax_error(other)),
                    }
                    self.expect("]")?;
                }
                _ => break,
            }
            if path.len() > PATH_ELEMENTS_MAX {
                return Err(invalid(
                    self.text,
                    "The document path has too many elements",
                ));
            }
        }
        Ok(path)
    }
}

/// A value of an update's `SET` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateValue {
    Operand(Operand),
    IfNotExists(Vec<PathElement>, Box<UpdateValue>),
    ListAppend(Box<UpdateValue>, Box<UpdateValue>),
    Plus(Box<UpdateValue>, Box<UpdateValue>),
    Minus(Box<UpdateValue>, Box<UpdateValue>),
}

/// One action of an `UpdateExpression`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateAction {
    Set(Vec<PathElement>, UpdateValue),
    Remove(Vec<PathElement>),
    Add(Vec<PathElement>, AttributeValue),
    Delete(Vec<PathElement>, AttributeValue),
}

impl UpdateAction {
    /// About how many bytes the action holds: its path's names and its operand values, as
    /// DynamoDB counts an item's bytes.
    pub fn size_bytes(&self) -> usize {
        let path_bytes = |path: &[PathElement]| -> usize {
            path.iter()
                .map(|element| match element {
                    PathElement::Name(name) => name.len(),
                    PathElement::Index(_) => 8,
                })
                .sum()
        };
        match self {
            UpdateAction::Remove(path) => path_bytes(path),
            UpdateAction::Add(path, value) | UpdateAction::Delete(path, value) => {
                path_bytes(path) + value.size_bytes()
            }
            UpdateAction::Set(path, value) => {
                let mut bytes = path_bytes(path);
                let mut pending = vec![value];
                while let Some(value) = pending.pop() {
                    match value {
                        UpdateValue::Operand(Operand::Value(value)) => bytes += value.size_bytes(),
                        UpdateValue::Operand(Operand::Path(path) | Operand::Size(path)) => {
                            bytes += path_bytes(path)
                        }
                        UpdateValue::IfNotExists(path, value) => {
                            bytes += path_bytes(path);
                            pending.push(value);
                        }
                        UpdateValue::ListAppend(left, right)
                        | UpdateValue::Plus(left, right)
                        | UpdateValue::Minus(left, right) => {
                            pending.push(left);
                            pending.push(right);
                        }
                    }
                }
                bytes
            }
        }
    }

    /// The document path the action writes.
    pub fn path(&self) -> &[PathElement] {
        match self {
            UpdateAction::Set(path, _)
            | UpdateAction::Remove(path)
            | UpdateAction::Add(path, _)
            | UpdateAction::Delete(path, _) => path,
        }
    }
}

/// A document path as DynamoDB's messages print it: `[a, b, [0]]`.
fn path_text(path: &[PathElement]) -> String {
    let elements: Vec<String> = path
        .iter()
        .map(|element| match element {
            PathElement::Name(name) => name.clone(),
            PathElement::Index(index) => format!("[{index}]"),
        })
        .collect();
    format!("[{}]", elements.join(", "))
}

/// Refuses two paths of one expression (an update's actions, a projection) where one is the
/// other or lies inside it, or where they reach into one attribute both as a map and as a list,
/// as DynamoDB refuses them.
pub fn check_overlaps<'p>(
    expression: &str,
    paths: impl Iterator<Item = &'p [PathElement]>,
) -> Result<(), TablesError> {
    let paths: Vec<&[PathElement]> = paths.collect();
    for (at, one) in paths.iter().enumerate() {
        for two in paths.iter().skip(at + 1) {
            let shared = one
                .iter()
                .zip(two.iter())
                .take_while(|(a, b)| a == b)
                .count();
            if shared == one.len().min(two.len()) {
                return Err(TablesError::Validation(format!(
                    "Invalid {expression}: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                    path_text(one),
                    path_text(two)
                )));
            }
            let kinds = (one.get(shared), two.get(shared));
            if matches!(
                kinds,
                (Some(PathElement::Name(_)), Some(PathElement::Index(_)))
                    | (Some(PathElement::Index(_)), Some(PathElement::Name(_)))
            ) {
                return Err(TablesError::Validation(format!(
                    "Invalid {expression}: Two document paths conflict with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                    path_text(one),
                    path_text(two)
                )));
            }
        }
    }
    Ok(())
}

impl Parser<'_> {
    /// The whole text as an `UpdateExpression`: `SET`, `REMOVE`, `ADD` and `DELETE` clauses,
    /// each at most once, in any order.
    pub fn update(&mut self) -> Result<Vec<UpdateAction>, TablesError> {
        let mut actions = Vec::new();
        let mut seen = BTreeSet::new();
        while let Some(token) = self.peek().cloned() {
            let Token::Name(word) = &token else {
                return Err(self.syntax_error(token));
            };
            let clause = word.to_ascii_uppercase();
            if !matches!(clause.as_str(), "SET" | "REMOVE" | "ADD" | "DELETE") {
                return Err(self.syntax_error(token));
            }
            if !seen.insert(clause.clone()) {
                return Err(TablesError::Validation(format!(
                    "Invalid UpdateExpression: The \"{clause}\" section can only be used once in an update expression;"
                )));
            }
            self.at += 1;
            loop {
                let path = self.path()?;
                actions.push(match clause.as_str() {
                    "SET" => {
                        self.expect("=")?;
                        UpdateAction::Set(path, self.update_value(0)?)
                    }
                    "REMOVE" => UpdateAction::Remove(path),
                    _ => {
                        let Operand::Value(value) = self.operand()? else {
                            return Err(invalid(
                                self.text,
                                "ADD and DELETE take a value placeholder",
                            ));
                        };
                        if clause == "ADD" {
                            UpdateAction::Add(path, value)
                        } else {
                            UpdateAction::Delete(path, value)
                        }
                    }
                });
                if self.peek() == Some(&Token::Symbol(",")) {
                    self.at += 1;
                } else {
                    break;
                }
            }
        }
        if actions.is_empty() {
            return Err(TablesError::Validation(
                "Invalid UpdateExpression: The expression can not be empty;".to_owned(),
            ));
        }
        check_overlaps("UpdateExpression", actions.iter().map(UpdateAction::path))?;
        Ok(actions)
    }

    /// The whole text as a `ProjectionExpression`: document paths separated by commas.
    pub fn projection(&mut self) -> Result<Vec<Vec<PathElement>>, TablesError> {
        let mut paths = vec![self.path()?];
        while self.peek() == Some(&Token::Symbol(",")) {
            self.at += 1;
            paths.push(self.path()?);
        }
        if let Some(token) = self.peek().cloned() {
            return Err(self.syntax_error(token));
        }
        check_overlaps("ProjectionExpression", paths.iter().map(Vec::as_slice))?;
        Ok(paths)
    }

    fn update_value(&mut self, depth: usize) -> Result<UpdateValue, TablesError> {
        let depth = self.deeper(depth)?;
        let left = self.update_term(depth)?;
        match self.peek() {
            Some(Token::Symbol("+")) => {
                self.at += 1;
                Ok(UpdateValue::Plus(
                    Box::new(left),
                    Box::new(self.update_term(depth)?),
                ))
            }
            Some(Token::Symbol("-")) => {
                self.at += 1;
                Ok(UpdateValue::Minus(
                    Box::new(left),
                    Box::new(self.update_term(depth)?),
                ))
            }
            _ => Ok(left),
        }
    }

    fn update_term(&mut self, depth: usize) -> Result<UpdateValue, TablesError> {
        if let Some(Token::Name(name)) = self.peek().cloned()
            && self.tokens.get(self.at + 1) == Some(&Token::Symbol("("))
        {
            let depth = self.deeper(depth)?;
            self.at += 2;
            let value = match name.as_str() {
                "if_not_exists" => {
                    let path = self.path()?;
                    self.expect(",")?;
                    UpdateValue::IfNotExists(path, Box::new(self.update_value(depth)?))
                }
                "list_append" => {
                    let left = self.update_value(depth)?;
                    self.expect(",")?;
                    UpdateValue::ListAppend(Box::new(left), Box::new(self.update_value(depth)?))
                }
                _ => {
                    return Err(invalid(
                        self.text,
                        format!("Invalid function name; function: {name}"),
                    ));
                }
            };
            self.expect(")")?;
            return Ok(value);
        }
        Ok(UpdateValue::Operand(self.operand()?))
    }
}

fn update_error(message: &str) -> TablesError {
    TablesError::Validation(format!("The provided expression refers to {message}"))
}

fn type_error() -> TablesError {
    TablesError::Validation(
        "An operand in the update expression has an incorrect data type".to_owned(),
    )
}

/// Adds two numbers exactly; the sum must fit DynamoDB's numbers.
pub fn add_numbers(left: &Number, right: &Number, subtract: bool) -> Result<Number, TablesError> {
    // Align both on the smaller exponent: at most 38 digits plus the exponent range apart.
    let exponent = left.exponent().min(right.exponent());
    let digits_of = |number: &Number| -> Vec<u8> {
        let mut digits: Vec<u8> = number
            .digit_text()
            .bytes()
            .map(|digit| digit - b'0')
            .collect();
        let shift = (number.exponent() - exponent) as usize;
        digits.extend(std::iter::repeat_n(0, shift));
        digits.reverse(); // least significant first
        digits
    };
    let (a, b) = (digits_of(left), digits_of(right));
    let a_negative = left.is_negative();
    let b_negative = right.is_negative() != subtract && !right.is_zero();
    let magnitude_cmp = |a: &[u8], b: &[u8]| {
        let significant = |digits: &[u8]| {
            digits
                .iter()
                .rposition(|digit| *digit != 0)
                .map_or(0, |at| at + 1)
        };
        let (la, lb) = (significant(a), significant(b));
        la.cmp(&lb)
            .then_with(|| a.iter().take(la).rev().cmp(b.iter().take(lb).rev()))
    };
    let length = a.len().max(b.len()) + 1;
    let digit = |digits: &[u8], at: usize| i32::from(digits.get(at).copied().unwrap_or(0));
    let (mut result, negative) = if a_negative == b_negative {
        let mut carry = 0;
        let mut sum = Vec::with_capacity(length);
        for at in 0..length {
            let total = digit(&a, at) + digit(&b, at) + carry;
            sum.push((total % 10) as u8);
            carry = total / 10;
        }
        (sum, a_negative)
    } else {
        let (big, small, negative) = if magnitude_cmp(&a, &b).is_ge() {
            (&a, &b, a_negative)
        } else {
            (&b, &a, b_negative)
        };
        let mut borrow = 0;
        let mut difference = Vec::with_capacity(length);
        for at in 0..length {
            let mut total = digit(big, at) - digit(small, at) - borrow;
            borrow = i32::from(total < 0);
            if total < 0 {
                total += 10;
            }
            difference.push(total as u8);
        }
        (difference, negative)
    };
    result.reverse();
    let text: String = result
        .iter()
        .map(|digit| char::from(b'0' + digit))
        .collect();
    Number::parse(&format!(
        "{}{text}e{exponent}",
        if negative { "-" } else { "" }
    ))
}

fn evaluate_update_value(item: &Item, value: &UpdateValue) -> Result<AttributeValue, TablesError> {
    match value {
        UpdateValue::Operand(Operand::Value(value)) => Ok(value.clone()),
        UpdateValue::Operand(Operand::Path(path)) => resolve(item, path)
            .cloned()
            .ok_or_else(|| update_error("an attribute that does not exist in the item")),
        UpdateValue::Operand(Operand::Size(_)) => Err(type_error()),
        UpdateValue::IfNotExists(path, fallback) => match resolve(item, path) {
            Some(found) => Ok(found.clone()),
            None => evaluate_update_value(item, fallback),
        },
        UpdateValue::ListAppend(left, right) => {
            match (
                evaluate_update_value(item, left)?,
                evaluate_update_value(item, right)?,
            ) {
                (AttributeValue::L(mut left), AttributeValue::L(right)) => {
                    left.extend(right);
                    Ok(AttributeValue::L(left))
                }
                _ => Err(type_error()),
            }
        }
        UpdateValue::Plus(left, right) | UpdateValue::Minus(left, right) => {
            match (
                evaluate_update_value(item, left)?,
                evaluate_update_value(item, right)?,
            ) {
                (AttributeValue::N(left), AttributeValue::N(right)) => Ok(AttributeValue::N(
                    add_numbers(&left, &right, matches!(value, UpdateValue::Minus(..)))?,
                )),
                _ => Err(type_error()),
            }
        }
    }
}

/// Applies update actions to an item (an empty item when there was none), as DynamoDB does:
/// every value is computed from the item as it was before the update. A nested path (`a.b`,
/// `list[2]`) needs its parent to exist with the right type; `SET` on a list index past the
/// end appends; `REMOVE` of list elements takes indices as they were before the update.
pub fn apply_update(before: &Item, actions: &[UpdateAction]) -> Result<Item, TablesError> {
    let mut after = before.clone();
    let (removes, writes): (Vec<&UpdateAction>, Vec<&UpdateAction>) = actions
        .iter()
        .partition(|action| matches!(action, UpdateAction::Remove(_)));
    for action in writes {
        let path = action.path();
        let value = match action {
            UpdateAction::Set(_, value) => Some(evaluate_update_value(before, value)?),
            UpdateAction::Add(_, value) => Some(match (resolve(before, path), value) {
                (
                    None,
                    value @ (AttributeValue::N(_)
                    | AttributeValue::Ss(_)
                    | AttributeValue::Ns(_)
                    | AttributeValue::Bs(_)),
                ) => value.clone(),
                (Some(AttributeValue::N(left)), AttributeValue::N(right)) => {
                    AttributeValue::N(add_numbers(left, right, false)?)
                }
                (Some(AttributeValue::Ss(left)), AttributeValue::Ss(right)) => {
                    AttributeValue::Ss(left.union(right).cloned().collect())
                }
                (Some(AttributeValue::Ns(left)), AttributeValue::Ns(right)) => {
                    AttributeValue::Ns(left.union(right).cloned().collect())
                }
                (Some(AttributeValue::Bs(left)), AttributeValue::Bs(right)) => {
                    AttributeValue::Bs(left.union(right).cloned().collect())
                }
                _ => return Err(type_error()),
            }),
            UpdateAction::Delete(_, value) => match (resolve(before, path), value) {
                (None, AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)) => {
                    None
                }
                (Some(AttributeValue::Ss(left)), AttributeValue::Ss(right)) => {
                    let left: BTreeSet<String> = left.difference(right).cloned().collect();
                    (!left.is_empty()).then_some(AttributeValue::Ss(left))
                }
                (Some(AttributeValue::Ns(left)), AttributeValue::Ns(right)) => {
                    let left: BTreeSet<Number> = left.difference(right).cloned().collect();
                    (!left.is_empty()).then_some(AttributeValue::Ns(left))
                }
                (Some(AttributeValue::Bs(left)), AttributeValue::Bs(right)) => {
                    let left: BTreeSet<Vec<u8>> = left.difference(right).cloned().collect();
                    (!left.is_empty()).then_some(AttributeValue::Bs(left))
                }
                _ => return Err(type_error()),
            },
            UpdateAction::Remove(_) => None,
        };
        match (slot(&mut after, path)?, value) {
            (Slot::Map(map, name), Some(value)) => {
                map.insert(name, value);
            }
            (Slot::List(list, index), Some(value)) => match list.get_mut(index) {
                Some(element) => *element = value,
                None => list.push(value),
            },
            (Slot::Map(map, name), None) => {
                map.remove(&name);
            }
            (Slot::List(list, index), None) => {
                if index < list.len() {
                    list.remove(index);
                }
            }
        }
    }
    // Removals last, list elements from the highest index down, so that each index names the
    // element it named before the update.
    let mut removes: Vec<&[PathElement]> = removes.iter().map(|action| action.path()).collect();
    removes.sort_by(|a, b| b.cmp(a));
    for path in removes {
        match slot(&mut after, path)? {
            Slot::Map(map, name) => {
                map.remove(&name);
            }
            Slot::List(list, index) => {
                if index < list.len() {
                    list.remove(index);
                }
            }
        }
    }
    Ok(after)
}

/// Where a document path points inside an item: a map and a key, or a list and an index.
enum Slot<'a> {
    Map(&'a mut BTreeMap<String, AttributeValue>, String),
    List(&'a mut Vec<AttributeValue>, usize),
}

/// The slot of `path` in `item`, whose parent must exist with the right type.
fn slot<'a>(item: &'a mut Item, path: &[PathElement]) -> Result<Slot<'a>, TablesError> {
    let invalid = || {
        TablesError::Validation(
            "The document path provided in the update expression is invalid for update".to_owned(),
        )
    };
    let (last, parents) = path.split_last().ok_or_else(invalid)?;
    let mut map: Option<&'a mut BTreeMap<String, AttributeValue>> = Some(item);
    let mut list: Option<&'a mut Vec<AttributeValue>> = None;
    for element in parents {
        let next = match (map.take(), list.take(), element) {
            (Some(map), _, PathElement::Name(name)) => map.get_mut(name),
            (_, Some(list), PathElement::Index(index)) => list.get_mut(*index),
            _ => None,
        };
        match next.ok_or_else(invalid)? {
            AttributeValue::M(inner) => map = Some(inner),
            AttributeValue::L(inner) => list = Some(inner),
            _ => return Err(invalid()),
        }
    }
    match (map, list, last) {
        (Some(map), _, PathElement::Name(name)) => Ok(Slot::Map(map, name.clone())),
        (_, Some(list), PathElement::Index(index)) => Ok(Slot::List(list, *index)),
        _ => Err(invalid()),
    }
}

/// The parts of `item` that `paths` name (a `ProjectionExpression`), nested as in the item:
/// `a.b` keeps the map `a` with only `b`, `l[1], l[3]` keeps those elements of `l` in index
/// order. Paths that reach nothing are left out.
pub fn project(item: &Item, paths: &[Vec<PathElement>]) -> Item {
    let mut tree: BTreeMap<String, Projected> = BTreeMap::new();
    for path in paths {
        if let Some((PathElement::Name(top), rest)) = path.split_first()
            && let Some(value) = item.get(top)
            && let Some(part) = Projected::of(value, rest)
        {
            let merged = match tree.remove(top) {
                Some(existing) => existing.merge(part),
                None => part,
            };
            tree.insert(top.clone(), merged);
        }
    }
    tree.into_iter()
        .map(|(name, part)| (name, part.into_value()))
        .collect()
}

/// A projection being built: whole values, and the parts of maps and lists some path reached
/// into (list elements by their index in the item).
enum Projected {
    Whole(AttributeValue),
    Map(BTreeMap<String, Projected>),
    List(BTreeMap<usize, Projected>),
}

impl Projected {
    fn of(value: &AttributeValue, rest: &[PathElement]) -> Option<Projected> {
        let Some((first, rest)) = rest.split_first() else {
            return Some(Projected::Whole(value.clone()));
        };
        match (first, value) {
            (PathElement::Name(name), AttributeValue::M(map)) => Some(Projected::Map(
                BTreeMap::from([(name.clone(), Projected::of(map.get(name)?, rest)?)]),
            )),
            (PathElement::Index(index), AttributeValue::L(list)) => Some(Projected::List(
                BTreeMap::from([(*index, Projected::of(list.get(*index)?, rest)?)]),
            )),
            _ => None,
        }
    }

    fn merge(self, other: Projected) -> Projected {
        fn merge_maps<K: Ord>(
            mut left: BTreeMap<K, Projected>,
            right: BTreeMap<K, Projected>,
        ) -> BTreeMap<K, Projected> {
            for (key, part) in right {
                let merged = match left.remove(&key) {
                    Some(existing) => existing.merge(part),
                    None => part,
                };
                left.insert(key, merged);
            }
            left
        }
        match (self, other) {
            (Projected::Map(left), Projected::Map(right)) => {
                Projected::Map(merge_maps(left, right))
            }
            (Projected::List(left), Projected::List(right)) => {
                Projected::List(merge_maps(left, right))
            }
            // A whole value and a part of it cannot both be asked (overlaps are refused).
            (whole @ Projected::Whole(_), _) | (_, whole) => whole,
        }
    }

    fn into_value(self) -> AttributeValue {
        match self {
            Projected::Whole(value) => value,
            Projected::Map(map) => AttributeValue::M(
                map.into_iter()
                    .map(|(name, part)| (name, part.into_value()))
                    .collect(),
            ),
            Projected::List(list) => {
                AttributeValue::L(list.into_values().map(Projected::into_value).collect())
            }
        }
    }
}

/// The value at a path in an item, if there is one.
pub fn resolve<'i>(item: &'i Item, path: &[PathElement]) -> Option<&'i AttributeValue> {
    let (first, rest) = path.split_first()?;
    let PathElement::Name(name) = first else {
        return None;
    };
    let mut value = item.get(name)?;
    for element in rest {
        value = match (element, value) {
            (PathElement::Name(name), AttributeValue::M(map)) => map.get(name)?,
            (PathElement::Index(index), AttributeValue::L(list)) => list.get(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

fn operand_value(item: Option<&Item>, operand: &Operand) -> Option<AttributeValue> {
    match operand {
        Operand::Value(value) => Some(value.clone()),
        Operand::Path(path) => item.and_then(|item| resolve(item, path)).cloned(),
        Operand::Size(path) => {
            let size = match item.and_then(|item| resolve(item, path))? {
                AttributeValue::S(text) => text.len(),
                AttributeValue::B(bytes) => bytes.len(),
                AttributeValue::Ss(set) => set.len(),
                AttributeValue::Ns(set) => set.len(),
                AttributeValue::Bs(set) => set.len(),
                AttributeValue::M(map) => map.len(),
                AttributeValue::L(list) => list.len(),
                _ => return None,
            };
            Number::parse(&size.to_string()).ok().map(AttributeValue::N)
        }
    }
}

/// Orders two scalars of the same type as DynamoDB does; None for anything else.
fn order(left: &AttributeValue, right: &AttributeValue) -> Option<std::cmp::Ordering> {
    match (left, right) {
        (AttributeValue::N(left), AttributeValue::N(right)) => Some(left.cmp(right)),
        (AttributeValue::S(left), AttributeValue::S(right)) => {
            Some(left.as_bytes().cmp(right.as_bytes()))
        }
        (AttributeValue::B(left), AttributeValue::B(right)) => Some(left.cmp(right)),
        _ => None,
    }
}

/// Whether a condition holds for an item (None: no item).
pub fn evaluate(condition: &Condition, item: Option<&Item>) -> bool {
    match condition {
        Condition::Compare(left, comparator, right) => {
            let (left, right) = (operand_value(item, left), operand_value(item, right));
            match comparator {
                Comparator::Eq => left.is_some() && left == right,
                Comparator::Ne => !(left.is_some() && left == right),
                ordering => {
                    let (Some(left), Some(right)) = (left, right) else {
                        return false;
                    };
                    let Some(found) = order(&left, &right) else {
                        return false;
                    };
                    match ordering {
                        Comparator::Lt => found.is_lt(),
                        Comparator::Le => found.is_le(),
                        Comparator::Gt => found.is_gt(),
                        _ => found.is_ge(),
                    }
                }
            }
        }
        Condition::Between(value, low, high) => {
            let (Some(value), Some(low), Some(high)) = (
                operand_value(item, value),
                operand_value(item, low),
                operand_value(item, high),
            ) else {
                return false;
            };
            order(&low, &value).is_some_and(|found| found.is_le())
                && order(&value, &high).is_some_and(|found| found.is_le())
        }
        Condition::In(value, list) => operand_value(item, value).is_some_and(|value| {
            list.iter()
                .any(|candidate| operand_value(item, candidate).as_ref() == Some(&value))
        }),
        Condition::AttributeExists(path) => item.and_then(|item| resolve(item, path)).is_some(),
        Condition::AttributeNotExists(path) => item.and_then(|item| resolve(item, path)).is_none(),
        Condition::AttributeType(path, expected) => {
            match (
                item.and_then(|item| resolve(item, path)),
                operand_value(item, expected),
            ) {
                (Some(value), Some(AttributeValue::S(type_name))) => value.type_name() == type_name,
                _ => false,
            }
        }
        Condition::BeginsWith(value, prefix) => {
            match (operand_value(item, value), operand_value(item, prefix)) {
                (Some(AttributeValue::S(text)), Some(AttributeValue::S(prefix))) => {
                    text.starts_with(&prefix)
                }
                (Some(AttributeValue::B(bytes)), Some(AttributeValue::B(prefix))) => {
                    bytes.starts_with(&prefix)
                }
                _ => false,
            }
        }
        Condition::Contains(container, element) => {
            match (operand_value(item, container), operand_value(item, element)) {
                (Some(AttributeValue::S(text)), Some(AttributeValue::S(part))) => {
                    text.contains(&part)
                }
                (Some(AttributeValue::B(bytes)), Some(AttributeValue::B(part))) => {
                    part.is_empty() || bytes.windows(part.len()).any(|window| window == part)
                }
                (Some(AttributeValue::Ss(set)), Some(AttributeValue::S(element))) => {
                    set.contains(&element)
                }
                (Some(AttributeValue::Ns(set)), Some(AttributeValue::N(element))) => {
                    set.contains(&element)
                }
                (Some(AttributeValue::Bs(set)), Some(AttributeValue::B(element))) => {
                    set.contains(&element)
                }
                (Some(AttributeValue::L(list)), Some(element)) => list.contains(&element),
                _ => false,
            }
        }
        Condition::And(left, right) => evaluate(left, item) && evaluate(right, item),
        Condition::Or(left, right) => evaluate(left, item) || evaluate(right, item),
        Condition::Not(inner) => !evaluate(inner, item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(
        text: &str,
        values: &BTreeMap<String, AttributeValue>,
    ) -> Result<Condition, TablesError> {
        let names = BTreeMap::from([("#a".to_owned(), "a".to_owned())]);
        Parser::new(text, &names, values)?.condition()
    }

    /// The test's own values and interpreter, written from DynamoDB's documentation and sharing
    /// nothing with the engine's evaluator.
    #[derive(Debug, Clone, PartialEq)]
    enum V {
        Num(i64),
        Str(String),
    }

    #[derive(Debug, Clone)]
    enum T {
        Cmp(usize, &'static str, V),
        Between(usize, V, V),
        In(usize, Vec<V>),
        Exists(usize),
        NotExists(usize),
        BeginsWith(usize, String),
        Size(usize, &'static str, i64),
        And(Box<T>, Box<T>),
        Or(Box<T>, Box<T>),
        Not(Box<T>),
    }

    const NAMES: [&str; 3] = ["a", "b", "c"];

    fn value() -> impl Strategy<Value = V> {
        prop_oneof![
            (-3_i64..4).prop_map(V::Num),
            prop::sample::select(vec!["", "x", "xy", "y"]).prop_map(|s| V::Str(s.to_owned()))
        ]
    }

    fn condition() -> impl Strategy<Value = T> {
        let leaf = prop_oneof![
            (
                0..3_usize,
                prop::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]),
                value()
            )
                .prop_map(|(a, op, v)| T::Cmp(a, op, v)),
            (0..3_usize, value(), value()).prop_map(|(a, l, h)| T::Between(a, l, h)),
            (0..3_usize, prop::collection::vec(value(), 1..4)).prop_map(|(a, vs)| T::In(a, vs)),
            (0..3_usize).prop_map(T::Exists),
            (0..3_usize).prop_map(T::NotExists),
            (0..3_usize, prop::sample::select(vec!["", "x", "y"]))
                .prop_map(|(a, p)| T::BeginsWith(a, p.to_owned())),
            (
                0..3_usize,
                prop::sample::select(vec!["=", "<", ">="]),
                0_i64..3
            )
                .prop_map(|(a, op, n)| T::Size(a, op, n)),
        ];
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| T::And(Box::new(l), Box::new(r))),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| T::Or(Box::new(l), Box::new(r))),
                inner.prop_map(|c| T::Not(Box::new(c))),
            ]
        })
    }

    fn attribute(value: &V) -> AttributeValue {
        match value {
            V::Num(n) => AttributeValue::N(Number::parse(&n.to_string()).unwrap()),
            V::Str(s) => AttributeValue::S(s.clone()),
        }
    }

    /// Renders with every value as a placeholder; the first attribute sometimes as `#a`.
    fn render(t: &T, values: &mut BTreeMap<String, AttributeValue>) -> String {
        let placeholder = |v: &V, values: &mut BTreeMap<String, AttributeValue>| {
            let name = format!(":v{}", values.len());
            values.insert(name.clone(), attribute(v));
            name
        };
        let path = |a: usize| {
            if a == 0 {
                "#a".to_owned()
            } else {
                NAMES[a].to_owned()
            }
        };
        match t {
            T::Cmp(a, op, v) => format!("{} {op} {}", path(*a), placeholder(v, values)),
            T::Between(a, l, h) => format!(
                "{} BETWEEN {} AND {}",
                path(*a),
                placeholder(l, values),
                placeholder(h, values)
            ),
            T::In(a, vs) => {
                let list: Vec<String> = vs.iter().map(|v| placeholder(v, values)).collect();
                format!("{} IN ({})", path(*a), list.join(", "))
            }
            T::Exists(a) => format!("attribute_exists({})", path(*a)),
            T::NotExists(a) => format!("attribute_not_exists({})", path(*a)),
            T::BeginsWith(a, p) => format!(
                "begins_with({}, {})",
                path(*a),
                placeholder(&V::Str(p.clone()), values)
            ),
            T::Size(a, op, n) => format!(
                "size({}) {op} {}",
                path(*a),
                placeholder(&V::Num(*n), values)
            ),
            T::And(l, r) => format!("({}) AND ({})", render(l, values), render(r, values)),
            T::Or(l, r) => format!("({}) or ({})", render(l, values), render(r, values)),
            T::Not(c) => format!("NOT ({})", render(c, values)),
        }
    }

    fn cmp(op: &str, l: &V, r: &V) -> bool {
        let ordering = match (l, r) {
            (V::Num(l), V::Num(r)) => Some(l.cmp(r)),
            (V::Str(l), V::Str(r)) => Some(l.cmp(r)),
            _ => None,
        };
        match op {
            "=" => l == r,
            "<>" => l != r,
            _ => ordering.is_some_and(|o| match op {
                "<" => o.is_lt(),
                "<=" => o.is_le(),
                ">" => o.is_gt(),
                _ => o.is_ge(),
            }),
        }
    }

    fn model(t: &T, item: &[Option<V>; 3]) -> bool {
        match t {
            T::Cmp(a, op, v) => match &item[*a] {
                Some(x) => cmp(op, x, v),
                None => *op == "<>",
            },
            T::Between(a, l, h) => item[*a]
                .as_ref()
                .is_some_and(|x| cmp(">=", x, l) && cmp("<=", x, h)),
            T::In(a, vs) => item[*a].as_ref().is_some_and(|x| vs.contains(x)),
            T::Exists(a) => item[*a].is_some(),
            T::NotExists(a) => item[*a].is_none(),
            T::BeginsWith(a, p) => {
                matches!(&item[*a], Some(V::Str(s)) if s.starts_with(p.as_str()))
            }
            T::Size(a, op, n) => match &item[*a] {
                Some(V::Str(s)) => cmp(op, &V::Num(s.len() as i64), &V::Num(*n)),
                _ => false,
            },
            T::And(l, r) => model(l, item) && model(r, item),
            T::Or(l, r) => model(l, item) || model(r, item),
            T::Not(c) => !model(c, item),
        }
    }

    proptest! {
        #[test]
        fn conditions_agree_with_a_model(t in condition(), item in [prop::option::of(value()), prop::option::of(value()), prop::option::of(value())]) {
            let mut values = BTreeMap::new();
            let text = render(&t, &mut values);
            let parsed = parse(&text, &values).unwrap();
            let stored: Item = NAMES.iter().zip(item.iter())
                .filter_map(|(name, v)| v.as_ref().map(|v| ((*name).to_owned(), attribute(v))))
                .collect();
            prop_assert_eq!(evaluate(&parsed, Some(&stored)), model(&t, &item), "{}", text);
        }

        #[test]
        fn parsing_garbage_never_panics(text in "[ a-z#:()<>=,.\\[\\]0-9]{0,40}") {
            let values = BTreeMap::from([(":v".to_owned(), AttributeValue::Null)]);
            let _ = parse(&text, &values);
        }
    }

    proptest! {
        /// Exact decimal sums and differences against integer arithmetic on scaled values.
        #[test]
        fn number_arithmetic_is_exact(a in -10_i64.pow(12)..10_i64.pow(12), b in -10_i64.pow(12)..10_i64.pow(12), sa in 0_u32..6, sb in 0_u32..6, subtract in any::<bool>()) {
            let scale = sa.max(sb);
            let x = Number::parse(&format!("{a}e-{sa}")).unwrap();
            let y = Number::parse(&format!("{b}e-{sb}")).unwrap();
            let scaled = |value: i64, own: u32| i128::from(value) * 10_i128.pow(scale - own);
            let expected = if subtract { scaled(a, sa) - scaled(b, sb) } else { scaled(a, sa) + scaled(b, sb) };
            let expected = Number::parse(&format!("{expected}e-{scale}")).unwrap();
            prop_assert_eq!(add_numbers(&x, &y, subtract).unwrap(), expected);
        }
    }

    #[test]
    fn nested_paths_update_maps_and_lists_in_place() {
        let n = |text: &str| AttributeValue::N(Number::parse(text).unwrap());
        let values = BTreeMap::from([
            (":v".to_owned(), n("9")),
            (":one".to_owned(), n("1")),
            (
                ":tag".to_owned(),
                AttributeValue::Ss(BTreeSet::from(["a".to_owned()])),
            ),
        ]);
        let names = BTreeMap::from([("#m".to_owned(), "m".to_owned())]);
        let update = |text: &str| {
            Parser::new(text, &names, &values)
                .unwrap()
                .update()
                .and_then(|actions| apply_update(&before_item(), &actions))
        };
        fn before_item() -> Item {
            let n = |text: &str| AttributeValue::N(Number::parse(text).unwrap());
            Item::from([
                (
                    "m".to_owned(),
                    AttributeValue::M(BTreeMap::from([
                        ("count".to_owned(), n("1")),
                        (
                            "tags".to_owned(),
                            AttributeValue::Ss(BTreeSet::from(["a".to_owned(), "b".to_owned()])),
                        ),
                        ("inner".to_owned(), AttributeValue::M(BTreeMap::new())),
                    ])),
                ),
                (
                    "l".to_owned(),
                    AttributeValue::L(vec![n("0"), n("1"), n("2"), n("3")]),
                ),
                ("s".to_owned(), AttributeValue::S("text".to_owned())),
            ])
        }
        let after = update(
            "SET #m.inner.deep = :v, l[1] = :v, l[10] = :one ADD m.count :one DELETE m.tags :tag",
        )
        .unwrap();
        let m = |item: &Item| match &item["m"] {
            AttributeValue::M(map) => map.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            m(&after)["inner"],
            AttributeValue::M(BTreeMap::from([("deep".to_owned(), n("9"))]))
        );
        assert_eq!(m(&after)["count"], n("2"));
        assert_eq!(
            m(&after)["tags"],
            AttributeValue::Ss(BTreeSet::from(["b".to_owned()]))
        );
        assert_eq!(
            after["l"],
            AttributeValue::L(vec![n("0"), n("9"), n("2"), n("3"), n("1")])
        );
        // Removed indices are those of the list before the update.
        let after = update("REMOVE l[0], l[2], m.count, m.missing").unwrap();
        assert_eq!(after["l"], AttributeValue::L(vec![n("1"), n("3")]));
        assert!(!m(&after).contains_key("count"));
        // A parent that is missing or not a map/list, overlapping and conflicting paths.
        let refused = |text: &str| update(text).unwrap_err().to_string();
        assert!(
            refused("SET nothing.x = :v")
                .contains("document path provided in the update expression is invalid")
        );
        assert!(refused("SET s.x = :v").contains("invalid for update"));
        assert!(refused("SET l.x = :v").contains("invalid for update"));
        assert!(refused("SET m.count = :v REMOVE m").contains("Two document paths overlap"));
        assert!(refused("SET l[0] = :v, l.x = :v").contains("Two document paths conflict"));
    }

    #[test]
    fn projections_keep_nested_parts_in_the_items_shape() {
        let n = |text: &str| AttributeValue::N(Number::parse(text).unwrap());
        let item = Item::from([
            (
                "m".to_owned(),
                AttributeValue::M(BTreeMap::from([
                    ("x".to_owned(), n("1")),
                    ("y".to_owned(), n("2")),
                ])),
            ),
            (
                "l".to_owned(),
                AttributeValue::L(vec![n("0"), n("1"), n("2")]),
            ),
            ("top".to_owned(), n("7")),
        ]);
        let names = BTreeMap::new();
        let values = BTreeMap::new();
        let paths = Parser::new("l[2], m.y, l[0], top, m.z, gone", &names, &values)
            .unwrap()
            .projection()
            .unwrap();
        let projected = project(&item, &paths);
        assert_eq!(
            projected,
            Item::from([
                (
                    "m".to_owned(),
                    AttributeValue::M(BTreeMap::from([("y".to_owned(), n("2"))]))
                ),
                ("l".to_owned(), AttributeValue::L(vec![n("0"), n("2")])),
                ("top".to_owned(), n("7")),
            ])
        );
        let overlap = Parser::new("m, m.x", &names, &values)
            .unwrap()
            .projection()
            .unwrap_err();
        assert!(
            overlap
                .to_string()
                .starts_with("Invalid ProjectionExpression: Two document paths overlap")
        );
    }

    /// The test's own model of updates on an item with two numbers, a map and a list, written
    /// from DynamoDB's documentation (nested parents must exist, SET past a list's end
    /// appends, REMOVEd list indices are those before the update) and sharing nothing with
    /// `apply_update`.
    #[derive(Debug, Clone, PartialEq)]
    struct Model {
        numbers: [Option<i64>; 2],
        map: Option<BTreeMap<&'static str, i64>>,
        list: Option<Vec<i64>>,
    }

    #[derive(Debug, Clone)]
    enum Act {
        SetNumber(usize, i64),
        AddNumber(usize, i64),
        RemoveNumber(usize),
        SetKey(&'static str, i64),
        RemoveKey(&'static str),
        SetIndex(usize, i64),
        RemoveIndex(usize),
    }

    impl Act {
        fn path(&self) -> String {
            match self {
                Act::SetNumber(at, _) | Act::AddNumber(at, _) | Act::RemoveNumber(at) => {
                    ["a", "b"][*at].to_owned()
                }
                Act::SetKey(key, _) | Act::RemoveKey(key) => format!("m.{key}"),
                Act::SetIndex(at, _) | Act::RemoveIndex(at) => format!("l[{at}]"),
            }
        }
    }

    fn model_update(model: &Model, acts: &[Act]) -> Option<Model> {
        let mut after = model.clone();
        let mut removed = Vec::new();
        for act in acts {
            match act {
                Act::SetNumber(at, v) => after.numbers[*at] = Some(*v),
                Act::AddNumber(at, v) => {
                    after.numbers[*at] = Some(model.numbers[*at].unwrap_or(0) + v)
                }
                Act::RemoveNumber(at) => after.numbers[*at] = None,
                Act::SetKey(key, v) => {
                    after.map.as_mut()?.insert(key, *v);
                }
                Act::RemoveKey(key) => {
                    after.map.as_mut()?.remove(key);
                }
                Act::SetIndex(at, v) => {
                    let list = after.list.as_mut()?;
                    match list.get_mut(*at) {
                        Some(slot) => *slot = *v,
                        None => list.push(*v),
                    }
                }
                Act::RemoveIndex(at) => {
                    model.list.as_ref()?;
                    removed.push(*at)
                }
            }
        }
        if let Some(list) = after.list.as_mut() {
            let kept: Vec<i64> = list
                .iter()
                .enumerate()
                .filter(|(at, _)| !removed.contains(at))
                .map(|(_, v)| *v)
                .collect();
            *list = kept;
        }
        Some(after)
    }

    fn model_item(model: &Model) -> Item {
        let n = |v: i64| AttributeValue::N(Number::parse(&v.to_string()).unwrap());
        let mut item = Item::new();
        for (name, v) in ["a", "b"].iter().zip(model.numbers) {
            if let Some(v) = v {
                item.insert((*name).to_owned(), n(v));
            }
        }
        if let Some(map) = &model.map {
            item.insert(
                "m".to_owned(),
                AttributeValue::M(map.iter().map(|(k, v)| ((*k).to_owned(), n(*v))).collect()),
            );
        }
        if let Some(list) = &model.list {
            item.insert(
                "l".to_owned(),
                AttributeValue::L(list.iter().map(|v| n(*v)).collect()),
            );
        }
        item
    }

    fn act() -> impl Strategy<Value = Act> {
        let key = prop::sample::select(vec!["x", "y"]);
        prop_oneof![
            (0_usize..2, -5_i64..5).prop_map(|(at, v)| Act::SetNumber(at, v)),
            (0_usize..2, -5_i64..5).prop_map(|(at, v)| Act::AddNumber(at, v)),
            (0_usize..2).prop_map(Act::RemoveNumber),
            (key.clone(), -5_i64..5).prop_map(|(k, v)| Act::SetKey(k, v)),
            key.prop_map(Act::RemoveKey),
            (0_usize..4, -5_i64..5).prop_map(|(at, v)| Act::SetIndex(at, v)),
            (0_usize..4).prop_map(Act::RemoveIndex),
        ]
    }

    fn update_model() -> impl Strategy<Value = Model> {
        (
            [prop::option::of(-5_i64..5), prop::option::of(-5_i64..5)],
            prop::option::of(prop::collection::btree_map(
                prop::sample::select(vec!["x", "y"]),
                -5_i64..5,
                0..3,
            )),
            prop::option::of(prop::collection::vec(-5_i64..5, 0..5)),
        )
            .prop_map(|(numbers, map, list)| Model { numbers, map, list })
    }

    proptest! {
        #[test]
        fn updates_agree_with_a_model(model in update_model(), acts in prop::collection::vec(act(), 1..6)) {
            // One action per path (DynamoDB refuses overlaps), a list either written or
            // removed from in one update, and at most one write past its end: the documented
            // cases, with nothing left to an ordering the documentation does not give.
            let paths: BTreeSet<String> = acts.iter().map(Act::path).collect();
            prop_assume!(paths.len() == acts.len());
            let sets = acts.iter().filter(|act| matches!(act, Act::SetIndex(..))).count();
            let removes = acts.iter().filter(|act| matches!(act, Act::RemoveIndex(..))).count();
            prop_assume!(sets == 0 || removes == 0);
            let length = model.list.as_ref().map_or(0, Vec::len);
            let appends = acts.iter().filter(|act| matches!(act, Act::SetIndex(at, _) if *at >= length)).count();
            prop_assume!(appends <= 1);
            let mut values = BTreeMap::new();
            let mut clauses: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (at, act) in acts.iter().enumerate() {
                let placeholder = format!(":v{at}");
                let number = |v: i64| AttributeValue::N(Number::parse(&v.to_string()).unwrap());
                let path = act.path();
                match act {
                    Act::SetNumber(_, v) | Act::SetKey(_, v) | Act::SetIndex(_, v) => {
                        values.insert(placeholder.clone(), number(*v));
                        clauses.entry("SET").or_default().push(format!("{path} = {placeholder}"));
                    }
                    Act::AddNumber(_, v) => {
                        values.insert(placeholder.clone(), number(*v));
                        clauses.entry("ADD").or_default().push(format!("{path} {placeholder}"));
                    }
                    Act::RemoveNumber(_) | Act::RemoveKey(_) | Act::RemoveIndex(_) => {
                        clauses.entry("REMOVE").or_default().push(path);
                    }
                }
            }
            let text: Vec<String> = clauses
                .iter()
                .map(|(clause, parts)| format!("{clause} {}", parts.join(", ")))
                .collect();
            let text = text.join(" ");
            let names = BTreeMap::new();
            let actions = Parser::new(&text, &names, &values).unwrap().update().unwrap();
            let applied = apply_update(&model_item(&model), &actions).ok();
            let expected = model_update(&model, &acts).map(|after| model_item(&after));
            prop_assert_eq!(applied, expected, "{}", text);
        }
    }

    #[test]
    fn update_actions_apply_from_the_item_before() {
        let values = BTreeMap::from([
            (
                ":one".to_owned(),
                AttributeValue::N(Number::parse("1").unwrap()),
            ),
            (
                ":l".to_owned(),
                AttributeValue::L(vec![AttributeValue::Null]),
            ),
        ]);
        let names = BTreeMap::new();
        let actions = Parser::new(
            "SET a = b + :one, b = a, c = list_append(if_not_exists(c, :l), :l) REMOVE d",
            &names,
            &values,
        )
        .unwrap()
        .update()
        .unwrap();
        let n = |text: &str| AttributeValue::N(Number::parse(text).unwrap());
        let before = Item::from([
            ("a".to_owned(), n("5")),
            ("b".to_owned(), n("7")),
            ("d".to_owned(), AttributeValue::Null),
        ]);
        let after = apply_update(&before, &actions).unwrap();
        // Values come from the item before the update: a and b swap through it.
        assert_eq!(after["a"], n("8"));
        assert_eq!(after["b"], n("5"));
        assert_eq!(
            after["c"],
            AttributeValue::L(vec![AttributeValue::Null, AttributeValue::Null])
        );
        assert!(!after.contains_key("d"));
        assert!(
            Parser::new("SET a = :one SET b = :one", &names, &values)
                .unwrap()
                .update()
                .is_err()
        );
        assert!(
            apply_update(
                &before,
                &Parser::new("SET m.x = :one", &names, &values)
                    .unwrap()
                    .update()
                    .unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn precedence_and_errors() {
        let values = BTreeMap::from([(
            ":one".to_owned(),
            AttributeValue::N(Number::parse("1").unwrap()),
        )]);
        // NOT binds tighter than AND, AND tighter than OR.
        assert_eq!(
            parse("NOT a = :one AND b = :one OR c = :one", &values).unwrap(),
            Condition::Or(
                Box::new(Condition::And(
                    Box::new(Condition::Not(Box::new(Condition::Compare(
                        Operand::Path(vec![PathElement::Name("a".into())]),
                        Comparator::Eq,
                        Operand::Value(values[":one"].clone())
                    )))),
                    Box::new(Condition::Compare(
                        Operand::Path(vec![PathElement::Name("b".into())]),
                        Comparator::Eq,
                        Operand::Value(values[":one"].clone())
                    ))
                )),
                Box::new(Condition::Compare(
                    Operand::Path(vec![PathElement::Name("c".into())]),
                    Comparator::Eq,
                    Operand::Value(values[":one"].clone())
                ))
            )
        );
        assert!(
            parse("a = :missing", &values)
                .unwrap_err()
                .to_string()
                .contains("attribute value: :missing")
        );
        assert!(
            parse("#missing = :one", &values)
                .unwrap_err()
                .to_string()
                .contains("attribute name: #missing")
        );
        assert!(parse("a = ", &values).is_err());
        assert!(
            parse("nofunction(a)", &values)
                .unwrap_err()
                .to_string()
                .contains("Invalid function name")
        );
        assert!(parse("ATTRIBUTE_EXISTS(a)", &values).is_err());
        assert!(
            parse(
                "attribute_exists(a) and NOT a between :one AND :one",
                &values
            )
            .is_ok()
        );
        let deep = format!("{}a = :one{}", "(".repeat(200), ")".repeat(200));
        assert!(
            parse(&deep, &values)
                .unwrap_err()
                .to_string()
                .contains("nested too deeply")
        );
        let nested = Item::from([(
            "m".to_owned(),
            AttributeValue::M(BTreeMap::from([(
                "l".to_owned(),
                AttributeValue::L(vec![AttributeValue::N(Number::parse("1").unwrap())]),
            )])),
        )]);
        assert!(evaluate(
            &parse("m.l[0] = :one", &values).unwrap(),
            Some(&nested)
        ));
        assert!(!evaluate(
            &parse("m.l[1] = :one", &values).unwrap(),
            Some(&nested)
        ));
        assert!(evaluate(
            &parse("attribute_not_exists(a)", &values).unwrap(),
            None
        ));
    }
}
