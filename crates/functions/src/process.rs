//! What both out-of-process kinds share: the environment a handler gets, the command that starts
//! it, how a failure to start is explained, and the forwarding of a process's output into the log
//! with a bounded tail kept for error messages.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::arn::{REGION, function_arn};
use crate::definition::FunctionDefinition;
use crate::error::Error;
use crate::limits::{COMMAND_DISPLAY_BYTES_MAX, LOG_LINE_BYTES_MAX, STDERR_TAIL_BYTES_MAX};

/// Variables of the server's environment a handler process inherits, when they are set.
/// Everything else is cleared. The set is what a program needs to run as it does in the
/// operator's shell: find programs and shared libraries (`PATH`, `LD_LIBRARY_PATH`), know whose
/// it is (`HOME`, `USER`, `LOGNAME`), speak the locale (`LANG`, `LANGUAGE` and every `LC_*`,
/// see [`INHERITED_ENVIRONMENT_PREFIXES`]), tell the time zone (`TZ`), write temporary files
/// (`TMPDIR`), use the Python the operator activated (`VIRTUAL_ENV`, `PYTHONPATH`, `PYTHONHOME`)
/// and trust the same certificates (`SSL_CERT_FILE`, `SSL_CERT_DIR`). Nothing that grants
/// authority is inherited (`AWS_*` credentials, tokens, proxy URLs that may carry passwords):
/// a function gets those only by declaring them in its `environment`.
pub const INHERITED_ENVIRONMENT: &[&str] = &[
    "PATH",
    "LD_LIBRARY_PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Prefixes of further inherited variables: the locale categories (`LC_ALL`, `LC_CTYPE`, …).
pub const INHERITED_ENVIRONMENT_PREFIXES: &[&str] = &["LC_"];

/// Whether a variable of the server's environment is passed on to handler processes.
pub fn is_inherited(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    INHERITED_ENVIRONMENT.contains(&name)
        || INHERITED_ENVIRONMENT_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// The environment of a handler process, from the server's own environment `host`: the
/// inherited variables (see [`INHERITED_ENVIRONMENT`]), then what Lambda sets, then the
/// definition's own variables, which win. `runtime_api` is `127.0.0.1:PORT` for the Runtime
/// API kind.
pub(crate) fn environment(
    definition: &FunctionDefinition,
    runtime_api: Option<&str>,
    host: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let mut variables: Vec<(OsString, OsString)> = host
        .into_iter()
        .filter(|(name, _)| is_inherited(name))
        .collect();
    variables.sort();
    let name = definition.name.as_str();
    let task_root = match &definition.task_root {
        Some(path) => path.display().to_string(),
        None => std::env::current_dir()
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
    };
    let mut lambda = vec![
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            definition.memory_size_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_FUNCTION_TIMEOUT",
            definition.timeout.as_secs().max(1).to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_ARN", function_arn(name)),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "sluice".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_EXECUTION_ENV", "sluice".to_owned()),
        ("LAMBDA_TASK_ROOT", task_root),
    ];
    if let Some(address) = runtime_api {
        lambda.push(("AWS_LAMBDA_RUNTIME_API", address.to_owned()));
    }
    if let Some(handler) = &definition.handler {
        lambda.push(("_HANDLER", handler.clone()));
    }
    variables.extend(
        lambda
            .into_iter()
            .map(|(key, value)| (OsString::from(key), OsString::from(value))),
    );
    variables.extend(
        definition
            .environment
            .iter()
            .map(|(key, value)| (OsString::from(key), OsString::from(value))),
    );
    variables
}

/// The command line as an operator would type it, for errors and logs: an argument that is
/// empty or holds spaces, quotes or shell characters is single-quoted. Cut at
/// [`COMMAND_DISPLAY_BYTES_MAX`], ending with `…`.
pub(crate) fn display_command(argv: &[String]) -> String {
    let mut line = String::new();
    for argument in argv {
        if !line.is_empty() {
            line.push(' ');
        }
        let plain = !argument.is_empty()
            && argument.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '+' | '@')
            });
        if plain {
            line.push_str(argument);
        } else {
            line.push('\'');
            line.push_str(&argument.replace('\'', r"'\''"));
            line.push('\'');
        }
        if line.len() > COMMAND_DISPLAY_BYTES_MAX {
            break;
        }
    }
    cut(&line, COMMAND_DISPLAY_BYTES_MAX)
}

