//! A minimal blocking D-Bus client over a unix socket, for the systemd cgroup driver only: SASL
//! EXTERNAL auth, method calls, and the signals a match delivers. No threads, no event loop: a
//! call writes one message and reads until its reply arrives, keeping any signal read meanwhile
//! for [`Bus::wait_signal`]. Only little-endian messages are produced and understood (the daemon
//! answers in the byte order of the host it runs on, which is this one).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What went wrong talking to the bus. `Remote` is an error reply (`org.freedesktop.systemd1.
/// UnitExists`, ...) with the peer's own message.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("connect to {}: {}", path.display(), hako_spec::error::io_text(source))]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{op}: {}", hako_spec::error::io_text(source))]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("authentication refused: {0}")]
    Auth(String),
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("{message}")]
    Remote { name: String, message: String },
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

pub type Result<T> = std::result::Result<T, DbusError>;

/// One D-Bus value. Arrays carry their element signature so an empty one still has a type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Path(String),
    Sig(String),
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::F64(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(e, _) => format!("a{e}"),
            Value::Struct(vs) => {
                format!("({})", vs.iter().map(Value::signature).collect::<String>())
            }
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            Value::Variant(v) => v.as_str(),
            _ => None,
        }
    }

    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }
}

fn align_of(sig: u8) -> usize {
    match sig {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' => 4,
        _ => 8, // x t d ( {
    }
}

/// Length of the first complete type in `sig`.
fn one_type(sig: &[u8]) -> Result<usize> {
    let bad = DbusError::Malformed("signature");
    match sig.first() {
        None => Err(bad),
        Some(b'a') => Ok(1 + one_type(&sig[1..])?),
        Some(&open @ (b'(' | b'{')) => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut i = 1;
            while sig.get(i).ok_or(DbusError::Malformed("signature"))? != &close {
                i += one_type(&sig[i..])?;
            }
            Ok(i + 1)
        }
        Some(_) => Ok(1),
    }
}

#[derive(Default)]
struct Enc {
    buf: Vec<u8>,
}

impl Enc {
    fn pad(&mut self, a: usize) {
        while !self.buf.len().is_multiple_of(a) {
            self.buf.push(0);
        }
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn put(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(*b as u32),
            Value::I32(x) => self.u32(*x as u32),
            Value::U32(x) => self.u32(*x),
            Value::I64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes())
            }
            Value::U64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes())
            }
            Value::F64(x) => {
                self.pad(8);
                self.buf.extend_from_slice(&x.to_le_bytes())
            }
            Value::Str(s) | Value::Path(s) => {
                self.u32(s.len() as u32);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Sig(s) => {
                self.buf.push(s.len() as u8);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Array(elem, vs) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                // The length excludes the padding up to the first element.
                self.pad(align_of(elem.as_bytes()[0]));
                let start = self.buf.len();
                for v in vs {
                    self.put(v);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(vs) => {
                self.pad(8);
                for v in vs {
                    self.put(v);
                }
            }
            Value::Variant(v) => {
                self.put(&Value::Sig(v.signature()));
                self.put(v);
            }
        }
    }
}

struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Dec<'_> {
    fn align(&mut self, a: usize) -> Result<()> {
        self.pos = self.pos.div_ceil(a) * a;
        if self.pos > self.b.len() {
            return Err(DbusError::Malformed("truncated"));
        }
        Ok(())
    }
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or(DbusError::Malformed("truncated"))?;
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64> {
        self.align(8)?;
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn text(&mut self, n: usize) -> Result<String> {
        let s = String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| DbusError::Malformed("string"))?;
        self.take(1)?;
        Ok(s)
    }
    /// Reads one value of the complete type `sig`.
    fn get(&mut self, sig: &[u8]) -> Result<Value> {
        Ok(match sig[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => Value::Bool(self.u32()? != 0),
            b'n' | b'q' => {
                self.align(2)?;
                let v = u16::from_le_bytes(self.take(2)?.try_into().expect("2"));
                Value::U32(v as u32)
            }
            b'i' => Value::I32(self.u32()? as i32),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(self.u64()? as i64),
            b't' => Value::U64(self.u64()?),
            b'd' => Value::F64(f64::from_bits(self.u64()?)),
            b's' | b'o' => {
                let n = self.u32()? as usize;
                let s = self.text(n)?;
                if sig[0] == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let n = self.take(1)?[0] as usize;
                Value::Sig(self.text(n)?)
            }
            b'a' => {
                let n = self.u32()? as usize;
                let elem = &sig[1..1 + one_type(&sig[1..])?];
                self.align(align_of(elem[0]))?;
                let end = self.pos + n;
                let mut vs = Vec::new();
                while self.pos < end {
                    vs.push(self.get(elem)?);
                }
                Value::Array(String::from_utf8_lossy(elem).into_owned(), vs)
            }
            b'(' | b'{' => {
                self.align(8)?;
                let inner = &sig[1..one_type(sig)? - 1];
                let mut vs = Vec::new();
                let mut i = 0;
                while i < inner.len() {
                    let l = one_type(&inner[i..])?;
                    vs.push(self.get(&inner[i..i + l])?);
                    i += l;
                }
                Value::Struct(vs)
            }
            b'v' => {
                let n = self.take(1)?[0] as usize;
                let s = self.text(n)?;
                if one_type(s.as_bytes())? != s.len() {
                    return Err(DbusError::Malformed("variant signature"));
                }
                Value::variant(self.get(s.as_bytes())?)
            }
            _ => return Err(DbusError::Malformed("unknown type")),
        })
    }
    fn all(&mut self, sig: &[u8]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < sig.len() {
            let l = one_type(&sig[i..])?;
            out.push(self.get(&sig[i..i + l])?);
            i += l;
        }
        Ok(out)
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// One received message (the header fields hako looks at, and the decoded body).
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub body: Vec<Value>,
}

fn encode_call(
    serial: u32,
    dest: &str,
    path: &str,
    iface: &str,
    member: &str,
    args: &[Value],
) -> Vec<u8> {
    let mut body = Enc::default();
    for a in args {
        body.put(a);
    }
    let sig: String = args.iter().map(Value::signature).collect();
    let field = |code: u8, v: Value| Value::Struct(vec![Value::Byte(code), Value::variant(v)]);
    let mut fields = vec![
        field(1, Value::Path(path.into())),
        field(2, Value::str(iface)),
        field(3, Value::str(member)),
        field(6, Value::str(dest)),
    ];
    if !sig.is_empty() {
        fields.push(field(8, Value::Sig(sig)));
    }
    let mut m = Enc::default();
    m.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    m.u32(body.buf.len() as u32);
    m.u32(serial);
    m.put(&Value::Array("(yv)".into(), fields));
    m.pad(8);
    m.buf.extend_from_slice(&body.buf);
    m.buf
}

fn decode(msg: &[u8]) -> Result<Message> {
    let mut d = Dec { b: msg, pos: 12 };
    let Value::Array(_, fields) = d.get(b"a(yv)")? else {
        unreachable!("an array signature decodes to an array")
    };
    d.align(8)?;
    let body_at = d.pos;
    let mut m = Message {
        kind: msg[1],
        ..Default::default()
    };
    let mut sig = String::new();
    for f in fields {
        let Value::Struct(f) = f else { continue };
        let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (f.first(), f.get(1)) else {
            continue;
        };
        let s = v.as_str().map(str::to_string);
        match code {
            2 => m.interface = s,
            3 => m.member = s,
            4 => m.error_name = s,
            5 => {
                if let Value::U32(r) = **v {
                    m.reply_serial = Some(r)
                }
            }
            8 => sig = s.unwrap_or_default(),
            _ => {}
        }
    }
    m.body = Dec {
        b: &msg[body_at..],
        pos: 0,
    }
    .all(sig.as_bytes())?;
    Ok(m)
}

