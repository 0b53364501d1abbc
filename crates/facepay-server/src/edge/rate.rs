//! A rate limit per client address on the face work that needs no
//! credential: a token bucket per address and kind of work, refilled at
//! `[limits] enrolments_per_address_per_minute` up to
//! `enrolment_burst_per_address` enrolments (`EnrolmentTurn`), and at
//! `photo_analyses_per_address_per_minute` up to
//! `photo_analysis_burst_per_address` public photo analyses
//! (`AnalysisTurn`). The two are counted apart so that the pages' live
//! guidance, which asks for an analysis every second and a half, never
//! spends the enrolment it guides. One over a bucket is answered 429
//! `rate_limited` with `Retry-After` before a byte of its body is read.
//! Terminal payments never come here: their routes take no turn.
//!
//! The address is the peer's; when the peer is one of `[server]
//! trusted_proxies`, it is the nearest address in `X-Forwarded-For` that is
//! not a trusted proxy, so a client cannot pick its own address by sending
//! the header. An IPv6 client is counted by its /64, the block one
//! subscriber is usually given, or it could take a new address per request.
//!
//! The buckets are kept for at most `face_work_addresses_max` addresses.
//! When that many are kept, the one seen least recently is forgotten (it
//! starts again with a full bucket) rather than a new address refused:
//! refusing would let whoever holds that many addresses shut every newcomer
//! out of enrolment, while forgetting gives the quietest address no more
//! than a client holding that many addresses already has. The enrolment
//! lane's slots and bounded queue still bound the work of all addresses
//! together.
//!
//! Not `governor`: its keyed limiter keeps a state for every key it has
//! seen until it is told to forget old ones, which is the unbounded memory
//! this must not hand out. The bucket is a few lines over `hashlink`'s LRU
//! map (which sqlx already builds).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use hashlink::LruCache;
use ipnet::IpNet;

use super::ApiError;
use crate::AppState;

/// `X-Forwarded-For` hops looked at, from the nearest: proxies in front of
/// a server are a handful, and a longer list is the client's own writing.
const FORWARDED_HOPS_MAX: usize = 16;

/// The kinds of face work counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Work {
    Enrolment,
    Analysis,
}

/// Who a bucket belongs to: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Holder {
    V4(u32),
    V6Block(u64),
}

impl Holder {
    fn of(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6Block((u128::from(v6) >> 64) as u64),
        }
    }
}

/// One kind of work's rate, as a GCRA schedule.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// Time one request's token takes to come back.
    interval: Duration,
    /// How far ahead of the bucket's schedule a request may be: the burst
    /// less the request itself, in intervals.
    tolerance: Duration,
}

impl Rate {
    fn new(per_minute: u64, burst: u64) -> Self {
        assert!(per_minute > 0 && burst > 0);
        let interval = Duration::from_secs(60) / u32::try_from(per_minute).unwrap_or(u32::MAX);
        let tolerance = interval.saturating_mul(u32::try_from(burst - 1).unwrap_or(u32::MAX));
        Self {
            interval,
            tolerance,
        }
    }
}

/// The buckets of every client address, bounded.
pub struct FaceWorkLimiter {
    enrolment: Rate,
    analysis: Rate,
    /// Each address's theoretical arrival time (GCRA) for each kind of
    /// work: when its bucket is full again. Ordered from the bucket used
    /// least recently.
    buckets: Mutex<LruCache<(Work, Holder), Instant>>,
    trusted_proxies: Vec<IpNet>,
}

impl FaceWorkLimiter {
    pub fn of(config: &facepay_config::Config) -> Self {
        let limits = &config.limits;
        Self::new(
            Rate::new(
                limits.enrolments_per_address_per_minute,
                limits.enrolment_burst_per_address,
            ),
            Rate::new(
                limits.photo_analyses_per_address_per_minute,
                limits.photo_analysis_burst_per_address,
            ),
            usize::try_from(limits.face_work_addresses_max).unwrap_or(usize::MAX),
            config.server.trusted_proxies.clone(),
        )
    }

