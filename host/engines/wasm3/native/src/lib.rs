//! Node addon that runs one WebAssembly module under the wasm3 interpreter.
//!
//! The JS side is `host/engines/wasm3/index.ts`; this crate only exposes a small, strict class
//! (`NativeInstance`) and leaves JS-flavoured argument coercion to the TypeScript wrapper.
//!
//! One instance = one wasm3 environment + runtime + loaded module. The module's single import,
//! `env.trap(messagePtr, filePtr, line, column)`, is linked to a host function that records the
//! firmware's abort (strings decoded from linear memory) and returns; the module then executes
//! `unreachable`, wasm3 traps, and `call` reports both the abort and wasm3's trap message.

use napi::bindgen_prelude::{BigInt, Either, ObjectFinalize, Uint8Array};
use napi::{Env, Error, Result, Status};
use napi_derive::napi;
use wasm3x::{Caller, CompilationMode, Config, Engine, Func, Instance, Linker, Memory, Module, Store, Val, ValType};

/// What the firmware told `env.trap` before trapping.
#[napi(object)]
#[derive(Clone)]
pub struct AbortInfo {
    pub message: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
}

/// The outcome of one call: `values` on success, `trap` (wasm3's message) on a trap.
#[napi(object)]
pub struct CallOutcome {
    /// Results in order: i32/f32/f64 as number, i64 as bigint.
    pub values: Vec<Either<f64, BigInt>>,
    /// wasm3's trap text, e.g. "[trap] out of bounds memory access". Absent on success.
    pub trap: Option<String>,
    /// The firmware's abort, if `env.trap` was called during this call.
    pub abort: Option<AbortInfo>,
}

/// A function signature as wasm type names ("i32", "i64", "f32", "f64", ...).
#[napi(object)]
pub struct Signature {
    pub params: Vec<String>,
    pub results: Vec<String>,
}

#[derive(Default)]
struct HostState {
    abort: Option<AbortInfo>,
}

struct Loaded {
    // Field order is drop order: the store (wasm3 runtime) goes before the engine (environment).
    store: Store<HostState>,
    instance: Instance,
    _module: Module,
    _engine: Engine,
    exports: Vec<String>,
}

#[napi(custom_finalize)]
pub struct NativeInstance {
    inner: Option<Loaded>,
    /// Bytes reported to V8 as held by this object (linear memory, stack, compiled code), so that
    /// instances nobody disposes are collected at a sensible pace.
    external_bytes: i64,
}

impl ObjectFinalize for NativeInstance {
    fn finalize(mut self, env: Env) -> Result<()> {
        self.release(&env);
        Ok(())
    }
}

impl NativeInstance {
    fn release(&mut self, env: &Env) {
        self.inner = None;
        if self.external_bytes != 0 {
            let _ = env.adjust_external_memory(-self.external_bytes);
            self.external_bytes = 0;
        }
    }
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(Status::GenericFailure, msg.into())
}

fn type_name(t: ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        ValType::FuncRef => "funcref",
        ValType::ExternRef => "externref",
    }
}

/// The wasm3 version this addon was built with (the crate bundles wasm3's sources).
#[napi]
pub fn wasm3_version() -> String {
    "wasm3x 0.2.1 (Wasm3 v0.9.0)".to_string()
}

