//! Per-client rate limits on the endpoints anyone may call before signing in, kept in memory by each process.
//!
//! A client is its address as the server sees it, or as a trusted reverse proxy names it in `X-Forwarded-For`;
//! an IPv6 client is its /64, which one host usually holds whole. The buckets are governor's GCRA limiters.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use serde::Deserialize;

/// The `clients` section of the configuration.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientsConfig {
    /// Requests a second each client may make to the sign-in endpoints, on average.
    #[serde(default = "default_rate")]
    pub sign_in_rate: NonZeroU32,
    /// Requests a client may make at once before the rate applies.
    #[serde(default = "default_burst")]
    pub sign_in_burst: NonZeroU32,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client. Without them, the
    /// client is the address the connection comes from, and a proxy in front of the server shares one bucket.
    #[serde(default, deserialize_with = "networks")]
    #[schemars(with = "Vec<String>")]
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for ClientsConfig {
    fn default() -> ClientsConfig {
        ClientsConfig { sign_in_rate: default_rate(), sign_in_burst: default_burst(), trusted_proxies: Vec::new() }
    }
}

fn default_rate() -> NonZeroU32 {
    NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN)
}

fn default_burst() -> NonZeroU32 {
    NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN)
}

fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{s}` in clients.trusted_proxies is neither an address nor a CIDR range such as 10.0.0.0/8"
                ))
            })
        })
        .collect()
}

/// The most clients kept at once; past it, new clients share one bucket until old ones are forgotten, so that a
/// flood from many addresses cannot fill the memory.
const MAX_CLIENTS: usize = 100_000;

pub struct ClientLimits {
    limiter: RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock>,
    trusted: Vec<IpNet>,
    last_cleanup: Mutex<Instant>,
}

impl ClientLimits {
    pub fn new(config: &ClientsConfig) -> ClientLimits {
        let quota = Quota::per_second(config.sign_in_rate).allow_burst(config.sign_in_burst);
        ClientLimits {
            limiter: RateLimiter::hashmap(quota),
            trusted: config.trusted_proxies.clone(),
            last_cleanup: Mutex::new(Instant::now()),
        }
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For` values: the peer itself unless it is a
    /// trusted proxy, else the right-most forwarded address that is not one (those to its left, the client wrote).
    pub fn client<'a>(&self, peer: Option<IpAddr>, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let Some(mut client) = peer else { return IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
        let forwarded: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).map(str::trim).collect();
        for hop in forwarded.iter().rev() {
            if !self.trusted.iter().any(|net| net.contains(&client)) {
                break;
            }
            match hop.parse::<IpAddr>() {
                Ok(address) => client = address,
                Err(_) => break,
            }
        }
        bucket(client)
    }

    /// `None` when `client` may go on, else how long it must wait.
    pub fn check(&self, client: IpAddr) -> Option<Duration> {
        let key = if self.limiter.len() < MAX_CLIENTS || self.cleaned_up() { client } else { overflow() };
        self.limiter.check_key(&key).err().map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets clients whose buckets are full again, at most once a second; whether there is room after.
    fn cleaned_up(&self) -> bool {
        let mut last = self.last_cleanup.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            self.limiter.retain_recent();
        }
        self.limiter.len() < MAX_CLIENTS
    }
}

/// The key of the bucket every client past [`MAX_CLIENTS`] shares.
fn overflow() -> IpAddr {
    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}

/// IPv4 as it is; IPv6 as its /64 (and IPv4-mapped addresses as IPv4).
fn bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(yaml: &str) -> ClientLimits {
        ClientLimits::new(&serde_yaml_ng::from_str(yaml).unwrap())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let l = limits("{ sign_in_rate: 1, sign_in_burst: 3 }");
        for _ in 0..3 {
            assert_eq!(l.check(ip("192.0.2.1")), None);
        }
        let wait = l.check(ip("192.0.2.1")).expect("the fourth request waits");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(l.check(ip("192.0.2.2")), None, "another client is not held up");
    }

    #[test]
    fn forwarded_addresses_count_only_through_trusted_proxies() {
        let l = limits("{ trusted_proxies: [10.0.0.0/8, 192.0.2.9] }");
        let xff = |v: &'static [&'static str]| v.iter().copied();
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(l.client(Some(ip("198.51.100.7")), xff(&["203.0.113.5"])), ip("198.51.100.7"));
        // Through two trusted proxies: the right-most untrusted hop; what the client wrote to its left is ignored.
        assert_eq!(l.client(Some(ip("10.1.2.3")), xff(&["1.1.1.1, 203.0.113.5", "192.0.2.9"])), ip("203.0.113.5"));
        // A proxy that forwards nothing, or garbage, is its own client.
        assert_eq!(l.client(Some(ip("10.1.2.3")), xff(&[])), ip("10.1.2.3"));
        assert_eq!(l.client(Some(ip("10.1.2.3")), xff(&["not-an-address"])), ip("10.1.2.3"));
        // IPv6 clients are their /64; IPv4-mapped ones are IPv4.
        assert_eq!(l.client(Some(ip("2001:db8:1:2:aaaa::1")), xff(&[])), ip("2001:db8:1:2::"));
        assert_eq!(l.client(Some(ip("::ffff:192.0.2.1")), xff(&[])), ip("192.0.2.1"));
    }

    #[test]
    fn a_bad_proxy_is_refused_at_load() {
        let e = serde_yaml_ng::from_str::<ClientsConfig>("{ trusted_proxies: [10.0.0.0/33] }").unwrap_err();
        assert!(e.to_string().contains("neither an address nor a CIDR range"), "{e}");
    }
}
