//! The Kubernetes CEL libraries that cel-rust lacks: lists (`isSorted`, `sum`, `min`, `max`,
//! `indexOf`, `lastIndexOf`), regex (`find`, `findAll`), sets, URLs, IPs, CIDRs and quantities;
//! and the standard `matches`, declared here to keep compiled patterns.

use cel::common::types::{CelBool, CelInt, CelString, INT_TYPE, LIST_TYPE, STRING_TYPE, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::objects::{Key, Map as CelMap};
use cel::{DeclarationError, Env, ExecutionError, Value as CelValue};
use ipnet::IpNet;
use std::any::Any;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

static IP_TYPE: Type = Type::new_unspecified_type("net.IP");
static CIDR_TYPE: Type = Type::new_unspecified_type("net.CIDR");
static URL_TYPE: Type = Type::new_unspecified_type("kubernetes.URL");

type Res<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

/// An `ip(...)` value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ip(pub IpAddr);

/// A `cidr(...)` value: the address as written (host bits kept) and the prefix length.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cidr(pub IpNet);

/// A `url(...)` value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Url {
    scheme: String,
    host: String,
    path: String,
    query: String,
}

macro_rules! opaque_val {
    ($t:ty, $ty:ident) => {
        impl Val for $t {
            fn get_type(&self) -> &Type {
                &$ty
            }
            fn cel_type() -> &'static Type {
                &$ty
            }
            fn equals(&self, other: &dyn Val) -> bool {
                other.downcast_ref::<$t>().is_some_and(|o| o == self)
            }
            fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
                Box::new(self.clone())
            }
            fn as_any(&self) -> Option<&dyn Any> {
                Some(self)
            }
        }
        impl StaticVal for $t {}
    };
}
opaque_val!(Ip, IP_TYPE);
opaque_val!(Cidr, CIDR_TYPE);
opaque_val!(Url, URL_TYPE);

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(IP_TYPE.to_owned())?;
    env.add_type(CIDR_TYPE.to_owned())?;
    env.add_type(URL_TYPE.to_owned())?;

    register_quantity(env)?;
    env.add_overload("isIP", "is_ip_string", vec![STRING_TYPE], is_ip)?;
    env.add_overload("ip", "string_to_ip", vec![STRING_TYPE], ip)?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical",
        vec![STRING_TYPE],
        ip_is_canonical,
    )?;
    env.add_overload(
        "string",
        "ip_to_string",
        vec![IP_TYPE.to_owned()],
        ip_string,
    )?;
    env.add_member_overload("family", "ip_family", IP_TYPE.to_owned(), vec![], ip_family)?;
    for (name, f) in [
        (
            "isUnspecified",
            ip_is_unspecified as cel::common::functions::Function,
        ),
        ("isLoopback", ip_is_loopback),
        ("isLinkLocalMulticast", ip_is_link_local_multicast),
        ("isLinkLocalUnicast", ip_is_link_local_unicast),
        ("isGlobalUnicast", ip_is_global_unicast),
    ] {
        env.add_member_overload(name, &format!("ip_{name}"), IP_TYPE.to_owned(), vec![], f)?;
    }

    env.add_overload("isCIDR", "is_cidr_string", vec![STRING_TYPE], is_cidr)?;
    env.add_overload("cidr", "string_to_cidr", vec![STRING_TYPE], cidr)?;
    env.add_overload(
        "string",
        "cidr_to_string",
        vec![CIDR_TYPE.to_owned()],
        cidr_string,
    )?;
    env.add_member_overload("ip", "cidr_ip", CIDR_TYPE.to_owned(), vec![], cidr_ip)?;
    env.add_member_overload(
        "masked",
        "cidr_masked",
        CIDR_TYPE.to_owned(),
        vec![],
        cidr_masked,
    )?;
    env.add_member_overload(
        "prefixLength",
        "cidr_prefix_length",
        CIDR_TYPE.to_owned(),
        vec![],
        cidr_prefix_length,
    )?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_ip",
        CIDR_TYPE.to_owned(),
        vec![IP_TYPE.to_owned()],
        cidr_contains_ip,
    )?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_string",
        CIDR_TYPE.to_owned(),
        vec![STRING_TYPE],
        cidr_contains_ip,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_cidr",
        CIDR_TYPE.to_owned(),
        vec![CIDR_TYPE.to_owned()],
        cidr_contains_cidr,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_string",
        CIDR_TYPE.to_owned(),
        vec![STRING_TYPE],
        cidr_contains_cidr,
    )?;

    env.add_overload("isURL", "is_url_string", vec![STRING_TYPE], is_url)?;
    env.add_overload("url", "string_to_url", vec![STRING_TYPE], url)?;
    for (name, f) in [
        ("getScheme", url_scheme as cel::common::functions::Function),
        ("getHost", url_host),
        ("getHostname", url_hostname),
        ("getPort", url_port),
        ("getEscapedPath", url_path),
        ("getQuery", url_query),
    ] {
        env.add_member_overload(name, &format!("url_{name}"), URL_TYPE.to_owned(), vec![], f)?;
    }

    env.add_member_overload(
        "isSorted",
        "list_is_sorted",
        LIST_TYPE,
        vec![],
        list_is_sorted,
    )?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], list_sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], list_min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], list_max)?;
    env.add_member_overload(
        "indexOf",
        "list_index_of",
        LIST_TYPE,
        vec![cel::common::types::DYN_TYPE],
        list_index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list_last_index_of",
        LIST_TYPE,
        vec![cel::common::types::DYN_TYPE],
        list_last_index_of,
    )?;

    env.add_overload(
        "matches",
        "matches",
        vec![STRING_TYPE, STRING_TYPE],
        re_matches,
    )?;
    env.add_member_overload(
        "matches",
        "string_matches",
        STRING_TYPE,
        vec![STRING_TYPE],
        re_matches,
    )?;
    env.add_member_overload(
        "find",
        "string_find",
        STRING_TYPE,
        vec![STRING_TYPE],
        re_find,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all",
        STRING_TYPE,
        vec![STRING_TYPE],
        re_find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_n",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        re_find_all,
    )?;

    env.add_overload(
        "sets.contains",
        "sets_contains",
        vec![LIST_TYPE, LIST_TYPE],
        sets_contains,
    )?;
    env.add_overload(
        "sets.equivalent",
        "sets_equivalent",
        vec![LIST_TYPE, LIST_TYPE],
        sets_equivalent,
    )?;
    env.add_overload(
        "sets.intersects",
        "sets_intersects",
        vec![LIST_TYPE, LIST_TYPE],
        sets_intersects,
    )?;
    Ok(())
}

