//! Which URLs an endpoint may have and which addresses a delivery may
//! reach. A webhook makes the server send requests where a merchant says,
//! so without a rule a merchant could make it call the operator's own
//! network (the database, a metadata service). The rule is checked when a
//! URL is registered (its scheme, and its host when it is an address or a
//! loopback name) and again on every address the host resolves to when a
//! delivery is sent, since a name can change what it points at.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Longest URL an endpoint may have.
pub const URL_LEN_MAX: usize = 2048;

/// Which addresses deliveries may reach: the `webhooks.destinations` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Destinations {
    /// Public internet addresses only: never loopback, private,
    /// link-local, shared (carrier-grade NAT) or reserved ones.
    #[default]
    Public,
    /// Any unicast address, private networks and loopback included: for a
    /// deployment whose merchants' systems run on its own network.
    Any,
    /// Loopback only: local development and tests.
    Loopback,
}

impl Destinations {
    /// Whether a delivery may connect to `ip`.
    pub fn allows(self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match self {
            Destinations::Public => is_public(ip),
            Destinations::Any => !ip.is_unspecified() && !ip.is_multicast() && !is_broadcast(ip),
            Destinations::Loopback => ip.is_loopback(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Destinations::Public => "public",
            Destinations::Any => "any",
            Destinations::Loopback => "loopback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "the URL is not a valid absolute URL of at most {URL_LEN_MAX} printable ASCII characters"
    )]
    Invalid,
    #[error("the URL must start with http:// or https://")]
    Scheme,
    #[error("the URL may not carry a user name, a password or a #fragment")]
    Parts,
    #[error("deliveries may reach {} addresses only, and this URL's host is not one", .0.as_str())]
    NotAllowed(Destinations),
}

impl UrlError {
    /// The stable code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            UrlError::Invalid => "webhook_url_invalid",
            UrlError::Scheme => "webhook_url_not_http",
            UrlError::Parts => "webhook_url_invalid",
            UrlError::NotAllowed(_) => "webhook_url_not_allowed",
        }
    }
}

/// The URL if an endpoint may have it: http or https, a host, no
/// credentials or fragment, and a host `destinations` allows as far as
/// can be told before it is resolved (an address, or a loopback name).
pub fn check_url(text: &str, destinations: Destinations) -> Result<Url, UrlError> {
    // Written as sent on the wire: printable ASCII, a name in another
    // script in its punycode form.
    if text.len() > URL_LEN_MAX || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UrlError::Invalid);
    }
    let url = Url::parse(text).map_err(|_| UrlError::Invalid)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(UrlError::Parts);
    }
    let allowed = match url.host().ok_or(UrlError::Invalid)? {
        Host::Ipv4(ip) => destinations.allows(IpAddr::V4(ip)),
        Host::Ipv6(ip) => destinations.allows(IpAddr::V6(ip)),
        Host::Domain(name) => {
            let loopback_name = is_loopback_name(name);
            match destinations {
                Destinations::Public => !loopback_name,
                Destinations::Any => true,
                Destinations::Loopback => loopback_name,
            }
        }
    };
    if !allowed {
        return Err(UrlError::NotAllowed(destinations));
    }
    Ok(url)
}

/// `localhost` and its subdomains name the machine itself (RFC 6761).
fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is that IPv4
/// address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let this_network = a == 0;
    let reserved = a >= 240;
    let benchmarking = a == 198 && (b == 18 || b == 19);
    let protocol_assignments = a == 192 && b == 0 && ip.octets()[2] == 0;
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || shared
        || this_network
        || reserved
        || benchmarking
        || protocol_assignments)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let documentation = first == 0x2001 && ip.segments()[1] == 0x0db8;
    // 64:ff9b::/96 and 2002::/16 embed IPv4 addresses (NAT64, 6to4);
    // refused rather than decoded.
    let translated = first == 0x0064 || first == 0x2002;
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || documentation
        || translated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_endpoints() {
        let any = Destinations::Any;
        for good in [
            "https://shop.example/hooks",
            "http://127.0.0.1:8080/x?y=1",
            "https://[2001:4860::1]/",
        ] {
            assert!(check_url(good, any).is_ok(), "{good}");
        }
        let code = |text: &str| check_url(text, any).unwrap_err().code();
        assert_eq!(code("ftp://shop.example/"), "webhook_url_not_http");
        assert_eq!(code("javascript:alert(1)"), "webhook_url_not_http");
        assert_eq!(code("file:///etc/passwd"), "webhook_url_not_http");
        assert_eq!(code("shop.example/hooks"), "webhook_url_invalid");
        assert_eq!(code(""), "webhook_url_invalid");
        assert_eq!(code(" https://shop.example/"), "webhook_url_invalid");
        assert_eq!(code("https://shop.example/\u{0}"), "webhook_url_invalid");
        assert_eq!(code("https://bücher.example/"), "webhook_url_invalid");
        assert!(check_url("https://xn--bcher-kva.example/a@b", any).is_ok());
        assert_eq!(code("https://user:pw@shop.example/"), "webhook_url_invalid");
        assert_eq!(code("https://shop.example/#part"), "webhook_url_invalid");
        let long = format!("https://shop.example/{}", "a".repeat(URL_LEN_MAX));
        assert_eq!(code(&long), "webhook_url_invalid");
    }

    #[test]
    fn each_policy_allows_its_own_addresses() {
        let public = Destinations::Public;
        let loopback = Destinations::Loopback;
        for inside in [
            "http://127.0.0.1/",
            "http://localhost:9000/",
            "http://api.localhost/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.5.4/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            // Other spellings of 127.0.0.1 the URL standard reads as it.
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            assert_eq!(
                check_url(inside, public).unwrap_err().code(),
                "webhook_url_not_allowed",
                "{inside}"
            );
        }
        assert!(check_url("https://8.8.8.8/", public).is_ok());
        assert!(check_url("https://shop.example/", public).is_ok());
        assert!(check_url("http://127.0.0.1:1/", loopback).is_ok());
        assert!(check_url("http://localhost/", loopback).is_ok());
        assert!(check_url("http://[::1]:8/", loopback).is_ok());
        for outside in [
            "https://shop.example/",
            "http://10.0.0.1/",
            "https://8.8.8.8/",
        ] {
            assert_eq!(
                check_url(outside, loopback).unwrap_err(),
                UrlError::NotAllowed(loopback),
                "{outside}"
            );
        }
    }

    #[test]
    fn resolved_addresses_are_checked_as_literal_ones() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(!Destinations::Public.allows(ip("127.0.0.53")));
        assert!(!Destinations::Public.allows(ip("::ffff:10.0.0.1")));
        assert!(!Destinations::Public.allows(ip("64:ff9b::a00:1")));
        assert!(Destinations::Public.allows(ip("93.184.216.34")));
        assert!(Destinations::Any.allows(ip("10.0.0.1")));
        assert!(!Destinations::Any.allows(ip("0.0.0.0")));
        assert!(!Destinations::Any.allows(ip("224.0.0.1")));
        assert!(Destinations::Loopback.allows(ip("::1")));
        assert!(!Destinations::Loopback.allows(ip("10.0.0.1")));
    }
}
