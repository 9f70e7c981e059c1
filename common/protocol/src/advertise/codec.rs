//! Advertise request and reply messages (SEATTLE.md C.2 TCP, C.4 UDP), both directions.
//!
//! Client side: [`encode_request`] / [`encode_udp_request`] write byte-for-byte what
//! `centralizedadvertise*.r2py` and `udpcentralizedadvertise.r2py` send; the `decode_*_reply`
//! functions apply the checks those clients apply. Server side (for the simulator):
//! [`decode_request`] / [`decode_udp_request`] reject what `advertiseserver_v2.r2py` rejects
//! (it then closes without answering), and `encode_*_reply` write its answers.
//!
//! All payloads here are bare `serialize` encodings; TCP adds session framing on top.

use num_bigint::{BigInt, Sign};
use num_traits::ToPrimitive;

use crate::serialize::{self, DecodeError, Value};

/// Number of values the stock client asks for.
pub const DEFAULT_MAXVALS: u64 = 100;

/// An advertise request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `('PUT', key, value, ttl)`: store `value` under `key` for `ttl` seconds.
    Put {
        /// Key bytes (`str(key)` on the Python side).
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
        /// Seconds, ≥ 1 (larger Python longs saturate at `u64::MAX`).
        ttl: u64,
    },
    /// `('GET', key, maxvals)`: up to `maxvals` values stored under `key`.
    Get {
        /// Key bytes.
        key: Vec<u8>,
        /// ≥ 1 (larger Python longs saturate at `u64::MAX`).
        maxvals: u64,
    },
}

impl Request {
    fn to_items(&self) -> Vec<Value> {
        match self {
            Request::Put { key, value, ttl } => vec![
                Value::str("PUT"),
                Value::Str(key.clone()),
                Value::Str(value.clone()),
                Value::Int(BigInt::from(*ttl)),
            ],
            Request::Get { key, maxvals } => vec![
                Value::str("GET"),
                Value::Str(key.clone()),
                Value::Int(BigInt::from(*maxvals)),
            ],
        }
    }
}

/// TCP request payload (before session framing).
pub fn encode_request(request: &Request) -> Vec<u8> {
    serialize::encode(&Value::Tuple(request.to_items()))
}

/// UDP request datagram: the TCP tuple plus the request id as a last element.
pub fn encode_udp_request(request: &Request, request_id: u64) -> Vec<u8> {
    let mut items = request.to_items();
    items.push(Value::Int(BigInt::from(request_id)));
    serialize::encode(&Value::Tuple(items))
}

/// Why a reply is not what the stock client accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplyError {
    /// Not a `serialize` encoding.
    #[error("reply is not a serialize encoding: {0}")]
    Undecodable(#[from] DecodeError),
    /// Decodes, but not to the expected shape.
    #[error("unexpected reply shape: {0}")]
    Shape(&'static str),
    /// The server answered with something other than `'OK'`.
    #[error("server answered with an error")]
    NotOk,
    /// UDP: the reply carries another request's id.
    #[error("reply for another request id")]
    WrongId,
}

impl ReplyError {
    /// A bounded snake_case word for metrics labels. An answer that is not `OK` is a
    /// `bad_reply` too: the catalogue's advertise module has no `error_reply`.
    pub fn reason(&self) -> &'static str {
        match self {
            ReplyError::Undecodable(e) if e.reason() == "too_large" => "too_large",
            _ => "bad_reply",
        }
    }
}

fn is_ok_str(v: &Value) -> bool {
    v.as_bytes() == Some(b"OK".as_slice())
}

/// A PUT reply must decode to `'OK'`.
pub fn decode_put_reply(payload: &[u8]) -> Result<(), ReplyError> {
    match serialize::decode(payload)? {
        v if is_ok_str(&v) => Ok(()),
        Value::Str(_) => Err(ReplyError::NotOk),
        _ => Err(ReplyError::Shape("PUT reply is not a str")),
    }
}

/// A GET reply must decode to `('OK', [str, …])`; returns the values in server order.
pub fn decode_get_reply(payload: &[u8]) -> Result<Vec<Vec<u8>>, ReplyError> {
    let Value::Tuple(items) = serialize::decode(payload)? else {
        return Err(ReplyError::Shape("GET reply is not a tuple"));
    };
    let [status, values] = <[Value; 2]>::try_from(items)
        .map_err(|_| ReplyError::Shape("GET reply is not a 2-tuple"))?;
    if !is_ok_str(&status) {
        return Err(ReplyError::NotOk);
    }
    string_list(values)
}