fn err(function: &str, msg: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, msg)
}

fn string_arg<'a>(
    args: &'a [CowVal<'_, '_>],
    i: usize,
    f: &str,
) -> Result<&'a str, ExecutionError> {
    args.get(i)
        .and_then(|a| a.downcast_ref::<CelString>())
        .map(|s| s.inner())
        .ok_or_else(|| err(f, "expected a string argument"))
}

fn value_arg(args: &[CowVal<'_, '_>], i: usize, f: &str) -> Result<CelValue, ExecutionError> {
    let a = args.get(i).ok_or_else(|| err(f, "missing argument"))?;
    CelValue::try_from(a.as_ref()).map_err(|_| err(f, "unsupported argument"))
}

fn list_arg(
    args: &[CowVal<'_, '_>],
    i: usize,
    f: &str,
) -> Result<Arc<Vec<CelValue>>, ExecutionError> {
    match value_arg(args, i, f)? {
        CelValue::List(l) => Ok(l),
        _ => Err(err(f, "expected a list")),
    }
}

fn boolean<'b, 'v>(b: bool) -> Res<'b, 'v> {
    Ok(CowVal::owned(CelBool::from(b)))
}

fn int<'b, 'v>(i: i64) -> Res<'b, 'v> {
    Ok(CowVal::owned(CelInt::from(i)))
}

fn string<'b, 'v>(s: String) -> Res<'b, 'v> {
    Ok(CowVal::owned(CelString::from(s)))
}

