//! Egress proxies: a proxy URL (`http://[user:pass@]host:port`) parsed into [`Proxy`];
//! the proxy environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, each
//! also lower-case, lower-case first as curl reads them) taken once, when the config is
//! parsed, into [`ProxyEnv`]; and which proxy, if any, an upstream URL goes through,
//! with `NO_PROXY` matched as curl matches it. Nothing here opens a socket, and no
//! message here quotes a proxy URL (it may hold credentials).

use crate::secret::Secret;
use std::fmt;
use std::sync::Arc;

/// Every proxy URL variable read (their values are hidden from config errors).
pub(crate) const VARIABLES: [&str; 6] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// The port curl assumes for a proxy URL without one.
const DEFAULT_PROXY_PORT: u16 = 1080;

/// An HTTP proxy the gateway connects through: `CONNECT` for `https` upstreams, requests
/// in absolute form for `http` ones. `Debug` shows the host and port, never credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Proxy host (an IPv6 address without brackets).
    pub host: Arc<str>,
    /// Proxy port (1080 when the URL has none, as in curl).
    pub port: u16,
    /// The `Proxy-Authorization` value (`Basic …`), when the URL has credentials.
    pub authorization: Option<Secret>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.authorization.is_some())
            .finish()
    }
}

impl Proxy {
    /// Parses `[http://][user[:pass]@]host[:port][/]`. The error never quotes the input.
    pub fn parse(url: &str) -> Result<Self, &'static str> {
        const SHAPE: &str = "is not a proxy URL like http://[user:pass@]host:port";
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => return Err("only http:// proxies are supported"),
            None => url,
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(SHAPE);
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport).ok_or(SHAPE)?;
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(SHAPE);
        }
        let authorization = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|d| d.into_owned())
                        .map_err(|_discarded| SHAPE)
                };
                let pair = format!("{}:{}", decode(user)?, decode(pass)?);
                Some(Secret::new(format!("Basic {}", base64(pair.as_bytes()))))
            }
        };
        Ok(Self {
            host: Arc::from(host),
            port: port.unwrap_or(DEFAULT_PROXY_PORT),
            authorization,
        })
    }
}

/// An upstream's `proxy:` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySetting {
    /// Not set: the environment decides.
    FromEnv,
    /// `none`: always direct, whatever the environment says.
    Never,
    /// A proxy URL.
    Via(Proxy),
}

/// A proxy variable's value: parsed, or the name of the variable that is not a proxy
/// URL (an error only for an upstream that would use it).
type EnvProxy = Option<Result<Proxy, &'static str>>;

/// The proxy environment, read once.
#[derive(Debug, Clone, Default)]
pub struct ProxyEnv {
    http: EnvProxy,
    https: EnvProxy,
    no_proxy: Vec<NoProxyEntry>,
    no_proxy_all: bool,
}

#[derive(Debug, Clone)]
struct NoProxyEntry {
    host: String,
    port: Option<u16>,
}

impl ProxyEnv {
    /// Reads the proxy variables through `env` (lower-case before upper-case, an empty
    /// value as unset; `ALL_PROXY` when the scheme's own variable is unset).
    pub fn read(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&'static str]| {
            names.iter().find_map(|&name| {
                env(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            })
        };
        let proxy = |names: &[&'static str]| -> EnvProxy {
            let (name, value) = first(names)?;
            Some(Proxy::parse(&value).map_err(|_discarded| name))
        };
        const ALL: [&str; 2] = ["all_proxy", "ALL_PROXY"];
        let no_proxy = first(&["no_proxy", "NO_PROXY"]).map(|(_, v)| v);
        let no_proxy = no_proxy.as_deref().unwrap_or("");
        let entries = no_proxy
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|e| !e.is_empty());
        Self {
            http: proxy(&["http_proxy", "HTTP_PROXY"]).or_else(|| proxy(&ALL)),
            https: proxy(&["https_proxy", "HTTPS_PROXY"]).or_else(|| proxy(&ALL)),
            no_proxy_all: no_proxy.trim() == "*",
            no_proxy: entries.filter_map(NoProxyEntry::parse).collect(),
        }
    }

    /// The proxy for an `http://` or `https://` URL, or `None` to go direct; `Err` with
    /// a message (naming the variable, never its value) when the variable that applies
    /// is not a proxy URL.
    pub fn proxy_for(&self, url: &str) -> Result<Option<Proxy>, String> {
        let Some((https, host, port)) = url_host_port(url) else {
            return Ok(None);
        };
        let chosen = if https { &self.https } else { &self.http };
        let Some(chosen) = chosen else {
            return Ok(None);
        };
        if self.bypasses(&host, port) {
            return Ok(None);
        }
        match chosen {
            Ok(p) => Ok(Some(p.clone())),
            Err(name) => Err(format!(
                "the environment's {name} is not a proxy URL like http://[user:pass@]host:port"
            )),
        }
    }

    /// Whether `NO_PROXY` sends this host straight to it.
    fn bypasses(&self, host: &str, port: u16) -> bool {
        self.no_proxy_all || self.no_proxy.iter().any(|e| e.matches(host, port))
    }
}

impl NoProxyEntry {
    fn parse(entry: &str) -> Option<Self> {
        let (host, port) = split_host_port(entry)?;
        let host = host.strip_prefix('.').unwrap_or(host);
        (!host.is_empty()).then(|| Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// curl's rule: an IP address matches only itself; a name matches itself and every
    /// name under it (`example.com` and `.example.com` both match `api.example.com`).
    fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.parse::<std::net::IpAddr>().is_ok() || self.host.parse::<std::net::IpAddr>().is_ok()
        {
            return host.parse::<std::net::IpAddr>().ok() == self.host.parse().ok();
        }
        host == self.host
            || host
                .strip_suffix(self.host.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    }
}

/// `(is https, host, port)` of an `http://` or `https://` URL.
pub(crate) fn url_host_port(url: &str) -> Option<(bool, String, u16)> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_host_port(hostport)?;
    Some((
        https,
        host.to_owned(),
        port.unwrap_or(if https { 443 } else { 80 }),
    ))
}

/// `host[:port]` or `[v6][:port]` (a bare IPv6 address has no port) → host without
/// brackets and the port; `None` when the port is not a number.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Some((s, None)), // bare IPv6
        Some((host, p)) => Some((host, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

/// Standard base64 with padding (RFC 4648), for `Basic` credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
