//! What `sluice up` takes from the machine it runs on: the address `--bind` names (an IP
//! address or a host name), whether listening there is safe (secure by default), and the file
//! mode creation mask that keeps the data directory private.

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

/// Why listening on `bind` would expose the data, or `None` when it may: a loopback address
/// needs nothing (development stays zero-configuration); any other address needs TLS and
/// authentication both, unless the operator said `--insecure`. The message names the fix.
pub fn exposure_refusal(bind: IpAddr, tls: bool, security: bool, insecure: bool) -> Option<String> {
    if bind.is_loopback() || (tls && security) || insecure {
        return None;
    }
    let missing = match (tls, security) {
        (false, false) => "TLS and authentication",
        (false, true) => "TLS",
        _ => "authentication",
    };
    Some(format!(
        "refusing to listen on {bind} without {missing}: anyone who can reach it could read and          change every index, stream and ledger. Either add {fix}, or bind to 127.0.0.1          (--bind 127.0.0.1), or pass --insecure (or \"insecure\": true in the --config file)          to accept the risk",
        fix = match (tls, security) {
            (false, false) =>
                "--tls-cert FILE --tls-key FILE (or --tls-self-signed) and --security",
            (false, true) => "--tls-cert FILE --tls-key FILE (or --tls-self-signed)",
            _ => "--security",
        }
    ))
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
    fn only_loopback_or_tls_with_authentication_or_insecure_may_listen() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let v6_loopback: IpAddr = "::1".parse().unwrap();
        let every: IpAddr = "0.0.0.0".parse().unwrap();
        let lan: IpAddr = "192.168.1.20".parse().unwrap();
        for address in [loopback, v6_loopback] {
            assert_eq!(exposure_refusal(address, false, false, false), None);
        }
        for address in [every, lan] {
            assert_eq!(exposure_refusal(address, true, true, false), None);
            assert_eq!(exposure_refusal(address, false, false, true), None);
            let neither = exposure_refusal(address, false, false, false).unwrap();
            assert!(
                neither.contains("without TLS and authentication"),
                "{neither}"
            );
            assert!(
                neither.contains("--tls-self-signed) and --security"),
                "{neither}"
            );
            assert!(neither.contains("--insecure"), "{neither}");
            let no_tls = exposure_refusal(address, false, true, false).unwrap();
            assert!(no_tls.contains("without TLS:"), "{no_tls}");
            let no_auth = exposure_refusal(address, true, false, false).unwrap();
            assert!(no_auth.contains("without authentication:"), "{no_auth}");
            assert!(no_auth.contains("add --security,"), "{no_auth}");
        }
    }

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