/// `text` cut to at most `bytes_max` bytes on a character boundary, ending with `…` when cut.
pub(crate) fn cut(text: &str, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text.to_owned();
    }
    let mut end = bytes_max.saturating_sub('…'.len_utf8());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = text.get(..end).unwrap_or_default().to_owned();
    cut.push('…');
    cut
}

/// Why a handler's process could not be spawned, in words an operator can act on: the program
/// missing from the PATH handlers get, a missing task root, a file that is not executable.
pub(crate) fn spawn_failure(definition: &FunctionDefinition, source: &std::io::Error) -> Error {
    let program = definition
        .command
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let reason = match (&definition.task_root, source.kind()) {
        (Some(task_root), _) if !task_root.is_dir() => {
            format!("its task root {} is not a directory", task_root.display())
        }
        (_, std::io::ErrorKind::NotFound) if !program.contains('/') => {
            // The PATH the process got: the function's own, else the inherited one.
            let path = match definition.environment.get("PATH") {
                Some(path) => path.clone(),
                None => std::env::var_os("PATH")
                    .map(|path| path.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            format!(
                "{program} is not on the PATH handlers get ({path}): install it, or name it by its absolute path"
            )
        }
        (_, std::io::ErrorKind::NotFound) => format!("{program} does not exist"),
        (_, std::io::ErrorKind::PermissionDenied) => {
            format!("{program} cannot be executed (permission denied)")
        }
        _ => format!("starting {program} failed"),
    };
    Error::StartFailed {
        name: definition.name.clone(),
        command: display_command(&definition.command),
        error_type: "Runtime.InvalidEntrypoint".to_owned(),
        reason: format!("{reason} ({source})"),
    }
}

/// How a handler process ended, as the end of a sentence about it: `exited with status 3`,
/// `was killed by a signal`.
pub(crate) fn exit_description(status: std::process::ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_owned(),
    }
}

/// `message`, followed by the process's last words when it wrote any.
pub(crate) fn with_stderr(message: String, stderr: &str) -> String {
    if stderr.is_empty() {
        message
    } else {
        format!("{message}; stderr: {stderr}")
    }
}

/// The last [`STDERR_TAIL_BYTES_MAX`] bytes a process wrote, shared between the task that
/// reads the pipe and the invocation that reports a failure.
#[derive(Debug, Clone)]
pub(crate) struct OutputTail {
    bytes: Arc<Mutex<VecDeque<u8>>>,
    capacity: usize,
}

impl Default for OutputTail {
    fn default() -> Self {
        OutputTail::with_capacity(STDERR_TAIL_BYTES_MAX)
    }
}

impl OutputTail {
    /// A tail that keeps the last `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        OutputTail {
            bytes: Arc::default(),
            capacity,
        }
    }

    fn push(&self, chunk: &[u8]) {
        if let Ok(mut bytes) = self.bytes.lock() {
            bytes.extend(chunk);
            let excess = bytes.len().saturating_sub(self.capacity);
            bytes.drain(..excess);
        }
    }

    /// The tail as text, trimmed; empty when the process wrote nothing.
    pub(crate) fn text(&self) -> String {
        match self.bytes.lock() {
            Ok(bytes) => {
                let (front, back) = bytes.as_slices();
                let mut all = Vec::with_capacity(bytes.len());
                all.extend_from_slice(front);
                all.extend_from_slice(back);
                String::from_utf8_lossy(&all).trim().to_owned()
            }
            Err(_) => String::new(),
        }
    }

    /// Forgets what was written so far, so the next invocation's error shows only its own output.
    pub(crate) fn clear(&self) {
        if let Ok(mut bytes) = self.bytes.lock() {
            bytes.clear();
        }
    }
}

/// The output of one invocation, both streams, kept for Lambda's `LogType: Tail`: the last
/// [`crate::LOG_TAIL_BYTES_MAX`] bytes. Give one to [`crate::FunctionRegistry::invoke_logged`].
/// Output reaches it as the host reads the process's pipes, so a line written just before the
/// answer may come after it.
#[derive(Debug, Clone)]
pub struct LogTail(pub(crate) OutputTail);