fn string_list(values: Value) -> Result<Vec<Vec<u8>>, ReplyError> {
    let Value::List(values) = values else {
        return Err(ReplyError::Shape("GET reply values are not a list"));
    };
    values
        .into_iter()
        .map(|v| match v {
            Value::Str(s) => Ok(s),
            _ => Err(ReplyError::Shape("GET reply value is not a str")),
        })
        .collect()
}

fn id_matches(v: &Value, request_id: u64) -> bool {
    matches!(v, Value::Int(i) if i.to_u64() == Some(request_id))
}

/// UDP PUT reply `('OK', id)`.
pub fn decode_udp_put_reply(payload: &[u8], request_id: u64) -> Result<(), ReplyError> {
    let Value::Tuple(items) = serialize::decode(payload)? else {
        return Err(ReplyError::Shape("UDP PUT reply is not a tuple"));
    };
    let [status, id] = <[Value; 2]>::try_from(items)
        .map_err(|_| ReplyError::Shape("UDP PUT reply is not a 2-tuple"))?;
    if status.as_bytes().is_none() {
        return Err(ReplyError::Shape("UDP PUT reply status is not a str"));
    }
    if !id_matches(&id, request_id) {
        return Err(ReplyError::WrongId);
    }
    if !is_ok_str(&status) {
        return Err(ReplyError::NotOk);
    }
    Ok(())
}

/// UDP GET reply `('OK', [str, …], id)`.
pub fn decode_udp_get_reply(payload: &[u8], request_id: u64) -> Result<Vec<Vec<u8>>, ReplyError> {
    let Value::Tuple(items) = serialize::decode(payload)? else {
        return Err(ReplyError::Shape("UDP GET reply is not a tuple"));
    };
    let [status, values, id] = <[Value; 3]>::try_from(items)
        .map_err(|_| ReplyError::Shape("UDP GET reply is not a 3-tuple"))?;
    if !id_matches(&id, request_id) {
        return Err(ReplyError::WrongId);
    }
    if !is_ok_str(&status) {
        return Err(ReplyError::NotOk);
    }
    string_list(values)
}

/// Why a server rejects a request (the real server then closes without answering).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// Not a `serialize` encoding.
    #[error("request is not a serialize encoding: {0}")]
    Undecodable(#[from] DecodeError),
    /// Not a tuple (a list is not enough).
    #[error("request is not a tuple")]
    NotTuple,
    /// First element is not `'PUT'` or `'GET'` (or missing).
    #[error("unknown request type")]
    UnknownOp,
    /// Wrong number of elements for the operation.
    #[error("wrong number of request fields")]
    WrongArity,
    /// Key/value not `str`, or ttl/maxvals not `int`/`long` (a bool is neither).
    #[error("request field of the wrong type")]
    WrongType,
    /// ttl or maxvals ≤ 0.
    #[error("ttl or maxvals not positive")]
    NotPositive,
}

impl RequestError {
    /// A bounded snake_case word for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::Undecodable(_) => "bad_encoding",
            _ => "bad_request",
        }
    }
}

fn positive(v: &Value) -> Result<u64, RequestError> {
    match v {
        Value::Int(i) if i.sign() == Sign::Plus => Ok(i.to_u64().unwrap_or(u64::MAX)),
        Value::Int(_) => Err(RequestError::NotPositive),
        _ => Err(RequestError::WrongType),
    }
}

fn str_field(v: Value) -> Result<Vec<u8>, RequestError> {
    match v {
        Value::Str(s) => Ok(s),
        _ => Err(RequestError::WrongType),
    }
}

