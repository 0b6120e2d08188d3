//! What `sluice up` takes from the machine it runs on: the address `--bind` names (an IP
//! address or a host name) and the file mode creation mask that keeps the data directory private.

use std::net::{IpAddr, ToSocketAddrs};

use anyhow::{Context, bail};

/// The address the servers listen on for `--bind`: an IP address as it is (`::1` or `[::1]`),
/// or a host name resolved by the system resolver, of which the first IPv4 address is taken
/// (clients, the CLI's default endpoint and the README use 127.0.0.1), else the first address.
/// Both servers listen on that one address: with `--es-port 0`, each further address would get
/// a port of its own, and clients could not tell which.
pub fn resolve_bind(bind: &str) -> anyhow::Result<IpAddr> {
    let host = bind
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(bind);
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(address);
    }
    if host.is_empty() {
        bail!("--bind needs an IP address or a host name");
    }
    let resolved: Vec<IpAddr> = (host, 0)
        .to_socket_addrs()
        .with_context(|| format!("--bind {bind}: cannot resolve the host name"))?
        .map(|address| address.ip())
        .collect();
    let chosen = resolved
        .iter()
        .find(|address| address.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .with_context(|| format!("--bind {bind}: the host name resolves to no address"))?;
    let all: Vec<String> = resolved.iter().map(ToString::to_string).collect();
    tracing::info!(
        "--bind {bind} resolves to {}; listening on {chosen}",
        all.join(", ")
    );
    Ok(chosen)
}

/// Mask of permission bits new files and directories of `sluice up` never get: everything for
/// the group and others, so files are created 0600 and directories 0700 by every engine
/// (tantivy, redb, the log, backups), whatever their own calls ask for.
#[cfg(unix)]
pub const FILE_MODE_MASK: u32 = 0o077;

/// Sets [`FILE_MODE_MASK`] as the process's umask. Handler processes inherit it.
pub fn restrict_new_file_modes() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(FILE_MODE_MASK));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_pass_and_host_names_resolve() {
        assert_eq!(
            resolve_bind("127.0.0.1").unwrap(),
            IpAddr::from([127, 0, 0, 1])
        );
        assert_eq!(
            resolve_bind("[::1]").unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(resolve_bind("::").unwrap(), "::".parse::<IpAddr>().unwrap());
        let localhost = resolve_bind("localhost").unwrap();
        assert!(localhost.is_loopback(), "{localhost}");
        let error = resolve_bind("no-such-host.invalid").unwrap_err();
        assert!(
            format!("{error:#}").starts_with("--bind no-such-host.invalid: cannot resolve"),
            "{error:#}"
        );
        assert!(resolve_bind("").is_err());
    }
}