fn value<'b, 'v>(v: CelValue, f: &str) -> Res<'b, 'v> {
    let b: Box<dyn Val> = Box::<dyn Val>::try_from(v).map_err(|_| err(f, "unsupported result"))?;
    Ok(CowVal::from(b))
}

/// Kubernetes' IP parsing: no zones, no IPv4-mapped IPv6 addresses.
fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if s.contains('%') {
        return Err(format!("IP address with zone value is not allowed: {s}"));
    }
    let addr: IpAddr = s
        .parse()
        .map_err(|_| format!("IP Address {s:?} parse error during conversion from string"))?;
    if let IpAddr::V6(v6) = addr
        && v6.to_ipv4_mapped().is_some()
    {
        return Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"));
    }
    Ok(addr)
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let (addr, len) = s.split_once('/').ok_or_else(|| {
        format!("network address parse error during conversion from string: {s:?}")
    })?;
    let ip = parse_ip(addr)
        .map_err(|_| format!("network address parse error during conversion from string: {s:?}"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|_| !(len.starts_with('+') || (len.len() > 1 && len.starts_with('0'))))
        .ok_or_else(|| {
            format!("network address parse error during conversion from string: {s:?}")
        })?;
    IpNet::new(ip, len)
        .map_err(|_| format!("network address parse error during conversion from string: {s:?}"))
}

fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(parse_ip(string_arg(&args, 0, "isIP")?).is_ok())
}

fn ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let a = parse_ip(string_arg(&args, 0, "ip")?).map_err(|e| err("ip", e))?;
    Ok(CowVal::owned(Ip(a)))
}

fn ip_is_canonical<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let s = string_arg(&args, 0, "ip.isCanonical")?;
    let a = parse_ip(s).map_err(|e| err("ip.isCanonical", e))?;
    boolean(a.to_string() == s)
}

fn this_ip<'a>(args: &'a [CowVal<'_, '_>], f: &str) -> Result<&'a IpAddr, ExecutionError> {
    args.first()
        .and_then(|a| a.downcast_ref::<Ip>())
        .map(|i| &i.0)
        .ok_or_else(|| err(f, "expected an IP"))
}

fn this_cidr<'a>(args: &'a [CowVal<'_, '_>], f: &str) -> Result<&'a IpNet, ExecutionError> {
    args.first()
        .and_then(|a| a.downcast_ref::<Cidr>())
        .map(|c| &c.0)
        .ok_or_else(|| err(f, "expected a CIDR"))
}

fn this_url<'a>(args: &'a [CowVal<'_, '_>], f: &str) -> Result<&'a Url, ExecutionError> {
    args.first()
        .and_then(|a| a.downcast_ref::<Url>())
        .ok_or_else(|| err(f, "expected a URL"))
}

fn ip_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    string(this_ip(&args, "string")?.to_string())
}

fn ip_family<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    int(if this_ip(&args, "family")?.is_ipv4() {
        4
    } else {
        6
    })
}

fn ip_is_unspecified<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(this_ip(&args, "isUnspecified")?.is_unspecified())
}

fn ip_is_loopback<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(this_ip(&args, "isLoopback")?.is_loopback())
}

fn ip_is_link_local_multicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(match this_ip(&args, "isLinkLocalMulticast")? {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => a.segments()[0] & 0xff0f == 0xff02,
    })
}

fn is_link_local_unicast(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn ip_is_link_local_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(is_link_local_unicast(this_ip(&args, "isLinkLocalUnicast")?))
}

fn ip_is_global_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    // Go's definition: anything that is not unspecified, loopback, multicast, link-local or
    // the IPv4 broadcast address.
    let a = this_ip(&args, "isGlobalUnicast")?;
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    boolean(
        !a.is_unspecified()
            && !a.is_loopback()
            && !a.is_multicast()
            && !is_link_local_unicast(a)
            && !broadcast,
    )
}

fn is_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(parse_cidr(string_arg(&args, 0, "isCIDR")?).is_ok())
}

fn cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let c = parse_cidr(string_arg(&args, 0, "cidr")?).map_err(|e| err("cidr", e))?;
    Ok(CowVal::owned(Cidr(c)))
}

