//! Hostile checkpoints for the reader tests: zips rebuilt with chosen entries (valid CRC-32s, so
//! the pickle inside is what gets tested), hand-made pickles and safetensors headers.

use std::io::{Cursor, Read, Write};

/// The entries of a zip, in order: (name, bytes).
pub fn unzip(zip_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes)).expect("a zip");
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let name = f.name().unwrap().into_owned();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

/// A zip of stored entries, as torch.save writes them.
pub fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        out.start_file(name.as_str(), opts).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// A zip whose central directory lists `n` entries that all point at one stored entry of
/// `size` bytes (a zip bomb for a reader that checks or reads every entry).
pub fn overlapping_zip(n: u16, size: usize) -> Vec<u8> {
    let data = vec![7u8; size];
    let crc = crc32fast::hash(&data);
    let fields = |name: &str| {
        let mut v = vec![20, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // version needed, flags, stored, time, date
        v.extend(crc.to_le_bytes());
        v.extend((size as u32).to_le_bytes());
        v.extend((size as u32).to_le_bytes());
        v.extend((name.len() as u16).to_le_bytes());
        v.extend([0, 0]); // extra length
        v
    };
    let name = "archive/data/0";
    let mut out = 0x0403_4b50u32.to_le_bytes().to_vec();
    out.extend(fields(name));
    out.extend(name.as_bytes());
    out.extend(&data);
    let cd_start = out.len() as u32;
    for i in 0..n {
        let name = format!("archive/data/{i}");
        out.extend(0x0201_4b50u32.to_le_bytes());
        out.extend([20, 0]); // version made by
        out.extend(fields(&name));
        out.extend([0; 10]); // comment length, disk, internal and external attributes
        out.extend(0u32.to_le_bytes()); // every one at the same local header
        out.extend(name.as_bytes());
    }
    let cd_len = out.len() as u32 - cd_start;
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0, 0, 0, 0]);
    out.extend(n.to_le_bytes());
    out.extend(n.to_le_bytes());
    out.extend(cd_len.to_le_bytes());
    out.extend(cd_start.to_le_bytes());
    out.extend([0, 0]);
    out
}

/// `pt` with its `data.pkl` replaced by `pickle`.
pub fn with_pickle(pt: &[u8], pickle: Vec<u8>) -> Vec<u8> {
    let mut entries = unzip(pt);
    let pkl = entries.iter_mut().find(|(n, _)| n.ends_with("/data.pkl")).expect("data.pkl");
    pkl.1 = pickle;
    zip(&entries)
}

/// A protocol-2 pickle of `body` followed by STOP.
pub fn pickle(body: impl IntoIterator<Item = u8>) -> Vec<u8> {
    [0x80, 2].into_iter().chain(body).chain([b'.']).collect()
}

fn repeat(bytes: &[u8], n: usize) -> impl Iterator<Item = u8> + '_ {
    bytes.iter().copied().cycle().take(bytes.len() * n)
}

/// BINUNICODE.
fn str_op(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((s.len() as u32).to_le_bytes());
    v.extend(s.as_bytes());
    v
}

/// LONG1 with 8 bytes.
fn int_op(i: i64) -> Vec<u8> {
    let mut v = vec![0x8a, 8];
    v.extend(i.to_le_bytes());
    v
}

fn tuple_op(items: &[i64]) -> Vec<u8> {
    let mut v = vec![b'('];
    items.iter().for_each(|&i| v.extend(int_op(i)));
    v.push(b't');
    v
}

/// A torch.save zip of `{"w": tensor}` whose view of a 24-byte float storage has the given
/// offset, shape and strides.
pub fn tensor_zip(offset: i64, shape: &[i64], stride: &[i64]) -> Vec<u8> {
    let mut p = vec![b'}', b'('];
    p.extend(str_op("w"));
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.push(b'(');
    p.extend(str_op("storage"));
    p.extend(b"ctorch\nFloatStorage\n");
    p.extend(str_op("0"));
    p.extend(str_op("cpu"));
    p.extend(int_op(6));
    p.extend([b't', b'Q']);
    p.extend(int_op(offset));
    p.extend(tuple_op(shape));
    p.extend(tuple_op(stride));
    p.push(0x89);
    p.extend(b"ccollections\nOrderedDict\n)R");
    p.extend([b't', b'R', b'u']);
    zip(&[("archive/data.pkl".into(), pickle(p)), ("archive/data/0".into(), vec![0; 24])])
}

/// The name of the zip entry whose data holds byte `offset` of the file.
pub fn entry_at(zip_bytes: &[u8], offset: usize) -> Option<String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip_bytes)).expect("a zip");
    (0..archive.len()).find_map(|i| {
        let f = archive.by_index_raw(i).unwrap();
        let start = f.data_start().unwrap() as usize;
        (start..start + f.compressed_size() as usize).contains(&offset).then(|| f.name().unwrap().into_owned())
    })
}

/// A safetensors file with this header (its length written in front) and `data_len` zero bytes.
pub fn safetensors(header: &str, data_len: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend(header.as_bytes());
    v.resize(v.len() + data_len, 0);
    v
}

/// A hostile checkpoint: what it is, its bytes, and a part of the error message it must give.
pub struct Case {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub error: &'static str,
}