impl Default for LogTail {
    fn default() -> Self {
        LogTail(OutputTail::with_capacity(crate::limits::LOG_TAIL_BYTES_MAX))
    }
}

impl LogTail {
    /// What the invocation wrote, at most its last [`crate::LOG_TAIL_BYTES_MAX`] bytes.
    pub fn text(&self) -> String {
        self.0.text()
    }
}

/// Where a warm process's output also goes while an invocation that asked for its log runs.
pub(crate) type LogSlot = Arc<Mutex<Option<OutputTail>>>;

/// Whether a function is in a burst of failures, shared by the registry (which sets it) and its
/// processes (which then log their start and output at debug level: the burst's first error
/// line already carries the output's tail, and a function that cannot start would otherwise
/// repeat the same lines at every attempt).
pub(crate) type Failing = Arc<AtomicBool>;

/// Reads `reader` until it closes, logging each line (cut at [`LOG_LINE_BYTES_MAX`]) with the
/// function's name, at debug level while `failing`, and keeping a tail in `tail`. Memory stays
/// bounded whatever the process writes. The returned handle finishes when the pipe closes.
pub(crate) fn forward_output<R>(
    reader: R,
    function_name: String,
    stream: &'static str,
    tail: Option<OutputTail>,
    failing: Failing,
    log: Option<LogSlot>,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = reader;
        let mut chunk = vec![0u8; 8 * 1024];
        let mut line: Vec<u8> = Vec::new();
        loop {
            let n_read = match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n_read) => n_read,
            };
            let read = chunk.get(..n_read).unwrap_or_default();
            if let Some(tail) = &tail {
                tail.push(read);
            }
            if let Some(Ok(slot)) = log.as_ref().map(|slot| slot.lock())
                && let Some(log) = slot.as_ref()
            {
                log.push(read);
            }
            for &byte in read {
                if byte == b'\n' || line.len() >= LOG_LINE_BYTES_MAX {
                    emit_line(&function_name, stream, &line, &failing);
                    line.clear();
                    if byte == b'\n' {
                        continue;
                    }
                }
                line.push(byte);
            }
        }
        if !line.is_empty() {
            emit_line(&function_name, stream, &line, &failing);
        }
    })
}

fn emit_line(function_name: &str, stream: &'static str, line: &[u8], failing: &AtomicBool) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if failing.load(Ordering::Relaxed) {
        tracing::debug!(function = function_name, stream, "{text}");
    } else {
        tracing::info!(function = function_name, stream, "{text}");
    }
}

/// The command that starts a definition's handler process: its argv, the Lambda environment
/// (`runtime_api` for the Runtime API kind), piped stdout and stderr, its own process group, its
/// task root as working directory, killed if dropped.
pub(crate) fn handler_command(
    definition: &FunctionDefinition,
    runtime_api: Option<&str>,
    stdin: std::process::Stdio,
) -> crate::error::Result<tokio::process::Command> {
    let (program, arguments) =
        definition
            .command
            .split_first()
            .ok_or_else(|| crate::error::Error::InvalidDefinition {
                name: definition.name.clone(),
                reason: "command is empty".to_owned(),
            })?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments)
        .env_clear()
        .envs(environment(definition, runtime_api, std::env::vars_os()))
        .stdin(stdin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    own_process_group(&mut command);
    if let Some(task_root) = &definition.task_root {
        command.current_dir(task_root);
    }
    Ok(command)
}

/// Puts a handler process in its own process group, so [`ProcessGroup`] can end it together
/// with whatever it forked (a shell wrapper's children, worker processes).
pub(crate) fn own_process_group(command: &mut tokio::process::Command) {
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(not(unix))]
    let _ = command;
}

/// The process group of a handler process; dropping it kills every process left in the group,
/// so a timeout, a crash or a cancelled invocation leaves nothing running behind.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    leader: Option<u32>,
}

impl ProcessGroup {
    /// The group led by `child`, which must have been started after [`own_process_group`].
    pub(crate) fn of(child: &tokio::process::Child) -> Self {
        ProcessGroup { leader: child.id() }
    }