    fn new(
        enrolment: Rate,
        analysis: Rate,
        addresses_max: usize,
        trusted_proxies: Vec<IpNet>,
    ) -> Self {
        assert!(addresses_max > 0);
        Self {
            enrolment,
            analysis,
            buckets: Mutex::new(LruCache::new(addresses_max)),
            trusted_proxies,
        }
    }

    /// Takes a token of `address`'s bucket for `work` at `now`, or says how
    /// long until one is there. A refused request takes nothing, but it
    /// counts as seen.
    fn take(&self, work: Work, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let rate = match work {
            Work::Enrolment => self.enrolment,
            Work::Analysis => self.analysis,
        };
        let key = (work, Holder::of(address));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let full_at = buckets.get(&key).copied().unwrap_or(now).max(now);
        if let Some(allowed_at) = full_at.checked_sub(rate.tolerance)
            && allowed_at > now
        {
            return Err(allowed_at - now);
        }
        buckets.insert(key, full_at + rate.interval);
        Ok(())
    }

    #[cfg(test)]
    fn addresses_kept(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }

    /// The address a request from `peer` is counted under.
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        if !self.is_trusted(client) {
            return client;
        }
        let mut hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        hops.reverse();
        for hop in hops.into_iter().take(FORWARDED_HOPS_MAX) {
            match parse_hop(hop) {
                Some(address) => client = address,
                // A hop that is no address ends what can be believed.
                None => break,
            }
            if !self.is_trusted(client) {
                break;
            }
        }
        client
    }
}

/// An address as proxies write it: bare, or with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Takes a turn at `work` from the client address's bucket.
fn take_turn(parts: &Parts, state: &AppState, work: Work) -> Result<(), ApiError> {
    // Every connection `listen` accepts carries its peer; a request
    // without one was handed to the router in this process (a test),
    // not sent over a network, and has no address to count.
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
        return Ok(());
    };
    let limiter = &state.face_work;
    let client = limiter.client(peer.ip(), &parts.headers);
    limiter
        .take(work, client, Instant::now())
        .map_err(|wait| rate_limited(work, wait))
}

/// A turn at an enrolment for a caller who shows no credential, taken from
/// the client address's bucket before the body is read.
pub struct EnrolmentTurn;

impl FromRequestParts<Arc<AppState>> for EnrolmentTurn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        take_turn(parts, state, Work::Enrolment).map(|()| Self)
    }
}

/// A turn at the public photo analysis, counted apart from enrolments.
pub struct AnalysisTurn;

impl FromRequestParts<Arc<AppState>> for AnalysisTurn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        take_turn(parts, state, Work::Analysis).map(|()| Self)
    }
}

