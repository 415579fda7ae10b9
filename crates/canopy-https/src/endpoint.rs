//! Where a server listens and the URL it tells others: the one piece every server
//! (shard, front-proxy, cache server) needs before it can create its serving
//! certificate.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;

/// A bound listener's address, the host name it is known by and its `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The bound address (port 0 resolved).
    pub addr: SocketAddr,
    /// `external_hostname`, else the bind address (`127.0.0.1` for an unspecified one).
    pub host: String,
    /// `https://host:port`, with an IPv6 host in brackets.
    pub url: String,
    /// The names the serving certificate must carry: the host and the bind address.
    pub cert_hosts: Vec<String>,
}

impl Endpoint {
    /// Describes `listener`, bound on `bind_address`.
    pub fn of(
        listener: &TcpListener,
        bind_address: IpAddr,
        external_hostname: Option<&str>,
    ) -> io::Result<Endpoint> {
        Ok(Endpoint::at(
            listener.local_addr()?,
            bind_address,
            external_hostname,
        ))
    }

    /// Describes a server bound at `addr` (pure).
    pub fn at(addr: SocketAddr, bind_address: IpAddr, external_hostname: Option<&str>) -> Endpoint {
        let host = match external_hostname {
            Some(h) => h.to_string(),
            None if bind_address.is_unspecified() => "127.0.0.1".to_string(),
            None => bind_address.to_string(),
        };
        let url_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let url = format!("https://{url_host}:{}", addr.port());
        let cert_hosts = vec![host.clone(), bind_address.to_string()];
        Endpoint {
            addr,
            host,
            url,
            cert_hosts,
        }
    }
}

/// Binds `bind_address:port` (port 0: any free port) and describes it.
pub async fn bind(
    bind_address: IpAddr,
    port: u16,
    external_hostname: Option<&str>,
) -> io::Result<(TcpListener, Endpoint)> {
    let listener = TcpListener::bind(SocketAddr::new(bind_address, port)).await?;
    let endpoint = Endpoint::of(&listener, bind_address, external_hostname)?;
    Ok((listener, endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_certificate_names() {
        let any4: IpAddr = "0.0.0.0".parse().unwrap();
        let e = Endpoint::at("0.0.0.0:6443".parse().unwrap(), any4, None);
        assert_eq!(e.url, "https://127.0.0.1:6443");
        assert_eq!(e.cert_hosts, vec!["127.0.0.1", "0.0.0.0"]);
        let v6: IpAddr = "::1".parse().unwrap();
        let e = Endpoint::at("[::1]:8443".parse().unwrap(), v6, None);
        assert_eq!(e.url, "https://[::1]:8443");
        let e = Endpoint::at("[::1]:8443".parse().unwrap(), v6, Some("canopy.example"));
        assert_eq!(e.url, "https://canopy.example:8443");
        assert_eq!(e.cert_hosts, vec!["canopy.example", "::1"]);
    }
}