fn cidr_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    string(this_cidr(&args, "string")?.to_string())
}

fn cidr_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    Ok(CowVal::owned(Ip(this_cidr(&args, "ip")?.addr())))
}

fn cidr_masked<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    Ok(CowVal::owned(Cidr(this_cidr(&args, "masked")?.trunc())))
}

fn cidr_prefix_length<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    int(i64::from(this_cidr(&args, "prefixLength")?.prefix_len()))
}

fn cidr_contains_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let net = this_cidr(&args, "containsIP")?.trunc();
    let addr = match args.get(1).and_then(|a| a.downcast_ref::<Ip>()) {
        Some(ip) => ip.0,
        None => parse_ip(string_arg(&args, 1, "containsIP")?).map_err(|e| err("containsIP", e))?,
    };
    boolean(net.contains(&addr))
}

fn cidr_contains_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let net = this_cidr(&args, "containsCIDR")?.trunc();
    let other = match args.get(1).and_then(|a| a.downcast_ref::<Cidr>()) {
        Some(c) => c.0,
        None => {
            parse_cidr(string_arg(&args, 1, "containsCIDR")?).map_err(|e| err("containsCIDR", e))?
        }
    };
    boolean(net.contains(&other.trunc()))
}

/// An absolute URI or absolute path, as Go's `url.ParseRequestURI` accepts it.
fn parse_url(s: &str) -> Result<Url, String> {
    let bad = || format!("URL parse error during conversion from string: {s:?}");
    if s.is_empty() || s.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    let (before_query, query) = match s.split_once('?') {
        Some((a, q)) => (a, q.to_string()),
        None => (s, String::new()),
    };
    if before_query.starts_with('/') {
        return Ok(Url {
            scheme: String::new(),
            host: String::new(),
            path: before_query.to_string(),
            query,
        });
    }
    let (scheme, rest) = before_query.split_once(':').ok_or_else(bad)?;
    let mut chars = scheme.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(bad());
    }
    let (host, path) = match rest.strip_prefix("//") {
        Some(auth) => {
            let (authority, path) = match auth.find('/') {
                Some(i) => (&auth[..i], auth[i..].to_string()),
                None => (auth, String::new()),
            };
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if host.contains(' ') {
                return Err(bad());
            }
            (host.to_string(), path)
        }
        None => (String::new(), rest.to_string()),
    };
    Ok(Url {
        scheme: scheme.to_string(),
        host,
        path,
        query,
    })
}

fn is_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(parse_url(string_arg(&args, 0, "isURL")?).is_ok())
}

fn url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let u = parse_url(string_arg(&args, 0, "url")?).map_err(|e| err("url", e))?;
    Ok(CowVal::owned(u))
}

fn url_scheme<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    string(this_url(&args, "getScheme")?.scheme.clone())
}

fn url_host<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    string(this_url(&args, "getHost")?.host.clone())
}

fn split_host_port(host: &str) -> (&str, &str) {
    if let Some(rest) = host.strip_prefix('[')
        && let Some((h, after)) = rest.split_once(']')
    {
        return (h, after.strip_prefix(':').unwrap_or(""));
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p),
        _ => (host, ""),
    }
}

fn url_hostname<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    string(
        split_host_port(&this_url(&args, "getHostname")?.host)
            .0
            .to_string(),
    )
}

fn url_port<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    string(
        split_host_port(&this_url(&args, "getPort")?.host)
            .1
            .to_string(),
    )
}

fn url_path<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    string(this_url(&args, "getEscapedPath")?.path.clone())
}

fn url_query<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let u = this_url(&args, "getQuery")?;
    let mut out: HashMap<Key, Vec<CelValue>> = HashMap::new();
    for pair in u.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(Key::from(k))
            .or_default()
            .push(CelValue::String(Arc::new(v.to_string())));
    }
    let map: HashMap<Key, CelValue> = out
        .into_iter()
        .map(|(k, v)| (k, CelValue::List(Arc::new(v))))
        .collect();
    value(CelValue::Map(CelMap::from(map)), "getQuery")
}