/// A connection to one bus (the system bus, or a user instance's bus).
pub struct Bus {
    sock: UnixStream,
    serial: u32,
    /// Signals read while waiting for a reply, oldest first.
    signals: Vec<Message>,
}

/// How long any one call may take before the caller is told: systemd answers in milliseconds
/// unless it is wedged.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Bus {
    /// Connects to the unix socket `path`, authenticates as the effective uid (SASL EXTERNAL:
    /// the daemon checks it against the socket's peer credentials) and says Hello.
    pub fn connect(path: &Path) -> Result<Bus> {
        Bus::connect_as(path, nix::unistd::geteuid().as_raw())
    }

    /// [`Bus::connect`], claiming `uid`: the caller's uid as the daemon sees it, which differs
    /// from the effective uid inside a user namespace (the daemon reads the peer's credentials
    /// in its own namespace).
    pub fn connect_as(path: &Path, uid: u32) -> Result<Bus> {
        let sock = UnixStream::connect(path).map_err(|source| DbusError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let io = |op| move |source| DbusError::Io { op, source };
        sock.set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(io("set timeout"))?;
        let uid = uid.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        let mut bus = Bus {
            sock,
            serial: 0,
            signals: Vec::new(),
        };
        bus.sock
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .map_err(io("write auth"))?;
        let line = bus.read_line()?;
        if !line.starts_with("OK ") {
            return Err(DbusError::Auth(line));
        }
        bus.sock.write_all(b"BEGIN\r\n").map_err(io("write auth"))?;
        bus.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        )?;
        Ok(bus)
    }

    /// One auth reply line. Read in chunks, not byte by byte (each read is a syscall, ~40 for
    /// the OK line): the server sends nothing past it until the client's next command, so a
    /// chunk that holds more than one line is a protocol error.
    fn read_line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        let mut buf = [0u8; 256];
        while !line.ends_with(b"\r\n") {
            match self.sock.read(&mut buf) {
                Ok(0) => return Err(DbusError::Auth("connection closed".into())),
                Ok(n) => line.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(DbusError::Io {
                        op: "read auth",
                        source,
                    })
                }
            }
            if line.len() > 4096 {
                return Err(DbusError::Auth("line too long".into()));
            }
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        if text.contains('\n') {
            return Err(DbusError::Auth(format!(
                "unexpected data after the reply: {text:?}"
            )));
        }
        Ok(text)
    }

    /// Reads one whole message, waiting until `deadline`.
    fn read_message(&mut self, deadline: Instant, what: &str) -> Result<Message> {
        let mut fixed = [0u8; 16];
        self.read_exact(&mut fixed, deadline, what)?;
        if fixed[0] != b'l' {
            return Err(DbusError::Malformed("big-endian message"));
        }
        let body_len = u32::from_le_bytes(fixed[4..8].try_into().expect("4")) as usize;
        let fields_len = u32::from_le_bytes(fixed[12..16].try_into().expect("4")) as usize;
        let header = (16 + fields_len).div_ceil(8) * 8;
        let total = header + body_len;
        if total > 128 << 20 {
            return Err(DbusError::Malformed("message too large"));
        }
        let mut msg = vec![0u8; total];
        msg[..16].copy_from_slice(&fixed);
        self.read_exact(&mut msg[16..], deadline, what)?;
        decode(&msg)
    }

    fn read_exact(&mut self, buf: &mut [u8], deadline: Instant, what: &str) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbusError::Timeout(what.to_string()));
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(|source| DbusError::Io {
                    op: "set timeout",
                    source,
                })?;
            match self.sock.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(DbusError::Io {
                        op: "read from the bus",
                        source: std::io::ErrorKind::UnexpectedEof.into(),
                    })
                }
                Ok(n) => got += n,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Err(DbusError::Timeout(what.to_string()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(DbusError::Io {
                        op: "read from the bus",
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Calls `iface.member` on `dest` at `path` and returns the reply's body. An error reply is
    /// `DbusError::Remote`.
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Vec<Value>> {
        self.serial += 1;
        let serial = self.serial;
        let msg = encode_call(serial, dest, path, iface, member, args);
        self.sock.write_all(&msg).map_err(|source| DbusError::Io {
            op: "write to the bus",
            source,
        })?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let m = self.read_message(deadline, &format!("the reply to {member}"))?;
            match m.kind {
                SIGNAL => self.signals.push(m),
                METHOD_RETURN | ERROR if m.reply_serial == Some(serial) => {
                    if m.kind == ERROR {
                        return Err(DbusError::Remote {
                            name: m.error_name.unwrap_or_default(),
                            message: m
                                .body
                                .first()
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        });
                    }
                    return Ok(m.body);
                }
                _ => {}
            }
        }
    }

    /// Subscribes this connection to the signals `rule` matches (bus match rule syntax).
    pub fn add_match(&mut self, rule: &str) -> Result<()> {
        self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            &[Value::str(rule)],
        )
        .map(drop)
    }

    /// The first signal (already read, or arriving before `deadline`) that `pick` accepts; the
    /// others are dropped. `what` names it in the timeout error.
    pub fn wait_signal<T>(
        &mut self,
        deadline: Instant,
        what: &str,
        mut pick: impl FnMut(&Message) -> Option<T>,
    ) -> Result<T> {
        for m in std::mem::take(&mut self.signals) {
            if let Some(t) = pick(&m) {
                return Ok(t);
            }
        }
        loop {
            let m = self.read_message(deadline, what)?;
            if m.kind == SIGNAL {
                if let Some(t) = pick(&m) {
                    return Ok(t);
                }
            }
        }
    }
}

/// The system bus's socket: `DBUS_SYSTEM_BUS_ADDRESS` (its first `unix:path=`) when set, as
/// libdbus and godbus read it, else the well-known path.
pub fn system_bus_path() -> PathBuf {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .and_then(|a| unix_path(&a))
        .unwrap_or_else(|| PathBuf::from("/run/dbus/system_bus_socket"))
}

/// The first `unix:path=...` of a D-Bus address list.
pub fn unix_path(addr: &str) -> Option<PathBuf> {
    addr.split(';').find_map(|a| {
        let rest = a.strip_prefix("unix:")?;
        rest.split(',')
            .find_map(|kv| kv.strip_prefix("path="))
            .map(PathBuf::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_start_transient_unit_arguments() {
        let args = vec![
            Value::str("hako-c1.scope"),
            Value::str("replace"),
            Value::Array(
                "(sv)".into(),
                vec![
                    Value::Struct(vec![
                        Value::str("PIDs"),
                        Value::variant(Value::Array("u".into(), vec![Value::U32(42)])),
                    ]),
                    Value::Struct(vec![
                        Value::str("MemoryMax"),
                        Value::variant(Value::U64(1 << 30)),
                    ]),
                    Value::Struct(vec![
                        Value::str("AllowedCPUs"),
                        Value::variant(Value::Array("y".into(), vec![Value::Byte(3)])),
                    ]),
                ],
            ),
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let msg = encode_call(7, "d", "/p", "i.f", "M", &args);
        let m = decode(&msg).unwrap();
        assert_eq!(m.member.as_deref(), Some("M"));
        assert_eq!(m.body, args);
    }

    #[test]
    fn signatures_nest() {
        assert_eq!(one_type(b"a(sa(sv))s").unwrap(), 9);
        assert_eq!(one_type(b"a{sv}").unwrap(), 5);
        assert!(one_type(b"(s").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            unix_path("unix:path=/run/x;tcp:host=h"),
            Some(PathBuf::from("/run/x"))
        );
        assert_eq!(unix_path("unix:abstract=/x"), None);
    }
}
