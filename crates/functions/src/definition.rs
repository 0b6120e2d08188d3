//! What a function is: its name, how it runs out of process, and its limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::{
    COMMAND_ARGS_MAX, CONCURRENCY_DEFAULT, CONCURRENCY_MAX, FUNCTION_NAME_BYTES_MAX,
    MEMORY_SIZE_MB_DEFAULT, MEMORY_SIZE_MB_MAX, MEMORY_SIZE_MB_MIN, TIMEOUT_DEFAULT, TIMEOUT_MAX,
};

/// How the host runs a function's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FunctionKind {
    /// One process per invocation: the event JSON on stdin, the response JSON on stdout,
    /// stderr into the log; a non-zero exit is a function error.
    Command,
    /// A warm process that speaks the AWS Lambda Runtime API to the host, as Lambda's own
    /// runtimes do (`python -m awslambdaric module.handler`). It is kept between invocations
    /// and restarted when it dies.
    RuntimeApi,
}

/// A function the host can invoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionDefinition {
    /// Name, as in the last segment of its ARN: letters, digits, `-` and `_`.
    pub name: String,
    /// How it runs.
    pub kind: FunctionKind,
    /// The program and its arguments, run without a shell (write `["sh", "-c", "…"]` for one).
    pub command: Vec<String>,
    /// The handler, exported as `_HANDLER` (for example `handler.handler`); runtime clients
    /// that take it from the command line do not need it.
    #[serde(default)]
    pub handler: Option<String>,
    /// Working directory of the process, exported as `LAMBDA_TASK_ROOT`; the host's when absent.
    #[serde(default)]
    pub task_root: Option<PathBuf>,
    /// Variables added to the process's environment; they win over the ones the host sets.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// How long one invocation may run.
    #[serde(default = "timeout_default", with = "duration_ms")]
    pub timeout: Duration,
    /// Memory size reported to the handler (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`); not enforced.
    #[serde(default = "memory_size_mb_default")]
    pub memory_size_mb: u32,
    /// Invocations running at once; more wait (bounded by [`crate::WAITING_INVOCATIONS_MAX`]).
    #[serde(default = "concurrency_default")]
    pub concurrency: usize,
}

fn timeout_default() -> Duration {
    TIMEOUT_DEFAULT
}
fn memory_size_mb_default() -> u32 {
    MEMORY_SIZE_MB_DEFAULT
}
fn concurrency_default() -> usize {
    CONCURRENCY_DEFAULT
}

mod duration_ms {
    //! A `Duration` as whole milliseconds in config files.
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

impl FunctionDefinition {
    /// A definition with the defaults: 60 s timeout, 128 MB, concurrency 1, no extra environment.
    pub fn new(name: impl Into<String>, kind: FunctionKind, command: Vec<String>) -> Self {
        FunctionDefinition {
            name: name.into(),
            kind,
            command,
            handler: None,
            task_root: None,
            environment: BTreeMap::new(),
            timeout: TIMEOUT_DEFAULT,
            memory_size_mb: MEMORY_SIZE_MB_DEFAULT,
            concurrency: CONCURRENCY_DEFAULT,
        }
    }

    /// Checks every rule; the registry calls it before accepting a definition.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Error::InvalidDefinition {
            name: self.name.clone(),
            reason,
        };
        if self.name.is_empty() || self.name.len() > FUNCTION_NAME_BYTES_MAX {
            return Err(invalid(format!(
                "name must have 1 to {FUNCTION_NAME_BYTES_MAX} characters"
            )));
        }
        if !self
            .name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            return Err(invalid(
                "name may hold only letters, digits, '-' and '_'".to_owned(),
            ));
        }
        match self.command.first() {
            None => return Err(invalid("command is empty".to_owned())),
            Some(program) if program.is_empty() => {
                return Err(invalid("command's program is empty".to_owned()));
            }
            Some(_) => {}
        }
        if self.command.len() > COMMAND_ARGS_MAX {
            return Err(invalid(format!(
                "command has more than {COMMAND_ARGS_MAX} arguments"
            )));
        }
        if self.timeout.is_zero() || self.timeout > TIMEOUT_MAX {
            return Err(invalid(format!(
                "timeout must be between 1 ms and {} s",
                TIMEOUT_MAX.as_secs()
            )));
        }
        if !(MEMORY_SIZE_MB_MIN..=MEMORY_SIZE_MB_MAX).contains(&self.memory_size_mb) {
            return Err(invalid(format!(
                "memory size must be between {MEMORY_SIZE_MB_MIN} and {MEMORY_SIZE_MB_MAX} MB"
            )));
        }
        if self.concurrency == 0 || self.concurrency > CONCURRENCY_MAX {
            return Err(invalid(format!(
                "concurrency must be between 1 and {CONCURRENCY_MAX}"
            )));
        }
        if let Some(key) = self
            .environment
            .keys()
            .find(|key| key.is_empty() || key.contains('=') || key.contains('\0'))
        {
            return Err(invalid(format!(
                "invalid environment variable name {key:?}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_rules() {
        let definition = FunctionDefinition::new("f", FunctionKind::Command, vec!["cat".into()]);
        definition.validate().unwrap();
        let mut bad = definition.clone();
        bad.command.clear();
        assert!(bad.validate().is_err());
        let mut bad = definition.clone();
        bad.name = "a:b".into();
        assert!(bad.validate().is_err());
        let mut bad = definition.clone();
        bad.concurrency = 0;
        assert!(bad.validate().is_err());
        let mut bad = definition;
        bad.timeout = Duration::ZERO;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn config_shape() {
        let definition: FunctionDefinition = serde_json::from_str(
            r#"{"name":"f","kind":"runtime-api","command":["python3","-m","awslambdaric","h.handler"],"timeout":5000}"#,
        )
        .unwrap();
        assert_eq!(definition.kind, FunctionKind::RuntimeApi);
        assert_eq!(definition.timeout, Duration::from_secs(5));
        assert_eq!(definition.concurrency, CONCURRENCY_DEFAULT);
    }
}