fn compare(a: &CelValue, b: &CelValue) -> Option<Ordering> {
    match (a, b) {
        (CelValue::Int(x), CelValue::Int(y)) => Some(x.cmp(y)),
        (CelValue::UInt(x), CelValue::UInt(y)) => Some(x.cmp(y)),
        (CelValue::Float(x), CelValue::Float(y)) => x.partial_cmp(y),
        (CelValue::Int(x), CelValue::Float(y)) => (*x as f64).partial_cmp(y),
        (CelValue::Float(x), CelValue::Int(y)) => x.partial_cmp(&(*y as f64)),
        (CelValue::String(x), CelValue::String(y)) => Some(x.cmp(y)),
        (CelValue::Bool(x), CelValue::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn list_is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let l = list_arg(&args, 0, "isSorted")?;
    for w in l.windows(2) {
        match compare(&w[0], &w[1]) {
            Some(Ordering::Greater) => return boolean(false),
            Some(_) => {}
            None => return Err(err("isSorted", "list elements are not comparable")),
        }
    }
    boolean(true)
}

fn list_sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let l = list_arg(&args, 0, "sum")?;
    let mut int_sum: i64 = 0;
    let mut float_sum: f64 = 0.0;
    let mut floats = false;
    for x in l.iter() {
        match x {
            CelValue::Int(i) => {
                int_sum = int_sum
                    .checked_add(*i)
                    .ok_or_else(|| err("sum", "integer overflow"))?
            }
            CelValue::Float(f) => {
                floats = true;
                float_sum += f;
            }
            _ => return Err(err("sum", "list elements are not numbers")),
        }
    }
    if floats {
        value(CelValue::Float(float_sum + int_sum as f64), "sum")
    } else {
        int(int_sum)
    }
}

fn extreme<'b, 'v>(args: Vec<CowVal<'b, 'v>>, f: &str, want: Ordering) -> Res<'b, 'v> {
    let l = list_arg(&args, 0, f)?;
    let mut best: Option<&CelValue> = None;
    for x in l.iter() {
        best = match best {
            None => Some(x),
            Some(b) => match compare(x, b) {
                Some(o) if o == want => Some(x),
                Some(_) => Some(b),
                None => return Err(err(f, "list elements are not comparable")),
            },
        };
    }
    match best {
        Some(b) => value(b.clone(), f),
        None => Err(err(f, format!("{f} called on empty list"))),
    }
}

fn list_min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    extreme(args, "min", Ordering::Less)
}

fn list_max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    extreme(args, "max", Ordering::Greater)
}

fn list_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let l = list_arg(&args, 0, "indexOf")?;
    let needle = value_arg(&args, 1, "indexOf")?;
    int(l.iter().position(|x| *x == needle).map_or(-1, |i| i as i64))
}

fn list_last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let l = list_arg(&args, 0, "lastIndexOf")?;
    let needle = value_arg(&args, 1, "lastIndexOf")?;
    int(l
        .iter()
        .rposition(|x| *x == needle)
        .map_or(-1, |i| i as i64))
}

/// The compiled regular expression of `pattern`. Rules write their patterns as literals, so the
/// same few patterns come back on every evaluation, and compiling one costs far more than
/// matching it: compiled patterns are kept, up to [`REGEXES_KEPT`] of them (a pattern may also
/// come from the object validated, so the set is bounded; when full it starts afresh).
fn compiled_regex(pattern: &str) -> Result<Arc<regex::Regex>, regex::Error> {
    static REGEXES: LazyLock<Mutex<HashMap<String, Arc<regex::Regex>>>> =
        LazyLock::new(Mutex::default);
    let mut kept = REGEXES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(re) = kept.get(pattern) {
        return Ok(re.clone());
    }
    let re = Arc::new(regex::Regex::new(pattern)?);
    if kept.len() >= REGEXES_KEPT {
        kept.clear();
    }
    kept.insert(pattern.to_owned(), re.clone());
    Ok(re)
}

/// How many compiled patterns [`compiled_regex`] keeps.
const REGEXES_KEPT: usize = 256;

