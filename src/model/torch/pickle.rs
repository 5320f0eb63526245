//! A pickle reader that never executes anything: it runs the pickle machine (protocols
//! 0–5) into a plain value tree. A global is two strings, a call (`REDUCE`, `NEWOBJ`) or a
//! `BUILD` is recorded as data, a persistent id is kept as its value; nothing is resolved
//! to behaviour. Objects live in one flat arena (`Obj` ids), so a memo entry fetched again
//! costs nothing (no memo bomb), dropping the tree never recurses, and every length is
//! checked against the bytes that remain before anything is allocated.

use std::collections::HashMap;

/// The most objects (containers, calls) one pickle may create.
const MAX_OBJECTS: usize = 10_000_000;

/// A value on the machine's stack.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// `module.name`, never resolved.
    Global(String, String),
    /// A container or call in the arena.
    Obj(usize),
}

/// What an arena slot holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Obj {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `callable(*args)` (`REDUCE`, `NEWOBJ`, `INST`, `OBJ`), its `BUILD` state, and the
    /// items and elements set on it afterwards (an `OrderedDict()`'s `SETITEMS`).
    Call {
        callable: Value,
        args: Value,
        state: Option<Value>,
        items: Vec<(Value, Value)>,
        list: Vec<Value>,
    },
    /// A persistent id (torch: a storage reference).
    Persistent(Value),
}

/// A parsed pickle: the arena and the value `STOP` returned.
#[derive(Debug, Default)]
pub struct Pickle {
    pub objects: Vec<Obj>,
    pub root: Option<Value>,
}

impl Pickle {
    /// The arena object a value refers to.
    #[must_use]
    pub fn obj(&self, v: &Value) -> Option<&Obj> {
        match v {
            Value::Obj(i) => self.objects.get(*i),
            _ => None,
        }
    }

    /// The elements of a tuple or list.
    #[must_use]
    pub fn seq(&self, v: &Value) -> Option<&[Value]> {
        match self.obj(v)? {
            Obj::Tuple(t) | Obj::List(t) => Some(t),
            _ => None,
        }
    }

    /// The entries of a dict, or the items set on an object (an `OrderedDict`).
    #[must_use]
    pub fn entries(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match self.obj(v)? {
            Obj::Dict(d) | Obj::Call { items: d, .. } => Some(d),
            _ => None,
        }
    }
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pickle: {0}")]
pub struct PickleError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError(m.into()))
}

/// A stack entry: a value, or the `MARK` sentinel.
#[derive(Clone, Debug)]
enum Slot {
    Mark,
    Value(Value),
}

