//! Upstream name resolution, on the control thread only (it blocks).

use std::net::{SocketAddr, ToSocketAddrs};

use tollgate_config::plan::UpstreamPlan;

/// Why an upstream could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("upstream {authority}: cannot resolve {host:?}: {source}")]
pub struct ResolveError {
    /// `host:port` of the upstream.
    pub authority: String,
    /// The name looked up.
    pub host: String,
    /// The resolver's reason.
    #[source]
    pub source: std::io::Error,
}

/// Resolves one upstream's host (an IP literal resolves without a lookup).
pub fn resolve(upstream: &UpstreamPlan) -> Result<Vec<SocketAddr>, ResolveError> {
    let err = |source| ResolveError {
        authority: upstream.authority.clone(),
        host: upstream.host.clone(),
        source,
    };
    let mut addrs: Vec<SocketAddr> = (upstream.host.as_str(), upstream.port)
        .to_socket_addrs()
        .map_err(err)?
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(err(std::io::Error::other("no addresses")));
    }
    Ok(addrs)
}

/// Resolves every upstream of a plan in place. Unresolvable names keep no addresses (their
/// routes answer 502) and are reported, so one bad name does not stop the others.
pub fn resolve_all(upstreams: &mut [UpstreamPlan]) -> Vec<ResolveError> {
    let mut errors = Vec::new();
    for upstream in upstreams {
        match resolve(upstream) {
            Ok(addrs) => upstream.addrs = addrs,
            Err(e) => errors.push(e),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(host: &str, port: u16) -> UpstreamPlan {
        UpstreamPlan {
            authority: format!("{host}:{port}"),
            host: host.into(),
            port,
            addrs: vec![],
            tls: None,
        }
    }

    #[test]
    fn ip_literals_resolve_without_dns() {
        let mut ups = vec![upstream("127.0.0.1", 80), upstream("::1", 8080)];
        assert!(resolve_all(&mut ups).is_empty());
        assert_eq!(ups[0].addrs, vec!["127.0.0.1:80".parse().unwrap()]);
        assert_eq!(ups[1].addrs, vec!["[::1]:8080".parse().unwrap()]);
    }

    #[test]
    fn unresolvable_names_are_reported_not_fatal() {
        let mut ups = vec![upstream("name.invalid", 80), upstream("127.0.0.1", 81)];
        let errors = resolve_all(&mut ups);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("name.invalid"));
        assert!(ups[0].addrs.is_empty());
        assert_eq!(ups[1].addrs.len(), 1);
    }
}