fn regex_arg(args: &[CowVal<'_, '_>], f: &str) -> Result<Arc<regex::Regex>, ExecutionError> {
    compiled_regex(string_arg(args, 1, f)?).map_err(|e| err(f, e))
}

/// The standard library's `matches` (as a function and as a method), with compiled patterns
/// kept; the error of an invalid pattern is worded as the standard library's.
fn re_matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let s = string_arg(&args, 0, "matches")?;
    let pattern = string_arg(&args, 1, "matches")?;
    match compiled_regex(pattern) {
        Ok(re) => boolean(re.is_match(s)),
        Err(e) => Err(err(
            "matches",
            format!("'{pattern}' not a valid regex:\n{e}"),
        )),
    }
}

fn re_find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let re = regex_arg(&args, "find")?;
    let s = string_arg(&args, 0, "find")?;
    string(
        re.find(s)
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
    )
}

fn re_find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let re = regex_arg(&args, "findAll")?;
    let s = string_arg(&args, 0, "findAll")?;
    let limit = match args.get(2).map(|a| CelValue::try_from(a.as_ref())) {
        Some(Ok(CelValue::Int(n))) if n >= 0 => Some(n as usize),
        _ => None,
    };
    let found: Vec<CelValue> = re
        .find_iter(s)
        .take(limit.unwrap_or(usize::MAX))
        .map(|m| CelValue::String(Arc::new(m.as_str().to_string())))
        .collect();
    value(CelValue::List(Arc::new(found)), "findAll")
}

fn sets_contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let a = list_arg(&args, 0, "sets.contains")?;
    let b = list_arg(&args, 1, "sets.contains")?;
    boolean(b.iter().all(|x| a.contains(x)))
}

fn sets_equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let a = list_arg(&args, 0, "sets.equivalent")?;
    let b = list_arg(&args, 1, "sets.equivalent")?;
    boolean(b.iter().all(|x| a.contains(x)) && a.iter().all(|x| b.contains(x)))
}

fn sets_intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let a = list_arg(&args, 0, "sets.intersects")?;
    let b = list_arg(&args, 1, "sets.intersects")?;
    boolean(b.iter().any(|x| a.contains(x)))
}

static QUANTITY_TYPE: Type = Type::new_unspecified_type("kubernetes.Quantity");

/// A `quantity(...)` value, held exactly in nano-units.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Quantity(i128);
opaque_val!(Quantity, QUANTITY_TYPE);

const NANO: i128 = 1_000_000_000;

/// Parses a Kubernetes resource quantity (`500m`, `1.5Gi`, `1e3`, `2k`) into nano-units,
/// rounding sub-nano fractions up as the real parser does.
pub(crate) fn parse_quantity(s: &str) -> Result<i128, String> {
    let bad = || {
        format!(
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {s:?}"
        )
    };
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(bad());
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let digits = format!("{int_part}{frac_part}");
    let mantissa: i128 = digits.parse().map_err(|_| bad())?;
    // value = mantissa * 10^(exp10) * 2^(exp2)
    let mut exp10: i32 = -(frac_part.len() as i32);
    let mut exp2: u32 = 0;
    match suffix {
        "" => {}
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        other => {
            let e = other
                .strip_prefix(['e', 'E'])
                .filter(|e| !e.is_empty())
                .ok_or_else(bad)?;
            exp10 += e.parse::<i32>().map_err(|_| bad())?;
        }
    }
    let overflow = || format!("quantity {s:?} is too large");
    let mut v = mantissa.checked_mul(1i128 << exp2).ok_or_else(overflow)?;
    let scale = exp10 + 9;
    if scale >= 0 {
        v = v
            .checked_mul(10i128.checked_pow(scale as u32).ok_or_else(overflow)?)
            .ok_or_else(overflow)?;
    } else {
        let d = 10i128.checked_pow((-scale) as u32).unwrap_or(i128::MAX);
        v = (v + d - 1) / d;
    }
    Ok(if negative { -v } else { v })
}

fn this_quantity(args: &[CowVal<'_, '_>], f: &str) -> Result<i128, ExecutionError> {
    args.first()
        .and_then(|a| a.downcast_ref::<Quantity>())
        .map(|q| q.0)
        .ok_or_else(|| err(f, "expected a quantity"))
}