struct Machine<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<Slot>,
    memo: HashMap<u64, Value>,
    out: Pickle,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else { return err(format!("cut short: {n} bytes wanted at {}", self.at)) };
        let s = self.data.get(self.at..end).unwrap_or_default();
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    fn len_u32(&mut self) -> Result<usize, PickleError> {
        Ok(u32::from_le_bytes(self.le::<4>()?) as usize)
    }

    fn len_u64(&mut self) -> Result<usize, PickleError> {
        usize::try_from(u64::from_le_bytes(self.le::<8>()?)).or_else(|_| err("length beyond memory"))
    }

    /// A text line (protocol 0 arguments), without its newline.
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = self.data.get(self.at..).unwrap_or_default();
        let Some(n) = rest.iter().position(|&b| b == b'\n') else { return err("unterminated line") };
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.at += 1;
        Ok(s)
    }

    fn text(&mut self, n: usize) -> Result<String, PickleError> {
        String::from_utf8(self.take(n)?.to_vec()).or_else(|_| err("a string is not UTF-8"))
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Slot::Value(v));
    }

    fn alloc(&mut self, o: Obj) -> Result<Value, PickleError> {
        if self.out.objects.len() >= MAX_OBJECTS {
            return err(format!("more than {MAX_OBJECTS} objects"));
        }
        self.out.objects.push(o);
        Ok(Value::Obj(self.out.objects.len() - 1))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(Slot::Value(v)) => Ok(v),
            Some(Slot::Mark) => err("a mark where a value was expected"),
            None => err("stack underflow"),
        }
    }

    fn top(&self) -> Result<&Value, PickleError> {
        match self.stack.last() {
            Some(Slot::Value(v)) => Ok(v),
            _ => err("stack underflow"),
        }
    }

    /// The values above the topmost mark (the mark removed).
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(m) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else { return err("no mark") };
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items.into_iter().filter_map(|s| if let Slot::Value(v) = s { Some(v) } else { None }).collect())
    }

    /// The memo key of a `PUT`/`GET` opcode: a byte, a u32, a text line, or (`MEMOIZE`)
    /// the next free one.
    fn memo_key(&mut self, op: u8) -> Result<u64, PickleError> {
        match op {
            b'q' | b'h' => Ok(u64::from(self.byte()?)),
            b'r' | b'j' => Ok(u64::from(u32::from_le_bytes(self.le::<4>()?))),
            b'p' | b'g' => {
                let l = self.line()?;
                l.trim().parse().or_else(|_| err(format!("bad memo key {l:?}")))
            }
            _ => Ok(self.memo.len() as u64),
        }
    }

    fn memo_put(&mut self, k: u64) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(k, v);
        Ok(())
    }

    fn memo_get(&mut self, k: u64) -> Result<(), PickleError> {
        let Some(v) = self.memo.get(&k).cloned() else { return err(format!("memo {k} was never set")) };
        self.push(v);
        Ok(())
    }

    /// Appends `values` to the list (or object) `target`.
    fn extend(&mut self, target: &Value, values: Vec<Value>) -> Result<(), PickleError> {
        match target {
            Value::Obj(i) => match self.out.objects.get_mut(*i) {
                Some(Obj::List(l) | Obj::Call { list: l, .. }) => {
                    l.extend(values);
                    Ok(())
                }
                _ => err("APPEND to something that is not a list"),
            },
            _ => err("APPEND to something that is not a list"),
        }
    }

    fn set_items(&mut self, target: &Value, kv: Vec<Value>) -> Result<(), PickleError> {
        if !kv.len().is_multiple_of(2) {
            return err("SETITEMS with an odd number of values");
        }
        let mut pairs = Vec::with_capacity(kv.len() / 2);
        let mut it = kv.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        match target {
            Value::Obj(i) => match self.out.objects.get_mut(*i) {
                Some(Obj::Dict(d) | Obj::Call { items: d, .. }) => {
                    d.extend(pairs);
                    Ok(())
                }
                _ => err("SETITEM on something that is not a dict"),
            },
            _ => err("SETITEM on something that is not a dict"),
        }
    }

    fn call(&mut self, callable: Value, args: Value) -> Result<(), PickleError> {
        let v = self.alloc(Obj::Call { callable, args, state: None, items: Vec::new(), list: Vec::new() })?;
        self.push(v);
        Ok(())
    }

    #[allow(clippy::too_many_lines, clippy::cast_possible_wrap)]
    fn run(mut self) -> Result<Pickle, PickleError> {
        loop {
            let op = self.byte()?;
            match op {
                0x80 => {
                    let proto = self.byte()?;
                    if proto > 5 {
                        return err(format!("protocol {proto} is newer than 5"));
                    }
                }
                0x95 => {
                    self.le::<8>()?; // FRAME: a length hint
                }
                b'.' => {
                    self.out.root = Some(self.pop()?);
                    return Ok(self.out);
                }
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le::<4>()?);
                    self.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le::<2>()?);
                    self.push(Value::Int(i64::from(v)));
                }
                0x8a => {
                    // LONG1: little-endian two's complement, at most 8 bytes kept
                    let n = usize::from(self.byte()?);
                    let b = self.take(n)?.to_vec();
                    if n > 8 {
                        return err("an integer wider than 64 bits");
                    }
                    let mut v: i64 = 0;
                    for (k, byte) in b.iter().enumerate() {
                        v |= i64::from(*byte) << (8 * k);
                    }
                    if n > 0 && n < 8 && b.last().is_some_and(|&x| x & 0x80 != 0) {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Value::Int(v));
                }
                0x8b => return err("LONG4 integers are not read"),
                b'I' => {
                    let l = self.line()?;
                    let v = match l.as_str() {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        s => Value::Int(s.trim().parse().or_else(|_| err(format!("bad INT {s:?}")))?),
                    };
                    self.push(v);
                }
                b'L' => {
                    let l = self.line()?;
                    let v = l.trim_end_matches('L').parse().or_else(|_| err(format!("bad LONG {l:?}")))?;
                    self.push(Value::Int(v));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le::<8>()?);
                    self.push(Value::Float(v));
                }
                b'F' => {
                    let l = self.line()?;
                    let v = l.trim().parse().or_else(|_| err(format!("bad FLOAT {l:?}")))?;
                    self.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.len_u32()?;
                    let s = self.text(n)?;
                    self.push(Value::Str(s));
                }
                0x8c => {
                    let n = usize::from(self.byte()?);
                    let s = self.text(n)?;
                    self.push(Value::Str(s));
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let s = self.text(n)?;
                    self.push(Value::Str(s));
                }
                b'V' => {
                    let s = self.line()?;
                    self.push(Value::Str(s));
                }
                b'S' => {
                    let s = self.line()?;
                    self.push(Value::Str(s.trim_matches(|c| c == '\'' || c == '"').to_string()));
                }
                b'T' | b'B' => {
                    let n = self.len_u32()?;
                    let b = self.take(n)?.to_vec();
                    self.push(if op == b'T' {
                        Value::Str(String::from_utf8_lossy(&b).into_owned())
                    } else {
                        Value::Bytes(b)
                    });
                }
                b'U' | b'C' => {
                    let n = usize::from(self.byte()?);
                    let b = self.take(n)?.to_vec();
                    self.push(if op == b'U' {
                        Value::Str(String::from_utf8_lossy(&b).into_owned())
                    } else {
                        Value::Bytes(b)
                    });
                }
                0x8e | 0x96 => {
                    let n = self.len_u64()?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b')' => {
                    let v = self.alloc(Obj::Tuple(Vec::new()))?;
                    self.push(v);
                }
                // TUPLE, and FROZENSET (kept as a tuple)
                b't' | 0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Obj::Tuple(items))?;
                    self.push(v);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return err("stack underflow");
                    }
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let v = self.alloc(Obj::Tuple(items))?;
                    self.push(v);
                }
                b']' => {
                    let v = self.alloc(Obj::List(Vec::new()))?;
                    self.push(v);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Obj::List(items))?;
                    self.push(v);
                }
                b'}' => {
                    let v = self.alloc(Obj::Dict(Vec::new()))?;
                    self.push(v);
                }
                b'd' => {
                    let kv = self.pop_mark()?;
                    let v = self.alloc(Obj::Dict(Vec::new()))?;
                    self.set_items(&v, kv)?;
                    self.push(v);
                }
                0x8f => {
                    // EMPTY_SET: kept as a list
                    let v = self.alloc(Obj::List(Vec::new()))?;
                    self.push(v);
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?.clone();
                    self.extend(&target, vec![v])?;
                }
                // APPENDS, and ADDITEMS (sets kept as lists)
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.extend(&target, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, vec![k, v])?;
                }
                b'u' => {
                    let kv = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, kv)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(m), Value::Str(n)) = (module, name) else {
                        return err("STACK_GLOBAL of something that is not two strings");
                    };
                    self.push(Value::Global(m, n));
                }
                // REDUCE, and NEWOBJ (`cls.__new__(cls, *args)`): both recorded as calls
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.call(callable, args)?;
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.call(cls, args)?;
                }
                b'i' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let items = self.pop_mark()?;
                    let args = self.alloc(Obj::Tuple(items))?;
                    self.call(Value::Global(module, name), args)?;
                }
                b'o' => {
                    let mut items = self.pop_mark()?.into_iter();
                    let Some(cls) = items.next() else { return err("OBJ without a class") };
                    let args = self.alloc(Obj::Tuple(items.collect()))?;
                    self.call(cls, args)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?.clone();
                    match &target {
                        Value::Obj(i) => match self.out.objects.get_mut(*i) {
                            Some(Obj::Call { state: s, .. }) => *s = Some(state),
                            // BUILD on a plain container: the state replaces nothing we read
                            Some(_) => {}
                            None => return err("BUILD on a missing object"),
                        },
                        _ => return err("BUILD on a value that is not an object"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.alloc(Obj::Persistent(pid))?;
                    self.push(v);
                }
                b'P' => {
                    let pid = self.line()?;
                    let v = self.alloc(Obj::Persistent(Value::Str(pid)))?;
                    self.push(v);
                }
                b'q' | b'r' | b'p' | 0x94 => {
                    let k = self.memo_key(op)?;
                    self.memo_put(k)?;
                }
                b'h' | b'j' | b'g' => {
                    let k = self.memo_key(op)?;
                    self.memo_get(k)?;
                }
                0x97 => return err("out-of-band buffers (NEXT_BUFFER) are not read"),
                0x98 => {}
                other => return err(format!("unknown opcode 0x{other:02x} at byte {}", self.at - 1)),
            }
        }
    }
}