    /// Sends SIGKILL to every process of the group; a group already gone is fine.
    pub(crate) fn kill(&self) {
        #[cfg(unix)]
        if let Some(pid) = self
            .leader
            .and_then(|leader| i32::try_from(leader).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::FunctionKind;

    fn host(variables: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        variables
            .iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value)))
            .collect()
    }

    fn lookup<'a>(variables: &'a [(OsString, OsString)], name: &str) -> Option<&'a str> {
        variables
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.to_str())
    }

    #[test]
    fn handlers_inherit_the_documented_set_and_nothing_else() {
        let mut definition =
            FunctionDefinition::new("env", FunctionKind::RuntimeApi, vec!["python3".into()]);
        definition.environment.insert("EXTRA".into(), "yes".into());
        definition.environment.insert("TZ".into(), "UTC".into());
        let server = host(&[
            ("PATH", "/venv/bin:/usr/bin"),
            ("VIRTUAL_ENV", "/venv"),
            ("PYTHONPATH", "/lib/py"),
            ("LC_CTYPE", "C.UTF-8"),
            ("LANG", "en_GB.UTF-8"),
            ("TZ", "Europe/London"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "eu-west-2"),
            ("DATABASE_PASSWORD", "hunter2"),
            ("HTTPS_PROXY", "http://user:pass@proxy:3128"),
        ]);
        let variables = environment(&definition, Some("127.0.0.1:9001"), server);
        assert_eq!(lookup(&variables, "PATH"), Some("/venv/bin:/usr/bin"));
        assert_eq!(lookup(&variables, "VIRTUAL_ENV"), Some("/venv"));
        assert_eq!(lookup(&variables, "PYTHONPATH"), Some("/lib/py"));
        assert_eq!(lookup(&variables, "LC_CTYPE"), Some("C.UTF-8"));
        assert_eq!(lookup(&variables, "LANG"), Some("en_GB.UTF-8"));
        // The host's secrets stay with the host; AWS_REGION is Lambda's, not the host's.
        assert_eq!(lookup(&variables, "AWS_SECRET_ACCESS_KEY"), None);
        assert_eq!(lookup(&variables, "DATABASE_PASSWORD"), None);
        assert_eq!(lookup(&variables, "HTTPS_PROXY"), None);
        assert_eq!(lookup(&variables, "AWS_REGION"), Some(REGION));
        // Lambda's variables, and the definition's own, which win over inherited ones.
        assert_eq!(lookup(&variables, "AWS_LAMBDA_FUNCTION_NAME"), Some("env"));
        assert_eq!(
            lookup(&variables, "AWS_LAMBDA_RUNTIME_API"),
            Some("127.0.0.1:9001")
        );
        assert_eq!(lookup(&variables, "EXTRA"), Some("yes"));
        assert_eq!(lookup(&variables, "TZ"), Some("UTC"));
    }

    #[test]
    fn command_lines_are_shown_as_typed_and_bounded() {
        let argv: Vec<String> = ["python3", "-m", "awslambdaric", "handler.handler"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            display_command(&argv),
            "python3 -m awslambdaric handler.handler"
        );
        let argv: Vec<String> = ["sh", "-c", "echo 'hi' | cat", ""]
            .map(String::from)
            .to_vec();
        assert_eq!(
            display_command(&argv),
            r#"sh -c 'echo '\''hi'\'' | cat' ''"#
        );
        let long = vec!["sh".to_owned(), "-c".to_owned(), "é".repeat(4000)];
        let shown = display_command(&long);
        assert!(shown.len() <= COMMAND_DISPLAY_BYTES_MAX, "{}", shown.len());
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn spawn_failures_say_what_to_do() {
        let definition = FunctionDefinition::new(
            "gone",
            FunctionKind::Command,
            vec!["no-such-program-sluice".into(), "x".into()],
        );
        let error = spawn_failure(
            &definition,
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        let text = error.to_string();
        assert!(
            text.starts_with("function gone could not start `no-such-program-sluice x`: no-such-program-sluice is not on the PATH handlers get ("),
            "{text}"
        );
        let mut definition = definition;
        definition.task_root = Some("/nonexistent/sluice-task-root".into());
        let text = spawn_failure(
            &definition,
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        )
        .to_string();
        assert!(
            text.contains("its task root /nonexistent/sluice-task-root is not a directory"),
            "{text}"
        );
    }
}