/// The second argument as nano-units: a quantity or an integer.
fn other_quantity(args: &[CowVal<'_, '_>], f: &str) -> Result<i128, ExecutionError> {
    if let Some(q) = args.get(1).and_then(|a| a.downcast_ref::<Quantity>()) {
        return Ok(q.0);
    }
    match value_arg(args, 1, f)? {
        CelValue::Int(i) => Ok(i128::from(i) * NANO),
        _ => Err(err(f, "expected a quantity or an int")),
    }
}

fn quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let q = parse_quantity(string_arg(&args, 0, "quantity")?).map_err(|e| err("quantity", e))?;
    Ok(CowVal::owned(Quantity(q)))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(parse_quantity(string_arg(&args, 0, "isQuantity")?).is_ok())
}

fn quantity_is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let q = this_quantity(&args, "isInteger")?;
    boolean(q % NANO == 0 && i64::try_from(q / NANO).is_ok())
}

fn quantity_as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let q = this_quantity(&args, "asInteger")?;
    if q % NANO != 0 {
        return Err(err("asInteger", "cannot convert value to integer"));
    }
    int(i64::try_from(q / NANO).map_err(|_| err("asInteger", "cannot convert value to integer"))?)
}

fn quantity_as_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let q = this_quantity(&args, "asApproximateFloat")?;
    value(
        CelValue::Float(q as f64 / NANO as f64),
        "asApproximateFloat",
    )
}

fn quantity_sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    int(this_quantity(&args, "sign")?.signum() as i64)
}

fn quantity_add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let (a, b) = (this_quantity(&args, "add")?, other_quantity(&args, "add")?);
    Ok(CowVal::owned(Quantity(
        a.checked_add(b).ok_or_else(|| err("add", "overflow"))?,
    )))
}

fn quantity_sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let (a, b) = (this_quantity(&args, "sub")?, other_quantity(&args, "sub")?);
    Ok(CowVal::owned(Quantity(
        a.checked_sub(b).ok_or_else(|| err("sub", "overflow"))?,
    )))
}

fn quantity_less<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(this_quantity(&args, "isLessThan")? < other_quantity(&args, "isLessThan")?)
}

fn quantity_greater<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    boolean(this_quantity(&args, "isGreaterThan")? > other_quantity(&args, "isGreaterThan")?)
}

fn quantity_compare<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let (a, b) = (
        this_quantity(&args, "compareTo")?,
        other_quantity(&args, "compareTo")?,
    );
    int(match a.cmp(&b) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
}

pub(crate) fn register_quantity(env: &mut Env) -> Result<(), DeclarationError> {
    let q = || QUANTITY_TYPE.to_owned();
    env.add_type(q())?;
    env.add_overload(
        "quantity",
        "string_to_quantity",
        vec![STRING_TYPE],
        quantity,
    )?;
    env.add_overload(
        "isQuantity",
        "is_quantity_string",
        vec![STRING_TYPE],
        is_quantity,
    )?;
    for (name, f) in [
        (
            "isInteger",
            quantity_is_integer as cel::common::functions::Function,
        ),
        ("asInteger", quantity_as_integer),
        ("asApproximateFloat", quantity_as_float),
        ("sign", quantity_sign),
    ] {
        env.add_member_overload(name, &format!("quantity_{name}"), q(), vec![], f)?;
    }
    for (name, f) in [
        ("add", quantity_add as cel::common::functions::Function),
        ("sub", quantity_sub),
        ("isLessThan", quantity_less),
        ("isGreaterThan", quantity_greater),
        ("compareTo", quantity_compare),
    ] {
        env.add_member_overload(
            name,
            &format!("quantity_{name}_quantity"),
            q(),
            vec![q()],
            f,
        )?;
        if name == "add" || name == "sub" {
            env.add_member_overload(
                name,
                &format!("quantity_{name}_int"),
                q(),
                vec![INT_TYPE],
                f,
            )?;
        }
    }
    Ok(())
}