/// Parses `data` (at most `max_bytes` long) into a value tree, running nothing.
///
/// # Errors
/// When the pickle is malformed, cut short, too large, or uses what is not read
/// (protocol > 5, out-of-band buffers, integers wider than 64 bits).
pub fn parse(data: &[u8], max_bytes: usize) -> Result<Pickle, PickleError> {
    if data.len() > max_bytes {
        return err(format!("{} bytes, more than the {max_bytes} read", data.len()));
    }
    Machine { data, at: 0, stack: Vec::new(), memo: HashMap::new(), out: Pickle::default() }.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_python_writes() {
        // pickle.dumps({'a': [1, 2.5, 'x'], 'b': (True, None)}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03eX\x01\x00\x00\x00bq\x04\x88N\x86q\x05u.";
        let p = parse(data, 1 << 20).unwrap();
        let root = p.root.clone().unwrap();
        let entries = p.entries(&root).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, Value::Str("a".into()));
        assert_eq!(p.seq(&entries[0].1).unwrap(), &[Value::Int(1), Value::Float(2.5), Value::Str("x".into())]);
        assert_eq!(p.seq(&entries[1].1).unwrap(), &[Value::Bool(true), Value::None]);
    }

    #[test]
    fn hostile_pickles_are_refused_not_run() {
        // a declared 4 GiB string with nothing behind it
        let r = parse(b"\x80\x02X\xff\xff\xff\xff", 1 << 20);
        assert!(r.unwrap_err().0.contains("cut short"));
        // a memo bomb: one list fetched again and again costs an id each time
        let mut bomb = b"\x80\x02]q\x00".to_vec();
        for _ in 0..100_000 {
            bomb.extend_from_slice(b"h\x00");
        }
        bomb.extend_from_slice(b"\x85.");
        let p = parse(&bomb, 1 << 20).unwrap();
        assert_eq!(p.objects.len(), 2, "one list and one tuple");
        // deep nesting: a million nested lists parse and drop without recursion
        let mut deep = b"\x80\x02".to_vec();
        for _ in 0..1_000_000 {
            deep.extend_from_slice(b"](");
        }
        let p = parse(&deep, 1 << 22);
        assert!(p.is_err(), "no STOP");
        let mut nested = b"\x80\x02".to_vec();
        nested.extend(std::iter::repeat_n(b"]".as_slice(), 200_000).flatten());
        nested.extend(std::iter::repeat_n(b"a".as_slice(), 199_999).flatten());
        nested.push(b'.');
        let p = parse(&nested, 1 << 22).unwrap();
        assert_eq!(p.objects.len(), 200_000);
        drop(p);
        // a global is data, never looked up
        let g = parse(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.", 1 << 20).unwrap();
        let Some(Obj::Call { callable, .. }) = g.obj(g.root.as_ref().unwrap()) else { panic!() };
        assert_eq!(*callable, Value::Global("os".into(), "system".into()));
        assert!(parse(b"\x80\x06.", 1 << 20).unwrap_err().0.contains("protocol 6"));
        assert!(parse(b"\x80\x02h\x05.", 1 << 20).unwrap_err().0.contains("memo 5"));
        assert!(parse(&[0u8; 64], 16).unwrap_err().0.contains("more than"));
    }
}