fn rate_limited(work: Work, wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let what = match work {
        Work::Enrolment => "enrolments",
        Work::Analysis => "photo analyses",
    };
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many {what} from this address; retry in {seconds} s"),
    )
    .retry_after(seconds)
    .closing()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enrolments at `per_minute` and `burst`; analyses at ten times both.
    fn limiter(per_minute: u64, burst: u64, addresses_max: usize) -> FaceWorkLimiter {
        let trusted = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        FaceWorkLimiter::new(
            Rate::new(per_minute, burst),
            Rate::new(per_minute * 10, burst * 10),
            addresses_max,
            trusted,
        )
    }

    #[test]
    fn analyses_and_enrolments_are_counted_apart() {
        let limiter = limiter(1, 2, 16);
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..20 {
            assert_eq!(limiter.take(Work::Analysis, a, now), Ok(()));
        }
        assert!(limiter.take(Work::Analysis, a, now).is_err());
        // The guidance spent its own bucket, not the enrolment's.
        assert_eq!(limiter.take(Work::Enrolment, a, now), Ok(()));
        assert_eq!(limiter.take(Work::Enrolment, a, now), Ok(()));
        assert!(limiter.take(Work::Enrolment, a, now).is_err());
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_bucket_lets_its_burst_through_then_refills_at_its_rate() {
        let limiter = limiter(6, 3, 16);
        let start = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(limiter.take(Work::Enrolment, a, start), Ok(()));
        }
        // One token comes back every 10 s.
        assert_eq!(
            limiter.take(Work::Enrolment, a, start),
            Err(Duration::from_secs(10))
        );
        let later = start + Duration::from_secs(4);
        assert_eq!(
            limiter.take(Work::Enrolment, a, later),
            Err(Duration::from_secs(6))
        );
        assert_eq!(
            limiter.take(Work::Enrolment, ip("192.0.2.2"), later),
            Ok(())
        );
        let refilled = start + Duration::from_secs(10);
        assert_eq!(limiter.take(Work::Enrolment, a, refilled), Ok(()));
        assert!(limiter.take(Work::Enrolment, a, refilled).is_err());
        // After a long rest the bucket holds its burst, not more.
        let rested = start + Duration::from_secs(3_600);
        for _ in 0..3 {
            assert_eq!(limiter.take(Work::Enrolment, a, rested), Ok(()));
        }
        assert!(limiter.take(Work::Enrolment, a, rested).is_err());
    }

    #[test]
    fn the_addresses_kept_are_bounded_and_the_quietest_is_forgotten() {
        let limiter = limiter(1, 1, 64);
        let now = Instant::now();
        let busy = ip("198.51.100.1");
        assert_eq!(limiter.take(Work::Enrolment, busy, now), Ok(()));
        for n in 0..10_000u32 {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            let _ = limiter.take(Work::Enrolment, address, now);
            // Refused, the busy address is seen again and kept.
            assert!(limiter.take(Work::Enrolment, busy, now).is_err());
            assert!(limiter.addresses_kept() <= 64);
        }
        assert_eq!(limiter.addresses_kept(), 64);
        // The quietest of the flood was forgotten and starts afresh.
        assert_eq!(limiter.take(Work::Enrolment, ip("10.0.0.0"), now), Ok(()));
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_block() {
        let limiter = limiter(1, 1, 16);
        let now = Instant::now();
        assert_eq!(
            limiter.take(Work::Enrolment, ip("2001:db8:1:2::1"), now),
            Ok(())
        );
        assert!(
            limiter
                .take(Work::Enrolment, ip("2001:db8:1:2:ffff::9"), now)
                .is_err()
        );
        assert_eq!(
            limiter.take(Work::Enrolment, ip("2001:db8:1:3::1"), now),
            Ok(())
        );
        // An IPv4 address written as IPv6 is the IPv4 address.
        assert_eq!(limiter.take(Work::Enrolment, ip("192.0.2.7"), now), Ok(()));
        assert!(
            limiter
                .take(Work::Enrolment, ip("::ffff:192.0.2.7"), now)
                .is_err()
        );
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let limiter = limiter(1, 1, 16);
        let headers = |values: &[&str]| {
            let mut map = HeaderMap::new();
            for v in values {
                map.append("x-forwarded-for", v.parse().unwrap());
            }
            map
        };
        let forwarded = headers(&["203.0.113.9, 10.1.1.1"]);
        // Not from a proxy: the header is the client's own writing.
        assert_eq!(
            limiter.client(ip("198.51.100.4"), &forwarded),
            ip("198.51.100.4")
        );
        // Through two trusted proxies: the first hop that is not one.
        assert_eq!(
            limiter.client(ip("10.0.0.1"), &forwarded),
            ip("203.0.113.9")
        );
        let spoofed = headers(&["1.2.3.4", "203.0.113.9:4711"]);
        assert_eq!(limiter.client(ip("::1"), &spoofed), ip("203.0.113.9"));
        // A hop that is no address: the last one believed.
        let broken = headers(&["203.0.113.9, unknown, 10.2.2.2"]);
        assert_eq!(limiter.client(ip("10.0.0.1"), &broken), ip("10.2.2.2"));
        assert_eq!(
            limiter.client(ip("10.0.0.1"), &headers(&[])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_refusal_says_when_to_retry_in_whole_seconds() {
        let error = rate_limited(Work::Enrolment, Duration::from_millis(1_200));
        assert_eq!(error.code(), "rate_limited");
        assert_eq!(error.retry_after_s(), Some(2));
        assert_eq!(
            rate_limited(Work::Analysis, Duration::from_millis(3)).retry_after_s(),
            Some(1)
        );
    }
}
