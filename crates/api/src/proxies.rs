//! The client's address behind reverse proxies: `X-Forwarded-For` is believed only when the
//! connection comes from a proxy the operator trusts (`--trusted-proxies`), and then only up to
//! the rightmost hop that is not itself a trusted proxy (hops further left are whatever the
//! client chose to send). With no trusted proxies (the default) the header is ignored.
//!
//! [`resolve_client`] runs before everything else and replaces the request's `ConnectInfo`
//! with the resolved address, so the login limiter, the audit log, git and the registry all
//! see the same client.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// The forwarding header read from trusted proxies.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// An address block: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    addr: IpAddr,
    prefix: u8,
}

impl Block {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    let shift = u32::from(bits - prefix);
    prefix == 0 || net >> shift == ip >> shift
}

/// The proxies whose `X-Forwarded-For` is believed: IP addresses and CIDR blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Block>);

impl TrustedProxies {
    /// No proxy is trusted: the peer's address is the client's.
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// Parses `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`…; the error names the bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut blocks = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            let bad =
                || format!("'{entry}' is not an IP address or a CIDR block such as 10.0.0.0/8");
            let (addr, prefix) = match entry.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (entry, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let addr = addr.to_canonical();
            let bits = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(prefix) => prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= bits)
                    .ok_or_else(bad)?,
                None => bits,
            };
            blocks.push(Block { addr, prefix });
        }
        Ok(TrustedProxies(blocks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|block| block.contains(ip))
    }

    /// The client of a request that reached Berth from `peer`: the peer itself unless it is a
    /// trusted proxy; then the hops of `X-Forwarded-For` are walked from the right while the
    /// current address is trusted. A hop that is not an address stops the walk.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            if !self.contains(client) {
                break;
            }
            match hop.parse::<IpAddr>() {
                Ok(ip) => client = ip.to_canonical(),
                Err(_) => break,
            }
        }
        client
    }
}

/// Middleware: when the connection comes from a trusted proxy, the request's `ConnectInfo`
/// becomes the forwarded client's address (port 0: the proxy does not tell it).
pub async fn resolve_client(
    State(proxies): State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !proxies.is_empty()
        && let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
    {
        let client = proxies.client(peer.ip(), request.headers());
        if client != peer.ip() {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, 0)));
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn entries_parse_or_are_named() {
        let proxies =
            TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.7", " ::1 ", "fd00::/8"]).unwrap();
        for (addr, trusted) in [
            ("10.1.2.3", true),
            ("11.0.0.1", false),
            ("192.168.1.7", true),
            ("192.168.1.8", false),
            ("::1", true),
            ("fd12::1", true),
            ("fe80::1", false),
            ("::ffff:10.9.9.9", true),
        ] {
            assert_eq!(proxies.contains(ip(addr)), trusted, "{addr}");
        }
        for bad in ["10.0.0.0/33", "ten", "10.0.0.1/x", "::/129"] {
            let error = TrustedProxies::parse(&[bad]).unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
        assert!(TrustedProxies::parse::<&str>(&[]).unwrap().is_empty());
        assert!(
            TrustedProxies::parse(&["0.0.0.0/0"])
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop_behind_a_trusted_peer() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        // (peer, X-Forwarded-For headers, client)
        let cases: [(&str, &[&str], &str); 9] = [
            // An untrusted peer's header is ignored, whatever it says.
            ("203.0.113.9", &["198.51.100.1"], "203.0.113.9"),
            ("203.0.113.9", &[], "203.0.113.9"),
            // A trusted proxy names the client.
            ("10.0.0.2", &["198.51.100.1"], "198.51.100.1"),
            // A forged left part is skipped: the rightmost untrusted hop wins.
            ("10.0.0.2", &["1.1.1.1, 198.51.100.1"], "198.51.100.1"),
            // Chains of trusted proxies are walked through.
            ("10.0.0.2", &["198.51.100.1, 10.0.0.5"], "198.51.100.1"),
            ("10.0.0.2", &["198.51.100.1", "10.0.0.5"], "198.51.100.1"),
            // Only trusted hops: the leftmost one.
            ("10.0.0.2", &["10.0.0.7"], "10.0.0.7"),
            // Garbage stops the walk at the last trusted address.
            ("10.0.0.2", &["198.51.100.1, garbage"], "10.0.0.2"),
            ("10.0.0.2", &[], "10.0.0.2"),
        ];
        for (peer, forwarded, want) in cases {
            assert_eq!(
                proxies.client(ip(peer), &headers(forwarded)),
                ip(want),
                "{peer} {forwarded:?}"
            );
        }
        assert_eq!(
            TrustedProxies::none().client(ip("10.0.0.2"), &headers(&["198.51.100.1"])),
            ip("10.0.0.2")
        );
    }
}
