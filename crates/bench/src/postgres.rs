//! A throwaway PostgreSQL 15 server (Debian's package) in a temporary directory, for the
//! benchmarks that compare Sluice with PostgreSQL: `initdb`, `pg_ctl start` on a unix socket only,
//! `psql` for statements, scripts and `COPY`, and `pg_ctl stop` when dropped.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Where the PostgreSQL server binaries are looked for, in order.
const POSTGRES_BIN_DIRS: &[&str] = &["/usr/local/bin", "/usr/lib/postgresql/15/bin"];

pub(crate) fn postgres_bin(name: &str) -> anyhow::Result<PathBuf> {
    POSTGRES_BIN_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .with_context(|| {
            format!("no {name} in {POSTGRES_BIN_DIRS:?} (apt-get install -y postgresql-15)")
        })
}

/// Runs a command, as `nobody` when `as_nobody`, and fails with its output when it fails.
pub(crate) fn run_command(
    program: &Path,
    args: &[&str],
    as_nobody: bool,
) -> anyhow::Result<String> {
    let mut command = if as_nobody {
        let mut command = Command::new("runuser");
        command.args(["-u", "nobody", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{} {args:?} failed ({}): {stdout}{}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// A PostgreSQL server in a temporary directory, stopped when dropped.
pub(crate) struct Postgres {
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    pub(crate) socket_dir: PathBuf,
    /// The server's `-o` options, kept for `restart`.
    options: String,
    log_path: PathBuf,
}

impl Postgres {
    /// Creates a cluster under `root` and starts it on a unix socket there, with `settings`
    /// (`-c name=value …`) after the common ones.
    pub(crate) fn start(root: &Path, settings: &str) -> anyhow::Result<Postgres> {
        let initdb = postgres_bin("initdb")?;
        let pg_ctl = postgres_bin("pg_ctl")?;
        fs::create_dir_all(root)?;
        // initdb and postgres refuse to run as root: the directory belongs to nobody.
        run_command(Path::new("chown"), &["nobody", &path_str(root)?], false)?;
        let data_dir = root.join("data");
        let socket_dir = root.to_path_buf();
        run_command(
            &initdb,
            &[
                "-D",
                &path_str(&data_dir)?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            true,
        )?;
        let options = format!(
            "-c listen_addresses='' -k {} {settings}",
            path_str(&socket_dir)?
        );
        let postgres = Postgres {
            pg_ctl,
            data_dir,
            socket_dir,
            options,
            log_path: root.join("postgres.log"),
        };
        postgres.pg_ctl_start()?;
        Ok(postgres)
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        run_command(
            &self.pg_ctl,
            &[
                "-D",
                &path_str(&self.data_dir)?,
                "-o",
                &self.options,
                "-l",
                &path_str(&self.log_path)?,
                "-w",
                "start",
            ],
            true,
        )?;
        Ok(())
    }

    /// Stops and starts the server, which empties its shared buffers (the operating system's page
    /// cache is the caller's business).
    pub(crate) fn restart(&self) -> anyhow::Result<()> {
        run_command(
            &self.pg_ctl,
            &["-D", &path_str(&self.data_dir)?, "-m", "fast", "-w", "stop"],
            true,
        )?;
        self.pg_ctl_start()
    }

    /// The arguments of `psql` that connect to this server, fail on the first error and print
    /// bare values.
    fn psql_args(&self) -> anyhow::Result<Vec<String>> {
        Ok([
            "-h",
            &path_str(&self.socket_dir)?,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-X",
            "-q",
            "-t",
            "-A",
        ]
        .map(str::to_owned)
        .to_vec())
    }

    /// Runs `script` (statements and psql meta-commands) through `psql`'s standard input in one
    /// session and returns what it printed.
    pub(crate) fn psql_script(&self, script: &[u8]) -> anyhow::Result<String> {
        let mut child = Command::new("psql")
            .args(self.psql_args()?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running psql (Debian package postgresql-client-15)")?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        // Written on a thread: psql's output could fill its pipe before it has read the script.
        let script = script.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&script));
        let output = child.wait_with_output()?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("the psql writer panicked"))?
            .context("writing to psql")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "psql failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }

    pub(crate) fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let mut args = self.psql_args()?;
        args.extend(["-c".to_owned(), sql.to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run_command(Path::new("psql"), &args, false)?;
        Ok(output.trim().to_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Ok(data_dir) = path_str(&self.data_dir) {
            let _ = run_command(
                &self.pg_ctl,
                &["-D", &data_dir, "-m", "fast", "-w", "stop"],
                true,
            );
        }
    }
}

pub(crate) fn path_str(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