/// Splits a request tuple into its operation and fields, given how many trailing fields (the
/// UDP request id) follow the TCP fields.
fn parse_request(payload: &[u8], extra: usize) -> Result<(Request, Vec<Value>), RequestError> {
    let Value::Tuple(mut items) = serialize::decode(payload)? else {
        return Err(RequestError::NotTuple);
    };
    let op = match items.first() {
        Some(v) if v.as_bytes() == Some(b"PUT".as_slice()) => "PUT",
        Some(v) if v.as_bytes() == Some(b"GET".as_slice()) => "GET",
        _ => return Err(RequestError::UnknownOp),
    };
    let fields = if op == "PUT" { 3 } else { 2 };
    if items.len() != 1 + fields + extra {
        return Err(RequestError::WrongArity);
    }
    let trailing = items.split_off(1 + fields);
    let mut it = items.into_iter().skip(1);
    let mut next = || it.next().ok_or(RequestError::WrongArity);
    let request = if op == "PUT" {
        let key = str_field(next()?)?;
        let value = str_field(next()?)?;
        let ttl = positive(&next()?)?;
        Request::Put { key, value, ttl }
    } else {
        let key = str_field(next()?)?;
        let maxvals = positive(&next()?)?;
        Request::Get { key, maxvals }
    };
    Ok((request, trailing))
}

/// Server side: a TCP request as `advertiseserver_v2.r2py` accepts it.
pub fn decode_request(payload: &[u8]) -> Result<Request, RequestError> {
    parse_request(payload, 0).map(|(r, _)| r)
}

/// Server side: a UDP request and its request id (any value; it is echoed back).
pub fn decode_udp_request(payload: &[u8]) -> Result<(Request, Value), RequestError> {
    let (request, mut trailing) = parse_request(payload, 1)?;
    let id = trailing.pop().ok_or(RequestError::WrongArity)?;
    Ok((request, id))
}

/// Server side: the PUT answer `'OK'`.
pub fn encode_put_reply() -> Vec<u8> {
    b"SOK".to_vec()
}

fn values_list<V: AsRef<[u8]>>(values: &[V]) -> Value {
    Value::List(
        values
            .iter()
            .map(|v| Value::Str(v.as_ref().to_vec()))
            .collect(),
    )
}

/// Server side: the GET answer `('OK', [values])`.
pub fn encode_get_reply<V: AsRef<[u8]>>(values: &[V]) -> Vec<u8> {
    serialize::encode(&Value::Tuple(vec![Value::str("OK"), values_list(values)]))
}

/// Server side: the UDP PUT answer `('OK', id)`.
pub fn encode_udp_put_reply(request_id: &Value) -> Vec<u8> {
    serialize::encode(&Value::Tuple(vec![Value::str("OK"), request_id.clone()]))
}

/// Server side: the UDP GET answer `('OK', [values], id)`.
pub fn encode_udp_get_reply<V: AsRef<[u8]>>(values: &[V], request_id: &Value) -> Vec<u8> {
    serialize::encode(&Value::Tuple(vec![
        Value::str("OK"),
        values_list(values),
        request_id.clone(),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        let put = Request::Put {
            key: b"golden-key".to_vec(),
            value: b"10.0.0.1:1224".to_vec(),
            ttl: 600,
        };
        assert_eq!(
            encode_request(&put),
            b"T4:SPUT11:Sgolden-key14:S10.0.0.1:12244:I6000:"
        );
        assert_eq!(decode_request(&encode_request(&put)), Ok(put));
        assert_eq!(
            decode_get_reply(b"T3:SOK37:L14:S10.0.0.1:122414:S10.0.0.2:28880:0:").unwrap(),
            vec![b"10.0.0.1:1224".to_vec(), b"10.0.0.2:2888".to_vec()]
        );
        assert_eq!(decode_put_reply(b"SOK"), Ok(()));
        assert_eq!(decode_put_reply(b"SNO"), Err(ReplyError::NotOk));
        assert_eq!(decode_get_reply(b"T3:SNO3:L0:0:"), Err(ReplyError::NotOk));
        assert!(matches!(
            decode_get_reply(b"T3:SOK2:I10:"),
            Err(ReplyError::Shape(_))
        ));
        assert!(matches!(
            decode_get_reply(b"T3:SOK7:L2:I10:0:"),
            Err(ReplyError::Shape(_))
        ));
    }

    #[test]
    fn bool_is_not_an_int_for_the_server() {
        assert_eq!(
            decode_request(b"T4:SGET2:Sk2:BT0:"),
            Err(RequestError::WrongType)
        );
        assert_eq!(decode_request(b"T0:"), Err(RequestError::UnknownOp));
    }
}
