//! Node strings found in advertise values (SEATTLE.md D.2) and Affix stack strings.
//!
//! Parsed as the clearinghouse does: split once at the first `:`, the rest is the port read by
//! Python `int()`.

use std::fmt;
use std::net::IpAddr;

/// What kind of address a node advertised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeHost {
    /// A literal IP: the node manager is reachable there (pre-Affix, or Affix disabled).
    Ip(IpAddr),
    /// `NAT$<sha1 hex><vessel>`: repy V1 NAT layer; everything after `NAT$`.
    Nat(String),
    /// `<sha1 hex>`: an Affix stack id, to be resolved through the advertise service.
    Affix(String),
    /// Anything else before the `:` (a host name, in practice never seen from node managers).
    Other(String),
}

/// A parsed `host:port` node string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    /// The part before the first `:`.
    pub host: NodeHost,
    /// The port.
    pub port: u16,
}

/// Why a value is not a node string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeAddressError {
    /// No `:` at all.
    #[error("node string has no ':'")]
    NoPort,
    /// The text after the first `:` is not an integer in 0..=65535.
    #[error("node string has a bad port")]
    BadPort,
    /// Empty host or not UTF-8.
    #[error("node string has a bad host")]
    BadHost,
}

/// The clearinghouse's prefix for NAT nodes (`maindb.NAT_STRING_PREFIX`).
pub const NAT_PREFIX: &str = "NAT$";

fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl NodeAddress {
    /// Parses one advertise value.
    pub fn parse(value: &[u8]) -> Result<NodeAddress, NodeAddressError> {
        let colon = value
            .iter()
            .position(|&b| b == b':')
            .ok_or(NodeAddressError::NoPort)?;
        let host = std::str::from_utf8(&value[..colon]).map_err(|_| NodeAddressError::BadHost)?;
        let port_text =
            std::str::from_utf8(&value[colon + 1..]).map_err(|_| NodeAddressError::BadPort)?;
        // Python int(): surrounding whitespace and a '+' are fine.
        let port_text = port_text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
        let port_text = port_text.strip_prefix('+').unwrap_or(port_text);
        if port_text.is_empty() || !port_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NodeAddressError::BadPort);
        }
        let significant = port_text.trim_start_matches('0');
        let port = if significant.is_empty() {
            0
        } else if significant.len() > 5 {
            return Err(NodeAddressError::BadPort);
        } else {
            significant
                .parse::<u16>()
                .map_err(|_| NodeAddressError::BadPort)?
        };
        if host.is_empty() {
            return Err(NodeAddressError::BadHost);
        }
        let host = if let Some(rest) = host.strip_prefix(NAT_PREFIX) {
            NodeHost::Nat(rest.to_string())
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            NodeHost::Ip(ip)
        } else if is_sha1_hex(host) {
            NodeHost::Affix(host.to_ascii_lowercase())
        } else {
            NodeHost::Other(host.to_string())
        };
        Ok(NodeAddress { host, port })
    }

    /// The advertise key under which an Affix node publishes its current IP (`<id>`).
    pub fn affix_ip_key(&self) -> Option<String> {
        match &self.host {
            NodeHost::Affix(id) => Some(id.clone()),
            _ => None,
        }
    }

    /// The advertise key under which an Affix node publishes its stack (`<id>,<port>,TCP`).
    pub fn affix_stack_key(&self) -> Option<String> {
        match &self.host {
            NodeHost::Affix(id) => Some(format!("{id},{},TCP", self.port)),
            _ => None,
        }
    }
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            NodeHost::Ip(ip) => write!(f, "{ip}:{}", self.port),
            NodeHost::Nat(rest) => write!(f, "{NAT_PREFIX}{rest}:{}", self.port),
            NodeHost::Affix(id) => write!(f, "{id}:{}", self.port),
            NodeHost::Other(h) => write!(f, "{h}:{}", self.port),
        }
    }
}

/// How an Affix node can be reached, from its stack string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffixReachability {
    /// No relay in the stack: reachable directly at its IP and port.
    Direct,
    /// The stack contains `TCPRelayAffix`: behind NAT, reachable only through the relay.
    Nat,
}

/// Classifies an Affix stack string such as `(NamingAndResolverAffix)` or
/// `(CoordinationAffix)(TCPRelayAffix,1.2.3.4:12345)`.
pub fn affix_reachability(stack: &[u8]) -> AffixReachability {
    const RELAY: &[u8] = b"TCPRelayAffix";
    if stack.windows(RELAY.len()).any(|w| w == RELAY) {
        AffixReachability::Nat
    } else {
        AffixReachability::Direct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms() {
        let direct = NodeAddress::parse(b"10.0.0.1:1224").unwrap();
        assert_eq!(direct.host, NodeHost::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!(direct.port, 1224);
        let affix = NodeAddress::parse(b"592341b61c284815f3d0ff7311ed02873889bf4f:1224").unwrap();
        assert_eq!(
            affix.affix_stack_key().as_deref(),
            Some("592341b61c284815f3d0ff7311ed02873889bf4f,1224,TCP")
        );
        let nat = NodeAddress::parse(b"NAT$0123abcv2:1224").unwrap();
        assert_eq!(nat.host, NodeHost::Nat("0123abcv2".into()));
        assert_eq!(nat.to_string(), "NAT$0123abcv2:1224");
    }

    #[test]
    fn bad_forms() {
        assert_eq!(NodeAddress::parse(b""), Err(NodeAddressError::NoPort));
        assert_eq!(
            NodeAddress::parse(b"1.2.3.4"),
            Err(NodeAddressError::NoPort)
        );
        assert_eq!(
            NodeAddress::parse(b"1.2.3.4:x"),
            Err(NodeAddressError::BadPort)
        );
        assert_eq!(
            NodeAddress::parse(b"1.2.3.4:70000"),
            Err(NodeAddressError::BadPort)
        );
        assert_eq!(NodeAddress::parse(b":1224"), Err(NodeAddressError::BadHost));
        assert_eq!(NodeAddress::parse(b"1.2.3.4:+01224").unwrap().port, 1224);
    }

    #[test]
    fn stacks() {
        assert_eq!(
            affix_reachability(b"(NamingAndResolverAffix)"),
            AffixReachability::Direct
        );
        assert_eq!(
            affix_reachability(b"(CoordinationAffix)(TCPRelayAffix,1.2.3.4:12345)"),
            AffixReachability::Nat
        );
    }
}
