//! Deterministic mutations of JSON documents for tests/fuzz.rs: a seeded xorshift generator (the
//! failing case is reproducible from the seed printed with it) and structure-aware mutations of
//! a valid document — replace any node with a value of another type or an edge value, drop or
//! add keys, duplicate or empty arrays — plus byte-level damage of the text.

use serde_json::{json, Map, Value};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Values chosen for the edges parsers and validators get wrong.
pub fn edge_value(r: &mut Rng) -> Value {
    match r.below(24) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(false),
        3 => json!(0),
        4 => json!(-1),
        5 => json!(i64::MIN),
        6 => json!(u64::MAX),
        7 => json!(1.5e300),
        8 => json!(4294967296u64),
        9 => json!(""),
        10 => json!("/"),
        11 => json!("../../../../etc"),
        12 => json!("a\u{0}b"),
        13 => json!("x".repeat(5000)),
        14 => json!("\u{feff}ü\u{1F600}"),
        15 => json!([]),
        16 => json!({}),
        17 => json!([null, 1, "a"]),
        18 => json!({"unknownKey": 1}),
        19 => json!(-0.0),
        20 => json!("rw,nosuid,bogus=1"),
        21 => json!(["CAP_BOGUS"]),
        22 => json!(65535),
        _ => json!(r.next_u64() as i64),
    }
}

/// Visits every node, counting them.
fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// Applies `f` to the `n`th node (pre-order); true once done.
fn with_nth(v: &mut Value, n: &mut usize, f: &mut dyn FnMut(&mut Value)) -> bool {
    if *n == 0 {
        f(v);
        return true;
    }
    *n -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|c| with_nth(c, n, f)),
        Value::Object(o) => o.values_mut().any(|c| with_nth(c, n, f)),
        _ => false,
    }
}

/// One structural mutation of `doc` in place.
pub fn mutate(doc: &mut Value, r: &mut Rng) {
    let mut n = r.below(count(doc));
    with_nth(doc, &mut n, &mut |node| mutate_node(node, r));
}

fn mutate_node(node: &mut Value, r: &mut Rng) {
    match r.below(6) {
        0 | 1 => *node = edge_value(r),
        2 => match node {
            Value::Object(o) if !o.is_empty() => {
                let k = o.keys().nth(r.below(o.len())).cloned().expect("key");
                o.remove(&k);
            }
            Value::Array(a) if !a.is_empty() => {
                let i = r.below(a.len());
                a.remove(i);
            }
            _ => *node = edge_value(r),
        },
        3 => match node {
            Value::Object(o) => {
                let k = format!("fuzz{}", r.below(100));
                o.insert(k, edge_value(r));
            }
            Value::Array(a) => {
                let i = r.below(a.len());
                let dup = a.get(i).cloned().unwrap_or_else(|| edge_value(r));
                a.push(dup);
            }
            _ => *node = edge_value(r),
        },
        4 => match node {
            Value::Array(a) => a.clear(),
            Value::Object(o) => *o = Map::new(),
            _ => *node = edge_value(r),
        },
        _ => {
            *node = match node.take() {
                Value::String(s) => json!(s.len()),
                Value::Number(x) => json!(x.to_string()),
                Value::Bool(b) => json!(b as u8),
                other => json!([other]),
            }
        }
    }
}

/// `doc` after 1–4 mutations, as text; sometimes the text itself is damaged too.
pub fn mutated_text(base: &Value, r: &mut Rng) -> String {
    let mut doc = base.clone();
    for _ in 0..1 + r.below(4) {
        mutate(&mut doc, r);
    }
    let mut text = serde_json::to_string(&doc).expect("serializes");
    if r.chance(8) {
        let mut bytes = text.into_bytes();
        match r.below(3) {
            0 => bytes.truncate(r.below(bytes.len())),
            1 => {
                let i = r.below(bytes.len());
                bytes[i] = (r.next_u64() & 0xff) as u8;
            }
            _ => {
                let i = r.below(bytes.len());
                bytes.insert(i, b"{}[],:\"\\"[r.below(8)]);
            }
        }
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}