#[napi]
impl NativeInstance {
    /// Parse, instantiate (module's own memory limits), link `env.trap`, run the start section.
    /// Running an exported `_start` is left to the caller, so that its trap is reported like any call.
    #[napi(constructor)]
    pub fn new(env: Env, wasm: Uint8Array, stack_size_bytes: u32) -> Result<Self> {
        let bytes: Vec<u8> = wasm.to_vec();
        let exports = function_exports(&bytes).map_err(|e| err(format!("wasm3: bad module: {e}")))?;

        let mut config = Config::new();
        config.stack_size(stack_size_bytes as usize);
        // Compile (and so validate) every function body now, not on first call: a bad module fails
        // at load like under V8, and calls don't pay for compilation.
        config.compilation_mode(CompilationMode::Eager);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, &bytes).map_err(|e| err(format!("wasm3: parse failed: {e}")))?;
        let mut store = Store::new(&engine, HostState::default());
        let mut linker = Linker::<HostState>::new(&engine);
        linker
            .func_wrap(
                "env",
                "trap",
                |mut caller: Caller<'_, HostState>, message_ptr: i32, file_ptr: i32, line: i32, column: i32| {
                    let (message, file) = match caller.get_memory() {
                        Some(mem) => (
                            read_as_string(&caller, mem, message_ptr as u32),
                            read_as_string(&caller, mem, file_ptr as u32),
                        ),
                        None => (String::new(), String::new()),
                    };
                    caller.data_mut().abort =
                        Some(AbortInfo { message, file, line: line as u32, column: column as u32 });
                },
            )
            .map_err(|e| err(format!("wasm3: {e}")))?;
        let instance = linker
            .instantiate_and_start(&mut store, &module)
            .map_err(|e| err(format!("wasm3: instantiate failed: {e}")))?;
        let memory_bytes = instance.get_memory(&store).map_or(0, |m| m.data_size(&store));
        // Measured: an instance of build/session.wasm costs about memory + stack + 4 x module size.
        let external_bytes = (memory_bytes + stack_size_bytes as usize + 4 * bytes.len()) as i64;
        let _ = env.adjust_external_memory(external_bytes);
        Ok(Self {
            inner: Some(Loaded { store, instance, _module: module, _engine: engine, exports }),
            external_bytes,
        })
    }

    fn loaded(&mut self) -> Result<&mut Loaded> {
        self.inner.as_mut().ok_or_else(|| err("wasm3: instance was disposed"))
    }

    fn func(l: &Loaded, name: &str) -> Result<Func> {
        // Only real function exports: wasm3's own lookup also finds names from the name section.
        if !l.exports.iter().any(|n| n == name) {
            return Err(err(format!("wasm3: module has no export named '{name}'")));
        }
        l.instance
            .get_func(&l.store, name)
            .ok_or_else(|| err(format!("wasm3: export '{name}' not found by wasm3")))
    }

    /// Names of the exported functions, in export-section order.
    #[napi]
    pub fn export_names(&mut self) -> Result<Vec<String>> {
        Ok(self.loaded()?.exports.clone())
    }

    #[napi]
    pub fn signature(&mut self, name: String) -> Result<Signature> {
        let l = self.loaded()?;
        let f = Self::func(l, &name)?;
        let ty = f.ty(&l.store).map_err(|e| err(format!("wasm3: {e}")))?;
        Ok(Signature {
            params: ty.params().iter().map(|t| type_name(*t).to_string()).collect(),
            results: ty.results().iter().map(|t| type_name(*t).to_string()).collect(),
        })
    }

    /// Call an export. Arguments must already match the signature: number for i32/f32/f64
    /// (i32 as an integer in i32 or u32 range), bigint for i64. A trap is returned, not thrown.
    #[napi]
    pub fn call(&mut self, name: String, args: Vec<Either<f64, BigInt>>) -> Result<CallOutcome> {
        let l = self.loaded()?;
        let f = Self::func(l, &name)?;
        let ty = f.ty(&l.store).map_err(|e| err(format!("wasm3: {e}")))?;
        if args.len() != ty.params().len() {
            return Err(Error::new(
                Status::InvalidArg,
                format!("wasm3: '{name}' takes {} arguments, got {}", ty.params().len(), args.len()),
            ));
        }
        let mut params = Vec::with_capacity(args.len());
        for (i, (arg, t)) in args.iter().zip(ty.params()).enumerate() {
            params.push(to_val(arg, *t).map_err(|m| {
                Error::new(Status::InvalidArg, format!("wasm3: '{name}' argument {i}: {m}"))
            })?);
        }
        let mut results: Vec<Val> = ty
            .results()
            .iter()
            .map(|t| Val::default_for_ty(*t).unwrap_or(Val::I32(0)))
            .collect();
        l.store.data_mut().abort = None;
        let outcome = f.call(&mut l.store, &params, &mut results);
        let abort = l.store.data_mut().abort.take();
        match outcome {
            Ok(()) => {
                let mut values = Vec::with_capacity(results.len());
                for v in results {
                    values.push(match v {
                        Val::I32(x) => Either::A(x as f64),
                        Val::F32(x) => Either::A(x as f64),
                        Val::F64(x) => Either::A(x),
                        Val::I64(x) => Either::B(BigInt::from(x)),
                        Val::FuncRef(_) => return Err(err("wasm3: funcref results are not supported")),
                    });
                }
                Ok(CallOutcome { values, trap: None, abort })
            }
            Err(e) if e.is_trap() || e.is_host() => {
                let text = e.to_string();
                let text = text.strip_prefix("wasm trap: ").unwrap_or(&text).to_string();
                Ok(CallOutcome { values: Vec::new(), trap: Some(text), abort })
            }
            Err(e) => Err(err(format!("wasm3: call to '{name}' failed: {e}"))),
        }
    }

    /// Size of linear memory in bytes (0 if the module has none).
    #[napi]
    pub fn memory_size(&mut self) -> Result<u32> {
        let l = self.loaded()?;
        Ok(match l.instance.get_memory(&l.store) {
            Some(m) => m.data_size(&l.store) as u32,
            None => 0,
        })
    }

    /// A copy of the whole linear memory.
    #[napi]
    pub fn memory(&mut self) -> Result<Uint8Array> {
        let l = self.loaded()?;
        let data = match l.instance.get_memory(&l.store) {
            Some(m) => m.data(&l.store).to_vec(),
            None => Vec::new(),
        };
        Ok(Uint8Array::new(data))
    }

    #[napi]
    pub fn read_memory(&mut self, ptr: u32, length: u32) -> Result<Uint8Array> {
        let l = self.loaded()?;
        let mem = l.instance.get_memory(&l.store).ok_or_else(|| err("wasm3: module has no memory"))?;
        let mut buf = vec![0u8; length as usize];
        mem.read(&l.store, ptr as usize, &mut buf)
            .map_err(|e| Error::new(Status::InvalidArg, format!("wasm3: {e}")))?;
        Ok(Uint8Array::new(buf))
    }

    #[napi]
    pub fn write_memory(&mut self, ptr: u32, bytes: Uint8Array) -> Result<()> {
        let l = self.loaded()?;
        let mem = l.instance.get_memory(&l.store).ok_or_else(|| err("wasm3: module has no memory"))?;
        mem.write(&mut l.store, ptr as usize, &bytes)
            .map_err(|e| Error::new(Status::InvalidArg, format!("wasm3: {e}")))
    }

    /// Free the wasm3 runtime now instead of at garbage collection. Idempotent.
    #[napi]
    pub fn dispose(&mut self, env: Env) {
        self.release(&env);
    }
}