/// Pathological pickles (inside an otherwise valid zip made from `pt`), tensor views and
/// safetensors headers. Each must be rejected as invalid weights, quickly and in bounded memory.
pub fn cases(pt: &[u8]) -> Vec<Case> {
    const M: usize = 1_000_000;
    let deep = "nested deeper than 100 levels";
    let budget = "needs more than 64 MiB";
    let mut cases = vec![
        // One empty list, memoised, then 60 times: two copies of the memo into a tuple, memoised.
        (
            "memo bomb",
            pickle([b']', b'q', 0].into_iter().chain(repeat(&[b'h', 0, b'h', 0, 0x86, b'q', 0], 60))),
            budget,
        ),
        // A list of 1000 items, then a million copies of it from the memo.
        (
            "memo copies",
            pickle(
                [b']', b'('].into_iter().chain(repeat(b"N", 1000)).chain([b'e', b'q', 0]).chain(repeat(&[b'h', 0], M)),
            ),
            budget,
        ),
        ("opcode bomb", pickle(repeat(b"N", 3 * M)), budget),
        ("mark bomb", pickle(repeat(b"(", 20 * M)), budget),
        // The issue's case: a list nested a million levels deep (LIST after a million marks).
        ("list nested a million levels deep", pickle(repeat(b"(", M).chain(repeat(b"l", M))), deep),
        ("tuple nested a million levels deep", pickle([b'N'].into_iter().chain(repeat(&[0x85], M))), deep),
        ("lists nested by APPEND", pickle(repeat(b"]", M / 10).chain(repeat(b"a", M / 10 - 1))), deep),
        (
            "dicts nested 100000 levels deep",
            pickle([b'}'].into_iter().chain(repeat(b"N}", M / 10)).chain(repeat(b"s", M / 10))),
            deep,
        ),
        (
            "huge memo index",
            pickle([b'N', b'r', 0xff, 0xff, 0xff, 0xff, b'j', 0xfe, 0xff, 0xff, 0xff]),
            "unknown memo key 4294967294",
        ),
        ("string longer than the file", pickle([b'X', 0xff, 0xff, 0xff, 0xff, b'a']), "truncated data"),
        ("bytes longer than the file", pickle([b'B', 0xff, 0xff, 0xff, 0x7f, b'a']), "truncated data"),
        ("255-byte integer", pickle([0x8a, 0xff].into_iter().chain(repeat(&[1], 255))), "integer too large"),
        ("unknown opcode", pickle([0xff]), "unsupported opcode 0xff"),
        ("stack underflow", pickle([b'a']), "stack underflow"),
        ("no STOP", vec![0x80, 2, b'N'], "truncated data"),
    ]
    .into_iter()
    .map(|(name, p, error)| Case { name, bytes: with_pickle(pt, p), error })
    .collect::<Vec<_>>();

    cases.push(Case {
        name: "20000 zip entries on one 1 MB stretch",
        bytes: overlapping_zip(20_000, 1 << 20),
        error: "its entries overlap",
    });

    let big = 1i64 << 62;
    for (name, offset, shape, stride, error) in [
        ("shape whose product overflows", 0, vec![big, big], vec![1, 1], "impossible shape"),
        ("view past its storage", 0, vec![2, 4], vec![4, 1], "reaches past the end of its storage"),
        ("huge stride", 0, vec![2, 2], vec![big, 1], "reaches past the end of its storage"),
        ("huge offset", big, vec![1], vec![1], "reaches past the end of its storage"),
        ("negative offset", -1, vec![1], vec![1], "negative storage offset"),
        ("negative dimension", 0, vec![-1, 2], vec![2, 1], "non-negative integers"),
        ("rank and strides disagree", 0, vec![2, 3], vec![1], "strides"),
    ] {
        cases.push(Case { name, bytes: tensor_zip(offset, &shape, &stride), error });
    }

    let st = |h: &str, n| safetensors(h, n);
    // a header of one tensor `a`
    let one = |dtype: &str, shape: &str, offsets: &str, n| {
        st(&format!(r#"{{"a":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}}}"#), n)
    };
    let mut huge_len = u64::MAX.to_le_bytes().to_vec();
    huge_len.extend(b"{}");
    let mut header_17mib = (17u64 << 20).to_le_bytes().to_vec();
    header_17mib.extend(b"{\"a\":1}");
    let mut longer_than_file = one("F32", "[1]", "[0,4]", 4);
    longer_than_file[..8].copy_from_slice(&1000u64.to_le_bytes());
    let overlapping = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#;
    let deep_json = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let mut not_utf8 = st("{\"\u{e9}\":1}", 0);
    not_utf8[10] = 0xff;
    let json = "invalid JSON in header";
    for (name, bytes, error) in [
        ("header length u64::MAX", huge_len, "larger than the 16 MiB allowed"),
        ("header length 17 MiB", header_17mib, "larger than the 16 MiB allowed"),
        ("header longer than the file", longer_than_file, "invalid header length"),
        ("overlapping offsets", st(overlapping, 24), "invalid offset"),
        ("offsets past the end", one("F32", "[1]", "[0,4000000000000]", 4), "safetensors:"),
        ("dtype that does not fit the bytes", one("F16", "[2,2]", "[0,16]", 16), "`a`'s byte range"),
        ("shape whose product overflows", one("F32", "[4294967296,4294967296,4294967296]", "[0,4]", 4), "overflow"),
        ("unknown dtype", one("Q4_K", "[1]", "[0,4]", 4), json),
        ("negative dimension", one("F32", "[-1]", "[0,4]", 4), json),
        ("JSON nested 100000 levels deep", st(&deep_json, 0), json),
        ("header not UTF-8", not_utf8, "invalid UTF-8"),
    ] {
        cases.push(Case { name, bytes, error });
    }
    cases
}