fn to_val(arg: &Either<f64, BigInt>, t: ValType) -> std::result::Result<Val, String> {
    match (t, arg) {
        (ValType::I32, Either::A(n)) => {
            if n.fract() != 0.0 || !(*n >= i32::MIN as f64 && *n <= u32::MAX as f64) {
                return Err(format!("{n} is not an i32"));
            }
            Ok(Val::I32(if *n > i32::MAX as f64 { (*n as u32) as i32 } else { *n as i32 }))
        }
        (ValType::F32, Either::A(n)) => Ok(Val::F32(*n as f32)),
        (ValType::F64, Either::A(n)) => Ok(Val::F64(*n)),
        (ValType::I64, Either::B(b)) => {
            let (v, lossless) = b.get_i64();
            if lossless {
                return Ok(Val::I64(v));
            }
            // Accept the full u64 range too (two's complement), like BigInt.asIntN(64, x).
            let (neg, u, u_lossless) = b.get_u64();
            if !neg && u_lossless {
                return Ok(Val::I64(u as i64));
            }
            Err("bigint out of i64 range".to_string())
        }
        (ValType::I64, Either::A(_)) => Err("i64 parameters take a bigint".to_string()),
        (_, Either::B(_)) => Err(format!("{} parameters take a number", type_name(t))),
        (_, _) => Err(format!("unsupported parameter type {}", type_name(t))),
    }
}

/// Same rules as `readAsString` in host/engines/engine.ts: an AssemblyScript static string is
/// UTF-16LE with its byte length stored in the 4 bytes before it.
fn read_as_string(caller: &Caller<'_, HostState>, mem: Memory, ptr: u32) -> String {
    let size = mem.data_size(caller);
    let ptr = ptr as usize;
    if ptr == 0 || ptr < 4 || ptr > size {
        return String::new();
    }
    let mut len = [0u8; 4];
    if mem.read(caller, ptr - 4, &mut len).is_err() {
        return String::new();
    }
    let byte_length = u32::from_le_bytes(len) as usize;
    if ptr + byte_length > size {
        return String::new();
    }
    let mut raw = vec![0u8; byte_length & !1];
    if mem.read(caller, ptr, &mut raw).is_err() {
        return String::new();
    }
    let units: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

/// Names of the function exports, read from the export section (wasm3 has no export listing).
fn function_exports(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    let mut r = Reader { b: bytes, pos: 0 };
    if r.take(4)? != b"\0asm" {
        return Err("not a wasm module".into());
    }
    r.take(4)?; // version
    let mut names = Vec::new();
    while r.pos < bytes.len() {
        let id = r.byte()?;
        let size = r.leb()? as usize;
        let body = r.take(size)?;
        if id != 7 {
            continue;
        }
        let mut s = Reader { b: body, pos: 0 };
        let count = s.leb()?;
        for _ in 0..count {
            let len = s.leb()? as usize;
            let name = String::from_utf8(s.take(len)?.to_vec()).map_err(|_| "export name is not UTF-8")?;
            let kind = s.byte()?;
            s.leb()?; // index
            if kind == 0 {
                names.push(name);
            }
        }
    }
    Ok(names)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.b.len()).ok_or("truncated module")?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn byte(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn leb(&mut self) -> std::result::Result<u32, String> {
        let mut result: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            result |= ((b & 0x7f) as u32) << shift;
            if b & 0x80 == 0 {
                return Ok(result);
            }
        }
        Err("bad LEB128".into())
    }
}
